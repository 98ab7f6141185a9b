//! The `kprobe.` family: kernel probes defined through tracefs (`kprobe_events` p/r with fetch
//! args, maxactive, `kprobe_profile` hits and misses, offsets, the blacklist; `dynamic_events`
//! eprobes and fprobes) and created through the perf `kprobe` PMU. Each file holds the scenarios
//! of one id path (`kprobe.<path>.*`).
//!
//! This module is only the family's registry, in catalogue order, in two parts: through tracefs
//! and through perf_event_open.

mod any;
mod blacklist;
mod block;
mod debugfs;
mod eprobe;
mod fprobe;
mod maxactive;
mod offset;
mod perf_pmu;
mod profile;
mod seed;
mod tracefs;

use crate::scenario::meta::Scenario;

/// Probes defined through tracefs.
pub const TRACEFS: &[Scenario] = &[
    tracefs::OPENAT,
    tracefs::OPENAT_RETVAL,
    maxactive::OPENAT,
    profile::MISSED,
    offset::OPENAT,
    seed::DO_SYS_OPEN,
    blacklist::REFUSED,
    debugfs::LIST,
    eprobe::SYS_ENTER_OPENAT,
    eprobe::SYS_ENTER_OPENAT_NUMERIC,
    fprobe::OPENAT,
    block::START_REQUEST,
    any::ANY,
];

/// Probes created through perf_event_open on the kprobe PMU.
pub const PERF_PMU: &[Scenario] = &[perf_pmu::OPENAT, perf_pmu::OPENAT_RET];
