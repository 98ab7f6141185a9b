//! `tool.perf.*`: the host's `perf` (Debian's linux-perf) against the guest's kernel, as in
//! perf-list(1), perf-stat(1), perf-record(1).

use crate::mounts::TRACEFS;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::host_tool;
use crate::scenario::support::verdict::{count, verdict};
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::collections::BTreeSet;
use std::time::Duration;

const PERF: Req = Req::HostProgram { path: "/usr/bin/perf", package: "linux-perf" };

/// `perf list tracepoint` names `syscalls:sys_enter_openat` and lists exactly the syscall events
/// the guest's tracefs has.
// Tracepoint listing through tracefs/debugfs is as old as perf itself (2.6.31).
pub const LIST: Scenario = Meta::new("tool.perf.list", "2.6.31")
    .summary("perf list tracepoint names syscalls:sys_enter_openat and agrees with the guest's events/syscalls")
    .requires(&[Req::Tracefs, Req::Event("syscalls/sys_enter_openat"), PERF])
    .run(list);

fn list(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let out = host_tool::run(&["/usr/bin/perf", "list", "--no-desc", "tracepoint"], Duration::from_secs(60))?;
    let listed: BTreeSet<String> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("syscalls:"))
        .map(str::to_string)
        .collect();
    let events: BTreeSet<String> = std::fs::read_dir(format!("{TRACEFS}/events/syscalls"))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| format!("syscalls:{}", e.file_name().to_string_lossy()))
        .collect();
    let mut problems = Vec::new();
    if out.exit_code != Some(0) {
        problems.push(format!("perf list: {}: {}", host_tool::ended(&out), out.stderr.trim()));
    }
    let only_perf: Vec<&String> = listed.difference(&events).collect();
    let only_tracefs: Vec<&String> = events.difference(&listed).collect();
    if !only_perf.is_empty() {
        problems.push(format!("perf lists events tracefs lacks: {only_perf:?}"));
    }
    if !only_tracefs.is_empty() {
        problems.push(format!("tracefs has events perf does not list: {only_tracefs:?}"));
    }
    let openat = u64::from(listed.contains("syscalls:sys_enter_openat"));
    let counts = vec![
        count("syscalls:sys_enter_openat listed by perf", 1, openat),
        count(
            "syscall events listed by perf and in tracefs",
            events.len() as u64,
            listed.intersection(&events).count() as u64,
        ),
    ];
    let mut r = verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({ "perf_syscall_events": listed.len(), "tracefs_syscall_events": events.len() });
    Ok(r.with_excerpt(&out.stdout.lines().filter(|l| l.contains("openat")).collect::<Vec<_>>().join("\n")))
}
