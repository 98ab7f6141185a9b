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
//! keys and file layout, and holds the two machine recipes of a snapshot: [`take`] (a cold boot
//! saved at `Hello`) and [`restore`]. Which recipe a guest starts by is `guest.rs`'s choice.

use super::machine::{Vm, VmFiles};
use super::qemu::{MemoryFile, QemuConfig};
use super::VmError;
use crate::cache::{self, Cache};
use kmatrix_proto::{Capabilities, GuestMsg, HostMsg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// Hold the snapshot of `key` in `cache` for this process's life (gc and pruning leave it alone)
/// and take its lock, so that one process takes it while the others wait and then restore it;
/// `None` when the lock cannot be had (each process then fends for itself).
pub async fn lock(cache: &Cache, key: &str) -> Option<cache::FileLock> {
    let (cache, name) = (cache.clone(), format!("snapshot-{key}"));
    tokio::task::spawn_blocking(move || {
        let _ = cache.hold(&name);
        cache.lock(&name)
    })
    .await
    .ok()
    .and_then(Result::ok)
}

/// What [`take`] gives: the snapshot, or — when saving it failed — the guest it booted, which
/// is fine and can be used as a cold boot.
pub enum Taken {
    /// Saved and committed under its key.
    Saved(Snapshot),
    /// Not saved (said on stderr); the guest runs on.
    Unsaved {
        /// The booted guest.
        vm: Box<Vm>,
        /// Its `Hello`.
        caps: Capabilities,
        /// QEMU spawn → `Hello`.
        hello_after: Duration,
    },
}

/// The first recipe: boot `cfg` cold with its RAM in a staged shared file, wait up to `deadline`
/// for `Hello`, let the agent warm up, save the device state beside the RAM and commit both
/// under `key` in `cache`. The guest it booted is killed once the snapshot is saved.
pub async fn take(
    cache: &Cache,
    cfg: &QemuConfig,
    key: &str,
    files: VmFiles,
    virtio: bool,
    deadline: Duration,
) -> Result<Taken, VmError> {
    let setup = |source| VmError::ChannelSetup { dir: cache.root().to_path_buf(), source };
    let staged = staging(cache).map_err(setup)?;
    let mut c = cfg.clone();
    c.memory_file = Some(MemoryFile { path: staged.path().join("ram"), shared: true });
    let mut vm = Vm::start(c, files, virtio).await?;
    let caps = vm.hello(deadline).await?;
    let cold = vm.elapsed();
    // The snapshot is taken warm: every guest restored from it skips the agent's one-time
    // work (the kernel's BTF parsed, aya's feature probes: ~0.5 s under TCG, once per boot).
    vm.send(&HostMsg::Warm).await?;
    let warm = loop {
        match vm.recv(Duration::from_secs(60), "the agent to warm up").await? {
            GuestMsg::Warmed { ms } => break format!("warmed in {ms:.0} ms"),
            // Said, not fatal: the snapshot is then only as warm as a cold boot.
            GuestMsg::Error { message } => {
                eprintln!("kmatrix: the agent could not warm up before the snapshot: {message}");
                break format!("not warmed: {message}");
            }
            _ => {}
        }
    };
    let saved = Instant::now();
    let state = staged.path().join("state");
    let taken = async {
        vm.hmp("migrate_set_capability x-ignore-shared on").await?;
        vm.hmp(&format!("migrate \"exec:cat > {}\"", sh_quote(&state))).await?;
        vm.hmp_wait(
            "info migrate",
            &["Migration status: completed", "Migration status: failed"],
            Duration::from_secs(60),
        )
        .await
    }
    .await;
    let channel = vm.channel().unwrap_or("ttyS1").to_string();
    match taken {
        Ok((0, _)) => {}
        other => {
            // No snapshot, but the guest itself is fine: keep using it.
            let why = match other {
                Ok((_, out)) => format!("migration failed: {}", out.trim()),
                Err(e) => e.to_string(),
            };
            eprintln!("kmatrix: could not take a snapshot ({why}); continuing without one");
            let _ = vm.hmp("cont").await;
            return Ok(Taken::Unsaved { vm: Box::new(vm), caps, hello_after: cold });
        }
    }
    vm.kill().await;
    let meta = SnapshotMeta {
        format: FORMAT,
        accel: Some(cfg.accel),
        key: key.to_string(),
        caps,
        channel,
        cold_hello_s: cold.as_secs_f64(),
        save_s: saved.elapsed().as_secs_f64(),
        warm,
    };
    commit(cache, staged, &meta).map(Taken::Saved).map_err(setup)
}

/// The second recipe: start `cfg` from snapshot `s` (its RAM mapped copy-on-write, its device
/// state loaded), running, its agent waiting for a request on the channel it said `Hello` on.
pub async fn restore(mut cfg: QemuConfig, s: &Snapshot, files: VmFiles, virtio: bool) -> Result<Vm, VmError> {
    cfg.memory_file = Some(MemoryFile { path: s.ram(), shared: false });
    cfg.incoming = true;
    let mut vm = Vm::start(cfg, files, virtio).await?;
    vm.hmp("migrate_set_capability x-ignore-shared on").await?;
    vm.hmp(&format!("migrate_incoming \"exec:cat {}\"", sh_quote(&s.state()))).await?;
    vm.hmp_wait("info status", &["VM status: running"], Duration::from_secs(30)).await?;
    vm.set_active(&s.meta.channel);
    Ok(vm)
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
            first_output: None,
            net_user: false,
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
