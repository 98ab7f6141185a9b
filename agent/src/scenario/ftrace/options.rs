//! `ftrace.options.*`: trace options applied to events (Documentation/trace/ftrace.rst,
//! "trace_options"): `options/stacktrace`, which the seeds' get.sh switches off again, records a
//! kernel stack after every event.
//!
//! Not for the function tracer's own `func_stack_trace` (`function.rs`).

use crate::excerpt;
use crate::process;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::{self, pid_filter, trace_problems};
use crate::scenario::support::openat_loop;
use crate::scenario::support::verdict::count;
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

const OPENAT: &str = "syscalls/sys_enter_openat";

/// `options/stacktrace` with `syscalls/sys_enter_openat` filtered to `openat-loop N`: N events,
/// each followed by a `<stack trace>` of the workload whose frames reach the syscall entry
/// (`do_syscall_64`).
// The stacktrace option came with ftrace (2.6.27); syscall events in 2.6.33.
pub const STACKTRACE: Scenario = Meta::new("ftrace.options.stacktrace", "2.6.33")
    .summary("options/stacktrace on syscalls/sys_enter_openat, openat-loop N: N events, each with a stack reaching the syscall entry (do_syscall_64, do_el0_svc on arm64)")
    .requires(&[Req::Tracefs, Req::Event(OPENAT), Req::File("options/stacktrace")])
    .on_openat_loop(openat_loop::PARAMS_20)
    .run(stacktrace);

fn stacktrace(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path) = openat_loop::declared(ctx)?;
    openat_loop::fit_buffer(ctx, n, 1024)?;
    ctx.tfs.set_option("stacktrace", true)?;
    let attach = Instant::now();
    let w = process::spawn(&[openat_loop::OPENAT_LOOP.to_string(), n.to_string(), path], true)?;
    let filters = [(OPENAT, pid_filter(w.pid()))];
    let a = gated::run_with_events(ctx, w, attach, &filters)?;
    // As the seeds' get.sh: `echo 0 > options/stacktrace` before reading.
    ctx.tfs.set_option("stacktrace", false)?;
    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let events = parsed.entries.iter().filter(|e| e.pid == a.pid && e.body.starts_with("sys_openat(")).count() as u64;
    let stacks: Vec<trace::Stack> = trace::stacks(&text).into_iter().filter(|s| s.pid == a.pid).collect();
    let reach = stacks
        .iter()
        .filter(|s| s.frames.iter().any(|f| trace::frame_symbol(f).0 == crate::arch::SYSCALL_ENTRY))
        .count();
    let mut problems = trace_problems(&a.done, parsed.lost);
    let (_, mut counts) = a.openat_counts(n, &mut problems, "sys_enter_openat events of the workload", events);
    counts.push(count("stack traces of the workload (one per event)", n, stacks.len() as u64));
    counts.push(count(format!("stacks reaching {}", crate::arch::SYSCALL_ENTRY), n, reach as u64));
    let mut r = a.verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({ "pid": a.pid, "first_stack": stacks.first().map(|s| s.frames.clone()) });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 16)))
}
