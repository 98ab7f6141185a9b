//! The run every BPF output scenario shares (`bpf.ringbuf`, `bpf.perf_buffer`,
//! `bpf.trace_printk`): a program on syscalls/sys_enter_openat filtered to `openat-loop N`
//! outputs one record per call through its [`Channel`], and every one of the N records must
//! come out, with the workload's pid and file name, none dropped by the program and none lost
//! by the channel.
//!
//! What differs per channel (opening perf buffers before the first event, the trace buffer and
//! event of bpf_trace_printk, draining) is the [`Channel`] each scenario implements. Not for the
//! `km_events` array the other bpf scenarios read (`support::bpf::run_program`).

use super::bpf::{attach, detach, guarded, openat_summary, release, Hook, OpenatWorkload};
use super::openat_loop;
use super::verdict::{count, ms, verdict};
use crate::bpf::event::KmEvent;
use crate::bpf::{Loaded, Object};
use crate::scenario::meta::Ctx;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

/// What came out of a channel: events (or printk lines as names), records lost, raw text.
pub struct Output {
    pub events: Vec<KmEvent>,
    pub lost: u64,
    pub raw: String,
}

/// The steps of [`run_output`] that depend on the channel.
pub trait Channel {
    /// Before the object is loaded, with the workload started (gated) for `n` calls.
    fn prepare(&mut self, _ctx: &mut Ctx, _n: u64) -> Result<()> {
        Ok(())
    }

    /// After the object is loaded, before its program is attached: the output must have
    /// somewhere to go before the first event.
    fn open(&mut self, _l: &mut Loaded) -> Result<()> {
        Ok(())
    }

    /// After the program is attached, before the workload runs; what it says goes in the
    /// detail as `bpf_trace_printk_event`.
    fn armed(&mut self, _ctx: &mut Ctx) -> Result<Option<&'static str>> {
        Ok(None)
    }

    /// After the run and the detach: everything the channel holds.
    fn drain(&mut self, ctx: &Ctx, l: &mut Loaded) -> Result<Output>;
}

/// Load `object`, attach `program` to sys_enter_openat for the workload, run it, detach, drain
/// `channel` and compare what came out with the workload's N calls.
pub fn run_output(
    ctx: &mut Ctx,
    object: Object,
    program: &'static str,
    mut channel: impl Channel,
) -> Result<ScenarioResult> {
    let id = ctx.id();
    guarded(id, || {
        let w = OpenatWorkload::start(ctx)?;
        let pid = w.pid();
        channel.prepare(ctx, w.n)?;
        let hook = Hook::TracePoint("syscalls", "sys_enter_openat");
        let t = Instant::now();
        let mut l = Loaded::new(object, pid)?;
        channel.open(&mut l)?;
        let load_ms = attach(&mut l, program, &hook)?;
        let printk_event = channel.armed(ctx)?;
        let attach_ms = ms(t);
        let (done, run_ms) = release(w.running, ctx)?;
        let t = Instant::now();
        detach(&mut l, program)?;
        let detach_ms = ms(t);
        let out = channel.drain(ctx, &mut l)?;
        let counts = l.counts()?;
        drop(channel);
        drop(l);

        let (summary, problems) = openat_summary(&done);
        let mine = out.events.iter().filter(|e| e.pid == pid && e.tgid == pid).count() as u64;
        let named = out.events.iter().filter(|e| e.pid == pid && e.name() == w.path).count() as u64;
        let n = w.n;
        let mut c = openat_loop::counts(n, &summary, format!("{program} hits of the workload"), counts.hits);
        c.extend([
            count("records received", n, out.events.len() as u64),
            count(format!("records with pid {pid}"), n, mine),
            count(format!("records with pid {pid} and filename {:?}", w.path), n, named),
            count("records the program could not output", 0, counts.dropped),
            count("records lost by the channel", 0, out.lost),
        ]);
        let mut r = verdict(id, c, problems);
        r.timings.attach_ms = attach_ms;
        r.timings.run_ms = run_ms;
        r.timings.detach_ms = detach_ms;
        r.detail = serde_json::json!({
            "object": object.name,
            "program": program,
            "hook": hook.describe(),
            "pid": pid,
            "verifier_load_ms": load_ms,
            "hits_filtered_out": counts.others,
            "bpf_trace_printk_event": printk_event,
        });
        Ok(r.with_excerpt(&out.raw))
    })
}
