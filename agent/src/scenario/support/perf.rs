//! What the perf_event_open scenarios of every family share (kprobe and uprobe PMUs,
//! tracepoints, software counters): opening a counter on the workload's task with a refusal as
//! [`Refused`], and counting over one gated run.
//!
//! Not for BPF perf_event programs (`support::bpf`), nor for the raw perf calls (`crate::perf`).

use super::gated::{release_and_disarm, workload_problems, Armed};
use super::openat_loop;
use super::workload;
use crate::perf::{self, Attr, Event, Reading};
use crate::process::Running;
use crate::scenario::meta::Ctx;
use crate::scenario::req::Req;
use crate::tracefs::Refused;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

/// What the software counter scenarios on `hello` need: the software PMU and the workload.
pub const SOFTWARE_ON_HELLO: Req = Req::All(&[Req::Pmu("software"), Req::Program(workload::HELLO)]);

/// `hello N` for a counting run, N the scenario's declared count: N, the attach clock (started
/// before the spawn, as [`count_run`] takes it) and the workload at its gate.
pub fn gated_hello(ctx: &Ctx) -> Result<(u64, Instant, Running)> {
    let n = ctx.declared_count()?;
    let attach = Instant::now();
    Ok((n, attach, workload::start_hello(n)?))
}

/// A refused perf call as a [`Refused`], so the runner reports `fail` with its errno.
pub fn refused(call: String, errno: i32) -> anyhow::Error {
    anyhow::Error::new(Refused { call, errno })
}

/// Open `attr` on `pid`, a refusal becoming [`Refused`] naming `what`.
pub fn open(attr: Attr, pid: i32, name: Option<&str>, what: &str) -> Result<Event> {
    perf::open(attr, pid, name).map_err(|e| refused(format!("perf_event_open({what}, pid {pid})"), e))
}

/// Enable `events`, release the gated workload, wait for it, disable and read each.
pub fn count_run(ctx: &mut Ctx, w: Running, attach: Instant, events: &[&Event]) -> Result<(Armed, Vec<Reading>)> {
    for e in events {
        e.enable().map_err(|errno| refused("ioctl(PERF_EVENT_IOC_ENABLE)".into(), errno))?;
    }
    let mut readings = Vec::new();
    let a = release_and_disarm(ctx, w, attach, |_| {
        for e in events {
            e.disable().map_err(|errno| refused("ioctl(PERF_EVENT_IOC_DISABLE)".into(), errno))?;
            readings.push(e.read().map_err(|errno| refused("read(perf event)".into(), errno))?);
        }
        Ok(())
    })?;
    Ok((a, readings))
}

/// `openat-loop N` with one counter, `open_counter(pid)`, on it: the calls made and the count,
/// named `what`, must both be N. The result (without detail), the workload's pid and the
/// counter's reading.
pub fn count_openat(
    ctx: &mut Ctx,
    what: String,
    open_counter: impl FnOnce(i32) -> Result<Event>,
) -> Result<(ScenarioResult, i32, Reading)> {
    let (n, path) = openat_loop::declared(ctx)?;
    let attach = Instant::now();
    let w = openat_loop::start(n, &path)?;
    let ev = open_counter(w.pid())?;
    let (a, readings) = count_run(ctx, w, attach, &[&ev])?;
    let mut problems = workload_problems(&a.done);
    let (_, counts) = a.openat_counts(n, &mut problems, what, readings[0].value);
    Ok((a.verdict(ctx.id(), counts, problems), a.pid, readings[0]))
}
