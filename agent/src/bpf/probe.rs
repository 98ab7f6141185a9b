//! Probing `bpf(2)` for the capability record: is the syscall there, and which program and map
//! types does the kernel accept.
//!
//! Like libbpf's `libbpf_probe_bpf_prog_type` and bpftool's feature probe: load `r0 = 0; exit`
//! of each program type and create a one-entry map of each map type, with the extra attributes
//! a type needs (expected attach type, inner map, no-prealloc flag). Types that cannot be probed
//! without BTF ids (tracing, ext, lsm, struct_ops programs; local-storage, struct_ops and arena
//! maps) are not listed here: the bpf scenarios load real objects for those. Loading and
//! attaching real programs is not this module's job.

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

/// `union bpf_attr` as BPF_PROG_LOAD reads it, up to `expected_attach_type`.
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
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<MapCreateAttr>(), 72);
    }
}
