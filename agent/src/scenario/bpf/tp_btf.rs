//! `bpf.tp_btf.*`: a BTF-typed raw tracepoint program (tp_btf) on sys_enter,
//! filtered to openat in the program; needs the kernel's BTF.
//!
//! The run is `support::bpf::run_openat`: the program sees exactly the N calls of
//! `openat-loop N PATH`, each with the workload's pid and the payload checked.

use crate::bpf;
use crate::scenario::meta::Scenario;
use crate::scenario::req::Req;
use crate::scenario::support::bpf::{openat_meta, run_openat, Checks, Hook};

pub const SYS_ENTER: Scenario = openat_meta("bpf.tp_btf.sys_enter", "5.5")
    .requires(&[Req::BpfProgType("tracing")])
    .summary("BPF tp_btf/sys_enter (BTF-typed raw tracepoint) filtered to openat: N hits, filename")
    .run(|ctx| run_openat(ctx, bpf::BTF, |_| "tp_btf_sys_enter", |_, _| Hook::TpBtf("sys_enter"), Checks::NameAndNr));
