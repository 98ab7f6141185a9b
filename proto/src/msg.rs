//! The messages of the guest channel (JSON lines, one message a line) and what they carry: the
//! run and exec requests, the host root share, a program's outcome.
//!
//! Not the capability record ([`crate::Capabilities`]) or the scenario result
//! ([`crate::ScenarioResult`]): messages only carry them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::{Capabilities, ScenarioResult};

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
    /// Answer to `HostMsg::Warm`: the agent's one-time work is done.
    Warmed {
        /// Milliseconds it took.
        ms: f64,
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
    /// Do now the one-time work the first scenario of its kind would do (parse the kernel's
    /// BTF, probe the BPF features the loader needs), so that a snapshot taken next holds it
    /// and every guest restored from it starts warm. Answered by `GuestMsg::Warmed`.
    Warm,
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
    /// The host's wall-clock time when it sent the request (ns since the epoch): the agent sets
    /// the guest's clock to it first (a guest restored from a snapshot keeps the snapshot's
    /// time otherwise) and records how far off it was (`ScenarioResult::clock_offset_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_time_ns: Option<u64>,
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
    /// The host's wall-clock time when it sent the request (ns since the epoch), as
    /// [`RunRequest::host_time_ns`]; the offset corrected is `ExecOutcome::clock_offset_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_time_ns: Option<u64>,
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
    /// Host directories shared besides the root, each its own device of the same kind.
    #[serde(default)]
    pub extra: Vec<ShareMount>,
    /// Why the host chose `fs` (said in `ExecOutcome::share`).
    #[serde(default)]
    pub why: String,
    /// The running kernel's headers (Debian's `linux-headers` packages merged into one header
    /// tree by the host, in its cache) as a host path, which the guest reaches through the host
    /// root; tools that compile against the kernel get it as `BCC_KERNEL_SOURCE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<String>,
    /// Why the host has no headers for this kernel (a local kernel, a suite without them, a
    /// failed download), when a scenario wanted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_missing: Option<String>,
    /// The running kernel's `lib/modules/<release>` with `depmod`'s indexes, made by the host
    /// in its cache, as a host path: the agent shows it at `/lib/modules/<release>` of the
    /// view (with `build` → `headers` when there are headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<String>,
    /// Link the module files too (`kernel/`, beside the indexes), for `modprobe` and `modinfo`:
    /// programs the user runs get them (`exec`, `shell`). The judged scenarios go without:
    /// perf stats every file under `/lib/modules/<release>` at each start, 4,700 lookups over
    /// the share that cost 48 s on 5.10 under TCG (9 s on 6.1), which would be most of a
    /// `tool.perf.*` cell.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub module_files: bool,
}

/// An extra shared directory: its device's tag, mounted at `path` of the guest's view of the host
/// root (`--rw DIR`: the host path itself, writable).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShareMount {
    /// Its device's mount tag.
    pub tag: String,
    /// Absolute path in the view (under the host root's mount point in the guest).
    pub path: String,
    /// Mounted read-only (`MS_RDONLY`), else writable.
    pub readonly: bool,
}

/// The variables that point tools at the kernel's headers, set to `Share::headers` for programs
/// run in the view: BCC's and bpftrace's (bpftrace otherwise looks in `/lib/modules/<release>`
/// or uses the host's UAPI headers, which do not match the guest's kernel).
pub const HEADERS_ENV: &[&str] = &["BCC_KERNEL_SOURCE", "BPFTRACE_KERNEL_SOURCE"];

/// Where an external BTF (`--btf FILE`, as BTFHub supplies for kernels built without
/// `CONFIG_DEBUG_INFO_BTF`) sits in the guest image. The agent relocates CO-RE objects against
/// it when the kernel has no `/sys/kernel/btf/vmlinux` of its own.
pub const EXTERNAL_BTF: &str = "/kmatrix/vmlinux.btf";

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
    /// How far the guest's clock was from the host's time in the request (ms, guest minus
    /// host) before the agent set it, when the request carried the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<f64>,
    /// Milliseconds from the request's arrival to the program's spawn: mounting the host root
    /// (the first request of a guest), showing host paths, resolving the program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_ms: Option<u64>,
}

impl ExecOutcome {
    /// Whether it exited 0 within its time.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// `exit 3`, `signal 9`, `timed out`: how it ended, for failure reasons.
    pub fn describe(&self) -> String {
        match (self.timed_out, self.exit_code, self.signal) {
            (true, _, _) => "timed out".to_string(),
            (_, Some(c), _) => format!("exit {c}"),
            (_, _, Some(s)) => format!("signal {s}"),
            _ => "unknown end".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Capabilities, KernelIdentity};

    #[test]
    fn messages_round_trip_as_tagged_json_lines() {
        let msg = GuestMsg::Hello {
            proto: PROTO_VERSION,
            caps: Box::new(Capabilities {
                kernel: KernelIdentity { release: "6.1.0-47-amd64".into(), ..Default::default() },
                ..Default::default()
            }),
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
        assert_eq!(serde_json::from_str::<HostMsg>(&line).unwrap(), HostMsg::Run(req.clone()));
        req.host_time_ns = Some(1_796_000_000_123_456_789);
        let line = serde_json::to_string(&HostMsg::Run(req.clone())).unwrap();
        assert!(line.ends_with(r#""keep_state":true,"host_time_ns":1796000000123456789}"#), "{line}");
        assert_eq!(serde_json::from_str::<HostMsg>(&line).unwrap(), HostMsg::Run(req));
        // An exec request of an older host (no time) still parses: the agent then leaves the clock.
        let old = r#"{"type":"exec","argv":["/bin/true"],"timeout_ms":0}"#;
        let HostMsg::Exec(e) = serde_json::from_str::<HostMsg>(old).unwrap() else { panic!("not exec") };
        assert_eq!(e.host_time_ns, None);
    }
}
