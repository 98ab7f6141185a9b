//! `ftrace.percpu.sys_enter_openat`: the ring buffer per CPU. One `openat-loop N` is pinned to
//! each online CPU (`sched_setaffinity` while it waits at its start gate), all run at once with
//! `syscalls/sys_enter_openat` filtered to their pids, and each CPU's own buffer
//! (`per_cpu/cpuK/trace`) must hold exactly N entries of the workload pinned to K and none of
//! the others; the merged `trace` must show every workload's N entries in its CPU column as K.
//!
//! Needs two CPUs (`--cpus 2`): on one, there is no second buffer to keep apart.

use super::event::OPENAT;
use crate::cpus;
use crate::excerpt;
use crate::process::Running;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::{workload_problems, Enables};
use crate::scenario::support::openat_loop;
use crate::scenario::support::verdict::{count, ms, verdict};
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

// Per-CPU ring buffers and the syscall tracepoints both predate 2.6.33.
pub const SYS_ENTER_OPENAT: Scenario = Meta::new("ftrace.percpu.sys_enter_openat", "2.6.33")
    .summary(
        "sys_enter_openat with an openat-loop N pinned to each CPU at once: per_cpu/cpuK/trace holds exactly \
         the N entries of the workload on K, and trace's CPU column agrees",
    )
    .requires(&[Req::Cpus(2), Req::Tracefs, Req::Event(OPENAT), Req::File("per_cpu/cpu1/trace")])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(run);

fn run(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path) = openat_loop::declared(ctx)?;
    let (online, online_text) = cpus::online()?;
    openat_loop::fit_buffer(ctx, n, 128)?;
    let attach = Instant::now();
    let mut workloads: Vec<(u32, Running)> = Vec::new();
    for &cpu in &online {
        let w = openat_loop::start(n, &path)?;
        cpus::pin(w.pid(), cpu)?;
        workloads.push((cpu, w));
    }
    let pids: Vec<i32> = workloads.iter().map(|(_, w)| w.pid()).collect();
    let filter = pids.iter().map(|p| format!("common_pid == {p}")).collect::<Vec<_>>().join(" || ");
    ctx.tfs.set_filter(OPENAT, &filter)?;
    let mut enables = Enables::default();
    enables.open(ctx, OPENAT)?;
    enables.set(ctx, true)?;
    let attach_ms = ms(attach);
    let run = Instant::now();
    for (_, w) in &mut workloads {
        w.release()?;
    }
    let timeout = ctx.timeout()?;
    let mut done = Vec::new();
    for (cpu, w) in workloads {
        done.push((cpu, w.pid(), w.finish(timeout)?));
    }
    enables.set(ctx, false)?;
    let run_ms = ms(run);

    let merged = ctx.tfs.read("trace")?;
    let merged_parsed = trace::parse(&merged);
    let mut problems = Vec::new();
    if merged_parsed.lost > 0 {
        problems.push(format!("{} events lost", merged_parsed.lost));
    }
    let is_openat = |e: &&trace::Entry| e.body.starts_with("sys_openat(");
    let mut counts = Vec::new();
    let mut per_cpu_text = String::new();
    for (cpu, pid, finished) in &done {
        problems.extend(workload_problems(finished));
        let summary = openat_loop::account(finished, &mut problems);
        counts.push(count(format!("openat calls that succeeded in the workload pinned to cpu{cpu}"), n, summary.ok));
        let text = ctx.tfs.read(&format!("per_cpu/cpu{cpu}/trace"))?;
        let parsed = trace::parse(&text);
        if parsed.lost > 0 {
            problems.push(format!("cpu{cpu}: {} events lost", parsed.lost));
        }
        let mine = parsed.entries.iter().filter(is_openat).filter(|e| e.pid == *pid).count() as u64;
        let others = parsed.entries.iter().filter(is_openat).filter(|e| e.pid != *pid).count() as u64;
        counts.push(count(format!("per_cpu/cpu{cpu}/trace entries of the workload pinned to cpu{cpu}"), n, mine));
        counts.push(count(format!("per_cpu/cpu{cpu}/trace entries of the workloads pinned elsewhere"), 0, others));
        let column = merged_parsed.entries.iter().filter(is_openat).filter(|e| e.pid == *pid && e.cpu == *cpu).count();
        counts.push(count(format!("trace entries of the cpu{cpu} workload with CPU column {cpu}"), n, column as u64));
        per_cpu_text.push_str(&format!("== per_cpu/cpu{cpu}/trace\n{}", excerpt::head_entries(&text, 3)));
    }
    let mut r = verdict(ctx.id(), counts, problems);
    r.timings.attach_ms = attach_ms;
    r.timings.run_ms = run_ms;
    r.detail = serde_json::json!({
        "online": online_text,
        "workloads": done.iter().map(|(cpu, pid, _)| serde_json::json!({"cpu": cpu, "pid": pid})).collect::<Vec<_>>(),
        "filter": filter,
    });
    Ok(r.with_excerpt(&per_cpu_text))
}
