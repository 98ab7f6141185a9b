//! `ftrace.event.block_rq_direct_io`: the block layer's request tracepoints
//! (`block:block_rq_issue`, `block:block_rq_complete`) on the scratch disk (`--disk SIZE`, a
//! virtio-blk device nothing else uses), filtered to its `dev`, while `direct-io N /dev/vda`
//! writes then reads N blocks of 4 KiB with `O_DIRECT`: exactly N write and N read requests of 8
//! sectors each are issued and completed, one per block at its own sector, and the block layer's
//! own accounting (`/sys/block/vda/stat`, completed reads and writes) moves by N each.
//!
//! Needs the disk: without `--disk` the guest has no block device and the scenario is
//! `unsupported` with the `/sys/block` listing as evidence.

use crate::disk::{dev_t, stat, DISK};
use crate::excerpt;
use crate::process;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::{self, trace_problems};
use crate::scenario::support::verdict::count;
use crate::scenario::support::workload::{self, DIRECT_IO};
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::collections::BTreeSet;
use std::time::Instant;

const ISSUE: &str = "block/block_rq_issue";
const COMPLETE: &str = "block/block_rq_complete";

// block_rq_issue/complete as TRACE_EVENTs with a dev field date from 2.6.31; the dev filter on
// a dev_t field works from the same release.
pub const DIRECT_IO_RQ: Scenario = Meta::new("ftrace.event.block_rq_direct_io", "2.6.31")
    .summary(
        "block:block_rq_issue/complete filtered to the scratch disk while direct-io writes then reads N blocks \
         with O_DIRECT: N write and N read requests of 8 sectors, each at its own sector, == /sys/block/vda/stat",
    )
    .requires(&[Req::BlockDevice(DISK), Req::Tracefs, Req::Event(ISSUE), Req::Event(COMPLETE), Req::Program(DIRECT_IO)])
    .params(&[("count", "32")])
    .run(run);

/// One request as a block event prints it: `254,0 WS 4096 () 8 + 8 [direct-io]` (issue),
/// `254,0 WS () 8 + 8 [0]` (complete): its rwbs and its sector and length.
#[derive(Debug, PartialEq, Eq)]
pub struct Rq {
    pub rwbs: String,
    pub sector: u64,
    pub sectors: u64,
}

/// The request an event body (after `block_rq_issue: `) describes, `None` when it has no
/// `SECTOR + N` part (a flush).
pub fn parse_rq(body: &str) -> Option<Rq> {
    let (_, rest) = body.split_once(": ")?;
    let t: Vec<&str> = rest.split_whitespace().collect();
    let plus = t.iter().position(|w| *w == "+")?;
    Some(Rq {
        rwbs: t.get(1)?.to_string(),
        sector: t.get(plus.checked_sub(1)?)?.parse().ok()?,
        sectors: t.get(plus + 1)?.parse().ok()?,
    })
}

fn run(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let dev = dev_t(DISK)?;
    let argv = vec![DIRECT_IO.to_string(), n.to_string(), format!("/dev/{DISK}")];
    let attach = Instant::now();
    let w = process::spawn(&argv, true)?;
    let before = stat(DISK)?;
    let filter = format!("dev == {dev}");
    let a = gated::run_with_events(ctx, w, attach, &[(ISSUE, filter.clone()), (COMPLETE, filter.clone())])?;
    let after = stat(DISK)?;
    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let mut problems = trace_problems(&a.done, parsed.lost);
    let rqs = |event: &str, dir: char| -> Vec<Rq> {
        parsed
            .entries
            .iter()
            .filter(|e| e.body.starts_with(event))
            .filter_map(|e| parse_rq(e.body))
            .filter(|r| r.rwbs.starts_with(dir) && r.sectors == 8)
            .collect()
    };
    let sectors = |v: &[Rq]| v.iter().map(|r| r.sector).collect::<BTreeSet<u64>>();
    let wanted: BTreeSet<u64> = (0..n).map(|i| i * 8).collect();
    let mut counts = workload::direct_io_counts(&a.done.stdout, n, (before, after), &mut problems);
    for (event, name) in [("block_rq_issue:", "block_rq_issue"), ("block_rq_complete:", "block_rq_complete")] {
        for (dir, what) in [('W', "write"), ('R', "read")] {
            let v = rqs(event, dir);
            counts.push(count(format!("{name} {what} requests of 8 sectors"), n, v.len() as u64));
            let at = sectors(&v).intersection(&wanted).count() as u64;
            counts.push(count(format!("{name} {what} requests at the workload's distinct sectors"), n, at));
        }
    }
    let mut r = a.verdict(ctx.id(), counts, std::mem::take(&mut problems));
    r.detail = serde_json::json!({ "dev": dev, "filter": filter, "stat_before": [before.0, before.1], "stat_after": [after.0, after.1] });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_from_both_events() {
        let issue = parse_rq("block_rq_issue: 254,0 WS 4096 () 8 + 8 [direct-io]").unwrap();
        assert_eq!(issue, Rq { rwbs: "WS".into(), sector: 8, sectors: 8 });
        let done = parse_rq("block_rq_complete: 254,0 R () 16 + 8 [0]").unwrap();
        assert_eq!(done, Rq { rwbs: "R".into(), sector: 16, sectors: 8 });
        assert_eq!(parse_rq("block_rq_issue: 254,0 FF 0 () 0 + 0 [kworker]").unwrap().sectors, 0);
        assert_eq!(parse_rq("block_rq_issue: 254,0 FF 0 () [kworker]"), None);
    }
}
