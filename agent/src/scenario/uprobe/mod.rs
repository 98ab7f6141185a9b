//! The `uprobe.` family: user-space probes on the `hello` workload, defined through tracefs
//! (`uprobe_events`) and created through the perf `uprobe` PMU. Each file holds the scenarios of
//! one id path (`uprobe.<path>.*`).
//!
//! This module is only the family's registry, in catalogue order, in two parts: through tracefs
//! and through perf_event_open.

mod perf_pmu;
mod tracefs;

use crate::scenario::meta::Scenario;

/// Probes defined through tracefs.
pub const TRACEFS: &[Scenario] = &[tracefs::HELLO, tracefs::HELLO_RETVAL];

/// Probes created through perf_event_open on the uprobe PMU.
pub const PERF_PMU: &[Scenario] = &[perf_pmu::HELLO];
