//! BTF as the harness reads it: [`BtfTable`], a read-only table of a BTF blob's types and
//! strings, as much of each type as naming and explaining CO-RE relocations needs (kind, name,
//! the referenced type, struct and union members, enum value names), and [`ext`], the reader of
//! a BPF object's `.BTF.ext`. core-check reads two tables, the object's `.BTF` (to name each
//! relocation) and a kernel's (to say why one found no target); `bpf_object` checks an object's
//! `.BTF`/`.BTF.ext` with them before aya-obj, which panics on some malformed ones, sees it.
//!
//! What it is not: aya-obj's `Btf`, which computes the relocations and does not expose its types;
//! this table never relocates, sanitises or writes BTF, and keeps no sizes, offsets or bit fields.
//! Little-endian BTF only (every kernel and object kmatrix reads is x86-64 or BPF little-endian).

#![warn(missing_docs)]

pub mod ext;
pub mod external;
pub mod from_headers;

use crate::elf::le::{u16_at, u32_at};

/// `BTF_KIND_INT`: an integer. These constants are the `BTF_KIND_*` of
/// include/uapi/linux/btf.h, the kinds of [`Ty::kind`].
pub const INT: u8 = 1;
/// `BTF_KIND_PTR`: a pointer to `ty`.
pub const PTR: u8 = 2;
/// `BTF_KIND_ARRAY`: `ty` here is the element type.
pub const ARRAY: u8 = 3;
/// `BTF_KIND_STRUCT`, with `members`.
pub const STRUCT: u8 = 4;
/// `BTF_KIND_UNION`, with `members`.
pub const UNION: u8 = 5;
/// `BTF_KIND_ENUM` (32-bit values), with `values`.
pub const ENUM: u8 = 6;
/// `BTF_KIND_FWD`: a struct or union declared, not defined.
pub const FWD: u8 = 7;
/// `BTF_KIND_TYPEDEF`: another name for `ty`.
pub const TYPEDEF: u8 = 8;
/// `BTF_KIND_RESTRICT`: `ty` with `restrict` (`VOLATILE` 9 and `CONST` 10 sit before it).
pub const RESTRICT: u8 = 11;
/// `BTF_KIND_FUNC`: a function, `ty` its prototype.
pub const FUNC: u8 = 12;
/// `BTF_KIND_FUNC_PROTO`: a function's return and parameter types.
pub const FUNC_PROTO: u8 = 13;
/// `BTF_KIND_VAR`: a global variable of type `ty`.
pub const VAR: u8 = 14;
/// `BTF_KIND_DATASEC`: an ELF data section's variables.
pub const DATASEC: u8 = 15;
/// `BTF_KIND_FLOAT`: a floating-point type.
pub const FLOAT: u8 = 16;
/// `BTF_KIND_DECL_TAG`: a `btf_decl_tag` attribute on `ty`.
pub const DECL_TAG: u8 = 17;
/// `BTF_KIND_TYPE_TAG`: a `btf_type_tag` attribute on `ty`.
pub const TYPE_TAG: u8 = 18;
/// `BTF_KIND_ENUM64` (64-bit values), with `values`.
pub const ENUM64: u8 = 19;

/// The magic of `.BTF` and `.BTF.ext` headers, as a little-endian file holds it.
pub const MAGIC: u16 = 0xeb9f;

/// What is wrong with a `.BTF` or `.BTF.ext` blob; offsets count from the blob's first byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    /// The blob does not start with [`MAGIC`] (not BTF, or big-endian).
    #[error("find the {what} magic 0xeb9f at the start of {len} bytes (is it big-endian?)")]
    Magic {
        /// `BTF` or `BTF.ext`.
        what: &'static str,
        /// The blob's length in bytes.
        len: usize,
    },
    /// The blob ends inside a header or record.
    #[error("read the {what} at offset {offset}: {len} bytes end inside it")]
    Truncated {
        /// The part read, in words (`type record`, `func_info`).
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// The blob's length in bytes.
        len: usize,
    },
    /// A section or part the header names lies (partly) past the blob's end.
    #[error("read the {what} at {start}..{end}: it lies past the end of {len} bytes")]
    PastEnd {
        /// The part read, in words (`type record`, `func_info`).
        what: &'static str,
        /// Its first byte, as the header gives it.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// The blob's length in bytes.
        len: usize,
    },
    /// A type record's kind is none this reader knows (a newer kernel's BTF).
    #[error("read type {id} at offset {offset}: unknown BTF kind {kind}")]
    UnknownKind {
        /// The type's id.
        id: usize,
        /// The kind found.
        kind: u8,
        /// Where the record starts.
        offset: usize,
    },
    /// A `.BTF.ext` part declares a record size below its record's or not a multiple of 4.
    #[error("read the {what}: records of {size} bytes, where one takes {min} (and a multiple of 4)")]
    RecordSize {
        /// The part (`func_info`, `line_info`, `CO-RE records`).
        what: &'static str,
        /// The declared record size in bytes.
        size: usize,
        /// The smallest record of the part in bytes.
        min: usize,
    },
    /// A `.BTF.ext` string offset is not a string of the object's `.BTF`.
    #[error("read the {what} at offset {offset}: string offset {string} is not a string of the object's .BTF")]
    BadString {
        /// The record or section header that holds it.
        what: &'static str,
        /// Where that record or header starts in the blob.
        offset: usize,
        /// The string offset found.
        string: u32,
    },
    /// The `.BTF.ext` header claims to be longer than the blob.
    #[error("read the BTF.ext header: it claims {hdr_len} bytes of {len}")]
    Header {
        /// The header's own length field.
        hdr_len: usize,
        /// The blob's length in bytes.
        len: usize,
    },
}

/// A BTF type, as much of it as naming and explaining relocations needs.
#[derive(Debug, Clone, Default)]
pub struct Ty {
    /// One of the kind constants of this module (0 for void).
    pub kind: u8,
    /// The type's name, an offset in the string table (0: anonymous).
    pub name_off: u32,
    /// The referenced type (pointer, typedef, modifiers; an array's element type).
    pub ty: u32,
    /// Struct and union members: (name offset, type).
    pub members: Vec<(u32, u32)>,
    /// Enum value names.
    pub values: Vec<u32>,
}

/// A parsed BTF blob: types by id (0 is void) and the string table.
#[derive(Debug, Clone, Default)]
pub struct BtfTable {
    /// Types by id; index 0 is void.
    pub types: Vec<Ty>,
    strings: Vec<u8>,
}

impl BtfTable {
    /// Reads a little-endian `.BTF` blob, every bound checked.
    pub fn parse(b: &[u8]) -> Result<BtfTable, BtfError> {
        let len = b.len();
        let truncated = |what, offset| BtfError::Truncated { what, offset, len };
        if u16_at(b, 0) != Some(MAGIC) {
            return Err(BtfError::Magic { what: "BTF", len });
        }
        let hdr = u32_at(b, 4).ok_or(truncated("header", 0))? as usize;
        let field = |o: usize| u32_at(b, o).map(|v| v as usize).ok_or(truncated("header", 0));
        let (type_off, type_len, str_off, str_len) = (field(8)?, field(12)?, field(16)?, field(20)?);
        let section = |what, off: usize, size: usize| {
            let start = hdr as u64 + off as u64;
            hdr.checked_add(off)
                .and_then(|s| b.get(s..s.checked_add(size)?))
                .map(|s| (hdr + off, s))
                .ok_or(BtfError::PastEnd { what, start, end: start + size as u64, len })
        };
        let (base, types) = section("type section", type_off, type_len)?;
        let strings = section("string section", str_off, str_len)?.1.to_vec();
        let mut out = vec![Ty::default()];
        let mut p = 0;
        while p < types.len() {
            let at = base + p;
            let (name_off, info, size_or_type) = match (u32_at(types, p), u32_at(types, p + 4), u32_at(types, p + 8)) {
                (Some(a), Some(b), Some(c)) => (a, b, c),
                _ => return Err(truncated("type record", at)),
            };
            p += 12;
            let kind = ((info >> 24) & 0x1f) as u8;
            let vlen = (info & 0xffff) as usize;
            let mut t = Ty { kind, name_off, ty: size_or_type, ..Ty::default() };
            let rec = |n: usize| n * vlen;
            match kind {
                INT | VAR | DECL_TAG => p += 4,
                ARRAY => {
                    t.ty = u32_at(types, p).ok_or(truncated("array record", base + p))?;
                    p += 12;
                }
                STRUCT | UNION => {
                    for i in 0..vlen {
                        let m = p + i * 12;
                        match (u32_at(types, m), u32_at(types, m + 4)) {
                            (Some(n), Some(ty)) => t.members.push((n, ty)),
                            _ => return Err(truncated("member record", base + m)),
                        }
                    }
                    p += rec(12);
                }
                ENUM | ENUM64 => {
                    let size = if kind == ENUM { 8 } else { 12 };
                    for i in 0..vlen {
                        let v = p + i * size;
                        t.values.push(u32_at(types, v).ok_or(truncated("enum record", base + v))?);
                    }
                    p += rec(size);
                }
                FUNC_PROTO => p += rec(8),
                DATASEC => p += rec(12),
                PTR | FWD..=FUNC | FLOAT | TYPE_TAG => {}
                kind => return Err(BtfError::UnknownKind { id: out.len(), kind, offset: at }),
            }
            out.push(t);
        }
        Ok(BtfTable { types: out, strings })
    }

    /// The type of `id`; `None` past the last type.
    pub fn ty(&self, id: u32) -> Option<&Ty> {
        self.types.get(id as usize)
    }

    /// The string at `off` of the string table; empty when there is none.
    pub fn name(&self, off: u32) -> String {
        cstr(&self.strings, off as usize).unwrap_or_default()
    }

    /// Whether `off` starts a NUL-terminated string inside the string table: what aya-obj's
    /// `string_at` needs not to fail (or, past the table, not to panic).
    pub fn has_string(&self, off: u32) -> bool {
        self.strings.get(off as usize..).is_some_and(|s| s.contains(&0))
    }

    /// Through typedefs and modifiers (volatile, const, restrict, type tags).
    pub fn skip_mods(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id) {
                Some(t) if matches!(t.kind, TYPEDEF..=RESTRICT | TYPE_TAG) => id = t.ty,
                _ => break,
            }
        }
        id
    }

    /// A member of struct/union `id` by name, looking inside anonymous members as C does.
    pub fn member(&self, id: u32, name: &str, depth: u32) -> Option<u32> {
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

fn cstr(b: &[u8], off: usize) -> Option<String> {
    let s = b.get(off..)?;
    let end = s.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// The C word for a kind, as messages name a type (`struct task_struct`).
pub fn kind_word(kind: u8) -> &'static str {
    match kind {
        STRUCT => "struct",
        UNION => "union",
        ENUM | ENUM64 => "enum",
        TYPEDEF => "typedef",
        INT => "int",
        PTR => "pointer",
        ARRAY => "array",
        FWD => "forward declaration",
        FUNC_PROTO => "function prototype",
        FLOAT => "float",
        _ => "type",
    }
}

/// A name without its CO-RE flavour (`task_struct___old` → `task_struct`).
pub fn flavourless(name: &str) -> &str {
    name.split_once("___").map_or(name, |x| x.0)
}

/// BTF blobs built by hand for tests: a header, type records, a string table.
#[cfg(test)]
pub mod build {
    /// A `.BTF` with `types` (raw records) and `strings` (NUL-separated, starting with a NUL).
    pub fn btf(types: &[u8], strings: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xeb9fu16.to_le_bytes());
        b.extend_from_slice(&[1, 0]); // version, flags
        b.extend_from_slice(&24u32.to_le_bytes()); // header length
        b.extend_from_slice(&0u32.to_le_bytes()); // type_off
        b.extend_from_slice(&(types.len() as u32).to_le_bytes());
        b.extend_from_slice(&(types.len() as u32).to_le_bytes()); // str_off
        b.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        b.extend_from_slice(types);
        b.extend_from_slice(strings);
        b
    }

    /// A type record header: name offset, kind, vlen, size or type.
    pub fn ty(name_off: u32, kind: u8, vlen: u16, size_or_type: u32) -> Vec<u8> {
        let info = (u32::from(kind) << 24) | u32::from(vlen);
        [name_off, info, size_or_type].iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// A struct member record: name offset, type, bit offset.
    pub fn member(name_off: u32, ty: u32, bits: u32) -> Vec<u8> {
        [name_off, ty, bits].iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `struct task_struct { int pid; union { long state; }; }` with `const` on the int.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0task_struct\0pid\0state\0";
        let mut t = Vec::new();
        t.extend(build::ty(1, INT, 0, 4)); // 1: int
        t.extend(0x0100_0020u32.to_le_bytes()); // int encoding: signed, 32 bits
        t.extend(build::ty(0, 10, 0, 1)); // 2: const int
        t.extend(build::ty(5, STRUCT, 2, 16)); // 3: struct task_struct
        t.extend(build::member(17, 2, 0)); // pid: const int
        t.extend(build::member(0, 4, 64)); // an anonymous union
        t.extend(build::ty(0, UNION, 1, 8)); // 4: union { int state; }
        t.extend(build::member(21, 1, 0));
        build::btf(&t, strings)
    }

    #[test]
    fn types_members_and_anonymous_unions() {
        let btf = BtfTable::parse(&sample()).unwrap();
        assert_eq!(btf.types.len(), 5);
        let ts = btf.ty(3).unwrap();
        assert_eq!((ts.kind, btf.name(ts.name_off).as_str()), (STRUCT, "task_struct"));
        assert_eq!(btf.skip_mods(2), 1);
        assert_eq!(btf.member(3, "pid", 0), Some(2));
        assert_eq!(btf.member(3, "state", 0), Some(1), "found through the anonymous union");
        assert_eq!(btf.member(3, "__state", 0), None);
        assert_eq!(flavourless("task_struct___old"), "task_struct");
        assert_eq!(kind_word(ENUM64), "enum");
    }

    #[test]
    fn malformed_blobs_name_what_and_where() {
        let good = sample();
        assert_eq!(BtfTable::parse(b"\xeb\x9f").unwrap_err(), BtfError::Magic { what: "BTF", len: 2 });
        // End the type section inside the union's member record (types offset 76, blob 24 + 76).
        let mut cut = good.clone();
        let types_len = u32_at(&cut, 12).unwrap() as usize;
        cut.truncate(24 + types_len);
        let short = types_len as u32 - 8;
        cut[12..16].copy_from_slice(&short.to_le_bytes());
        cut[16..20].copy_from_slice(&short.to_le_bytes());
        cut[20..24].copy_from_slice(&0u32.to_le_bytes());
        let e = BtfTable::parse(&cut).unwrap_err();
        assert_eq!(e, BtfError::Truncated { what: "member record", offset: 24 + 76, len: cut.len() }, "{e}");
        // A string section past the end.
        let mut past = good.clone();
        past[20..24].copy_from_slice(&1000u32.to_le_bytes());
        let e = BtfTable::parse(&past).unwrap_err();
        assert!(matches!(e, BtfError::PastEnd { what: "string section", .. }), "{e}");
        // Kind 31 does not exist.
        let mut unknown = good;
        unknown[24 + 7] = 31;
        let e = BtfTable::parse(&unknown).unwrap_err();
        assert_eq!(e, BtfError::UnknownKind { id: 1, kind: 31, offset: 24 }, "{e}");
    }
}
