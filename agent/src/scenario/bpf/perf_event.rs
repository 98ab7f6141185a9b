//! `bpf.perf_event.*`: a BPF perf_event program on cpu-clock samples of `openat-loop`.
//!
//! Sampling is statistical: the check is that samples arrive (at least one), all of them from
//! the workload (pid and comm), and none from other tasks, which the per-process event scope
//! must exclude. Not for perf sampling without BPF (`perf/sampling.rs`).

use crate::bpf;
use crate::bpf::event::MAX_EVENTS;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::support::bpf::{guarded, openat_summary, run_program, Hook, OpenatWorkload, PERF_EVENT_SINCE};
use crate::scenario::support::openat_loop;
use crate::scenario::support::verdict::count;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

/// One sample per millisecond of the workload's CPU time.
const PERIOD_NS: u64 = 1_000_000;

/// cpu-clock sampling of `openat-loop` (default 20000 calls, long enough for many samples).
pub const CPU_CLOCK: Scenario = Meta::new("bpf.perf_event.cpu_clock", PERF_EVENT_SINCE)
    .summary("BPF perf_event program on cpu-clock samples of the workload: samples arrive, all from its pid and comm")
    .on_openat_loop(&[("count", "20000")])
    .run(cpu_clock);

fn cpu_clock(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let id = ctx.id();
    guarded(id, || {
        let w = OpenatWorkload::start(ctx)?;
        let pid = w.pid();
        let program = "perf_event_cpu_clock";
        let hook = Hook::CpuClock { pid, period_ns: PERIOD_NS };
        let p = run_program(ctx, bpf::PROBES, pid, program, &hook, w.running)?;
        let (counts, events) = (&p.counts, &p.events);

        let (summary, problems) = openat_summary(&p.done);
        let recorded = counts.hits.min(MAX_EVENTS);
        let from_workload =
            events.iter().filter(|e| e.pid == pid && e.tgid == pid && e.name() == "openat-loop").count() as u64;
        let period = events.iter().filter(|e| e.aux == PERIOD_NS as i64).count() as u64;
        let mut c = openat_loop::made(w.n, &summary);
        c.extend([
            count("samples of the workload: at least one", 1, counts.hits.min(1)),
            count("samples recorded with the workload's pid and comm openat-loop", recorded, from_workload),
            count(format!("samples recorded with sample_period {PERIOD_NS}"), recorded, period),
            count("samples of other tasks (outside the event's scope)", 0, counts.others),
        ]);
        let fields =
            serde_json::json!({ "samples": counts.hits, "workload_wall_ms": p.done.wall.as_secs_f64() * 1000.0 });
        Ok(p.result(id, c, problems, fields))
    })
}
