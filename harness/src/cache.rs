//! The on-disk cache: kernels, guest images, the accelerator verdict.
//!
//! Everything written here goes through a temporary file in the same directory and a rename, so a
//! crash or a full disk never leaves a half-written entry under its final name. Concurrent runs
//! coordinate with `flock` on lock files, so two fetches of one kernel download it once, and an
//! entry a process uses is held (a shared lock on `locks/use-<entry>.lock`, kept until the process
//! exits) so that `kmatrix gc` leaves it alone.
//! This module knows nothing of what the entries mean; `kernel/` and `image/` decide that.

#![warn(missing_docs)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Why the cache could not be opened, written or locked.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// None of the variables that say where the cache is are set.
    #[error("no cache directory: set KMATRIX_CACHE, XDG_CACHE_HOME or HOME")]
    NoHome,
    /// A cache directory could not be created.
    #[error("cannot create cache directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The cache directory exists but this user cannot write it (another user's cache).
    #[error(
        "the cache directory {path} is not writable by this user ({detail}): set KMATRIX_CACHE to a directory you can write"
    )]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// What access(2) said.
        detail: String,
    },
    /// A cache file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A lock file could not be created or locked.
    #[error("cannot lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The system's error.
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
    /// The cache where the environment says it is (see [`Cache`]), created if missing.
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

    /// The cache at `root`, created if missing (tests, `KMATRIX_CACHE`).
    pub fn at(root: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let root = root.into();
        create_dir(&root)?;
        // Said here, naming the directory, rather than as the first lock or download that fails.
        let c = std::ffi::CString::new(root.as_os_str().as_encoded_bytes())
            .map_err(|_| CacheError::NotWritable { path: root.clone(), detail: "a NUL byte in the path".into() })?;
        // SAFETY: a NUL-terminated path that outlives the call.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            let detail = std::io::Error::last_os_error().to_string();
            return Err(CacheError::NotWritable { path: root, detail });
        }
        Ok(Cache { root })
    }

    /// The cache's root directory.
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
        FileLock::acquire(&self.lock_path(name)?)
    }

    fn lock_path(&self, name: &str) -> Result<PathBuf, CacheError> {
        let dir = self.dir("locks")?;
        Ok(dir.join(format!("{}.lock", sanitize(name))))
    }

    /// Mark the entry `name` (`kernel-<entry>`, `image-<sha256>`, `snapshot-<key>`, ...) as used
    /// by this process until it exits: a shared lock on its use lock, which [`Cache::claim`] (gc)
    /// cannot take while any process holds it, and a fresh modification time on that lock file,
    /// which is when the entry was last used. Call it before looking the entry up, so that an
    /// entry being removed is waited for and then seen as gone. Holding twice is holding once.
    pub fn hold(&self, name: &str) -> Result<(), CacheError> {
        let path = self.lock_path(&format!("use-{name}"))?;
        let held = HELD.get_or_init(Default::default);
        let mut held = held.lock().unwrap_or_else(|p| p.into_inner());
        if !held.contains_key(&path) {
            let lock = FileLock::acquire_mode(&path, libc::LOCK_SH)?;
            held.insert(path.clone(), lock);
        }
        // When it was last used: for least-recently-used pruning. Not worth failing a run for.
        if let Some(l) = held.get(&path) {
            let _ = l.file.set_modified(std::time::SystemTime::now());
        }
        Ok(())
    }

    /// Take the use lock of entry `name` exclusively, without waiting: `None` while a running
    /// kmatrix holds the entry ([`Cache::hold`]). Whoever removes an entry does it under this.
    pub fn claim(&self, name: &str) -> Result<Option<FileLock>, CacheError> {
        let path = self.lock_path(&format!("use-{name}"))?;
        let existed = path.exists();
        let lock = FileLock::try_acquire(&path)?;
        if let (Some(l), false) = (&lock, existed) {
            // Made by this claim, not by a use: it must not say the entry was used now.
            let _ = l.file.set_modified(std::time::UNIX_EPOCH);
        }
        Ok(lock)
    }

    /// Let go of every entry of this cache that this process holds (a long-lived process done
    /// with them; tests).
    pub fn release_all(&self) {
        let Ok(dir) = self.dir("locks") else { return };
        if let Some(held) = HELD.get() {
            held.lock().unwrap_or_else(|p| p.into_inner()).retain(|path, _| !path.starts_with(&dir));
        }
    }

    /// When the entry `name` was last held, if it ever was.
    pub fn last_used(&self, name: &str) -> Option<std::time::SystemTime> {
        let path = self.lock_path(&format!("use-{name}")).ok()?;
        fs::metadata(path).and_then(|m| m.modified()).ok()
    }
}

/// This process's holds, by lock file: released when the process exits.
static HELD: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<PathBuf, FileLock>>> =
    std::sync::OnceLock::new();

fn create_dir(p: &Path) -> Result<(), CacheError> {
    fs::create_dir_all(p).map_err(|source| CacheError::CreateDir { path: p.to_path_buf(), source })
}

/// A `flock` held for the guard's lifetime (exclusive unless taken with [`libc::LOCK_SH`]).
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// An exclusive lock on `path` (created if missing), waiting until it is free.
    pub fn acquire(path: &Path) -> Result<FileLock, CacheError> {
        Self::acquire_mode(path, libc::LOCK_EX)
    }

    /// An exclusive lock on `path` if nobody holds it now; `None` if somebody does.
    pub fn try_acquire(path: &Path) -> Result<Option<FileLock>, CacheError> {
        match Self::acquire_mode(path, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(l) => Ok(Some(l)),
            Err(CacheError::Lock { source, .. }) if source.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `flock(mode)` on `path`, retried when a signal interrupts the wait.
    pub fn acquire_mode(path: &Path, mode: libc::c_int) -> Result<FileLock, CacheError> {
        let err = |source| CacheError::Lock { path: path.to_path_buf(), source };
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(err)?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), mode) };
            if rc == 0 {
                return Ok(FileLock { file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(err(e));
            }
        }
    }
}

/// `s` as a file name: ASCII letters, digits, `-`, `.` and `_` kept, anything else `_`. The one
/// rule for a kernel id, scenario id or tag in a file name (console logs, artifacts, locks, files
/// put in guests); a package build's cache entry keeps more (`kernel::store::entry_name`).
pub fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') { c } else { '_' }).collect()
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

/// A cache in a fresh temporary directory, for tests; it lasts as long as the returned guard.
#[cfg(test)]
pub(crate) fn temp_cache() -> (tempfile::TempDir, Cache) {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path()).unwrap();
    (d, cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_letters_digits_dash_dot_underscore() {
        assert_eq!(sanitize("debian:6.1.1-1+b2/x_y z~"), "debian_6.1.1-1_b2_x_y_z_");
        assert_eq!(sanitize("bpf.kprobe.openat"), "bpf.kprobe.openat");
    }

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
    fn a_held_entry_cannot_be_claimed_until_its_holder_is_gone() {
        let (_dir, cache) = crate::cache::temp_cache();
        assert!(cache.last_used("image-a").is_none());
        let claim = cache.claim("image-a").unwrap().expect("nobody holds it");
        drop(claim);
        cache.hold("image-a").unwrap();
        cache.hold("image-a").unwrap();
        assert!(cache.claim("image-a").unwrap().is_none(), "held by this process");
        assert!(cache.last_used("image-a").unwrap().elapsed().unwrap().as_secs() < 60);
        assert!(cache.claim("image-b").unwrap().is_some(), "another entry is free");
        cache.release_all();
        assert!(cache.claim("image-a").unwrap().is_some(), "released");
        cache.hold("image-a").unwrap();
        // Another process's hold, and that process gone.
        let lock = cache.lock_path("use-kernel-k").unwrap();
        // -o: the lock stays with flock(1) itself, not with the sleep it runs.
        // Its own process group, so the whole holder (flock and the sleep it runs) goes below.
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("flock")
            .args(["-s", "-o"])
            .arg(&lock)
            .args(["sleep", "30"])
            .process_group(0)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while cache.claim("kernel-k").unwrap().is_some() {
            assert!(std::time::Instant::now() < deadline, "flock(1) never took the lock");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // SAFETY: kill(2) on the process group this test just created.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        child.wait().unwrap();
        // The holder is gone once the kernel has closed its files; give a loaded machine a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while cache.claim("kernel-k").unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "the lock outlived its holder");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn lock_serialises_two_threads() {
        let (_dir, cache) = crate::cache::temp_cache();
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
