//! `kprobe.fprobe.*`: fprobe events (`f:`, function entry through ftrace,
//! Documentation/trace/fprobetrace.rst), defined through `dynamic_events`.
//!
//! The run is `eprobe.rs`'s `run_dynamic`; only the definition differs.

use super::eprobe::run_dynamic;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::openat_loop;
use crate::scenario::support::probe_events::GROUP;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

/// `f:kmatrix/openat_f <sym>`: one entry per openat call.
// "tracing/probes: Add fprobe events for tracing function entry and exit", 6.4.
pub const OPENAT: Scenario = Meta::new("kprobe.fprobe.openat", "6.4")
    .summary("f: (fprobe event) on the openat function, filtered to openat-loop N: N entries")
    .requires(&[Req::Tracefs, Req::File("dynamic_events"), Req::Syntax("f[")])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(openat);

fn openat(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let sym = openat_loop::symbol(ctx)?;
    let def = format!("f:{GROUP}/openat_f {sym}");
    run_dynamic(ctx, "openat_f", &def, &|_| Vec::new())
}
