//! The raw `bpf(2)` layer: command numbers, the `union bpf_attr` layouts the agent fills, the
//! syscall itself, and the few calls built on it (load a trivial program, open a raw tracepoint,
//! create a link, set a perf event's program), each returning the refused call and its errno.
//!
//! For what aya cannot do: the capability probes (`probe`), the BTF lookups (`btf`) and the
//! multi-attach links (`multi`). Layouts follow `include/uapi/linux/bpf.h` and are checked by the
//! tests below. Not for loading real objects: that is aya's job (`object`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub const BPF_MAP_CREATE: libc::c_long = 0;
pub const BPF_PROG_LOAD: libc::c_long = 5;
pub const BPF_PROG_TEST_RUN: libc::c_long = 10;
pub const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
pub const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
pub const BPF_BTF_LOAD: libc::c_long = 18;
pub const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
pub const BPF_BTF_GET_NEXT_ID: libc::c_long = 23;
pub const BPF_LINK_CREATE: libc::c_long = 28;

pub const BPF_F_NO_PREALLOC: u32 = 1;
pub const BPF_F_SLEEPABLE: u32 = 1 << 4;

/// `enum bpf_prog_type` values the agent loads.
pub const PROG_KPROBE: u32 = 2;
pub const PROG_TRACEPOINT: u32 = 5;
pub const PROG_PERF_EVENT: u32 = 7;
pub const PROG_RAW_TRACEPOINT: u32 = 17;
pub const PROG_TRACING: u32 = 26;
pub const PROG_SYSCALL: u32 = 31;

/// `enum bpf_attach_type` values the agent attaches with.
pub const BPF_TRACE_RAW_TP: u32 = 23;
pub const BPF_TRACE_FENTRY: u32 = 24;
pub const BPF_TRACE_FEXIT: u32 = 25;
pub const BPF_PERF_EVENT: u32 = 41;
pub const BPF_TRACE_KPROBE_MULTI: u32 = 42;
pub const BPF_TRACE_UPROBE_MULTI: u32 = 48;

/// `_IOW('$', 8, __u32)`.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;

/// `r0 = 0` (BPF_ALU64 | BPF_MOV | BPF_K), `exit` (BPF_JMP | BPF_EXIT): the program every probe
/// loads, which any program type accepts. A static: the kernel reads it through its address.
pub static RETURN_ZERO: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];

/// `union bpf_attr` as BPF_PROG_LOAD reads it, up to `attach_prog_fd` (5.5); the fields after
/// `expected_attach_type` are zero except for the BTF-typed programs the attach probes load.
#[repr(C)]
#[derive(Default)]
pub struct ProgLoadAttr {
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

impl ProgLoadAttr {
    /// [`RETURN_ZERO`] as a GPL program of `prog_type` for kernel `kv`; other fields zero.
    pub fn return_zero(prog_type: u32, kv: u32) -> ProgLoadAttr {
        ProgLoadAttr {
            prog_type,
            insn_cnt: RETURN_ZERO.len() as u32,
            insns: RETURN_ZERO.as_ptr() as u64,
            license: c"GPL".as_ptr() as u64,
            kern_version: kv,
            ..Default::default()
        }
    }
}

/// `union bpf_attr` as BPF_MAP_CREATE reads it, up to `map_extra`.
#[repr(C)]
#[derive(Default)]
pub struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; 16],
    pub map_ifindex: u32,
    pub btf_fd: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub map_extra: u64,
}

/// `union bpf_attr` as BPF_PROG_TEST_RUN reads it, up to `cpu`.
#[repr(C)]
#[derive(Default)]
pub struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
}

/// `union bpf_attr` for BPF_BTF_GET_NEXT_ID and BPF_BTF_GET_FD_BY_ID.
#[repr(C)]
pub struct IdAttr {
    pub id: u32,
    pub next_id: u32,
    pub open_flags: u32,
}

/// `struct bpf_btf_info` (5.11).
#[repr(C)]
#[derive(Default)]
pub struct BtfInfo {
    pub btf: u64,
    pub btf_size: u32,
    pub id: u32,
    pub name: u64,
    pub name_len: u32,
    pub kernel_btf: u32,
}

/// `union bpf_attr` as BPF_OBJ_GET_INFO_BY_FD reads it.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `union bpf_attr` as BPF_BTF_LOAD reads it.
#[repr(C)]
pub struct BtfLoadAttr {
    pub btf: u64,
    pub log_buf: u64,
    pub size: u32,
    pub log_size: u32,
    pub log_level: u32,
    pub _pad: u32,
}

/// `union bpf_attr` as BPF_RAW_TRACEPOINT_OPEN reads it.
#[repr(C)]
struct RawTpAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
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

/// `union bpf_attr` as BPF_LINK_CREATE reads it for kprobe_multi.
#[repr(C)]
#[derive(Default)]
pub struct KprobeMultiAttr {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub multi_flags: u32,
    pub cnt: u32,
    pub syms: u64,
    pub addrs: u64,
    pub cookies: u64,
}

/// `union bpf_attr` as BPF_LINK_CREATE reads it for uprobe_multi.
#[repr(C)]
#[derive(Default)]
pub struct UprobeMultiAttr {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub path: u64,
    pub offsets: u64,
    pub ref_ctr_offsets: u64,
    pub cookies: u64,
    pub cnt: u32,
    pub multi_flags: u32,
    pub pid: u32,
    pub pad: u32,
}

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

/// `bpf(cmd, attr, sizeof attr)`: the fd or value the kernel returned, None on failure (errno
/// set).
pub fn bpf_raw<T>(cmd: libc::c_long, attr: &T) -> Option<libc::c_int> {
    // SAFETY: attr points to a live, initialised repr(C) value of the given size; the pointers
    // inside it (instructions, license) outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *const T, std::mem::size_of::<T>() as libc::c_uint) };
    (rc >= 0).then_some(rc as libc::c_int)
}

/// [`bpf_raw`] for commands that write into their attribute (ids, test-run results).
pub fn bpf_raw_mut<T>(cmd: libc::c_long, attr: &mut T) -> Option<libc::c_int> {
    // SAFETY: attr points to a live, initialised, writable repr(C) value of the given size; the
    // kernel writes only within it, and any pointers inside it outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>() as libc::c_uint) };
    (rc >= 0).then_some(rc as libc::c_int)
}

/// Why a probe step got no attachment. Its text goes into the capability record and scenario
/// evidence (where expectations match it), so each variant prints as the message it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The kernel refused `call` (`BPF_PROG_LOAD(type 2, attach type 0)`) with `errno`.
    #[error("{call}: {}", crate::sys::errno_text(*.errno))]
    Refused { call: String, errno: i32 },
    /// A file the step reads first could not be read: `action` is `read` or `stat`.
    #[error("{action} {path}: {detail}")]
    File { action: &'static str, path: String, detail: String },
    /// A file holds what the step cannot use (`problem`: `is not a number`).
    #[error("{path} {problem}")]
    Content { path: String, problem: &'static str },
    /// An ELF file the step reads is not what it needs.
    #[error("{path}: {detail}")]
    Elf { path: String, detail: String },
    /// A type the step needs is not in `place` (vmlinux BTF).
    #[error("{name} not in {place}")]
    Missing { name: String, place: &'static str },
    #[error(transparent)]
    Pmu(#[from] crate::perf::PmuError),
    /// A multi-attach link refused (its step, errno and message as [`super::Rejected`] says).
    #[error("{0}")]
    Multi(String),
}

/// [`bpf_raw`] for a command that returns an fd: the fd owned, or the refusal of `call`.
pub fn bpf_fd_or<T>(cmd: libc::c_long, attr: &T, call: impl std::fmt::Display) -> Result<OwnedFd, StepError> {
    owned(bpf_raw(cmd, attr)).map_err(|errno| StepError::Refused { call: call.to_string(), errno })
}

/// Whether `cmd` with `attr` returned an fd (closed at once).
pub fn bpf_fd<T>(cmd: libc::c_long, attr: &T) -> bool {
    match bpf_raw(cmd, attr) {
        Some(fd) => {
            // SAFETY: fd is an fd the kernel just gave us and nothing else holds.
            unsafe { libc::close(fd) };
            true
        }
        None => false,
    }
}

/// The fd of a [`bpf_raw`] call, owned; else the errno.
pub fn owned(fd: Option<libc::c_int>) -> Result<OwnedFd, i32> {
    match fd {
        // SAFETY: the kernel just returned this fd and nothing else owns it.
        Some(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        None => Err(crate::sys::errno()),
    }
}

/// LINUX_VERSION_CODE of a release string (`6.1.0-47-amd64` → 0x060100).
pub fn version_code(release: &str) -> u32 {
    kmatrix_proto::KernelVersion::parse(release).unwrap_or_default().code()
}

/// LINUX_VERSION_CODE of the running kernel (kernels before 5.0 refuse kprobe programs without
/// it).
pub fn kernel_version() -> u32 {
    let signature = std::fs::read_to_string(VERSION_SIGNATURE).ok();
    version_of(signature.as_deref(), &crate::sys::uname().map(|u| u.release).unwrap_or_default())
}

/// Ubuntu's kernels only: `Ubuntu 4.15.0-213.224-generic 4.15.18`.
const VERSION_SIGNATURE: &str = "/proc/version_signature";

/// LINUX_VERSION_CODE from the `release` uname gives, unless Ubuntu's version signature says
/// otherwise: Ubuntu's release keeps the sublevel 0 (`4.15.0-213-generic`) while the kernel was
/// built with the upstream one it carries (4.15.18), the last word of the signature. A 4.15
/// kernel refuses a kprobe program naming 4.15.0 (libbpf reads the signature for the same reason).
fn version_of(signature: Option<&str>, release: &str) -> u32 {
    signature
        .and_then(|s| s.split_whitespace().last())
        .map(version_code)
        .filter(|v| *v != 0)
        .unwrap_or_else(|| version_code(release))
}

/// BPF_PROG_LOAD of [`RETURN_ZERO`] as `prog_type` expecting `attach`.
pub fn load(prog_type: u32, attach: u32, kv: u32) -> Result<OwnedFd, StepError> {
    load_typed(prog_type, attach, 0, 0, kv)
}

/// [`load`] of a tracing program typed by BTF id `btf_id`: of vmlinux, or of the program
/// `attach_prog_fd` when that is not 0.
pub fn load_typed(
    prog_type: u32,
    attach: u32,
    btf_id: u32,
    attach_prog_fd: u32,
    kv: u32,
) -> Result<OwnedFd, StepError> {
    let attr = ProgLoadAttr {
        prog_name: *b"kmatrix_probe\0\0\0",
        expected_attach_type: attach,
        attach_btf_id: btf_id,
        attach_prog_fd,
        ..ProgLoadAttr::return_zero(prog_type, kv)
    };
    bpf_fd_or(BPF_PROG_LOAD, &attr, format_args!("BPF_PROG_LOAD(type {prog_type}, attach type {attach})"))
}

/// Verifier log kept on a failed [`load_with_log`].
const LOG_SIZE: usize = 1 << 20;

/// BPF_PROG_LOAD of `insns` as `prog_type` expecting `attach`; on failure load again with the
/// verifier log on and return (errno of the first load, log).
pub fn load_with_log(
    name: &str,
    prog_type: u32,
    insns: &[u64],
    license: &std::ffi::CStr,
    attach: u32,
) -> Result<OwnedFd, (i32, String)> {
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        kern_version: kernel_version(),
        prog_name,
        expected_attach_type: attach,
        ..Default::default()
    };
    if let Ok(fd) = owned(bpf_raw(BPF_PROG_LOAD, &attr)) {
        return Ok(fd);
    }
    let first = crate::sys::errno();
    let mut log = vec![0u8; LOG_SIZE];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    // A load that fails only without a log would be odd; keep the program then.
    if let Ok(fd) = owned(bpf_raw(BPF_PROG_LOAD, &attr)) {
        return Ok(fd);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    Err((first, String::from_utf8_lossy(&log[..end]).into_owned()))
}

/// BPF_OBJ_GET_INFO_BY_FD of a BTF object into `info`.
pub fn btf_info(fd: &OwnedFd, info: &mut BtfInfo) -> Result<(), i32> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<BtfInfo>() as u32,
        info: info as *mut BtfInfo as u64,
    };
    bpf_raw_mut(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop).ok_or_else(crate::sys::errno)
}

/// PERF_EVENT_IOC_SET_BPF: run `prog` on `event`.
pub fn set_bpf(event: &crate::perf::Event, prog: &OwnedFd) -> Result<(), StepError> {
    // SAFETY: a perf ioctl on our own fd whose argument is an fd number, not a pointer.
    let rc = unsafe { libc::ioctl(event.fd(), PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd()) };
    if rc < 0 {
        return Err(StepError::Refused { call: "PERF_EVENT_IOC_SET_BPF".into(), errno: crate::sys::errno() });
    }
    Ok(())
}

/// BPF_RAW_TRACEPOINT_OPEN: a raw tracepoint by `name`, or (None) the attach point a tracing
/// program was loaded for.
pub fn raw_tp_open(name: Option<&std::ffi::CStr>, prog: &OwnedFd) -> Result<OwnedFd, StepError> {
    let attr = RawTpAttr { name: name.map_or(0, |n| n.as_ptr() as u64), prog_fd: prog.as_raw_fd() as u32, _pad: 0 };
    bpf_fd_or(BPF_RAW_TRACEPOINT_OPEN, &attr, "BPF_RAW_TRACEPOINT_OPEN")
}

/// BPF_LINK_CREATE of `prog` to the perf event (or other target) `target_fd`.
pub fn link_create(prog: &OwnedFd, target_fd: libc::c_int, attach_type: u32) -> Result<OwnedFd, StepError> {
    let attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: target_fd as u32,
        attach_type,
        flags: 0,
        bpf_cookie: 0,
    };
    bpf_fd_or(BPF_LINK_CREATE, &attr, format_args!("BPF_LINK_CREATE(attach type {attach_type})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn version_code_of_debian_releases() {
        assert_eq!(version_code("6.1.0-47-amd64"), 0x060100);
        assert_eq!(version_code("5.10.300-1"), 0x050aff);
        assert_eq!(version_code("garbage"), 0);
    }

    #[test]
    fn ubuntus_version_code_is_its_signatures_upstream_sublevel() {
        // ubuntu-4.15 refused the agent's kprobe probe with 4.15.0 (bpftool, reading the
        // signature, said yes): tool.bpftool.feature_probe "program type kprobe: agent no".
        let sig = "Ubuntu 4.15.0-213.224-generic 4.15.18\n";
        assert_eq!(version_of(Some(sig), "4.15.0-213-generic"), 0x040f12);
        assert_eq!(version_of(None, "4.15.0-213-generic"), 0x040f00);
        assert_eq!(version_of(Some("garbage"), "6.1.0-47-amd64"), 0x060100);
    }

    #[test]
    fn attrs_have_the_uapi_layout() {
        assert_eq!(size_of::<ProgLoadAttr>(), 120);
        assert_eq!(offset_of!(ProgLoadAttr, attach_btf_id), 108);
        assert_eq!(size_of::<MapCreateAttr>(), 72);
        assert_eq!(offset_of!(ProgLoadAttr, prog_btf_fd), 72);
        assert_eq!(offset_of!(ProgLoadAttr, func_info), 80);
        assert_eq!(offset_of!(ProgLoadAttr, attach_prog_fd), 112);
        assert_eq!(offset_of!(TestRunAttr, retval), 4);
        assert_eq!(offset_of!(TestRunAttr, ctx_size_in), 40);
        assert_eq!(size_of::<TestRunAttr>(), 72);
        assert_eq!(offset_of!(LinkCreateAttr, bpf_cookie), 16);
        assert_eq!(size_of::<RawTpAttr>(), 16);
        assert_eq!(size_of::<BtfInfo>(), 32);
    }

    #[test]
    fn link_attrs_have_the_uapi_layout() {
        assert_eq!(offset_of!(KprobeMultiAttr, multi_flags), 16);
        assert_eq!(offset_of!(KprobeMultiAttr, syms), 24);
        assert_eq!(offset_of!(KprobeMultiAttr, cookies), 40);
        assert_eq!(size_of::<KprobeMultiAttr>(), 48);
        assert_eq!(offset_of!(UprobeMultiAttr, path), 16);
        assert_eq!(offset_of!(UprobeMultiAttr, cookies), 40);
        assert_eq!(offset_of!(UprobeMultiAttr, cnt), 48);
        assert_eq!(offset_of!(UprobeMultiAttr, pid), 56);
        assert_eq!(size_of::<UprobeMultiAttr>(), 64);
    }
}
