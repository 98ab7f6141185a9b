//! `ftrace.event.*`: tracepoints through tracefs `events/` (Documentation/trace/events.rst),
//! enabled with pid filters on a workload, counted exactly in `trace`: `sys_enter_openat`,
//! `raw_syscalls`, `sys_enter_mount`, `random:urandom_read`, `irq_handler_entry/exit` against
//! /proc/interrupts, and `sched_switch` against the kernel's own context-switch counts.
//!
//! Not for events read through `trace_pipe` (`trace_pipe.rs`) or enabled through `set_event`
//! (`set_event.rs`), which reuse the runs here; nor for hist triggers (`hist.rs`).

use super::format::slots_and_strings;
use crate::excerpt;
use crate::process;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::{self, pid_filter, trace_problems, Armed, Enables};
use crate::scenario::support::openat_loop;
use crate::scenario::support::verdict::{count, ms, unsupported, verdict};
use crate::scenario::support::workload;
use crate::tracefs::{format, trace};
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;
use std::time::{Duration, Instant};

pub const OPENAT: &str = "syscalls/sys_enter_openat";

/// Start `argv` gated, set each event's filter from `filters(pid)` (event, expression), enable
/// the events, release, wait, disable ([`gated::run_with_events`]).
fn run_with_events(
    ctx: &mut Ctx,
    argv: &[String],
    filters: &dyn Fn(i32) -> Vec<(&'static str, String)>,
) -> Result<Armed> {
    let attach = Instant::now();
    let w = process::spawn(argv, true)?;
    let filters = filters(w.pid());
    gated::run_with_events(ctx, w, attach, &filters)
}

fn openat_argv(n: u64, path: &str) -> Vec<String> {
    vec![openat_loop::OPENAT_LOOP.to_string(), n.to_string(), path.to_string()]
}

/// `events/syscalls/sys_enter_openat` with `common_pid == <workload>` sees exactly N entries.
// Syscall tracepoints (CONFIG_FTRACE_SYSCALLS) came in 2.6.33.
pub const SYS_ENTER_OPENAT: Scenario = Meta::new("ftrace.event.sys_enter_openat", "2.6.33")
    .summary("syscalls/sys_enter_openat with a common_pid filter read through trace: N entries")
    .requires(&[Req::Tracefs, Req::Event(OPENAT)])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(|ctx| sys_enter_openat_read(ctx, false));

/// The sys_enter_openat run, read through `trace` (which keeps the entries) or, with `pipe`,
/// through `trace_pipe` (which consumes them, so `trace` must be empty afterwards).
pub fn sys_enter_openat_read(ctx: &mut Ctx, pipe: bool) -> Result<ScenarioResult> {
    let (n, path) = openat_loop::declared(ctx)?;
    openat_loop::fit_buffer(ctx, n, 128)?;
    let a = run_with_events(ctx, &openat_argv(n, &path), &|pid| vec![(OPENAT, pid_filter(pid))])?;
    let text = if pipe { ctx.tfs.drain_pipe("trace_pipe")? } else { ctx.tfs.read("trace")? };
    let parsed = trace::parse(&text);
    let hits = parsed.entries.iter().filter(|e| e.pid == a.pid && e.body.starts_with("sys_openat(")).count() as u64;
    let mut problems = trace_problems(&a.done, parsed.lost);
    let (_, mut counts) = a.openat_counts(n, &mut problems, "sys_enter_openat entries for the workload pid", hits);
    counts.push(count("entries read in total", n, parsed.entries.len() as u64));
    if pipe {
        let left = trace::parse(&ctx.tfs.read("trace")?).entries.len() as u64;
        counts.push(count("entries left in trace after reading the pipe", 0, left));
    }
    let mut r = a.verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({ "pid": a.pid, "filter": pid_filter(a.pid), "path": path });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}

/// `events/raw_syscalls/enable` (Documentation/trace/events.rst, "Via the 'enable' toggle"):
/// `sys_enter` and `sys_exit` filtered to the workload and `id == 257` (openat on x86_64) give N
/// entries each, every exit returning the fd.
// raw_syscalls:sys_enter/sys_exit came with the syscall tracepoints in 2.6.33.
pub const RAW_SYSCALLS: Scenario = Meta::new("ftrace.event.raw_syscalls", "2.6.33")
    .summary("raw_syscalls sys_enter/sys_exit filtered to the workload and id == openat: N each, exits return the fd")
    .requires(&[Req::Tracefs, Req::Event("raw_syscalls/sys_enter"), Req::Event("raw_syscalls/sys_exit")])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(raw_syscalls);

fn raw_syscalls(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path) = openat_loop::declared(ctx)?;
    openat_loop::fit_buffer(ctx, n, 256)?;
    let nr = libc::SYS_openat;
    let a = run_with_events(ctx, &openat_argv(n, &path), &|pid| {
        let f = format!("common_pid == {pid} && id == {nr}");
        vec![("raw_syscalls/sys_enter", f.clone()), ("raw_syscalls/sys_exit", f)]
    })?;
    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let mut problems = trace_problems(&a.done, parsed.lost);
    let summary = openat_loop::account(&a.done, &mut problems);
    let mine = |prefix: &str| -> Vec<&trace::Entry> {
        parsed.entries.iter().filter(|e| e.pid == a.pid && e.body.starts_with(prefix)).collect()
    };
    // `sys_enter: NR 257 (ffffff9c, ...)`, `sys_exit: NR 257 = 3`.
    let enters = mine(&format!("sys_enter: NR {nr} ("));
    let exits = mine(&format!("sys_exit: NR {nr} = "));
    let fd_exits = exits.iter().filter(|e| e.body.ends_with(&format!(" = {}", summary.fd))).count() as u64;
    let mut counts = openat_loop::counts(
        n,
        &summary,
        format!("sys_enter NR {nr} entries for the workload pid"),
        enters.len() as u64,
    );
    counts.extend([
        count(format!("sys_exit NR {nr} entries for the workload pid"), n, exits.len() as u64),
        count(format!("sys_exit entries returning fd {}", summary.fd), n, fd_exits),
        count("trace entries in total", 2 * n, parsed.entries.len() as u64),
    ]);
    let mut r = a.verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({ "pid": a.pid, "syscall_nr": nr });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}

const MOUNT_DIR: &str = "/tmp/kmatrix-mnt";

/// `sys_enter_mount` (its format: kernel/trace/trace_syscalls.c): `mount-tmpfs N DIR` mounts a
/// tmpfs N times; the event, filtered to it, records N entries each with the workload's flags
/// (MS_NOSUID|MS_NODEV), `sys_exit_mount` N returns of 0, and the format is returned parsed.
pub const SYS_ENTER_MOUNT: Scenario = Meta::new("ftrace.event.sys_enter_mount", "2.6.33")
    .summary(
        "syscalls/sys_enter_mount + sys_exit_mount on N tmpfs mounts: N entries with the workload's flags, \
        N returns of 0, format parsed",
    )
    .requires(&[
        Req::Tracefs,
        Req::Event("syscalls/sys_enter_mount"),
        Req::Event("syscalls/sys_exit_mount"),
        Req::Program(workload::MOUNT_TMPFS),
    ])
    .params(&[("count", "20")])
    .run(sys_enter_mount);

fn sys_enter_mount(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let format_text = ctx.tfs.read("events/syscalls/sys_enter_mount/format")?;
    let fmt = format::parse(&format_text)?;
    let argv = vec![workload::MOUNT_TMPFS.to_string(), n.to_string(), MOUNT_DIR.to_string()];
    let a = run_with_events(ctx, &argv, &|pid| {
        let f = pid_filter(pid);
        vec![("syscalls/sys_enter_mount", f.clone()), ("syscalls/sys_exit_mount", f)]
    })?;
    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let s = workload::summary(&a.done.stdout, "mount-tmpfs")?;
    let flags = workload::num(&s, "flags")?;
    let enters: Vec<&trace::Entry> =
        parsed.entries.iter().filter(|e| e.pid == a.pid && e.body.starts_with("sys_mount(")).collect();
    // The syscall tracer prints every argument in hex: `flags: 6`.
    let flagged = enters.iter().filter(|e| call_arg(e.body, "flags") == Some(format!("{flags:x}"))).count() as u64;
    let exits = parsed.entries.iter().filter(|e| e.pid == a.pid && e.body == "sys_mount -> 0x0").count() as u64;
    let (fields, strings) = slots_and_strings(&fmt, &["dev_name", "dir_name", "type", "flags", "data"]);
    let mut problems = trace_problems(&a.done, parsed.lost);
    let want = ["__syscall_nr", "dev_name", "dir_name", "type", "flags", "data"];
    if fields != want {
        problems.push(format!("format fields {fields:?}, expected {want:?}"));
    }
    let mut r = a.verdict(
        ctx.id(),
        vec![
            count("mounts made by the workload", n, workload::num(&s, "ok")? as u64),
            count("sys_enter_mount entries for the workload pid", n, enters.len() as u64),
            count(format!("entries with flags: {flags:x}"), n, flagged),
            count("sys_exit_mount entries returning 0", n, exits),
        ],
        problems,
    );
    r.detail = serde_json::json!({ "pid": a.pid, "format": fmt, "user_string_fields": strings });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}

/// `sys_mount(dev_name: 7ffd, dir_name: 4a20, type: 4a28, flags: 6, data: 4a30)` → `6` for `flags`.
fn call_arg(body: &str, key: &str) -> Option<String> {
    let start = body.find(&format!("{key}: "))? + key.len() + 2;
    Some(body[start..].split([',', ')']).next()?.trim().to_string())
}

/// The `random:urandom_read` tracepoint, which BCC's `TRACEPOINT_PROBE` example reads
/// (examples/tracing/urandomread.py): N reads of /dev/urandom give N events with `got_bits` 128
/// each. The event left the kernel in 5.18 (commit 14c174633f34, "random: remove unused
/// tracepoints"), also backported to 5.10.119 and 5.15.44, so it is `unsupported` on every
/// current kernel.
// include/trace/events/random.h came in 3.13.
pub const URANDOM_READ: Scenario = Meta::new("ftrace.event.urandom_read", "3.13")
    .summary("random/urandom_read on N reads of /dev/urandom: N events of got_bits=128 (event removed in 5.18)")
    .until("5.18")
    .requires(&[Req::Tracefs, Req::Event("random/urandom_read"), Req::Program(workload::URANDOM_READ)])
    .params(&[("count", "20")])
    .run(urandom_read);

fn urandom_read(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let argv = vec![workload::URANDOM_READ.to_string(), n.to_string()];
    let a = run_with_events(ctx, &argv, &|pid| vec![("random/urandom_read", pid_filter(pid))])?;
    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let mine: Vec<&trace::Entry> =
        parsed.entries.iter().filter(|e| e.pid == a.pid && e.body.starts_with("urandom_read:")).collect();
    let bits = mine.iter().filter(|e| e.field("got_bits") == Some("128")).count() as u64;
    let r = a.verdict(
        ctx.id(),
        vec![
            count("urandom_read events for the workload pid", n, mine.len() as u64),
            count("events with got_bits=128", n, bits),
        ],
        trace_problems(&a.done, parsed.lost),
    );
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}

/// `irq_handler_entry` / `irq_handler_exit` (include/trace/events/irq.h), filtered to the
/// console's serial interrupt: writing lines to /dev/console (interrupt-driven 8250 output)
/// makes the kernel run the ttyS0 handler; entries and exits each equal the handler runs
/// /proc/interrupts counted in the same window, and every entry is followed by its exit.
// The irq_handler_entry/exit tracepoints came in 2.6.30.
pub const IRQ_HANDLER: Scenario = Meta::new("ftrace.event.irq_handler", "2.6.30")
    .summary(
        "irq_handler_entry/exit on the ttyS0 console interrupt while writing to the console: entries == \
        exits == the /proc/interrupts delta, each entry paired with its exit",
    )
    .requires(&[Req::Tracefs, Req::Event("irq/irq_handler_entry"), Req::Event("irq/irq_handler_exit")])
    .params(&[("count", "5")])
    .run(irq_handler);

fn irq_handler(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let irq = match console_irq(ctx)? {
        Ok(irq) => irq,
        Err(r) => return Ok(r),
    };
    let filter = format!("irq == {irq}");
    let mut enables = Enables::default();
    for event in ["irq/irq_handler_entry", "irq/irq_handler_exit"] {
        ctx.tfs.set_filter(event, &filter)?;
        enables.open(ctx, event)?;
    }
    let before = irq_count(&std::fs::read_to_string("/proc/interrupts")?, irq);
    enables.set(ctx, true)?;
    let run = Instant::now();
    console_lines(ctx.id(), n)?;
    enables.set(ctx, false)?;
    let run_ms = ms(run);
    let after = irq_count(&std::fs::read_to_string("/proc/interrupts")?, irq);
    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let irq_s = irq.to_string();
    let is = |e: &&trace::Entry, name: &str| e.body.starts_with(name) && e.field("irq") == Some(irq_s.as_str());
    let entries = parsed.entries.iter().filter(|e| is(e, "irq_handler_entry:")).count() as u64;
    let exits = parsed.entries.iter().filter(|e| is(e, "irq_handler_exit:")).count() as u64;
    // Every entry is followed by an exit on its CPU before the next entry.
    let mut paired = 0u64;
    let mut open: std::collections::BTreeMap<u32, bool> = Default::default();
    for e in &parsed.entries {
        if is(&e, "irq_handler_entry:") {
            open.insert(e.cpu, true);
        } else if is(&e, "irq_handler_exit:") && open.insert(e.cpu, false) == Some(true) {
            paired += 1;
        }
    }
    let delta = after.zip(before).map(|(a, b)| a.saturating_sub(b)).unwrap_or(0);
    if delta == 0 {
        return Ok(no_console_interrupt(ctx.id(), irq, n, before, after));
    }
    let mut problems = Vec::new();
    if parsed.lost > 0 {
        problems.push(format!("{} events lost", parsed.lost));
    }
    let mut r = verdict(
        ctx.id(),
        vec![
            count(format!("irq_handler_entry irq={irq} (== /proc/interrupts delta)"), delta, entries),
            count(format!("irq_handler_exit irq={irq}"), delta, exits),
            count("entries followed by their exit", delta, paired),
        ],
        problems,
    );
    r.timings.run_ms = run_ms;
    r.detail = serde_json::json!({ "irq": irq, "device": crate::arch::CONSOLE_IRQ, "interrupts_before": before, "interrupts_after": after });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}

/// The `unsupported` result of a run whose `lines` console writes raised no interrupt of the
/// console's UART (irq `irq`, its /proc/interrupts count `before` and `after`): the irq events
/// had nothing to see, which says nothing of the tracing path. QEMU virt's PL011 (arm64) takes
/// console writes into its FIFO without a TX interrupt; x86's 8250 interrupts.
pub(super) fn no_console_interrupt(
    id: &str,
    irq: u32,
    lines: u64,
    before: Option<u64>,
    after: Option<u64>,
) -> ScenarioResult {
    let device = crate::arch::CONSOLE_IRQ;
    unsupported(
        id,
        format!("the console ({device}, irq {irq}) raised no interrupt while writing {lines} lines: the irq events have nothing to count"),
        format!("/proc/interrupts count of irq {irq} ({device}): {before:?} before the writes, {after:?} after"),
        None,
    )
}

/// The irq number whose /proc/interrupts line ends with `device`.
/// The serial console's (ttyS0) interrupt number, or the `unsupported` result when
/// /proc/interrupts has none (the console is not an interrupt-driven 8250).
pub(super) fn console_irq(ctx: &Ctx) -> Result<std::result::Result<u32, ScenarioResult>> {
    let interrupts = std::fs::read_to_string("/proc/interrupts").context("read(/proc/interrupts) failed")?;
    Ok(irq_of(&interrupts, crate::arch::CONSOLE_IRQ).ok_or_else(|| {
        unsupported(
            ctx.id(),
            format!(
                "no {} interrupt in /proc/interrupts: the console is not an interrupt-driven UART",
                crate::arch::CONSOLE_IRQ
            ),
            excerpt::head(&interrupts, 16),
            None,
        )
    }))
}

pub(super) fn irq_of(interrupts: &str, device: &str) -> Option<u32> {
    interrupts.lines().find_map(|l| {
        let (num, _) = l.trim_start().split_once(':')?;
        (l.split_whitespace().last() == Some(device)).then(|| num.parse().ok())?
    })
}

/// The sum over CPUs of `irq`'s count in /proc/interrupts.
pub(super) fn irq_count(interrupts: &str, irq: u32) -> Option<u64> {
    let mut lines = interrupts.lines();
    let cpus = lines.next()?.split_whitespace().count();
    lines.find_map(|l| {
        let (num, rest) = l.trim_start().split_once(':')?;
        (num.parse::<u32>().ok()? == irq)
            .then(|| rest.split_whitespace().take(cpus).filter_map(|c| c.parse::<u64>().ok()).sum())
    })
}

/// Write `n` lines to the console (fd 2, /dev/console), each naming `who`, and wait until the
/// UART sent them.
pub(super) fn console_lines(who: &str, n: u64) -> Result<()> {
    for i in 0..n {
        crate::console::say(&format!("{who}: console line {i} of {n}"));
    }
    // SAFETY: tcdrain on fd 2 only waits for output to drain; a non-tty fd fails with ENOTTY.
    if unsafe { libc::tcdrain(2) } != 0 {
        return Err(std::io::Error::last_os_error()).context("tcdrain(/dev/console) failed");
    }
    // The transmitter-empty interrupt of the last chunk can follow the drain by a moment.
    std::thread::sleep(Duration::from_millis(20));
    Ok(())
}

pub const SWITCH: &str = "sched/sched_switch";
const COMM: &str = "yield-loop";

/// `sched/sched_switch` enabled through its `enable` file on the `yield-loop` workload.
///
/// The check is exact: the kernel bumps a task's nvcsw/nivcsw at the same point of `__schedule`
/// where it emits `sched_switch` for it as `prev`. The agent reads the counters from
/// `/proc/<pid>/status` while the workload sleeps at its start gate (before the events are
/// enabled) and again once it has exited and made its last switch (a zombie, not yet reaped):
/// every switch with `prev_pid` the workload in the trace is one of the difference, and the
/// difference has no other. (Fencing with the workload's own getrusage calls is not exact: a
/// switch can fall between a snapshot and the syscall's trace event, by preemption or at the
/// might_sleep point of getrusage's `mmput`.)
// sched_switch as a TRACE_EVENT, and set_event, both date from 2.6.30.
pub const SCHED_SWITCH: Scenario = Meta::new("ftrace.event.sched_switch", "2.6.30")
    .summary(
        "sched/sched_switch enabled on yield-loop N: switches out of the workload == the kernel's count in \
        /proc/<pid>/status, every record with its comm",
    )
    .requires(&[Req::Tracefs, Req::Event(SWITCH), Req::Program(workload::YIELD_LOOP)])
    .params(&[("count", "200")])
    .run(|ctx| sched_switch_enabled_by(ctx, false));

/// The sched_switch run (see [`SCHED_SWITCH`]), the event enabled through its `enable` file or,
/// with `set_event`, by writing its bare name to `set_event`.
pub fn sched_switch_enabled_by(ctx: &mut Ctx, set_event: bool) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let attach = Instant::now();
    let (w, pid, before) = super::sched::yield_loop_at_gate(n)?;
    ctx.tfs.set_filter(SWITCH, &format!("prev_pid == {pid} || next_pid == {pid}"))?;
    let mut set_event_text = None;
    if set_event {
        // A bare event name, as Documentation/trace/events.rst writes `echo sched_wakeup >>
        // set_event`: it matches sched_switch in every system.
        ctx.tfs.write("set_event", "sched_switch")?;
        set_event_text = Some(ctx.tfs.read("set_event")?);
    } else {
        ctx.tfs.write(&format!("events/{SWITCH}/enable"), "1")?;
    }
    let switch_enabled = ctx.tfs.read(&format!("events/{SWITCH}/enable"))?.trim().to_string();
    let attach_ms = ms(attach);
    let run = Instant::now();
    let (after, done) = super::sched::run_to_end(w, ctx.timeout()?)?;
    ctx.tfs.write("events/enable", "0")?;
    let run_ms = ms(run);

    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let s = workload::summary(&done.stdout, COMM)?;
    let loop_switches = (workload::num(&s, "nvcsw")? + workload::num(&s, "nivcsw")?) as u64;
    let pid_s = pid.to_string();
    let switches: Vec<&trace::Entry> = parsed.entries.iter().filter(|e| e.body.starts_with("sched_switch:")).collect();
    let outs: Vec<&&trace::Entry> = switches.iter().filter(|e| e.field("prev_pid") == Some(pid_s.as_str())).collect();
    let ins: Vec<&&trace::Entry> = switches.iter().filter(|e| e.field("next_pid") == Some(pid_s.as_str())).collect();
    let outs_comm = outs.iter().filter(|e| e.field("prev_comm") == Some(COMM)).count() as u64;
    let ins_comm = ins.iter().filter(|e| e.field("next_comm") == Some(COMM)).count() as u64;
    let kernel_count = after.saturating_sub(before);
    let mut problems = trace_problems(&done, parsed.lost);
    if outs.is_empty() {
        problems.push("no switch out of the workload traced".into());
    }
    if switch_enabled != "1" {
        problems.push(format!("events/{SWITCH}/enable reads {switch_enabled:?} after enabling, expected 1"));
    }
    if let Some(t) = &set_event_text {
        if !t.lines().any(|l| l.trim() == "sched:sched_switch") {
            problems.push(format!("set_event does not list sched:sched_switch: {:?}", t.trim()));
        }
    }
    let mut r = verdict(
        ctx.id(),
        vec![
            count("switches out of the workload (== its /proc ctxt_switches delta)", kernel_count, outs.len() as u64),
            count("switches out with prev_comm=yield-loop", outs.len() as u64, outs_comm),
            count("switches in with next_comm=yield-loop", ins.len() as u64, ins_comm),
        ],
        problems,
    );
    r.timings.attach_ms = attach_ms;
    r.timings.run_ms = run_ms;
    r.detail = serde_json::json!({
        "pid": pid,
        "partner": workload::num(&s, "partner").ok(),
        "ctxt_switches_at_gate": before,
        "ctxt_switches_at_exit": after,
        "loop_switches_by_getrusage": loop_switches,
        "switches_in": ins.len(),
        "set_event": set_event_text.map(|t| t.trim().to_string()),
    });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 12)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Debian 6.1's /proc/interrupts in a one-CPU guest (head).
    const INTERRUPTS: &str = "           CPU0       
  0:        120   IO-APIC   2-edge      timer
  3:        164   IO-APIC   3-edge      ttyS1
  4:         32   IO-APIC   4-edge      ttyS0
LOC:       3488   Local timer interrupts
";

    #[test]
    fn finds_the_console_irq_and_its_count() {
        assert_eq!(irq_of(INTERRUPTS, "ttyS0"), Some(4));
        assert_eq!(irq_of(INTERRUPTS, "ttyS9"), None);
        assert_eq!(irq_count(INTERRUPTS, 4), Some(32));
        assert_eq!(irq_count(INTERRUPTS, 3), Some(164));
    }

    #[test]
    fn syscall_args_read_from_the_call_body() {
        let body = "sys_mount(dev_name: 4a2004, dir_name: 7ffd1e, type: 4a200c, flags: 6, data: 4a2012)";
        assert_eq!(call_arg(body, "flags").as_deref(), Some("6"));
        assert_eq!(call_arg(body, "data").as_deref(), Some("4a2012"));
        assert_eq!(call_arg(body, "mode"), None);
    }
}
