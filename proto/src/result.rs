//! A scenario as the catalogue lists it and its outcome on one kernel: the status vocabulary,
//! the causes of errors, counts, timings and the exact kernel build a result ran on.
//!
//! Judging (since/until, expectations) is the host's; this module only holds the shapes the
//! results file and the channel share.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// The guest's CPUs (QEMU `-smp`); filled in by the host. Absent in results written before
    /// kmatrix recorded it (those guests had one CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// The guest's memory in MiB; filled in by the host. Absent in results written before
    /// kmatrix recorded it (those guests had 512 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// The guest's scratch disk in MiB (`--disk`), when it had one; filled in by the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<u64>,
    /// How far the guest's wall clock was from the host's time sent with the request, in
    /// milliseconds (guest minus host), before the agent set it to the host's; filled in by the
    /// agent. A guest restored from a snapshot is behind by the snapshot's age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<f64>,
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
    /// For an `unsupported` whose missing requirement is the host's, not the kernel's (a host
    /// tool not installed, or refusing to run): what the host lacks (`Debian's linux-perf`).
    /// The host's verdict leaves such a result `unsupported` on every kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_lacks: Option<String>,
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
    /// The whole raw trace the scenario read (up to [`MAX_CAPTURE`] bytes), where the excerpt is
    /// only its head: what the host turns into the cell's artifacts. The host writes it to a file
    /// of its own and leaves it out of the results file (`artifacts` names that file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<Capture>,
}

/// A scenario's whole raw capture, bounded and said to be so.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Capture {
    /// What it is, for the reader (`ftrace function_graph, funcgraph-abstime`).
    pub what: String,
    /// The text, cut to [`MAX_CAPTURE`] bytes at a line end when longer.
    pub text: String,
    /// Its size before any cut.
    pub bytes: u64,
}

impl Capture {
    /// Whether the text is cut short of the whole capture.
    pub fn cut(&self) -> bool {
        (self.text.len() as u64) < self.bytes
    }
}

/// Largest capture a result carries over the channel (its line is at most `MAX_LINE`).
pub const MAX_CAPTURE: usize = 1 << 20;

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
            cpus: None,
            memory_mb: None,
            disk_mb: None,
            clock_offset_ms: None,
            build: None,
            params: BTreeMap::new(),
            scenario: scenario.to_string(),
            status,
            reason: reason.into(),
            agent_status: None,
            verdict: None,
            evidence: None,
            host_lacks: None,
            cause: None,
            previous: None,
            errno: None,
            counts: Vec::new(),
            timings: Timings::default(),
            detail: serde_json::Value::Null,
            excerpt: String::new(),
            artifacts: Vec::new(),
            capture: None,
        }
    }

    /// Set the kernel the result is of (its label in the matrix).
    pub fn on_kernel(mut self, kernel: impl Into<String>) -> Self {
        self.kernel = kernel.into();
        self
    }

    /// Set the excerpt, cut to [`MAX_EXCERPT`] bytes on a character boundary.
    pub fn with_excerpt(mut self, raw: &str) -> Self {
        self.excerpt = bounded(raw, MAX_EXCERPT);
        self
    }

    /// Keep the end of `raw` as the excerpt, bounded to [`MAX_EXCERPT`] bytes from its end: for
    /// text whose last lines say what happened (a verifier log ends with the refused instruction
    /// and the reason), which [`Self::with_excerpt`] would cut.
    pub fn with_excerpt_tail(mut self, raw: &str) -> Self {
        self.excerpt = bounded_tail(raw, MAX_EXCERPT);
        self
    }

    /// Keep the whole capture `raw` (described by `what`), cut at the last line end within
    /// [`MAX_CAPTURE`] bytes when longer: a cut never splits a line.
    pub fn with_capture(mut self, what: &str, raw: &str) -> Self {
        let text = if raw.len() <= MAX_CAPTURE {
            raw
        } else {
            let mut end = MAX_CAPTURE;
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            raw[..end].rfind('\n').map_or("", |i| &raw[..=i])
        };
        self.capture = Some(Capture { what: what.into(), text: text.into(), bytes: raw.len() as u64 });
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

/// The last `max` bytes of `s` or less, starting at a line (a line longer than that is cut on a
/// character boundary), with what was left out said first.
pub fn bounded_tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    if let Some(nl) = s[start..].find('\n').filter(|nl| start + nl + 1 < s.len()) {
        start += nl + 1;
    }
    format!("[... {} bytes cut]\n{}", start, &s[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_excerpt_keeps_the_last_line_whole() {
        let log: String = (0..500).map(|i| format!("{i}: r1 = *(u64 *)(r10 -8)\n")).collect::<String>()
            + "invalid func unknown#195896080\n";
        let r = ScenarioResult::new("x", Status::Fail, "").with_excerpt_tail(&log);
        assert!(r.excerpt.len() <= MAX_EXCERPT + 40, "{}", r.excerpt.len());
        assert!(r.excerpt.ends_with("invalid func unknown#195896080\n"), "{}", r.excerpt);
        assert!(r.excerpt.starts_with("[... ") && r.excerpt.lines().nth(1).unwrap().ends_with("(r10 -8)"));
        // The head-kept excerpt loses it: why verifier logs take the tail.
        let head = ScenarioResult::new("x", Status::Fail, "").with_excerpt(&log);
        assert!(!head.excerpt.contains("invalid func"));
        assert_eq!(bounded_tail("short", 10), "short");
    }

    #[test]
    fn results_without_build_or_params_still_parse_and_new_ones_round_trip() {
        // A line as kmatrix wrote it before results recorded the build and the parameters.
        let old = r#"{"kernel":"debian-6.1","accel":"tcg","scenario":"kprobe.tracefs.openat","status":"pass","reason":"","counts":[],"timings":{"attach_ms":1.0,"run_ms":2.0,"detach_ms":0.5},"excerpt":""}"#;
        let r: ScenarioResult = serde_json::from_str(old).unwrap();
        assert_eq!((r.build.as_ref(), r.params.len()), (None, 0));
        // Neither is written when absent, so such a result serialises as before.
        assert!(!serde_json::to_string(&r).unwrap().contains("build"));
        assert_eq!((r.cpus, r.memory_mb, r.clock_offset_ms), (None, None, None));
        let mut r = r;
        r.build = Some(KernelBuild {
            spec: "debian:6.1.176-1".into(),
            release: "6.1.0-50-amd64".into(),
            package: Some("linux-image-6.1.0-50-amd64".into()),
            ..Default::default()
        });
        r.params.insert("count".into(), "100".into());
        (r.cpus, r.memory_mb, r.clock_offset_ms) = (Some(2), Some(512), Some(-2_820_000.5));
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""cpus":2,"memory_mb":512,"clock_offset_ms":-2820000.5"#), "{line}");
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
}
