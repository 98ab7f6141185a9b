//! `ftrace.instance.*`: a tracing instance (`mkdir instances/kmatrix`) has its own buffer
//! (Documentation/trace/ftrace.rst, "Instances").
//!
//! Not for the global buffer's own scenarios (`trace_marker.rs`).

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::markers::{markers_in, order_problem, write_declared};
use crate::scenario::support::verdict::{count, ms, verdict};
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

/// Markers written to the instance's `trace_marker` are in its `trace` and not in the global one.
// Instances (mkdir under instances/) came in 3.10.
pub const MARKER: Scenario = Meta::new("ftrace.instance.marker", "3.10")
    .summary("instances/kmatrix has its own buffer: N markers in its trace, none in the global one")
    .requires(&[Req::Tracefs, Req::File("instances")])
    .writes_markers()
    .run(marker);

fn marker(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let attach = Instant::now();
    ctx.tfs.make_instance("kmatrix")?;
    let attach_ms = ms(attach);
    let (n, nonce, run) = write_declared(ctx, "instances/kmatrix/trace_marker")?;
    let run_ms = ms(run);
    let text = ctx.tfs.read("instances/kmatrix/trace")?;
    let (seen, total) = markers_in(&text, &nonce);
    let global = trace::parse(&ctx.tfs.read("trace")?).entries.len() as u64;
    let mut r = verdict(
        ctx.id(),
        vec![
            count("markers in the instance's trace", n, seen.len() as u64),
            count("entries in the instance's trace", n, total as u64),
            count("entries in the global trace", 0, global),
        ],
        order_problem(&seen, n),
    );
    r.timings.attach_ms = attach_ms;
    r.timings.run_ms = run_ms;
    r.detail = serde_json::json!({ "instance": "kmatrix", "nonce": nonce });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 5)))
}
