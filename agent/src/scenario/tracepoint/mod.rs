//! The `tracepoint.` family: tracepoints used through another interface than tracefs `events/`
//! (which is `ftrace.event.*`): today perf_event_open by the event's id. Each file holds the
//! scenarios of one id path (`tracepoint.<path>.*`).
//!
//! This module is only the family's registry, in catalogue order.

mod perf;

use crate::scenario::meta::Scenario;

pub const ALL: &[Scenario] = &[perf::SYS_ENTER_OPENAT];
