//! The object's own side of core-check, read once for every kernel: its ELF sections by name, its
//! `.BTF`, and the CO-RE records of its `.BTF.ext`, each named with that BTF (root type, access
//! string with field names: `task_struct___old.state`).
//!
//! What it is not: the relocation itself (aya-obj computes it, see `relocate`) nor the reason a
//! relocation found no target (the kernel's side, `explain`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::CoreError;
use crate::bpf_object::UserObject;
use crate::btf::ext::BtfExt;
use crate::btf::{kind_word, BtfError, BtfTable, ARRAY, STRUCT, UNION};
use crate::elf::Elf;

/// One CO-RE relocation record of the object, with names.
#[derive(Debug, Clone)]
pub struct RawReloc {
    /// The ELF section of the instruction.
    pub section: String,
    /// Byte offset of the instruction in that section.
    pub insn_off: u32,
    /// The root type of the access, in the object's `.BTF`.
    pub type_id: u32,
    /// `enum bpf_core_relo_kind` (0 `field_byte_offset` ... 12 `type_matches`).
    pub kind: u32,
    /// The raw access string (`0:3:1`).
    pub access: String,
    /// The root type's name (`task_struct___old`), or `#<id>` when the id is not in `.BTF`.
    pub type_name: String,
    /// The access string with names (`task_struct___old.state`, `enum_name::VALUE`).
    pub spec: String,
}

/// What core-check reads from an object once, for every kernel.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// ELF section name → index.
    pub sections: BTreeMap<String, usize>,
    /// The object's `.BTF`; empty when it has none.
    pub btf: BtfTable,
    /// Its CO-RE records, in `.BTF.ext` order; empty without `.BTF.ext`.
    pub relocs: Vec<RawReloc>,
}

/// Read `obj`'s sections, BTF and CO-RE relocation records.
pub fn object_info(obj: &UserObject) -> Result<ObjectInfo, CoreError> {
    let path = &obj.path;
    let elf_err = |source| CoreError::Elf { path: path.clone(), source };
    let sections = Elf::parse(&obj.bytes).and_then(|e| e.sections()).map_err(elf_err)?;
    let data = |name: &str| sections.iter().find(|s| s.name == name.as_bytes()).map(|s| s.data);
    let btf_err = |section, source| CoreError::Btf { path: path.clone(), section, source };
    let btf = match data(".BTF") {
        Some(b) => BtfTable::parse(b).map_err(|e| btf_err(".BTF", e))?,
        None => BtfTable::default(),
    };
    let relocs = match data(".BTF.ext") {
        Some(ext) => core_relocs(ext, &btf).map_err(|e| btf_err(".BTF.ext", e))?,
        None => Vec::new(),
    };
    // A name that appears twice maps to its last section, as it always has.
    let sections = sections.iter().map(|s| (String::from_utf8_lossy(s.name).into_owned(), s.index)).collect();
    Ok(ObjectInfo { sections, btf, relocs })
}

/// The CO-RE records of a `.BTF.ext`, named with the object's BTF.
fn core_relocs(b: &[u8], btf: &BtfTable) -> Result<Vec<RawReloc>, BtfError> {
    let ext = BtfExt::parse(b, btf)?;
    Ok(ext
        .core_records()
        .map(|r| {
            let access = btf.name(r.access_off);
            let (type_name, spec) = describe(btf, r.type_id, r.kind, &access);
            RawReloc {
                section: btf.name(r.section),
                insn_off: r.insn_off,
                type_id: r.type_id,
                kind: r.kind,
                access,
                type_name,
                spec,
            }
        })
        .collect())
}

/// The relocation's root type name and its access string with names:
/// `task_struct.real_parent`, `enum_name::VALUE`, `struct task_struct`.
fn describe(btf: &BtfTable, type_id: u32, kind: u32, access: &str) -> (String, String) {
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
                    ARRAY => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::{build, INT};

    /// `struct task_struct { int pid; int tgid; }` and the strings CO-RE records name.
    fn btf() -> BtfTable {
        let strings = b"\0int\0task_struct\0pid\0tgid\0kprobe/x\x000:1\0";
        let mut t = build::ty(1, INT, 0, 4);
        t.extend(0x0100_0020u32.to_le_bytes());
        t.extend(build::ty(5, STRUCT, 2, 8));
        t.extend(build::member(17, 1, 0));
        t.extend(build::member(21, 1, 32));
        BtfTable::parse(&build::btf(&t, strings)).unwrap()
    }

    /// A `.BTF.ext` with only a CO-RE part: `records` of (insn_off, type_id, access, kind) in
    /// section `kprobe/x` (string offset 26, access `0:1` at 35).
    fn ext(records: &[[u32; 4]]) -> Vec<u8> {
        let mut core = 16u32.to_le_bytes().to_vec();
        core.extend([26u32, records.len() as u32].iter().flat_map(|v| v.to_le_bytes()));
        core.extend(records.iter().flatten().flat_map(|v| v.to_le_bytes()));
        let mut b = vec![0x9f, 0xeb, 1, 0];
        for v in [32u32, 0, 0, 0, 0, 0, core.len() as u32] {
            b.extend(v.to_le_bytes());
        }
        b.extend(core);
        b
    }

    #[test]
    fn records_are_named_with_the_objects_btf() {
        let btf = btf();
        let r = core_relocs(&ext(&[[16, 2, 35, 0], [24, 2, 35, 2]]), &btf).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].section.as_str(), r[0].insn_off, r[0].access.as_str()), ("kprobe/x", 16, "0:1"));
        assert_eq!((r[0].type_name.as_str(), r[0].spec.as_str()), ("task_struct", "task_struct.tgid"));
        assert_eq!(r[1].kind, 2);
        // type_exists names the type with its C word; an unknown type id keeps its number.
        assert_eq!(describe(&btf, 2, 8, "0").1, "struct task_struct");
        assert_eq!(describe(&btf, 9, 0, "0:1"), ("#9".to_string(), "0:1".to_string()));
    }

    #[test]
    fn malformed_ext_names_what_and_where() {
        let btf = btf();
        let mut short = ext(&[[16, 2, 35, 0]]);
        short[32..36].copy_from_slice(&8u32.to_le_bytes()); // record size 8
        assert_eq!(
            core_relocs(&short, &btf).unwrap_err(),
            BtfError::RecordSize { what: "CO-RE records", size: 8, min: 16 }
        );
        let mut cut = ext(&[[16, 2, 35, 0], [24, 2, 35, 2]]);
        cut.truncate(cut.len() - 4);
        let len = cut.len() as u32 - 32;
        cut[28..32].copy_from_slice(&len.to_le_bytes());
        let e = core_relocs(&cut, &btf).unwrap_err();
        assert_eq!(e, BtfError::Truncated { what: "CO-RE record", offset: 32 + 12 + 16, len: cut.len() }, "{e}");
        assert_eq!(e.to_string(), format!("read the CO-RE record at offset 60: {} bytes end inside it", cut.len()));
        assert_eq!(core_relocs(b"\0\0", &btf).unwrap_err(), BtfError::Magic { what: "BTF.ext", len: 2 });
    }
}
