//! `bpf.kprobe.*`: a BPF kprobe program on do_sys_openat2 (do_sys_open
//! before 5.6) reading the file name as a user string.
//!
//! The run is `support::bpf::run_openat`: the program sees exactly the N calls of
//! `openat-loop N PATH`, each with the workload's pid and the payload checked.

use crate::bpf;
use crate::scenario::meta::Scenario;
use crate::scenario::support::bpf::{openat_meta, run_openat, Checks, Hook, KPROBE_SINCE};

pub const OPENAT: Scenario = openat_meta("bpf.kprobe.openat", KPROBE_SINCE)
    .summary("BPF kprobe on do_sys_openat2/do_sys_open: N hits, pid and filename (user string) per hit")
    .run(|ctx| run_openat(ctx, bpf::PROBES, |_| "kprobe_openat", |sym, _| Hook::KProbe(sym), Checks::Name));
