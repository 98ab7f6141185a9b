//! Types shared by the kmatrix host and its in-guest agent.
//!
//! Everything that crosses the guest channel is defined here, once: the messages (JSON lines, one
//! message a line), the capability record the agent sends in `Hello`, and the result of a scenario.
//! The host also writes results to disk in this shape, so a results file and the channel agree.
//!
//! This crate holds data and small pure helpers only: no I/O, no parsing of kernel files (the agent
//! and the harness own those) beyond the two line formats both sides read ([`ftrace`]).

// The shared vocabulary of host and guest: every public item says what it means.
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod ftrace;

/// An upstream kernel version, `major.minor.patch`: the one parser of versions for the host and
/// the agent alike, from a release (`6.1.0-47-amd64`, `6.12.57+deb13-amd64`), a `since` (`5.15`)
/// or an upstream version (`7.3.4`). Missing parts are 0. Debian *package* versions
/// (`6.1.176-1`, with epochs and `~bpo` suffixes) are another thing, compared by dpkg's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KernelVersion {
    /// `6` of 6.1.0.
    pub major: u32,
    /// `1` of 6.1.0.
    pub minor: u32,
    /// `0` of 6.1.0 (for Debian releases the ABI's first number, not the point release).
    pub patch: u32,
}

impl KernelVersion {
    /// A version by its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> KernelVersion {
        KernelVersion { major, minor, patch }
    }

    /// The leading `a.b[.c]` of `s`; `None` when it does not start with `a.b` or `a`.
    pub fn parse(s: &str) -> Option<KernelVersion> {
        let head: String = s.trim().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let mut it = head.split('.').filter(|p| !p.is_empty()).map(|p| p.parse::<u32>());
        let major = it.next()?.ok()?;
        let minor = it.next().unwrap_or(Ok(0)).ok()?;
        let patch = it.next().unwrap_or(Ok(0)).ok()?;
        Some(KernelVersion { major, minor, patch })
    }

    /// `LINUX_VERSION_CODE` (`(a << 16) + (b << 8) + min(c, 255)`), as BPF_PROG_LOAD wants it.
    pub fn code(self) -> u32 {
        (self.major << 16) + (self.minor << 8) + self.patch.min(255)
    }
}

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Bumped whenever a message changes shape. The agent sends it in `Hello`; the host refuses a
/// mismatch instead of misreading results.
pub const PROTO_VERSION: u32 = 2;

/// Longest line either side accepts on the channel. A longer line is hostile or broken output
/// and is reported as such rather than buffered without end.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// Messages from the agent to the host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GuestMsg {
    /// First message after the agent has mounted everything and probed the kernel.
    Hello {
        /// [`PROTO_VERSION`] of the agent.
        proto: u32,
        /// What the agent found in the running kernel.
        caps: Box<Capabilities>,
    },
    /// One scenario's outcome, answering `HostMsg::Run`.
    Result(Box<ScenarioResult>),
    /// Answer to `HostMsg::Exec`.
    ExecDone(ExecOutcome),
    /// Output of a running `Exec` with `stream` set, as it comes (before `ExecDone`). `fd` is 1
    /// or 2; `data` is the bytes (not necessarily UTF-8, hence not a string).
    ExecOutput {
        /// 1 (stdout, or the terminal) or 2 (stderr).
        fd: u8,
        /// The bytes, as read.
        data: Vec<u8>,
    },
    /// Free text the agent wants in the run's log (never parsed for results).
    Log {
        /// The text.
        line: String,
    },
    /// The agent could not do what was asked; the message names the failing call and its input.
    Error {
        /// What failed, naming the call and its input.
        message: String,
    },
    /// Sent right before the agent powers the guest off.
    Bye,
}

/// Messages from the host to the agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMsg {
    /// Run one scenario of the agent's catalogue.
    Run(RunRequest),
    /// Run a program in the guest and report its exit status and output.
    Exec(ExecRequest),
    /// Bytes for the stdin of the running `Exec` (`stdin: pipe` or a terminal); empty = EOF.
    Input {
        /// The bytes; empty closes the program's stdin.
        data: Vec<u8>,
    },
    /// The host terminal's size changed (a running `Exec` with a terminal).
    Winsize {
        /// Lines.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Send a signal to the running `Exec`'s process group (a terminal's Ctrl-C is a byte instead).
    Signal {
        /// The signal number (`SIGINT` is 2).
        signal: i32,
    },
    /// Power the guest off.
    Shutdown,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
/// Run one scenario of the agent's catalogue.
pub struct RunRequest {
    /// Scenario id, `family.path.target`.
    pub scenario: String,
    /// Per-scenario parameters (e.g. `count` for openat loops); unknown keys are ignored.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The host's root, when this guest shares it: scenarios that run the host's own tools
    /// (`tool.*`) mount it and run them in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Share>,
    /// Leave tracefs as the scenario left it (probes registered, tracer and events on, the
    /// trace buffer full) instead of resetting it after the scenario: `kmatrix rerun --shell`
    /// opens a shell on that state. The reset before the scenario still happens.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_state: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
/// Run a program in the guest: in its own root, or in the host's root shared into it.
pub struct ExecRequest {
    /// The program (a path in the root it runs in) and its arguments.
    pub argv: Vec<String>,
    #[serde(default)]
    /// Milliseconds the program may run (0: the agent's default, 60 s); its process group is
    /// killed then.
    pub timeout_ms: u64,
    /// Environment for the program (the agent's own environment is not passed on).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory (default `/tmp`); inside the host's root when `root` is set.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Run inside the host's root, shared read-only into the guest (see [`Share`]); `None`: the
    /// guest's own initramfs root.
    #[serde(default)]
    pub root: Option<Share>,
    /// Send `ExecOutput` messages while the program runs (besides the totals in `ExecDone`).
    #[serde(default)]
    pub stream: bool,
    /// Where stdin comes from.
    #[serde(default)]
    pub stdin: StdinMode,
    /// Terminal size when `stdin` is `Tty`.
    #[serde(default)]
    pub winsize: Option<(u16, u16)>,
}

/// How a program's stdin is wired.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StdinMode {
    /// /dev/null.
    #[default]
    Null,
    /// A pipe fed by `HostMsg::Input` (empty data closes it).
    Pipe,
    /// A pseudo-terminal: stdin, stdout and stderr all on it, the program its session leader
    /// (Ctrl-C from `Input` reaches the foreground job); output comes as `ExecOutput` fd 1.
    Tty,
}

/// The host's root file system, shared into the guest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Share {
    /// `9p` (virtio-9p-pci, no daemon) or `virtiofs` (vhost-user-fs with virtiofsd).
    pub fs: String,
    /// The device's mount tag.
    pub tag: String,
    /// Host directories shared writable, each its own device: (mount tag, absolute host path).
    #[serde(default)]
    pub rw: Vec<(String, String)>,
    /// The running kernel's headers (Debian's `linux-headers` packages, extracted by the host into
    /// its cache) as a host path, which the guest reaches through the host root: its `src/` goes
    /// over `/usr/src` and its `modules/<release>/` over `/lib/modules` in the guest's view, where
    /// BCC looks for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<String>,
    /// Why the host has no headers for this kernel (a local kernel, a suite without them, a
    /// failed download), when a scenario wanted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_missing: Option<String>,
}

/// The tag of the host root's share.
pub const ROOT_TAG: &str = "kmatrix-root";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
/// How a program run by `Exec` ended, with its output (bounded to 1 MiB per stream).
pub struct ExecOutcome {
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Its standard output (lossy UTF-8).
    pub stdout: String,
    /// Its standard error (lossy UTF-8), plus the agent's note when it was killed.
    pub stderr: String,
    /// Milliseconds from spawn to the end.
    pub wall_ms: u64,
    /// Killed at the timeout.
    #[serde(default)]
    pub timed_out: bool,
    /// How the host root was mounted for this program (filesystem, options, and the time the
    /// first mount took), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
}

/// What the agent found in the running kernel. Typed, never free text, so verdicts can cite it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Capabilities {
    /// `uname -r`.
    pub release: String,
    /// `uname -v`.
    pub version: String,
    /// `uname -m`.
    pub machine: String,
    /// `/proc/cmdline`.
    pub cmdline: String,
    /// Milliseconds since the kernel started (from /proc/uptime) when `Hello` was built.
    pub uptime_ms: u64,
    /// Where tracefs is mounted (kmatrix always mounts it at /sys/kernel/tracing).
    pub tracefs_mount: Option<String>,
    /// debugfs mounted at /sys/kernel/debug.
    pub debugfs_mounted: bool,
    /// bpffs mounted at /sys/fs/bpf.
    pub bpffs_mounted: bool,
    /// `available_tracers`.
    pub available_tracers: Vec<String>,
    /// Lines of `available_events`.
    pub event_count: usize,
    /// Lines of `available_filter_functions` (0 when the file is absent).
    pub filter_function_count: usize,
    /// tracefs has `kprobe_events`.
    pub kprobe_events: bool,
    /// tracefs has `uprobe_events`.
    pub uprobe_events: bool,
    /// tracefs has `dynamic_events`.
    pub dynamic_events: bool,
    /// Probe syntaxes announced in the tracefs README, e.g. `p[:[gr/]event]`, `r[maxactive]`,
    /// `f[:[gr/]event]`, `e[:[gr/]event]`, `t[:[gr/]event]`.
    pub probe_syntaxes: Vec<ProbeSyntax>,
    /// Entries of /sys/kernel/debug/kprobes/blacklist (None when the file is absent).
    pub kprobe_blacklist: Option<usize>,
    /// /sys/kernel/btf/vmlinux exists.
    pub btf_vmlinux: bool,
    /// Number of module BTF files under /sys/kernel/btf besides vmlinux.
    pub btf_modules: usize,
    /// The bpf() syscall answered (anything but ENOSYS).
    pub bpf_syscall: bool,
    /// /proc/sys/kernel/unprivileged_bpf_disabled, /proc/sys/net/core/bpf_jit_enable.
    pub bpf_jit_enable: Option<i64>,
    /// BPF program types the kernel accepts, as probed by loading a minimal program of each.
    #[serde(default)]
    pub bpf_prog_types: Vec<String>,
    /// BPF map types the kernel accepts, as probed by creating a small map of each.
    #[serde(default)]
    pub bpf_map_types: Vec<String>,
    /// BPF attach types the kernel accepts, as probed by attaching a trivial program of each to
    /// a harmless target and detaching it. Probed at boot: `kprobe` (kprobe perf event),
    /// `bpf_link_create` (BPF_LINK_CREATE of a kprobe perf event, 5.15), `raw_tracepoint`,
    /// `fentry`, `fexit`, `perf_event`, `kprobe_multi`, `uprobe_multi`. The agent probes
    /// `tracepoint`, `uprobe` and `tp_btf` only when a scenario asks (too slow for the boot under
    /// TCG), so they are never listed here.
    #[serde(default)]
    pub bpf_attach_types: Vec<String>,
    /// Perf PMUs under /sys/bus/event_source/devices, with their `type`.
    pub perf_pmus: BTreeMap<String, u32>,
    /// Modules the agent loaded, in order, with how each went.
    pub modules: Vec<ModuleLoad>,
    /// The channel the agent talks on (`/dev/ttyS1`, `/dev/vport0p1`, ...).
    pub channel: String,
    /// Ids of the scenarios in the agent's catalogue, in catalogue order.
    #[serde(default)]
    pub scenarios: Vec<String>,
    /// Every filesystem the agent tried to mount, in order, with how each went.
    #[serde(default)]
    pub mounts: Vec<MountRecord>,
    /// Selected kernel config options as the guest sees them (/proc/config.gz when built in).
    /// The host adds the package's config, which Debian kernels do not carry in-guest.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Where `config` was read in the guest (`/proc/config.gz`, `/boot/config-<release>`); None
    /// when the guest had no kernel config, and requirements fall back to tracefs evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_source: Option<String>,
}

/// One probe syntax line of the tracefs README, reduced to its prefix (`p`, `r`, `f`, `e`, `t`, ...)
/// and the full text the kernel printed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProbeSyntax {
    /// The syntax's letter as the README writes it (`p`, `r`, `f`, `e`, ...).
    pub kind: String,
    /// The README line itself.
    pub text: String,
}

impl Capabilities {
    /// Whether the tracefs README announces a probe syntax starting with `prefix`
    /// (e.g. `"f["` for fprobe events, `"e["` for event probes, `"r[maxactive]"`).
    pub fn has_probe_syntax(&self, prefix: &str) -> bool {
        self.probe_syntaxes.iter().any(|s| s.text.starts_with(prefix))
    }
}

/// One mount the agent attempted at boot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountRecord {
    /// The file system type (`tracefs`).
    pub fstype: String,
    /// Where it was mounted.
    pub target: String,
    /// `ok`, or the errno text of the failed `mount` (or `mkdir` of the mount point).
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
/// One kernel module the agent loaded (or tried to).
pub struct ModuleLoad {
    /// The module's name (`virtio_pci`).
    pub name: String,
    /// `ok`, `exists` (EEXIST: already loaded, counts as ok), `builtin`, or the errno text of the
    /// failed `finit_module` (or `open` of the file).
    pub outcome: String,
    /// Milliseconds the load took.
    pub ms: u64,
}

/// A scenario of the agent's catalogue, as the host lists and judges it. The agent prints the
/// whole catalogue as a JSON array of these when run as `kmatrix-agent --catalogue` (on the host,
/// not as PID 1), so the host never keeps a second copy of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScenarioInfo {
    /// `family.path.target`.
    pub id: String,
    /// One line: what the scenario exercises and what it counts.
    pub summary: String,
    /// The first upstream kernel version with everything this path needs (`"5.15"`). On a
    /// kernel at or above it, `unsupported` is judged `fail` unless an expectation names it.
    pub since: String,
    /// The first upstream kernel version without the path (a tracepoint that was removed), if
    /// any: `unsupported` at or above it is the expected outcome, not a regression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The requirements the agent checks before running, as text (`tracefs file kprobe_events`,
    /// `probe syntax f[`, `config CONFIG_HIST_TRIGGERS`, ...).
    #[serde(default)]
    pub requires: Vec<String>,
    /// Default parameters (e.g. `count = 100`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The scenario runs host programs through the shared host root: the host must share it
    /// into the guest (and put the share modules in the image).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_root: bool,
    /// The scenario compiles against the running kernel's headers (BCC): the host fetches its
    /// `linux-headers` packages and offers them with the host root.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kernel_headers: bool,
}

/// Status vocabulary of the kernel's ftracetest, kept.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every check held.
    Pass,
    /// A check did not hold: `reason` and the counts say which.
    Fail,
    /// A requirement is absent: `reason` names it and `evidence` shows it.
    Unsupported,
    /// Listed in the expectations with a reason (set by the host, never by the agent).
    Xfail,
    /// Infrastructure: boot failure, timeout, panic, agent crash (`cause` says which).
    Error,
    /// Failed (or erred) once and passed on the single automatic retry; the first attempt is
    /// kept in `previous`. Set by the host, never by the agent.
    Flaky,
}

/// Why a result is an `error`: what broke, so CI can tell "the test is wrong" from "the machine
/// failed".
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// The machinery around the scenario: QEMU died or could not start, the channel broke, the
    /// kernel could not be prepared, the agent could not do its part.
    Infrastructure,
    /// The guest kernel panicked or oopsed.
    KernelOops,
    /// The scenario, the boot or the kernel's whole run ran out of time.
    Timeout,
    /// The accelerator failed (a KVM that does not work).
    Accelerator,
}

impl Cause {
    /// The cause as results files and reports write it (`kernel-oops`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Infrastructure => "infrastructure",
            Cause::KernelOops => "kernel-oops",
            Cause::Timeout => "timeout",
            Cause::Accelerator => "accelerator",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Status {
    /// The status as results files and reports write it (`pass`, `xfail`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Unsupported => "unsupported",
            Status::Xfail => "xfail",
            Status::Error => "error",
            Status::Flaky => "flaky",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Milliseconds spent in each phase of a scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Timings {
    /// Milliseconds spent attaching (probes, programs, tracers).
    pub attach_ms: f64,
    /// Milliseconds the workload ran.
    pub run_ms: f64,
    /// Milliseconds spent detaching and cleaning up.
    pub detach_ms: f64,
}

/// A count the scenario expected and the count it observed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Count {
    /// What was counted (`kprobe_profile hits`).
    pub what: String,
    /// What the scenario expected.
    pub expected: u64,
    /// What the kernel reported.
    pub observed: u64,
}

/// Outcome of one scenario on one kernel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioResult {
    /// Filled in by the host (the agent does not know the matrix's kernel ids).
    #[serde(default)]
    pub kernel: String,
    /// The accelerator the guest ran under (`kvm`, `tcg`); filled in by the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub accel: String,
    /// The exact kernel build the scenario ran on, enough to boot it again (`kmatrix rerun`);
    /// filled in by the host. Absent in results written before kmatrix recorded it, and when
    /// the kernel could not be prepared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<KernelBuild>,
    /// The parameters the scenario ran with (the catalogue's defaults and the run's `--param`s,
    /// as sent to the agent); filled in by the host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Scenario id, `family.path.target`.
    pub scenario: String,
    /// The verdict: the agent's status, judged by the host (see `agent_status`, `verdict`).
    pub status: Status,
    /// Why, as the agent said it: for `fail` what differed, for `unsupported` the missing
    /// requirement. The host never rewrites it.
    pub reason: String,
    /// The status the agent reported, kept by the host when it judges the result, so a results
    /// file says both what the guest saw and what the host decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_status: Option<Status>,
    /// Why the host's verdict differs from the agent's status (an expectation with its reason,
    /// `unsupported` on a kernel that should have it, a cause that did not match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Evidence for an `unsupported` verdict (the README line absent, the config option, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// For an `error`: what broke (set by the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// The first attempt, when this result is the automatic retry of a cell that failed or
    /// erred (a retry that passed makes the cell `flaky`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<ScenarioResult>>,
    /// errno of the call that failed, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    #[serde(default)]
    /// Every count the scenario made, matched or not.
    pub counts: Vec<Count>,
    #[serde(default)]
    /// Where the time went.
    pub timings: Timings,
    /// Structured detail the scenario returns (parsed format fields, symbols chosen, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
    /// Bounded excerpt of raw output (trace lines, format file, verifier log).
    #[serde(default)]
    pub excerpt: String,
    /// Files made from this result's trace data for a person to open (a Chrome trace, a flame
    /// graph), relative to the results file's directory; filled in by the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
}

/// The exact kernel build a result ran on: what `kmatrix rerun` boots again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct KernelBuild {
    /// The `--kernel` spec that selects exactly this build: `debian:6.1.176-1` for a Debian
    /// package (its version, not its line), the absolute path of a local kernel file.
    pub spec: String,
    /// `uname -r` of the build (`6.1.0-50-amd64`); empty when a local file does not say it.
    #[serde(default)]
    pub release: String,
    /// The Debian package (`linux-image-6.1.0-50-amd64`), for a packaged kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The suite the package came from (`bookworm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// sha256 of what was booted: the image package (`.deb`) of a Debian build, the file of a
    /// local kernel. A rerun refuses a build whose hash differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A local kernel's `--modules` directory, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<String>,
    /// A local kernel's `--config` file, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// Longest raw excerpt a result carries.
pub const MAX_EXCERPT: usize = 4096;

impl ScenarioResult {
    /// The reason a person reads: the host's verdict first when it changed the status, then what
    /// the agent said.
    pub fn explanation(&self) -> String {
        match (&self.verdict, self.agent_status) {
            (Some(v), Some(a)) if self.reason.is_empty() => format!("{v} (agent: {a})"),
            (Some(v), Some(a)) => format!("{v} (agent: {a}: {})", self.reason),
            (Some(v), None) => format!("{v}: {}", self.reason),
            (None, _) => self.reason.clone(),
        }
    }

    /// A result with no counts, timings, detail or excerpt yet.
    pub fn new(scenario: &str, status: Status, reason: impl Into<String>) -> Self {
        ScenarioResult {
            kernel: String::new(),
            accel: String::new(),
            build: None,
            params: BTreeMap::new(),
            scenario: scenario.to_string(),
            status,
            reason: reason.into(),
            agent_status: None,
            verdict: None,
            evidence: None,
            cause: None,
            previous: None,
            errno: None,
            counts: Vec::new(),
            timings: Timings::default(),
            detail: serde_json::Value::Null,
            excerpt: String::new(),
            artifacts: Vec::new(),
        }
    }

    /// Set the excerpt, cut to [`MAX_EXCERPT`] bytes on a character boundary.
    pub fn with_excerpt(mut self, raw: &str) -> Self {
        self.excerpt = bounded(raw, MAX_EXCERPT);
        self
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with a marker when cut.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... {} bytes cut]", &s[..end], s.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse_from_releases_since_and_upstream_versions() {
        assert_eq!(KernelVersion::parse("6.1.0-47-amd64"), Some(KernelVersion::new(6, 1, 0)));
        assert_eq!(KernelVersion::parse("6.12.57+deb13-amd64"), Some(KernelVersion::new(6, 12, 57)));
        assert_eq!(KernelVersion::parse("5.15"), Some(KernelVersion::new(5, 15, 0)));
        assert_eq!(KernelVersion::parse("7"), Some(KernelVersion::new(7, 0, 0)));
        assert_eq!(KernelVersion::parse("abc"), None);
        assert_eq!(KernelVersion::parse(""), None);
        assert!(KernelVersion::new(5, 10, 0) < KernelVersion::new(5, 15, 0));
        assert!(KernelVersion::new(6, 1, 0) > KernelVersion::new(5, 15, 300));
        assert_eq!(KernelVersion::new(6, 1, 300).code(), 0x0601ff);
        assert_eq!(KernelVersion::new(6, 1, 0).to_string(), "6.1.0");
    }

    #[test]
    fn messages_round_trip_as_tagged_json_lines() {
        let msg = GuestMsg::Hello {
            proto: PROTO_VERSION,
            caps: Box::new(Capabilities { release: "6.1.0-47-amd64".into(), ..Default::default() }),
        };
        let line = serde_json::to_string(&msg).unwrap();
        assert!(line.starts_with(r#"{"type":"hello","proto":2,"#), "{line}");
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<GuestMsg>(&line).unwrap(), msg);
        let mut req = RunRequest { scenario: "kprobe.tracefs.openat".into(), ..Default::default() };
        let line = serde_json::to_string(&HostMsg::Run(req.clone())).unwrap();
        assert_eq!(line, r#"{"type":"run","scenario":"kprobe.tracefs.openat","params":{}}"#);
        assert_eq!(serde_json::from_str::<HostMsg>(&line).unwrap(), HostMsg::Run(req.clone()));
        req.keep_state = true;
        let line = serde_json::to_string(&HostMsg::Run(req.clone())).unwrap();
        assert_eq!(line, r#"{"type":"run","scenario":"kprobe.tracefs.openat","params":{},"keep_state":true}"#);
        assert_eq!(serde_json::from_str::<HostMsg>(&line).unwrap(), HostMsg::Run(req));
    }

    #[test]
    fn results_without_build_or_params_still_parse_and_new_ones_round_trip() {
        // A line as kmatrix wrote it before results recorded the build and the parameters.
        let old = r#"{"kernel":"debian-6.1","accel":"tcg","scenario":"kprobe.tracefs.openat","status":"pass","reason":"","counts":[],"timings":{"attach_ms":1.0,"run_ms":2.0,"detach_ms":0.5},"excerpt":""}"#;
        let r: ScenarioResult = serde_json::from_str(old).unwrap();
        assert_eq!((r.build.as_ref(), r.params.len()), (None, 0));
        // Neither is written when absent, so such a result serialises as before.
        assert!(!serde_json::to_string(&r).unwrap().contains("build"));
        let mut r = r;
        r.build = Some(KernelBuild {
            spec: "debian:6.1.176-1".into(),
            release: "6.1.0-50-amd64".into(),
            package: Some("linux-image-6.1.0-50-amd64".into()),
            ..Default::default()
        });
        r.params.insert("count".into(), "100".into());
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""build":{"spec":"debian:6.1.176-1","release":"6.1.0-50-amd64","package":"linux-image-6.1.0-50-amd64"}"#), "{line}");
        assert!(line.contains(r#""params":{"count":"100"}"#), "{line}");
        assert_eq!(serde_json::from_str::<ScenarioResult>(&line).unwrap(), r);
    }

    #[test]
    fn bounded_cuts_on_char_boundary() {
        let s = "é".repeat(10); // 20 bytes
        let b = bounded(&s, 5);
        assert!(b.starts_with("éé"));
        assert!(b.contains("[... 16 bytes cut]"), "{b}");
        assert_eq!(bounded("abc", 5), "abc");
    }

    #[test]
    fn probe_syntax_lookup_matches_prefix() {
        let caps = Capabilities {
            probe_syntaxes: vec![ProbeSyntax {
                kind: "f".into(),
                text: "f[:[<group>/][<event>]] <func-name>[%return] [<args>]".into(),
            }],
            ..Default::default()
        };
        assert!(caps.has_probe_syntax("f["));
        assert!(!caps.has_probe_syntax("e["));
    }
}
