//! `bpf.fentry.*`: a BPF fentry program on do_sys_openat2 (do_sys_open
//! before 5.6) reading BTF-typed arguments; needs the kernel's BTF.
//!
//! The run is `support::bpf::run_openat`: the program sees exactly the N calls of
//! `openat-loop N PATH`, each with the workload's pid and the payload checked.

use crate::bpf;
use crate::scenario::meta::Scenario;
use crate::scenario::req::Req;
use crate::scenario::support::bpf::{openat_meta, run_openat, Checks, Hook};

pub const OPENAT: Scenario = openat_meta("bpf.fentry.openat", "5.5")
    .requires(&[Req::BpfProgType("tracing")])
    .summary("BPF fentry on do_sys_openat2/do_sys_open: N hits, filename from BTF-typed args")
    .run(|ctx| run_openat(ctx, bpf::BTF, |_| "fentry_openat", |sym, _| Hook::FEntry(sym), Checks::Name));
