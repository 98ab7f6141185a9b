//! Running the host's own tools (perf, trace-cmd, bpftool, ...) in the guest for `tool.*`
//! scenarios: through the host root the host shares into the guest (`share.rs`), as the agent
//! runs a user's program for `kmatrix exec` (`exec.rs`), without streaming. The requirement
//! `Req::HostProgram` has already mounted the share and checked the program exists.

use crate::{exec, share};
use anyhow::{Context, Result};
use kmatrix_proto::{ExecOutcome, ExecRequest};
use std::time::Duration;

/// The environment host tools get: a plain root shell's, nothing of the agent's own.
const ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ("HOME", "/root"),
    ("LANG", "C.UTF-8"),
    // perf asks before reading kallsyms of a kernel it did not build for, and pages its output.
    ("PAGER", "cat"),
    ("TERM", "dumb"),
];

/// Run `argv` (host paths) in the host root with cwd `/tmp` (the guest's own, writable), up to
/// `timeout`.
pub fn run(argv: &[&str], timeout: Duration) -> Result<ExecOutcome> {
    let root = share::offered().context("the host root is not shared into this guest")?;
    let req = ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        timeout_ms: timeout.as_millis() as u64,
        env: ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        cwd: Some("/tmp".into()),
        root: Some(root),
        stream: false,
        stdin: Default::default(),
        winsize: None,
    };
    exec::run(None, &req).with_context(|| format!("run {} in the host root", argv.join(" ")))
}

/// One line for a result's evidence: how the tool ended.
pub fn ended(out: &ExecOutcome) -> String {
    match (out.timed_out, out.exit_code, out.signal) {
        (true, _, _) => format!("timed out after {} ms", out.wall_ms),
        (_, Some(c), _) => format!("exit {c} in {} ms", out.wall_ms),
        (_, _, Some(s)) => format!("signal {s} after {} ms", out.wall_ms),
        _ => "no exit status".into(),
    }
}
