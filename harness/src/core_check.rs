//! `kmatrix core-check`: a BPF object's CO-RE relocations computed against each kernel's BTF on
//! the host, without booting, and which program each failure breaks.
//!
//! The relocation itself is aya-obj's `Object::relocate_btf`, the code aya runs in the guest when
//! it loads the object, against the same BTF (the `.BTF` of the kernel's vmlinux is what the
//! guest reads from /sys/kernel/btf/vmlinux), so the verdict agrees with an in-guest load by
//! construction. What aya does not expose, this module adds: which relocation each instruction
//! came from, names for its type and access string (from the object's `.BTF`/`.BTF.ext`, read
//! here), why a relocation found no target (from the kernel's BTF), and whether a failed one
//! matters. A relocation with no target is not an error to aya or libbpf: the instruction is
//! poisoned (a call to helper 0xbad2310) and the verifier refuses the program only if that
//! instruction is reachable. Behind `if (bpf_core_field_exists(...))` it is not: the relocated
//! constant makes the branch dead and the verifier prunes it. So each program's linked code is
//! walked with its constants propagated, as the verifier's branch pruning does.
//!
//! What it is not: a verifier. A program whose relocations all resolve may still be refused
//! (bounds, helpers, attach target); `kmatrix run --bpf-object` finds that by loading it.

use crate::bpf_object::UserObject;
use aya_obj::btf::{Btf as AyaBtf, BtfFeatures};
use aya_obj::generated::bpf_insn;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{path}: malformed ELF section headers")]
    Elf { path: PathBuf },
    #[error("{path}: malformed {section}: {why}")]
    Btf { path: PathBuf, section: &'static str, why: String },
}

/// Everything core-check found, for one object on every kernel.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub object: String,
    pub programs: Vec<String>,
    /// CO-RE relocation records in the object.
    pub relocations: usize,
    pub kernels: Vec<KernelReport>,
}

impl Report {
    /// Every program relocates on every kernel.
    pub fn ok(&self) -> bool {
        self.kernels.iter().all(|k| k.ok)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelReport {
    pub kernel: String,
    pub release: String,
    /// The BTF file the relocations were computed against.
    pub btf: Option<String>,
    pub ok: bool,
    /// A failure of the whole object on this kernel (aya refuses to load any of its programs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub programs: Vec<ProgramReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgramReport {
    pub program: String,
    pub kind: String,
    pub ok: bool,
    pub relocations: Vec<Reloc>,
}

/// What became of one relocation for one program on one kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelocStatus {
    /// Resolved against the kernel's BTF.
    Applied,
    /// No target, but the poisoned instruction is unreachable (a `bpf_core_field_exists` branch).
    Guarded,
    /// No target and reachable: the verifier refuses the program.
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reloc {
    /// `field_byte_offset`, `field_exists`, `type_size`, ...
    pub kind: &'static str,
    /// The object's type, with its flavour (`task_struct___old`).
    pub type_name: String,
    /// The raw access string (`0:3:1`).
    pub access: String,
    /// The access string with names (`task_struct___old.state`).
    pub spec: String,
    /// Function and instruction index in it.
    pub function: String,
    pub insn: usize,
    pub status: RelocStatus,
    /// What the instruction became (`offset 2264`, `present`) or why it found no target.
    pub detail: String,
}

/// Helper number aya (like libbpf) writes into an instruction whose relocation found no target.
const POISON: i32 = 0xBAD2310;
/// Poisoned instructions are retagged `TAG | relocation index` here, so each one can be traced
/// back to its relocation after the linker has moved functions around.
const TAG: i32 = 0x4B4D_0000;

/// Compute `obj`'s CO-RE relocations against one kernel's BTF file (`None`: the kernel has
/// none). `release` (`uname -r`) decides which BTF kinds aya would sanitise away, as it does
/// after probing the running kernel.
pub fn check_kernel(
    obj: &UserObject,
    info: &ObjectInfo,
    kernel: &str,
    release: &str,
    btf_path: Option<&Path>,
) -> KernelReport {
    let mut report = KernelReport {
        kernel: kernel.to_string(),
        release: release.to_string(),
        btf: btf_path.map(|p| p.display().to_string()),
        ok: true,
        error: None,
        programs: Vec::new(),
    };
    let fail_all = |report: &mut KernelReport, why: String| {
        report.ok = false;
        report.error = Some(why);
        report.programs = obj
            .programs
            .iter()
            .map(|p| ProgramReport { program: p.name.clone(), kind: p.kind.into(), ok: false, relocations: Vec::new() })
            .collect();
    };
    let Some(btf_path) = btf_path else {
        if info.relocs.is_empty() {
            report.programs = obj
                .programs
                .iter()
                .map(|p| ProgramReport {
                    program: p.name.clone(),
                    kind: p.kind.into(),
                    ok: true,
                    relocations: Vec::new(),
                })
                .collect();
        } else {
            fail_all(&mut report, format!("kernel {kernel} has no BTF: CO-RE relocations cannot be resolved"));
        }
        return report;
    };
    let target = match AyaBtf::parse_file(btf_path, obj.object.endianness) {
        Ok(b) => b,
        Err(e) => {
            fail_all(
                &mut report,
                format!("cannot parse the BTF of kernel {kernel} ({}): {}", btf_path.display(), chain(&e)),
            );
            return report;
        }
    };
    let mut o = obj.object.clone();
    if let Err(e) = o.fixup_and_sanitize_btf(&features(release)) {
        fail_all(&mut report, format!("aya cannot sanitise the object's BTF for {kernel}: {}", chain(&e)));
        return report;
    }
    if let Err(e) = o.relocate_btf(&target) {
        fail_all(&mut report, format!("aya refuses the object's CO-RE relocations on {kernel}: {}", chain(&e)));
        return report;
    }

    // What each relocation did, and a tag on each poisoned instruction.
    let mut outcome: Vec<Option<(Done, (usize, u64))>> = vec![None; info.relocs.len()];
    for (i, r) in info.relocs.iter().enumerate() {
        let Some(&sec) = info.sections.get(&r.section) else { continue };
        let Some(f) = o.functions.values_mut().find(|f| {
            f.section_index.0 == sec
                && (r.insn_off as usize) >= f.section_offset
                && (r.insn_off as usize) < f.section_offset + f.instructions.len() * 8
        }) else {
            continue;
        };
        let idx = (r.insn_off as usize - f.section_offset) / 8;
        let key = (f.section_index.0, f.address);
        let ins = f.instructions[idx];
        if is_poison(&ins, POISON) {
            // Past 65536 relocations the tag would overflow: left untagged, the walk gives up
            // and every failure counts as reachable.
            if let Ok(tag) = u16::try_from(i) {
                for j in [idx, idx + 1] {
                    if let Some(x) = f.instructions.get_mut(j).filter(|x| is_poison(x, POISON)) {
                        x.imm = TAG | i32::from(tag);
                    }
                }
            }
            outcome[i] = Some((Done::Poisoned, key));
        } else {
            let next = f.instructions.get(idx + 1).copied();
            outcome[i] = Some((Done::Applied(value_text(r.kind, &ins, next.as_ref())), key));
        }
    }
    let functions = o.functions.clone();
    let text_sections: HashSet<usize> = o.functions.keys().map(|(s, _)| *s).collect();
    if let Err(e) = o.relocate_calls(&text_sections) {
        fail_all(&mut report, format!("aya cannot link the object's functions: {}", chain(&e)));
        return report;
    }

    let mut explain_cache: HashMap<usize, String> = HashMap::new();
    let mut target_btf: Option<Result<Btf, String>> = None;
    let mut programs: Vec<(&str, &'static str, (usize, u64))> = obj
        .programs
        .iter()
        .filter_map(|p| o.programs.get(&p.name).map(|x| (p.name.as_str(), p.kind, x.function_key())))
        .collect();
    programs.sort();
    for (name, kind, key) in programs {
        let Some(linked) = o.functions.get(&key) else { continue };
        let walk = walk(&linked.instructions);
        // Functions linked into this program: its own, and callees found by their code.
        let mut mine: HashSet<(usize, u64)> = HashSet::from([key]);
        for (k, f) in &functions {
            if *k != key
                && outcome.iter().flatten().any(|(_, fk)| fk == k)
                && contains(&linked.instructions, &f.instructions)
            {
                mine.insert(*k);
            }
        }
        let mut relocs = Vec::new();
        let mut ok = true;
        for (i, r) in info.relocs.iter().enumerate() {
            let Some((res, fk)) = &outcome[i] else { continue };
            if !mine.contains(fk) {
                continue;
            }
            let fname = functions.get(fk).map(|f| f.name.clone()).unwrap_or_default();
            let (status, detail) = match res {
                Done::Applied(v) => (RelocStatus::Applied, v.clone()),
                Done::Poisoned => {
                    let why = explain_cache
                        .entry(i)
                        .or_insert_with(|| {
                            let t = target_btf.get_or_insert_with(|| {
                                std::fs::read(btf_path)
                                    .map_err(|e| e.to_string())
                                    .and_then(|b| Btf::parse(&b).map_err(|e| e.to_string()))
                            });
                            match t {
                                Ok(t) => explain(&info.btf, t, r),
                                Err(e) => format!("no target in the kernel's BTF ({e})"),
                            }
                        })
                        .clone();
                    if walk.poisoned.contains(&(i as u32)) || !walk.complete {
                        ok = false;
                        (
                            RelocStatus::Failed,
                            format!("{why}; the instruction is reachable, so the verifier refuses the program"),
                        )
                    } else {
                        (RelocStatus::Guarded, format!("{why}; unreachable here (a guarded branch)"))
                    }
                }
            };
            relocs.push(Reloc {
                kind: kind_name(r.kind),
                type_name: r.type_name.clone(),
                access: r.access.clone(),
                spec: r.spec.clone(),
                function: fname,
                insn: (r.insn_off / 8) as usize,
                status,
                detail,
            });
        }
        report.ok &= ok;
        report.programs.push(ProgramReport {
            program: name.to_string(),
            kind: kind.to_string(),
            ok,
            relocations: relocs,
        });
    }
    report
}

/// What relocate_btf did to a relocation's instruction.
#[derive(Debug, Clone)]
enum Done {
    Applied(String),
    Poisoned,
}

/// BTF features of a kernel by release, as aya would probe them in the guest: what it strips
/// or rewrites in the object's BTF before relocating.
fn features(release: &str) -> BtfFeatures {
    let mut nums = release.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse::<u32>().ok());
    let v = match (nums.next(), nums.next()) {
        (Some(a), Some(b)) => (a, b),
        _ => (u32::MAX, 0),
    };
    let at = |a: u32, b: u32| v >= (a, b);
    BtfFeatures::new(at(5, 0), at(5, 6), at(5, 2), at(5, 2), at(5, 13), at(5, 16), at(5, 17), at(6, 0))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn is_poison(ins: &bpf_insn, imm: i32) -> bool {
    ins.code == 0x85 && ins.src_reg() == 0 && ins.imm == imm
}

/// Whether `hay` holds `needle` as a contiguous run (call immediates aside: the linker rewrites
/// them).
fn contains(hay: &[bpf_insn], needle: &[bpf_insn]) -> bool {
    let same = |a: &bpf_insn, b: &bpf_insn| {
        a.code == b.code
            && a.dst_reg() == b.dst_reg()
            && a.src_reg() == b.src_reg()
            && a.off == b.off
            && (a.imm == b.imm || (a.code == 0x85 && a.src_reg() == 1))
    };
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w.iter().zip(needle).all(|(a, b)| same(a, b)))
}

fn value_text(kind: u32, ins: &bpf_insn, next: Option<&bpf_insn>) -> String {
    let v: i64 = match ins.code & 7 {
        1..=3 => i64::from(ins.off),
        0 => (i64::from(ins.imm) & 0xffff_ffff) | (i64::from(next.map_or(0, |n| n.imm)) << 32),
        _ => i64::from(ins.imm),
    };
    match kind {
        0 => format!("offset {v}"),
        1 | 9 => format!("size {v}"),
        2 | 8 | 10 => if v != 0 { "present" } else { "absent" }.to_string(),
        _ => format!("value {v}"),
    }
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        0 => "field_byte_offset",
        1 => "field_byte_size",
        2 => "field_exists",
        3 => "field_signed",
        4 => "field_lshift_u64",
        5 => "field_rshift_u64",
        6 => "type_id_local",
        7 => "type_id_target",
        8 => "type_exists",
        9 => "type_size",
        10 => "enumval_exists",
        11 => "enumval_value",
        12 => "type_matches",
        _ => "unknown",
    }
}

// ---------------------------------------------------------------------------------------------
// Reachability: the verifier's branch pruning on known constants, over a program's linked code.

struct Walk {
    /// Relocation indexes whose poisoned instruction is reachable.
    poisoned: HashSet<u32>,
    /// False when the walk gave up (then every failure counts as reachable).
    complete: bool,
}

type Regs = [Option<u64>; 11];

fn walk(insns: &[bpf_insn]) -> Walk {
    let n = insns.len();
    let mut seen: Vec<Option<Regs>> = vec![None; n];
    let mut work: Vec<(usize, Regs)> = vec![(0, [None; 11])];
    let mut poisoned = HashSet::new();
    let mut budget = 200_000u32;
    let jump = |pc: usize, by: i64| -> Option<usize> { usize::try_from(pc as i64 + 1 + by).ok() };
    while let Some((pc, regs)) = work.pop() {
        if pc >= n {
            continue;
        }
        let regs = match &seen[pc] {
            None => regs,
            Some(old) => {
                let mut m = *old;
                for (a, b) in m.iter_mut().zip(regs.iter()) {
                    if *a != *b {
                        *a = None;
                    }
                }
                if m == *old {
                    continue;
                }
                m
            }
        };
        seen[pc] = Some(regs);
        budget -= 1;
        if budget == 0 {
            return Walk { poisoned, complete: false };
        }
        let ins = &insns[pc];
        let (class, op) = (ins.code & 7, ins.code & 0xf0);
        let (dst, src) = (usize::from(ins.dst_reg()), usize::from(ins.src_reg()));
        if dst > 10 {
            continue;
        }
        let mut r = regs;
        let next = |to: Option<usize>, regs: Regs, work: &mut Vec<(usize, Regs)>| {
            if let Some(to) = to {
                work.push((to, regs));
            }
        };
        match class {
            // BPF_LD: ld_imm64 (a constant, or a map or function reference), legacy packet loads.
            0 => {
                if ins.code == 0x18 {
                    r[dst] = match (src, insns.get(pc + 1)) {
                        (0, Some(hi)) => Some((ins.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32)),
                        _ => None,
                    };
                    if src == 4 {
                        // BPF_PSEUDO_FUNC: a callback (bpf_loop, timers) runs from here.
                        next(jump(pc, i64::from(ins.imm)), [None; 11], &mut work);
                    }
                    next(Some(pc + 2), r, &mut work);
                } else {
                    r[0] = None;
                    next(Some(pc + 1), r, &mut work);
                }
            }
            1 => {
                r[dst] = None;
                next(Some(pc + 1), r, &mut work);
            }
            2 => next(Some(pc + 1), r, &mut work),
            3 => {
                if ins.code & 0xe0 == 0xc0 {
                    // Atomics: BPF_FETCH writes the old value to src, cmpxchg to r0.
                    if ins.imm & 1 != 0 && src <= 10 {
                        r[src] = None;
                    }
                    r[0] = if ins.imm == 0xf1 { None } else { r[0] };
                }
                next(Some(pc + 1), r, &mut work);
            }
            4 | 7 => {
                r[dst] = alu(ins, &regs, class == 7);
                next(Some(pc + 1), r, &mut work);
            }
            _ => match op {
                0x00 => {
                    let by = if class == 6 { i64::from(ins.imm) } else { i64::from(ins.off) };
                    next(jump(pc, by), r, &mut work);
                }
                0x80 => {
                    if ins.code == 0x85 && src == 0 && (ins.imm == POISON || ins.imm & !0xffff == TAG) {
                        if ins.imm & !0xffff == TAG {
                            poisoned.insert((ins.imm & 0xffff) as u32);
                        } else {
                            return Walk { poisoned, complete: false };
                        }
                        continue;
                    }
                    if src == 1 {
                        next(jump(pc, i64::from(ins.imm)), [None; 11], &mut work);
                    }
                    for x in r.iter_mut().take(6) {
                        *x = None;
                    }
                    next(Some(pc + 1), r, &mut work);
                }
                0x90 => {}
                _ => {
                    let b = if ins.code & 8 == 0 {
                        Some(if class == 6 { ins.imm as u32 as u64 } else { ins.imm as i64 as u64 })
                    } else if src <= 10 {
                        regs[src]
                    } else {
                        None
                    };
                    let taken = jump(pc, i64::from(ins.off));
                    match (regs[dst], b, cond(op, class == 6)) {
                        (Some(a), Some(b), Some(f)) => next(if f(a, b) { taken } else { Some(pc + 1) }, r, &mut work),
                        _ => {
                            next(taken, r, &mut work);
                            next(Some(pc + 1), r, &mut work);
                        }
                    }
                }
            },
        }
    }
    Walk { poisoned, complete: true }
}

fn alu(ins: &bpf_insn, regs: &Regs, wide: bool) -> Option<u64> {
    let op = ins.code & 0xf0;
    let src = usize::from(ins.src_reg());
    // Byte swaps, and the cpu v4 signed forms (sdiv, smod, movsx) carried in `off`: unknown.
    if op == 0xd0 || (ins.off != 0 && matches!(op, 0x30 | 0x90 | 0xb0)) {
        return None;
    }
    let b = if ins.code & 8 == 0 {
        Some(if wide { ins.imm as i64 as u64 } else { ins.imm as u32 as u64 })
    } else if src <= 10 {
        regs[src]
    } else {
        None
    };
    let narrow = |v: u64| if wide { v } else { v as u32 as u64 };
    if op == 0xb0 {
        return b.map(narrow);
    }
    let a = regs[usize::from(ins.dst_reg())]?;
    if op == 0x80 {
        return Some(narrow(a.wrapping_neg()));
    }
    let b = b?;
    let (a, b) = if wide { (a, b) } else { (a as u32 as u64, b as u32 as u64) };
    let bits = if wide { 64 } else { 32 };
    let v = match op {
        0x00 => a.wrapping_add(b),
        0x10 => a.wrapping_sub(b),
        0x20 => a.wrapping_mul(b),
        0x30 => a.checked_div(b).unwrap_or(0),
        0x40 => a | b,
        0x50 => a & b,
        0x60 => a.wrapping_shl((b % bits) as u32),
        0x70 => a.wrapping_shr((b % bits) as u32),
        0x90 => a.checked_rem(b).unwrap_or(a),
        0xa0 => a ^ b,
        0xc0 if wide => ((a as i64) >> (b % 64)) as u64,
        0xc0 => ((a as u32 as i32) >> (b % 32)) as u32 as u64,
        _ => return None,
    };
    Some(narrow(v))
}

type Cmp = fn(u64, u64) -> bool;

fn cond(op: u8, narrow: bool) -> Option<Cmp> {
    Some(match (op, narrow) {
        (0x10, false) => |a, b| a == b,
        (0x10, true) => |a, b| a as u32 == b as u32,
        (0x50, false) => |a, b| a != b,
        (0x50, true) => |a, b| a as u32 != b as u32,
        (0x20, false) => |a, b| a > b,
        (0x20, true) => |a, b| a as u32 > b as u32,
        (0x30, false) => |a, b| a >= b,
        (0x30, true) => |a, b| a as u32 >= b as u32,
        (0xa0, false) => |a, b| a < b,
        (0xa0, true) => |a, b| (a as u32) < b as u32,
        (0xb0, false) => |a, b| a <= b,
        (0xb0, true) => |a, b| a as u32 <= b as u32,
        (0x40, false) => |a, b| a & b != 0,
        (0x40, true) => |a, b| a as u32 & b as u32 != 0,
        (0x60, false) => |a, b| a as i64 > b as i64,
        (0x60, true) => |a, b| a as i32 > b as i32,
        (0x70, false) => |a, b| a as i64 >= b as i64,
        (0x70, true) => |a, b| a as i32 >= b as i32,
        (0xc0, false) => |a, b| (a as i64) < b as i64,
        (0xc0, true) => |a, b| (a as i32) < b as i32,
        (0xd0, false) => |a, b| a as i64 <= b as i64,
        (0xd0, true) => |a, b| a as i32 <= b as i32,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// The object's own records: ELF sections, .BTF types and strings, .BTF.ext CO-RE relocations.

/// One CO-RE relocation record of the object, with names.
#[derive(Debug, Clone)]
pub struct RawReloc {
    pub section: String,
    pub insn_off: u32,
    pub type_id: u32,
    pub kind: u32,
    pub access: String,
    pub type_name: String,
    pub spec: String,
}

/// What core-check reads from an object once, for every kernel.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// ELF section name → index.
    pub sections: BTreeMap<String, usize>,
    pub btf: Btf,
    pub relocs: Vec<RawReloc>,
}

/// Read `obj`'s sections, BTF and CO-RE relocation records.
pub fn object_info(obj: &UserObject) -> Result<ObjectInfo, CoreError> {
    let path = &obj.path;
    let sections = elf_sections(&obj.bytes).ok_or_else(|| CoreError::Elf { path: path.clone() })?;
    let data = |name: &str| sections.iter().find(|s| s.0 == name).map(|s| s.2);
    let btf_err = |section, why: String| CoreError::Btf { path: path.clone(), section, why };
    let btf = match data(".BTF") {
        Some(b) => Btf::parse(b).map_err(|e| btf_err(".BTF", e))?,
        None => Btf::default(),
    };
    let relocs = match data(".BTF.ext") {
        Some(ext) => core_relocs(ext, &btf).map_err(|e| btf_err(".BTF.ext", e))?,
        None => Vec::new(),
    };
    Ok(ObjectInfo { sections: sections.iter().map(|s| (s.0.clone(), s.1)).collect(), btf, relocs })
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from(u32_at(b, off)?) | (u64::from(u32_at(b, off + 4)?) << 32))
}

fn cstr(b: &[u8], off: usize) -> Option<String> {
    let s = b.get(off..)?;
    let end = s.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// (name, index, contents) of every section of a little-endian ELF64 object.
fn elf_sections(b: &[u8]) -> Option<Vec<(String, usize, &[u8])>> {
    if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return None;
    }
    let shoff = usize::try_from(u64_at(b, 0x28)?).ok()?;
    let shentsize = usize::from(u16_at(b, 0x3a)?);
    let shnum = usize::from(u16_at(b, 0x3c)?);
    let shstrndx = usize::from(u16_at(b, 0x3e)?);
    if shentsize < 64 {
        return None;
    }
    let header = |i: usize| -> Option<(u32, u32, &[u8])> {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let kind = u32_at(b, h + 4)?;
        let off = usize::try_from(u64_at(b, h + 0x18)?).ok()?;
        let size = usize::try_from(u64_at(b, h + 0x20)?).ok()?;
        // SHT_NOBITS (.bss) has no contents in the file.
        let data = if kind == 8 { &[][..] } else { b.get(off..off.checked_add(size)?)? };
        Some((u32_at(b, h)?, kind, data))
    };
    let (_, _, names) = header(shstrndx)?;
    (0..shnum)
        .map(|i| {
            let (name, _, data) = header(i)?;
            Some((cstr(names, name as usize)?, i, data))
        })
        .collect()
}

/// A BTF type, as much of it as naming and explaining relocations needs.
#[derive(Debug, Clone, Default)]
struct Ty {
    kind: u8,
    name_off: u32,
    /// The referenced type (pointer, typedef, modifiers; an array's element type).
    ty: u32,
    /// Struct and union members: (name offset, type).
    members: Vec<(u32, u32)>,
    /// Enum value names.
    values: Vec<u32>,
}

/// A parsed `.BTF`: types by id (0 is void) and the string table.
#[derive(Debug, Clone, Default)]
pub struct Btf {
    types: Vec<Ty>,
    strings: Vec<u8>,
}

const STRUCT: u8 = 4;
const UNION: u8 = 5;
const ENUM: u8 = 6;
const ENUM64: u8 = 19;

impl Btf {
    pub fn parse(b: &[u8]) -> Result<Btf, String> {
        let bad = |w: &str| format!("{w} (file of {} bytes)", b.len());
        if u16_at(b, 0) != Some(0xeb9f) {
            return Err(bad("no BTF magic 0xeb9f (or a big-endian BTF)"));
        }
        let hdr = u32_at(b, 4).ok_or_else(|| bad("truncated header"))? as usize;
        let field = |o: usize| u32_at(b, o).map(|v| v as usize).ok_or_else(|| bad("truncated header"));
        let (type_off, type_len, str_off, str_len) = (field(8)?, field(12)?, field(16)?, field(20)?);
        let section = |off: usize, len: usize| {
            hdr.checked_add(off)
                .and_then(|s| b.get(s..s.checked_add(len)?))
                .ok_or_else(|| bad("a section lies past the end"))
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?.to_vec();
        let mut out = vec![Ty::default()];
        let mut p = 0;
        while p < types.len() {
            let (name_off, info, size_or_type) = match (u32_at(types, p), u32_at(types, p + 4), u32_at(types, p + 8)) {
                (Some(a), Some(b), Some(c)) => (a, b, c),
                _ => return Err(bad("a type record is truncated")),
            };
            p += 12;
            let kind = ((info >> 24) & 0x1f) as u8;
            let vlen = (info & 0xffff) as usize;
            let mut t = Ty { kind, name_off, ty: size_or_type, ..Ty::default() };
            let rec = |n: usize| n * vlen;
            match kind {
                1 | 14 | 17 => p += 4,
                3 => {
                    t.ty = u32_at(types, p).ok_or_else(|| bad("an array record is truncated"))?;
                    p += 12;
                }
                STRUCT | UNION => {
                    for i in 0..vlen {
                        let m = p + i * 12;
                        match (u32_at(types, m), u32_at(types, m + 4)) {
                            (Some(n), Some(ty)) => t.members.push((n, ty)),
                            _ => return Err(bad("a member record is truncated")),
                        }
                    }
                    p += rec(12);
                }
                ENUM | ENUM64 => {
                    let size = if kind == ENUM { 8 } else { 12 };
                    for i in 0..vlen {
                        t.values.push(u32_at(types, p + i * size).ok_or_else(|| bad("an enum record is truncated"))?);
                    }
                    p += rec(size);
                }
                13 => p += rec(8),
                15 => p += rec(12),
                2 | 7..=12 | 16 | 18 => {}
                k => return Err(bad(&format!("unknown BTF kind {k}"))),
            }
            out.push(t);
        }
        Ok(Btf { types: out, strings })
    }

    fn ty(&self, id: u32) -> Option<&Ty> {
        self.types.get(id as usize)
    }

    fn name(&self, off: u32) -> String {
        cstr(&self.strings, off as usize).unwrap_or_default()
    }

    /// Through typedefs and modifiers (volatile, const, restrict, type tags).
    fn skip_mods(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id) {
                Some(t) if matches!(t.kind, 8..=11 | 18) => id = t.ty,
                _ => break,
            }
        }
        id
    }

    /// A member of struct/union `id` by name, looking inside anonymous members as C does.
    fn member(&self, id: u32, name: &str, depth: u32) -> Option<u32> {
        let t = self.ty(self.skip_mods(id))?;
        for &(n, ty) in &t.members {
            if n == 0 || self.name(n).is_empty() {
                if depth < 8 {
                    if let Some(found) = self.member(ty, name, depth + 1) {
                        return Some(found);
                    }
                }
            } else if self.name(n) == name {
                return Some(ty);
            }
        }
        None
    }
}

fn kind_word(kind: u8) -> &'static str {
    match kind {
        STRUCT => "struct",
        UNION => "union",
        ENUM | ENUM64 => "enum",
        8 => "typedef",
        1 => "int",
        2 => "pointer",
        3 => "array",
        7 => "forward declaration",
        13 => "function prototype",
        16 => "float",
        _ => "type",
    }
}

fn flavourless(name: &str) -> &str {
    name.split_once("___").map_or(name, |x| x.0)
}

/// The CO-RE records of a `.BTF.ext`, named with the object's BTF.
fn core_relocs(b: &[u8], btf: &Btf) -> Result<Vec<RawReloc>, String> {
    if u16_at(b, 0) != Some(0xeb9f) {
        return Err("no BTF.ext magic 0xeb9f".into());
    }
    let hdr = u32_at(b, 4).ok_or("truncated header")? as usize;
    if hdr < 32 {
        return Ok(Vec::new()); // No CO-RE part (an old compiler).
    }
    let off = u32_at(b, 24).ok_or("truncated header")? as usize;
    let len = u32_at(b, 28).ok_or("truncated header")? as usize;
    if len == 0 {
        return Ok(Vec::new());
    }
    let s = hdr.checked_add(off).and_then(|s| b.get(s..s.checked_add(len)?)).ok_or("CO-RE records lie past the end")?;
    let rec = u32_at(s, 0).ok_or("truncated CO-RE records")? as usize;
    if rec < 16 {
        return Err(format!("CO-RE record size {rec} < 16"));
    }
    let mut out = Vec::new();
    let mut p = 4;
    while p < s.len() {
        let (sec, n) = match (u32_at(s, p), u32_at(s, p + 4)) {
            (Some(a), Some(b)) => (a, b as usize),
            _ => return Err("a CO-RE section header is truncated".into()),
        };
        p += 8;
        let section = btf.name(sec);
        for i in 0..n {
            let r = p + i * rec;
            let (insn_off, type_id, access_off, kind) =
                match (u32_at(s, r), u32_at(s, r + 4), u32_at(s, r + 8), u32_at(s, r + 12)) {
                    (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
                    _ => return Err("a CO-RE record is truncated".into()),
                };
            let access = btf.name(access_off);
            let (type_name, spec) = describe(btf, type_id, kind, &access);
            out.push(RawReloc { section: section.clone(), insn_off, type_id, kind, access, type_name, spec });
        }
        p += n * rec;
    }
    Ok(out)
}

/// The relocation's root type name and its access string with names:
/// `task_struct.real_parent`, `enum_name::VALUE`, `struct task_struct`.
fn describe(btf: &Btf, type_id: u32, kind: u32, access: &str) -> (String, String) {
    let root = btf.skip_mods(type_id);
    let Some(t) = btf.ty(root) else { return (format!("#{type_id}"), access.to_string()) };
    let name = btf.name(t.name_off);
    let name = if name.is_empty() { format!("(anonymous {})", kind_word(t.kind)) } else { name };
    let idx: Vec<usize> = access.split(':').filter_map(|s| s.parse().ok()).collect();
    let spec = match kind {
        0..=5 => {
            let mut s = name.clone();
            if let Some(&first) = idx.first().filter(|&&i| i != 0) {
                let _ = write!(s, "[{first}]");
            }
            let mut cur = root;
            for &i in idx.iter().skip(1) {
                let Some(t) = btf.ty(cur) else { break };
                match t.kind {
                    STRUCT | UNION => {
                        let Some(&(n, ty)) = t.members.get(i) else {
                            let _ = write!(s, ".#{i}");
                            break;
                        };
                        let n = btf.name(n);
                        if !n.is_empty() {
                            let _ = write!(s, ".{n}");
                        }
                        cur = btf.skip_mods(ty);
                    }
                    3 => {
                        let _ = write!(s, "[{i}]");
                        cur = btf.skip_mods(t.ty);
                    }
                    _ => {
                        let _ = write!(s, ".#{i}");
                        break;
                    }
                }
            }
            s
        }
        10 | 11 => match idx.first().and_then(|&i| t.values.get(i)) {
            Some(&v) => format!("{name}::{}", btf.name(v)),
            None => format!("{name}::#{access}"),
        },
        _ => format!("{} {name}", kind_word(t.kind)),
    };
    (name, spec)
}

/// Why a relocation found no target in the kernel's BTF, naming the type or field missing.
fn explain(local: &Btf, target: &Btf, r: &RawReloc) -> String {
    let root = local.skip_mods(r.type_id);
    let Some(lt) = local.ty(root) else { return "no target in the kernel's BTF".into() };
    let full = local.name(lt.name_off);
    let name = flavourless(&full);
    let word = kind_word(lt.kind);
    let same_kind = |k: u8| k == lt.kind || (matches!(k, ENUM | ENUM64) && matches!(lt.kind, ENUM | ENUM64));
    let cands: Vec<u32> = target
        .types
        .iter()
        .enumerate()
        .filter(|(_, t)| same_kind(t.kind) && flavourless(&target.name(t.name_off)) == name)
        .map(|(i, _)| i as u32)
        .collect();
    if cands.is_empty() {
        return format!("the kernel's BTF has no {word} {name}");
    }
    let idx: Vec<usize> = r.access.split(':').filter_map(|s| s.parse().ok()).collect();
    match r.kind {
        0..=5 => {
            // Follow the named members through the kernel's type; the first one absent is why.
            let mut best = String::new();
            for &c in &cands {
                let (mut lcur, mut tcur) = (root, c);
                let mut missing = None;
                for &i in idx.iter().skip(1) {
                    let Some(l) = local.ty(lcur) else { break };
                    match l.kind {
                        STRUCT | UNION => {
                            let Some(&(n, lty)) = l.members.get(i) else { break };
                            let member = local.name(n);
                            lcur = local.skip_mods(lty);
                            if member.is_empty() {
                                continue; // Anonymous: the kernel's member is searched through them.
                            }
                            match target.member(tcur, &member, 0) {
                                Some(tty) => tcur = target.skip_mods(tty),
                                None => {
                                    let owner = target.ty(target.skip_mods(tcur)).map(|t| {
                                        let n = target.name(t.name_off);
                                        format!(
                                            "{} {}",
                                            kind_word(t.kind),
                                            if n.is_empty() { "(anonymous)" } else { &n }
                                        )
                                    });
                                    missing = Some(format!(
                                        "{} has no field `{member}` in the kernel's BTF",
                                        owner.unwrap_or_else(|| format!("{word} {name}"))
                                    ));
                                    break;
                                }
                            }
                        }
                        3 => {
                            lcur = local.skip_mods(l.ty);
                            tcur = target.ty(target.skip_mods(tcur)).map_or(tcur, |t| target.skip_mods(t.ty));
                        }
                        _ => break,
                    }
                }
                match missing {
                    Some(m) => best = m,
                    None => {
                        return format!("the kernel's {word} {name} has `{}` but with an incompatible type", r.spec)
                    }
                }
            }
            best
        }
        10 | 11 => {
            let value = idx.first().and_then(|&i| lt.values.get(i)).map(|&v| local.name(v)).unwrap_or_default();
            format!("the kernel's enum {name} has no value `{value}`")
        }
        _ => format!("the kernel's {word} {name} is not compatible with the object's"),
    }
}

/// The report of `obj` over kernels already checked with [`check_kernel`].
pub fn report(obj: &UserObject, info: &ObjectInfo, kernels: Vec<KernelReport>) -> Report {
    Report {
        object: obj.path.display().to_string(),
        programs: obj.programs.iter().map(|p| p.name.clone()).collect(),
        relocations: info.relocs.len(),
        kernels,
    }
}

/// Render a report for people.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} program{} ({}), {} CO-RE relocation{}",
        r.object,
        r.programs.len(),
        if r.programs.len() == 1 { "" } else { "s" },
        r.programs.join(", "),
        r.relocations,
        if r.relocations == 1 { "" } else { "s" }
    );
    for k in &r.kernels {
        let _ = writeln!(out, "{} ({}): {}", k.kernel, k.release, if k.ok { "ok" } else { "FAIL" });
        if let Some(e) = &k.error {
            let _ = writeln!(out, "  {e}");
        }
        for p in &k.programs {
            let count = |s| p.relocations.iter().filter(|x| x.status == s).count();
            let _ = writeln!(
                out,
                "  {} ({}): {}, {} applied, {} guarded, {} failed",
                p.program,
                p.kind,
                if p.ok { "ok" } else { "FAIL" },
                count(RelocStatus::Applied),
                count(RelocStatus::Guarded),
                count(RelocStatus::Failed)
            );
            let w = p.relocations.iter().map(|x| x.spec.len()).max().unwrap_or(0);
            for x in &p.relocations {
                let st = match x.status {
                    RelocStatus::Applied => "applied",
                    RelocStatus::Guarded => "guarded",
                    RelocStatus::Failed => "FAILED",
                };
                let _ = writeln!(out, "    {st:7}  {:17}  {:w$}  {:8}  {}", x.kind, x.spec, x.access, x.detail);
            }
        }
    }
    let failed = r.kernels.iter().filter(|k| !k.ok).count();
    let _ = writeln!(
        out,
        "{} kernel{}, {failed} with failures",
        r.kernels.len(),
        if r.kernels.len() == 1 { "" } else { "s" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> bpf_insn {
        bpf_insn { code, _bitfield_align_1: [], _bitfield_1: bpf_insn::new_bitfield_1(dst, src), off, imm }
    }

    #[test]
    fn a_poisoned_call_behind_a_false_constant_is_unreachable() {
        // r1 = 0 (field_exists: absent); if r1 == 0 goto +1; call poison#0; r0 = 0; exit
        let guarded = [
            insn(0xb7, 1, 0, 0, 0),
            insn(0x15, 1, 0, 1, 0),
            insn(0x85, 0, 0, 0, TAG),
            insn(0xb7, 0, 0, 0, 0),
            insn(0x95, 0, 0, 0, 0),
        ];
        let w = walk(&guarded);
        assert!(w.complete && w.poisoned.is_empty());
        // The same with the field present (r1 = 1): the poisoned call runs.
        let mut reached = guarded;
        reached[0] = insn(0xb7, 1, 0, 0, 1);
        assert!(walk(&reached).poisoned.contains(&0));
        // A branch that is always taken skips it again: if r1 != 0 goto +1.
        reached[1] = insn(0x55, 1, 0, 1, 0);
        assert!(walk(&reached).poisoned.is_empty());
        reached[1] = insn(0x15, 1, 0, 1, 0);
        assert!(walk(&reached).poisoned.contains(&0));
        // An unknown value takes both branches.
        let mut unknown = guarded;
        unknown[0] = insn(0x79, 1, 2, 0, 0); // r1 = *(u64 *)(r2 + 0)
        assert!(walk(&unknown).poisoned.contains(&0));
    }

    #[test]
    fn alu_folds_constants_as_the_verifier_does() {
        let mut regs: Regs = [None; 11];
        regs[1] = Some(5);
        assert_eq!(alu(&insn(0x07, 1, 0, 0, -6), &regs, true), Some(u64::MAX)); // r1 += -6
        assert_eq!(alu(&insn(0x04, 1, 0, 0, -6), &regs, false), Some(0xffff_ffff)); // w1 += -6
        assert_eq!(alu(&insn(0x37, 1, 0, 0, 0), &regs, true), Some(0)); // r1 /= 0
        assert_eq!(alu(&insn(0x0f, 1, 2, 0, 0), &regs, true), None); // r1 += r2 (unknown)
        assert!(!features("5.10.0-32-amd64").btf_enum64());
        assert!(features("6.1.0-50-amd64").btf_enum64());
    }
}
