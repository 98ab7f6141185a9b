//! Looking inside arm64 kernel images: what Debian packages as `vmlinuz` for arm64 (a plain
//! `Image`, a gzip of one, or an EFI zboot PE whose payload is a compressed `Image`), unwrapped
//! to the plain `Image` QEMU's `-kernel` boots on `-M virt`, and the kernel's BTF found inside it.
//!
//! An arm64 `Image` is a flat binary, not an ELF: it has no section table, so the `.BTF` blob is
//! found by its header (magic, version, a 24-byte header whose type and string sections tile the
//! blob exactly). This module reads bytes only; the provider decides what to store.

use std::io;
use std::ops::Range;

use super::compress::{decompress_first_stream, Compression};

/// `ARM\x64` at offset 0x38 of every arm64 Image (Documentation/arch/arm64/booting.rst).
const IMAGE_MAGIC: &[u8; 4] = b"ARM\x64";
const IMAGE_MAGIC_OFFSET: usize = 0x38;
/// Far above any real Image (Debian's are ~40 MB), to bound a hostile payload.
const MAX_IMAGE: usize = 512 << 20;

/// Why a file is not an arm64 kernel kmatrix can boot.
#[derive(Debug, thiserror::Error)]
pub enum Arm64Error {
    /// Neither a plain Image, a gzip of one, nor an EFI zboot image.
    #[error("not an arm64 Image (no ARM\\x64 magic at 0x38), a gzip of one, nor an EFI zboot image")]
    NotImage,
    /// The zboot header's payload lies past the end of the file.
    #[error("EFI zboot payload {:#x}..{:#x} is outside the {len} byte file", payload.start, payload.end)]
    ZbootOutside {
        /// Where the header says the payload is.
        payload: Range<usize>,
        /// The file's length.
        len: usize,
    },
    /// The zboot payload's compression (as the header names it) is one kmatrix does not read.
    #[error("EFI zboot payload is compressed with {0:?}, which kmatrix does not read (only gzip, xz, zstd)")]
    ZbootCompression(String),
    /// Decompressing the Image failed.
    #[error("decompress the {kind:?} kernel: {cause}")]
    Decompress {
        /// The compression of the wrapped Image.
        kind: Compression,
        /// The decoder's error.
        cause: io::Error,
    },
}

/// How the packaged file wrapped the Image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// An `Image` as is.
    Plain,
    /// A gzip of an `Image` (`vmlinuz` of older Debian arm64 packages).
    Gzip,
    /// An EFI zboot image whose payload is the `Image`, compressed so.
    Zboot(Compression),
}

fn is_image(b: &[u8]) -> bool {
    b.get(IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4) == Some(IMAGE_MAGIC)
}

fn u32_at(b: &[u8], off: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?) as usize)
}

fn inflate(kind: Compression, data: &[u8]) -> Result<Vec<u8>, Arm64Error> {
    let out = decompress_first_stream(kind, data, MAX_IMAGE).map_err(|cause| Arm64Error::Decompress { kind, cause })?;
    if is_image(&out) {
        Ok(out)
    } else {
        Err(Arm64Error::NotImage)
    }
}

/// The plain `Image` inside a packaged arm64 `vmlinuz`, and how it was wrapped.
pub fn unwrap_image(bytes: &[u8]) -> Result<(Vec<u8>, Wrapping), Arm64Error> {
    // EFI zboot (drivers/firmware/efi/libstub/zboot-header.S): "MZ", then "zimg" at 4, the
    // payload's offset and size at 8 and 12, the compression's name at 24.
    if bytes.starts_with(b"MZ") && bytes.get(4..8) == Some(b"zimg") {
        let (Some(off), Some(len)) = (u32_at(bytes, 8), u32_at(bytes, 12)) else { return Err(Arm64Error::NotImage) };
        let payload = off..off.saturating_add(len);
        let data = bytes
            .get(payload.clone())
            .ok_or(Arm64Error::ZbootOutside { payload: payload.clone(), len: bytes.len() })?;
        let name = bytes.get(24..56).unwrap_or(&[]);
        let name = String::from_utf8_lossy(name.split(|&c| c == 0).next().unwrap_or(&[])).into_owned();
        let kind = match name.as_str() {
            "gzip" => Compression::Gzip,
            "xzkern" | "xz" => Compression::Xz,
            "zstd22" | "zstd" => Compression::Zstd,
            _ => return Err(Arm64Error::ZbootCompression(name)),
        };
        return Ok((inflate(kind, data)?, Wrapping::Zboot(kind)));
    }
    if is_image(bytes) {
        return Ok((bytes.to_vec(), Wrapping::Plain));
    }
    if Compression::from_magic(bytes) == Some(Compression::Gzip) {
        return Ok((inflate(Compression::Gzip, bytes)?, Wrapping::Gzip));
    }
    Err(Arm64Error::NotImage)
}

/// The vmlinux BTF blob inside a flat Image: the largest well-formed BTF header whose type and
/// string sections end inside the file, with the string section starting with the empty string.
pub fn find_btf(image: &[u8]) -> Option<Range<usize>> {
    // magic 0xeB9F (little endian), version 1, flags 0, hdr_len 24.
    const HEAD: [u8; 8] = [0x9f, 0xeb, 0x01, 0x00, 0x18, 0x00, 0x00, 0x00];
    let mut best: Option<Range<usize>> = None;
    let mut at = 0;
    while let Some(pos) = image.get(at..)?.windows(HEAD.len()).position(|w| w == HEAD) {
        let start = at + pos;
        at = start + 1;
        let f = |i: usize| u32_at(image, start + 8 + 4 * i);
        let (Some(type_off), Some(type_len), Some(str_off), Some(str_len)) = (f(0), f(1), f(2), f(3)) else {
            continue;
        };
        let end = start.checked_add(24)?.checked_add(str_off)?.checked_add(str_len)?;
        let tiles = type_off == 0 && str_off == type_len && str_len > 0;
        let fits = tiles && end <= image.len() && image.get(start + 24 + str_off) == Some(&0);
        if fits && best.as_ref().is_none_or(|b| b.len() < end - start) {
            best = Some(start..end);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn image() -> Vec<u8> {
        let mut v = vec![0u8; 0x200];
        v[IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4].copy_from_slice(IMAGE_MAGIC);
        // A BTF blob: header, 4 bytes of "types", strings "\0int\0".
        let mut btf = vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0];
        for x in [0u32, 4, 4, 5] {
            btf.extend_from_slice(&x.to_le_bytes());
        }
        btf.extend_from_slice(&[1, 2, 3, 4]);
        btf.extend_from_slice(b"\0int\0");
        v.extend_from_slice(&btf);
        v.extend_from_slice(&[0xaa; 16]);
        v
    }

    fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn unwraps_plain_gzip_and_zboot() {
        let img = image();
        assert_eq!(unwrap_image(&img).unwrap(), (img.clone(), Wrapping::Plain));
        assert_eq!(unwrap_image(&gz(&img)).unwrap(), (img.clone(), Wrapping::Gzip));
        let payload = gz(&img);
        let mut z = vec![0u8; 0x100];
        z[..2].copy_from_slice(b"MZ");
        z[4..8].copy_from_slice(b"zimg");
        z[8..12].copy_from_slice(&0x100u32.to_le_bytes());
        z[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        z[24..28].copy_from_slice(b"gzip");
        z.extend_from_slice(&payload);
        assert_eq!(unwrap_image(&z).unwrap(), (img.clone(), Wrapping::Zboot(Compression::Gzip)));
        // The failing cases: a zboot that lies about its payload, an unknown codec, random bytes.
        let mut bad = z.clone();
        bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(unwrap_image(&bad), Err(Arm64Error::ZbootOutside { .. })));
        let mut lz = z.clone();
        lz[24..28].copy_from_slice(b"lz4\0");
        assert!(unwrap_image(&lz).unwrap_err().to_string().contains("\"lz4\""));
        assert!(matches!(unwrap_image(&[0u8; 64]), Err(Arm64Error::NotImage)));
        assert!(matches!(unwrap_image(&gz(b"not a kernel")), Err(Arm64Error::NotImage)));
    }

    #[test]
    fn finds_btf_by_its_header() {
        let img = image();
        let r = find_btf(&img).unwrap();
        assert_eq!((r.start, r.len()), (0x200, 24 + 4 + 5));
        // A header whose sections run past the end is not BTF.
        let mut cut = img.clone();
        cut.truncate(0x200 + 30);
        assert_eq!(find_btf(&cut), None);
    }
}
