//! `sched_switch` scenarios on the `yield-loop` workload, enabled through the event's `enable`
//! file and through `set_event` as the seeds do (`echo sched_switch > set_event`).
//!
//! The check is exact: the kernel bumps a task's nvcsw/nivcsw at the same point of `__schedule`
//! where it emits `sched_switch` for it as `prev`. The agent reads the counters from
//! `/proc/<pid>/status` while the workload sleeps at its start gate (before the events are
//! enabled) and again once it has exited and made its last switch (a zombie, not yet reaped):
//! every switch with `prev_pid` the workload in the trace is one of the difference, and the
//! difference has no other. (Fencing with the workload's own getrusage calls is not exact: a
//! switch can fall between a snapshot and the syscall's trace event, by preemption or at the
//! might_sleep point of getrusage's `mmput`.)

use super::common::trace_problems;
use super::{count, ms, verdict, workload, Ctx, Req, Scenario};
use crate::excerpt;
use crate::process;
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::{Duration, Instant};

pub const ALL: [&'static dyn Scenario; 2] = [&SchedSwitch { set_event: false }, &SchedSwitch { set_event: true }];

const SWITCH: &str = "sched/sched_switch";
const COMM: &str = "yield-loop";

pub struct SchedSwitch {
    set_event: bool,
}

impl Scenario for SchedSwitch {
    fn id(&self) -> &'static str {
        if self.set_event {
            "ftrace.set_event.sched_switch"
        } else {
            "ftrace.event.sched_switch"
        }
    }

    fn summary(&self) -> &'static str {
        if self.set_event {
            "`echo sched_switch > set_event` on yield-loop N: switches out of the workload == the kernel's \
             count in /proc/<pid>/status, every record with its comm"
        } else {
            "sched/sched_switch enabled on yield-loop N: switches out of the workload == the kernel's count in \
             /proc/<pid>/status, every record with its comm"
        }
    }

    fn since(&self) -> &'static str {
        // sched_switch as a TRACE_EVENT, and set_event, both date from 2.6.30.
        "2.6.30"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "200")]
    }

    fn requirements(&self) -> Vec<Req> {
        let mut r = vec![Req::Tracefs, Req::Event(SWITCH)];
        if self.set_event {
            r.push(Req::File("set_event"));
        }
        r.push(Req::Program(workload::YIELD_LOOP));
        r
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let attach = Instant::now();
        let mut w = process::spawn(&[workload::YIELD_LOOP.to_string(), n.to_string()], true)?;
        let pid = w.pid();
        w.wait_at_gate(Duration::from_secs(10))?;
        let before = w.context_switches()?;
        ctx.tfs.set_filter(SWITCH, &format!("prev_pid == {pid} || next_pid == {pid}"))?;
        let mut set_event_text = None;
        if self.set_event {
            // As the seed writes it: the bare name matches sched_switch in every system.
            ctx.tfs.write("set_event", "sched_switch")?;
            set_event_text = Some(ctx.tfs.read("set_event")?);
        } else {
            ctx.tfs.write(&format!("events/{SWITCH}/enable"), "1")?;
        }
        let switch_enabled = ctx.tfs.read(&format!("events/{SWITCH}/enable"))?.trim().to_string();
        let attach_ms = ms(attach);
        let run = Instant::now();
        w.release()?;
        w.wait_exited(ctx.timeout()?)?;
        let after = w.context_switches()?;
        let done = w.finish(ctx.timeout()?)?;
        ctx.tfs.write("events/enable", "0")?;
        let run_ms = ms(run);

        let text = ctx.tfs.read("trace")?;
        let parsed = trace::parse(&text);
        let s = workload::summary(&done.stdout, COMM)?;
        let loop_switches = (workload::num(&s, "nvcsw")? + workload::num(&s, "nivcsw")?) as u64;
        let pid_s = pid.to_string();
        let switches: Vec<&trace::Entry> =
            parsed.entries.iter().filter(|e| e.body.starts_with("sched_switch:")).collect();
        let outs: Vec<&&trace::Entry> =
            switches.iter().filter(|e| e.field("prev_pid") == Some(pid_s.as_str())).collect();
        let ins: Vec<&&trace::Entry> =
            switches.iter().filter(|e| e.field("next_pid") == Some(pid_s.as_str())).collect();
        let outs_comm = outs.iter().filter(|e| e.field("prev_comm") == Some(COMM)).count() as u64;
        let ins_comm = ins.iter().filter(|e| e.field("next_comm") == Some(COMM)).count() as u64;
        let kernel_count = after.saturating_sub(before);
        let mut problems = trace_problems(&done, parsed.lost);
        if outs.is_empty() {
            problems.push("no switch out of the workload traced".into());
        }
        if switch_enabled != "1" {
            problems.push(format!("events/{SWITCH}/enable reads {switch_enabled:?} after enabling, expected 1"));
        }
        if let Some(t) = &set_event_text {
            if !t.lines().any(|l| l.trim() == "sched:sched_switch") {
                problems.push(format!("set_event does not list sched:sched_switch: {:?}", t.trim()));
            }
        }
        let mut r = verdict(
            self.id(),
            vec![
                count(
                    "switches out of the workload (== its /proc ctxt_switches delta)",
                    kernel_count,
                    outs.len() as u64,
                ),
                count("switches out with prev_comm=yield-loop", outs.len() as u64, outs_comm),
                count("switches in with next_comm=yield-loop", ins.len() as u64, ins_comm),
            ],
            problems,
        );
        r.timings.attach_ms = attach_ms;
        r.timings.run_ms = run_ms;
        r.detail = serde_json::json!({
            "pid": pid,
            "partner": workload::num(&s, "partner").ok(),
            "ctxt_switches_at_gate": before,
            "ctxt_switches_at_exit": after,
            "loop_switches_by_getrusage": loop_switches,
            "switches_in": ins.len(),
            "set_event": set_event_text.map(|t| t.trim().to_string()),
        });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 12)))
    }
}
