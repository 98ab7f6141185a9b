//! libbpf 1.x's program section names (`section_defs` in libbpf.c) and an object rewritten so
//! that aya-obj, whose section parser knows fewer of them, reads every one.
//!
//! aya-obj 0.3 refuses an object with a `ksyscall/openat`, `usdt/...` or `kprobe.multi/...`
//! program although parsing, CO-RE relocation and map creation do not depend on the program
//! type. [`alias`] renames each such program section to one aya-obj reads with the same BPF
//! program type where there is one (`ksyscall` → `kprobe`, `usdt` → `kprobe`, `uprobe.multi`
//! → `uprobe`), else to any it reads (`fmod_ret` → `fexit`, `struct_ops` → `kprobe`; only the
//! relocations are computed for those). The new names are appended to the section name table
//! and to the `.BTF` string table, and `.BTF.ext`'s func_info, line_info and CO-RE records are
//! pointed at them, because aya-obj matches those records to sections by name. Nothing else in
//! the file moves: the instructions, relocations and symbols are the compiler's.
//!
//! [`lookup`] answers, for a section name as written, what libbpf makes of it and whether
//! `kmatrix run --bpf-object` can attach it from its name alone (libbpf's auto-attach):
//! `ksyscall/NAME` is a kprobe on the kernel's syscall symbol, `tp/CAT/NAME` a tracepoint,
//! `raw_tp/NAME` a raw tracepoint, and so on.
//!
//! What it is not: a loader. Whether a kernel takes the program is the guest's business.

use crate::elf::le::{u16_at, u32_at, u64_at};
use std::str::FromStr;

/// How the agent attaches a program from its section name (libbpf's auto-attach), when it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auto {
    /// `kprobe/SYM`, `kretprobe/SYM`.
    KProbe,
    /// `ksyscall/NAME`, `kretsyscall/NAME`: a kprobe on the kernel's symbol for syscall NAME.
    KSyscall,
    /// `tracepoint/CAT/NAME`, `tp/CAT/NAME`.
    TracePoint,
    /// `raw_tracepoint/NAME`, `raw_tp/NAME`.
    RawTracePoint,
    /// `tp_btf/NAME`.
    TpBtf,
    /// `fentry/FN`.
    FEntry,
    /// `fexit/FN`.
    FExit,
    /// The agent has no attach path for it (multi links, USDT, struct_ops, ...).
    No,
}

/// One entry of libbpf's `section_defs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecDef {
    /// The section name's type part (`ksyscall`, `uprobe.multi.s`, `cgroup/connect4`).
    pub prefix: &'static str,
    /// libbpf's `type+`: the name may go on with `/extras` (the attach target).
    pub plus: bool,
    /// libbpf's program type (`BPF_PROG_TYPE_*` without the prefix, lowercase).
    pub prog_type: &'static str,
    /// The section name aya-obj reads instead, when it does not read this one.
    pub alias: Option<&'static str>,
    /// How the agent attaches it from its name.
    pub auto: Auto,
}

const fn d(
    prefix: &'static str,
    plus: bool,
    prog_type: &'static str,
    alias: Option<&'static str>,
    auto: Auto,
) -> SecDef {
    SecDef { prefix, plus, prog_type, alias, auto }
}

use Auto::{FEntry, FExit, KProbe, KSyscall, No, RawTracePoint, TpBtf, TracePoint};

/// libbpf 1.x's `section_defs`, in its order (a name takes the first entry it matches).
pub const SECTION_DEFS: &[SecDef] = &[
    d("socket", true, "socket_filter", None, No),
    d("sk_reuseport/migrate", false, "sk_reuseport", None, No),
    d("sk_reuseport", false, "sk_reuseport", None, No),
    d("kprobe", true, "kprobe", None, KProbe),
    d("uprobe", true, "kprobe", None, No),
    d("uprobe.s", true, "kprobe", None, No),
    d("kretprobe", true, "kprobe", None, KProbe),
    d("uretprobe", true, "kprobe", None, No),
    d("uretprobe.s", true, "kprobe", None, No),
    d("kprobe.multi", true, "kprobe", Some("kprobe"), No),
    d("kretprobe.multi", true, "kprobe", Some("kretprobe"), No),
    d("kprobe.session", true, "kprobe", Some("kprobe"), No),
    d("uprobe.multi", true, "kprobe", Some("uprobe"), No),
    d("uretprobe.multi", true, "kprobe", Some("uretprobe"), No),
    d("uprobe.session", true, "kprobe", Some("uprobe"), No),
    d("uprobe.multi.s", true, "kprobe", Some("uprobe.s"), No),
    d("uretprobe.multi.s", true, "kprobe", Some("uretprobe.s"), No),
    d("uprobe.session.s", true, "kprobe", Some("uprobe.s"), No),
    d("ksyscall", true, "kprobe", Some("kprobe"), KSyscall),
    d("kretsyscall", true, "kprobe", Some("kretprobe"), KSyscall),
    d("usdt", true, "kprobe", Some("kprobe"), No),
    d("usdt.s", true, "kprobe", Some("uprobe.s"), No),
    d("tc/ingress", false, "sched_cls", Some("classifier"), No),
    d("tc/egress", false, "sched_cls", Some("classifier"), No),
    d("tcx/ingress", false, "sched_cls", Some("classifier"), No),
    d("tcx/egress", false, "sched_cls", Some("classifier"), No),
    d("tc", false, "sched_cls", Some("classifier"), No),
    d("classifier", false, "sched_cls", None, No),
    d("action", false, "sched_act", Some("classifier"), No),
    d("netkit/primary", false, "sched_cls", Some("classifier"), No),
    d("netkit/peer", false, "sched_cls", Some("classifier"), No),
    d("tracepoint", true, "tracepoint", None, TracePoint),
    d("tp", true, "tracepoint", None, TracePoint),
    d("raw_tracepoint", true, "raw_tracepoint", None, RawTracePoint),
    d("raw_tp", true, "raw_tracepoint", None, RawTracePoint),
    d("raw_tracepoint.w", true, "raw_tracepoint_writable", Some("raw_tp"), No),
    d("raw_tp.w", true, "raw_tracepoint_writable", Some("raw_tp"), No),
    d("tp_btf", true, "tracing", None, TpBtf),
    d("fentry", true, "tracing", None, FEntry),
    d("fmod_ret", true, "tracing", Some("fexit"), No),
    d("fexit", true, "tracing", None, FExit),
    d("fentry.s", true, "tracing", None, No),
    d("fmod_ret.s", true, "tracing", Some("fexit.s"), No),
    d("fexit.s", true, "tracing", None, No),
    d("freplace", true, "ext", None, No),
    d("lsm", true, "lsm", None, No),
    d("lsm.s", true, "lsm", None, No),
    d("lsm_cgroup", true, "lsm", None, No),
    d("iter", true, "tracing", None, No),
    d("iter.s", true, "tracing", None, No),
    d("syscall", false, "syscall", Some("socket"), No),
    d("xdp.frags/devmap", false, "xdp", None, No),
    d("xdp/devmap", false, "xdp", None, No),
    d("xdp.frags/cpumap", false, "xdp", None, No),
    d("xdp/cpumap", false, "xdp", None, No),
    d("xdp.frags", false, "xdp", None, No),
    d("xdp", false, "xdp", None, No),
    d("perf_event", false, "perf_event", None, No),
    d("lwt_in", false, "lwt_in", Some("socket"), No),
    d("lwt_out", false, "lwt_out", Some("socket"), No),
    d("lwt_xmit", false, "lwt_xmit", Some("socket"), No),
    d("lwt_seg6local", false, "lwt_seg6local", Some("socket"), No),
    d("sockops", false, "sock_ops", None, No),
    d("sk_skb/stream_parser", false, "sk_skb", None, No),
    d("sk_skb/stream_verdict", false, "sk_skb", None, No),
    d("sk_skb/verdict", false, "sk_skb", Some("sk_skb/stream_verdict"), No),
    d("sk_skb", false, "sk_skb", Some("sk_skb/stream_verdict"), No),
    d("sk_msg", false, "sk_msg", None, No),
    d("lirc_mode2", false, "lirc_mode2", None, No),
    d("flow_dissector", false, "flow_dissector", None, No),
    d("cgroup_skb/ingress", false, "cgroup_skb", None, No),
    d("cgroup_skb/egress", false, "cgroup_skb", None, No),
    d("cgroup/skb", false, "cgroup_skb", None, No),
    d("cgroup/sock_create", false, "cgroup_sock", None, No),
    d("cgroup/sock_release", false, "cgroup_sock", None, No),
    d("cgroup/sock", false, "cgroup_sock", None, No),
    d("cgroup/post_bind4", false, "cgroup_sock", None, No),
    d("cgroup/post_bind6", false, "cgroup_sock", None, No),
    d("cgroup/bind4", false, "cgroup_sock_addr", None, No),
    d("cgroup/bind6", false, "cgroup_sock_addr", None, No),
    d("cgroup/connect4", false, "cgroup_sock_addr", None, No),
    d("cgroup/connect6", false, "cgroup_sock_addr", None, No),
    d("cgroup/connect_unix", false, "cgroup_sock_addr", Some("cgroup/connect4"), No),
    d("cgroup/sendmsg4", false, "cgroup_sock_addr", None, No),
    d("cgroup/sendmsg6", false, "cgroup_sock_addr", None, No),
    d("cgroup/sendmsg_unix", false, "cgroup_sock_addr", Some("cgroup/sendmsg4"), No),
    d("cgroup/recvmsg4", false, "cgroup_sock_addr", None, No),
    d("cgroup/recvmsg6", false, "cgroup_sock_addr", None, No),
    d("cgroup/recvmsg_unix", false, "cgroup_sock_addr", Some("cgroup/recvmsg4"), No),
    d("cgroup/getpeername4", false, "cgroup_sock_addr", None, No),
    d("cgroup/getpeername6", false, "cgroup_sock_addr", None, No),
    d("cgroup/getpeername_unix", false, "cgroup_sock_addr", Some("cgroup/getpeername4"), No),
    d("cgroup/getsockname4", false, "cgroup_sock_addr", None, No),
    d("cgroup/getsockname6", false, "cgroup_sock_addr", None, No),
    d("cgroup/getsockname_unix", false, "cgroup_sock_addr", Some("cgroup/getsockname4"), No),
    d("cgroup/sysctl", false, "cgroup_sysctl", None, No),
    d("cgroup/getsockopt", false, "cgroup_sockopt", None, No),
    d("cgroup/setsockopt", false, "cgroup_sockopt", None, No),
    d("cgroup/dev", false, "cgroup_device", None, No),
    d("struct_ops", true, "struct_ops", Some("kprobe"), No),
    d("struct_ops.s", true, "struct_ops", Some("kprobe"), No),
    d("sk_lookup", false, "sk_lookup", None, No),
    d("netfilter", false, "netfilter", Some("socket"), No),
];

/// What libbpf makes of section `name`: its entry and the extras after `prefix/` (the attach
/// target; empty for none). libbpf's rule: an exact match, or for a `type+` entry the prefix
/// followed by `/`.
pub fn lookup(name: &str) -> Option<(&'static SecDef, &str)> {
    SECTION_DEFS.iter().find_map(|d| {
        if name == d.prefix {
            Some((d, ""))
        } else if d.plus {
            name.strip_prefix(d.prefix).and_then(|r| r.strip_prefix('/')).map(|extras| (d, extras))
        } else {
            None
        }
    })
}

/// The name aya-obj reads for program section `name`: itself when aya-obj parses it, else its
/// libbpf entry's alias. `None`: neither reads it.
pub fn aya_name(name: &str) -> Option<String> {
    if aya_obj::ProgramSection::from_str(name).is_ok() {
        return Some(name.to_string());
    }
    let (def, _) = lookup(name)?;
    // The name as written follows the alias (`kprobe/ksyscall/openat`): aya-obj reads no further
    // than the alias for every alias in the table, and the new name can be no other section's
    // (`raw_tp.w/sys_enter` beside `raw_tp/sys_enter`), which matters because aya-obj matches
    // `.BTF.ext` records to sections by name.
    Some(format!("{}/{name}", def.alias?))
}

/// An object whose program sections aya-obj reads, and what was renamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aliased {
    /// The object's bytes, rewritten when anything was renamed.
    pub bytes: Vec<u8>,
    /// (section name as written, the name aya-obj reads), in section order.
    pub renamed: Vec<(String, String)>,
}

const SHT_PROGBITS: u32 = 1;
const SHF_EXECINSTR: u64 = 4;
/// `Elf64_Shdr` field offsets.
const SH_NAME: usize = 0;
const SH_FLAGS: usize = 8;
const SH_OFFSET: usize = 24;
const SH_SIZE: usize = 32;

/// Rename every program section aya-obj does not read but libbpf does (see the module doc).
/// `bytes` must be an ELF file [`crate::elf::Elf`] reads; a `.BTF` or `.BTF.ext` it cannot
/// rewrite leaves the names as they are (aya-obj then names the section it refuses).
pub fn alias(bytes: &[u8]) -> Aliased {
    let unchanged = || Aliased { bytes: bytes.to_vec(), renamed: Vec::new() };
    let Some(plan) = rename_plan(bytes) else { return unchanged() };
    if plan.renamed.is_empty() {
        return unchanged();
    }
    rewrite(bytes, &plan).unwrap_or_else(unchanged)
}

struct RenamePlan {
    shoff: usize,
    shentsize: usize,
    shstrndx: usize,
    /// (section index, old name, new name).
    renamed: Vec<(usize, String, String)>,
    /// Index and file range of `.BTF` and `.BTF.ext`.
    btf: Option<(usize, std::ops::Range<usize>)>,
    btf_ext: Option<(usize, std::ops::Range<usize>)>,
    shstrtab: std::ops::Range<usize>,
}

fn rename_plan(bytes: &[u8]) -> Option<RenamePlan> {
    let elf = crate::elf::Elf::parse(bytes).ok()?;
    let sections = elf.sections().ok()?;
    let shoff = usize::try_from(u64_at(bytes, 0x28)?).ok()?;
    let shentsize = usize::from(u16_at(bytes, 0x3a)?);
    let shstrndx = usize::from(u16_at(bytes, 0x3e)?);
    if shentsize != 64 {
        return None;
    }
    let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let mut renamed = Vec::new();
    let (mut btf, mut btf_ext) = (None, None);
    for s in &sections {
        let name = std::str::from_utf8(s.name).unwrap_or("");
        match name {
            ".BTF" => btf = btf.or(s.range.clone().map(|r| (s.index, r))),
            ".BTF.ext" => btf_ext = btf_ext.or(s.range.clone().map(|r| (s.index, r))),
            _ => {}
        }
        let flags = u64_at(bytes, header(s.index)? + SH_FLAGS)?;
        // aya-obj's rule for a program section: executable bytes under a name it gives no
        // other meaning.
        let special = [".text", "license", "version", "maps", ".maps", ".bss", ".data", ".rodata"]
            .iter()
            .any(|p| name.starts_with(p));
        if s.kind != SHT_PROGBITS || flags & SHF_EXECINSTR == 0 || s.data.is_empty() || special {
            continue;
        }
        if aya_obj::ProgramSection::from_str(name).is_ok() {
            continue;
        }
        if let Some(new) = aya_name(name) {
            renamed.push((s.index, name.to_string(), new));
        }
    }
    let shstrtab = sections.get(shstrndx)?.range.clone()?;
    Some(RenamePlan { shoff, shentsize, shstrndx, renamed, btf, btf_ext, shstrtab })
}

fn put_u32(b: &mut [u8], at: usize, v: u32) -> Option<()> {
    b.get_mut(at..at + 4)?.copy_from_slice(&v.to_le_bytes());
    Some(())
}

fn put_u64(b: &mut [u8], at: usize, v: u64) -> Option<()> {
    b.get_mut(at..at + 8)?.copy_from_slice(&v.to_le_bytes());
    Some(())
}

/// Append `data` to `out` at an 8-byte boundary; its offset.
fn append(out: &mut Vec<u8>, data: &[u8]) -> usize {
    out.resize(out.len().next_multiple_of(8), 0);
    let at = out.len();
    out.extend_from_slice(data);
    at
}

fn rewrite(bytes: &[u8], plan: &RenamePlan) -> Option<Aliased> {
    let mut out = bytes.to_vec();
    let header = |i: usize| plan.shoff + i * plan.shentsize;
    // The section name table, with the new names at its end.
    let mut shstrtab = bytes.get(plan.shstrtab.clone())?.to_vec();
    let mut name_off = Vec::new();
    for (_, _, new) in &plan.renamed {
        name_off.push(u32::try_from(shstrtab.len()).ok()?);
        shstrtab.extend_from_slice(new.as_bytes());
        shstrtab.push(0);
    }
    for ((index, _, _), off) in plan.renamed.iter().zip(&name_off) {
        put_u32(&mut out, header(*index) + SH_NAME, *off)?;
    }
    let at = append(&mut out, &shstrtab);
    put_u64(&mut out, header(plan.shstrndx) + SH_OFFSET, at as u64)?;
    put_u64(&mut out, header(plan.shstrndx) + SH_SIZE, shstrtab.len() as u64)?;

    // `.BTF`: the new names appended to its string table; `.BTF.ext`'s section names moved to them.
    if let (Some((btf_index, btf_range)), Some((_, ext_range))) = (&plan.btf, &plan.btf_ext) {
        let btf = bytes.get(btf_range.clone())?;
        let table = crate::btf::BtfTable::parse(btf).ok()?;
        let ext = crate::btf::ext::BtfExt::parse(bytes.get(ext_range.clone())?, &table).ok()?;
        let hdr = u32_at(btf, 4)? as usize;
        let (type_off, type_len) = (u32_at(btf, 8)? as usize, u32_at(btf, 12)? as usize);
        let (str_off, str_len) = (u32_at(btf, 16)? as usize, u32_at(btf, 20)? as usize);
        let types = btf.get(hdr + type_off..hdr + type_off + type_len)?;
        let mut strings = btf.get(hdr + str_off..hdr + str_off + str_len)?.to_vec();
        let mut moved = Vec::new();
        for (_, old, new) in &plan.renamed {
            moved.push((old.as_str(), u32::try_from(strings.len()).ok()?));
            strings.extend_from_slice(new.as_bytes());
            strings.push(0);
        }
        let mut blob = btf.get(..hdr)?.to_vec();
        put_u32(&mut blob, 8, 0)?;
        put_u32(&mut blob, 12, u32::try_from(type_len).ok()?)?;
        put_u32(&mut blob, 16, u32::try_from(type_len).ok()?)?;
        put_u32(&mut blob, 20, u32::try_from(strings.len()).ok()?)?;
        blob.extend_from_slice(types);
        blob.extend_from_slice(&strings);
        for part in [&ext.func_info, &ext.line_info, &ext.core_relo] {
            for s in &part.sections {
                let name = table.name(s.name_off);
                if let Some((_, new_off)) = moved.iter().find(|(old, _)| *old == name) {
                    // The section's name offset sits 8 bytes before its first record.
                    put_u32(&mut out, ext_range.start + s.base - 8, *new_off)?;
                }
            }
        }
        let at = append(&mut out, &blob);
        put_u64(&mut out, header(*btf_index) + SH_OFFSET, at as u64)?;
        put_u64(&mut out, header(*btf_index) + SH_SIZE, blob.len() as u64)?;
    }
    let renamed = plan.renamed.iter().map(|(_, old, new)| (old.clone(), new.clone())).collect();
    Some(Aliased { bytes: out, renamed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_names_resolve_to_their_entry_and_extras() {
        let cases = [
            ("ksyscall/openat", "ksyscall", "openat", Some("kprobe/ksyscall/openat"), Auto::KSyscall),
            ("kretsyscall/openat", "kretsyscall", "openat", Some("kretprobe/kretsyscall/openat"), Auto::KSyscall),
            ("usdt/./libc.so.6:libc:setjmp", "usdt", "./libc.so.6:libc:setjmp", None, Auto::No),
            ("usdt", "usdt", "", Some("kprobe/usdt"), Auto::No),
            ("kprobe.multi/do_*", "kprobe.multi", "do_*", Some("kprobe/kprobe.multi/do_*"), Auto::No),
            ("uprobe.multi.s/x:y", "uprobe.multi.s", "x:y", Some("uprobe.s/uprobe.multi.s/x:y"), Auto::No),
            ("tp/syscalls/sys_enter_openat", "tp", "syscalls/sys_enter_openat", None, Auto::TracePoint),
            ("raw_tp/sys_enter", "raw_tp", "sys_enter", None, Auto::RawTracePoint),
            ("raw_tp.w/sys_enter", "raw_tp.w", "sys_enter", Some("raw_tp/raw_tp.w/sys_enter"), Auto::No),
            ("tp_btf/sys_enter", "tp_btf", "sys_enter", None, Auto::TpBtf),
            ("fmod_ret/security_x", "fmod_ret", "security_x", Some("fexit/fmod_ret/security_x"), Auto::No),
            ("fentry.s/do_x", "fentry.s", "do_x", None, Auto::No),
            ("struct_ops/dctcp_init", "struct_ops", "dctcp_init", Some("kprobe/struct_ops/dctcp_init"), Auto::No),
            ("iter/task", "iter", "task", None, Auto::No),
            ("lsm/file_open", "lsm", "file_open", None, Auto::No),
            ("tc/ingress", "tc/ingress", "", Some("classifier/tc/ingress"), Auto::No),
            ("sk_skb", "sk_skb", "", Some("sk_skb/stream_verdict/sk_skb"), Auto::No),
        ];
        for (name, prefix, extras, alias, auto) in cases {
            let (def, x) = lookup(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!((def.prefix, x, def.auto), (prefix, extras, auto), "{name}");
            if let Some(a) = alias {
                assert_eq!(aya_name(name).as_deref(), Some(a), "{name}");
            }
            // Every name libbpf takes, aya-obj reads as written or as its alias.
            let read = aya_name(name).unwrap_or_else(|| panic!("{name}: no name aya-obj reads"));
            assert!(aya_obj::ProgramSection::from_str(&read).is_ok(), "{name} -> {read}");
        }
        // `type+` needs the `/`; exact entries take nothing after them.
        assert!(lookup("ksyscallx").is_none());
        assert!(lookup("tc/ingressx").is_none());
        assert!(lookup("kmatrix_nonsense/x").is_none());
        assert_eq!(aya_name("kmatrix_nonsense/x"), None);
        // aya-obj's own names stay as written.
        assert_eq!(aya_name("kprobe/do_sys_openat2").as_deref(), Some("kprobe/do_sys_openat2"));
    }

    #[test]
    fn every_entry_is_read_by_aya_obj_as_written_or_by_its_alias() {
        for d in SECTION_DEFS {
            let as_written = aya_obj::ProgramSection::from_str(d.prefix).is_ok();
            assert!(
                as_written != d.alias.is_some(),
                "{}: alias {:?} but aya-obj reads it: {as_written}",
                d.prefix,
                d.alias
            );
            if let Some(a) = d.alias {
                assert!(aya_obj::ProgramSection::from_str(a).is_ok(), "{} -> {a}", d.prefix);
            }
        }
    }

    #[test]
    fn a_file_that_is_not_elf_is_left_as_it_is() {
        let a = alias(b"not an object");
        assert_eq!((a.bytes.as_slice(), a.renamed.len()), (&b"not an object"[..], 0));
    }
}
