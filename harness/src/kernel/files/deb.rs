//! Reading `.deb` files without dpkg: the `ar` container, then the `data.tar.{xz,zst,gz}` member.
//!
//! Regular files (and, for callers that ask, symbolic links) are handed out with their path
//! normalised (`./boot/x` → `boot/x`) and refused when it would leave the archive (`..`,
//! absolute). Where each file goes, and what a link may point at, is the caller's business.

use std::io::{BufReader, Read};
use std::path::Path;

use super::compress::Compression;
use crate::kernel::error::{KernelError, Result};

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";

/// Call `f(path, size, reader)` for every regular file in the data member of the `.deb` at `deb`.
pub fn for_each_file(deb: &Path, f: impl FnMut(&str, u64, &mut dyn Read) -> Result<()>) -> Result<()> {
    let file = std::fs::File::open(deb).map_err(KernelError::io(deb))?;
    read_files(BufReader::with_capacity(1 << 20, file), &deb.display().to_string(), f)
}

/// [`for_each_file`] on a `.deb` read from `r`; `what` names it in errors.
pub fn read_files(r: impl Read, what: &str, mut f: impl FnMut(&str, u64, &mut dyn Read) -> Result<()>) -> Result<()> {
    read_entries(r, what, |path, entry| match entry {
        Entry::File { size, data } => f(path, size, data),
        Entry::Symlink { .. } => Ok(()),
    })
}

/// One member of a package's data archive, as [`for_each_entry`] hands it out.
pub enum Entry<'a> {
    /// A regular file: its size as the tar header claims, and its bytes.
    File {
        /// The size the tar header claims.
        size: u64,
        /// The file's bytes, read from the archive stream.
        data: &'a mut dyn Read,
    },
    /// A symbolic link and its target, as written in the archive (may be absolute or lead out of
    /// the archive: the caller decides).
    Symlink {
        /// The link's target, as written.
        target: String,
    },
}

/// Call `f(path, entry)` for every regular file and symbolic link in the data member of the
/// `.deb` at `deb` (directories are implied by the paths).
pub fn for_each_entry(deb: &Path, f: impl FnMut(&str, Entry<'_>) -> Result<()>) -> Result<()> {
    let file = std::fs::File::open(deb).map_err(KernelError::io(deb))?;
    read_entries(BufReader::with_capacity(1 << 20, file), &deb.display().to_string(), f)
}

fn read_entries(mut r: impl Read, what: &str, mut f: impl FnMut(&str, Entry<'_>) -> Result<()>) -> Result<()> {
    let (name, size) = find_member(&mut r, what, "data.tar")?;
    let kind = Compression::from_name(&name);
    let bad = |detail: String| KernelError::Deb { what: what.to_string(), detail };
    let data = kind.reader(r.take(size)).map_err(|e| bad(format!("{name}: {e}")))?;
    let mut archive = tar::Archive::new(data);
    let entries = archive.entries().map_err(|e| bad(format!("{name}: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("{name}: {e}")))?;
        let kind = entry.header().entry_type();
        if !kind.is_file() && !kind.is_symlink() {
            continue;
        }
        let raw = entry.path().map_err(|e| bad(format!("{name}: {e}")))?.to_string_lossy().into_owned();
        let path = normalise(&raw).ok_or_else(|| bad(format!("unsafe path {raw:?} in {name}")))?;
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|e| bad(format!("{name}: {e}")))?
                .ok_or_else(|| bad(format!("symbolic link {path} without a target in {name}")))?
                .to_string_lossy()
                .into_owned();
            f(&path, Entry::Symlink { target })?;
            continue;
        }
        let len = entry.header().size().map_err(|e| bad(format!("{name}: {e}")))?;
        f(&path, Entry::File { size: len, data: &mut entry })?;
    }
    Ok(())
}

/// Largest file kmatrix takes out of a package: far above any real one (Debian's largest
/// modules and `vmlinuz` are tens of MB), so a hostile archive cannot fill memory.
pub const MAX_FILE: u64 = 512 << 20;

/// Read one file handed out by [`for_each_file`]. `size` is what its tar header claims: memory
/// is reserved for at most 64 MB of it up front (a header may claim 8 GB over a few bytes), and
/// more than `limit` bytes is an error.
pub fn read_file(r: &mut dyn Read, size: u64, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(size.min(limit).min(64 << 20) as usize);
    r.take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(data)
}

/// `./a/b` → `a/b`; `None` for absolute paths and any `..`.
fn normalise(p: &str) -> Option<String> {
    if p.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// Advance `r` to the data of the first member whose name starts with `prefix`; returns its name
/// and size.
fn find_member(r: &mut impl Read, what: &str, prefix: &str) -> Result<(String, u64)> {
    let bad = |detail: String| KernelError::Deb { what: what.to_string(), detail };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|e| bad(format!("no ar header: {e}")))?;
    if &magic != AR_MAGIC {
        return Err(bad("not an ar archive".into()));
    }
    loop {
        let mut h = [0u8; 60];
        match r.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(bad(format!("no {prefix}.* member")));
            }
            Err(e) => return Err(bad(e.to_string())),
        }
        if &h[58..60] != b"`\n" {
            return Err(bad("corrupt ar member header".into()));
        }
        let name = String::from_utf8_lossy(&h[0..16]).trim_end().trim_end_matches('/').to_string();
        let size: u64 = String::from_utf8_lossy(&h[48..58])
            .trim()
            .parse()
            .map_err(|_| bad(format!("bad size in ar member {name:?}")))?;
        if name.starts_with(prefix) {
            return Ok((name, size));
        }
        // Members are padded to an even length.
        let skip = size + (size & 1);
        let n = std::io::copy(&mut r.take(skip), &mut std::io::sink()).map_err(|e| bad(e.to_string()))?;
        if n != skip {
            return Err(bad(format!("truncated ar member {name:?}")));
        }
    }
}

/// Build a `.deb` in memory: for tests of this module and of the whole provider.
#[cfg(test)]
pub mod build {
    use std::io::Write;

    /// `files` are (path, mode, bytes), `path` as in the archive (e.g. `./boot/vmlinuz-1`).
    pub fn deb(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
        deb_of_tar(&tar_of(files))
    }

    /// A `.deb` whose data member is the tar `data`.
    pub fn deb_of_tar(data: &[u8]) -> Vec<u8> {
        let control = tar_of(&[("./control", 0o644, b"Package: test\nVersion: 1\nArchitecture: amd64\n")]);
        let mut out = b"!<arch>\n".to_vec();
        member(&mut out, "debian-binary", b"2.0\n");
        member(&mut out, "control.tar.xz", &xz(&control));
        member(&mut out, "data.tar.xz", &xz(data));
        out
    }

    /// `data` compressed with xz.
    pub fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 0);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A tar of regular files, (path, mode, bytes) each.
    pub fn tar_of(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, mode, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn member(out: &mut Vec<u8>, name: &str, data: &[u8]) {
        let h = format!("{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", name, 0, 0, 0, "100644", data.len());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(deb: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.deb");
        std::fs::write(&p, deb).unwrap();
        let mut out = Vec::new();
        for_each_file(&p, |path, _, r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            out.push((path.to_string(), v));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn reads_files_of_data_tar() {
        let deb = build::deb(&[("./boot/vmlinuz-1", 0o644, b"k"), ("./lib/modules/1/a.ko", 0o644, b"odd")]);
        let files = list(&deb).unwrap();
        assert_eq!(
            files,
            vec![("boot/vmlinuz-1".into(), b"k".to_vec()), ("lib/modules/1/a.ko".into(), b"odd".to_vec())]
        );
    }

    #[test]
    fn refuses_non_ar_and_truncated() {
        let e = list(b"PK\x03\x04 not a deb").unwrap_err();
        assert!(e.to_string().contains("not an ar archive"), "{e}");
        let deb = build::deb(&[("./boot/vmlinuz-1", 0o644, &[1u8; 5000])]);
        let e = list(&deb[..deb.len() - 40]).unwrap_err();
        assert!(matches!(e, KernelError::Deb { .. }), "{e}");
    }

    #[test]
    fn claimed_sizes_do_not_reserve_memory() {
        // A header may claim any size: what is reserved follows the bytes that are there.
        let mut r: &[u8] = b"four";
        let data = read_file(&mut r, 8 << 30, MAX_FILE).unwrap();
        assert_eq!(data, b"four");
        assert!(data.capacity() <= 64 << 20, "{}", data.capacity());
        let mut r: &[u8] = &[0u8; 100];
        let e = read_file(&mut r, 100, 99).unwrap_err();
        assert_eq!(e.to_string(), "larger than 99 bytes");
    }

    #[test]
    fn paths() {
        assert_eq!(normalise("./boot/x").as_deref(), Some("boot/x"));
        assert_eq!(normalise("/etc/passwd"), None);
        assert_eq!(normalise("./a/../../x"), None);
    }
}
