//! A writer for the cpio "newc" format, the format the kernel unpacks an initramfs from.
//!
//! Only what an initramfs needs: directories, regular files, symlinks and device nodes, written
//! in the order given (parents before children is the caller's job; [`CpioWriter::file`] adds
//! missing parent directories itself). Not a general archiver: no hard links, no reading.

use std::collections::BTreeSet;
use std::io::{self, Write};

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";

/// Kinds of entry, with the mode bits the kernel expects in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (its data is the target).
    Symlink,
    /// A character device node.
    CharDev {
        /// The device's major number.
        major: u32,
        /// The device's minor number.
        minor: u32,
    },
}

/// Streams newc entries into any writer.
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

impl<W: Write> CpioWriter<W> {
    /// A writer over `out`; nothing is written until the first entry.
    pub fn new(out: W) -> Self {
        CpioWriter { out, written: 0, next_ino: 1, dirs: BTreeSet::new() }
    }

    /// A directory with `mode` permission bits (e.g. 0o755), and its missing parents.
    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        let path = normalize(path)?;
        if path.is_empty() || self.dirs.contains(&path) {
            return Ok(());
        }
        self.parents(&path)?;
        self.dirs.insert(path.clone());
        self.entry(&path, Kind::Dir, mode, &[])
    }

    /// A regular file, creating its missing parent directories (0755).
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        let path = normalize(path)?;
        self.parents(&path)?;
        self.entry(&path, Kind::File, mode, data)
    }

    /// A symbolic link at `path` to `target`, creating its missing parent directories.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let path = normalize(path)?;
        self.parents(&path)?;
        self.entry(&path, Kind::Symlink, 0o777, target.as_bytes())
    }

    /// A character device node (`/dev/console` before devtmpfs), creating its missing parents.
    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        let path = normalize(path)?;
        self.parents(&path)?;
        self.entry(&path, Kind::CharDev { major, minor }, mode, &[])
    }

    /// Write the trailer and hand back the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.raw_entry(TRAILER, 0, 0, 0, 0, &[])?;
        Ok(self.out)
    }

    fn parents(&mut self, path: &str) -> io::Result<()> {
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            if !self.dirs.contains(&acc) {
                self.dirs.insert(acc.clone());
                let a = acc.clone();
                self.entry(&a, Kind::Dir, 0o755, &[])?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, path: &str, kind: Kind, perm: u32, data: &[u8]) -> io::Result<()> {
        let (fmt, rdev) = match kind {
            Kind::Dir => (libc::S_IFDIR, (0, 0)),
            Kind::File => (libc::S_IFREG, (0, 0)),
            Kind::Symlink => (libc::S_IFLNK, (0, 0)),
            Kind::CharDev { major, minor } => (libc::S_IFCHR, (major, minor)),
        };
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if kind == Kind::Dir { 2 } else { 1 };
        self.raw_entry(path, ino, fmt | (perm & 0o7777), nlink, rdev.0 << 8 | rdev.1, data)
    }

    fn raw_entry(&mut self, name: &str, ino: u32, mode: u32, nlink: u32, rdev: u32, data: &[u8]) -> io::Result<()> {
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: file over 4 GiB")))?;
        let (rmaj, rmin) = (rdev >> 8, rdev & 0xff);
        let header = format!(
            "{MAGIC}{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}{dmaj:08x}{dmin:08x}{rmaj:08x}{rmin:08x}{namesize:08x}{check:08x}",
            uid = 0,
            gid = 0,
            mtime = 0,
            dmaj = 0,
            dmin = 0,
            namesize = name.len() + 1,
            check = 0,
        );
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = ((4 - (self.written % 4)) % 4) as usize;
        self.put(&[0u8; 3][..n])
    }
}

/// Strip leading `/` and `./`, refuse empty components and `..` (an image path is always inside
/// the image).
fn normalize(path: &str) -> io::Result<String> {
    let p = path.trim_start_matches("./").trim_start_matches('/');
    if p.split('/').any(|c| c == ".." || (c.is_empty() && !p.is_empty())) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad image path {path:?}")));
    }
    Ok(p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal newc reader for the tests: (name, mode, rdev major/minor, data).
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    fn parse(buf: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut off = 0;
        let hex = |s: &[u8]| u32::from_str_radix(std::str::from_utf8(s).unwrap(), 16).unwrap();
        loop {
            let h = &buf[off..off + 110];
            assert_eq!(&h[..6], b"070701");
            let mode = hex(&h[14..22]);
            let size = hex(&h[54..62]) as usize;
            let rmaj = hex(&h[78..86]);
            let rmin = hex(&h[86..94]);
            let namesize = hex(&h[94..102]) as usize;
            let name = std::str::from_utf8(&buf[off + 110..off + 110 + namesize - 1]).unwrap().to_string();
            assert_eq!(buf[off + 110 + namesize - 1], 0);
            off += 110 + namesize;
            off = (off + 3) & !3;
            let data = buf[off..off + size].to_vec();
            off += size;
            off = (off + 3) & !3;
            if name == TRAILER {
                assert_eq!(off, buf.len());
                return out;
            }
            out.push((name, mode, (rmaj, rmin), data));
        }
    }

    #[test]
    fn writes_parents_files_devices_and_trailer() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("/bin/hello", 0o755, b"hello!!").unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        w.symlink("sbin/init", "/init").unwrap();
        w.dir("bin", 0o755).unwrap(); // already there: not written twice
        let buf = w.finish().unwrap();
        assert_eq!(buf.len() % 4, 0);
        let e = parse(&buf);
        let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["bin", "bin/hello", "dev", "dev/console", "sbin", "sbin/init"]);
        assert_eq!(e[1].1, 0o100755);
        assert_eq!(e[1].3, b"hello!!");
        assert_eq!(e[3].1, 0o020600);
        assert_eq!(e[3].2, (5, 1));
        assert_eq!(e[5].1, 0o120777);
        assert_eq!(e[5].3, b"/init");
    }

    #[test]
    fn alignment_holds_for_every_name_and_size() {
        for n in 1..9 {
            let mut w = CpioWriter::new(Vec::new());
            let name = "x".repeat(n);
            w.file(&name, 0o644, &vec![7u8; n * 3]).unwrap();
            let e = parse(&w.finish().unwrap());
            assert_eq!(e[0].0, name);
            assert_eq!(e[0].3.len(), n * 3);
        }
    }

    #[test]
    fn refuses_paths_that_leave_the_image() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.file("../etc/passwd", 0o644, b"").is_err());
        assert!(w.file("a//b", 0o644, b"").is_err());
    }
}
