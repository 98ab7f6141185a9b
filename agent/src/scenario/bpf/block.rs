//! `bpf.block.*`: BPF on the block layer's request tracepoints, on the scratch disk.
//!
//! `rq_latency`: biolatency's histogram (`block.bpf.c`): `block:block_rq_issue` stores each
//! data request's issue time by (dev, sector), `block:block_rq_complete` puts its latency in a
//! log2 bucket of microseconds, for the scratch disk only, while `direct-io N /dev/vda` writes
//! then reads N blocks of 4 KiB with `O_DIRECT`. The histogram's total must be exactly the 2N
//! I/Os the kernel answered the workload, and the block layer's own accounting
//! (`/sys/block/vda/stat`) must have moved by N each way; no completion may lack its issue.

use crate::bpf::{self, Loaded};
use crate::disk::{dev_t, stat, DISK};
use crate::process;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::bpf::{attach, detach, guarded, Hook, TRACEPOINT_SINCE};
use crate::scenario::support::gated::workload_problems;
use crate::scenario::support::verdict::{count, ms, verdict};
use crate::scenario::support::workload::{self, DIRECT_IO};
use anyhow::{Context, Result};
use aya::maps::{Array, MapData};
use kmatrix_proto::{ScenarioResult, Timings};
use std::time::Instant;

const ISSUE: &str = "block_issue";
const COMPLETE: &str = "block_complete";
/// The `km_config` slot of the disk's `dev_t` (`KM_CFG_DEV` in block.bpf.c).
const CFG_DEV: u32 = 1;
/// Buckets of `km_hist` (`KM_HIST_SLOTS`).
const SLOTS: u32 = 64;

// Tracepoint programs came in 4.7; block_rq_issue/complete and BPF hash maps are older.
pub const RQ_LATENCY: Scenario = Meta::new("bpf.block.rq_latency", TRACEPOINT_SINCE)
    .summary(
        "biolatency-style log2 histogram from BPF on block:block_rq_issue/complete of the scratch disk while \
         direct-io writes then reads N blocks with O_DIRECT: its total is exactly the 2N I/Os, == /sys/block/vda/stat",
    )
    .requires(&[
        Req::BlockDevice(DISK),
        Req::Event("block/block_rq_issue"),
        Req::Event("block/block_rq_complete"),
        Req::Program(DIRECT_IO),
    ])
    .params(&[("count", "32")])
    .run(run);

fn run(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let id = ctx.id();
    guarded(id, || {
        let n = ctx.declared_count()?;
        let dev = dev_t(DISK)?;
        let argv = vec![DIRECT_IO.to_string(), n.to_string(), format!("/dev/{DISK}")];
        let t = Instant::now();
        let mut w = process::spawn(&argv, true)?;
        let pid = w.pid() as u32;
        let mut l = Loaded::new(bpf::BLOCK, pid)?;
        let config = l.ebpf.map_mut("km_config").context("block.bpf.o has no km_config map")?;
        bpf::object::write_config(config, CFG_DEV, dev)?;
        let load_ms = attach(&mut l, ISSUE, &Hook::TracePoint("block", "block_rq_issue"))?
            + attach(&mut l, COMPLETE, &Hook::TracePoint("block", "block_rq_complete"))?;
        let attach_ms = ms(t);
        let before = stat(DISK)?;
        let t = Instant::now();
        w.release()?;
        let done = w.finish(ctx.timeout()?)?;
        let run_ms = ms(t);
        let after = stat(DISK)?;
        let hits = l.counts()?;
        let hist: Vec<u64> = {
            let map = l.ebpf.map("km_hist").context("block.bpf.o has no km_hist map")?;
            let array: Array<&MapData, u64> = Array::try_from(map).context("km_hist is not an array of u64")?;
            (0..SLOTS)
                .map(|i| array.get(&i, 0).with_context(|| format!("bpf_map_lookup_elem(km_hist[{i}]) failed")))
                .collect::<Result<_>>()?
        };
        let t = Instant::now();
        detach(&mut l, ISSUE)?;
        detach(&mut l, COMPLETE)?;
        drop(l);
        let detach_ms = ms(t);

        let mut problems = workload_problems(&done);
        let total: u64 = hist.iter().sum();
        let mut c = workload::direct_io_counts(&done.stdout, n, (before, after), &mut problems);
        c.extend([
            count("requests issued on the disk (block_issue)", 2 * n, hits.hits),
            count("latencies in the histogram (block_complete)", 2 * n, total),
            count("completions without their issue", 0, hits.dropped),
        ]);
        let mut r = verdict(id, c, problems);
        r.timings = Timings { attach_ms, run_ms, detach_ms };
        let buckets: Vec<String> = hist
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0)
            .map(|(i, v)| format!("{:>8} -> {:<8} usecs: {v}", if i == 0 { 0 } else { 1u64 << i }, (2u64 << i) - 1))
            .collect();
        r.detail = serde_json::json!({
            "object": bpf::BLOCK.name,
            "programs": [ISSUE, COMPLETE],
            "dev": dev,
            "pid": pid,
            "histogram_log2_usecs": hist,
            "issues_of_other_disks": hits.others,
            "stat_before": [before.0, before.1],
            "stat_after": [after.0, after.1],
            "verifier_load_ms": load_ms,
        });
        Ok(r.with_excerpt(&buckets.join("\n")))
    })
}
