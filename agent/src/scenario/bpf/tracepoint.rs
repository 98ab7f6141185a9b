//! `bpf.tracepoint.*`: a BPF tracepoint program on syscalls/sys_enter_openat
//! reading its record (`struct trace_event_raw_sys_enter`).
//!
//! The run is `support::bpf::run_openat`: the program sees exactly the N calls of
//! `openat-loop N PATH`, each with the workload's pid and the payload checked.

use crate::bpf;
use crate::scenario::meta::{Meta, Scenario};
use crate::scenario::support::bpf::{run_openat, Checks, Hook};
use crate::scenario::support::openat_loop;

pub const SYS_ENTER_OPENAT: Scenario = Meta::new("bpf.tracepoint.sys_enter_openat", "4.7")
    .summary("BPF tracepoint syscalls/sys_enter_openat reading trace_event_raw_sys_enter args: N hits, filename")
    .requires(&[openat_loop::IN_IMAGE])
    .params(&[("count", "100")])
    .run(|ctx| {
        run_openat(
            ctx,
            bpf::PROBES,
            |_| "tracepoint_openat",
            |_, _| Hook::TracePoint("syscalls", "sys_enter_openat"),
            Checks::NameAndNr,
        )
    });
