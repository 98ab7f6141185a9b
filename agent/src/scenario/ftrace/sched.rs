//! `ftrace.sched.*`: the scheduler's events together, as the seeds enable them: `sched_wakeup`
//! beside `sched_switch` (Documentation/trace/events.rst; the notes' trace.sh enables both).
//!
//! Not for `sched_switch` alone against the kernel's context-switch counts (`event.rs`).

use crate::excerpt;
use crate::process;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::{trace_problems, Enables};
use crate::scenario::support::verdict::{count, ms, verdict};
use crate::scenario::support::workload;
use crate::tracefs::trace::{self, Entry};
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::{Duration, Instant};

const WAKEUP: &str = "sched/sched_wakeup";
const SWITCH: &str = "sched/sched_switch";
const COMM: &str = "yield-loop";

/// What the workload's wakeups and switches say, in trace order.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Wakeups {
    /// sched_wakeup records of the workload.
    pub wakeups: u64,
    /// Of those, with comm = the workload's.
    pub with_comm: u64,
    /// Sleeps (the gate, and switch-outs in state S or D) followed by a switch-in.
    pub sleeps: u64,
    /// Of those, with a wakeup of the workload between the sleep and the switch-in.
    pub woken: u64,
    /// Switch-outs of the workload.
    pub outs: u64,
}

/// Walk the workload's records in order. It starts asleep (blocked at its gate when the events
/// were enabled); a switch-out in S (interruptible) or D (uninterruptible) sleeps again; a
/// switch-in after a sleep must come after a wakeup of it.
pub(super) fn wakeups(entries: &[Entry], pid: i32, comm: &str) -> Wakeups {
    let pid_s = pid.to_string();
    let mut w = Wakeups::default();
    let (mut asleep, mut woken) = (true, false);
    for e in entries {
        if e.body.starts_with("sched_wakeup:") && e.field("pid") == Some(pid_s.as_str()) {
            w.wakeups += 1;
            w.with_comm += u64::from(e.field("comm") == Some(comm));
            woken |= asleep;
        } else if e.body.starts_with("sched_switch:") {
            if e.field("prev_pid") == Some(pid_s.as_str()) {
                w.outs += 1;
                let state = e.field("prev_state").unwrap_or("");
                if state.starts_with('S') || state.starts_with('D') {
                    (asleep, woken) = (true, false);
                }
            }
            if e.field("next_pid") == Some(pid_s.as_str()) && asleep {
                w.sleeps += 1;
                w.woken += u64::from(woken);
                (asleep, woken) = (false, false);
            }
        }
    }
    w
}

/// `sched_wakeup` and `sched_switch` enabled together on `yield-loop N`, filtered to the
/// workload: every time it slept (at its start gate, and each switch-out in S or D) and ran
/// again, a `sched_wakeup` of it came in between; its switch-outs equal the kernel's own count.
// sched_wakeup and sched_switch as TRACE_EVENTs, with filters, date from 2.6.30.
pub const WAKEUP_SWITCH: Scenario = Meta::new("ftrace.sched.wakeup_switch", "2.6.30")
    .summary(
        "sched_wakeup beside sched_switch on yield-loop N: every sleep of the workload woken by a sched_wakeup \
         before its switch-in, switch-outs == its /proc count",
    )
    .requires(&[Req::Tracefs, Req::Event(WAKEUP), Req::Event(SWITCH), Req::Program(workload::YIELD_LOOP)])
    .params(&[("count", "50")])
    .run(wakeup_switch);

/// yield-loop N started at its gate: the process, its pid and its context switches so far.
pub(super) fn yield_loop_at_gate(n: u64) -> Result<(process::Running, i32, u64)> {
    let w = process::spawn(&[workload::YIELD_LOOP.to_string(), n.to_string()], true)?;
    let pid = w.pid();
    w.wait_at_gate(Duration::from_secs(10))?;
    let before = w.context_switches()?;
    Ok((w, pid, before))
}

/// Release a gated workload and let it run to its end: its context switches then, and how it
/// finished.
pub(super) fn run_to_end(mut w: process::Running, timeout: Duration) -> Result<(u64, process::Finished)> {
    w.release()?;
    w.wait_exited(timeout)?;
    let after = w.context_switches()?;
    Ok((after, w.finish(timeout)?))
}

fn wakeup_switch(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let attach = Instant::now();
    let (w, pid, before) = yield_loop_at_gate(n)?;
    ctx.tfs.set_filter(WAKEUP, &format!("pid == {pid}"))?;
    ctx.tfs.set_filter(SWITCH, &format!("prev_pid == {pid} || next_pid == {pid}"))?;
    let mut enables = Enables::default();
    enables.open(ctx, WAKEUP)?;
    enables.open(ctx, SWITCH)?;
    enables.set(ctx, true)?;
    let attach_ms = ms(attach);
    let run = Instant::now();
    let (after, done) = run_to_end(w, ctx.timeout()?)?;
    enables.set(ctx, false)?;
    let run_ms = ms(run);

    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let s = wakeups(&parsed.entries, pid, COMM);
    let mut problems = trace_problems(&done, parsed.lost);
    if s.sleeps == 0 {
        problems.push("the workload never ran after a sleep (not even after its gate)".into());
    }
    let mut r = verdict(
        ctx.id(),
        vec![
            count("sleeps of the workload followed by its sched_wakeup before the switch-in", s.sleeps, s.woken),
            count("sched_wakeup records with comm=yield-loop", s.wakeups, s.with_comm),
            count(
                "switches out of the workload (== its /proc ctxt_switches delta)",
                after.saturating_sub(before),
                s.outs,
            ),
        ],
        problems,
    );
    r.timings.attach_ms = attach_ms;
    r.timings.run_ms = run_ms;
    r.detail = serde_json::json!({ "pid": pid, "wakeups": s.wakeups, "sleeps": s.sleeps, "switch_outs": s.outs });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 16)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of Debian 6.1's trace for yield-loop (pid 93) with both events on, one CPU.
    const TRACE: &str = "\
           <...>-1       [000] d..2.    10.000100: sched_wakeup: comm=yield-loop pid=93 prio=120 target_cpu=000
           <...>-1       [000] d..2.    10.000200: sched_switch: prev_comm=init prev_pid=1 prev_prio=120 prev_state=S ==> next_comm=yield-loop next_pid=93 next_prio=120
      yield-loop-93      [000] d..2.    10.000300: sched_switch: prev_comm=yield-loop prev_pid=93 prev_prio=120 prev_state=R+ ==> next_comm=yield-loop next_pid=94 next_prio=120
      yield-loop-94      [000] d..2.    10.000400: sched_switch: prev_comm=yield-loop prev_pid=94 prev_prio=120 prev_state=R ==> next_comm=yield-loop next_pid=93 next_prio=120
      yield-loop-93      [000] d..2.    10.000500: sched_switch: prev_comm=yield-loop prev_pid=93 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
          <idle>-0       [000] d..2.    10.000600: sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=yield-loop next_pid=93 next_prio=120
";

    #[test]
    fn a_sleep_without_its_wakeup_is_counted() {
        let parsed = trace::parse(TRACE);
        let w = wakeups(&parsed.entries, 93, COMM);
        // The gate's sleep was woken; the S switch-out at .0005 was not (no wakeup before .0006).
        assert_eq!(w, Wakeups { wakeups: 1, with_comm: 1, sleeps: 2, woken: 1, outs: 2 });
    }
}
