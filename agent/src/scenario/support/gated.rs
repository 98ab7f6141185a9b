//! What the tracefs and perf scenarios share around a gated workload: arming probes while it
//! waits at its start gate, releasing it and disarming once it has ended (with the timings of
//! both), and turning how it ended into problems for the verdict.
//!
//! Probes are disarmed through files opened before the release (`enable`, `tracing_on`), so the
//! disarm itself makes no `openat` that a probe on the openat path could count. Not for BPF
//! programs, which attach and detach through aya (`support::bpf`).

use super::openat_loop;
use super::verdict::{ms, verdict};
use crate::process::{Finished, Running};
use crate::scenario::meta::Ctx;
use anyhow::Result;
use kmatrix_proto::{Count, ScenarioResult, Timings};
use std::fs::File;
use std::time::Instant;

/// A gated workload's run with its probes armed: its pid, how it ended, and the timings
/// (attach: from `attach`, before the workload was spawned, to the release; run: from the
/// release to the disarm).
pub struct Armed {
    pub pid: i32,
    pub done: Finished,
    pub timings: Timings,
}

impl Armed {
    /// The run's timings into `r`.
    pub fn timings(&self, r: &mut ScenarioResult) {
        r.timings = self.timings.clone();
    }

    /// The `openat-loop` workload's account of this run (an unreadable one is a problem) and
    /// [`openat_loop::counts`]: what it did against N, and the tracing path's `seen` calls.
    pub fn openat_counts(
        &self,
        n: u64,
        problems: &mut Vec<String>,
        what: impl Into<String>,
        seen: u64,
    ) -> (openat_loop::Summary, Vec<Count>) {
        let summary = openat_loop::account(&self.done, problems);
        let counts = openat_loop::counts(n, &summary, what, seen);
        (summary, counts)
    }

    /// The [`verdict`] on what this run counted, with its timings.
    pub fn verdict(&self, id: &str, counts: Vec<Count>, problems: Vec<String>) -> ScenarioResult {
        let mut r = verdict(id, counts, problems);
        self.timings(&mut r);
        r
    }
}

/// Release the gated `w`, wait for it to end, then `disarm`. Attach time runs from `attach` to
/// the release, run time from the release to the end of `disarm`.
pub fn release_and_disarm(
    ctx: &mut Ctx,
    mut w: Running,
    attach: Instant,
    disarm: impl FnOnce(&mut Ctx) -> Result<()>,
) -> Result<Armed> {
    let pid = w.pid();
    let attach_ms = ms(attach);
    let run = Instant::now();
    w.release()?;
    let done = w.finish(ctx.timeout()?)?;
    disarm(ctx)?;
    Ok(Armed { pid, done, timings: Timings { attach_ms, run_ms: ms(run), detach_ms: 0.0 } })
}

/// `enable` files held open, so that switching them after the workload ran adds no openat of the
/// agent's own.
#[derive(Default)]
pub struct Enables(Vec<(File, String)>);

impl Enables {
    /// Open `events/<event>/enable` (`event` a `system/name`).
    pub fn open(&mut self, ctx: &Ctx, event: &str) -> Result<()> {
        self.open_file(ctx, format!("events/{event}/enable"))
    }

    /// Open the enable file `rel` (`events/<system>/enable` switches a whole system).
    pub fn open_file(&mut self, ctx: &Ctx, rel: impl Into<String>) -> Result<()> {
        let rel = rel.into();
        self.0.push((ctx.tfs.open_write(&rel)?, rel));
        Ok(())
    }

    /// Write `1` (on) or `0` to each file, in the order they were opened.
    pub fn set(&self, ctx: &Ctx, on: bool) -> Result<()> {
        for (fd, rel) in &self.0 {
            ctx.tfs.write_fd(fd, rel, if on { "1" } else { "0" })?;
        }
        Ok(())
    }
}

/// Set each event's filter (event, expression) and enable the events, release the gated `w`,
/// wait for it and disable them again; timings as [`release_and_disarm`].
pub fn run_with_events<E: AsRef<str>>(
    ctx: &mut Ctx,
    w: Running,
    attach: Instant,
    filters: &[(E, String)],
) -> Result<Armed> {
    let mut enables = Enables::default();
    for (event, expr) in filters {
        ctx.tfs.set_filter(event.as_ref(), expr)?;
        enables.open(ctx, event.as_ref())?;
    }
    enables.set(ctx, true)?;
    release_and_disarm(ctx, w, attach, |ctx| enables.set(ctx, false))
}

/// The event filter that keeps only the workload's own records.
pub fn pid_filter(pid: i32) -> String {
    format!("common_pid == {pid}")
}

/// Problems of a workload run: a bad end, with what it said on stderr.
pub fn workload_problems(done: &Finished) -> Vec<String> {
    if done.success() {
        Vec::new()
    } else {
        vec![format!("workload ended with {}: {}", done.describe(), done.stderr.trim())]
    }
}

/// Problems of a traced workload run: a bad end, and events the ring buffer lost.
pub fn trace_problems(done: &Finished, lost: u64) -> Vec<String> {
    let mut problems = workload_problems(done);
    if lost > 0 {
        problems.push(format!("{lost} events lost"));
    }
    problems
}
