//! `ftrace.trace_marker.*`: strings written to `trace_marker` from user space come back in
//! `trace` as `tracing_mark_write` entries, each exactly once and in order
//! (Documentation/trace/ftrace.rst, "trace_marker").
//!
//! Not for reading them through `trace_pipe` (`trace_pipe.rs`) or an instance (`instance.rs`).

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::markers::{markers_in, order_problem, write_declared};
use crate::scenario::support::verdict::{count, ms, verdict};
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

/// Markers appear in `trace` as `tracing_mark_write` entries.
// trace_marker came with ftrace, 2.6.27.
pub const ROUNDTRIP: Scenario = Meta::new("ftrace.trace_marker.roundtrip", "2.6.27")
    .summary("N strings written to trace_marker come back in trace as tracing_mark_write entries, in order")
    .requires(&[Req::Tracefs])
    .writes_markers()
    .run(roundtrip);

fn roundtrip(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, nonce, run) = write_declared(ctx, "trace_marker")?;
    let run_ms = ms(run);
    let text = ctx.tfs.read("trace")?;
    let (seen, total) = markers_in(&text, &nonce);
    let mut r = verdict(
        ctx.id(),
        vec![count("markers found in trace", n, seen.len() as u64), count("trace entries in total", n, total as u64)],
        order_problem(&seen, n),
    );
    r.timings.run_ms = run_ms;
    r.detail = serde_json::json!({ "nonce": nonce, "pid": std::process::id() });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 5)))
}
