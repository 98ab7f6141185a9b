//! What the openat scenarios of every family share: the `openat-loop` workload, its parameters
//! and summary line, and the kernel function on the openat path.
//!
//! `openat-loop N PATH` makes exactly N `openat` syscalls once released from its start gate and
//! prints `openat-loop: calls=N ok=K fd=F errno=E ptr=P`; scenarios compare their counts with
//! those numbers and with N. Not for the other workloads (`support::workload`).

use crate::process::{self, Running};
use crate::scenario::meta::Ctx;
use crate::scenario::req::Req;
use anyhow::{bail, Context, Result};

pub const OPENAT_LOOP: &str = "/bin/openat-loop";
/// The workload in the image: what every openat scenario requires.
pub const IN_IMAGE: Req = Req::Program(OPENAT_LOOP);
/// The file the workload opens; created by the agent so every call succeeds.
const DEFAULT_PATH: &str = "/tmp/kmatrix-openat";
/// The parameters of the tracefs and perf openat scenarios: 100 calls on the default path.
pub const PARAMS_100: &[(&str, &str)] = &[("count", "100"), ("path", DEFAULT_PATH)];
/// The same with 20 calls, for scenarios whose entries are large (stacks, nested calls).
pub const PARAMS_20: &[(&str, &str)] = &[("count", "20"), ("path", DEFAULT_PATH)];

/// The workload's own account of what it did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub calls: u64,
    pub ok: u64,
    /// The fd the last successful call returned (-1 when none did).
    pub fd: i64,
    pub errno: i64,
    /// The user address of PATH the calls passed as `filename` (0 when not printed).
    pub ptr: u64,
}

/// Parse `openat-loop: calls=N ok=K fd=F errno=E ptr=0x...` from the workload's stdout.
pub fn summary(stdout: &str) -> Result<Summary> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("openat-loop:"))
        .with_context(|| format!("no summary line in openat-loop output {stdout:?}"))?;
    let mut s = Summary::default();
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
            "calls" => s.calls = n as u64,
            "ok" => s.ok = n as u64,
            "fd" => s.fd = n,
            "errno" => s.errno = n,
            _ => {}
        }
    }
    Ok(s)
}

/// What an openat scenario starts from: its declared count N, the path the workload opens (see
/// [`target_path`]) and the function on the openat path ([`symbol`]).
pub fn prepare(ctx: &Ctx) -> Result<(u64, String, &'static str)> {
    let n = ctx.declared_count()?;
    let path = target_path(ctx)?;
    let sym = symbol(ctx)?;
    Ok((n, path, sym))
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

    #[test]
    fn parses_the_summary_line() {
        let s = summary("openat-loop: calls=100 ok=100 fd=3 errno=0 ptr=0x7ffe97af1f7b\n").unwrap();
        assert_eq!(s, Summary { calls: 100, ok: 100, fd: 3, errno: 0, ptr: 0x7ffe97af1f7b });
        assert_eq!(summary("openat-loop: calls=1 ok=1 fd=3 errno=0").unwrap().ptr, 0);
        assert!(summary("nothing").is_err());
        assert!(summary("openat-loop: calls=x").is_err());
    }
}
