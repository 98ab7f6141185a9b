//! BTF for the capability probes: finding a type id in the kernel's BTF (asked of the kernel
//! itself where it can, else by walking the raw type section), and the four-type BTF blob of
//! `int kmatrix_target(void *ctx)` that the fentry/fexit probes attach to.
//!
//! Only what the probes need: the walker compares names of the wanted kinds and knows the size
//! of every kind's trailer (`include/uapi/linux/btf.h`), nothing more. CO-RE relocation of real
//! objects is aya's (`aya::Btf`), not this module's.

use super::sys::{
    bpf_raw, bpf_raw_mut, btf_info, owned, BtfInfo, IdAttr, ProgLoadAttr, StepError, TestRunAttr, BPF_BTF_GET_FD_BY_ID,
    BPF_BTF_GET_NEXT_ID, BPF_F_SLEEPABLE, BPF_PROG_LOAD, BPF_PROG_TEST_RUN, PROG_SYSCALL,
};
use std::os::fd::AsRawFd;

pub const BTF_VMLINUX: &str = "/sys/kernel/btf/vmlinux";
pub const BTF_KIND_TYPEDEF: u32 = 8;
const BPF_FUNC_BTF_FIND_BY_NAME_KIND: i32 = 167;

/// Type id of the FUNC of [`target_btf`], which fentry and fexit attach to.
pub const TARGET_FUNC_ID: u32 = 4;

/// BTF of the program fentry and fexit attach to: `int kmatrix_target(void *ctx)`.
pub fn target_btf() -> Vec<u8> {
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

/// The vmlinux BTF id of type `name` of `kind`. The kernel looks it up itself where it can
/// (5.14: a syscall program calling `bpf_btf_find_by_name_kind`, run once): reading the BTF
/// costs a copy of its 4-6 MB, ~30 ms under TCG through BPF_OBJ_GET_INFO_BY_FD and twice that
/// through sysfs, which is what older kernels get.
pub fn vmlinux_btf_id(kind: u32, name: &str, kv: u32) -> Result<u32, StepError> {
    let missing = || StepError::Missing { name: name.to_string(), place: BTF_VMLINUX };
    match kernel_btf_lookup(kind, name, kv) {
        Ok(Some(id)) => return Ok(id),
        Ok(None) => return Err(missing()),
        Err(_) => {}
    }
    let btf = vmlinux_btf()?;
    let ids = btf_type_ids(&btf, &[(kind, name)])
        .ok_or(StepError::Content { path: BTF_VMLINUX.into(), problem: "is not BTF this agent can read" })?;
    ids[0].ok_or_else(missing)
}

/// vmlinux BTF: through BPF_OBJ_GET_INFO_BY_FD (one copy) when the kernel gives it an id (5.11),
/// else from sysfs (which hands it out a page per read(2), copying each twice).
fn vmlinux_btf() -> Result<Vec<u8>, StepError> {
    let file =
        |action| move |e: std::io::Error| StepError::File { action, path: BTF_VMLINUX.into(), detail: e.to_string() };
    let size = std::fs::metadata(BTF_VMLINUX).map_err(file("stat"))?.len() as u32;
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
    std::fs::read(BTF_VMLINUX).map_err(file("read"))
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

    const BTF_KIND_INT: u32 = 1;
    const BTF_KIND_FUNC: u32 = 12;

    #[test]
    fn the_target_btf_has_its_func_where_the_probes_look() {
        let btf = target_btf();
        let ids =
            btf_type_ids(&btf, &[(BTF_KIND_FUNC, "kmatrix_target"), (BTF_KIND_INT, "int"), (BTF_KIND_TYPEDEF, "int")])
                .unwrap();
        assert_eq!(ids, [Some(TARGET_FUNC_ID), Some(1), None]);
        assert!(btf_type_ids(b"not btf at all, not at all", &[(BTF_KIND_INT, "int")]).is_none());
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
}
