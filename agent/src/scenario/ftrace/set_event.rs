//! `ftrace.set_event.*`: enabling an event by writing its name to `set_event`
//! (Documentation/trace/events.rst, "Via the 'set_event' interface").
//!
//! The run itself is `event.rs`'s sched_switch; only how the event is enabled differs.

use super::event::{self, SWITCH};
use crate::scenario::meta::{Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::workload;

/// `echo sched_switch > set_event` on `yield-loop N`: the same exact check as
/// `ftrace.event.sched_switch`, and `set_event` lists `sched:sched_switch` afterwards.
// sched_switch as a TRACE_EVENT, and set_event, both date from 2.6.30.
pub const SCHED_SWITCH: Scenario = Meta::new("ftrace.set_event.sched_switch", "2.6.30")
    .summary(
        "`echo sched_switch > set_event` on yield-loop N: switches out of the workload == the kernel's \
        count in /proc/<pid>/status, every record with its comm",
    )
    .requires(&[Req::Tracefs, Req::Event(SWITCH), Req::File("set_event"), Req::Program(workload::YIELD_LOOP)])
    .params(&[("count", "200")])
    .run(|ctx| event::sched_switch_enabled_by(ctx, true));
