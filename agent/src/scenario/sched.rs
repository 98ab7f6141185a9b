//! `sched_switch` scenarios on the `yield-loop` workload, enabled through the event's `enable`
//! file and through `set_event` as the seeds do (`echo sched_switch > set_event`).
//!
//! The check is exact: the kernel bumps a task's nvcsw/nivcsw at the same point of `__schedule`
//! where it emits `sched_switch` for it as `prev`, so the switches traced with `prev_pid` the
//! workload between its two getrusage calls (fenced by their `sys_exit_getrusage` and
//! `sys_enter_getrusage` events) equal the difference of the two getrusage snapshots it prints.

use super::events::workload_problems;
use super::{count, ms, verdict, workload, Ctx, Req, Scenario};
use crate::excerpt;
use crate::process;
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

pub const ALL: [&'static dyn Scenario; 2] = [&SchedSwitch { set_event: false }, &SchedSwitch { set_event: true }];

const SWITCH: &str = "sched/sched_switch";
const ENTER: &str = "syscalls/sys_enter_getrusage";
const EXIT: &str = "syscalls/sys_exit_getrusage";
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
            "`echo sched_switch > set_event` on yield-loop N: switches out of the workload == its getrusage \
             count, every record with its comm"
        } else {
            "sched/sched_switch enabled on yield-loop N: switches out of the workload == its getrusage count, \
             every record with its comm"
        }
    }

    fn since(&self) -> &'static str {
        // sched_switch as a TRACE_EVENT and set_event both date from 2.6.30; the getrusage fences
        // need the syscall tracepoints, 2.6.33.
        "2.6.33"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "200")]
    }

    fn requirements(&self) -> Vec<Req> {
        let mut r = vec![Req::Tracefs, Req::Event(SWITCH), Req::Event(ENTER), Req::Event(EXIT)];
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
        ctx.tfs.set_filter(SWITCH, &format!("prev_pid == {pid} || next_pid == {pid}"))?;
        ctx.tfs.set_filter(ENTER, &format!("common_pid == {pid}"))?;
        ctx.tfs.set_filter(EXIT, &format!("common_pid == {pid}"))?;
        let mut set_event_text = None;
        if self.set_event {
            // As the seed writes it: the bare name matches sched_switch in every system.
            ctx.tfs.write("set_event", "sched_switch")?;
            ctx.tfs.write("set_event", "syscalls:sys_enter_getrusage syscalls:sys_exit_getrusage")?;
            set_event_text = Some(ctx.tfs.read("set_event")?);
        } else {
            for ev in [SWITCH, ENTER, EXIT] {
                ctx.tfs.write(&format!("events/{ev}/enable"), "1")?;
            }
        }
        let switch_enabled = ctx.tfs.read(&format!("events/{SWITCH}/enable"))?.trim().to_string();
        let attach_ms = ms(attach);
        let run = Instant::now();
        w.release()?;
        let done = w.finish(ctx.timeout()?)?;
        ctx.tfs.write("events/enable", "0")?;
        let run_ms = ms(run);

        let text = ctx.tfs.read("trace")?;
        let parsed = trace::parse(&text);
        let s = workload::summary(&done.stdout, COMM)?;
        let rusage = (workload::num(&s, "nvcsw")? + workload::num(&s, "nivcsw")?) as u64;
        let pid_s = pid.to_string();
        let window = fenced(&parsed.entries, pid);
        let out_in_window = window
            .iter()
            .filter(|e| e.body.starts_with("sched_switch:") && e.field("prev_pid") == Some(pid_s.as_str()))
            .count() as u64;
        let switches: Vec<&trace::Entry> =
            parsed.entries.iter().filter(|e| e.body.starts_with("sched_switch:")).collect();
        let outs: Vec<&&trace::Entry> = switches.iter().filter(|e| e.field("prev_pid") == Some(pid_s.as_str())).collect();
        let ins: Vec<&&trace::Entry> = switches.iter().filter(|e| e.field("next_pid") == Some(pid_s.as_str())).collect();
        let outs_comm = outs.iter().filter(|e| e.field("prev_comm") == Some(COMM)).count() as u64;
        let ins_comm = ins.iter().filter(|e| e.field("next_comm") == Some(COMM)).count() as u64;
        let mut problems = workload_problems(&done, parsed.lost);
        if window.is_empty() {
            problems.push("no getrusage fences (sys_exit_getrusage then sys_enter_getrusage) in the trace".into());
        }
        if rusage == 0 {
            problems.push("the workload was never switched out during its loop (getrusage delta 0)".into());
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
                count("switches out of the workload between the getrusage fences (== its getrusage)", rusage, out_in_window),
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
            "rusage_nvcsw_nivcsw": rusage,
            "switches_out_total": outs.len(),
            "switches_in_total": ins.len(),
            "set_event": set_event_text.map(|t| t.trim().to_string()),
        });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 12)))
    }
}

/// The entries of `pid` between its first `sys_getrusage -> ` exit and the next
/// `sys_getrusage(` entry (the loop's window); empty without both fences.
fn fenced<'a, 'b>(entries: &'b [trace::Entry<'a>], pid: i32) -> Vec<&'b trace::Entry<'a>> {
    let start = entries.iter().position(|e| e.pid == pid && e.body.starts_with("sys_getrusage -> "));
    let Some(start) = start else {
        return Vec::new();
    };
    let end = entries[start..].iter().position(|e| e.pid == pid && e.body.starts_with("sys_getrusage("));
    match end {
        Some(end) => entries[start + 1..start + end].iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_lies_between_the_getrusage_fences() {
        let text = "\
 yield-loop-90 [000] ..... 1.0: sched_switch: prev_comm=yield-loop prev_pid=90 prev_prio=120 prev_state=S ==> next_comm=x next_pid=1 next_prio=120
 yield-loop-90 [000] ..... 1.1: sys_getrusage -> 0x0
 yield-loop-90 [000] ..... 1.2: sched_switch: prev_comm=yield-loop prev_pid=90 prev_prio=120 prev_state=R ==> next_comm=yield-loop next_pid=91 next_prio=120
 yield-loop-91 [000] ..... 1.3: sched_switch: prev_comm=yield-loop prev_pid=91 prev_prio=120 prev_state=R ==> next_comm=yield-loop next_pid=90 next_prio=120
 yield-loop-90 [000] ..... 1.4: sys_getrusage(who: 0, ru: 7ffd)
 yield-loop-90 [000] ..... 1.5: sched_switch: prev_comm=yield-loop prev_pid=90 prev_prio=120 prev_state=S ==> next_comm=x next_pid=1 next_prio=120
";
        let parsed = trace::parse(text);
        let w = fenced(&parsed.entries, 90);
        assert_eq!(w.len(), 2);
        assert_eq!(w.iter().filter(|e| e.field("prev_pid") == Some("90")).count(), 1);
        assert!(fenced(&parsed.entries, 91).is_empty());
    }
}
