//! Tracepoint scenarios through tracefs `events/`: enable events with pid filters and count what
//! a workload produced, read through `trace` and through `trace_pipe`; `raw_syscalls`; the
//! seeds' `sys_enter_mount` and `random:urandom_read`; `irq_handler_entry/exit` against
//! /proc/interrupts; and a hist trigger keyed on the pid.

use super::common::{self, pid_filter, release_and_disarm, trace_problems, workload_problems, Armed, Enables};
use super::{count, ms, openat, verdict, workload, Ctx, Req, Scenario};
use crate::excerpt;
use crate::process;
use crate::tracefs::{format, hist, trace};
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;
use std::time::{Duration, Instant};

pub const ALL: [&'static dyn Scenario; 7] = [
    &SysEnterOpenat { pipe: false },
    &SysEnterOpenat { pipe: true },
    &RawSyscalls,
    &SysEnterMount,
    &UrandomRead,
    &IrqHandler,
    &HistOpenat,
];

const OPENAT: &str = "syscalls/sys_enter_openat";
/// Start `argv` gated, set each event's filter from `filters(pid)` (event, expression), enable
/// the events, release, wait, disable ([`common::run_with_events`]).
fn run_with_events(
    ctx: &mut Ctx,
    argv: &[String],
    filters: &dyn Fn(i32) -> Vec<(&'static str, String)>,
) -> Result<Armed> {
    let attach = Instant::now();
    let w = process::spawn(argv, true)?;
    let filters = filters(w.pid());
    common::run_with_events(ctx, w, attach, &filters)
}

fn openat_argv(n: u64, path: &str) -> Vec<String> {
    vec![openat::OPENAT_LOOP.to_string(), n.to_string(), path.to_string()]
}

/// `events/syscalls/sys_enter_openat` with `common_pid == <workload>` sees exactly N entries,
/// read through `trace` (which keeps them) or through `trace_pipe` (which consumes them, so
/// `trace` is empty afterwards).
pub struct SysEnterOpenat {
    pipe: bool,
}

impl Scenario for SysEnterOpenat {
    fn id(&self) -> &'static str {
        if self.pipe {
            "ftrace.trace_pipe.sys_enter_openat"
        } else {
            "ftrace.event.sys_enter_openat"
        }
    }

    fn summary(&self) -> &'static str {
        if self.pipe {
            "syscalls/sys_enter_openat with a common_pid filter read through trace_pipe: N entries, consumed"
        } else {
            "syscalls/sys_enter_openat with a common_pid filter read through trace: N entries"
        }
    }

    fn since(&self) -> &'static str {
        // Syscall tracepoints (CONFIG_FTRACE_SYSCALLS) came in 2.6.33.
        "2.6.33"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
    }

    fn requirements(&self) -> Vec<Req> {
        let mut r = vec![Req::Tracefs, Req::Event(OPENAT), Req::Program(openat::OPENAT_LOOP)];
        if self.pipe {
            r.push(Req::File("trace_pipe"));
        }
        r
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let path = openat::target_path(ctx)?;
        openat::fit_buffer(ctx, n, 128)?;
        let a = run_with_events(ctx, &openat_argv(n, &path), &|pid| vec![(OPENAT, pid_filter(pid))])?;
        let text = if self.pipe { ctx.tfs.drain_pipe("trace_pipe")? } else { ctx.tfs.read("trace")? };
        let parsed = trace::parse(&text);
        let hits = parsed.entries.iter().filter(|e| e.pid == a.pid && e.body.starts_with("sys_openat(")).count() as u64;
        let calls = openat::summary(&a.done.stdout).map(|s| s.calls).unwrap_or(0);
        let mut counts = vec![
            count("openat calls made by the workload", n, calls),
            count("sys_enter_openat entries for the workload pid", n, hits),
            count("entries read in total", n, parsed.entries.len() as u64),
        ];
        if self.pipe {
            let left = trace::parse(&ctx.tfs.read("trace")?).entries.len() as u64;
            counts.push(count("entries left in trace after reading the pipe", 0, left));
        }
        let mut r = verdict(self.id(), counts, trace_problems(&a.done, parsed.lost));
        a.timings(&mut r);
        r.detail = serde_json::json!({ "pid": a.pid, "filter": pid_filter(a.pid), "path": path });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}

/// The seeds' `events/raw_syscalls/enable`: `sys_enter` and `sys_exit` filtered to the workload
/// and `id == 257` (openat on x86_64) give N entries each, every exit returning the fd.
pub struct RawSyscalls;

impl Scenario for RawSyscalls {
    fn id(&self) -> &'static str {
        "ftrace.event.raw_syscalls"
    }

    fn summary(&self) -> &'static str {
        "raw_syscalls sys_enter/sys_exit filtered to the workload and id == openat: N each, exits return the fd"
    }

    fn since(&self) -> &'static str {
        // raw_syscalls:sys_enter/sys_exit came with the syscall tracepoints in 2.6.33.
        "2.6.33"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::Event("raw_syscalls/sys_enter"),
            Req::Event("raw_syscalls/sys_exit"),
            Req::Program(openat::OPENAT_LOOP),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let path = openat::target_path(ctx)?;
        openat::fit_buffer(ctx, n, 256)?;
        let nr = libc::SYS_openat;
        let a = run_with_events(ctx, &openat_argv(n, &path), &|pid| {
            let f = format!("common_pid == {pid} && id == {nr}");
            vec![("raw_syscalls/sys_enter", f.clone()), ("raw_syscalls/sys_exit", f)]
        })?;
        let text = ctx.tfs.read("trace")?;
        let parsed = trace::parse(&text);
        let summary = openat::summary(&a.done.stdout).unwrap_or_default();
        let mine = |prefix: &str| -> Vec<&trace::Entry> {
            parsed.entries.iter().filter(|e| e.pid == a.pid && e.body.starts_with(prefix)).collect()
        };
        // `sys_enter: NR 257 (ffffff9c, ...)`, `sys_exit: NR 257 = 3`.
        let enters = mine(&format!("sys_enter: NR {nr} ("));
        let exits = mine(&format!("sys_exit: NR {nr} = "));
        let fd_exits = exits.iter().filter(|e| e.body.ends_with(&format!(" = {}", summary.fd))).count() as u64;
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, summary.calls),
                count(format!("sys_enter NR {nr} entries for the workload pid"), n, enters.len() as u64),
                count(format!("sys_exit NR {nr} entries for the workload pid"), n, exits.len() as u64),
                count(format!("sys_exit entries returning fd {}", summary.fd), n, fd_exits),
                count("trace entries in total", 2 * n, parsed.entries.len() as u64),
            ],
            trace_problems(&a.done, parsed.lost),
        );
        a.timings(&mut r);
        r.detail = serde_json::json!({ "pid": a.pid, "syscall_nr": nr });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}

/// The seeds' `sys_enter_mount`: `mount-tmpfs N DIR` mounts a tmpfs N times; the event, filtered
/// to it, records N entries each with the workload's flags (MS_NOSUID|MS_NODEV), `sys_exit_mount`
/// N returns of 0, and the format is returned parsed.
pub struct SysEnterMount;

const MOUNT_DIR: &str = "/tmp/kmatrix-mnt";

impl Scenario for SysEnterMount {
    fn id(&self) -> &'static str {
        "ftrace.event.sys_enter_mount"
    }

    fn summary(&self) -> &'static str {
        "syscalls/sys_enter_mount + sys_exit_mount on N tmpfs mounts: N entries with the workload's flags, \
         N returns of 0, format parsed"
    }

    fn since(&self) -> &'static str {
        "2.6.33"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "20")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::Event("syscalls/sys_enter_mount"),
            Req::Event("syscalls/sys_exit_mount"),
            Req::Program(workload::MOUNT_TMPFS),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
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
        let (fields, strings) =
            super::formats::slots_and_strings(&fmt, &["dev_name", "dir_name", "type", "flags", "data"]);
        let mut problems = trace_problems(&a.done, parsed.lost);
        let want = ["__syscall_nr", "dev_name", "dir_name", "type", "flags", "data"];
        if fields != want {
            problems.push(format!("format fields {fields:?}, expected {want:?}"));
        }
        let mut r = verdict(
            self.id(),
            vec![
                count("mounts made by the workload", n, workload::num(&s, "ok")? as u64),
                count("sys_enter_mount entries for the workload pid", n, enters.len() as u64),
                count(format!("entries with flags: {flags:x}"), n, flagged),
                count("sys_exit_mount entries returning 0", n, exits),
            ],
            problems,
        );
        a.timings(&mut r);
        r.detail = serde_json::json!({ "pid": a.pid, "format": fmt, "user_string_fields": strings });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}

/// `sys_mount(dev_name: 7ffd, dir_name: 4a20, type: 4a28, flags: 6, data: 4a30)` → `6` for `flags`.
fn call_arg(body: &str, key: &str) -> Option<String> {
    let start = body.find(&format!("{key}: "))? + key.len() + 2;
    Some(body[start..].split([',', ')']).next()?.trim().to_string())
}

/// The seeds' `random:urandom_read` tracepoint (read by their TRACEPOINT_PROBE): N reads of
/// /dev/urandom give N events with `got_bits` 128 each. The event left the kernel in 5.18
/// ("random: remove unused tracepoints"), and with the random.c backports also 5.10.119+ and
/// 5.15.44+, so it is `unsupported` on every current kernel.
pub struct UrandomRead;

impl Scenario for UrandomRead {
    fn id(&self) -> &'static str {
        "ftrace.event.urandom_read"
    }

    fn summary(&self) -> &'static str {
        "random/urandom_read on N reads of /dev/urandom: N events of got_bits=128 (event removed in 5.18)"
    }

    fn since(&self) -> &'static str {
        // include/trace/events/random.h came in 3.13.
        "3.13"
    }

    fn until(&self) -> Option<&'static str> {
        Some("5.18")
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "20")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::Event("random/urandom_read"), Req::Program(workload::URANDOM_READ)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let argv = vec![workload::URANDOM_READ.to_string(), n.to_string()];
        let a = run_with_events(ctx, &argv, &|pid| vec![("random/urandom_read", pid_filter(pid))])?;
        let text = ctx.tfs.read("trace")?;
        let parsed = trace::parse(&text);
        let mine: Vec<&trace::Entry> =
            parsed.entries.iter().filter(|e| e.pid == a.pid && e.body.starts_with("urandom_read:")).collect();
        let bits = mine.iter().filter(|e| e.field("got_bits") == Some("128")).count() as u64;
        let mut r = verdict(
            self.id(),
            vec![
                count("urandom_read events for the workload pid", n, mine.len() as u64),
                count("events with got_bits=128", n, bits),
            ],
            trace_problems(&a.done, parsed.lost),
        );
        a.timings(&mut r);
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}

/// The seeds' `irq_handler_entry` / `irq_handler_exit`, filtered to the console's serial
/// interrupt: writing lines to /dev/console (interrupt-driven 8250 output) makes the kernel run
/// the ttyS0 handler; entries and exits each equal the handler runs /proc/interrupts counted in
/// the same window, and every entry is followed by its exit.
pub struct IrqHandler;

impl Scenario for IrqHandler {
    fn id(&self) -> &'static str {
        "ftrace.event.irq_handler"
    }

    fn summary(&self) -> &'static str {
        "irq_handler_entry/exit on the ttyS0 console interrupt while writing to the console: entries == \
         exits == the /proc/interrupts delta, each entry paired with its exit"
    }

    fn since(&self) -> &'static str {
        // The irq_handler_entry/exit tracepoints came in 2.6.30.
        "2.6.30"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "5")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::Event("irq/irq_handler_entry"), Req::Event("irq/irq_handler_exit")]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let interrupts = std::fs::read_to_string("/proc/interrupts").context("read(/proc/interrupts) failed")?;
        let Some(irq) = irq_of(&interrupts, "ttyS0") else {
            return Ok(super::unsupported(
                self.id(),
                "no ttyS0 interrupt in /proc/interrupts: the console is not an interrupt-driven 8250",
                excerpt::head(&interrupts, 16),
                None,
            ));
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
        console_lines(n)?;
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
        let mut problems = Vec::new();
        if delta == 0 {
            problems.push(format!("no ttyS0 interrupt (irq {irq}) while writing {n} console lines"));
        }
        if parsed.lost > 0 {
            problems.push(format!("{} events lost", parsed.lost));
        }
        let mut r = verdict(
            self.id(),
            vec![
                count(format!("irq_handler_entry irq={irq} (== /proc/interrupts delta)"), delta, entries),
                count(format!("irq_handler_exit irq={irq}"), delta, exits),
                count("entries followed by their exit", delta, paired),
            ],
            problems,
        );
        r.timings.run_ms = run_ms;
        r.detail = serde_json::json!({ "irq": irq, "device": "ttyS0", "interrupts_before": before, "interrupts_after": after });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}

/// The irq number whose /proc/interrupts line ends with `device`.
fn irq_of(interrupts: &str, device: &str) -> Option<u32> {
    interrupts.lines().find_map(|l| {
        let (num, _) = l.trim_start().split_once(':')?;
        (l.split_whitespace().last() == Some(device)).then(|| num.parse().ok())?
    })
}

/// The sum over CPUs of `irq`'s count in /proc/interrupts.
fn irq_count(interrupts: &str, irq: u32) -> Option<u64> {
    let mut lines = interrupts.lines();
    let cpus = lines.next()?.split_whitespace().count();
    lines.find_map(|l| {
        let (num, rest) = l.trim_start().split_once(':')?;
        (num.parse::<u32>().ok()? == irq)
            .then(|| rest.split_whitespace().take(cpus).filter_map(|c| c.parse::<u64>().ok()).sum())
    })
}

/// Write `n` lines to the console (fd 2, /dev/console) and wait until the UART sent them.
fn console_lines(n: u64) -> Result<()> {
    for i in 0..n {
        crate::console::say(&format!("ftrace.event.irq_handler: console line {i} of {n}"));
    }
    // SAFETY: tcdrain on fd 2 only waits for output to drain; a non-tty fd fails with ENOTTY.
    if unsafe { libc::tcdrain(2) } != 0 {
        return Err(std::io::Error::last_os_error()).context("tcdrain(/dev/console) failed");
    }
    // The transmitter-empty interrupt of the last chunk can follow the drain by a moment.
    std::thread::sleep(Duration::from_millis(20));
    Ok(())
}

/// A hist trigger `hist:keys=common_pid` on sys_enter_openat: the workload's pid has hitcount
/// N, and nothing is dropped.
pub struct HistOpenat;

impl Scenario for HistOpenat {
    fn id(&self) -> &'static str {
        "ftrace.hist.sys_enter_openat"
    }

    fn summary(&self) -> &'static str {
        "hist:keys=common_pid trigger on syscalls/sys_enter_openat: the workload pid's hitcount is N"
    }

    fn since(&self) -> &'static str {
        // Hist triggers came in 4.7.
        "4.7"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::Event(OPENAT),
            Req::Config { option: "CONFIG_HIST_TRIGGERS", tracefs: "events/syscalls/sys_enter_openat/hist" },
            Req::Program(openat::OPENAT_LOOP),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let path = openat::target_path(ctx)?;
        let trigger = "hist:keys=common_pid";
        let attach = Instant::now();
        let w = openat::start(n, &path)?;
        // The trigger arms the event (soft-enabled) until it is removed again by the reset.
        ctx.tfs.add_trigger(OPENAT, trigger)?;
        let a = release_and_disarm(ctx, w, attach, |_| Ok(()))?;
        let pid = a.pid;
        let text = ctx.tfs.read(&format!("events/{OPENAT}/hist"))?;
        let h = hist::parse(&text);
        let calls = openat::summary(&a.done.stdout).map(|s| s.calls).unwrap_or(0);
        let mut problems = workload_problems(&a.done);
        if h.dropped != Some(0) {
            problems.push(format!("hist Dropped: {:?}, expected 0", h.dropped));
        }
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, calls),
                count(format!("hitcount of common_pid {pid}"), n, h.hitcount("common_pid", pid as i64).unwrap_or(0)),
            ],
            problems,
        );
        a.timings(&mut r);
        r.detail = serde_json::json!({ "pid": pid, "trigger": trigger, "keys": h.entries.len(), "hits": h.hits });
        Ok(r.with_excerpt(&excerpt::head(&text, 16)))
    }
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
