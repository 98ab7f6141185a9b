//! `ftrace.tracers.*`: what `available_tracers` lists (Documentation/trace/ftrace.rst, "The
//! File System"). Not for using a tracer (`function`, `function_graph`, `tracer`).

use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::verdict::{count, verdict};
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

/// `available_tracers` lists nop, function and function_graph.
// function_graph, the newest of the three, came in 2.6.29.
pub const AVAILABLE: Scenario = Meta::new("ftrace.tracers.available", "2.6.29")
    .summary("available_tracers lists nop, function and function_graph")
    .requires(&[Req::Tracefs, Req::File("available_tracers")])
    .run(available);

fn available(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let text = ctx.tfs.read("available_tracers")?;
    let listed: Vec<&str> = text.split_whitespace().collect();
    let wanted = ["nop", "function", "function_graph"];
    let missing: Vec<String> =
        wanted.iter().filter(|w| !listed.contains(w)).map(|w| format!("{w} not listed")).collect();
    let found = wanted.len() - missing.len();
    let mut r = verdict(ctx.id(), vec![count("required tracers listed", wanted.len() as u64, found as u64)], missing);
    r.detail = serde_json::json!({ "available_tracers": listed });
    Ok(r.with_excerpt(&text))
}
