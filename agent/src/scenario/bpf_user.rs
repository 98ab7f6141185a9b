//! BPF on user space and on samples: uprobe and uretprobe on the `hello` workload's named
//! functions, and a perf_event program on cpu-clock samples of `openat-loop`.
//!
//! `hello N` calls hello_greet("hello, world!\n") N times and hello_add(i, i + 1) for i in
//! 0..N, so an entry probe sees N messages and a return probe the values 1, 3, 5, ... in order.
//! Sampling is statistical: the perf_event check is that samples arrive (at least one), all of
//! them from the workload (pid and comm), and none from other tasks, which the per-process
//! event scope must exclude.

use super::bpf::{
    event_counts, events_excerpt, guarded, openat_summary, reqs, run_program, workload_problems, Hook, OpenatWorkload,
    Payload, HELLO,
};
use super::workload::{self, GREETING};
use super::{count, openat, verdict, Ctx, Req, Scenario};
use crate::bpf;
use crate::bpf::event::MAX_EVENTS;
use crate::elf;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::path::Path;

pub struct HelloBpf {
    ret: bool,
}

pub const UPROBE: HelloBpf = HelloBpf { ret: false };
pub const URETPROBE: HelloBpf = HelloBpf { ret: true };

impl Scenario for HelloBpf {
    fn id(&self) -> &'static str {
        if self.ret {
            "bpf.uretprobe.hello"
        } else {
            "bpf.uprobe.hello"
        }
    }

    fn since(&self) -> &'static str {
        "4.3"
    }

    fn summary(&self) -> &'static str {
        if self.ret {
            "BPF uretprobe on hello_add: N hits returning 1, 3, 5, ... in order"
        } else {
            "BPF uprobe on hello_greet: N hits, each reading the message argument from user memory"
        }
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "10")]
    }

    fn requirements(&self) -> Vec<Req> {
        reqs(HELLO)
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let id = self.id();
        guarded(id, || {
            let n = ctx.declared_count()?;
            let (func, program) =
                if self.ret { ("hello_add", "uretprobe_hello_add") } else { ("hello_greet", "uprobe_hello_greet") };
            let offset = elf::function_offset(Path::new(HELLO), func)?;
            let w = workload::start_hello(n)?;
            let pid = w.pid() as u32;
            let hook = Hook::UProbe { path: HELLO, offset, pid };
            let p = run_program(ctx, bpf::PROBES, pid, program, &hook, w)?;

            let mut c = vec![count("hello, world! lines printed", n, workload::greetings(&p.done.stdout))];
            let payload = Payload { name: (!self.ret).then_some(GREETING), aux: None };
            c.extend(event_counts(program, n, pid, &p.counts, &p.events, &payload));
            if self.ret {
                let in_order = p.events.iter().enumerate().filter(|(i, e)| e.aux == 2 * *i as i64 + 1).count() as u64;
                c.push(count("return values 1, 3, 5, ... in order", n.min(MAX_EVENTS), in_order));
            }
            let mut r = verdict(id, c, workload_problems(&p.done));
            p.timings(&mut r);
            r.detail = serde_json::json!({
                "object": bpf::PROBES.name,
                "program": program,
                "hook": hook.describe(),
                "file_offset": offset,
                "pid": pid,
                "verifier_load_ms": p.load_ms,
                "hits_filtered_out": p.counts.others,
            });
            Ok(r.with_excerpt(&events_excerpt(&p.events, 5)))
        })
    }
}

/// cpu-clock sampling of `openat-loop` (default 20000 calls, long enough for many samples).
pub struct CpuClockBpf;

pub const PERF_EVENT: CpuClockBpf = CpuClockBpf;
/// One sample per millisecond of the workload's CPU time.
const PERIOD_NS: u64 = 1_000_000;

impl Scenario for CpuClockBpf {
    fn id(&self) -> &'static str {
        "bpf.perf_event.cpu_clock"
    }

    fn since(&self) -> &'static str {
        "4.9"
    }

    fn summary(&self) -> &'static str {
        "BPF perf_event program on cpu-clock samples of the workload: samples arrive, all from its pid and comm"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "20000")]
    }

    fn requirements(&self) -> Vec<Req> {
        reqs(openat::OPENAT_LOOP)
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let id = self.id();
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
            let c = vec![
                count("openat calls made by the workload", w.n, summary.calls),
                count("samples of the workload: at least one", 1, counts.hits.min(1)),
                count("samples recorded with the workload's pid and comm openat-loop", recorded, from_workload),
                count(format!("samples recorded with sample_period {PERIOD_NS}"), recorded, period),
                count("samples of other tasks (outside the event's scope)", 0, counts.others),
            ];
            let mut r = verdict(id, c, problems);
            p.timings(&mut r);
            r.detail = serde_json::json!({
                "object": bpf::PROBES.name,
                "program": program,
                "hook": hook.describe(),
                "pid": pid,
                "samples": counts.hits,
                "workload_wall_ms": p.done.wall.as_secs_f64() * 1000.0,
                "verifier_load_ms": p.load_ms,
            });
            Ok(r.with_excerpt(&events_excerpt(events, 5)))
        })
    }
}
