//! Looking inside kernel images: the bzImage setup header, its compressed payload (the ELF
//! `vmlinux`), the PVH entry note that lets QEMU boot that ELF directly, and its `.BTF` section.
//!
//! The setup header comes from linux-loader's generated bindings (`bootparam::setup_header`) so
//! field offsets match the kernel's boot protocol; the ELF side is read with the harness's ELF
//! reader ([`crate::elf`]). This module reads bytes; it never writes files and never boots
//! anything.

use std::io;
use std::ops::Range;

use linux_loader::loader::bootparam::setup_header;

use super::compress::{decompress_first_stream, Compression};
use crate::elf::{le, Elf, ElfError};

/// Offset of the setup header in a bzImage (boot protocol).
const SETUP_HEADER_OFFSET: usize = 0x1f1;
/// "HdrS", the setup header signature at 0x202.
const HDRS: u32 = 0x5372_6448;
/// The note type of the 32-bit PVH entry point (Xen's `XEN_ELFNOTE_PHYS32_ENTRY`).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const EM_X86_64: u16 = 62;
/// Far above any real vmlinux (Debian's are ~65 MB), to bound a hostile payload.
const MAX_VMLINUX: usize = 1 << 30;

/// Why bytes are not a bzImage or an x86-64 kernel ELF. Each message is the reason alone: the
/// kernel provider puts it after the file's name.
#[derive(Debug, thiserror::Error)]
pub enum BzImageError {
    /// Fewer bytes than a setup header needs.
    #[error("too short for a setup header")]
    NoSetupHeader {
        /// The file's length.
        len: usize,
    },
    /// The setup header's magic or boot flag is wrong.
    #[error("no bzImage setup header (HdrS)")]
    NotBzImage {
        /// The `header` field (`HdrS` in a bzImage).
        magic: u32,
        /// The `boot_flag` field (0xaa55 in a bzImage).
        boot_flag: u16,
    },
    /// A boot protocol without the payload fields (before 2.08).
    #[error("boot protocol {version:#x} is older than 2.08 (no payload fields)")]
    OldProtocol {
        /// The header's protocol version.
        version: u16,
    },
    /// The payload's offset plus length overflows.
    #[error("payload length overflows")]
    PayloadOverflow {
        /// The payload's offset.
        start: usize,
        /// The payload's length.
        length: usize,
    },
    /// The payload lies past the end of the file.
    #[error("payload {:#x}..{:#x} is outside the {len} byte file", payload.start, payload.end)]
    PayloadOutside {
        /// Where the header says the payload is.
        payload: Range<usize>,
        /// The file's length.
        len: usize,
    },
    /// The payload's magic bytes are no compression kmatrix reads.
    #[error(
        "payload starts with bytes {magic:02x?}, none of the formats kmatrix reads (gzip, xz, lzma, zstd, LZ4 legacy)"
    )]
    UnknownCompression {
        /// The payload's first bytes (up to 6).
        magic: Vec<u8>,
    },
    /// Decompressing the payload failed. The decoder's reason is part of the message: the
    /// provider keeps only the text.
    #[error("decompress the {kind:?} payload: {cause}")]
    Decompress {
        /// The payload's compression.
        kind: Compression,
        /// The decoder's error.
        cause: io::Error,
    },
    /// The decompressed payload does not start with the ELF magic.
    #[error("the {kind:?} payload is not an ELF file")]
    PayloadNotElf {
        /// The payload's compression.
        kind: Compression,
    },
    /// The payload ELF is malformed.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// The ELF is for another machine.
    #[error("ELF machine {machine} is not x86-64")]
    NotX86_64 {
        /// The ELF's `e_machine`.
        machine: u16,
    },
}

/// Plain-old-data structs from linux-loader that may be read from any byte pattern.
///
/// # Safety
/// Implementors must be `repr(C)` (or packed) structs of integers only, with no padding
/// invariants, so every bit pattern is a valid value.
unsafe trait Pod: Copy {}
// SAFETY: a bindgen struct of integer fields only.
unsafe impl Pod for setup_header {}

fn read_pod<T: Pod>(bytes: &[u8], off: usize) -> Option<T> {
    let end = off.checked_add(std::mem::size_of::<T>())?;
    let src = bytes.get(off..end)?;
    // SAFETY: `src` has exactly size_of::<T>() bytes, `read_unaligned` has no alignment
    // requirement, and `T: Pod` accepts any bit pattern.
    Some(unsafe { std::ptr::read_unaligned(src.as_ptr().cast::<T>()) })
}

/// What a bzImage says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BzImage {
    /// Boot protocol version (e.g. 0x20f).
    pub protocol: u16,
    /// The `kernel_version` string (`6.1.0-50-amd64 (debian-kernel@...) #1 SMP ...`).
    pub version: Option<String>,
    /// How the payload is compressed, when its magic is known.
    pub compression: Option<Compression>,
    /// Where the compressed payload sits in the file.
    pub payload: Range<usize>,
}

impl BzImage {
    /// `uname -r`: the first word of the version string.
    pub fn release(&self) -> Option<String> {
        self.version.as_deref().and_then(|v| v.split_whitespace().next()).map(str::to_string)
    }
}

/// Parse a bzImage's setup header; `Err` says why the bytes are not one.
pub fn parse_bzimage(b: &[u8]) -> Result<BzImage, BzImageError> {
    let h: setup_header = read_pod(b, SETUP_HEADER_OFFSET).ok_or(BzImageError::NoSetupHeader { len: b.len() })?;
    let (magic, flag, version) = (h.header, h.boot_flag, h.version);
    if magic != HDRS || flag != 0xAA55 {
        return Err(BzImageError::NotBzImage { magic, boot_flag: flag });
    }
    if version < 0x208 {
        return Err(BzImageError::OldProtocol { version });
    }
    let sects = if h.setup_sects == 0 { 4 } else { h.setup_sects as usize };
    let (po, pl) = (h.payload_offset as usize, h.payload_length as usize);
    let start = (sects + 1) * 512 + po;
    let end = start.checked_add(pl).ok_or(BzImageError::PayloadOverflow { start, length: pl })?;
    let payload = start..end;
    if payload.end > b.len() || pl == 0 {
        return Err(BzImageError::PayloadOutside { payload, len: b.len() });
    }
    let kv = h.kernel_version;
    let version_str = if kv != 0 {
        let at = kv as usize + 0x200;
        b.get(at..).map(|s| {
            let end = s.iter().take(256).position(|&c| c == 0).unwrap_or(s.len().min(256));
            String::from_utf8_lossy(&s[..end]).into_owned()
        })
    } else {
        None
    };
    Ok(BzImage {
        protocol: version,
        version: version_str.filter(|s| !s.is_empty()),
        compression: Compression::from_magic(&b[payload.clone()]),
        payload,
    })
}

/// Decompress the payload of a bzImage into the ELF `vmlinux`.
pub fn vmlinux_of(b: &[u8], bz: &BzImage) -> Result<Vec<u8>, BzImageError> {
    let kind = bz.compression.ok_or_else(|| BzImageError::UnknownCompression {
        magic: b[bz.payload.clone()].iter().take(6).copied().collect(),
    })?;
    let out = decompress_first_stream(kind, &b[bz.payload.clone()], MAX_VMLINUX)
        .map_err(|cause| BzImageError::Decompress { kind, cause })?;
    if !out.starts_with(b"\x7fELF") {
        return Err(BzImageError::PayloadNotElf { kind });
    }
    Ok(out)
}

/// What an ELF kernel says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfKernel {
    /// The 32-bit physical entry from the Xen PVH note, when present.
    pub pvh_entry: Option<u64>,
    /// File range of the `.BTF` section, when present.
    pub btf: Option<Range<usize>>,
}

/// A section of a little-endian ELF64 file, by name; `None` when the file is not one or a
/// section header on the way is unreadable.
pub fn elf_section<'a>(b: &'a [u8], name: &str) -> Option<&'a [u8]> {
    Some(Elf::parse(b).ok()?.section(name).ok()??.data)
}

/// Parse an x86-64 ELF kernel; `Err` says why the bytes are not one.
pub fn parse_elf(b: &[u8]) -> Result<ElfKernel, BzImageError> {
    let elf = Elf::parse(b)?;
    if elf.machine() != EM_X86_64 {
        return Err(BzImageError::NotX86_64 { machine: elf.machine() });
    }
    // Kernels carry one; were there several, the last would count.
    let pvh_entry =
        elf.notes().into_iter().rfind(|n| n.name == b"Xen" && n.kind == XEN_ELFNOTE_PHYS32_ENTRY).and_then(|n| match n
            .desc
            .len()
        {
            4 => le::u32_at(n.desc, 0).map(u64::from),
            8 => le::u64_at(n.desc, 0),
            _ => None,
        });
    let btf = elf.section(".BTF").ok().flatten().and_then(|s| s.range);
    Ok(ElfKernel { pvh_entry, btf })
}

/// `uname -r` from the `Linux version <release> ...` banner inside an image.
pub fn banner_release(b: &[u8]) -> Option<String> {
    const PAT: &[u8] = b"Linux version ";
    let mut from = 0;
    while let Some(p) = find(&b[from..], PAT) {
        let s = from + p + PAT.len();
        let word: Vec<u8> = b[s..].iter().take(128).take_while(|c| c.is_ascii_graphic()).copied().collect();
        if word.first().is_some_and(u8::is_ascii_digit) {
            return String::from_utf8(word).ok();
        }
        from = s;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let p = hay[i..hay.len() - needle.len() + 1].iter().position(|&c| c == first)?;
        i += p;
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Fabricated images for tests: an ELF with chosen notes and sections, wrapped in a bzImage.
#[cfg(test)]
pub mod fake {
    use super::*;
    use object::elf::PT_NOTE;

    /// An x86-64 ELF with one PT_NOTE segment holding `notes` (name, type, desc) and the named
    /// sections (plus `.shstrtab`).
    pub fn elf(notes: &[(&str, u32, &[u8])], sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut note = Vec::new();
        for (name, ty, desc) in notes {
            let mut n = name.as_bytes().to_vec();
            n.push(0);
            note.extend_from_slice(&(n.len() as u32).to_le_bytes());
            note.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            note.extend_from_slice(&ty.to_le_bytes());
            note.extend_from_slice(&n);
            while note.len() % 4 != 0 {
                note.push(0);
            }
            note.extend_from_slice(desc);
            while note.len() % 4 != 0 {
                note.push(0);
            }
        }
        let mut out = vec![0u8; 64 + 56];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        out[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        out[0x34..0x36].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        out[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        out[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let note_off = out.len();
        out.extend_from_slice(&note);
        // Program header: PT_NOTE.
        let ph = 64;
        out[ph..ph + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
        out[ph + 8..ph + 16].copy_from_slice(&(note_off as u64).to_le_bytes());
        out[ph + 32..ph + 40].copy_from_slice(&(note.len() as u64).to_le_bytes());
        out[ph + 40..ph + 48].copy_from_slice(&(note.len() as u64).to_le_bytes());
        out[ph + 48..ph + 56].copy_from_slice(&4u64.to_le_bytes());
        // Section data, then the name table, then the section headers.
        let mut shstr = vec![0u8];
        let mut heads = vec![(0u32, 0u32, 0u64, 0u64)];
        for (name, data) in sections {
            let off = out.len() as u64;
            out.extend_from_slice(data);
            heads.push((shstr.len() as u32, 1, off, data.len() as u64));
            shstr.extend_from_slice(name.as_bytes());
            shstr.push(0);
        }
        let name_at = shstr.len() as u32;
        shstr.extend_from_slice(b".shstrtab\0");
        heads.push((name_at, 3, out.len() as u64, shstr.len() as u64));
        out.extend_from_slice(&shstr);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let shoff = out.len() as u64;
        for (n, ty, off, size) in &heads {
            let mut sh = [0u8; 64];
            sh[0..4].copy_from_slice(&n.to_le_bytes());
            sh[4..8].copy_from_slice(&ty.to_le_bytes());
            sh[24..32].copy_from_slice(&off.to_le_bytes());
            sh[32..40].copy_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&sh);
        }
        out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        out[0x3c..0x3e].copy_from_slice(&(heads.len() as u16).to_le_bytes());
        out[0x3e..0x40].copy_from_slice(&((heads.len() - 1) as u16).to_le_bytes());
        out
    }

    /// A kernel ELF as Debian builds them: PVH note, `.BTF`, a version banner.
    pub fn vmlinux(release: &str) -> Vec<u8> {
        let banner = format!("Linux version {release} (test@kmatrix) #1 SMP\0");
        elf(
            &[("Xen", 6, b"linux\0"), ("Xen", XEN_ELFNOTE_PHYS32_ENTRY, &0x0100_0000u32.to_le_bytes())],
            &[(".text", b"\x90\x90\xc3"), (".rodata", banner.as_bytes()), (".BTF", b"\x9f\xeb\x01\x00fake-btf")],
        )
    }

    /// A bzImage whose payload is `payload` compressed with `kind`, followed by the 4-byte size
    /// trailer real images carry.
    pub fn bzimage(payload: &[u8], kind: Compression, release: &str) -> Vec<u8> {
        use std::io::Write;
        let mut c = match kind {
            Compression::Xz => super::super::deb::build::xz(payload),
            Compression::Zstd => zstd::encode_all(payload, 3).unwrap(),
            Compression::Lz4 => super::super::compress::lz4_legacy_frame(payload),
            // A format kmatrix does not read: bzip2's magic (the kernel's CONFIG_KERNEL_BZIP2).
            Compression::None => [&b"BZh91AY&SY"[..], payload].concat(),
            _ => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(payload).unwrap();
                e.finish().unwrap()
            }
        };
        c.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let setup_sects = 3usize;
        let mut b = vec![0u8; (setup_sects + 1) * 512];
        b[0x1f1] = setup_sects as u8;
        b[0x1fe..0x200].copy_from_slice(&0xAA55u16.to_le_bytes());
        b[0x202..0x206].copy_from_slice(&HDRS.to_le_bytes());
        b[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        let ver = format!("{release} (test@kmatrix) #1 SMP\0");
        let ver_at = 0x300;
        b[ver_at..ver_at + ver.len()].copy_from_slice(ver.as_bytes());
        b[0x20e..0x210].copy_from_slice(&((ver_at - 0x200) as u16).to_le_bytes());
        let payload_offset = 0x40u32;
        b.extend_from_slice(&[0u8; 0x40]);
        b[0x248..0x24c].copy_from_slice(&payload_offset.to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&(c.len() as u32).to_le_bytes());
        b.extend_from_slice(&c);
        b.extend_from_slice(&[0u8; 16]);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bzimage_round_trip() {
        let elf = fake::vmlinux("6.1.0-50-amd64");
        for kind in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let bz = fake::bzimage(&elf, kind, "6.1.0-50-amd64");
            let h = parse_bzimage(&bz).unwrap();
            assert_eq!(h.protocol, 0x20f);
            assert_eq!(h.compression, Some(kind));
            assert_eq!(h.release().as_deref(), Some("6.1.0-50-amd64"));
            assert_eq!(vmlinux_of(&bz, &h).unwrap(), elf);
        }
    }

    #[test]
    fn elf_notes_and_sections() {
        let elf = fake::vmlinux("7.3.4+deb13-amd64");
        let k = parse_elf(&elf).unwrap();
        assert_eq!(k.pvh_entry, Some(0x0100_0000));
        assert_eq!(&elf[k.btf.unwrap()], b"\x9f\xeb\x01\x00fake-btf");
        assert_eq!(banner_release(&elf).as_deref(), Some("7.3.4+deb13-amd64"));
        let plain = fake::elf(&[("GNU", 3, b"abcd")], &[]);
        assert_eq!(parse_elf(&plain).unwrap(), ElfKernel { pvh_entry: None, btf: None });
    }

    #[test]
    fn refuses_other_files() {
        assert!(parse_bzimage(b"hello").is_err());
        assert!(parse_elf(b"hello").is_err());
        let mut bz = fake::bzimage(&fake::vmlinux("1"), Compression::Xz, "1");
        // Payload length pointing past the end of the file.
        bz[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_bzimage(&bz).unwrap_err().to_string().contains("outside"));
        let mut elf = fake::vmlinux("1");
        elf[18] = 183; // aarch64
        assert!(parse_elf(&elf).unwrap_err().to_string().contains("not x86-64"));
    }

    #[test]
    fn banner_skips_format_strings() {
        let b = b"xx Linux version %s yy Linux version 6.12.107+deb13-amd64 (x) #1";
        assert_eq!(banner_release(b).as_deref(), Some("6.12.107+deb13-amd64"));
    }
}
