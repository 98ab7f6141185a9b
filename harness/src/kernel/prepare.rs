//! Preparing a packaged kernel: resolve a spec (the lock first, else the mirror's indexes),
//! reuse its cache entry when it still matches, else download, verify and extract it; list the
//! builds of a line; rewrite the lock.
//!
//! Local kernel files are [`super::local`]'s; what an entry holds is [`super::store`]'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::arch::Arch;
use super::archive::{Archive, AvailableKernel};
use super::debian::index::{DebPackage, Resolved, SuiteIndex};
use super::debian::version;
use super::debian::DebianArchive;
use super::describe::Origin;
use super::error::{KernelError, Result};
use super::local::prepare_local;
use super::manifest::{Manifest, MANIFEST};
use super::matrix::{Distro, KernelsDir, Lock, LockedKernel};
use super::mirror::Mirror;
use super::prepared::{Pinning, PreparedKernel};
use super::spec::{FetchOptions, KernelSpec};
use super::store;
use super::ubuntu::UbuntuArchive;
use crate::cache::Cache;

/// Make `spec` bootable: resolve it (lock, else mirror), download and verify what is missing,
/// extract, derive `vmlinux`, and return the paths. A warm cache costs no network. Two
/// concurrent calls for one kernel download it once.
pub fn prepare(spec: &KernelSpec, cache: &Cache, opts: &FetchOptions) -> Result<PreparedKernel> {
    match spec {
        KernelSpec::Matrix(id) => {
            let kd = KernelsDir::locate(opts.kernels_dir.as_deref());
            let matrix = kd.matrix()?;
            let mk = matrix
                .get(id)
                .ok_or_else(|| KernelError::UnknownKernel { id: id.clone(), known: matrix.ids().join(", ") })?;
            let lock = kd.lock()?;
            let lock_name =
                kd.lock_path().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in kernels.lock".into());
            // A lock entry for another suite or line (the matrix changed since) does not count.
            let current =
                |l: &&LockedKernel| l.suite == mk.suite && l.arch == mk.arch && version::in_line(&l.version, &mk.line);
            if let Some(l) = lock.kernels.get(id).filter(current) {
                let r = Resolved {
                    suite: l.suite.clone(),
                    arch: l.arch,
                    signature: l.signature.clone(),
                    image: l.image.clone(),
                    version: l.version.clone(),
                    release: l.release.clone(),
                    packages: l.packages.clone(),
                };
                return prepare_resolved(id, mk.distro, &r, Some((&l.files, &lock_name)), None, cache, opts);
            }
            let a = archive(mk.distro, opts)?;
            let idx = a.index(&mk.suite, mk.arch, cache)?;
            let r = a.pick_line(&idx, &mk.line, mk.flavour.as_deref())?;
            prepare_resolved(id, mk.distro, &r, None, Some(a.mirror()), cache, opts)
        }
        KernelSpec::Debian(v) => {
            let matrix = KernelsDir::locate(opts.kernels_dir.as_deref()).matrix()?;
            let a = archive(Distro::Debian, opts)?;
            let indexes = fetch_suites(a.as_ref(), &a.search_suites(&matrix), cache)?;
            let r = a.pick_version(&indexes, v)?;
            prepare_resolved(&format!("debian:{v}"), Distro::Debian, &r, None, Some(a.mirror()), cache, opts)
        }
        KernelSpec::Ubuntu(v) => {
            let matrix = KernelsDir::locate(opts.kernels_dir.as_deref()).matrix()?;
            let a = archive(Distro::Ubuntu, opts)?;
            let indexes = fetch_suites(a.as_ref(), &a.search_suites(&matrix), cache)?;
            let r = a.pick_version(&indexes, v)?;
            prepare_resolved(&format!("ubuntu:{v}"), Distro::Ubuntu, &r, None, Some(a.mirror()), cache, opts)
        }
        KernelSpec::Local { path, modules, config } => {
            let modules = opts.modules.as_ref().or(modules.as_ref());
            let config = opts.config.as_ref().or(config.as_ref());
            prepare_local(path, modules.map(PathBuf::as_path), config.map(PathBuf::as_path), cache)
        }
    }
}

/// Fetch the indexes of `suites`; a suite the mirror does not have is skipped with a warning,
/// unless none is left.
fn fetch_suites(a: &dyn Archive, suites: &[String], cache: &Cache) -> Result<Vec<SuiteIndex>> {
    let mut out = Vec::new();
    let mut last = None;
    for s in suites {
        match a.index(s, Arch::X86_64, cache) {
            Ok(i) => out.push(i),
            Err(e @ KernelError::UnknownSuite { .. }) => {
                eprintln!("warning: skipping suite {s}: {e}");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    match (out.is_empty(), last) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

/// Files pinned by a lock entry, and the lock's name for messages.
type Pinned<'a> = (&'a BTreeMap<String, String>, &'a str);

fn check_pinned(id: &str, m: &Manifest, pinned: Option<Pinned>) -> Result<()> {
    let Some((files, lock)) = pinned else { return Ok(()) };
    let have = m.pinned_files();
    for (file, want) in files {
        let got = have.get(file).cloned().unwrap_or_else(|| "(missing)".into());
        if &got != want {
            return Err(KernelError::LockMismatch {
                id: id.to_string(),
                lock: lock.to_string(),
                file: file.clone(),
                expected: want.clone(),
                actual: got,
            });
        }
    }
    Ok(())
}

/// The cache entry of a resolved build: reuse it when its manifest matches what is on disk (and
/// the packages asked for), else download, verify and extract it again.
fn prepare_resolved(
    id: &str,
    distro: Distro,
    r: &Resolved,
    pinned: Option<Pinned>,
    mirror: Option<&Mirror>,
    cache: &Cache,
    opts: &FetchOptions,
) -> Result<PreparedKernel> {
    let pinning = if pinned.is_some() { Pinning::Locked } else { Pinning::NotPinned };
    let kroot = cache.dir("kernels")?;
    let name = store::entry_name(&r.image, &r.version);
    // Used by this process from now on: `kmatrix gc` leaves it alone.
    cache.hold(&format!("kernel-{name}"))?;
    let _guard = cache.lock(&format!("kernel-{name}"))?;
    let entry = kroot.join(&name);
    let mpath = entry.join(MANIFEST);
    if mpath.exists() {
        let check = Manifest::load(&mpath).and_then(|m| {
            let same_debs = m.debs.iter().map(|d| &d.sha256).eq(r.packages.iter().map(|d| &d.sha256));
            if !same_debs {
                return Err(KernelError::Invalid {
                    path: mpath.display().to_string(),
                    detail: "built from other packages".into(),
                });
            }
            m.verify(&entry)?;
            Ok(m)
        });
        match check {
            Ok(m) => {
                check_pinned(id, &m, pinned)?;
                return Ok(PreparedKernel::from_entry(id, &entry, &m, pinning));
            }
            Err(e) => eprintln!(
                "warning: cache entry {} does not match its manifest ({e}); fetching it again",
                entry.display()
            ),
        }
    }

    let discovered;
    let mirror = match mirror {
        Some(m) => m,
        None => {
            discovered = archive(distro, opts)?;
            discovered.mirror()
        }
    };
    let downloads = store::temp_dir(&kroot, ".download-")?;
    let mut debs = Vec::new();
    for pkg in &r.packages {
        let dest = downloads.path().join(store::entry_name(&pkg.name, "deb"));
        match mirror.download_checked(&pkg.filename, &pkg.sha256, pkg.size, &dest, pkg.size, &pkg.name) {
            Err(KernelError::NotFound { url }) if pinning == Pinning::Locked => {
                return Err(KernelError::PinnedGone {
                    id: id.to_string(),
                    package: format!("{} {}", pkg.name, pkg.version),
                    url,
                })
            }
            other => other?,
        }
        debs.push((pkg.clone(), dest));
    }
    let staging = store::temp_dir(&kroot, ".staging-")?;
    let seed = Manifest {
        origin: Origin {
            distro,
            package: Some(r.image.clone()),
            package_version: Some(r.version.clone()),
            suite: Some(r.suite.clone()),
            signature: Some(r.signature.clone()),
        },
        debs: recorded_packages(r),
        ..Manifest::empty(r.release.clone(), r.arch)
    };
    let m = store::build_entry(staging.path(), &debs, seed)?;
    drop(downloads); // the .deb files are not kept
    check_pinned(id, &m, pinned)?;
    store::install(staging, &entry)?;
    Ok(PreparedKernel::from_entry(id, &entry, &m, pinning))
}

/// Every build of `line` (`6.12`) of `distro` in every suite the matrix knows, newest first.
pub fn available(distro: Distro, line: &str, cache: &Cache, opts: &FetchOptions) -> Result<Vec<AvailableKernel>> {
    let matrix = KernelsDir::locate(opts.kernels_dir.as_deref()).matrix()?;
    let a = archive(distro, opts)?;
    let indexes = fetch_suites(a.as_ref(), &a.search_suites(&matrix), cache)?;
    let mut out: Vec<AvailableKernel> = indexes.iter().flat_map(|idx| a.builds_of_line(idx, line)).collect();
    out.sort_by(|a, b| version::compare(&b.version, &a.version).then_with(|| a.suite.cmp(&b.suite)));
    Ok(out)
}

/// Re-resolve every matrix id on the mirror (newest build of its line), prepare it (download,
/// verify, extract) and rewrite the lock atomically. Returns the new lock.
pub fn update_lock(cache: &Cache, opts: &FetchOptions) -> Result<Lock> {
    let kd = KernelsDir::locate(opts.kernels_dir.as_deref());
    let matrix = kd.matrix()?;
    let mut archives: BTreeMap<Distro, Box<dyn Archive>> = BTreeMap::new();
    let mut lock = Lock { version: 1, kernels: BTreeMap::new() };
    let mut indexes: BTreeMap<(Distro, String, Arch), SuiteIndex> = BTreeMap::new();
    for mk in &matrix.kernels {
        let a = match archives.entry(mk.distro) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(archive(mk.distro, opts)?),
        };
        let key = (mk.distro, mk.suite.clone(), mk.arch);
        if !indexes.contains_key(&key) {
            indexes.insert(key.clone(), a.index(&mk.suite, mk.arch, cache)?);
        }
        let Some(idx) = indexes.get(&key) else { continue };
        let r = a.pick_line(idx, &mk.line, mk.flavour.as_deref())?;
        let k = prepare_resolved(&mk.id, mk.distro, &r, None, Some(a.mirror()), cache, opts)?;
        let m = Manifest::load(k.manifest.as_deref().unwrap_or(Path::new(MANIFEST)))?;
        lock.kernels.insert(
            mk.id.clone(),
            LockedKernel {
                suite: r.suite.clone(),
                arch: r.arch,
                image: r.image.clone(),
                version: r.version.clone(),
                release: r.release.clone(),
                signature: r.signature.clone(),
                packages: recorded_packages(&r),
                files: m.pinned_files(),
            },
        );
    }
    kd.write_lock(&lock)?;
    Ok(lock)
}

/// The packages of a build as a manifest and the lock record them: without their `Depends`,
/// which only served to find them.
fn recorded_packages(r: &Resolved) -> Vec<DebPackage> {
    r.packages.iter().map(|p| DebPackage { depends: String::new(), ..p.clone() }).collect()
}

/// The archive of `distro`, its mirror found as [`FetchOptions`] and the host say.
pub fn archive(distro: Distro, opts: &FetchOptions) -> Result<Box<dyn Archive>> {
    Ok(match distro {
        Distro::Debian => Box::new(DebianArchive::new(opts)?),
        Distro::Ubuntu => Box::new(UbuntuArchive::new(opts)?),
    })
}
