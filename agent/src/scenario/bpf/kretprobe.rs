//! `bpf.kretprobe.*`: a BPF kretprobe program on do_sys_openat2 (do_sys_open
//! before 5.6) reading the return value.
//!
//! The run is `support::bpf::run_openat`: the program sees exactly the N calls of
//! `openat-loop N PATH`, each with the workload's pid and the payload checked.

use crate::bpf;
use crate::scenario::meta::Scenario;
use crate::scenario::support::bpf::{openat_meta, run_openat, Checks, Hook, KPROBE_SINCE};

pub const OPENAT: Scenario = openat_meta("bpf.kretprobe.openat", KPROBE_SINCE)
    .summary("BPF kretprobe on do_sys_openat2/do_sys_open: N hits, each returning the workload's fd")
    .run(|ctx| run_openat(ctx, bpf::PROBES, |_| "kretprobe_openat", |sym, _| Hook::KProbe(sym), Checks::Ret));
