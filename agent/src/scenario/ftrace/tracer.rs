//! `ftrace.tracer.*`: what `current_tracer` does with a name that is no tracer.
//!
//! Not for the tracers that exist (`tracers.rs`, `function.rs`, `function_graph.rs`).

use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::verdict::{ms, verdict};
use anyhow::Result;
use kmatrix_proto::{ScenarioResult, Status};
use std::time::Instant;

/// `echo irq > current_tracer`: there is no tracer named `irq` (interrupt-off latency is
/// `irqsoff`, CONFIG_IRQSOFF_TRACER, Documentation/trace/ftrace.rst "irqsoff"), so the kernel
/// must refuse the write with EINVAL and keep `nop`. The command fails on every kernel; this
/// records exactly how.
// current_tracer and its EINVAL for unknown names date from ftrace's merge, 2.6.27.
pub const IRQ_REFUSED: Scenario = Meta::new("ftrace.tracer.irq_refused", "2.6.27")
    .summary("the seeds' `echo irq > current_tracer`: refused with EINVAL (no such tracer), current_tracer stays nop")
    .requires(&[Req::Tracefs, Req::File("current_tracer")])
    .run(irq_refused);

fn irq_refused(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let tracers = ctx.tfs.read("available_tracers")?;
    let listed = tracers.split_whitespace().any(|t| t == "irq");
    let attach = Instant::now();
    let outcome = ctx.tfs.write("current_tracer", "irq");
    let attach_ms = ms(attach);
    let current = ctx.tfs.read("current_tracer")?.trim().to_string();
    let errno = outcome.as_ref().err().map(|e| e.errno);
    let mut problems = Vec::new();
    if listed {
        problems.push("available_tracers lists a tracer named irq".to_string());
    }
    match errno {
        Some(libc::EINVAL) => {}
        Some(e) => problems.push(format!("write refused with {}, expected EINVAL", crate::sys::errno_text(e))),
        None => problems.push("kernel accepted `irq` as current_tracer".to_string()),
    }
    if current != "nop" {
        problems.push(format!("current_tracer is {current:?} after the write, expected nop"));
    }
    let mut r = verdict(ctx.id(), Vec::new(), problems);
    r.errno = errno;
    r.timings.attach_ms = attach_ms;
    let irqsoff = tracers.split_whitespace().any(|t| t == "irqsoff");
    r.detail = serde_json::json!({
        "available_tracers": tracers.split_whitespace().collect::<Vec<_>>(),
        "irqsoff_available": irqsoff,
    });
    if r.status == Status::Pass {
        r.reason = format!(
            "refused: {} (no tracer named irq; interrupt latency tracing is irqsoff, {})",
            crate::sys::errno_text(libc::EINVAL),
            if irqsoff { "available here" } else { "not built here: CONFIG_IRQSOFF_TRACER" }
        );
    }
    Ok(r.with_excerpt(&tracers))
}
