//! `ftrace.trace.small_reads`: the `trace` file read in small calls of `read(2)` holds the same
//! lines as read in large ones. A reader's buffer size is the reader's business (Python's
//! `readline`, a 1 KiB C loop, `dd bs=1k`), so a kernel whose `trace` text depends on it is a
//! finding: 4.15 prints some lines twice when a call asks for less than about 4 KiB (measured:
//! 172 `do_sys_open()` lines with `dd bs=1k` for 101 with `bs=4k`; 5.4 and Debian's 5.10 and 6.1
//! give 101 at every size, 32 bytes included).
//!
//! Not for what the lines say (`function_graph.rs` checks the calls and their durations).

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::workload_problems;
use crate::scenario::support::openat_loop;
use crate::scenario::support::tracer::{run_tracer, GRAPH_TRACER};
use crate::scenario::support::verdict::count;
use crate::tracefs::graph::{self, Kind};
use crate::tracefs::READ_CHUNK;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

/// The size of the small reads: under the ~4 KiB at which 4.15 duplicates lines.
const SMALL: usize = 1024;

/// function_graph at depth 1 on the openat function for the workload's pid (one line per call),
/// then `trace` read twice: in 128 KiB calls (as `cat`), which must hold the N calls, and in
/// 1 KiB calls, which must hold the same lines.
// max_graph_depth came in 3.15.
pub const SMALL_READS: Scenario = Meta::new("ftrace.trace.small_reads", "3.15")
    .summary("trace read in 1 KiB calls of read(2) holds the same N function_graph lines as read in 128 KiB calls")
    .requires(&[GRAPH_TRACER, Req::File("max_graph_depth")])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(small_reads);

fn small_reads(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path, sym) = openat_loop::prepare(ctx)?;
    openat_loop::fit_buffer(ctx, n, 96)?;
    // As ftrace.function_graph.openat sets it up: one line per call, with its pid.
    let t = run_tracer(ctx, n, &path, "function_graph", |ctx| super::function_graph::graph_only(ctx, sym))?;
    let large = ctx.tfs.read_in("trace", READ_CHUNK)?;
    let small = ctx.tfs.read_in("trace", SMALL)?;
    let calls = |text: &str| {
        graph::parse(text).iter().filter(|l| l.pid == Some(t.pid) && l.kind == Kind::Leaf(sym)).count() as u64
    };
    let (in_large, in_small) = (calls(&large), calls(&small));
    let mut problems = workload_problems(&t.done);
    let (_, mut counts) = t.openat_counts(
        n,
        &mut problems,
        format!("function_graph calls of {sym} for the workload pid, read in {} KiB calls", READ_CHUNK / 1024),
        in_large,
    );
    counts.push(count(format!("the same calls read in {SMALL}-byte calls"), in_large, in_small));
    counts.push(count(
        format!("trace lines read in {SMALL}-byte calls (== in {} KiB calls)", READ_CHUNK / 1024),
        large.lines().count() as u64,
        small.lines().count() as u64,
    ));
    let mut r = t.verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({ "symbol": sym, "pid": t.pid, "small_read": SMALL, "large_read": READ_CHUNK });
    Ok(r.with_excerpt(&excerpt::head(&small, 16)))
}
