//! A BPF object's `.BTF.ext`: its func_info, line_info and CO-RE relocation parts, each a record
//! size and, per ELF section, a run of records, every bound and string offset checked against
//! the blob and the object's `.BTF`.
//!
//! aya-obj 0.3 reads these parts with slicing that panics on malformed input: a part that ends
//! inside a record, a record size of 0 or smaller than its record, a section or access string
//! offset past the `.BTF` string table. `bpf_object` runs [`BtfExt::parse`] before handing an
//! object to aya, so such an object is bad input with the place named, not a crash. The rules
//! are libbpf's (`btf_ext_setup_info`): the minimum record sizes, records a multiple of 4 bytes,
//! every section header and record inside its part.
//!
//! What it is not: a reader of what func_info and line_info records mean (they are only bounded
//! here); the CO-RE records are handed out raw and `core_check` names them.

use super::{BtfError, BtfTable, MAGIC};
use crate::elf::le::{u16_at, u32_at};

/// `struct bpf_func_info`, `struct bpf_line_info`, `struct bpf_core_relo`: the smallest record
/// of each part.
const FUNC_INFO_MIN: usize = 8;
const LINE_INFO_MIN: usize = 16;
const CORE_RELO_MIN: usize = 16;

/// One part of a `.BTF.ext` (func_info, line_info or CO-RE relocations).
#[derive(Debug, Clone, Default)]
pub struct Part<'a> {
    /// Bytes per record (0 when the part is empty).
    pub rec_size: usize,
    /// The part's ELF sections, in file order.
    pub sections: Vec<SecInfo<'a>>,
}

/// The records of one ELF section in a part.
#[derive(Debug, Clone)]
pub struct SecInfo<'a> {
    /// The section's name, an offset in the `.BTF` string table.
    pub name_off: u32,
    /// Where its first record lies in the blob.
    pub base: usize,
    /// Its records, `rec_size` bytes each.
    pub data: &'a [u8],
}

/// One CO-RE relocation record (`struct bpf_core_relo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreRecord {
    /// The section's name offset in the `.BTF` string table.
    pub section: u32,
    /// Byte offset of the instruction in its section.
    pub insn_off: u32,
    /// The root type of the access, in the object's `.BTF`.
    pub type_id: u32,
    /// The access string (`0:1:2`), an offset in the `.BTF` string table.
    pub access_off: u32,
    /// `enum bpf_core_relo_kind`.
    pub kind: u32,
}

/// A checked `.BTF.ext`.
#[derive(Debug, Clone, Default)]
pub struct BtfExt<'a> {
    /// Function records (`struct bpf_func_info`), bounded only.
    pub func_info: Part<'a>,
    /// Source line records (`struct bpf_line_info`), bounded only.
    pub line_info: Part<'a>,
    /// CO-RE relocation records (`struct bpf_core_relo`); empty when the object has none or its
    /// header is from before `.BTF.ext` had them.
    pub core_relo: Part<'a>,
}

impl<'a> BtfExt<'a> {
    /// Read and check `b`, the `.BTF.ext` of an object whose `.BTF` is `btf`.
    pub fn parse(b: &'a [u8], btf: &BtfTable) -> Result<BtfExt<'a>, BtfError> {
        let len = b.len();
        if u16_at(b, 0) != Some(MAGIC) {
            return Err(BtfError::Magic { what: "BTF.ext", len });
        }
        let hdr_len = u32_at(b, 4).ok_or(BtfError::Truncated { what: "header", offset: 0, len })? as usize;
        if hdr_len > len {
            return Err(BtfError::Header { hdr_len, len });
        }
        // An older, shorter header has no fields past its length: those parts are empty.
        let field = |off: usize| if off + 4 <= hdr_len { u32_at(b, off).unwrap_or(0) } else { 0 };
        let part = |what, off_at: usize, min| Part::parse(b, hdr_len, field(off_at), field(off_at + 4), what, min, btf);
        let ext = BtfExt {
            func_info: part("func_info", 8, FUNC_INFO_MIN)?,
            line_info: part("line_info", 16, LINE_INFO_MIN)?,
            core_relo: part("CO-RE records", 24, CORE_RELO_MIN)?,
        };
        // aya looks the access strings up while relocating: check them now.
        for r in ext.core_records() {
            if !btf.has_string(r.access_off) {
                let offset = ext.core_record_offset(&r);
                return Err(BtfError::BadString { what: "CO-RE record", offset, string: r.access_off });
            }
        }
        Ok(ext)
    }

    /// Every CO-RE relocation record, section by section, in file order.
    pub fn core_records(&self) -> impl Iterator<Item = CoreRecord> + '_ {
        let rec = self.core_relo.rec_size;
        self.core_relo.sections.iter().flat_map(move |s| {
            s.data.chunks_exact(rec.max(1)).map(move |r| CoreRecord {
                section: s.name_off,
                insn_off: u32_at(r, 0).unwrap_or(0),
                type_id: u32_at(r, 4).unwrap_or(0),
                access_off: u32_at(r, 8).unwrap_or(0),
                kind: u32_at(r, 12).unwrap_or(0),
            })
        })
    }

    /// Where `r` lies in the blob (for messages).
    fn core_record_offset(&self, r: &CoreRecord) -> usize {
        let rec = self.core_relo.rec_size.max(1);
        for s in &self.core_relo.sections {
            for (i, x) in s.data.chunks_exact(rec).enumerate() {
                if s.name_off == r.section && u32_at(x, 0) == Some(r.insn_off) && u32_at(x, 8) == Some(r.access_off) {
                    return s.base + i * rec;
                }
            }
        }
        0
    }
}

impl<'a> Part<'a> {
    /// The part at `hdr_len + off`, `size` bytes: a record size, then per section its name
    /// offset, its number of records and the records.
    fn parse(
        b: &'a [u8],
        hdr_len: usize,
        off: u32,
        size: u32,
        what: &'static str,
        min: usize,
        btf: &BtfTable,
    ) -> Result<Part<'a>, BtfError> {
        let len = b.len();
        if size == 0 {
            return Ok(Part::default());
        }
        let start = hdr_len as u64 + u64::from(off);
        let end = start + u64::from(size);
        if end > len as u64 {
            return Err(BtfError::PastEnd { what, start, end, len });
        }
        // Both fit in the blob, so in a usize.
        let (start, end) = (start as usize, end as usize);
        let rec = u32_at(&b[..end], start).ok_or(BtfError::Truncated { what, offset: start, len })? as usize;
        if rec < min || rec & 3 != 0 {
            return Err(BtfError::RecordSize { what, size: rec, min });
        }
        let mut sections = Vec::new();
        let mut p = start + 4;
        while p < end {
            let head = &b[..end];
            let (name_off, n) = match (u32_at(head, p), u32_at(head, p + 4)) {
                (Some(a), Some(n)) => (a, n as usize),
                // The part's end is where the bytes that count end.
                _ => return Err(BtfError::Truncated { what: section_header(what), offset: p, len: end }),
            };
            if !btf.has_string(name_off) {
                return Err(BtfError::BadString { what: section_header(what), offset: p, string: name_off });
            }
            p += 8;
            let room = end - p;
            let bytes = n.checked_mul(rec).filter(|&s| s <= room).ok_or_else(|| {
                let whole = room / rec;
                BtfError::Truncated { what: record(what), offset: p + whole * rec, len: end }
            })?;
            sections.push(SecInfo { name_off, base: p, data: &b[p..p + bytes] });
            p += bytes;
        }
        Ok(Part { rec_size: rec, sections })
    }
}

fn section_header(what: &'static str) -> &'static str {
    match what {
        "func_info" => "func_info section header",
        "line_info" => "line_info section header",
        _ => "CO-RE section header",
    }
}

fn record(what: &'static str) -> &'static str {
    match what {
        "func_info" => "func_info record",
        "line_info" => "line_info record",
        _ => "CO-RE record",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::build;

    /// Strings: "", "kprobe/x" at 1, "0:1" at 10.
    fn btf() -> BtfTable {
        BtfTable::parse(&build::btf(&[], b"\0kprobe/x\x000:1\0")).unwrap()
    }

    /// A `.BTF.ext` with `func` func_info records (8 bytes each) and `core` CO-RE records, both in
    /// section "kprobe/x".
    fn ext(func: &[[u32; 2]], core: &[[u32; 4]]) -> Vec<u8> {
        let part = |rec: u32, n: usize, recs: Vec<u32>| {
            let mut v = rec.to_le_bytes().to_vec();
            v.extend([1u32, n as u32].iter().flat_map(|x| x.to_le_bytes()));
            v.extend(recs.iter().flat_map(|x| x.to_le_bytes()));
            v
        };
        let f = part(8, func.len(), func.iter().flatten().copied().collect());
        let c = part(16, core.len(), core.iter().flatten().copied().collect());
        let mut b = vec![0x9f, 0xeb, 1, 0];
        let (fl, cl) = (f.len() as u32, c.len() as u32);
        for v in [32u32, 0, fl, fl, 0, fl, cl] {
            b.extend(v.to_le_bytes());
        }
        b.extend(f);
        b.extend(c);
        b
    }

    #[test]
    fn reads_every_part() {
        let b = ext(&[[0, 3], [16, 4]], &[[8, 2, 10, 0]]);
        let e = BtfExt::parse(&b, &btf()).unwrap();
        assert_eq!((e.func_info.rec_size, e.func_info.sections.len()), (8, 1));
        assert_eq!(e.func_info.sections[0].data.len(), 16);
        assert_eq!(e.line_info.sections.len(), 0);
        let core: Vec<_> = e.core_records().collect();
        assert_eq!(core, [CoreRecord { section: 1, insn_off: 8, type_id: 2, access_off: 10, kind: 0 }]);
    }

    #[test]
    fn refuses_what_aya_would_panic_on() {
        let good = ext(&[[0, 3]], &[[8, 2, 10, 0]]);
        let btf = btf();
        // The CO-RE part 4 bytes short: its record ends past the part.
        let mut short = good.clone();
        let cl = u32_at(&short, 28).unwrap();
        short[28..32].copy_from_slice(&(cl - 4).to_le_bytes());
        let e = BtfExt::parse(&short, &btf).unwrap_err();
        assert_eq!(e, BtfError::Truncated { what: "CO-RE record", offset: 32 + 20 + 12, len: good.len() - 4 }, "{e}");
        // A func_info record size of 0 (aya: chunks(0)) and of 4 (aya reads 8 bytes of each).
        for size in [0u32, 4, 10] {
            let mut b = good.clone();
            b[32..36].copy_from_slice(&size.to_le_bytes());
            let e = BtfExt::parse(&b, &btf).unwrap_err();
            assert_eq!(e, BtfError::RecordSize { what: "func_info", size: size as usize, min: 8 }, "{e}");
        }
        // A section name past the string table (aya unwraps string_at).
        let mut b = good.clone();
        b[36..40].copy_from_slice(&500u32.to_le_bytes());
        let e = BtfExt::parse(&b, &btf).unwrap_err();
        assert_eq!(e, BtfError::BadString { what: "func_info section header", offset: 36, string: 500 }, "{e}");
        // An access string past the table (aya slices its strings with it while relocating).
        let b = ext(&[[0, 3]], &[[8, 2, 14, 0]]);
        let e = BtfExt::parse(&b, &btf).unwrap_err();
        assert_eq!(e, BtfError::BadString { what: "CO-RE record", offset: 32 + 20 + 12, string: 14 }, "{e}");
        // A header longer than the blob, a part past its end.
        let mut b = good.clone();
        b[4..8].copy_from_slice(&4096u32.to_le_bytes());
        assert_eq!(BtfExt::parse(&b, &btf).unwrap_err(), BtfError::Header { hdr_len: 4096, len: good.len() });
        let mut b = good.clone();
        b[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(BtfExt::parse(&b, &btf), Err(BtfError::PastEnd { what: "CO-RE records", .. })));
        // A number of records whose size overflows.
        let mut b = good;
        b[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(BtfExt::parse(&b, &btf), Err(BtfError::Truncated { what: "func_info record", .. })));
    }

    #[test]
    fn a_short_header_has_no_co_re_part() {
        let mut b = ext(&[[0, 3]], &[[8, 2, 10, 0]]);
        b[4..8].copy_from_slice(&24u32.to_le_bytes());
        // The func_info part moves with the header: point it back at the same bytes.
        b[8..12].copy_from_slice(&8u32.to_le_bytes());
        let e = BtfExt::parse(&b, &btf()).unwrap();
        assert_eq!(e.core_records().count(), 0);
        assert_eq!(e.func_info.sections.len(), 1);
    }
}
