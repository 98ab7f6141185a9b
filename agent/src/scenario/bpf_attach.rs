//! BPF on the openat path through each classic and BTF-typed hook: kprobe and kretprobe on
//! do_sys_openat2 (do_sys_open before 5.6), the syscalls/sys_enter_openat tracepoint, the
//! sys_enter raw tracepoint, tp_btf/sys_enter, fentry and fexit. Each sees exactly the N calls
//! of `openat-loop N PATH`, each with the workload's pid and PATH (or the fd it returned).

use super::bpf::{reqs, run_openat, Checks, Hook, OpenatSpec};
use super::{openat, Ctx, Req, Scenario};
use crate::bpf;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

pub struct OpenatBpf {
    spec: OpenatSpec,
    since: &'static str,
    summary: &'static str,
}

impl Scenario for OpenatBpf {
    fn id(&self) -> &'static str {
        self.spec.id
    }

    fn since(&self) -> &'static str {
        self.since
    }

    fn summary(&self) -> &'static str {
        self.summary
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "100")]
    }

    fn requirements(&self) -> Vec<Req> {
        reqs(openat::OPENAT_LOOP)
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        run_openat(&self.spec, ctx)
    }
}

pub const KPROBE: OpenatBpf = OpenatBpf {
    spec: OpenatSpec {
        id: "bpf.kprobe.openat",
        object: bpf::PROBES,
        program: |_| "kprobe_openat",
        hook: |sym, _| Hook::KProbe(sym),
        checks: Checks::Name,
    },
    since: "4.1",
    summary: "BPF kprobe on do_sys_openat2/do_sys_open: N hits, pid and filename (user string) per hit",
};

pub const KRETPROBE: OpenatBpf = OpenatBpf {
    spec: OpenatSpec {
        id: "bpf.kretprobe.openat",
        object: bpf::PROBES,
        program: |_| "kretprobe_openat",
        hook: |sym, _| Hook::KProbe(sym),
        checks: Checks::Ret,
    },
    since: "4.1",
    summary: "BPF kretprobe on do_sys_openat2/do_sys_open: N hits, each returning the workload's fd",
};

pub const TRACEPOINT: OpenatBpf = OpenatBpf {
    spec: OpenatSpec {
        id: "bpf.tracepoint.sys_enter_openat",
        object: bpf::PROBES,
        program: |_| "tracepoint_openat",
        hook: |_, _| Hook::TracePoint("syscalls", "sys_enter_openat"),
        checks: Checks::NameAndNr,
    },
    since: "4.7",
    summary: "BPF tracepoint syscalls/sys_enter_openat reading trace_event_raw_sys_enter args: N hits, filename",
};

pub const RAW_TRACEPOINT: OpenatBpf = OpenatBpf {
    spec: OpenatSpec {
        id: "bpf.raw_tracepoint.sys_enter",
        object: bpf::PROBES,
        program: |_| "raw_tp_sys_enter",
        hook: |_, _| Hook::RawTracePoint("sys_enter"),
        checks: Checks::NameAndNr,
    },
    since: "4.17",
    summary: "BPF raw_tracepoint sys_enter filtered to openat: N hits, filename from pt_regs",
};

pub const TP_BTF: OpenatBpf = OpenatBpf {
    spec: OpenatSpec {
        id: "bpf.tp_btf.sys_enter",
        object: bpf::BTF,
        program: |_| "tp_btf_sys_enter",
        hook: |_, _| Hook::TpBtf("sys_enter"),
        checks: Checks::NameAndNr,
    },
    since: "5.5",
    summary: "BPF tp_btf/sys_enter (BTF-typed raw tracepoint) filtered to openat: N hits, filename",
};

pub const FENTRY: OpenatBpf = OpenatBpf {
    spec: OpenatSpec {
        id: "bpf.fentry.openat",
        object: bpf::BTF,
        program: |_| "fentry_openat",
        hook: |sym, _| Hook::FEntry(sym),
        checks: Checks::Name,
    },
    since: "5.5",
    summary: "BPF fentry on do_sys_openat2/do_sys_open: N hits, filename from BTF-typed args",
};

pub const FEXIT: OpenatBpf = OpenatBpf {
    spec: OpenatSpec {
        id: "bpf.fexit.openat",
        object: bpf::BTF,
        program: |sym| if sym == "do_sys_open" { "fexit_open" } else { "fexit_openat2" },
        hook: |sym, _| Hook::FExit(sym),
        checks: Checks::NameAndRet,
    },
    since: "5.5",
    summary: "BPF fexit on do_sys_openat2/do_sys_open: N hits, filename and return value together",
};
