//! `bpf.fexit.*`: a BPF fexit program on do_sys_openat2 (do_sys_open before
//! 5.6) reading the arguments and the return value together; needs the kernel's BTF.
//!
//! The run is `support::bpf::run_openat`: the program sees exactly the N calls of
//! `openat-loop N PATH`, each with the workload's pid and the payload checked.

use crate::bpf;
use crate::scenario::meta::Scenario;
use crate::scenario::req::Req;
use crate::scenario::support::bpf::{openat_meta, run_openat, Checks, Hook};

pub const OPENAT: Scenario = openat_meta("bpf.fexit.openat", "5.5")
    .requires(&[Req::BpfProgType("tracing")])
    .summary("BPF fexit on do_sys_openat2/do_sys_open: N hits, filename and return value together")
    .run(|ctx| {
        run_openat(
            ctx,
            bpf::BTF,
            |sym| if sym == "do_sys_open" { "fexit_open" } else { "fexit_openat2" },
            |sym, _| Hook::FExit(sym),
            Checks::NameAndRet,
        )
    });
