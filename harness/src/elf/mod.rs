//! The harness's one ELF reader: the file header, sections (all of them, or the first one with a
//! given name) and the notes of `PT_NOTE` segments, over the `object` crate's ELF parser, the
//! parser aya-obj reads BPF objects with. Kernel images (`vmlinux`: the PVH note, `.BTF`), modules
//! (`.modinfo`) and BPF objects (`.BTF`, `.BTF.ext`) are read through it; [`le`] holds the
//! little-endian integer readers for the formats those sections carry.
//!
//! What it is not: a loader (no symbols, relocations or dynamic tables) nor a reader of what the
//! sections hold; it hands out bytes and file ranges, and BTF, modinfo and note descriptors are
//! their callers' business. Little-endian 64-bit files only, the only kind the harness opens
//! (x86-64 kernels and modules, objects from `clang -target bpf`), except for [`machine`], which
//! answers for any ELF file so that a wrong file is named as such.

#![warn(missing_docs)]

pub mod le;

use std::ops::Range;

use object::elf::{FileHeader64, SectionHeader64, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, ELFMAG, SHT_NOBITS};
use object::read::elf::{FileHeader as _, ProgramHeader as _, SectionHeader as _, SectionTable};
use object::read::Bytes;
use object::{Endianness, LittleEndian, U16};

/// Why bytes are not a readable ELF file. The first three are about the header and read as a
/// reason after the file's name; `Malformed` and `Section` name the table or the section and
/// where its header lies in the file.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Fewer bytes than an ELF64 file header (64).
    #[error("too short for an ELF header")]
    TooShort {
        /// The file's length in bytes.
        len: usize,
    },
    /// The file does not start with the ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// An ELF file, but 32-bit or big-endian.
    #[error("not a little-endian 64-bit ELF file")]
    NotLe64 {
        /// `e_ident[EI_CLASS]` (1: 32-bit, 2: 64-bit).
        class: u8,
        /// `e_ident[EI_DATA]` (1: little-endian, 2: big-endian).
        data: u8,
    },
    /// The file header or a header table lies outside the file or is garbled.
    /// object's reason is a fixed phrase with nothing under it: it is part of the message.
    #[error("read the {what} at offset {offset:#x}: {cause}")]
    Malformed {
        /// What was read, in words (`file header`, `section headers`).
        what: &'static str,
        /// Where it lies in the file.
        offset: u64,
        /// object's reason.
        cause: object::read::Error,
    },
    /// A section's name or bytes lie outside the file.
    #[error("read section {index} (its header at offset {offset:#x}): {cause}")]
    Section {
        /// The section's index in the section header table.
        index: usize,
        /// Where its header lies in the file.
        offset: u64,
        /// object's reason.
        cause: object::read::Error,
    },
}

/// One section: its index in the section header table, its name and type, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section<'a> {
    /// Its index in the section header table (0 is the null section).
    pub index: usize,
    /// Its name from the section name table, as bytes (names need not be UTF-8).
    pub name: &'a [u8],
    /// `sh_type` (`SHT_PROGBITS`, `SHT_NOBITS`, ...).
    pub kind: u32,
    /// Where its bytes lie in the file; `None` for `SHT_NOBITS` (`.bss`), which has none, and
    /// for an empty section whose offset lies past the end of the file.
    pub range: Option<Range<usize>>,
    /// Its bytes (empty for `SHT_NOBITS`).
    pub data: &'a [u8],
}

/// One note of a `PT_NOTE` segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note<'a> {
    /// The owner (`Xen`, `GNU`, `Linux`), without its terminating NUL.
    pub name: &'a [u8],
    /// `n_type`, whose meaning depends on the owner.
    pub kind: u32,
    /// The descriptor, without its padding.
    pub desc: &'a [u8],
}

/// A little-endian ELF64 file whose header has been checked.
#[derive(Debug, Clone, Copy)]
pub struct Elf<'a> {
    data: &'a [u8],
    header: &'a FileHeader64<LittleEndian>,
}

impl<'a> Elf<'a> {
    /// Check the header of `data`: long enough, the ELF magic, 64-bit little-endian.
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        if data.len() < std::mem::size_of::<FileHeader64<LittleEndian>>() {
            return Err(ElfError::TooShort { len: data.len() });
        }
        if data[..4] != ELFMAG {
            return Err(ElfError::NotElf);
        }
        if data[4] != ELFCLASS64 || data[5] != ELFDATA2LSB {
            return Err(ElfError::NotLe64 { class: data[4], data: data[5] });
        }
        let header = FileHeader64::<LittleEndian>::parse(data).map_err(|cause| ElfError::Malformed {
            what: "file header",
            offset: 0,
            cause,
        })?;
        Ok(Elf { data, header })
    }

    /// `e_machine` (62 for x86-64, 247 for BPF).
    pub fn machine(&self) -> u16 {
        self.header.e_machine(LittleEndian)
    }

    fn table(&self) -> Result<SectionTable<'a, FileHeader64<LittleEndian>>, ElfError> {
        self.header.sections(LittleEndian, self.data).map_err(|cause| ElfError::Malformed {
            what: "section headers",
            offset: self.header.e_shoff.get(LittleEndian),
            cause,
        })
    }

    /// Section `index` of `table`, named and with its bytes checked to lie in the file.
    fn section_at(
        &self,
        table: &SectionTable<'a, FileHeader64<LittleEndian>>,
        index: usize,
        header: &'a SectionHeader64<LittleEndian>,
    ) -> Result<Section<'a>, ElfError> {
        let name = self.section_name(table, index, header)?;
        let data = header.data(LittleEndian, self.data).map_err(|cause| self.section_error(index, cause))?;
        // `data` succeeded, so a non-empty range lies inside the file; an empty one may claim any
        // offset (object hands out no bytes for it), and is not a place in the file.
        let len = self.data.len() as u64;
        let range = header
            .file_range(LittleEndian)
            .filter(|&(off, size)| off.checked_add(size).is_some_and(|end| end <= len))
            .map(|(off, size)| off as usize..(off + size) as usize);
        Ok(Section { index, name, kind: header.sh_type(LittleEndian), range, data })
    }

    fn section_name(
        &self,
        table: &SectionTable<'a, FileHeader64<LittleEndian>>,
        index: usize,
        header: &'a SectionHeader64<LittleEndian>,
    ) -> Result<&'a [u8], ElfError> {
        table.section_name(LittleEndian, header).map_err(|cause| self.section_error(index, cause))
    }

    fn section_error(&self, index: usize, cause: object::read::Error) -> ElfError {
        let size = std::mem::size_of::<SectionHeader64<LittleEndian>>() as u64;
        let offset = self.header.e_shoff.get(LittleEndian).saturating_add(index as u64 * size);
        ElfError::Section { index, offset, cause }
    }

    /// Every section, in header order (index 0, the null section, included).
    pub fn sections(&self) -> Result<Vec<Section<'a>>, ElfError> {
        let table = self.table()?;
        table.iter().enumerate().map(|(i, h)| self.section_at(&table, i, h)).collect()
    }

    /// The first section called `name` that has bytes in the file (`SHT_NOBITS` ones are passed
    /// over). The names of later sections are not looked up, so a bad one past it does not hide it.
    pub fn section(&self, name: &str) -> Result<Option<Section<'a>>, ElfError> {
        let table = self.table()?;
        for (i, h) in table.iter().enumerate() {
            if self.section_name(&table, i, h)? == name.as_bytes() && h.sh_type(LittleEndian) != SHT_NOBITS {
                return self.section_at(&table, i, h).map(Some);
            }
        }
        Ok(None)
    }

    /// The notes of every `PT_NOTE` segment, in file order. A segment that lies outside the file
    /// is passed over and a malformed note ends its segment's list: notes are hints (the PVH
    /// entry), and a kernel without a readable one still boots as a bzImage.
    pub fn notes(&self) -> Vec<Note<'a>> {
        let mut out = Vec::new();
        let Ok(headers) = self.header.program_headers(LittleEndian, self.data) else { return out };
        for ph in headers {
            let Ok(Some(mut notes)) = ph.notes(LittleEndian, self.data) else { continue };
            while let Ok(Some(n)) = notes.next() {
                out.push(Note { name: n.name(), kind: n.n_type(LittleEndian), desc: n.desc() });
            }
        }
        out
    }
}

/// `e_machine` of any ELF file, either class and byte order; `None` when `b` is not one (too
/// short, no magic). The first question to ask of a file that should be a BPF object.
pub fn machine(b: &[u8]) -> Option<u16> {
    if b.len() < 20 || b[..4] != ELFMAG {
        return None;
    }
    let endian = if b[5] == ELFDATA2MSB { Endianness::Big } else { Endianness::Little };
    Bytes(b).read_at::<U16<Endianness>>(18).ok().map(|v| v.get(endian))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::files::bzimage::fake;

    #[test]
    fn sections_and_notes_of_a_fabricated_kernel() {
        let b = fake::elf(&[("Xen", 18, b"\x00\x00\x00\x01"), ("GNU", 3, b"abcd")], &[(".BTF", b"btf"), (".x", b"")]);
        let elf = Elf::parse(&b).unwrap();
        assert_eq!(elf.machine(), 62);
        let all = elf.sections().unwrap();
        let names: Vec<&[u8]> = all.iter().map(|s| s.name).collect();
        assert_eq!(names, [&b""[..], b".BTF", b".x", b".shstrtab"]);
        assert_eq!(all[1].index, 1);
        let btf = elf.section(".BTF").unwrap().unwrap();
        assert_eq!((btf.data, &b[btf.range.unwrap()]), (&b"btf"[..], &b"btf"[..]));
        assert_eq!(elf.section(".nope").unwrap(), None);
        let notes = elf.notes();
        assert_eq!(notes.len(), 2);
        assert_eq!((notes[0].name, notes[0].kind, notes[0].desc), (&b"Xen"[..], 18, &b"\x00\x00\x00\x01"[..]));
        assert_eq!(notes[1].name, b"GNU");
    }

    #[test]
    fn header_errors_say_what_is_wrong() {
        assert!(matches!(Elf::parse(b"\x7fELF"), Err(ElfError::TooShort { len: 4 })));
        assert!(matches!(Elf::parse(&[0u8; 64]), Err(ElfError::NotElf)));
        let mut b = fake::elf(&[], &[]);
        b[5] = 2;
        assert!(matches!(Elf::parse(&b), Err(ElfError::NotLe64 { class: 2, data: 2 })));
        assert_eq!(machine(&b), Some(62 << 8), "read big-endian as the file says");
        assert_eq!(machine(b"not an ELF file at all"), None);
    }

    #[test]
    fn section_headers_past_the_end_are_named_with_their_offset() {
        let mut b = fake::elf(&[], &[(".BTF", b"btf")]);
        let shoff = 0x10_0000u64;
        b[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        let e = Elf::parse(&b).unwrap().sections().unwrap_err();
        assert!(matches!(e, ElfError::Malformed { what: "section headers", offset: 0x10_0000, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "read the section headers at offset 0x100000: Invalid ELF section header offset/size/alignment"
        );
        // A section whose bytes lie past the end of the file.
        let mut b = fake::elf(&[], &[(".BTF", b"btf")]);
        let shoff = le::u64_at(&b, 0x28).unwrap() as usize;
        let btf = shoff + 64;
        b[btf + 32..btf + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = Elf::parse(&b).unwrap().section(".BTF").unwrap_err();
        assert!(matches!(e, ElfError::Section { index: 1, offset, .. } if offset == btf as u64), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("read section 1 (its header at offset {btf:#x}): Invalid ELF section size or offset")
        );
    }

    /// Found by the `elf` fuzz target (fuzz/corpus/elf/regress-empty-section-past-end): an empty
    /// section whose offset lies far past the end of the file had a `range` that did not slice.
    #[test]
    fn an_empty_section_past_the_end_has_no_range() {
        let mut b = fake::elf(&[], &[(".x", b"")]);
        let shoff = le::u64_at(&b, 0x28).unwrap() as usize;
        let x = shoff + 64;
        b[x + 24..x + 32].copy_from_slice(&(1u64 << 47).to_le_bytes()); // sh_offset
        let s = Elf::parse(&b).unwrap().section(".x").unwrap().unwrap();
        assert_eq!((s.data, s.range), (&b""[..], None));
        for s in Elf::parse(&b).unwrap().sections().unwrap() {
            if let Some(r) = s.range {
                assert_eq!(&b[r], s.data);
            }
        }
    }
}
