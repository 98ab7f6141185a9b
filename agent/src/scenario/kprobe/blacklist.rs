//! `kprobe.blacklist.*`: the kprobe blacklist (debugfs `kprobes/blacklist`,
//! Documentation/trace/kprobes.rst, "Blacklist"): a probe on a listed symbol is refused.

use crate::excerpt;
use crate::mounts::DEBUGFS;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::probe_events::GROUP;
use crate::scenario::support::verdict::{count, ms, verdict};
use anyhow::{bail, Context, Result};
use kmatrix_proto::{ScenarioResult, Status};
use std::time::Instant;

/// Preferred victims: blacklisted on every kernel (they run inside kprobe handling itself).
const PREFERRED: &[&str] = &["kprobe_int3_handler", "exc_int3", "do_int3", "notify_die"];

/// A kprobe on a symbol in the kprobe blacklist is refused with EINVAL and leaves no event.
// debugfs kprobes/blacklist came in 3.16.
pub const REFUSED: Scenario = Meta::new("kprobe.blacklist.refused", "3.16")
    .summary("p: on a symbol of the kprobe blacklist: refused with EINVAL, no event left")
    .requires(&[Req::Tracefs, Req::File("kprobe_events"), Req::Debugfs("kprobes/blacklist")])
    .run(refused);

fn refused(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let path = format!("{DEBUGFS}/kprobes/blacklist");
    let blacklist = std::fs::read_to_string(&path).with_context(|| format!("read({path}) failed"))?;
    let listed: Vec<&str> = blacklist.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").context("read(/proc/kallsyms) failed")?;
    let is_function = |s: &str| {
        kallsyms.lines().any(|l| {
            let mut it = l.split_whitespace();
            let kind = it.nth(1).unwrap_or("");
            (kind == "T" || kind == "t") && it.next() == Some(s) && it.next().is_none()
        })
    };
    let Some(sym) =
        PREFERRED.iter().copied().chain(listed.iter().copied()).find(|s| listed.contains(s) && is_function(s))
    else {
        bail!("no blacklisted symbol found in /proc/kallsyms ({} entries)", listed.len());
    };
    let definition = format!("p:{GROUP}/blacklisted {sym}");
    let attach = Instant::now();
    let outcome = ctx.tfs.write("kprobe_events", &definition);
    let attach_ms = ms(attach);
    let left = ctx.tfs.read("kprobe_events")?;
    let error_log = ctx.tfs.error_log();
    let left_lines = left.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    let errno = outcome.as_ref().err().map(|e| e.errno);
    let mut problems = Vec::new();
    match errno {
        Some(libc::EINVAL) => {}
        Some(e) => problems.push(format!("write refused with {}, expected EINVAL", crate::sys::errno_text(e))),
        None => problems.push(format!("kernel accepted {definition:?}")),
    }
    let mut r = verdict(ctx.id(), vec![count("kprobe_events lines after the refused write", 0, left_lines)], problems);
    r.errno = errno;
    r.timings.attach_ms = attach_ms;
    r.detail = serde_json::json!({
        "symbol": sym,
        "definition": definition,
        "blacklist_entries": listed.len(),
    });
    if r.status == Status::Pass {
        r.reason = format!("refused: {}", crate::sys::errno_text(libc::EINVAL));
    }
    Ok(r.with_excerpt(&excerpt::head(&error_log, 20)))
}
