//! `ftrace.tracer.*`: what `current_tracer` does with a name that is no tracer, and the latency
//! tracers `irqsoff` and `preemptoff` (Documentation/trace/ftrace.rst), which the seeds' `irq`
//! was after and which Debian does not build.
//!
//! Not for listing tracers (`tracers.rs`) or the function tracers (`function.rs`,
//! `function_graph.rs`).

use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::verdict::{count, ms, verdict};
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

/// A latency tracer's scenario, `ftrace.tracer.<tracer>`: the tracer, built with the config
/// `option`, run by [`latency`]. The two differ only by these names.
// The latency tracers came with ftrace (2.6.27); `irq-info` is the option they add.
macro_rules! latency_tracer {
    ($tracer:literal, $option:literal) => {
        Meta::new(concat!("ftrace.tracer.", $tracer), "2.6.27")
            .summary(concat!(
                $tracer,
                " tracer: a max latency > 0 with its trace (started/ended at); unsupported with the config line where \
                not built"
            ))
            .requires(&[
                Req::Tracefs,
                Req::Config { option: $option, tracefs: "options/irq-info" },
                Req::Tracer($tracer),
                Req::File("tracing_max_latency"),
            ])
            .run(|ctx| latency(ctx, $tracer))
    };
}

/// The `irqsoff` tracer (CONFIG_IRQSOFF_TRACER): tracing the longest interrupts-off section.
pub const IRQSOFF: Scenario = latency_tracer!("irqsoff", "CONFIG_IRQSOFF_TRACER");

/// The `preemptoff` tracer (CONFIG_PREEMPT_TRACER, needs a preemptible kernel).
pub const PREEMPTOFF: Scenario = latency_tracer!("preemptoff", "CONFIG_PREEMPT_TRACER");

/// Run a latency tracer while the agent makes the kernel work (reads of /proc, which take locks
/// with interrupts or preemption off), then read the maximum it recorded: > 0, with a trace
/// headed `# <tracer> latency trace` naming where the section started and ended.
fn latency(ctx: &mut Ctx, tracer: &str) -> Result<ScenarioResult> {
    ctx.tfs.write("tracing_max_latency", "0")?;
    let attach = Instant::now();
    ctx.tfs.write("current_tracer", tracer)?;
    let attach_ms = ms(attach);
    let run = Instant::now();
    for _ in 0..20 {
        let _ = std::fs::read_to_string("/proc/interrupts");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    ctx.tfs.write("tracing_on", "0")?;
    let run_ms = ms(run);
    let max: u64 = ctx.tfs.read("tracing_max_latency")?.trim().parse().unwrap_or(0);
    let text = ctx.tfs.read("trace")?;
    let mut problems = Vec::new();
    if max == 0 {
        problems.push("tracing_max_latency stayed 0".into());
    }
    let header = format!("# {tracer} latency trace");
    let marks = ["=> started at:", "=> ended at:"].iter().filter(|m| text.contains(*m)).count() as u64;
    let mut r = verdict(
        ctx.id(),
        vec![
            count(format!("trace headed {header:?}"), 1, u64::from(text.contains(&header))),
            count("started at / ended at lines", 2, marks),
        ],
        problems,
    );
    r.timings.attach_ms = attach_ms;
    r.timings.run_ms = run_ms;
    r.detail = serde_json::json!({ "tracer": tracer, "tracing_max_latency_us": max });
    Ok(r.with_excerpt(&crate::excerpt::head(&text, 20)))
}
