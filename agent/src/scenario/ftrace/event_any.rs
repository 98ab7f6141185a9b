//! `ftrace.event.any`: any tracepoint through tracefs `events/` for any workload — the question
//! a user brings ("does `sched/sched_process_exec` fire for my program on this kernel?"):
//! `--param event=SYSTEM/NAME` and `kmatrix run --workload 'CMD'`.
//!
//! The entries counted are those of the workload's process tree (`support::user_workload`). An
//! event the kernel does not have is `unsupported`, with the events of its system as evidence.

use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::openat_loop;
use crate::scenario::support::user_workload::{self, UserWorkload};
use crate::scenario::support::verdict::unsupported;
use anyhow::{bail, Result};
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

/// The default event: the workload's own call for `openat-loop`.
const OPENAT: &str = "syscalls/sys_enter_openat";

/// `events/<event>/enable` for the workload: with the defaults (sys_enter_openat,
/// `openat-loop 100`) exactly N entries; for another event or a user's command, `expect_runs`
/// entries or at least one.
// Trace events through tracefs `events/`: 2.6.31.
pub const ANY: Scenario = Meta::new("ftrace.event.any", "2.6.31")
    .summary(
        "any tracepoint (`event`, default syscalls/sys_enter_openat) through events/ while any workload \
        runs (`workload`: openat-loop:N, hello:N, or a host command from `kmatrix run --workload`): the \
        entries of the workload's process tree, N for openat-loop on its own call, else expect_runs or at \
        least one",
    )
    .requires(&[Req::Tracefs, openat_loop::IN_IMAGE])
    .params(&[("event", OPENAT), ("workload", "openat-loop:100"), ("expect_runs", "")])
    .run(any);

/// `system/name`, each part a plain name: anything else would reach outside `events/`.
fn checked(event: &str) -> Result<&str> {
    let plain = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match event.split_once('/') {
        Some((sys, name)) if plain(sys) && plain(name) => Ok(event),
        _ => bail!("event={event:?} is not SYSTEM/NAME (for example sched/sched_process_exec)"),
    }
}

fn any(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let event = ctx.params.get("event").map(|e| e.trim().to_string()).filter(|e| !e.is_empty());
    let event = event.unwrap_or_else(|| OPENAT.to_string());
    checked(&event)?;
    let w = UserWorkload::from_params(ctx)?;
    if !ctx.tfs.exists(&format!("events/{event}/enable")) {
        let system = event.split('/').next().unwrap_or_default();
        let listed = std::fs::read_dir(ctx.tfs.path(&format!("events/{system}")))
            .map(|d| {
                let mut names: Vec<String> =
                    d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                names.sort();
                format!("events/{system}/: {}", names.join(" "))
            })
            .unwrap_or_else(|_| format!("no events/{system}/ on this kernel"));
        return Ok(unsupported(ctx.id(), format!("this kernel has no event {event}"), listed, None));
    }
    let expected = w.expected(ctx, event == OPENAT)?;
    openat_loop::fit_buffer(ctx, expected.unwrap_or(100), 128)?;
    let seen = user_workload::observe(ctx, &w, Instant::now(), &event)?;
    let what = format!("{event} entries of the workload's processes");
    Ok(seen.verdict(ctx, &w, &what, expected, Vec::new(), serde_json::json!({ "event": event })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_system_slash_name_is_an_event() {
        assert!(checked("sched/sched_process_exec").is_ok());
        for bad in ["sched", "../x/y", "sched/../../x", "/sched/x", "a/b/c", "sched/"] {
            assert!(checked(bad).is_err(), "{bad}");
        }
    }
}
