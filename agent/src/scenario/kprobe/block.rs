//! `kprobe.block.start_request`: a kprobe on the block layer's request path
//! (`blk_mq_start_request`, where a driver takes a request to the device) while `direct-io N`
//! writes then reads N blocks of 4 KiB with `O_DIRECT` on the scratch disk (`--disk`, or the
//! fitted guest a plain run gives it). The guest has no other block I/O (its root is the
//! initramfs, the host's is a network file system), so the probe fires exactly 2N times: in the
//! trace, in `kprobe_profile`, against the workload's own counts and the block layer's
//! accounting (`/sys/block/vda/stat`). The request path's tracepoints are `ftrace/block.rs`.

use crate::disk::{stat, DISK};
use crate::excerpt;
use crate::process;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::{run_with_events, trace_problems};
use crate::scenario::support::probe_events::{profile_of, GROUP, KPROBE_EVENTS};
use crate::scenario::support::verdict::count;
use crate::scenario::support::workload::{self, DIRECT_IO};
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

const SYMBOL: &str = "blk_mq_start_request";
const EVENT: &str = "blk_start";

// blk-mq and its start_request from 3.13; kprobe_events from 2.6.33.
pub const START_REQUEST: Scenario = Meta::new("kprobe.block.start_request", "3.13")
    .summary(
        "p: on blk_mq_start_request while direct-io writes then reads N blocks with O_DIRECT on the scratch disk: \
         2N hits in the trace and kprobe_profile == the workload's requests == /sys/block/vda/stat",
    )
    .requires(&[Req::BlockDevice(DISK), KPROBE_EVENTS, Req::Symbol(SYMBOL), Req::Program(DIRECT_IO)])
    .params(&[("count", "32")])
    .run(run);

fn run(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let argv = vec![DIRECT_IO.to_string(), n.to_string(), format!("/dev/{DISK}")];
    ctx.tfs.write("kprobe_events", &format!("p:{GROUP}/{EVENT} {SYMBOL}"))?;
    let ev = format!("{GROUP}/{EVENT}");
    let attach = Instant::now();
    let w = process::spawn(&argv, true)?;
    let before = stat(DISK)?;
    // No filter: every request the guest starts is the workload's ("0" clears a filter).
    let a = run_with_events(ctx, w, attach, &[(&ev, "0".to_string())])?;
    let after = stat(DISK)?;
    let text = ctx.tfs.read("trace")?;
    let (_, prof) = profile_of(ctx, GROUP, EVENT)?;
    let parsed = trace::parse(&text);
    let mut problems = trace_problems(&a.done, parsed.lost);
    let entries = parsed.entries.iter().filter(|e| e.body.starts_with(&format!("{EVENT}: "))).count() as u64;
    let requests = 2 * n;
    let mut counts = workload::direct_io_counts(&a.done.stdout, n, (before, after), &mut problems);
    counts.extend([
        count(format!("{ev} entries in the trace"), requests, entries),
        count("kprobe_profile hits", requests, prof.hits),
        count("kprobe_profile misses", 0, prof.misses),
    ]);
    let mut r = a.verdict(ctx.id(), counts, problems);
    r.detail =
        serde_json::json!({ "symbol": SYMBOL, "stat_before": [before.0, before.1], "stat_after": [after.0, after.1] });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 8)))
}
