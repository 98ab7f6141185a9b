//! Looking inside kernel images: the bzImage setup header, its compressed payload (the ELF
//! `vmlinux`), the PVH entry note that lets QEMU boot that ELF directly, and its `.BTF` section.
//!
//! Structures come from linux-loader's generated bindings (`bootparam::setup_header`,
//! `elf::Elf64_*`) so field offsets match the kernel's boot protocol. This module reads bytes; it
//! never writes files and never boots anything.

use std::ops::Range;

use linux_loader::elf::{Elf64_Ehdr, Elf64_Nhdr, Elf64_Phdr, PT_NOTE};
use linux_loader::loader::bootparam::setup_header;

use super::compress::{decompress_first_stream, Compression};

/// Offset of the setup header in a bzImage (boot protocol).
const SETUP_HEADER_OFFSET: usize = 0x1f1;
/// "HdrS", the setup header signature at 0x202.
const HDRS: u32 = 0x5372_6448;
/// The note type of the 32-bit PVH entry point (Xen's `XEN_ELFNOTE_PHYS32_ENTRY`).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const EM_X86_64: u16 = 62;
/// Far above any real vmlinux (Debian's are ~65 MB), to bound a hostile payload.
const MAX_VMLINUX: usize = 1 << 30;

/// Plain-old-data structs from linux-loader that may be read from any byte pattern.
///
/// # Safety
/// Implementors must be `repr(C)` (or packed) structs of integers only, with no padding
/// invariants, so every bit pattern is a valid value.
unsafe trait Pod: Copy {}
// SAFETY: bindgen structs of integer fields only.
unsafe impl Pod for setup_header {}
// SAFETY: as above.
unsafe impl Pod for Elf64_Ehdr {}
// SAFETY: as above.
unsafe impl Pod for Elf64_Phdr {}
// SAFETY: as above.
unsafe impl Pod for Elf64_Nhdr {}

fn read_pod<T: Pod>(bytes: &[u8], off: usize) -> Option<T> {
    let end = off.checked_add(std::mem::size_of::<T>())?;
    let src = bytes.get(off..end)?;
    // SAFETY: `src` has exactly size_of::<T>() bytes, `read_unaligned` has no alignment
    // requirement, and `T: Pod` accepts any bit pattern.
    Some(unsafe { std::ptr::read_unaligned(src.as_ptr().cast::<T>()) })
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// What a bzImage says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BzImage {
    /// Boot protocol version (e.g. 0x20f).
    pub protocol: u16,
    /// The `kernel_version` string (`6.1.0-50-amd64 (debian-kernel@...) #1 SMP ...`).
    pub version: Option<String>,
    pub compression: Option<Compression>,
    pub payload: Range<usize>,
}

impl BzImage {
    /// `uname -r`: the first word of the version string.
    pub fn release(&self) -> Option<String> {
        self.version.as_deref().and_then(|v| v.split_whitespace().next()).map(str::to_string)
    }
}

/// Parse a bzImage's setup header; `Err` says why the bytes are not one.
pub fn parse_bzimage(b: &[u8]) -> Result<BzImage, String> {
    let h: setup_header = read_pod(b, SETUP_HEADER_OFFSET).ok_or("too short for a setup header")?;
    let (magic, flag, version) = (h.header, h.boot_flag, h.version);
    if magic != HDRS || flag != 0xAA55 {
        return Err("no bzImage setup header (HdrS)".into());
    }
    if version < 0x208 {
        return Err(format!("boot protocol {version:#x} is older than 2.08 (no payload fields)"));
    }
    let sects = if h.setup_sects == 0 { 4 } else { h.setup_sects as usize };
    let (po, pl) = (h.payload_offset as usize, h.payload_length as usize);
    let start = (sects + 1) * 512 + po;
    let payload = start..start.checked_add(pl).ok_or("payload length overflows")?;
    if payload.end > b.len() || pl == 0 {
        return Err(format!("payload {:#x}..{:#x} is outside the {} byte file", payload.start, payload.end, b.len()));
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
pub fn vmlinux_of(b: &[u8], bz: &BzImage) -> Result<Vec<u8>, String> {
    let kind = bz
        .compression
        .ok_or_else(|| "payload is compressed with a format kmatrix does not read (only xz, zstd, gzip)".to_string())?;
    let out = decompress_first_stream(kind, &b[bz.payload.clone()], MAX_VMLINUX)
        .map_err(|e| format!("decompress the {kind:?} payload: {e}"))?;
    if !out.starts_with(b"\x7fELF") {
        return Err(format!("the {kind:?} payload is not an ELF file"));
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

/// A section of a little-endian ELF64 file, by name.
pub fn elf_section<'a>(b: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let r = elf_section_range(b, name)?;
    b.get(r)
}

fn elf_section_range(b: &[u8], name: &str) -> Option<Range<usize>> {
    let shoff = usize::try_from(u64_at(b, 0x28)?).ok()?;
    let shentsize = u16_at(b, 0x3a)? as usize;
    let shnum = u16_at(b, 0x3c)? as usize;
    let shstrndx = u16_at(b, 0x3e)? as usize;
    if shentsize < 64 || shoff == 0 {
        return None;
    }
    let sh = |i: usize| -> Option<(u32, u32, usize, usize)> {
        let o = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let off = usize::try_from(u64_at(b, o + 24)?).ok()?;
        let size = usize::try_from(u64_at(b, o + 32)?).ok()?;
        Some((u32_at(b, o)?, u32_at(b, o + 4)?, off, size))
    };
    let (_, _, stroff, strsize) = sh(shstrndx)?;
    let strtab = b.get(stroff..stroff.checked_add(strsize)?)?;
    for i in 0..shnum {
        let (n, ty, off, size) = sh(i)?;
        let s = strtab.get(n as usize..)?;
        let end = s.iter().position(|&c| c == 0)?;
        // SHT_NOBITS (8) has no bytes in the file.
        if &s[..end] == name.as_bytes() && ty != 8 {
            let r = off..off.checked_add(size)?;
            return (r.end <= b.len()).then_some(r);
        }
    }
    None
}

/// Parse an x86-64 ELF kernel; `Err` says why the bytes are not one.
pub fn parse_elf(b: &[u8]) -> Result<ElfKernel, String> {
    let eh: Elf64_Ehdr = read_pod(b, 0).ok_or("too short for an ELF header")?;
    if eh.e_ident[..4] != *b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if eh.e_ident[4] != 2 || eh.e_ident[5] != 1 {
        return Err("not a little-endian 64-bit ELF file".into());
    }
    if eh.e_machine != EM_X86_64 {
        return Err(format!("ELF machine {} is not x86-64", eh.e_machine));
    }
    let mut pvh_entry = None;
    let phsize = std::mem::size_of::<Elf64_Phdr>();
    for i in 0..eh.e_phnum as usize {
        let Some(off) = (eh.e_phoff as usize).checked_add(i * phsize) else { break };
        let Some(ph) = read_pod::<Elf64_Phdr>(b, off) else { break };
        if ph.p_type != PT_NOTE {
            continue;
        }
        let start = ph.p_offset as usize;
        let Some(end) = start.checked_add(ph.p_filesz as usize).filter(|&e| e <= b.len()) else { continue };
        // Notes are 4-byte aligned unless the segment says 8.
        let align = if ph.p_align == 8 { 8 } else { 4 };
        let up = |x: usize| x.div_ceil(align) * align;
        let mut at = start;
        while at + 12 <= end {
            let Some(n) = read_pod::<Elf64_Nhdr>(b, at) else { break };
            let name_at = at + 12;
            let desc_at = name_at + up(n.n_namesz as usize);
            let next = desc_at + up(n.n_descsz as usize);
            if next > end {
                break;
            }
            let name = &b[name_at..name_at + n.n_namesz as usize];
            if name.strip_suffix(b"\0").unwrap_or(name) == b"Xen" && n.n_type == XEN_ELFNOTE_PHYS32_ENTRY {
                pvh_entry = match n.n_descsz {
                    4 => u32_at(b, desc_at).map(u64::from),
                    8 => u64_at(b, desc_at),
                    _ => None,
                };
            }
            at = next;
        }
    }
    Ok(ElfKernel { pvh_entry, btf: elf_section_range(b, ".BTF") })
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
            Compression::Xz => crate::kernel::deb::build::xz(payload),
            Compression::Zstd => zstd::encode_all(payload, 3).unwrap(),
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
        assert!(parse_bzimage(&bz).unwrap_err().contains("outside"));
        let mut elf = fake::vmlinux("1");
        elf[18] = 183; // aarch64
        assert!(parse_elf(&elf).unwrap_err().contains("not x86-64"));
    }

    #[test]
    fn banner_skips_format_strings() {
        let b = b"xx Linux version %s yy Linux version 6.12.107+deb13-amd64 (x) #1";
        assert_eq!(banner_release(b).as_deref(), Some("6.12.107+deb13-amd64"));
    }
}
