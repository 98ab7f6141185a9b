//! What the openat scenarios of every family share: the `openat-loop` workload, its parameters
//! and summary line, and the kernel function on the openat path.
//!
//! `openat-loop N PATH` makes exactly N `openat` syscalls once released from its start gate and
//! prints `openat-loop: ok=K failed=F fd=D errno=E ptr=P`, K and F what the kernel answered (an
//! fd returned, -1 returned), never a tally of its own loop. Scenarios compare the tracing path's
//! count with N and the kernel's answers with N ([`counts`]): each count has a witness of its own.
//! Not for the other workloads (`support::workload`).

use super::verdict::count;
use crate::process::{self, Finished, Running};
use crate::scenario::meta::{Ctx, Meta};
use crate::scenario::req::Req;
use anyhow::{bail, Context, Result};
use kmatrix_proto::Count;

pub const OPENAT_LOOP: &str = "/bin/openat-loop";
/// The workload in the image: what every openat scenario requires.
pub const IN_IMAGE: Req = Req::Program(OPENAT_LOOP);
/// The file the workload opens; created by the agent so every call succeeds.
pub const DEFAULT_PATH: &str = "/tmp/kmatrix-openat";
/// The parameters of the tracefs and perf openat scenarios: 100 calls on the default path.
pub const PARAMS_100: &[(&str, &str)] = &[("count", "100"), ("path", DEFAULT_PATH)];
/// The same with 20 calls, for scenarios whose entries are large (stacks, nested calls).
pub const PARAMS_20: &[(&str, &str)] = &[("count", "20"), ("path", DEFAULT_PATH)];

impl Meta {
    /// A scenario on `openat-loop`: the workload in the image, required after the scenario's
    /// own requirements ([`Meta::requires_last`]), and its parameters `params` (`count`, and
    /// `path` where the scenario opens a file of the user's choice: [`PARAMS_100`]).
    pub const fn on_openat_loop(self, params: &'static [(&'static str, &'static str)]) -> Meta {
        self.requires_last(IN_IMAGE).params(params)
    }
}

/// The workload's account of what the kernel answered it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The openat calls that returned an fd.
    pub ok: u64,
    /// Those that returned -1.
    pub failed: u64,
    /// The fd the last successful call returned (-1 when none did).
    pub fd: i64,
    pub errno: i64,
    /// The user address of PATH the calls passed as `filename` (0 when not printed).
    pub ptr: u64,
}

/// Parse `openat-loop: ok=K failed=F fd=D errno=E ptr=0x...` from the workload's stdout; a line
/// without `ok=` and `failed=` is not a summary (its counts would read as zeros).
pub fn summary(stdout: &str) -> Result<Summary> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("openat-loop:"))
        .with_context(|| format!("no summary line in openat-loop output {stdout:?}"))?;
    let mut s = Summary::default();
    let (mut ok, mut failed) = (false, false);
    for kv in line.split_whitespace().skip(1) {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        if k == "ptr" {
            let hex = v.trim_start_matches("0x");
            s.ptr = u64::from_str_radix(hex, 16).with_context(|| format!("bad ptr in summary {line:?}"))?;
            continue;
        }
        let n: i64 = v.parse().with_context(|| format!("bad value in summary {line:?}"))?;
        match k {
            "ok" => (s.ok, ok) = (n as u64, true),
            "failed" => (s.failed, failed) = (n as u64, true),
            "fd" => s.fd = n,
            "errno" => s.errno = n,
            _ => {}
        }
    }
    anyhow::ensure!(ok && failed, "summary line without ok= and failed=: {line:?}");
    Ok(s)
}

/// The workload's account of a finished run; an unreadable summary is a problem (and zero
/// counts, which the verdict then shows), never a silent default.
pub fn account(done: &Finished, problems: &mut Vec<String>) -> Summary {
    summary(&done.stdout).unwrap_or_else(|e| {
        problems.push(format!("{e:#}"));
        Summary::default()
    })
}

/// What the kernel answered the workload, against N: the openat calls that returned an fd.
pub fn made(n: u64, s: &Summary) -> Vec<Count> {
    vec![count("openat calls that succeeded", n, s.ok)]
}

/// [`made`], and the tracing path's count `seen` of the workload's calls (`what`) against N.
pub fn counts(n: u64, s: &Summary, what: impl Into<String>, seen: u64) -> Vec<Count> {
    let what = what.into();
    let mut out = made(n, s);
    out.push(count(what, n, seen));
    out
}

/// What an openat scenario starts from: its declared count N, the path the workload opens (see
/// [`target_path`]) and the function on the openat path ([`symbol`]).
pub fn prepare(ctx: &Ctx) -> Result<(u64, String, &'static str)> {
    let (n, path) = declared(ctx)?;
    let sym = symbol(ctx)?;
    Ok((n, path, sym))
}

/// [`prepare`] without the function: the declared count N and the path the workload opens.
pub fn declared(ctx: &Ctx) -> Result<(u64, String)> {
    Ok((ctx.declared_count()?, target_path(ctx)?))
}

/// The path the workload opens (`path` parameter), created empty when missing.
pub fn target_path(ctx: &Ctx) -> Result<String> {
    let path = ctx.params.get("path").cloned().unwrap_or_else(|| DEFAULT_PATH.to_string());
    if !std::path::Path::new(&path).exists() {
        std::fs::write(&path, b"").with_context(|| format!("create({path}) failed"))?;
    }
    Ok(path)
}

/// Grow the ring buffer when N entries of about `entry_bytes` would not fit the default, so a
/// large count is not lost to overwriting (the size is restored by the reset).
pub fn fit_buffer(ctx: &mut Ctx, n: u64, entry_bytes: u64) -> Result<()> {
    let need_kb = n * entry_bytes / 1024 + 512;
    let now_kb: u64 =
        ctx.tfs.read("buffer_size_kb")?.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(0);
    if need_kb > now_kb {
        ctx.tfs.set_buffer_size_kb(need_kb)?;
    }
    Ok(())
}

/// Start `openat-loop N PATH`, blocked on its gate until [`Running::release`].
pub fn start(n: u64, path: &str) -> Result<Running> {
    process::spawn(&[OPENAT_LOOP.to_string(), n.to_string(), path.to_string()], true)
}

/// The function on the openat path that kprobes and the function tracer attach to:
/// `do_sys_openat2` (5.6 and later) when the kernel has it, else `do_sys_open`.
pub fn symbol(ctx: &Ctx) -> Result<&'static str> {
    for sym in ["do_sys_openat2", "do_sys_open"] {
        if has_function(ctx, sym)? {
            return Ok(sym);
        }
    }
    bail!("neither do_sys_openat2 nor do_sys_open in available_filter_functions or /proc/kallsyms")
}

fn has_function(ctx: &Ctx, sym: &str) -> Result<bool> {
    if traceable(ctx, sym) {
        return Ok(true);
    }
    // Without dynamic ftrace there is no available_filter_functions; kprobes still work.
    crate::kallsyms::has(sym)
}

/// Whether `sym` (one of `tracefs::functions::WATCHED`) is in available_filter_functions.
pub fn traceable(ctx: &Ctx, sym: &str) -> bool {
    crate::tracefs::functions::get(ctx.tfs.path("").as_path()).contains(sym)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::support::verdict::verdict;
    use kmatrix_proto::ExecOutcome;

    #[test]
    fn parses_the_summary_line() {
        let s = summary("openat-loop: ok=100 failed=0 fd=3 errno=0 ptr=0x7ffe97af1f7b\n").unwrap();
        assert_eq!(s, Summary { ok: 100, failed: 0, fd: 3, errno: 0, ptr: 0x7ffe97af1f7b });
        assert_eq!(summary("openat-loop: ok=1 failed=0 fd=3 errno=0").unwrap().ptr, 0);
        assert!(summary("nothing").is_err());
        assert!(summary("openat-loop: ok=x").is_err());
        // The loop's own tally (the old format) is no account of what the kernel answered.
        assert!(summary("openat-loop: calls=100 ok=100 fd=3 errno=0").is_err());
    }

    /// The summary of `openat-loop 5 /nonexistent`, as the workload prints it.
    const FAILED_OPENS: &str = "openat-loop: ok=0 failed=5 fd=-1 errno=2 ptr=0x7ffd32723a16\n";

    #[test]
    fn calls_that_fail_in_the_workload_fail_the_verdict() {
        let s = summary(FAILED_OPENS).unwrap();
        // The kernel saw all 5 calls: the path works, the workload's opens did not.
        let c = counts(5, &s, "entries", 5);
        let r = verdict("x", c, Vec::new());
        assert_eq!(r.status, kmatrix_proto::Status::Fail);
        assert_eq!(r.reason, "openat calls that succeeded: expected 5, observed 0");
        // A path that missed one of the calls fails against N.
        let ok = summary("openat-loop: ok=5 failed=0 fd=3 errno=0\n").unwrap();
        let r = verdict("x", counts(5, &ok, "entries", 4), Vec::new());
        assert_eq!(r.reason, "entries: expected 5, observed 4");
        assert_eq!(verdict("x", counts(5, &ok, "entries", 5), Vec::new()).status, kmatrix_proto::Status::Pass);
    }

    #[test]
    fn an_unreadable_summary_is_a_problem() {
        let outcome = ExecOutcome { exit_code: Some(0), stdout: "openat-loop: nothing\n".into(), ..Default::default() };
        let done = Finished { outcome, wall: std::time::Duration::ZERO };
        let mut problems = Vec::new();
        assert_eq!(account(&done, &mut problems), Summary::default());
        assert_eq!(problems.len(), 1);
    }
}
