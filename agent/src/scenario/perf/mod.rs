//! The `perf.` family: perf events on the workload's task that are not probes: software
//! counters, the hardware instructions counter, and cpu-clock sampling with callchains. Each
//! file holds the scenarios of one id path (`perf.<path>.*`).
//!
//! This module is only the family's registry, in catalogue order. Probes created through perf
//! PMUs are in their own families (`kprobe.perf_pmu`, `uprobe.perf_pmu`, `tracepoint.perf`).

mod hardware;
mod sampling;
mod software;

use crate::scenario::meta::Scenario;

pub const ALL: &[Scenario] = &[software::HELLO, hardware::INSTRUCTIONS, sampling::CPU_CLOCK];
