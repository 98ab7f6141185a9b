//! `perf.software.*`: the software counters `perf stat` shows by default (perf-stat(1)):
//! task-clock, context-switches, page-faults, cpu-migrations, on the `hello` workload.
//!
//! Not for the hardware counters (`hardware.rs`) or sampling (`sampling.rs`).

use crate::perf::{self, Attr, Event};
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::support::gated::workload_problems;
use crate::scenario::support::perf::{count_run, gated_hello, open, SOFTWARE_ON_HELLO};
use crate::scenario::support::verdict::count;
use crate::scenario::support::workload;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Duration;

/// The software counters on `hello N`. hello reports what the kernel counted for it through
/// getrusage between its gate and its last greeting; the counters run from before the gate
/// opens to its exit, so each must be at least hello's own count (and task-clock > 0, within the
/// wall time).
// perf_event_open and its software events, 2.6.31.
pub const HELLO: Scenario = Meta::new("perf.software.hello", "2.6.31")
    .summary(
        "software counters on hello N: task-clock > 0 and within wall time, context-switches and page-faults \
        at least hello's own getrusage counts, page-faults > 0",
    )
    .requires(&[SOFTWARE_ON_HELLO])
    .params(&[("count", "1000")])
    .run(hello);

fn hello(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, attach, w) = gated_hello(ctx)?;
    let pid = w.pid();
    // Its switch-out for the gate must not land in the counters: wait until it sleeps there.
    w.wait_at_gate(Duration::from_secs(10))?;
    let names = ["task-clock", "context-switches", "page-faults", "cpu-migrations"];
    let configs = [perf::SW_TASK_CLOCK, perf::SW_CONTEXT_SWITCHES, perf::SW_PAGE_FAULTS, perf::SW_CPU_MIGRATIONS];
    let mut events = Vec::new();
    for (name, config) in names.iter().zip(configs) {
        events.push(open(Attr::counter(perf::TYPE_SOFTWARE, config), pid, None, name)?);
    }
    let refs: Vec<&Event> = events.iter().collect();
    let (a, readings) = count_run(ctx, w, attach, &refs)?;
    let done = &a.done;
    let own = workload::summary(&done.stderr, "hello")?;
    let switches = (workload::num(&own, "nvcsw")? + workload::num(&own, "nivcsw")?) as u64;
    let faults = (workload::num(&own, "minflt")? + workload::num(&own, "majflt")?) as u64;
    let [task_clock, ctx_switches, page_faults, migrations] = [0, 1, 2, 3].map(|i| readings[i].value);
    let greetings = workload::greetings(&done.stdout);
    let mut problems = workload_problems(done);
    let wall_ns = done.wall.as_nanos() as u64;
    if task_clock == 0 || task_clock > wall_ns {
        problems.push(format!("task-clock {task_clock} ns, expected > 0 and <= the wall time {wall_ns} ns"));
    }
    if ctx_switches < switches {
        problems.push(format!("context-switches {ctx_switches} < hello's own count {switches}"));
    }
    if page_faults == 0 || page_faults < faults {
        problems.push(format!("page-faults {page_faults}, expected > 0 and >= hello's own count {faults}"));
    }
    if readings.iter().any(|r| r.enabled_ns == 0) {
        problems.push(format!("a counter was never enabled: {readings:?}"));
    }
    let mut r = a.verdict(ctx.id(), vec![count("hello, world! lines printed", n, greetings)], problems);
    r.detail = serde_json::json!({
        "pid": pid,
        "task_clock_ns": task_clock,
        "context_switches": ctx_switches,
        "page_faults": page_faults,
        "cpu_migrations": migrations,
        "hello_getrusage": { "switches": switches, "faults": faults },
        "wall_ns": wall_ns,
    });
    Ok(r)
}
