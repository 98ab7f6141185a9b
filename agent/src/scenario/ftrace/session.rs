//! `ftrace.session.*`: the seeds' shell scripts as one tracing session, every part counted.
//!
//! The notes' trace.sh, line by line: `tracing_on` 0, `events/enable` 0, the function tracer,
//! `sched_wakeup`, `sched_switch`, `irq_handler_entry`, `irq_handler_exit` and the
//! `raw_syscalls` system enabled, `func_stack_trace` and `sym-offset` on, `tracing_on` 1. The
//! notes warn that an unfiltered function tracer locks a machine up; the session is bounded as
//! their other script does (`set_ftrace_filter` to the openat function) and to the workload
//! (`set_ftrace_pid`, event filters on its pid, the irq events on the console's interrupt).
//!
//! Not for each part alone (`function.rs`, `sched.rs`, `event.rs`).

use super::event::{console_irq, console_lines, irq_count, no_console_interrupt};
use super::sched::wakeups;
use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::trace_problems;
use crate::scenario::support::openat_loop;
use crate::scenario::support::tracer::FUNCTION_TRACER;
use crate::scenario::support::verdict::{count, ms, verdict};
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::{Duration, Instant};

const WAKEUP: &str = "sched/sched_wakeup";
const SWITCH: &str = "sched/sched_switch";
const IRQ_ENTRY: &str = "irq/irq_handler_entry";
const IRQ_EXIT: &str = "irq/irq_handler_exit";
const SYS_ENTER: &str = "raw_syscalls/sys_enter";
const SYS_EXIT: &str = "raw_syscalls/sys_exit";

/// The notes' trace.sh on `openat-loop N`, with console lines written while it records: the
/// function entries of the openat function (N, a stack each, symbol+offset), raw_syscalls
/// (N enters and N exits of openat, the exits returning the fd), the workload's wakeups
/// (every sleep woken before it ran again) and switch-outs (== its /proc count), and the
/// console's irq handler runs (entries == exits == the /proc/interrupts delta).
// raw_syscalls and syscall events came in 2.6.33, the newest part of the session.
pub const TRACE_SH: Scenario = Meta::new("ftrace.session.trace_sh", "2.6.33")
    .summary(
        "the notes' trace.sh in one session on openat-loop N: function + func_stack_trace + sym-offset, \
         sched_wakeup/switch, irq_handler_entry/exit, raw_syscalls, each part counted",
    )
    .requires(&[
        FUNCTION_TRACER,
        Req::File("options/func_stack_trace"),
        Req::File("options/sym-offset"),
        Req::Event(WAKEUP),
        Req::Event(SWITCH),
        Req::Event(IRQ_ENTRY),
        Req::Event(IRQ_EXIT),
        Req::Event(SYS_ENTER),
        Req::Event(SYS_EXIT),
    ])
    .on_openat_loop(&[("count", "20"), ("path", "/tmp/kmatrix-openat"), ("lines", "3")])
    .run(trace_sh);

fn trace_sh(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path, sym) = openat_loop::prepare(ctx)?;
    let lines = ctx.param_u64("lines", 3)?.clamp(1, 100);
    let irq = match console_irq(ctx)? {
        Ok(irq) => irq,
        Err(r) => return Ok(r),
    };
    openat_loop::fit_buffer(ctx, n, 2048)?;
    let attach = Instant::now();
    let mut w = openat_loop::start(n, &path)?;
    let pid = w.pid();
    w.wait_at_gate(Duration::from_secs(10))?;
    let switches_before = w.context_switches()?;

    // trace.sh, with the bounds the notes' own function script sets.
    ctx.tfs.write("tracing_on", "0")?;
    ctx.tfs.write("events/enable", "0")?;
    ctx.tfs.write("set_ftrace_filter", sym)?;
    ctx.tfs.write("set_ftrace_pid", &pid.to_string())?;
    ctx.tfs.write("current_tracer", "function")?;
    ctx.tfs.set_filter(WAKEUP, &format!("pid == {pid}"))?;
    ctx.tfs.set_filter(SWITCH, &format!("prev_pid == {pid} || next_pid == {pid}"))?;
    for e in [IRQ_ENTRY, IRQ_EXIT] {
        ctx.tfs.set_filter(e, &format!("irq == {irq}"))?;
    }
    for e in [SYS_ENTER, SYS_EXIT] {
        ctx.tfs.set_filter(e, &format!("common_pid == {pid}"))?;
    }
    for e in [WAKEUP, SWITCH, IRQ_ENTRY, IRQ_EXIT] {
        ctx.tfs.write(&format!("events/{e}/enable"), "1")?;
    }
    ctx.tfs.write("events/raw_syscalls/enable", "1")?;
    ctx.tfs.set_option("func_stack_trace", true)?;
    ctx.tfs.set_option("sym-offset", true)?;
    let irq_before = irq_count(&std::fs::read_to_string("/proc/interrupts")?, irq);
    let on = ctx.tfs.open_write("tracing_on")?;
    ctx.tfs.write_fd(&on, "tracing_on", "1")?;
    let attach_ms = ms(attach);

    let run = Instant::now();
    w.release()?;
    w.wait_exited(ctx.timeout()?)?;
    let switches_after = w.context_switches()?;
    let done = w.finish(ctx.timeout()?)?;
    console_lines(ctx.id(), lines)?;
    ctx.tfs.write_fd(&on, "tracing_on", "0")?;
    let irq_after = irq_count(&std::fs::read_to_string("/proc/interrupts")?, irq);
    let run_ms = ms(run);

    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let mut problems = trace_problems(&done, parsed.lost);
    let summary = openat_loop::account(&done, &mut problems);
    let mine =
        |prefix: &str| parsed.entries.iter().filter(|e| e.pid == pid && e.body.starts_with(prefix)).count() as u64;

    // The function tracer, with func_stack_trace and sym-offset.
    let calls = parsed
        .entries
        .iter()
        .filter(|e| e.pid == pid && trace::frame_symbol(e.body.split(" <-").next().unwrap_or("")).0 == sym)
        .collect::<Vec<_>>();
    let with_offsets = calls.iter().filter(|e| trace::frame_symbol(e.body.split(" <-").next().unwrap_or("")).1).count();
    let stacks = trace::stacks(&text).into_iter().filter(|s| s.pid == pid).count() as u64;
    // raw_syscalls: `sys_enter: NR 257 (...)`, `sys_exit: NR 257 = 3`.
    let nr = libc::SYS_openat;
    let exits_fd = parsed
        .entries
        .iter()
        .filter(|e| e.pid == pid && e.body == format!("sys_exit: NR {nr} = {}", summary.fd))
        .count() as u64;
    // The scheduler.
    let s = wakeups(&parsed.entries, pid, "openat-loop");
    // The console's interrupt.
    let irq_s = irq.to_string();
    let is = |e: &&trace::Entry, name: &str| e.body.starts_with(name) && e.field("irq") == Some(irq_s.as_str());
    let irq_entries = parsed.entries.iter().filter(|e| is(e, "irq_handler_entry:")).count() as u64;
    let irq_exits = parsed.entries.iter().filter(|e| is(e, "irq_handler_exit:")).count() as u64;
    let irq_delta = irq_after.zip(irq_before).map(|(a, b)| a.saturating_sub(b)).unwrap_or(0);
    if irq_delta == 0 {
        return Ok(no_console_interrupt(ctx.id(), irq, lines, irq_before, irq_after));
    }
    if s.sleeps == 0 {
        problems.push("the workload never ran after a sleep (not even after its gate)".into());
    }

    let mut counts =
        openat_loop::counts(n, &summary, format!("function entries of {sym} for the workload"), calls.len() as u64);
    counts.extend([
        count("function entries with symbol+0xoff/0xsize (sym-offset)", n, with_offsets as u64),
        count("stack traces of the workload (func_stack_trace, one per entry)", n, stacks),
        count(format!("raw_syscalls sys_enter NR {nr} of the workload"), n, mine(&format!("sys_enter: NR {nr} ("))),
        count(format!("raw_syscalls sys_exit NR {nr} of the workload"), n, mine(&format!("sys_exit: NR {nr} = "))),
        count(format!("sys_exit NR {nr} returning fd {}", summary.fd), n, exits_fd),
        count("sleeps of the workload woken by a sched_wakeup before its switch-in", s.sleeps, s.woken),
        count(
            "sched_switch out of the workload (== its /proc ctxt_switches delta)",
            switches_after.saturating_sub(switches_before),
            s.outs,
        ),
        count(format!("irq_handler_entry irq={irq} (== /proc/interrupts delta)"), irq_delta, irq_entries),
        count(format!("irq_handler_exit irq={irq}"), irq_delta, irq_exits),
    ]);
    let mut r = verdict(ctx.id(), counts, problems);
    r.timings.attach_ms = attach_ms;
    r.timings.run_ms = run_ms;
    r.detail = serde_json::json!({
        "symbol": sym,
        "pid": pid,
        "irq": irq,
        "wakeups": s.wakeups,
        "entries": parsed.entries.len(),
    });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 24)))
}
