//! `kmatrix gc`: keeps what kmatrix leaves on disk within a size budget. The cache's kernels,
//! guest images, snapshots, the agent binaries the catalogue runs and the index copies, kernel
//! header trees and selftests, the peers `bench` installed, host roots, and the run directories
//! (`run-*` and `exec-*` under the runs directory) are removed least recently used first until
//! their total fits; accelerator verdicts whose QEMU binary is gone (or changed: they can never
//! match again) and staging directories a dead run left behind go whatever the budget.
//!
//! Nothing a running kmatrix uses is removed: cache entries are held by the processes that use
//! them ([`Cache::hold`]) and claimed here without waiting ([`Cache::claim`]), a run directory is
//! held by its run ([`hold_run_dir`]); a held entry is reported and kept, even if the budget is
//! then not met. What it is not: the policy of `kernels gc` (kernels the lock no longer names),
//! which stays in `kernel::gc`.

#![warn(missing_docs)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cache::{Cache, CacheError, FileLock};

/// The default budget (for [`parse_size`]): room for the default matrix's kernels, a dozen
/// snapshots and their images.
pub const DEFAULT_MAX_SIZE: &str = "10G";

/// A staging directory or temporary file older than this belongs to a run that died.
const ABANDONED: Duration = Duration::from_secs(24 * 3600);

/// The lock file a run holds in its directory for as long as it runs.
pub const RUN_LOCK: &str = ".in-use.lock";

/// Why gc could not list or remove something.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A directory could not be listed.
    #[error("list {path}")]
    List {
        /// The directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// An entry could not be removed.
    #[error("remove {path}")]
    Remove {
        /// The entry.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The cache could not be used.
    #[error("use the cache")]
    Cache(#[from] CacheError),
    /// `--max-size` is not a size.
    #[error("read size {text:?}: give bytes or a number with K, M, G or T (powers of 1024), e.g. 10G")]
    Size {
        /// The value given.
        text: String,
    },
}

/// What a removable thing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A kernel cache entry (`kernels/<package>_<version>`).
    Kernel,
    /// A suite's cached Packages index.
    KernelIndex,
    /// A guest image.
    Image,
    /// A snapshot (device state and RAM file).
    Snapshot,
    /// An agent binary the catalogue ran on the host.
    Agent,
    /// A run directory (`run-*`, or `exec-*` of `kmatrix exec --out`).
    Run,
    /// A staging directory or temporary file left by a run that died.
    Abandoned,
    /// An accelerator verdict whose QEMU binary is gone or changed.
    AccelVerdict,
    /// An image index entry (`image-inputs/<key>.json`) naming an image that is gone.
    ImageIndex,
    /// A kernel's merged header tree (`headers/<release>_<version>`).
    Headers,
    /// A kernel source's selftests (`selftests/<package>_<version>`).
    Selftests,
    /// A peer tool `bench peers` installed (`bench/<peer>`).
    Bench,
    /// A host root kmatrix built to run in (`hosts/<name>`: the Ubuntu host of the tests).
    HostRoot,
}

/// One thing on disk that gc may remove.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// What it is.
    pub kind: Kind,
    /// Where it is.
    pub path: PathBuf,
    /// Bytes on disk (allocated blocks: a snapshot's sparse RAM file counts what it uses).
    pub size: u64,
    /// Seconds since the epoch.
    pub last_used: u64,
    /// The cache entry name it is held under (`kernel-<entry>`, ...), if any.
    #[serde(skip)]
    hold: Option<String>,
}

/// What `kmatrix gc` is asked to do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// The budget in bytes.
    pub max_size: u64,
    /// Directories holding `run-*` directories (the `--out` of `run`).
    pub runs: Vec<PathBuf>,
    /// Say what would go, remove nothing.
    pub dry_run: bool,
}

/// A thing gc removed (or, with `dry_run`, would remove), and why.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// The thing.
    #[serde(flatten)]
    pub item: Item,
    /// Why it went (`least recently used`, `left behind by a run that died`).
    pub why: &'static str,
}

/// What gc found and did.
#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    /// The budget in bytes.
    pub max_size: u64,
    /// Bytes under the budget before and after.
    pub before: u64,
    /// Bytes after the removals (what would remain, with `dry_run`).
    pub after: u64,
    /// What went (or would go), in the order it did.
    pub removed: Vec<Removed>,
    /// Kept because a running kmatrix holds them.
    pub in_use: Vec<Item>,
    /// Nothing was removed: the report says what would have gone.
    pub dry_run: bool,
}

impl GcReport {
    /// Whether what remains fits the budget (it may not when held entries stay).
    pub fn within_budget(&self) -> bool {
        self.after <= self.max_size
    }
}

/// `10G`, `512M`, `1.5T`, `4096`: bytes, with binary suffixes.
pub fn parse_size(text: &str) -> Result<u64, GcError> {
    let bad = || GcError::Size { text: text.to_string() };
    let t = text.trim().trim_end_matches(['B', 'b']).trim_end_matches(['i', 'I']);
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(bad()),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes = n * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Hold the run directory `dir` for as long as the returned lock lives: gc leaves it alone.
pub fn hold_run_dir(dir: &Path) -> Result<FileLock, CacheError> {
    FileLock::acquire_mode(&dir.join(RUN_LOCK), libc::LOCK_SH)
}

/// Bytes allocated on disk under `p` (not following symlinks).
fn disk_usage(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::symlink_metadata(p) else { return 0 };
    let own = m.blocks() * 512;
    if !m.is_dir() {
        return own;
    }
    let Ok(rd) = fs::read_dir(p) else { return own };
    own + rd.flatten().map(|e| disk_usage(&e.path())).sum::<u64>()
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, GcError> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(rd.flatten().map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(GcError::List { path: dir.to_path_buf(), source }),
    }
}

/// Everything under the budget, and what goes whatever the budget.
fn inventory(cache: &Cache, opts: &GcOptions) -> Result<(Vec<Item>, Vec<Removed>), GcError> {
    let root = cache.root();
    let mut items = Vec::new();
    let mut always = Vec::new();
    let mut push = |kind, path: PathBuf, hold: Option<String>| {
        let used = [mtime(&path), hold.as_deref().and_then(|h| cache.last_used(h))].into_iter().flatten().max();
        let item = Item { kind, size: disk_usage(&path), last_used: used.map(secs).unwrap_or(0), path, hold };
        let abandoned = kind == Kind::Abandoned;
        if abandoned && used.and_then(|t| t.elapsed().ok()).is_some_and(|age| age > ABANDONED) {
            always.push(Removed { item, why: "left behind by a run that died" });
        } else if !abandoned {
            items.push(item);
        }
    };
    for (sub, kind, prefix) in [
        ("kernels", Kind::Kernel, "kernel-"),
        ("images", Kind::Image, "image-"),
        ("snapshots", Kind::Snapshot, "snapshot-"),
        ("agent", Kind::Agent, "agent-"),
        ("headers", Kind::Headers, "headers-"),
        ("selftests", Kind::Selftests, "selftests-"),
        ("bench", Kind::Bench, "bench-"),
        ("hosts", Kind::HostRoot, "hosts-"),
    ] {
        for (name, path) in list(&root.join(sub))? {
            if name.starts_with('.') {
                push(Kind::Abandoned, path, None);
                continue;
            }
            if sub == "kernels" && name == "index" {
                for (_, p) in list(&path)? {
                    push(Kind::KernelIndex, p, None);
                }
                continue;
            }
            let entry = match sub {
                "images" => name.strip_suffix(".cpio").unwrap_or(&name).to_string(),
                "agent" => name.strip_prefix("kmatrix-agent-").unwrap_or(&name).to_string(),
                _ => name.clone(),
            };
            push(kind, path, Some(format!("{prefix}{entry}")));
        }
    }
    for dir in &opts.runs {
        for (name, path) in list(dir)? {
            if (name.starts_with("run-") || name.starts_with("exec-")) && path.is_dir() {
                push(Kind::Run, path, None);
            }
        }
    }
    for (name, path) in list(&root.join("host"))? {
        if name.starts_with("accel-") && name.ends_with(".json") {
            if let Some(why) = crate::vm::accel::stale_verdict(&path) {
                let item = Item { kind: Kind::AccelVerdict, size: disk_usage(&path), last_used: 0, path, hold: None };
                always.push(Removed { item, why });
            }
        }
    }
    Ok((items, always))
}

/// Keep the cache and the run directories within `opts.max_size`, least recently used first.
pub fn gc(cache: &Cache, opts: &GcOptions) -> Result<GcReport, GcError> {
    let (mut items, always) = inventory(cache, opts)?;
    let before: u64 = items.iter().map(|i| i.size).sum();
    let mut report = GcReport {
        max_size: opts.max_size,
        before,
        after: before,
        removed: Vec::new(),
        in_use: Vec::new(),
        dry_run: opts.dry_run,
    };
    for r in always {
        remove(&r.item, opts.dry_run)?;
        report.removed.push(r);
    }
    items.sort_by_key(|i| (i.last_used, i.path.clone()));
    for item in items {
        if report.after <= opts.max_size {
            break;
        }
        // Claimed without waiting: a held entry is in use by a running kmatrix.
        let claim = match (&item.hold, item.kind) {
            (Some(name), _) => cache.claim(name)?,
            (None, Kind::Run) => FileLock::try_acquire(&item.path.join(RUN_LOCK))?,
            (None, _) => None,
        };
        let free = claim.is_some() || (item.hold.is_none() && item.kind != Kind::Run);
        if !free {
            report.in_use.push(item);
            continue;
        }
        remove(&item, opts.dry_run)?;
        report.after -= item.size;
        report.removed.push(Removed { item, why: "least recently used" });
    }
    // An index entry is a shortcut to an image: once the image is gone (removed just now, or
    // before) it can never be used again.
    for (name, path) in list(&cache.root().join("image-inputs"))? {
        if name.ends_with(".json") && !crate::image::index_points_to_an_image(&path) {
            let item = Item { kind: Kind::ImageIndex, size: disk_usage(&path), last_used: 0, path, hold: None };
            remove(&item, opts.dry_run)?;
            report.removed.push(Removed { item, why: "names an image that is gone" });
        }
    }
    Ok(report)
}

fn remove(item: &Item, dry_run: bool) -> Result<(), GcError> {
    if dry_run {
        return Ok(());
    }
    let r = if item.path.is_dir() { fs::remove_dir_all(&item.path) } else { fs::remove_file(&item.path) };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(GcError::Remove { path: item.path.clone(), source }),
    }
}

/// The report as a person reads it.
pub fn render(r: &GcReport) -> String {
    use std::fmt::Write as _;
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut s = String::new();
    for x in &r.removed {
        let _ = writeln!(
            s,
            "{verb} {} ({:.1} MiB, {}): {}",
            x.item.path.display(),
            x.item.size as f64 / 1048576.0,
            x.why,
            kind_word(x.item.kind)
        );
    }
    for x in &r.in_use {
        let _ = writeln!(
            s,
            "kept {} ({:.1} MiB): in use by a running kmatrix",
            x.path.display(),
            x.size as f64 / 1048576.0
        );
    }
    let _ = writeln!(
        s,
        "{:.2} GiB before, {:.2} GiB after, budget {:.2} GiB{}",
        gib(r.before),
        gib(r.after),
        gib(r.max_size),
        if r.within_budget() { "" } else { ": over budget, the rest is in use" }
    );
    s
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Kernel => "kernel",
        Kind::KernelIndex => "kernel index copy",
        Kind::Image => "guest image",
        Kind::Snapshot => "snapshot",
        Kind::Agent => "agent binary",
        Kind::Run => "run directory",
        Kind::Abandoned => "staging",
        Kind::AccelVerdict => "accelerator verdict",
        Kind::ImageIndex => "image index entry",
        Kind::Headers => "kernel headers",
        Kind::Selftests => "kernel selftests",
        Kind::Bench => "bench peer",
        Kind::HostRoot => "host root",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    /// A cache with entries of `size` bytes each, last used `age` seconds ago.
    fn entry(cache: &Cache, rel: &str, size: usize, age: u64) -> PathBuf {
        let p = cache.root().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let file = if rel.ends_with(".cpio") || rel.starts_with("agent/") {
            p.clone()
        } else {
            fs::create_dir_all(&p).unwrap();
            p.join("data")
        };
        fs::write(&file, vec![7u8; size]).unwrap();
        let t = SystemTime::now() - Duration::from_secs(age);
        for f in [&file, &p] {
            File::open(f).unwrap().set_modified(t).unwrap();
        }
        p
    }

    fn opts(max_size: u64, runs: Vec<PathBuf>) -> GcOptions {
        GcOptions { max_size, runs, dry_run: false }
    }

    #[test]
    fn index_entries_go_with_their_images() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::at(d.path()).unwrap();
        let img = entry(&cache, "images/image-aa.cpio", 100, 10);
        let index = |name: &str, path: &Path, size: u64| {
            let p = cache.root().join("image-inputs").join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            let json = serde_json::json!({ "path": path, "sha256": "aa", "size": size, "modules": [], "builtin": [] });
            fs::write(&p, json.to_string()).unwrap();
            p
        };
        let live = index("live.json", &img, 100);
        let gone = index("gone.json", &d.path().join("images/image-bb.cpio"), 100);
        let r = gc(&cache, &opts(1 << 30, Vec::new())).unwrap();
        assert!(live.exists() && !gone.exists());
        assert_eq!(r.removed.iter().map(|x| x.item.kind).collect::<Vec<_>>(), [Kind::ImageIndex]);
        // Over budget the image goes, and its index entry with it in the same pass.
        let r = gc(&cache, &opts(0, Vec::new())).unwrap();
        assert!(!img.exists() && !live.exists(), "{r:?}");
        assert_eq!(r.removed.iter().map(|x| x.item.kind).collect::<Vec<_>>(), [Kind::Image, Kind::ImageIndex]);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size(DEFAULT_MAX_SIZE).unwrap(), 10 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        for bad in ["", "ten", "5Q", "-1G", "1e400"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn least_recently_used_go_first_until_the_budget_is_met() {
        let (d, cache) = crate::cache::temp_cache();
        let runs = tempfile::tempdir().unwrap();
        let mb = 1 << 20;
        let old_kernel = entry(&cache, "kernels/linux-image-old_1", mb, 50_000);
        let old_image = entry(&cache, "images/aaaa.cpio", mb, 40_000);
        let old_run = runs.path().join("run-1");
        fs::create_dir_all(&old_run).unwrap();
        fs::write(old_run.join("results.jsonl"), vec![b'x'; mb]).unwrap();
        File::open(&old_run).unwrap().set_modified(SystemTime::now() - Duration::from_secs(30_000)).unwrap();
        let snapshot = entry(&cache, "snapshots/0123", mb, 20_000);
        let new_kernel = entry(&cache, "kernels/linux-image-new_2", mb, 10);
        let new_image = entry(&cache, "images/bbbb.cpio", mb, 5);
        let total = disk_usage(d.path().join("kernels").as_path())
            + disk_usage(&d.path().join("images"))
            + disk_usage(&d.path().join("snapshots"))
            + disk_usage(runs.path());
        // A budget that fits about two entries.
        let budget = 2 * mb as u64 + 64 * 1024;
        let r = gc(&cache, &opts(budget, vec![runs.path().to_path_buf()])).unwrap();
        assert!(r.within_budget(), "{}", render(&r));
        assert!(r.before >= 6 * mb as u64 && r.before <= total, "{} vs {total}", r.before);
        let gone: Vec<&Path> = r.removed.iter().map(|x| x.item.path.as_path()).collect();
        assert_eq!(gone, [old_kernel.as_path(), old_image.as_path(), old_run.as_path(), snapshot.as_path()]);
        for p in [&old_kernel, &old_image, &old_run, &snapshot] {
            assert!(!p.exists(), "{}", p.display());
        }
        assert!(new_kernel.exists() && new_image.exists());
        // Within budget already: nothing more goes.
        let again = gc(&cache, &opts(budget, vec![runs.path().to_path_buf()])).unwrap();
        assert!(again.removed.is_empty());
    }

    #[test]
    fn held_entries_survive_even_over_budget() {
        let (_dir, cache) = crate::cache::temp_cache();
        let runs = tempfile::tempdir().unwrap();
        let kernel = entry(&cache, "kernels/linux-image-held_1", 4096, 90_000);
        let image = entry(&cache, "images/cccc.cpio", 4096, 80_000);
        let snapshot = entry(&cache, "snapshots/4567", 4096, 70_000);
        let agent = entry(&cache, "agent/kmatrix-agent-0011223344556677", 4096, 60_000);
        let run = runs.path().join("run-2");
        fs::create_dir_all(&run).unwrap();
        let free = entry(&cache, "kernels/linux-image-free_1", 4096, 10);
        // A running kmatrix holds all of them but the last (hold also marks them used now).
        for name in ["kernel-linux-image-held_1", "image-cccc", "snapshot-4567", "agent-0011223344556677"] {
            cache.hold(name).unwrap();
        }
        let _run = hold_run_dir(&run).unwrap();
        let r = gc(&cache, &opts(0, vec![runs.path().to_path_buf()])).unwrap();
        for p in [&kernel, &image, &snapshot, &agent, &run] {
            assert!(p.exists(), "{} was removed while held", p.display());
        }
        assert!(!free.exists());
        assert_eq!(r.in_use.len(), 5, "{}", render(&r));
        assert!(!r.within_budget());
        assert!(render(&r).contains("over budget, the rest is in use"));
    }

    #[test]
    fn dry_run_removes_nothing() {
        let (_dir, cache) = crate::cache::temp_cache();
        let k = entry(&cache, "kernels/linux-image-x_1", 4096, 100);
        let mut o = opts(0, Vec::new());
        o.dry_run = true;
        let r = gc(&cache, &o).unwrap();
        assert_eq!(r.removed.len(), 1);
        assert!(k.exists());
        assert!(render(&r).starts_with("would remove "));
    }

    #[test]
    fn verdicts_of_a_qemu_that_is_gone_go_and_the_others_stay() {
        let (d, cache) = crate::cache::temp_cache();
        let bin = tempfile::tempdir().unwrap();
        let verdict = |name: &str, qemu: &Path| {
            let v = serde_json::json!({
                "accel": "tcg", "reason": "test", "measured_at": 1,
                "host": crate::vm::accel::host_identity(qemu),
            });
            let p = d.path().join("host").join(format!("accel-{name}.json"));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
            p
        };
        let (kept_qemu, gone_qemu) = (bin.path().join("qemu-a"), bin.path().join("qemu-b"));
        fs::write(&kept_qemu, b"#!/bin/sh\n").unwrap();
        fs::write(&gone_qemu, b"#!/bin/sh\n").unwrap();
        let kept = verdict("a", &kept_qemu);
        let gone = verdict("b", &gone_qemu);
        let never = verdict("c", &bin.path().join("never-there"));
        fs::remove_file(&gone_qemu).unwrap();
        let probe = d.path().join("host/accel-probe.elf");
        fs::write(&probe, b"\x7fELF").unwrap();
        let r = gc(&cache, &opts(u64::MAX, Vec::new())).unwrap();
        assert!(kept.exists() && probe.exists());
        assert!(!gone.exists() && !never.exists());
        let why: Vec<&str> = r.removed.iter().map(|x| x.why).collect();
        assert_eq!(why, ["its QEMU binary no longer exists", "its QEMU binary no longer exists"]);
    }

    #[test]
    fn abandoned_staging_goes_whatever_the_budget_and_a_fresh_one_stays() {
        let (_dir, cache) = crate::cache::temp_cache();
        let old = entry(&cache, "snapshots/.staging-old", 4096, 2 * 24 * 3600);
        let fresh = entry(&cache, "kernels/.dl-fresh", 4096, 60);
        let r = gc(&cache, &opts(u64::MAX, Vec::new())).unwrap();
        assert!(!old.exists() && fresh.exists());
        assert_eq!(r.removed.len(), 1);
    }

    /// Everything kmatrix keeps counts against the budget: header trees, selftests, the peers
    /// `bench` installed, host roots and `exec-*` directories too, not only kernels and images.
    #[test]
    fn every_kind_of_entry_counts_against_the_budget() {
        let (_d, cache) = crate::cache::temp_cache();
        let runs = tempfile::tempdir().unwrap();
        let kb = 64 * 1024;
        let mut made = Vec::new();
        for (i, rel) in [
            "headers/6.1.0-50-amd64_6.1.176-1",
            "selftests/linux-source-6.1_6.1.176-1",
            "bench/vmtest",
            "hosts/ubuntu-noble",
        ]
        .into_iter()
        .enumerate()
        {
            made.push(entry(&cache, rel, kb, 1000 * (i as u64 + 1)));
        }
        let exec = runs.path().join("exec-1");
        fs::create_dir_all(&exec).unwrap();
        fs::write(exec.join("out"), vec![b'x'; kb]).unwrap();
        let r = gc(&cache, &opts(0, vec![runs.path().to_path_buf()])).unwrap();
        assert!(r.before >= 5 * kb as u64, "{}", render(&r));
        let mut kinds: Vec<Kind> = r.removed.iter().map(|x| x.item.kind).collect();
        kinds.sort_by_key(|k| format!("{k:?}"));
        assert_eq!(kinds, [Kind::Bench, Kind::Headers, Kind::HostRoot, Kind::Run, Kind::Selftests]);
        assert!(made.iter().chain([&exec]).all(|p| !p.exists()));
    }
}
