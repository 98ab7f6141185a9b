//! `bpf.trace_printk.*`: a tracepoint program that calls bpf_trace_printk(), its lines read
//! back from `trace_pipe`: BCC's `TRACEPOINT_PROBE` example (examples/tracing/urandomread.py),
//! without BCC, on sys_enter_openat.
//!
//! The run is `support::bpf_output::run_output`; this file is trace_pipe as a [`Channel`].

use crate::bpf::event::KmEvent;
use crate::bpf::{self, Loaded};
use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::bpf::BTF_CORE;
use crate::scenario::support::bpf_output::{run_output, Channel, Output};
use crate::scenario::support::openat_loop;
use crate::tracefs::stats::{self, BufferStats};
use anyhow::Result;
use std::time::Instant;

pub const OPENAT: Scenario = Meta::new("bpf.trace_printk.openat", BTF_CORE)
    .summary("bpf_trace_printk from a tracepoint program read back from trace_pipe: N lines")
    .requires(&[
        openat_loop::IN_IMAGE,
        Req::File("trace_pipe"),
        Req::Event("bpf_trace/bpf_trace_printk"),
        Req::BpfGlobalData,
    ])
    .params(&[("count", "100")])
    .run(|ctx| run_output(ctx, bpf::PRINTK, "printk_openat", TracePipe));

const PRINTK_ENABLE: &str = "events/bpf_trace/bpf_trace_printk/enable";

/// The global trace buffer, read through `trace_pipe`.
struct TracePipe;

impl Channel for TracePipe {
    /// Room in the trace buffer for N lines.
    fn prepare(&mut self, ctx: &mut Ctx, n: u64) -> Result<()> {
        openat_loop::fit_buffer(ctx, n, 160)
    }

    /// Make sure the bpf_trace/bpf_trace_printk event is on before the workload runs. Loading
    /// a program that calls bpf_trace_printk() turns it on, but since upstream moved that
    /// trace_set_clr_event() to a work item (2025, a lock-order fix backported to stable, so
    /// Debian 6.12 has it) it can happen after the workload's first calls, whose lines are then
    /// lost (seen under TCG: 99 or 0 of 100). So wait for it, then turn it on ourselves; the
    /// answer says which.
    fn armed(&mut self, ctx: &mut Ctx) -> Result<Option<&'static str>> {
        let deadline = Instant::now() + std::time::Duration::from_millis(500);
        loop {
            if ctx.tfs.read(PRINTK_ENABLE)?.trim() == "1" {
                return Ok(Some("enabled by the kernel at load"));
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        ctx.tfs.write(PRINTK_ENABLE, "1")?;
        Ok(Some("not enabled 500 ms after load; enabled by the agent"))
    }

    /// What trace_pipe holds now, each `kmatrix-openat pid=P path=F` line an event (pid, name)
    /// for the common checks; records lost are what the ring buffer's per-CPU counters say it
    /// lost (overwritten or dropped) since the reset before the scenario cleared them.
    fn drain(&mut self, ctx: &Ctx, _l: &mut Loaded) -> Result<Output> {
        let text = ctx.tfs.drain_pipe("trace_pipe")?;
        let (lost, losses) = buffer_lost(&stats::per_cpu(&ctx.tfs)?);
        let events = printk_events(&text);
        let mut raw = excerpt::head(&text, 10);
        if events.is_empty() {
            // Say where the lines could have gone: the event bpf_trace_printk enables, the buffer.
            let enable = ctx.tfs.read(PRINTK_ENABLE).unwrap_or_else(|e| e.to_string());
            let on = ctx.tfs.read("tracing_on").unwrap_or_else(|e| e.to_string());
            let trace = ctx.tfs.read("trace").unwrap_or_default();
            raw = format!(
                "trace_pipe held no kmatrix-openat line; bpf_trace_printk enable={} tracing_on={}\n{raw}\n--- trace:\n{}",
                enable.trim(),
                on.trim(),
                excerpt::head(&trace, 20)
            );
        }
        if lost > 0 {
            raw = format!("{losses}\n{raw}");
        }
        Ok(Output { events, lost, raw })
    }
}

/// Events the global ring buffer lost, summed over its CPUs, and which CPU lost how many.
fn buffer_lost(per_cpu: &[(String, BufferStats)]) -> (u64, String) {
    let lost = per_cpu.iter().map(|(_, s)| s.lost()).sum();
    let each: Vec<String> = per_cpu
        .iter()
        .filter(|(_, s)| s.lost() > 0)
        .map(|(cpu, s)| {
            format!("{cpu}: overrun {} commit overrun {} dropped {}", s.overrun, s.commit_overrun, s.dropped_events)
        })
        .collect();
    (lost, format!("the ring buffer lost {lost} events ({})", each.join("; ")))
}

/// Events from `kmatrix-openat pid=P path=F` trace lines.
fn printk_events(text: &str) -> Vec<KmEvent> {
    text.lines()
        .filter_map(|line| {
            let msg = &line[line.find("kmatrix-openat ")?..];
            let mut pid = None;
            let mut path = None;
            for kv in msg.split_whitespace().skip(1) {
                match kv.split_once('=') {
                    Some(("pid", v)) => pid = v.parse::<u32>().ok(),
                    Some(("path", v)) => path = Some(v),
                    _ => {}
                }
            }
            let (pid, path) = (pid?, path?);
            let mut e = KmEvent { pid, tgid: pid, ..Default::default() };
            let len = path.len().min(e.name.len() - 1);
            e.name[..len].copy_from_slice(&path.as_bytes()[..len]);
            Some(e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printk_lines_become_events() {
        let text = "     openat-loop-93      [000] d..31     5.123456: bpf_trace_printk: kmatrix-openat pid=93 path=/tmp/kmatrix-openat\n\
                    <...>-1 [000] ..... 1.0: bpf_trace_printk: something else\n";
        let ev = printk_events(text);
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].pid, ev[0].name()), (93, "/tmp/kmatrix-openat".to_string()));
    }

    #[test]
    fn records_lost_are_the_buffers_own_count() {
        let overrun =
            stats::parse(include_str!("../../../../proto/src/tracefs/fixtures/stats-overrun-6.1.txt")).unwrap();
        let cleared =
            stats::parse(include_str!("../../../../proto/src/tracefs/fixtures/stats-cleared-6.1.txt")).unwrap();
        let (lost, why) = buffer_lost(&[("cpu0".into(), cleared.clone()), ("cpu1".into(), overrun)]);
        assert_eq!(lost, 16819);
        assert_eq!(why, "the ring buffer lost 16819 events (cpu1: overrun 16819 commit overrun 0 dropped 0)");
        // The verdict's "records lost by the channel" fails on it.
        let r = crate::scenario::support::verdict::verdict(
            "bpf.trace_printk.openat",
            vec![crate::scenario::support::verdict::count("records lost by the channel", 0, lost)],
            Vec::new(),
        );
        assert_eq!(r.status, kmatrix_proto::Status::Fail);
        assert_eq!(buffer_lost(&[("cpu0".into(), cleared)]).0, 0);
    }
}
