//! Why a CO-RE relocation found no target in a kernel's BTF, in words that name what is missing:
//! `struct task_struct has no field `__state` in the kernel's BTF`, `the kernel's BTF has no
//! struct foo`, `the kernel's enum bar has no value `BAZ``. It follows the relocation's access
//! string through the object's type and the kernel's candidates of the same name (flavours
//! aside) and reports the first member that is absent.
//!
//! What it is not: the matcher. aya-obj decided that the relocation has no target; this only
//! puts that decision in words, and says "incompatible type" where every name is present but
//! aya's stricter type comparison still failed.

use super::records::RawReloc;
use crate::btf::{flavourless, kind_word, BtfTable, ARRAY, ENUM, ENUM64, STRUCT, UNION};

/// Why a relocation found no target in the kernel's BTF, naming the type or field missing.
pub fn explain(local: &BtfTable, target: &BtfTable, r: &RawReloc) -> String {
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
                        ARRAY => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::{build, INT};

    /// `struct <name> { int <field>; }`: type 1 int, type 2 the struct.
    fn one_field(name: &str, field: &str) -> BtfTable {
        let strings = format!("\0int\0{name}\0{field}\0");
        let mut t = build::ty(1, INT, 0, 4);
        t.extend(0x0100_0020u32.to_le_bytes());
        t.extend(build::ty(5, STRUCT, 1, 4));
        t.extend(build::member(6 + name.len() as u32, 1, 0));
        BtfTable::parse(&build::btf(&t, strings.as_bytes())).unwrap()
    }

    fn reloc(kind: u32, access: &str, spec: &str) -> RawReloc {
        RawReloc {
            section: "kprobe/x".into(),
            insn_off: 0,
            type_id: 2,
            kind,
            access: access.into(),
            type_name: String::new(),
            spec: spec.into(),
        }
    }

    #[test]
    fn names_the_missing_field_type_or_incompatibility() {
        let local = one_field("task_struct___old", "state");
        let r = reloc(0, "0:0", "task_struct___old.state");
        assert_eq!(
            explain(&local, &one_field("task_struct", "__state"), &r),
            "struct task_struct has no field `state` in the kernel's BTF"
        );
        assert_eq!(explain(&local, &one_field("mm_struct", "state"), &r), "the kernel's BTF has no struct task_struct");
        // Every name is there: aya found the types incompatible.
        assert_eq!(
            explain(&local, &one_field("task_struct", "state"), &r),
            "the kernel's struct task_struct has `task_struct___old.state` but with an incompatible type"
        );
        let r = reloc(9, "0", "struct task_struct___old");
        assert_eq!(
            explain(&local, &one_field("task_struct", "state"), &r),
            "the kernel's struct task_struct is not compatible with the object's"
        );
    }
}
