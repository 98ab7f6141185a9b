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
//! much as for fidelity. Loading and attaching real programs is not this module's job.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
pub(super) const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_F_NO_PREALLOC: u32 = 1;
const BPF_F_SLEEPABLE: u32 = 1 << 4;

/// Whether the kernel answers `bpf(2)` with anything but ENOSYS.
pub fn syscall_present() -> bool {
    // SAFETY: a null attribute with size 0 is rejected by the kernel before any memory access;
    // no memory of ours is read or written.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, std::ptr::null::<u8>(), 0 as libc::c_uint) };
    if rc >= 0 {
        // SAFETY: rc is an fd the kernel just gave us (it cannot, but then it must not leak).
        unsafe { libc::close(rc as libc::c_int) };
        return true;
    }
    crate::sys::errno() != libc::ENOSYS
}

/// `union bpf_attr` as BPF_PROG_LOAD reads it, up to `attach_prog_fd` (5.5); the fields after
/// `expected_attach_type` are zero except for the BTF-typed programs the attach probes load.
#[repr(C)]
#[derive(Default)]
pub(super) struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    pub attach_btf_id: u32,
    pub attach_prog_fd: u32,
    pub _pad: u32,
}

/// `union bpf_attr` as BPF_MAP_CREATE reads it, up to `map_extra`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
}

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
pub fn prog_types(kernel_release: &str) -> Vec<String> {
    // r0 = 0 (BPF_ALU64 | BPF_MOV | BPF_K), exit (BPF_JMP | BPF_EXIT).
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let license = c"GPL";
    PROG_TYPES
        .iter()
        .filter(|(ty, _, attach, flags)| {
            let attr = ProgLoadAttr {
                prog_type: *ty,
                insn_cnt: insns.len() as u32,
                insns: insns.as_ptr() as u64,
                license: license.as_ptr() as u64,
                // Kernels before 5.0 refuse kprobe programs without it.
                kern_version: version_code(kernel_release),
                prog_flags: *flags,
                expected_attach_type: *attach,
                ..Default::default()
            };
            bpf_fd(BPF_PROG_LOAD, &attr)
        })
        .map(|(_, name, _, _)| name.to_string())
        .collect()
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

/// Whether `cmd` with `attr` returned an fd (closed at once).
fn bpf_fd<T>(cmd: libc::c_long, attr: &T) -> bool {
    match bpf_raw(cmd, attr) {
        Some(fd) => {
            // SAFETY: fd is an fd the kernel just gave us and nothing else holds.
            unsafe { libc::close(fd) };
            true
        }
        None => false,
    }
}

pub(super) fn bpf_raw<T>(cmd: libc::c_long, attr: &T) -> Option<libc::c_int> {
    // SAFETY: attr points to a live, initialised repr(C) value of the given size; the pointers
    // inside it (instructions, license) outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *const T, std::mem::size_of::<T>() as libc::c_uint) };
    (rc >= 0).then_some(rc as libc::c_int)
}

/// LINUX_VERSION_CODE of a release string (`6.1.0-47-amd64` → 0x060100).
pub(super) fn version_code(release: &str) -> u32 {
    let mut parts =
        release.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a << 16) + (b << 8) + c.min(255)
}

// ---------------------------------------------------------------------------------------------
// Attach types.

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_BTF_LOAD: libc::c_long = 18;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
const BPF_BTF_GET_NEXT_ID: libc::c_long = 23;
const BPF_LINK_CREATE: libc::c_long = 28;
const PROG_KPROBE: u32 = 2;
const PROG_TRACEPOINT: u32 = 5;
const PROG_PERF_EVENT: u32 = 7;
const PROG_RAW_TRACEPOINT: u32 = 17;
const PROG_TRACING: u32 = 26;
const PROG_SYSCALL: u32 = 31;
const BPF_TRACE_RAW_TP: u32 = 23;
const BPF_TRACE_FENTRY: u32 = 24;
const BPF_TRACE_FEXIT: u32 = 25;
const BPF_PERF_EVENT: u32 = 41;
const BPF_FUNC_BTF_FIND_BY_NAME_KIND: i32 = 167;
const BTF_KIND_TYPEDEF: u32 = 8;
/// `_IOW('$', 8, __u32)`.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
const BTF_VMLINUX: &str = "/sys/kernel/btf/vmlinux";

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
/// The first eight ([`AT_BOOT`]) are probed before `Hello`, for the capability record; the
/// last three cost ~10 ms each under TCG (the tracepoint's perf event setup and teardown, the
/// uprobe's, and looking up a vmlinux BTF id), which the boot's critical path does not pay:
/// [`attach_probe`] probes them when first asked, once per boot.
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
pub const AT_BOOT: &[&str] =
    &["kprobe", "bpf_link_create", "raw_tracepoint", "fentry", "fexit", "perf_event", "kprobe_multi", "uprobe_multi"];

/// A probe's outcome: Ok when the kernel made the attachment, else the refused step.
pub type Outcome = Result<(), String>;

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
        "tracepoint" => probe_tracepoint(kv),
        "uprobe" => user_target().and_then(|offset| probe_uprobe(kv, offset)),
        "tp_btf" => probe_tp_btf(kv),
        _ => return None,
    };
    later.push(AttachProbe { name, outcome });
    later.last().cloned()
}

fn kernel_version() -> u32 {
    version_code(&crate::sys::uname().map(|u| u.release).unwrap_or_default())
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
    let targets = super::multi::Targets::Kernel { symbols: &[KPROBE_MULTI_FUNCTION] };
    record("kprobe_multi", super::multi::supported(&targets).map_err(|r| r.to_string()));
    let user = user_target().and_then(|offset| {
        let targets = super::multi::Targets::User { path: ATTACH_USER, offsets: &[offset], pid: 0 };
        super::multi::supported(&targets).map_err(|r| r.to_string())
    });
    record("uprobe_multi", user);
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
    let event = crate::perf::pmu_type("kprobe").and_then(|pmu| {
        let mut refused = String::new();
        for func in KPROBE_FUNCTIONS {
            for offset in KPROBE_OFFSETS {
                let mut attr = crate::perf::Attr::counter(pmu, 0);
                attr.config2 = offset;
                match crate::perf::open(attr, 0, Some(func)) {
                    Ok(e) => return Ok(e),
                    Err(e) => {
                        refused = format!("perf_event_open(kprobe {func}+{offset}): {}", crate::sys::errno_text(e))
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
    let event = crate::perf::open(attr, 0, Some(ATTACH_USER))
        .map_err(|e| format!("perf_event_open(uprobe {ATTACH_USER}:{offset:#x}): {}", crate::sys::errno_text(e)))?;
    set_bpf(&event, &load(PROG_KPROBE, 0, kv)?)
}

fn probe_tracepoint(kv: u32) -> Outcome {
    let (group, name) = PERF_TRACEPOINT;
    let path = format!("{}/events/{group}/{name}/id", crate::mounts::TRACEFS);
    let id: u64 = std::fs::read_to_string(&path)
        .map_err(|e| format!("read {path}: {e}"))?
        .trim()
        .parse()
        .map_err(|_| format!("{path} is not a number"))?;
    let event = crate::perf::open(crate::perf::Attr::counter(crate::perf::TYPE_TRACEPOINT, id), 0, None)
        .map_err(|e| format!("perf_event_open(tracepoint {group}:{name}): {}", crate::sys::errno_text(e)))?;
    set_bpf(&event, &load(PROG_TRACEPOINT, 0, kv)?)
}

fn probe_tp_btf(kv: u32) -> Outcome {
    let id = vmlinux_btf_id(BTF_KIND_TYPEDEF, BTF_TRACEPOINT, kv)?;
    raw_tp_open(None, &load_typed(PROG_TRACING, BPF_TRACE_RAW_TP, id, 0, kv)?).map(drop)
}

fn probe_perf_event(kv: u32) -> Outcome {
    let mut attr = crate::perf::Attr::counter(crate::perf::TYPE_SOFTWARE, crate::perf::SW_CPU_CLOCK);
    // A sampling event (the kernel runs perf_event programs on overflow), created disabled and
    // with a period of 1000 s: it never fires before it is closed.
    attr.sample_period = 1_000_000_000_000;
    let event = crate::perf::open(attr, 0, None)
        .map_err(|e| format!("perf_event_open(software cpu-clock): {}", crate::sys::errno_text(e)))?;
    set_bpf(&event, &load(PROG_PERF_EVENT, 0, kv)?)
}

/// File offset of the entry point of [`ATTACH_USER`], from its ELF and program headers (its
/// first page; `elf::function_offset` reads the whole ~750 KB file, ~10 ms under TCG).
fn user_target() -> Result<u64, String> {
    use std::io::Read;
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(ATTACH_USER)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| format!("read {ATTACH_USER}: {e}"))?;
    entry_offset(&head[..n]).ok_or_else(|| format!("{ATTACH_USER}: no executable PT_LOAD holds the entry point"))
}

fn entry_offset(d: &[u8]) -> Option<u64> {
    let u16_at = |o: usize| d.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |o: usize| d.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| d.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    if d.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let entry = u64_at(0x18)?;
    let (phoff, phentsize, phnum) = (u64_at(0x20)? as usize, u16_at(0x36)?, u16_at(0x38)?);
    (0..phnum).find_map(|i| {
        let ph = phoff + i * phentsize;
        // PT_LOAD with PF_X.
        if u32_at(ph)? != 1 || u32_at(ph + 4)? & 1 == 0 {
            return None;
        }
        let (offset, vaddr, filesz) = (u64_at(ph + 8)?, u64_at(ph + 0x10)?, u64_at(ph + 0x20)?);
        (vaddr..vaddr + filesz).contains(&entry).then(|| entry - vaddr + offset)
    })
}

/// The vmlinux BTF id of type `name` of `kind`. The kernel looks it up itself where it can
/// (5.14: a syscall program calling `bpf_btf_find_by_name_kind`, run once): reading the BTF
/// costs a copy of its 4-6 MB, ~30 ms under TCG through BPF_OBJ_GET_INFO_BY_FD and twice that
/// through sysfs, which is what older kernels get.
fn vmlinux_btf_id(kind: u32, name: &str, kv: u32) -> Result<u32, String> {
    match kernel_btf_lookup(kind, name, kv) {
        Ok(Some(id)) => return Ok(id),
        Ok(None) => return Err(format!("{name} not in {BTF_VMLINUX}")),
        Err(_) => {}
    }
    let btf = vmlinux_btf()?;
    let ids =
        btf_type_ids(&btf, &[(kind, name)]).ok_or_else(|| format!("{BTF_VMLINUX} is not BTF this agent can read"))?;
    ids[0].ok_or_else(|| format!("{name} not in {BTF_VMLINUX}"))
}

/// `bpf_btf_find_by_name_kind(name, kind)` run by the kernel: Err when it cannot (no syscall
/// programs before 5.14), Ok(None) when the type is not there.
fn kernel_btf_lookup(kind: u32, name: &str, kv: u32) -> Result<Option<u32>, i32> {
    let insns = find_by_name_insns(name, kind).ok_or(libc::E2BIG)?;
    let attr = ProgLoadAttr {
        prog_type: PROG_SYSCALL,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: c"GPL".as_ptr() as u64,
        kern_version: kv,
        prog_flags: BPF_F_SLEEPABLE,
        ..Default::default()
    };
    let prog = owned(bpf_raw(BPF_PROG_LOAD, &attr))?;
    let mut run = TestRunAttr { prog_fd: prog.as_raw_fd() as u32, ..Default::default() };
    bpf_raw_mut(BPF_PROG_TEST_RUN, &mut run).ok_or_else(crate::sys::errno)?;
    // The helper's s64 result, truncated to the program's u32 return: an id, or -errno.
    Ok((run.retval as i32 > 0).then_some(run.retval))
}

/// A syscall program returning `bpf_btf_find_by_name_kind(name, len + 1, kind, 0)`, the name
/// (NUL-terminated) built on its stack; None for a name longer than 63 bytes.
fn find_by_name_insns(name: &str, kind: u32) -> Option<Vec<u64>> {
    let insn = |code: u8, dst: u8, src: u8, off: i16, imm: i32| -> u64 {
        u64::from(code) | u64::from(dst | src << 4) << 8 | u64::from(off as u16) << 16 | u64::from(imm as u32) << 32
    };
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    if bytes.len() > 64 {
        return None;
    }
    let size = bytes.len();
    bytes.resize(size.div_ceil(8) * 8, 0);
    let base = -(bytes.len() as i16);
    let mut p = Vec::new();
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let v = u64::from_le_bytes(chunk.try_into().ok()?);
        // r1 = v (ld_imm64); *(u64 *)(r10 + base + 8i) = r1
        p.push(insn(0x18, 1, 0, 0, v as u32 as i32));
        p.push(insn(0, 0, 0, 0, (v >> 32) as u32 as i32));
        p.push(insn(0x7b, 10, 1, base + 8 * i as i16, 0));
    }
    p.push(insn(0xbf, 1, 10, 0, 0)); // r1 = r10
    p.push(insn(0x07, 1, 0, 0, i32::from(base))); // r1 += base
    p.push(insn(0xb7, 2, 0, 0, size as i32)); // r2 = size
    p.push(insn(0xb7, 3, 0, 0, kind as i32)); // r3 = kind
    p.push(insn(0xb7, 4, 0, 0, 0)); // r4 = 0
    p.push(insn(0x85, 0, 0, 0, BPF_FUNC_BTF_FIND_BY_NAME_KIND));
    p.push(insn(0x95, 0, 0, 0, 0)); // exit
    Some(p)
}

/// `union bpf_attr` as BPF_PROG_TEST_RUN reads it, up to `cpu`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
}

/// vmlinux BTF: through BPF_OBJ_GET_INFO_BY_FD (one copy) when the kernel gives it an id (5.11),
/// else from sysfs (which hands it out a page per read(2), copying each twice).
fn vmlinux_btf() -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(BTF_VMLINUX).map_err(|e| format!("stat {BTF_VMLINUX}: {e}"))?.len() as u32;
    let mut id = 0u32;
    // Kernel BTF objects come first (vmlinux, then modules); a few ids are enough.
    for _ in 0..64 {
        let mut attr = IdAttr { id, next_id: 0, open_flags: 0 };
        if bpf_raw_mut(BPF_BTF_GET_NEXT_ID, &mut attr).is_none() {
            break;
        }
        id = attr.next_id;
        let mut attr = IdAttr { id, next_id: 0, open_flags: 0 };
        let Ok(fd) = owned(bpf_raw_mut(BPF_BTF_GET_FD_BY_ID, &mut attr)) else { continue };
        let mut info = BtfInfo::default();
        if btf_info(&fd, &mut info).is_err() || info.btf_size != size {
            continue;
        }
        let mut buf = vec![0u8; size as usize];
        let mut info = BtfInfo { btf: buf.as_mut_ptr() as u64, btf_size: size, ..Default::default() };
        if btf_info(&fd, &mut info).is_ok() {
            return Ok(buf);
        }
    }
    std::fs::read(BTF_VMLINUX).map_err(|e| format!("read {BTF_VMLINUX}: {e}"))
}

/// `union bpf_attr` for BPF_BTF_GET_NEXT_ID and BPF_BTF_GET_FD_BY_ID.
#[repr(C)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `struct bpf_btf_info` (5.11).
#[repr(C)]
#[derive(Default)]
struct BtfInfo {
    btf: u64,
    btf_size: u32,
    id: u32,
    name: u64,
    name_len: u32,
    kernel_btf: u32,
}

/// `union bpf_attr` as BPF_OBJ_GET_INFO_BY_FD reads it.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn btf_info(fd: &OwnedFd, info: &mut BtfInfo) -> Result<(), i32> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<BtfInfo>() as u32,
        info: info as *mut BtfInfo as u64,
    };
    bpf_raw_mut(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop).ok_or_else(crate::sys::errno)
}

/// Type id of the FUNC of [`target_btf`], which fentry and fexit attach to.
const TARGET_FUNC_ID: u32 = 4;

/// BTF of the program fentry and fexit attach to: `int kmatrix_target(void *ctx)`.
fn target_btf() -> Vec<u8> {
    let strings = b"\0int\0ctx\0kmatrix_target\0";
    #[rustfmt::skip]
    let types: [u32; 15] = [
        // [1] INT "int": 4 bytes, signed, 32 bits
        1, 0x0100_0000, 4, 0x0100_0020,
        // [2] PTR to void
        0, 0x0200_0000, 0,
        // [3] FUNC_PROTO returning [1], one parameter "ctx" of type [2]
        0, 0x0d00_0001, 1, 5, 2,
        // [4] FUNC "kmatrix_target" of type [3], static
        9, 0x0c00_0000, 3,
    ];
    let type_len = (types.len() * 4) as u32;
    let mut out = Vec::with_capacity(24 + type_len as usize + strings.len());
    out.extend_from_slice(&0xeb9fu16.to_le_bytes());
    out.extend_from_slice(&[1, 0]);
    // hdr_len, type_off, type_len, str_off, str_len
    for w in [24, 0, type_len, type_len, strings.len() as u32] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    for w in types {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(strings);
    out
}

/// `union bpf_attr` as BPF_BTF_LOAD reads it.
#[repr(C)]
struct BtfLoadAttr {
    btf: u64,
    log_buf: u64,
    size: u32,
    log_size: u32,
    log_level: u32,
    _pad: u32,
}

/// A program of `prog_type` (`r0 = 0; exit`) with BTF, `int kmatrix_target(void *ctx)`, and
/// that BTF: what fentry and fexit can attach to.
fn typed_program(prog_type: u32, kv: u32) -> Result<(OwnedFd, OwnedFd), String> {
    let blob = target_btf();
    let attr = BtfLoadAttr {
        btf: blob.as_ptr() as u64,
        log_buf: 0,
        size: blob.len() as u32,
        log_size: 0,
        log_level: 0,
        _pad: 0,
    };
    let btf =
        owned(bpf_raw(BPF_BTF_LOAD, &attr)).map_err(|e| format!("BPF_BTF_LOAD: {}", crate::sys::errno_text(e)))?;
    let func_info: [u32; 2] = [0, TARGET_FUNC_ID];
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: c"GPL".as_ptr() as u64,
        kern_version: kv,
        prog_name: *b"kmatrix_target\0\0",
        prog_btf_fd: btf.as_raw_fd() as u32,
        func_info_rec_size: 8,
        func_info: func_info.as_ptr() as u64,
        func_info_cnt: 1,
        ..Default::default()
    };
    let prog = owned(bpf_raw(BPF_PROG_LOAD, &attr))
        .map_err(|e| format!("BPF_PROG_LOAD(type {prog_type} with BTF): {}", crate::sys::errno_text(e)))?;
    Ok((btf, prog))
}

/// BPF_PROG_LOAD of `r0 = 0; exit` as `prog_type` expecting `attach`.
fn load(prog_type: u32, attach: u32, kv: u32) -> Result<OwnedFd, String> {
    load_typed(prog_type, attach, 0, 0, kv)
}

/// [`load`] of a tracing program typed by BTF id `btf_id`: of vmlinux, or of the program
/// `attach_prog_fd` when that is not 0.
fn load_typed(prog_type: u32, attach: u32, btf_id: u32, attach_prog_fd: u32, kv: u32) -> Result<OwnedFd, String> {
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: c"GPL".as_ptr() as u64,
        kern_version: kv,
        prog_name: *b"kmatrix_probe\0\0\0",
        expected_attach_type: attach,
        attach_btf_id: btf_id,
        attach_prog_fd,
        ..Default::default()
    };
    owned(bpf_raw(BPF_PROG_LOAD, &attr))
        .map_err(|e| format!("BPF_PROG_LOAD(type {prog_type}, attach type {attach}): {}", crate::sys::errno_text(e)))
}

fn owned(fd: Option<libc::c_int>) -> Result<OwnedFd, i32> {
    match fd {
        // SAFETY: the kernel just returned this fd and nothing else owns it.
        Some(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        None => Err(crate::sys::errno()),
    }
}

/// [`bpf_raw`] for commands that write into their attribute (ids, test-run results).
fn bpf_raw_mut<T>(cmd: libc::c_long, attr: &mut T) -> Option<libc::c_int> {
    // SAFETY: attr points to a live, initialised, writable repr(C) value of the given size; the
    // kernel writes only within it, and any pointers inside it outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>() as libc::c_uint) };
    (rc >= 0).then_some(rc as libc::c_int)
}

fn set_bpf(event: &crate::perf::Event, prog: &OwnedFd) -> Outcome {
    // SAFETY: a perf ioctl on our own fd whose argument is an fd number, not a pointer.
    let rc = unsafe { libc::ioctl(event.fd(), PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd()) };
    if rc < 0 {
        return Err(format!("PERF_EVENT_IOC_SET_BPF: {}", crate::sys::errno_text(crate::sys::errno())));
    }
    Ok(())
}

/// `union bpf_attr` as BPF_RAW_TRACEPOINT_OPEN reads it.
#[repr(C)]
struct RawTpAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// BPF_RAW_TRACEPOINT_OPEN: a raw tracepoint by `name`, or (None) the attach point a tracing
/// program was loaded for.
fn raw_tp_open(name: Option<&std::ffi::CStr>, prog: &OwnedFd) -> Result<OwnedFd, String> {
    let attr = RawTpAttr { name: name.map_or(0, |n| n.as_ptr() as u64), prog_fd: prog.as_raw_fd() as u32, _pad: 0 };
    owned(bpf_raw(BPF_RAW_TRACEPOINT_OPEN, &attr))
        .map_err(|e| format!("BPF_RAW_TRACEPOINT_OPEN: {}", crate::sys::errno_text(e)))
}

/// `union bpf_attr` as BPF_LINK_CREATE reads it for a perf event link.
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    bpf_cookie: u64,
}

fn link_create(prog: &OwnedFd, target_fd: libc::c_int, attach_type: u32) -> Result<OwnedFd, String> {
    let attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: target_fd as u32,
        attach_type,
        flags: 0,
        bpf_cookie: 0,
    };
    owned(bpf_raw(BPF_LINK_CREATE, &attr))
        .map_err(|e| format!("BPF_LINK_CREATE(attach type {attach_type}): {}", crate::sys::errno_text(e)))
}

/// Type ids of `(kind, name)` pairs in the raw BTF `btf` (None for a pair not found), in one walk
/// of the type section that stops once all are found; None when `btf` is not BTF. Only the
/// names of types of a wanted kind are compared, so the string section is never scanned.
fn btf_type_ids(btf: &[u8], wanted: &[(u32, &str)]) -> Option<Vec<Option<u32>>> {
    let u32_at = |off: usize| btf.get(off..off + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if btf.get(0..2)? != [0x9f, 0xeb] {
        return None;
    }
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
    let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
    let types = btf.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
    let strings = btf.get(hdr_len + str_off..hdr_len + str_off + str_len)?;
    let name_is = |off: usize, name: &str| {
        let n = name.as_bytes();
        strings.get(off..off + n.len() + 1).is_some_and(|s| &s[..n.len()] == n && s[n.len()] == 0)
    };
    let mut out = vec![None; wanted.len()];
    let mut left = wanted.len();
    let (mut pos, mut id) = (0usize, 1u32);
    while left > 0 && pos + 12 <= types.len() {
        let word =
            |i: usize| u32::from_le_bytes([types[pos + i], types[pos + i + 1], types[pos + i + 2], types[pos + i + 3]]);
        let (name_off, info) = (word(0) as usize, word(4));
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        for (slot, (k, name)) in out.iter_mut().zip(wanted) {
            if slot.is_none() && *k == kind && name_is(name_off, name) {
                *slot = Some(id);
                left -= 1;
            }
        }
        // What follows `struct btf_type` for each kind (uapi linux/btf.h).
        let extra = match kind {
            // int, var, decl_tag
            1 | 14 | 17 => 4,
            // array
            3 => 12,
            // struct, union, datasec, enum64
            4 | 5 | 15 | 19 => 12 * vlen,
            // enum, func_proto
            6 | 13 => 8 * vlen,
            // ptr, fwd, typedef, volatile, const, restrict, func, float, type_tag
            2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0,
            _ => return Some(out),
        };
        pos += 12 + extra;
        id += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_code_of_debian_releases() {
        assert_eq!(version_code("6.1.0-47-amd64"), 0x060100);
        assert_eq!(version_code("5.10.300-1"), 0x050aff);
        assert_eq!(version_code("garbage"), 0);
    }

    #[test]
    fn attrs_have_the_uapi_layout() {
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 120);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, attach_btf_id), 108);
        assert_eq!(std::mem::size_of::<MapCreateAttr>(), 72);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_btf_fd), 72);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, func_info), 80);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, attach_prog_fd), 112);
        assert_eq!(std::mem::offset_of!(TestRunAttr, retval), 4);
        assert_eq!(std::mem::offset_of!(TestRunAttr, ctx_size_in), 40);
        assert_eq!(std::mem::size_of::<TestRunAttr>(), 72);
        assert_eq!(std::mem::offset_of!(LinkCreateAttr, bpf_cookie), 16);
        assert_eq!(std::mem::size_of::<RawTpAttr>(), 16);
        assert_eq!(std::mem::size_of::<BtfInfo>(), 32);
    }

    #[test]
    fn every_attach_type_is_probed_at_boot_or_on_demand() {
        assert!(AT_BOOT.iter().all(|t| ATTACH_TYPES.contains(t)));
        let later: Vec<&&str> = ATTACH_TYPES.iter().filter(|t| !AT_BOOT.contains(t)).collect();
        assert_eq!(later, [&"tracepoint", &"uprobe", &"tp_btf"]);
    }

    #[test]
    fn the_target_btf_has_its_func_where_the_probes_look() {
        let btf = target_btf();
        let ids = btf_type_ids(&btf, &[(12, "kmatrix_target"), (1, "int"), (BTF_KIND_TYPEDEF, "int")]).unwrap();
        assert_eq!(ids, [Some(TARGET_FUNC_ID), Some(1), None]);
        assert!(btf_type_ids(b"not btf at all, not at all", &[(1, "int")]).is_none());
    }

    #[test]
    fn find_by_name_program_builds_the_name_on_its_stack() {
        let p = find_by_name_insns("btf_trace_module_load", BTF_KIND_TYPEDEF).unwrap();
        // 22 bytes with the NUL: three 8-byte stores (ld_imm64 + stx each), 5 setup, call, exit.
        assert_eq!(p.len(), 3 * 3 + 5 + 2);
        let mut name = Vec::new();
        for i in 0..3 {
            let (lo, hi) = (p[3 * i] >> 32, p[3 * i + 1] >> 32);
            name.extend_from_slice(&(lo | hi << 32).to_le_bytes());
            // stx [r10 - 24 + 8i], r1
            assert_eq!(p[3 * i + 2] & 0xffff, 0x1a7b);
            assert_eq!((p[3 * i + 2] >> 16) as u16 as i16, -24 + 8 * i as i16);
        }
        assert_eq!(&name[..22], b"btf_trace_module_load\0");
        assert_eq!(p[11], 0x0000_0016_0000_02b7, "r2 = 22");
        assert_eq!(p[12], 0x0000_0008_0000_03b7, "r3 = BTF_KIND_TYPEDEF");
        assert_eq!(p[14], 0x0000_00a7_0000_0085, "call bpf_btf_find_by_name_kind");
        assert_eq!(p[15], 0x95, "exit");
        assert!(find_by_name_insns(&"x".repeat(64), 8).is_none());
    }

    #[test]
    fn entry_offset_maps_the_entry_point_through_its_executable_segment() {
        let mut elf = vec![0u8; 64 + 2 * 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x18..0x20].copy_from_slice(&0x401234u64.to_le_bytes());
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        // A read-only PT_LOAD at 0x400000, then the executable one at 0x401000 from offset 0x1000.
        for (i, (flags, offset, vaddr)) in [(4u32, 0u64, 0x400000u64), (5, 0x1000, 0x401000)].into_iter().enumerate() {
            let ph = 64 + 56 * i;
            elf[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
            elf[ph + 4..ph + 8].copy_from_slice(&flags.to_le_bytes());
            elf[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
            elf[ph + 0x10..ph + 0x18].copy_from_slice(&vaddr.to_le_bytes());
            elf[ph + 0x20..ph + 0x28].copy_from_slice(&0x1000u64.to_le_bytes());
        }
        assert_eq!(entry_offset(&elf), Some(0x1234));
        assert_eq!(entry_offset(&elf[..100]), None);
        assert_eq!(entry_offset(b"#!/bin/sh"), None);
    }
}
