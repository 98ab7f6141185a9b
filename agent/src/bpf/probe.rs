//! Probing `bpf(2)` for the capability record: is the syscall there, which program and map
//! types does the kernel accept, and which attach types does it make.
//!
//! Like libbpf's `libbpf_probe_bpf_prog_type` and bpftool's feature probe: load `r0 = 0; exit`
//! of each program type and create a one-entry map of each map type, with the extra attributes
//! a type needs (expected attach type, inner map, no-prealloc flag). Types that cannot be probed
//! without BTF ids (tracing, ext, lsm, struct_ops programs; local-storage, struct_ops and arena
//! maps) are not listed here: the bpf scenarios load real objects for those. Attach types are
//! probed by attaching such a trivial program to a target nothing runs meanwhile and detaching
//! it ([`ATTACH_TYPES`]), all on the boot's critical path, so each probe is chosen for cost as
//! much as for fidelity. The raw calls are in `sys`, the BTF lookups in `btf`; loading and
//! attaching real programs is not this module's job.

use super::btf::{self, BTF_KIND_TYPEDEF, TARGET_FUNC_ID};
use super::multi::{self, Targets};
use super::sys::{
    bpf_fd, bpf_fd_or, bpf_raw, kernel_version, link_create, load, load_typed, raw_tp_open, set_bpf, BtfLoadAttr,
    MapCreateAttr, ProgLoadAttr, StepError, BPF_BTF_LOAD, BPF_F_NO_PREALLOC, BPF_F_SLEEPABLE, BPF_MAP_CREATE,
    BPF_PERF_EVENT, BPF_PROG_LOAD, BPF_TRACE_FENTRY, BPF_TRACE_FEXIT, BPF_TRACE_RAW_TP, PROG_KPROBE, PROG_PERF_EVENT,
    PROG_RAW_TRACEPOINT, PROG_TRACEPOINT, PROG_TRACING,
};
use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};

/// (uapi number, name, expected_attach_type, prog_flags) of the program types probed.
const PROG_TYPES: &[(u32, &str, u32, u32)] = &[
    (1, "socket_filter", 0, 0),
    (2, "kprobe", 0, 0),
    (3, "sched_cls", 0, 0),
    (4, "sched_act", 0, 0),
    (5, "tracepoint", 0, 0),
    (6, "xdp", 0, 0),
    (7, "perf_event", 0, 0),
    (8, "cgroup_skb", 0, 0),
    (9, "cgroup_sock", 0, 0),
    (10, "lwt_in", 0, 0),
    (11, "lwt_out", 0, 0),
    (12, "lwt_xmit", 0, 0),
    (13, "sock_ops", 0, 0),
    (14, "sk_skb", 0, 0),
    (15, "cgroup_device", 0, 0),
    (16, "sk_msg", 0, 0),
    (17, "raw_tracepoint", 0, 0),
    // BPF_CGROUP_INET4_CONNECT
    (18, "cgroup_sock_addr", 10, 0),
    (19, "lwt_seg6local", 0, 0),
    (20, "lirc_mode2", 0, 0),
    (21, "sk_reuseport", 0, 0),
    (22, "flow_dissector", 0, 0),
    (23, "cgroup_sysctl", 0, 0),
    (24, "raw_tracepoint_writable", 0, 0),
    // BPF_CGROUP_GETSOCKOPT
    (25, "cgroup_sockopt", 21, 0),
    // BPF_SK_LOOKUP
    (30, "sk_lookup", 36, 0),
    (31, "syscall", 0, BPF_F_SLEEPABLE),
    // BPF_NETFILTER
    (32, "netfilter", 45, 0),
];

/// (uapi number, name, key size, value size, max entries, flags) of the map types probed;
/// map-in-map types (12, 13) are probed apart, with an inner array.
const MAP_TYPES: &[(u32, &str, u32, u32, u32, u32)] = &[
    (1, "hash", 4, 4, 1, 0),
    (2, "array", 4, 4, 1, 0),
    (3, "prog_array", 4, 4, 1, 0),
    (4, "perf_event_array", 4, 4, 1, 0),
    (5, "percpu_hash", 4, 4, 1, 0),
    (6, "percpu_array", 4, 4, 1, 0),
    (7, "stack_trace", 4, 8, 1, 0),
    (8, "cgroup_array", 4, 4, 1, 0),
    (9, "lru_hash", 4, 4, 1, 0),
    (10, "lru_percpu_hash", 4, 4, 1, 0),
    (11, "lpm_trie", 8, 4, 1, BPF_F_NO_PREALLOC),
    (14, "devmap", 4, 4, 1, 0),
    (15, "sockmap", 4, 4, 1, 0),
    (16, "cpumap", 4, 4, 1, 0),
    (17, "xskmap", 4, 4, 1, 0),
    (18, "sockhash", 4, 4, 1, 0),
    (19, "cgroup_storage", 16, 4, 0, 0),
    (20, "reuseport_sockarray", 4, 4, 1, 0),
    (21, "percpu_cgroup_storage", 16, 4, 0, 0),
    (22, "queue", 0, 4, 1, 0),
    (23, "stack", 0, 4, 1, 0),
    (25, "devmap_hash", 4, 4, 1, 0),
    (27, "ringbuf", 0, 0, 4096, 0),
    (30, "bloom_filter", 0, 4, 1, 0),
    (31, "user_ringbuf", 0, 0, 4096, 0),
];

/// Program types that load `r0 = 0; exit`.
pub fn prog_types() -> Vec<String> {
    // Kernels before 5.0 refuse kprobe programs without the version code (Ubuntu's is not its
    // release's: `kernel_version`).
    let kv = kernel_version();
    PROG_TYPES
        .iter()
        .filter(|(ty, _, attach, flags)| {
            let attr = ProgLoadAttr {
                prog_flags: *flags,
                expected_attach_type: *attach,
                ..ProgLoadAttr::return_zero(*ty, kv)
            };
            bpf_fd(BPF_PROG_LOAD, &attr)
        })
        .map(|(_, name, _, _)| name.to_string())
        .collect()
}

/// The names of the program types [`prog_types`] probes (libbpf's names, as bpftool prints them).
pub fn probed_prog_types() -> impl Iterator<Item = &'static str> {
    PROG_TYPES.iter().map(|(_, name, _, _)| *name)
}

/// The names of the map types [`map_types`] probes, map-in-map types included.
pub fn probed_map_types() -> impl Iterator<Item = &'static str> {
    MAP_TYPES.iter().map(|(_, name, ..)| *name).chain(["array_of_maps", "hash_of_maps"])
}

/// Map types that create with a one-entry map.
pub fn map_types() -> Vec<String> {
    let mut out: Vec<String> = MAP_TYPES
        .iter()
        .filter(|(ty, _, key, value, max, flags)| {
            bpf_fd(
                BPF_MAP_CREATE,
                &MapCreateAttr {
                    map_type: *ty,
                    key_size: *key,
                    value_size: *value,
                    max_entries: *max,
                    map_flags: *flags,
                    ..Default::default()
                },
            )
        })
        .map(|(_, name, ..)| name.to_string())
        .collect();
    let inner = MapCreateAttr { map_type: 2, key_size: 4, value_size: 4, max_entries: 1, ..Default::default() };
    if let Some(inner_fd) = bpf_raw(BPF_MAP_CREATE, &inner) {
        for (ty, name) in [(12, "array_of_maps"), (13, "hash_of_maps")] {
            let outer = MapCreateAttr {
                map_type: ty,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                inner_map_fd: inner_fd as u32,
                ..Default::default()
            };
            if bpf_fd(BPF_MAP_CREATE, &outer) {
                out.push(name.to_string());
            }
        }
        // SAFETY: inner_fd is an fd the kernel gave us and nothing else holds.
        unsafe { libc::close(inner_fd) };
    }
    out
}

/// Kernel functions the kprobe probe attaches to, in order of preference. `do_one_initcall` runs
/// only when a module is loaded, which nothing does while the record is built, and sits near the
/// start of kallsyms, which kernels before 6.2 search linearly for a kprobe's symbol (~4 ms more
/// under TCG for a function as far as `bpf_fentry_test1`, which exists (5.5, CONFIG_NET) only for
/// `BPF_PROG_TEST_RUN` of tracing programs and is the kprobe_multi probe's target).
const KPROBE_FUNCTIONS: [&str; 2] = ["do_one_initcall", "bpf_fentry_test1"];
const KPROBE_MULTI_FUNCTION: &str = "bpf_fentry_test1";
/// Offsets of a function's first instruction after its ftrace call site (a 5-byte nop at 0, or
/// at 4 after IBT's `endbr64`): a kprobe there is an int3 breakpoint, poked in and out, where
/// one on the call site goes through ftrace, whose register and unregister walk its ~40k records
/// (~35 ms under TCG). The kernel refuses an offset that is not an instruction boundary
/// (EILSEQ), so the other one is tried; Debian 6.1 has no IBT, so 5 comes first.
const KPROBE_OFFSETS: [u64; 2] = [5, 9];
/// The tracepoints the tracepoint probes attach to, one each so that no probe waits for another's
/// unregistration: module events fire only when a module is loaded or freed or the kernel asks
/// for one, which nothing does while a probe is attached.
const PERF_TRACEPOINT: (&str, &str) = ("module", "module_request");
const RAW_TRACEPOINT: &CStr = c"module_free";
const BTF_TRACEPOINT: &str = "btf_trace_module_load";
/// The file the uprobe probes attach to (at its entry point): a workload of the image, which
/// nothing runs while a probe is attached, so no breakpoint is even written.
const ATTACH_USER: &str = "/bin/hello";

/// The attach types probed, and what each probe does. A probe loads `r0 = 0; exit` with the
/// attach type's program type and expected attach type, attaches it to a target nothing runs
/// meanwhile, and detaches it; the type is listed when the kernel made the attachment.
///
/// - `kprobe`: a kprobe program on a perf event of the kprobe PMU (PERF_EVENT_IOC_SET_BPF);
/// - `bpf_link_create`: the same through BPF_LINK_CREATE with BPF_PERF_EVENT (5.15);
/// - `raw_tracepoint`: BPF_RAW_TRACEPOINT_OPEN of a raw tracepoint program;
/// - `fentry`, `fexit`: tracing programs (BPF_TRACE_FENTRY, BPF_TRACE_FEXIT) on a BPF program
///   (see [`probe_at_boot`]), linked through BPF_RAW_TRACEPOINT_OPEN;
/// - `perf_event`: a perf_event program on a software cpu-clock event;
/// - `kprobe_multi`, `uprobe_multi`: BPF_LINK_CREATE with BPF_TRACE_KPROBE_MULTI (5.18, needs
///   CONFIG_FPROBE) and BPF_TRACE_UPROBE_MULTI (6.6), as [`super::multi::supported`] asks;
/// - `tracepoint`: a tracepoint program on a tracepoint perf event;
/// - `uprobe`: a kprobe program on a perf event of the uprobe PMU;
/// - `tp_btf`: a tracing program (BPF_TRACE_RAW_TP) typed by the tracepoint's vmlinux BTF id.
///
/// The first six ([`AT_BOOT`]) are probed before `Hello`, for the capability record; the others
/// ([`ON_DEMAND`]) cost more than the boot's critical path should pay — a kprobe_multi link
/// goes through ftrace's registration (80-110 ms under TCG on 6.12 and 7.3), the uprobe_multi
/// and uprobe probes set up uprobes, the tracepoint probe a perf event (~10 ms each), tp_btf
/// looks up a vmlinux BTF id — and [`attach_probe`] probes them when a scenario first asks,
/// once per boot. The record names them as not probed (`bpf_attach_on_demand`), so their
/// absence from `bpf_attach_types` is never read as a refusal.
pub const ATTACH_TYPES: &[&str] = &[
    "kprobe",
    "bpf_link_create",
    "raw_tracepoint",
    "fentry",
    "fexit",
    "perf_event",
    "kprobe_multi",
    "uprobe_multi",
    "tracepoint",
    "uprobe",
    "tp_btf",
];

/// The attach types probed before `Hello`, for the capability record.
pub const AT_BOOT: &[&str] = &["kprobe", "bpf_link_create", "raw_tracepoint", "fentry", "fexit", "perf_event"];

/// The attach types probed when first asked (see [`ATTACH_TYPES`]).
pub const ON_DEMAND: &[&str] = &["kprobe_multi", "uprobe_multi", "tracepoint", "uprobe", "tp_btf"];

/// A probe's outcome: Ok when the kernel made the attachment, else the refused step.
pub type Outcome = Result<(), StepError>;

/// One attach type as probed.
#[derive(Debug, Clone)]
pub struct AttachProbe {
    pub name: &'static str,
    pub outcome: Outcome,
}

/// The attach types of [`AT_BOOT`] as probed in this kernel, once per boot (the first call
/// probes, before `Hello`; later calls, from scenarios, read the same result).
pub fn attach_probes() -> &'static [AttachProbe] {
    static CACHE: std::sync::OnceLock<Vec<AttachProbe>> = std::sync::OnceLock::new();
    CACHE.get_or_init(probe_at_boot)
}

/// The attach types of [`AT_BOOT`] this kernel accepts, for the capability record.
pub fn attach_types() -> Vec<String> {
    attach_probes().iter().filter(|p| p.outcome.is_ok()).map(|p| p.name.to_string()).collect()
}

/// Any attach type of [`ATTACH_TYPES`] as probed in this kernel: those of [`AT_BOOT`] from the
/// boot's probe, the others probed on the first call for them and cached. None for a name not
/// in [`ATTACH_TYPES`].
pub fn attach_probe(name: &str) -> Option<AttachProbe> {
    let name = *ATTACH_TYPES.iter().find(|n| **n == name)?;
    if let Some(p) = attach_probes().iter().find(|p| p.name == name) {
        return Some(p.clone());
    }
    static LATER: std::sync::Mutex<Vec<AttachProbe>> = std::sync::Mutex::new(Vec::new());
    let mut later = LATER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = later.iter().find(|p| p.name == name) {
        return Some(p.clone());
    }
    let kv = kernel_version();
    let outcome = match name {
        "kprobe_multi" => {
            let targets = Targets::Kernel { symbols: &[KPROBE_MULTI_FUNCTION] };
            multi::supported(&targets).map_err(|r| StepError::Multi(r.to_string()))
        }
        "uprobe_multi" => user_target().and_then(|offset| {
            let targets = Targets::User { path: ATTACH_USER, offsets: &[offset], pid: 0 };
            multi::supported(&targets).map_err(|r| StepError::Multi(r.to_string()))
        }),
        "tracepoint" => probe_tracepoint(kv),
        "uprobe" => user_target().and_then(|offset| probe_uprobe(kv, offset)),
        "tp_btf" => probe_tp_btf(kv),
        _ => return None,
    };
    later.push(AttachProbe { name, outcome });
    later.last().cloned()
}

/// The probes of [`AT_BOOT`], ~35 ms under TCG on 6.1 (of which the first kprobe of the boot is
/// ~10: the kernel allocates its instruction slot pages and checks the address against every
/// jump label). fentry and fexit attach to the raw tracepoint probe's program, loaded with BTF
/// for that: a program nothing runs is a harmless target, and its trampoline goes in with one
/// text poke, where a kernel function's goes through ftrace (~230 ms per probe under TCG on
/// 6.1). The trampoline, its JIT and the link are the same.
fn probe_at_boot() -> Vec<AttachProbe> {
    let kv = kernel_version();
    let no_optimizer = NoKprobeOptimizer::begin();
    let mut out: Vec<AttachProbe> = Vec::with_capacity(AT_BOOT.len());
    let mut record = |name: &'static str, outcome: Outcome| out.push(AttachProbe { name, outcome });
    let (kprobe, link) = probe_kprobe(kv);
    record("kprobe", kprobe);
    record("bpf_link_create", link);
    let target = typed_program(PROG_RAW_TRACEPOINT, kv);
    let raw = match &target {
        Ok((_, prog)) => raw_tp_open(Some(RAW_TRACEPOINT), prog),
        Err(_) => load(PROG_RAW_TRACEPOINT, 0, kv).and_then(|prog| raw_tp_open(Some(RAW_TRACEPOINT), &prog)),
    };
    record("raw_tracepoint", raw.map(drop));
    for (name, attach) in [("fentry", BPF_TRACE_FENTRY), ("fexit", BPF_TRACE_FEXIT)] {
        let linked = target.as_ref().map_err(Clone::clone).and_then(|(_btf, prog)| {
            let tracing = load_typed(PROG_TRACING, attach, TARGET_FUNC_ID, prog.as_raw_fd() as u32, kv)?;
            raw_tp_open(None, &tracing)
        });
        record(name, linked.map(drop));
    }
    drop(target);
    record("perf_event", probe_perf_event(kv));
    drop(no_optimizer);
    out
}

/// /proc/sys/debug/kprobes-optimization off while the boot's probes run, then back to what it
/// was. A kprobe left optimizable has the kprobe optimizer run ~20 ms later, even when the probe
/// is gone by then, holding text_mutex across an RCU-tasks grace period that the probes after it
/// (fentry's text poke) or the first scenario would wait for.
struct NoKprobeOptimizer {
    restore: Option<String>,
}

const KPROBES_OPTIMIZATION: &str = "/proc/sys/debug/kprobes-optimization";

impl NoKprobeOptimizer {
    fn begin() -> NoKprobeOptimizer {
        let old = std::fs::read_to_string(KPROBES_OPTIMIZATION).map(|s| s.trim().to_string()).ok();
        let restore = old.filter(|o| o != "0" && std::fs::write(KPROBES_OPTIMIZATION, "0").is_ok());
        NoKprobeOptimizer { restore }
    }
}

impl Drop for NoKprobeOptimizer {
    fn drop(&mut self) {
        if let Some(old) = self.restore.take() {
            if let Err(e) = std::fs::write(KPROBES_OPTIMIZATION, &old) {
                crate::console::say(&format!("restoring {KPROBES_OPTIMIZATION} to {old} failed: {e}"));
            }
        }
    }
}

/// `kprobe` and `bpf_link_create`: a perf event of the kprobe PMU, linked with BPF_LINK_CREATE
/// where the kernel has it (which proves both), else with the ioctl.
fn probe_kprobe(kv: u32) -> (Outcome, Outcome) {
    let event = crate::perf::pmu_type("kprobe").map_err(StepError::from).and_then(|pmu| {
        let mut refused = StepError::Refused { call: String::new(), errno: 0 };
        for func in KPROBE_FUNCTIONS {
            for offset in KPROBE_OFFSETS {
                let mut attr = crate::perf::Attr::counter(pmu, 0);
                attr.config2 = offset;
                match crate::perf::open(attr, 0, Some(func)) {
                    Ok(e) => return Ok(e),
                    Err(errno) => {
                        refused = StepError::Refused { call: format!("perf_event_open(kprobe {func}+{offset})"), errno }
                    }
                }
            }
        }
        Err(refused)
    });
    let (event, prog) = match event.and_then(|event| Ok((event, load(PROG_KPROBE, 0, kv)?))) {
        Ok(p) => p,
        Err(e) => return (Err(e.clone()), Err(e)),
    };
    match link_create(&prog, event.fd(), BPF_PERF_EVENT) {
        Ok(_link) => (Ok(()), Ok(())),
        Err(link) => (set_bpf(&event, &prog), Err(link)),
    }
}

fn probe_uprobe(kv: u32, offset: u64) -> Outcome {
    let pmu = crate::perf::pmu_type("uprobe")?;
    let mut attr = crate::perf::Attr::counter(pmu, 0);
    attr.config2 = offset;
    let event = crate::perf::open(attr, 0, Some(ATTACH_USER)).map_err(|errno| StepError::Refused {
        call: format!("perf_event_open(uprobe {ATTACH_USER}:{offset:#x})"),
        errno,
    })?;
    set_bpf(&event, &load(PROG_KPROBE, 0, kv)?)
}

fn probe_tracepoint(kv: u32) -> Outcome {
    let (group, name) = PERF_TRACEPOINT;
    let path = format!("{}/events/{group}/{name}/id", crate::mounts::TRACEFS);
    let id: u64 = std::fs::read_to_string(&path)
        .map_err(|e| StepError::File { action: "read", path: path.clone(), detail: e.to_string() })?
        .trim()
        .parse()
        .map_err(|_| StepError::Content { path: path.clone(), problem: "is not a number" })?;
    let event = crate::perf::open(crate::perf::Attr::counter(crate::perf::TYPE_TRACEPOINT, id), 0, None)
        .map_err(|errno| StepError::Refused { call: format!("perf_event_open(tracepoint {group}:{name})"), errno })?;
    set_bpf(&event, &load(PROG_TRACEPOINT, 0, kv)?)
}

fn probe_tp_btf(kv: u32) -> Outcome {
    let id = btf::vmlinux_btf_id(BTF_KIND_TYPEDEF, BTF_TRACEPOINT, kv)?;
    raw_tp_open(None, &load_typed(PROG_TRACING, BPF_TRACE_RAW_TP, id, 0, kv)?).map(drop)
}

fn probe_perf_event(kv: u32) -> Outcome {
    let mut attr = crate::perf::Attr::counter(crate::perf::TYPE_SOFTWARE, crate::perf::SW_CPU_CLOCK);
    // A sampling event (the kernel runs perf_event programs on overflow), created disabled and
    // with a period of 1000 s: it never fires before it is closed.
    attr.sample_period = 1_000_000_000_000;
    let event = crate::perf::open(attr, 0, None)
        .map_err(|errno| StepError::Refused { call: "perf_event_open(software cpu-clock)".into(), errno })?;
    set_bpf(&event, &load(PROG_PERF_EVENT, 0, kv)?)
}

/// File offset of the entry point of [`ATTACH_USER`], from its ELF and program headers (its
/// first page; `elf::function_offset` reads the whole ~750 KB file, ~10 ms under TCG).
fn user_target() -> Result<u64, StepError> {
    use std::io::Read;
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(ATTACH_USER).and_then(|mut f| f.read(&mut head)).map_err(|e| StepError::File {
        action: "read",
        path: ATTACH_USER.into(),
        detail: e.to_string(),
    })?;
    crate::elf::entry_offset(&head[..n])
        .map_err(|e| StepError::Elf { path: ATTACH_USER.into(), detail: format!("{e:#}") })
}

/// A program of `prog_type` (`r0 = 0; exit`) with BTF, `int kmatrix_target(void *ctx)`, and
/// that BTF: what fentry and fexit can attach to.
fn typed_program(prog_type: u32, kv: u32) -> Result<(OwnedFd, OwnedFd), StepError> {
    let blob = btf::target_btf();
    let attr = BtfLoadAttr {
        btf: blob.as_ptr() as u64,
        log_buf: 0,
        size: blob.len() as u32,
        log_size: 0,
        log_level: 0,
        _pad: 0,
    };
    let btf = bpf_fd_or(BPF_BTF_LOAD, &attr, "BPF_BTF_LOAD")?;
    let func_info: [u32; 2] = [0, TARGET_FUNC_ID];
    let attr = ProgLoadAttr {
        prog_name: *b"kmatrix_target\0\0",
        prog_btf_fd: btf.as_raw_fd() as u32,
        func_info_rec_size: 8,
        func_info: func_info.as_ptr() as u64,
        func_info_cnt: 1,
        ..ProgLoadAttr::return_zero(prog_type, kv)
    };
    let prog = bpf_fd_or(BPF_PROG_LOAD, &attr, format_args!("BPF_PROG_LOAD(type {prog_type} with BTF)"))?;
    Ok((btf, prog))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attach_type_is_probed_at_boot_or_on_demand() {
        assert!(AT_BOOT.iter().all(|t| ATTACH_TYPES.contains(t)));
        let later: Vec<&str> = ATTACH_TYPES.iter().copied().filter(|t| !AT_BOOT.contains(t)).collect();
        assert_eq!(later, ON_DEMAND);
    }
}
