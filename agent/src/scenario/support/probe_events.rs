//! What the tracefs dynamic-probe scenarios (kprobe, uprobe, eprobe, fprobe events) share: their
//! event group, defining a probe and running the gated workload with it filtered to its pid,
//! picking the probe's entries out of `trace`, and reading `kprobe_profile`.
//!
//! Not for tracepoints that exist without a definition (`gated::run_with_events` alone), nor for
//! probes made through perf_event_open (`support::perf`).

use super::gated::{pid_filter, run_with_events, Armed};
use crate::process::Running;
use crate::scenario::meta::Ctx;
use crate::scenario::req::Req;
use crate::tracefs::{profile, trace};
use anyhow::{Context, Result};
use std::time::Instant;

/// The group every probe kmatrix defines goes in (`p:kmatrix/openat ...`).
pub const GROUP: &str = "kmatrix";

/// What a kprobe defined through tracefs needs: `kprobe_events` and `kprobe_profile`.
pub const KPROBE_EVENTS: Req = Req::All(&[Req::Tracefs, Req::File("kprobe_events"), Req::File("kprobe_profile")]);

/// What a uprobe defined through tracefs needs: `uprobe_events` and `uprobe_profile`.
pub const UPROBE_EVENTS: Req = Req::All(&[Req::Tracefs, Req::File("uprobe_events"), Req::File("uprobe_profile")]);

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

/// The entries of probe event `event` (bodies `<event>: ...`) recorded for `pid`.
pub fn entries_of<'t, 'a>(parsed: &'t trace::Trace<'a>, pid: i32, event: &str) -> Vec<&'t trace::Entry<'a>> {
    let prefix = format!("{event}: ");
    parsed.entries.iter().filter(|e| e.pid == pid && e.body.starts_with(&prefix)).collect()
}

/// `kprobe_profile` as read, and its line for `group/event`.
pub fn profile_of(ctx: &Ctx, group: &str, event: &str) -> Result<(String, profile::ProfileLine)> {
    let text = ctx.tfs.read("kprobe_profile")?;
    let lines = profile::parse(&text);
    let line = profile::find(&lines, group, event)
        .cloned()
        .with_context(|| format!("{group}/{event} missing from kprobe_profile"))?;
    Ok((text, line))
}
