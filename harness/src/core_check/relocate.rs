//! One object on one kernel: aya-obj's own CO-RE relocation (`Object::relocate_btf`, the code
//! aya runs in the guest, against the same BTF) and its linker, then, per program, what became of
//! each relocation its code holds: applied (with the value written), guarded (no target, but
//! unreachable) or failed.
//!
//! aya does not say which relocation an instruction came from, so each poisoned instruction is
//! retagged with its relocation's index before linking ([`TAG`]), and a program's callees are
//! found by their code in the linked program.
//!
//! What it is not: the object's records (`records`), the reachability walk (`walk`) or the words
//! for a missing target (`explain`); it ties those together into a [`KernelReport`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use aya_obj::btf::{Btf as AyaBtf, BtfError as AyaBtfError, BtfFeatures, BtfRelocationError};
use aya_obj::generated::bpf_insn;
use aya_obj::relocation::EbpfRelocationError;

use super::explain::explain;
use super::records::ObjectInfo;
use super::walk::{walk, POISON, TAG};
use super::{CoreError, KernelReport, ProgramReport, Reloc, RelocStatus};
use crate::bpf_object::{contain, UserObject};
use crate::btf::BtfTable;

/// A function of aya-obj's object: (section index, address).
type FnKey = (usize, u64);

/// Why aya would refuse every program of the object on a kernel. The messages are the report's
/// `error` field, as users and scripts read it. aya's errors are large: boxed.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("kernel {kernel} has no BTF: CO-RE relocations cannot be resolved")]
    NoBtf { kernel: String },
    #[error("cannot parse the BTF of kernel {kernel} ({}): {}", path.display(), chain(cause))]
    ParseBtf { kernel: String, path: PathBuf, cause: Box<AyaBtfError> },
    #[error("aya cannot sanitise the object's BTF for {kernel}: {}", chain(cause))]
    Sanitize { kernel: String, cause: Box<AyaBtfError> },
    #[error("aya refuses the object's CO-RE relocations on {kernel}: {}", chain(cause))]
    Relocate { kernel: String, cause: Box<BtfRelocationError> },
    #[error("aya cannot link the object's functions: {}", chain(cause))]
    Link { cause: Box<EbpfRelocationError> },
    #[error("aya-obj failed relocating the object for {kernel} ({message})")]
    Panicked { kernel: String, message: String },
}

/// What relocate_btf did to a relocation's instruction.
#[derive(Debug, Clone)]
enum Done {
    Applied(String),
    Poisoned,
}

/// Compute `obj`'s CO-RE relocations against one kernel's BTF file (`None`: the kernel has
/// none), else against `external` (`--btf FILE`), as the agent does in the guest. `release`
/// (`uname -r`) decides which BTF kinds aya would sanitise away, as it does after probing the
/// running kernel.
pub fn check_kernel(
    obj: &UserObject,
    info: &ObjectInfo,
    kernel: &str,
    release: &str,
    own: Option<&Path>,
    external: Option<&Path>,
) -> KernelReport {
    let btf_path = own.or(external);
    let mut report = KernelReport {
        kernel: kernel.to_string(),
        release: release.to_string(),
        btf: btf_path.map(|p| p.display().to_string()),
        external_btf: own.is_none() && external.is_some(),
        ok: true,
        error: None,
        programs: Vec::new(),
    };
    let programs = match btf_path {
        Some(path) => contain(|| relocate(obj, info, kernel, release, path)).unwrap_or_else(
            |crate::bpf_object::Panicked(message)| Err(Refusal::Panicked { kernel: kernel.to_string(), message }),
        ),
        None if info.relocs.is_empty() => Ok(bare(obj, true)),
        None => Err(Refusal::NoBtf { kernel: kernel.to_string() }),
    };
    match programs {
        Ok(programs) => {
            report.ok = programs.iter().all(|p| p.ok);
            report.programs = programs;
        }
        Err(why) => {
            report.ok = false;
            report.error = Some(why.to_string());
            report.programs = bare(obj, false);
        }
    }
    report
}

/// A report per program of the object with no relocations in it, each `ok` or not.
fn bare(obj: &UserObject, ok: bool) -> Vec<ProgramReport> {
    obj.programs
        .iter()
        .map(|p| ProgramReport { program: p.name.clone(), kind: p.kind.into(), ok, relocations: Vec::new() })
        .collect()
}

/// Relocate and link the object for one kernel; a report per program aya knows, by name.
fn relocate(
    obj: &UserObject,
    info: &ObjectInfo,
    kernel: &str,
    release: &str,
    btf_path: &Path,
) -> Result<Vec<ProgramReport>, Refusal> {
    let target = AyaBtf::parse_file(btf_path, obj.object.endianness).map_err(|cause| Refusal::ParseBtf {
        kernel: kernel.to_string(),
        path: btf_path.to_path_buf(),
        cause: Box::new(cause),
    })?;
    let mut o = obj.object.clone();
    o.fixup_and_sanitize_btf(&features(release))
        .map_err(|cause| Refusal::Sanitize { kernel: kernel.to_string(), cause: Box::new(cause) })?;
    o.relocate_btf(&target)
        .map_err(|cause| Refusal::Relocate { kernel: kernel.to_string(), cause: Box::new(cause) })?;
    let outcome = tag_outcomes(info, &mut o);
    let functions = o.functions.clone();
    let text_sections: HashSet<usize> = o.functions.keys().map(|(s, _)| *s).collect();
    o.relocate_calls(&text_sections).map_err(|cause| Refusal::Link { cause: Box::new(cause) })?;

    let mut explainer = Explainer { info, btf_path, target: None, cache: HashMap::new() };
    let mut programs: Vec<(&str, &'static str, FnKey)> = obj
        .programs
        .iter()
        .filter_map(|p| o.programs.get(&p.name).map(|x| (p.name.as_str(), p.kind, x.function_key())))
        .collect();
    programs.sort();
    let mut out = Vec::new();
    for (name, kind, key) in programs {
        let Some(linked) = o.functions.get(&key) else { continue };
        let walk = walk(&linked.instructions);
        // Functions linked into this program: its own, and callees found by their code.
        let mut mine: HashSet<FnKey> = HashSet::from([key]);
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
                    let why = explainer.no_target(i);
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
        out.push(ProgramReport { program: name.to_string(), kind: kind.to_string(), ok, relocations: relocs });
    }
    Ok(out)
}

/// What each relocation did (`None`: its instruction is in no function aya kept), in which
/// function, with a tag on each poisoned instruction.
fn tag_outcomes(info: &ObjectInfo, o: &mut aya_obj::Object) -> Vec<Option<(Done, FnKey)>> {
    let mut outcome: Vec<Option<(Done, FnKey)>> = vec![None; info.relocs.len()];
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
    outcome
}

/// The words for relocations with no target on one kernel, each computed once; the kernel's
/// BTF is read for it only when one is needed.
struct Explainer<'a> {
    info: &'a ObjectInfo,
    btf_path: &'a Path,
    target: Option<Result<BtfTable, CoreError>>,
    cache: HashMap<usize, String>,
}

impl Explainer<'_> {
    fn no_target(&mut self, i: usize) -> String {
        if let Some(why) = self.cache.get(&i) {
            return why.clone();
        }
        let path = self.btf_path;
        let target = self.target.get_or_insert_with(|| {
            let bytes = std::fs::read(path).map_err(|source| CoreError::Read { path: path.to_path_buf(), source })?;
            BtfTable::parse(&bytes).map_err(|source| CoreError::KernelBtf { path: path.to_path_buf(), source })
        });
        let why = match target {
            Ok(t) => explain(&self.info.btf, t, &self.info.relocs[i]),
            Err(e) => format!("no target in the kernel's BTF ({})", chain(e)),
        };
        self.cache.insert(i, why.clone());
        why
    }
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

/// An error and its causes on one line, each cause once (aya's messages often repeat theirs).
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

/// What a relocated instruction now says, in the relocation kind's terms.
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

/// libbpf's name of a relocation kind (`enum bpf_core_relo_kind`).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core_check::walk::tests::insn;

    #[test]
    fn features_follow_the_release() {
        assert!(!features("5.10.0-32-amd64").btf_enum64());
        assert!(features("6.1.0-50-amd64").btf_enum64());
        assert!(!features("4.19.0-27-amd64").btf_func());
        // An unreadable release is taken as the newest kernel, which has every feature.
        assert!(features("local").btf_enum64());
    }

    #[test]
    fn relocated_values_in_the_kinds_terms() {
        let ldx = insn(0x79, 1, 2, 2264, 0); // r1 = *(u64 *)(r2 + 2264)
        assert_eq!(value_text(0, &ldx, None), "offset 2264");
        let mov = insn(0xb7, 1, 0, 0, 0); // r1 = 0
        assert_eq!(value_text(2, &mov, None), "absent");
        assert_eq!(value_text(9, &insn(0xb7, 1, 0, 0, 16), None), "size 16");
        // ld_imm64: the value spans two instructions.
        let (lo, hi) = (insn(0x18, 1, 0, 0, 7), insn(0, 0, 0, 0, 1));
        assert_eq!(value_text(11, &lo, Some(&hi)), "value 4294967303");
        assert_eq!((kind_name(0), kind_name(12), kind_name(99)), ("field_byte_offset", "type_matches", "unknown"));
    }

    #[test]
    fn callees_are_found_by_their_code_whatever_their_call_immediates() {
        let callee = [insn(0xb7, 0, 0, 0, 1), insn(0x85, 0, 1, 0, 5), insn(0x95, 0, 0, 0, 0)];
        let mut linked = vec![insn(0x85, 0, 1, 0, 2), insn(0x95, 0, 0, 0, 0)];
        linked.extend(callee);
        linked[3].imm = 77; // the linker rewrote the callee's own call
        assert!(contains(&linked, &callee));
        linked[2].imm = 2;
        assert!(!contains(&linked, &callee));
        assert!(!contains(&linked, &[]));
        assert!(is_poison(&insn(0x85, 0, 0, 0, POISON), POISON));
        assert!(!is_poison(&insn(0x85, 0, 1, 0, POISON), POISON));
    }
}
