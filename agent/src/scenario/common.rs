//! What the tracefs and perf scenarios share around a gated workload: arming probes while it
//! waits at its start gate, releasing it and disarming once it has ended (with the timings of
//! both), and turning how it ended into problems for the verdict.
//!
//! Probes are disarmed through files opened before the release (`enable`, `tracing_on`), so the
//! disarm itself makes no `openat` that a probe on the openat path could count.

use super::{ms, Ctx};
use crate::process::{Finished, Running};
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::fs::File;
use std::time::Instant;

/// A gated workload's run with its probes armed: its pid, how it ended, and the timings.
pub struct Armed {
    pub pid: i32,
    pub done: Finished,
    /// From `attach` (before the workload was spawned) to the release.
    pub attach_ms: f64,
    /// From the release to the disarm.
    pub run_ms: f64,
}

impl Armed {
    /// The run's attach and run times into `r`.
    pub fn timings(&self, r: &mut ScenarioResult) {
        r.timings.attach_ms = self.attach_ms;
        r.timings.run_ms = self.run_ms;
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
    Ok(Armed { pid, done, attach_ms, run_ms: ms(run) })
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

/// Define a probe by writing `definition` to `file` (`kprobe_events`, `uprobe_events`,
/// `dynamic_events`), then run `w` with its event `group/name` filtered to the workload's pid.
pub fn run_probe(
    ctx: &mut Ctx,
    w: Running,
    attach: Instant,
    file: &str,
    definition: &str,
    event: &str,
) -> Result<Armed> {
    ctx.tfs.write(file, definition)?;
    let filter = pid_filter(w.pid());
    run_with_events(ctx, w, attach, &[(event, filter)])
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

/// The entries of probe event `event` (bodies `<event>: ...`) recorded for `pid`.
pub fn entries_of<'t, 'a>(parsed: &'t trace::Trace<'a>, pid: i32, event: &str) -> Vec<&'t trace::Entry<'a>> {
    let prefix = format!("{event}: ");
    parsed.entries.iter().filter(|e| e.pid == pid && e.body.starts_with(&prefix)).collect()
}
