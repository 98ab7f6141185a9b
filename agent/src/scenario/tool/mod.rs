//! `tool.<tool>.<what>`: the real tracing tools of the host (perf, trace-cmd, uftrace, bpftool,
//! bpftrace, BCC) run in the guest through the shared host root, judged as exactly as the
//! agent's own scenarios — the question "does *my tool* work on *that kernel*". One file per
//! tool; the shared part (running a host program) is `support::host_tool`.

mod perf;

use crate::scenario::meta::Scenario;

/// The family, in catalogue order.
pub const ALL: &[Scenario] = &[perf::LIST];
