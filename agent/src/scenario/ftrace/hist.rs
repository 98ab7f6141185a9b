//! `ftrace.hist.*`: hist triggers on events (Documentation/trace/histogram.rst).
//!
//! Not for plain event counting through `trace` (`event.rs`).

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::{release_and_disarm, workload_problems};
use crate::scenario::support::openat_loop;
use crate::tracefs::hist;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

const OPENAT: &str = "syscalls/sys_enter_openat";

/// A hist trigger `hist:keys=common_pid` on sys_enter_openat: the workload's pid has hitcount
/// N, and nothing is dropped.
// Hist triggers came in 4.7.
pub const SYS_ENTER_OPENAT: Scenario = Meta::new("ftrace.hist.sys_enter_openat", "4.7")
    .summary("hist:keys=common_pid trigger on syscalls/sys_enter_openat: the workload pid's hitcount is N")
    .requires(&[
        Req::Tracefs,
        Req::Event(OPENAT),
        Req::Config { option: "CONFIG_HIST_TRIGGERS", tracefs: "events/syscalls/sys_enter_openat/hist" },
    ])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(sys_enter_openat);

fn sys_enter_openat(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path) = openat_loop::declared(ctx)?;
    let trigger = "hist:keys=common_pid";
    let attach = Instant::now();
    let w = openat_loop::start(n, &path)?;
    // The trigger arms the event (soft-enabled) until it is removed again by the reset.
    ctx.tfs.add_trigger(OPENAT, trigger)?;
    let a = release_and_disarm(ctx, w, attach, |_| Ok(()))?;
    let pid = a.pid;
    let text = ctx.tfs.read(&format!("events/{OPENAT}/hist"))?;
    let h = hist::parse(&text);
    let mut problems = workload_problems(&a.done);
    let summary = openat_loop::account(&a.done, &mut problems);
    if h.dropped != Some(0) {
        problems.push(format!("hist Dropped: {:?}, expected 0", h.dropped));
    }
    let hits = h.hitcount("common_pid", pid as i64).unwrap_or(0);
    let counts = openat_loop::counts(n, &summary, format!("hitcount of common_pid {pid}"), hits);
    let mut r = a.verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({ "pid": pid, "trigger": trigger, "keys": h.entries.len(), "hits": h.hits });
    Ok(r.with_excerpt(&excerpt::head(&text, 16)))
}
