//! The compression formats kernel packages use: xz, zstd and gzip, for `data.tar.*`, `.ko.*`
//! and the bzImage payload.
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
        }
    }

    /// A reader that decompresses `r` (whole-stream formats: tar members and modules).
    pub fn reader<'a>(self, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
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
    }
    if out.len() > limit {
        return Err(io::Error::other(format!("decompressed size passes {limit} bytes")));
    }
    Ok(out)
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
