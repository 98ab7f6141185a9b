//! `bpf.raw_tracepoint.*`: a BPF raw_tracepoint program on sys_enter, filtered to
//! openat in the program, reading the arguments from pt_regs.
//!
//! The run is `support::bpf::run_openat`: the program sees exactly the N calls of
//! `openat-loop N PATH`, each with the workload's pid and the payload checked.

use crate::bpf;
use crate::scenario::meta::Scenario;
use crate::scenario::req::Req;
use crate::scenario::support::bpf::{openat_meta, run_openat, Checks, Hook, RAW_TRACEPOINT_SINCE};

pub const SYS_ENTER: Scenario = openat_meta("bpf.raw_tracepoint.sys_enter", RAW_TRACEPOINT_SINCE)
    .requires(&[Req::BpfProgType("raw_tracepoint")])
    .summary("BPF raw_tracepoint sys_enter filtered to openat: N hits, filename from pt_regs")
    .run(|ctx| {
        run_openat(ctx, bpf::PROBES, |_| "raw_tp_sys_enter", |_, _| Hook::RawTracePoint("sys_enter"), Checks::NameAndNr)
    });
