//! The on-disk cache: kernels, guest images, the accelerator verdict.
//!
//! Everything written here goes through a temporary file in the same directory and a rename, so a
//! crash or a full disk never leaves a half-written entry under its final name. Concurrent runs
//! coordinate with `flock` on lock files, so two fetches of one kernel download it once.
//! This module knows nothing of what the entries mean; `kernel/` and `image/` decide that.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no cache directory: set KMATRIX_CACHE, XDG_CACHE_HOME or HOME")]
    NoHome,
    #[error("cannot create cache directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Root of the cache: `$KMATRIX_CACHE`, else `$XDG_CACHE_HOME/kmatrix`, else `~/.cache/kmatrix`.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn from_env() -> Result<Self, CacheError> {
        let root = if let Some(p) = std::env::var_os("KMATRIX_CACHE").filter(|p| !p.is_empty()) {
            PathBuf::from(p)
        } else if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
            PathBuf::from(p).join("kmatrix")
        } else if let Some(h) = std::env::var_os("HOME").filter(|p| !p.is_empty()) {
            PathBuf::from(h).join(".cache").join("kmatrix")
        } else {
            return Err(CacheError::NoHome);
        };
        Self::at(root)
    }

    pub fn at(root: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let root = root.into();
        create_dir(&root)?;
        Ok(Cache { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A subdirectory of the cache, created if missing.
    pub fn dir(&self, rel: impl AsRef<Path>) -> Result<PathBuf, CacheError> {
        let p = self.root.join(rel);
        create_dir(&p)?;
        Ok(p)
    }

    /// Take an exclusive lock named `name` (a file under `locks/`), blocking until it is free.
    /// The lock is released when the returned guard is dropped, or when the process dies.
    pub fn lock(&self, name: &str) -> Result<FileLock, CacheError> {
        let dir = self.dir("locks")?;
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' { c } else { '_' })
            .collect();
        FileLock::acquire(&dir.join(format!("{safe}.lock")))
    }
}

fn create_dir(p: &Path) -> Result<(), CacheError> {
    fs::create_dir_all(p).map_err(|source| CacheError::CreateDir { path: p.to_path_buf(), source })
}

/// An exclusive `flock` held for the guard's lifetime.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    pub fn acquire(path: &Path) -> Result<FileLock, CacheError> {
        let err = |source| CacheError::Lock { path: path.to_path_buf(), source };
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(err)?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(FileLock { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(err(e));
            }
        }
    }
}

/// Write `bytes` to `path` atomically: a temporary file beside it, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Like [`write_atomic`], with the content produced by `fill` into the temporary file.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<(), CacheError> {
    let err = |source| CacheError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    create_dir(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(err)?;
    fill(tmp.as_file_mut()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/entry");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("entry")]);
    }

    #[test]
    fn failed_fill_keeps_old_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("entry");
        write_atomic(&p, b"good").unwrap();
        let r = write_atomic_with(&p, |_| Err(std::io::Error::other("disk full")));
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"good");
    }

    #[test]
    fn lock_serialises_two_threads() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::at(d.path()).unwrap();
        let counter = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for i in 0..2 {
            let cache = cache.clone();
            let counter = counter.clone();
            hs.push(std::thread::spawn(move || {
                let _g = cache.lock("k").unwrap();
                counter.lock().unwrap().push(format!("in{i}"));
                std::thread::sleep(std::time::Duration::from_millis(50));
                counter.lock().unwrap().push(format!("out{i}"));
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
        let v = counter.lock().unwrap().clone();
        // Each "in" is directly followed by its own "out": the sections did not overlap.
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].replace("in", ""), v[1].replace("out", ""));
        assert_eq!(v[2].replace("in", ""), v[3].replace("out", ""));
    }
}
