//! `tool.<tool>.<what>`: the real tracing tools of the host (perf, trace-cmd, uftrace, bpftool,
//! bpftrace, BCC, and the notes' gdb and strace) run in the guest through the shared host root, judged as exactly as the
//! agent's own scenarios — the question "does *my tool* work on *that kernel*". One file per
//! tool; what they share (running a host program, its version, a working directory, folded
//! stacks) is `support::host_tool` and `support::stacks`. Every result records the tool's
//! version in `detail.tool_version`.

mod bcc;
mod bpftool;
mod bpftrace;
mod gdb;
mod perf;
mod strace;
mod trace_cmd;
mod uftrace;

use crate::scenario::meta::Scenario;

/// The family, in catalogue order.
pub const ALL: &[Scenario] = &[
    perf::LIST,
    perf::STAT_OPENAT,
    perf::STAT_INSTRUCTIONS,
    perf::RECORD_REPORT,
    perf::RECORD_SYSTEM,
    perf::RECORD_PID,
    perf::RECORD_DWARF,
    perf::FLAMEGRAPH,
    trace_cmd::RECORD_PID,
    trace_cmd::RECORD_CMD,
    trace_cmd::SYS_ENTER_OPENAT,
    uftrace::REPLAY,
    uftrace::KERNEL,
    uftrace::CHROME,
    uftrace::FLAME_GRAPH,
    bpftool::FEATURE_PROBE,
    bpftool::PROG_SHOW,
    bpftool::BTF_DUMP,
    bpftrace::LIST,
    bpftrace::TRACEPOINT,
    bpftrace::KRETPROBE,
    bpftrace::UPROBE,
    bpftrace::USDT,
    bcc::TPLIST_LIST,
    bcc::URANDOM_READ_PROBE,
    bcc::SYS_ENTER_OPENAT,
    gdb::HELLO,
    strace::OPENAT,
    strace::HELLO,
];
