//! The compression formats kernel packages use: xz, zstd and gzip, for `data.tar.*`, `.ko.*`
//! and the bzImage payload; for the payload also LZ4's legacy frame (Ubuntu 5.4) and lzma.
//!
//! Decoding is streaming and stops at the end of the first stream: a bzImage payload carries the
//! uncompressed size after its xz or zstd stream, which one-shot decoders refuse.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

/// How a file is compressed, known from its name or its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Not compressed.
    None,
    /// `.xz`.
    Xz,
    /// `.zst`.
    Zstd,
    /// `.gz`.
    Gzip,
    /// LZ4's legacy frame (`lz4 -l`, what the kernel's `unlz4` reads): a bzImage payload only.
    Lz4,
    /// lzma "alone" (`.lzma`): a bzImage payload only.
    Lzma,
}

impl Compression {
    /// From a file name's last extension (`.xz`, `.zst`, `.gz`); anything else is `None`.
    pub fn from_name(name: &str) -> Compression {
        if name.ends_with(".xz") {
            Compression::Xz
        } else if name.ends_with(".zst") {
            Compression::Zstd
        } else if name.ends_with(".gz") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// From the first bytes of the data.
    pub fn from_magic(b: &[u8]) -> Option<Compression> {
        if b.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Compression::Xz)
        } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if b.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if b.starts_with(&LZ4_LEGACY_MAGIC) {
            Some(Compression::Lz4)
        } else if b.starts_with(&[0x5d, 0, 0]) {
            // lzma-alone: properties byte 0x5d (lc=3 lp=0 pb=2), then the dictionary size's low
            // bytes, as the kernel's `lzma -9` writes it.
            Some(Compression::Lzma)
        } else {
            None
        }
    }

    /// The extension that names this compression (`""` for none).
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
            Compression::Lz4 => ".lz4",
            Compression::Lzma => ".lzma",
        }
    }

    /// A reader that decompresses `r` (whole-stream formats: tar members and modules).
    pub fn reader<'a>(self, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Lzma => {
                Box::new(xz2::read::XzDecoder::new_stream(r, xz2::stream::Stream::new_lzma_decoder(u64::MAX)?))
            }
            Compression::Lz4 => {
                return Err(io::Error::other(
                    "LZ4 legacy frames are read whole (decompress_first_stream), not streamed",
                ))
            }
        })
    }
}

/// Decompress the first stream of `data`, ignoring whatever follows it (the size trailer of a
/// bzImage payload). `limit` bounds the output.
pub fn decompress_first_stream(kind: Compression, data: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match kind {
        Compression::None => out.extend_from_slice(data),
        Compression::Xz => {
            let mut s = xz2::stream::Stream::new_stream_decoder(u64::MAX, 0).map_err(io::Error::other)?;
            let mut input = data;
            out.reserve(data.len() * 4);
            loop {
                if out.len() == out.capacity() {
                    if out.len() >= limit {
                        return Err(io::Error::other(format!("decompressed size passes {limit} bytes")));
                    }
                    out.reserve(out.len().max(1 << 20));
                }
                let before = s.total_in();
                let status = s.process_vec(input, &mut out, xz2::stream::Action::Run).map_err(io::Error::other)?;
                let used = (s.total_in() - before) as usize;
                input = &input[used..];
                if status == xz2::stream::Status::StreamEnd {
                    break;
                }
                if input.is_empty() && used == 0 && out.len() < out.capacity() {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "xz stream is truncated"));
                }
            }
        }
        Compression::Zstd => {
            let d = zstd::stream::read::Decoder::with_buffer(data)?.single_frame();
            d.take(limit as u64 + 1).read_to_end(&mut out)?;
        }
        Compression::Gzip => {
            // GzDecoder (not Multi) stops after the first member.
            flate2::read::GzDecoder::new(data).take(limit as u64 + 1).read_to_end(&mut out)?;
        }
        Compression::Lzma => {
            let s = xz2::stream::Stream::new_lzma_decoder(u64::MAX).map_err(io::Error::other)?;
            xz2::read::XzDecoder::new_stream(data, s).take(limit as u64 + 1).read_to_end(&mut out)?;
        }
        Compression::Lz4 => out = lz4_legacy(data, limit)?,
    }
    if out.len() > limit {
        return Err(io::Error::other(format!("decompressed size passes {limit} bytes")));
    }
    Ok(out)
}

/// The LZ4 legacy frame's magic number, little-endian (0x184c2102).
const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];

/// Largest block of an LZ4 legacy frame, uncompressed (8 MiB).
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// Decode an LZ4 legacy frame as the kernel's `unlz4` does: the magic, then blocks of a
/// little-endian u32 compressed size and the block, each at most 8 MiB uncompressed. A repeated
/// magic starts another frame; a size that runs past the data (the bzImage's uncompressed-size
/// trailer) ends it.
fn lz4_legacy(data: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut rest = data.strip_prefix(&LZ4_LEGACY_MAGIC[..]).ok_or_else(|| bad("no LZ4 legacy magic".into()))?;
    let mut out = Vec::new();
    let mut blocks = 0usize;
    while let Some((size, after)) = rest.split_first_chunk::<4>() {
        if *size == LZ4_LEGACY_MAGIC {
            rest = after;
            continue;
        }
        let n = u32::from_le_bytes(*size) as usize;
        if n == 0 || n > after.len() {
            break;
        }
        let block = lz4_flex::block::decompress(&after[..n], LZ4_LEGACY_BLOCK)
            .map_err(|e| bad(format!("LZ4 block {blocks} at byte {}: {e}", data.len() - rest.len())))?;
        out.extend_from_slice(&block);
        if out.len() > limit {
            return Err(io::Error::other(format!("decompressed size passes {limit} bytes")));
        }
        blocks += 1;
        rest = &after[n..];
    }
    if blocks == 0 {
        return Err(bad("an LZ4 legacy frame without a block".into()));
    }
    Ok(out)
}

/// `data` as an LZ4 legacy frame of 8 MiB blocks, as `lz4 -l` writes it (for tests).
#[cfg(test)]
pub fn lz4_legacy_frame(data: &[u8]) -> Vec<u8> {
    let mut out = LZ4_LEGACY_MAGIC.to_vec();
    for chunk in data.chunks(LZ4_LEGACY_BLOCK) {
        let block = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

/// Largest module kmatrix decompresses: far above any real one (tens of MB), so a compressed
/// module that expands without end is an error, not an allocation.
pub const MAX_MODULE: usize = 256 << 20;

/// Decompress a whole buffer (a module); more than `limit` bytes of output is an error.
pub fn decompress_all(kind: Compression, data: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    if kind == Compression::None {
        return Ok(data.to_vec());
    }
    let mut out = Vec::with_capacity(data.len().saturating_mul(3).min(limit));
    kind.reader(data)?.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(io::Error::other(format!("decompressed size passes {limit} bytes")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn first_stream_ignores_trailer() {
        let payload: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let trailer = (payload.len() as u32).to_le_bytes();
        for kind in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let mut c = match kind {
                Compression::Xz => xz(&payload),
                Compression::Zstd => zstd::encode_all(&payload[..], 3).unwrap(),
                _ => {
                    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    e.write_all(&payload).unwrap();
                    e.finish().unwrap()
                }
            };
            assert_eq!(Compression::from_magic(&c), Some(kind));
            c.extend_from_slice(&trailer);
            let out = decompress_first_stream(kind, &c, 10 << 20).unwrap();
            assert_eq!(out, payload, "{kind:?}");
            // Over the limit is an error, not an allocation.
            assert!(decompress_first_stream(kind, &c, 1000).is_err(), "{kind:?}");
        }
    }

    #[test]
    fn lz4_legacy_blocks_frames_and_the_size_trailer() {
        // Three blocks (two full 8 MiB ones), then the bzImage's uncompressed-size trailer.
        let payload: Vec<u8> = (0..(17u32 << 20) / 4).flat_map(|i| (i % 1009).to_le_bytes()).collect();
        let mut c = lz4_legacy_frame(&payload);
        assert_eq!(Compression::from_magic(&c), Some(Compression::Lz4));
        c.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        assert_eq!(decompress_first_stream(Compression::Lz4, &c, 32 << 20).unwrap(), payload);
        assert!(decompress_first_stream(Compression::Lz4, &c, 16 << 20).is_err(), "over the limit");
        // A second frame's magic between blocks is skipped, as the kernel's unlz4 does.
        let mut two = lz4_legacy_frame(b"first ");
        two.extend_from_slice(&lz4_legacy_frame(b"second"));
        assert_eq!(decompress_first_stream(Compression::Lz4, &two, 1 << 20).unwrap(), b"first second");
        // A corrupt block is an error naming it, not garbage.
        let mut bad = lz4_legacy_frame(&payload[..1 << 20]);
        let n = bad.len();
        bad[n - 40..].fill(0xff);
        let e = decompress_first_stream(Compression::Lz4, &bad, 32 << 20).unwrap_err();
        assert!(e.to_string().starts_with("LZ4 block 0 at byte 4: "), "{e}");
        assert!(decompress_first_stream(Compression::Lz4, &LZ4_LEGACY_MAGIC, 1 << 20).is_err(), "no block");
    }

    #[test]
    fn lzma_alone_payloads() {
        let payload = b"lzma payload ".repeat(1000);
        let mut e = xz2::write::XzEncoder::new_stream(
            Vec::new(),
            xz2::stream::Stream::new_lzma_encoder(&xz2::stream::LzmaOptions::new_preset(6).unwrap()).unwrap(),
        );
        e.write_all(&payload).unwrap();
        let c = e.finish().unwrap();
        assert_eq!(Compression::from_magic(&c), Some(Compression::Lzma));
        assert_eq!(decompress_first_stream(Compression::Lzma, &c, 1 << 20).unwrap(), payload);
    }

    #[test]
    fn a_module_that_expands_past_the_limit_is_an_error() {
        let c = xz(&[0u8; 1 << 20]);
        assert_eq!(decompress_all(Compression::Xz, &c, 1 << 20).unwrap().len(), 1 << 20);
        let e = decompress_all(Compression::Xz, &c, (1 << 20) - 1).unwrap_err();
        assert_eq!(e.to_string(), format!("decompressed size passes {} bytes", (1 << 20) - 1));
    }

    #[test]
    fn truncated_xz_is_an_error() {
        let c = xz(&[7u8; 100_000]);
        assert!(decompress_first_stream(Compression::Xz, &c[..c.len() / 2], 1 << 20).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(Compression::from_name("9p.ko.xz"), Compression::Xz);
        assert_eq!(Compression::from_name("9p.ko.zst"), Compression::Zstd);
        assert_eq!(Compression::from_name("9p.ko.gz"), Compression::Gzip);
        assert_eq!(Compression::from_name("9p.ko"), Compression::None);
    }
}
