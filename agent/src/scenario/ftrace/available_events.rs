//! `ftrace.available_events.*`: the notes' `cat available_events | grep openat` and `ls
//! events/` (Documentation/trace/events.rst, "Using Event Tracing"): the event list tracefs
//! prints, checked against the event directories it creates. Not for enabling events (`event`).

use super::event;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::verdict::{count, verdict};
use anyhow::{Context, Result};
use kmatrix_proto::{Count, ScenarioResult};
use std::collections::BTreeSet;

/// `available_events` (`system:event` lines) and `ls events/` agree: every line names an
/// `events/<system>/<event>` directory and every such directory is listed, but for the `ftrace`
/// system's own events, which cannot be enabled and so are never listed; the openat lines
/// (`grep openat`) are the same on both sides, `syscalls:sys_enter_openat` among them.
// available_events and the events/ directory came together in 2.6.30.
pub const LISTING: Scenario = Meta::new("ftrace.available_events.listing", "2.6.30")
    .summary("available_events agrees with ls events/*/ (the ftrace system apart); grep openat finds syscalls:sys_enter_openat on both")
    .requires(&[Req::Tracefs, Req::File("available_events"), Req::Event(event::OPENAT)])
    .run(listing);

fn listing(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let text = ctx.tfs.read("available_events")?;
    let listed: BTreeSet<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    let events = ctx.tfs.path("events");
    let mut dirs = BTreeSet::new();
    let systems = std::fs::read_dir(&events).with_context(|| format!("ls {}", events.display()))?;
    for sys in systems.flatten().filter(|e| e.path().is_dir()) {
        let name = sys.file_name().to_string_lossy().into_owned();
        for ev in std::fs::read_dir(sys.path())?.flatten().filter(|e| e.path().is_dir()) {
            dirs.insert(format!("{name}:{}", ev.file_name().to_string_lossy()));
        }
    }
    let (counts, problems) = agreement(&listed, &dirs);
    let mut r = verdict(ctx.id(), counts, problems);
    let systems: BTreeSet<&str> = dirs.iter().filter_map(|d| d.split_once(':').map(|x| x.0)).collect();
    r.detail = serde_json::json!({ "listed": listed.len(), "directories": dirs.len(), "systems": systems });
    let openat: Vec<&str> = text.lines().filter(|l| l.contains("openat")).collect();
    Ok(r.with_excerpt(&openat.join("\n")))
}

/// The counts of `listed` (available_events) against `dirs` (`system:event` of events/), and
/// the entries of each side missing from the other, named.
fn agreement(listed: &BTreeSet<String>, dirs: &BTreeSet<String>) -> (Vec<Count>, Vec<String>) {
    // The ftrace system's events (ftrace:function, ...) have directories but no enable file.
    let enableable: BTreeSet<&String> = dirs.iter().filter(|d| !d.starts_with("ftrace:")).collect();
    let only_listed: Vec<&String> = listed.iter().filter(|l| !dirs.contains(*l)).collect();
    let only_dirs: Vec<&&String> = enableable.iter().filter(|d| !listed.contains(**d)).collect();
    let grep =
        |set: &mut dyn Iterator<Item = &String>| set.filter(|e| e.contains("openat")).cloned().collect::<Vec<_>>();
    let (listed_openat, dir_openat) = (grep(&mut listed.iter()), grep(&mut enableable.iter().copied()));
    let mut problems = Vec::new();
    if !only_listed.is_empty() {
        problems.push(format!("listed without a directory: {only_listed:?}"));
    }
    if !only_dirs.is_empty() {
        problems.push(format!("directories not listed: {only_dirs:?}"));
    }
    if listed_openat != dir_openat {
        problems.push(format!("grep openat: {listed_openat:?} listed, {dir_openat:?} in events/"));
    }
    let both = |n: usize, missing: usize| (n as u64, (n - missing) as u64);
    let (ln, lo) = both(listed.len(), only_listed.len());
    let (dn, doo) = both(enableable.len(), only_dirs.len());
    let counts = vec![
        count("available_events lines naming an events/<system>/<event> directory", ln, lo),
        count("events/<system>/<event> directories listed (the ftrace system apart)", dn, doo),
        count(
            "syscalls:sys_enter_openat in available_events",
            1,
            u64::from(listed.contains("syscalls:sys_enter_openat")),
        ),
    ];
    (counts, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_list_and_the_directories_are_compared_both_ways() {
        let dirs =
            set(&["syscalls:sys_enter_openat", "syscalls:sys_exit_openat", "sched:sched_switch", "ftrace:function"]);
        let listed = set(&["syscalls:sys_enter_openat", "syscalls:sys_exit_openat", "sched:sched_switch"]);
        let (c, p) = agreement(&listed, &dirs);
        assert!(p.is_empty(), "{p:?}");
        assert!(c.iter().all(|c| c.expected == c.observed), "{c:?}");
        // A directory the list leaves out, and a line without a directory, each fail.
        let (c, p) = agreement(&set(&["syscalls:sys_enter_openat", "sched:gone"]), &dirs);
        assert_eq!((c[0].expected, c[0].observed), (2, 1));
        assert_eq!((c[1].expected, c[1].observed), (3, 1));
        assert_eq!(p.len(), 3, "{p:?}");
        let (c, _) = agreement(&set(&["sched:sched_switch"]), &set(&["sched:sched_switch"]));
        assert_eq!(c[2].observed, 0);
    }
}
