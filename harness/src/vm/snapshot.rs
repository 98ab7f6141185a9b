//! Guest snapshots: a guest saved right after its agent said `Hello`, restored in ~0.15 s
//! instead of booting in ~2-3 s.
//!
//! How: the first boot backs guest RAM with a shared file in the cache; once `Hello` arrives the
//! device state is migrated to a file with `x-ignore-shared` (so RAM stays in the RAM file, not in
//! the stream) and QEMU is stopped. A restore maps that RAM file *privately* (copy-on-write, the
//! snapshot is never modified, any number of guests can share it) and loads the small device
//! state with `-incoming defer` + `migrate_incoming`. The agent, which was waiting for a request,
//! simply continues; the capability record saved with the snapshot stands in for its `Hello`.
//!
//! The key covers everything that shapes the guest: the QEMU command line (kernel, image,
//! accelerator, memory, devices, kernel command line) and the QEMU binary. This module decides
//! keys and file layout; `guest.rs` drives the machine.

use super::qemu::QemuConfig;
use crate::cache::{self, Cache};
use kmatrix_proto::Capabilities;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Bumped when the layout or the way snapshots are taken changes.
pub const FORMAT: u32 = 2;

/// `meta.json` of a snapshot: what it was taken from and what the guest said then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// [`FORMAT`] at the time; a snapshot of another format is not used.
    pub format: u32,
    /// The guest configuration's [`key`], also the snapshot's folder name.
    pub key: String,
    /// The accelerator the snapshot was taken under: a KVM snapshot is never restored under TCG
    /// or the other way round (the key, made of the command line, differs too).
    #[serde(default)]
    pub accel: Option<super::qemu::Accel>,
    /// The agent's `Hello`, as it came at snapshot time.
    pub caps: Capabilities,
    /// The channel the agent answered on (`ttyS1` or `virtio`).
    pub channel: String,
    /// QEMU start → `Hello` of the cold boot the snapshot was taken from.
    pub cold_hello_s: f64,
    /// How long taking the snapshot took.
    pub save_s: f64,
    /// What the agent's warm-up before the snapshot said (`HostMsg::Warm`): `warmed in N ms`,
    /// or why it could not; empty in snapshots taken before warm-ups.
    #[serde(default)]
    pub warm: String,
}

/// A snapshot on disk.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Its folder, `<cache>/snapshots/<key>`.
    pub dir: PathBuf,
    /// Its `meta.json`.
    pub meta: SnapshotMeta,
}

impl Snapshot {
    /// The guest RAM file, mapped copy-on-write on restore.
    pub fn ram(&self) -> PathBuf {
        self.dir.join("ram")
    }

    /// QEMU's device state (the migration stream), fed to `migrate_incoming`.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
}

/// The key for a guest configuration (socket paths and snapshot-only options left out).
pub fn key(cfg: &QemuConfig) -> String {
    let mut c = cfg.clone();
    c.serial_channel = c.serial_channel.map(|_| PathBuf::from("S"));
    c.virtio_channel = c.virtio_channel.map(|_| PathBuf::from("V"));
    c.monitor = None;
    c.memory_file = None;
    c.incoming = false;
    // A scratch disk is a fresh file of each run: its size shapes the guest, not its path.
    let disk_size = cfg.disk.as_ref().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len());
    c.disk = c.disk.map(|_| PathBuf::from(format!("scratch-{}", disk_size.unwrap_or(0))));
    let mut h = Sha256::new();
    h.update(FORMAT.to_le_bytes());
    for a in c.args() {
        h.update(a.as_encoded_bytes());
        h.update([0]);
    }
    // The files the command line names: their identity, not just their paths.
    for p in [Some(&c.qemu), Some(&c.kernel), c.initrd.as_ref(), c.bios.as_ref()].into_iter().flatten() {
        h.update(file_identity(p).as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

fn file_identity(p: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(p) {
        Ok(m) => format!("{}:{}:{}:{}", p.display(), m.len(), m.mtime(), m.ino()),
        Err(_) => p.display().to_string(),
    }
}

/// The folder all snapshots live in (`<cache>/snapshots`), created if missing.
pub fn root(cache: &Cache) -> Result<PathBuf, cache::CacheError> {
    cache.dir("snapshots")
}

/// The snapshot for `key`, if one is complete on disk.
pub fn find(cache: &Cache, key: &str) -> Option<Snapshot> {
    let dir = root(cache).ok()?.join(key);
    let meta: SnapshotMeta = serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()?;
    if meta.format != FORMAT || meta.key != key || !dir.join("ram").is_file() || !dir.join("state").is_file() {
        return None;
    }
    Some(Snapshot { dir, meta })
}

/// A directory to build a snapshot in, renamed into place by [`commit`].
pub fn staging(cache: &Cache) -> Result<tempfile::TempDir, std::io::Error> {
    let r = root(cache).map_err(std::io::Error::other)?;
    tempfile::Builder::new().prefix(".staging-").tempdir_in(r)
}

/// Write the metadata and move the staged snapshot to its key. A snapshot another process
/// committed first wins; ours is dropped.
pub fn commit(cache: &Cache, staged: tempfile::TempDir, meta: &SnapshotMeta) -> Result<Snapshot, std::io::Error> {
    let bytes = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
    cache::write_atomic(&staged.path().join("meta.json"), &bytes).map_err(std::io::Error::other)?;
    let dest = root(cache).map_err(std::io::Error::other)?.join(&meta.key);
    let staged_path = staged.keep();
    if let Err(e) = std::fs::rename(&staged_path, &dest) {
        let _ = std::fs::remove_dir_all(&staged_path);
        if find(cache, &meta.key).is_none() {
            return Err(e);
        }
    }
    prune(cache, KEEP);
    find(cache, &meta.key).ok_or_else(|| std::io::Error::other(format!("snapshot {} vanished after commit", meta.key)))
}

/// How many snapshots the cache keeps; older ones (by last use) go when a new one is committed.
pub const KEEP: usize = 12;

/// Remove all but the `keep` most recently used snapshots (and stale staging directories).
pub fn prune(cache: &Cache, keep: usize) -> Vec<PathBuf> {
    let Ok(r) = root(cache) else { return Vec::new() };
    let Ok(rd) = std::fs::read_dir(&r) else { return Vec::new() };
    let mut snaps = Vec::new();
    let mut removed = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        let age = e.metadata().and_then(|m| m.modified()).ok();
        if name.starts_with(".staging-") {
            // A staging directory older than an hour belongs to a run that died.
            let old = age.and_then(|t| t.elapsed().ok()).is_some_and(|d| d.as_secs() > 3600);
            if old && std::fs::remove_dir_all(&p).is_ok() {
                removed.push(p);
            }
            continue;
        }
        snaps.push((age, p));
    }
    snaps.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (_, p) in snaps.into_iter().skip(keep) {
        // One that a running kmatrix holds (it restored from it) stays.
        let key = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Ok(Some(_claim)) = cache.claim(&format!("snapshot-{key}")) else { continue };
        if std::fs::remove_dir_all(&p).is_ok() {
            removed.push(p);
        }
    }
    removed
}

/// Mark a snapshot as used now (pruning keeps the most recently used).
pub fn touch(s: &Snapshot) {
    let _ = std::fs::File::open(&s.dir).and_then(|f| f.set_modified(std::time::SystemTime::now()));
}

/// Quote a path for the `exec:` migration URI (run by /bin/sh).
pub fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::qemu::Accel;

    fn cfg() -> QemuConfig {
        QemuConfig {
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            arch: crate::kernel::Arch::X86_64,
            kernel: "/k/vmlinux".into(),
            initrd: Some("/i/a.cpio".into()),
            accel: Accel::Tcg,
            memory_mb: 512,
            cpus: 1,
            append: vec![],
            serial_channel: Some("/tmp/x/serial.sock".into()),
            virtio_channel: None,
            bios: None,
            debug_exit: false,
            monitor: Some("/tmp/x/hmp.sock".into()),
            memory_file: None,
            incoming: false,
            shares: Vec::new(),
            disk: None,
        }
    }

    #[test]
    fn key_ignores_socket_paths_but_not_the_guest() {
        let a = cfg();
        let mut b = cfg();
        b.serial_channel = Some("/tmp/other/serial.sock".into());
        b.monitor = Some("/tmp/other/hmp.sock".into());
        assert_eq!(key(&a), key(&b));
        let mut c = cfg();
        c.memory_mb = 1024;
        assert_ne!(key(&a), key(&c));
        let mut d = cfg();
        d.virtio_channel = Some("/v".into());
        assert_ne!(key(&a), key(&d));
        let mut e = cfg();
        e.append = vec!["kmatrix.x=1".into()];
        assert_ne!(key(&a), key(&e));
        // A snapshot of a 1-CPU guest is never restored into a 2-CPU one.
        let mut f = cfg();
        f.cpus = 2;
        assert_ne!(key(&a), key(&f));
        // Scratch disks: two runs' files of one size share a key, another size does not.
        let dir = tempfile::tempdir().unwrap();
        let disk = |name: &str, len: u64| {
            let p = dir.path().join(name);
            std::fs::File::create(&p).unwrap().set_len(len).unwrap();
            let mut c = cfg();
            c.disk = Some(p);
            key(&c)
        };
        assert_eq!(disk("run1.img", 64 << 20), disk("run2.img", 64 << 20));
        assert_ne!(disk("run3.img", 64 << 20), disk("run4.img", 128 << 20));
        assert_ne!(disk("run5.img", 64 << 20), key(&a));
    }

    #[test]
    fn staged_snapshot_is_found_only_once_committed_and_complete() {
        let (_dir, cache) = crate::cache::temp_cache();
        let st = staging(&cache).unwrap();
        std::fs::write(st.path().join("ram"), b"r").unwrap();
        std::fs::write(st.path().join("state"), b"s").unwrap();
        let meta = SnapshotMeta {
            format: FORMAT,
            accel: Some(Accel::Tcg),
            key: "k1".into(),
            caps: Capabilities::default(),
            channel: "ttyS1".into(),
            cold_hello_s: 2.0,
            save_s: 1.0,
            warm: String::new(),
        };
        assert!(find(&cache, "k1").is_none());
        let s = commit(&cache, st, &meta).unwrap();
        assert_eq!(s.meta.channel, "ttyS1");
        assert!(find(&cache, "k1").is_some());
        std::fs::remove_file(s.state()).unwrap();
        assert!(find(&cache, "k1").is_none(), "an incomplete snapshot must not be used");
        assert_eq!(sh_quote(Path::new("/a b/it's")), "'/a b/it'\\''s'");
    }
}
