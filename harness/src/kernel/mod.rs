//! The kernel provider: turns a kernel spec (`debian-6.1`, `debian:6.12.57-1`, a local bzImage)
//! into files on disk a VM can boot — bzImage, the uncompressed PVH `vmlinux`, its BTF, config and
//! modules with a `modules.dep` — fetched from the distribution mirror, verified along the
//! archive's chain of trust, and cached.
//!
//! It does not boot anything or build guest images; `vm/` and `image/` take a [`PreparedKernel`]
//! from here. All functions block (network and disk); async callers use `spawn_blocking`.

pub mod arch;
pub mod arm64;
pub mod changelog;
pub mod compress;
pub mod config;
pub mod deb;
mod error;
mod headers;
pub mod image;
pub mod index;
pub mod matrix;
pub mod mirror;
pub mod modules;
mod source;
mod store;
pub mod version;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::cache::Cache;
pub use arch::Arch;
pub use compress::Compression;
pub use error::KernelError;
use error::Result;
pub use headers::{headers, HeadersTree};
use index::{DebPackage, Resolved};
pub use index::{Signature, TrustOptions};
pub use matrix::{KernelsDir, Lock, LockedKernel, Matrix, MatrixKernel};
pub use mirror::Mirror;
pub use modules::{module_closure, read_module, ModuleClosure, ModuleFile};
pub use source::{selftests, SelftestTree};
use store::{Manifest, MANIFEST};

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// A kernel of `kernels/matrix.toml`, e.g. `debian-6.1`.
    Matrix(String),
    /// Any build the mirror has, by Debian package version: `debian:6.12.57-1` (or the newest
    /// build of an upstream version: `debian:6.12.57`).
    Debian(String),
    /// A kernel built by the user: a bzImage or an ELF vmlinux with a PVH note.
    Local { path: PathBuf, modules: Option<PathBuf>, config: Option<PathBuf> },
}

impl FromStr for KernelSpec {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<KernelSpec> {
        let bad = |detail: &str| KernelError::BadSpec { spec: s.to_string(), detail: detail.to_string() };
        if s.trim().is_empty() {
            return Err(bad("empty; use a matrix id (debian-6.1), debian:<version> or a path"));
        }
        if let Some(v) = s.strip_prefix("debian:") {
            let ok = !v.is_empty()
                && v.starts_with(|c: char| c.is_ascii_digit())
                && v.chars().all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c));
            if !ok {
                return Err(bad("after debian: comes a package version such as 6.12.57-1"));
            }
            return Ok(KernelSpec::Debian(v.to_string()));
        }
        if s.contains('/') || Path::new(s).is_file() {
            return Ok(KernelSpec::Local { path: PathBuf::from(s), modules: None, config: None });
        }
        Ok(KernelSpec::Matrix(s.to_string()))
    }
}

impl std::fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelSpec::Matrix(id) => f.write_str(id),
            KernelSpec::Debian(v) => write!(f, "debian:{v}"),
            KernelSpec::Local { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

/// How to fetch: mirror, trust, and the extras of a local kernel.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// `--mirror`; else `KMATRIX_MIRROR`, else the host's apt configuration.
    pub mirror: Option<String>,
    /// `--modules DIR` for a local kernel (`lib/modules/<release>` or its parent).
    pub modules: Option<PathBuf>,
    /// `--config FILE` for a local kernel.
    pub config: Option<PathBuf>,
    /// Where `matrix.toml` and `kernels.lock` are; else [`KernelsDir::locate`].
    pub kernels_dir: Option<PathBuf>,
    pub trust: TrustOptions,
    /// How long a download may wait for data before it is called stalled; else
    /// `KMATRIX_READ_TIMEOUT` seconds, else 30 s ([`mirror::DEFAULT_READ_TIMEOUT`]).
    pub read_timeout: Option<std::time::Duration>,
}

/// Whether a kernel's bytes are pinned by the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pinning {
    /// Packages and extracted files match `kernels.lock`.
    Locked,
    /// Resolved from the mirror now: the lock does not name it (say "not pinned").
    NotPinned,
    /// A local file.
    Local,
}

/// A kernel ready to boot: every path exists and was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreparedKernel {
    pub id: String,
    /// `uname -r`, e.g. `6.1.0-50-amd64`.
    pub release: String,
    /// The guest architecture: which QEMU, agent and workloads boot it.
    pub arch: Arch,
    pub package: Option<String>,
    pub package_version: Option<String>,
    /// The file for `-kernel` in bzImage mode (for a local ELF kernel, that ELF).
    pub bzimage: PathBuf,
    /// The uncompressed ELF with a PVH entry note, for direct boot.
    pub vmlinux: Option<PathBuf>,
    pub config: Option<PathBuf>,
    /// Debian ships a one-line placeholder here; real symbols need the -dbg package.
    pub system_map: Option<PathBuf>,
    /// The `.BTF` section of vmlinux.
    pub btf: Option<PathBuf>,
    /// `lib/modules/<release>`, with a generated `modules.dep`.
    pub modules_dir: Option<PathBuf>,
    /// The cache entry's `manifest.json` (sha256 of every file), when the kernel came from a
    /// package.
    pub manifest: Option<PathBuf>,
    pub pinning: Pinning,
    pub suite: Option<String>,
    pub signature: Option<Signature>,
    /// sha256 of the image package (`.deb`) of a Debian build, of the file of a local kernel.
    pub sha256: Option<String>,
}

impl PreparedKernel {
    /// The exact build, as results record it: the spec that boots this build again
    /// (`debian:<package version>`, a local file's path) and what identifies its bytes.
    pub fn build(&self) -> kmatrix_proto::KernelBuild {
        let local = self.pinning == Pinning::Local;
        let spec = match (&self.package_version, local) {
            (Some(v), false) => format!("debian:{v}"),
            _ => self.bzimage.display().to_string(),
        };
        let path = |p: &Option<PathBuf>| p.as_ref().filter(|_| local).map(|p| p.display().to_string());
        kmatrix_proto::KernelBuild {
            spec,
            release: self.release.clone(),
            package: self.package.clone(),
            suite: self.suite.clone(),
            sha256: self.sha256.clone(),
            modules: path(&self.modules_dir),
            config: path(&self.config),
        }
    }

    pub(crate) fn empty(id: &str, release: &str) -> PreparedKernel {
        PreparedKernel {
            id: id.into(),
            release: release.into(),
            arch: Arch::X86_64,
            package: None,
            package_version: None,
            bzimage: PathBuf::new(),
            vmlinux: None,
            config: None,
            system_map: None,
            btf: None,
            modules_dir: None,
            manifest: None,
            pinning: Pinning::Local,
            suite: None,
            signature: None,
            sha256: None,
        }
    }

    fn from_entry(id: &str, root: &Path, m: &Manifest, pinning: Pinning) -> PreparedKernel {
        let p = |rel: &Option<String>| rel.as_ref().map(|r| root.join(r));
        PreparedKernel {
            id: id.to_string(),
            release: m.release.clone(),
            arch: m.arch,
            package: m.package.clone(),
            package_version: m.package_version.clone(),
            bzimage: root.join(&m.bzimage),
            vmlinux: p(&m.vmlinux),
            config: p(&m.config),
            system_map: p(&m.system_map),
            btf: p(&m.btf),
            modules_dir: p(&m.modules_dir),
            manifest: Some(root.join(MANIFEST)),
            pinning,
            suite: m.suite.clone(),
            signature: m.signature.clone(),
            sha256: m.debs.iter().find(|d| Some(&d.name) == m.package.as_ref()).map(|d| d.sha256.clone()),
        }
    }
}

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
                return prepare_resolved(id, &r, Some((&l.files, &lock_name)), None, cache, opts);
            }
            let mirror = Mirror::from_options(opts)?;
            let idx = index::fetch_suite(&mirror, &mk.suite, mk.arch, cache, &opts.trust)?;
            let r = index::pick_line(&idx, &mk.line, mk.flavour())?;
            prepare_resolved(id, &r, None, Some(&mirror), cache, opts)
        }
        KernelSpec::Debian(v) => {
            let matrix = KernelsDir::locate(opts.kernels_dir.as_deref()).matrix()?;
            let mirror = Mirror::from_options(opts)?;
            let indexes = fetch_suites(&mirror, &matrix.suites(), cache, &opts.trust)?;
            let r = index::pick_version(&indexes, v, "amd64")?;
            prepare_resolved(&format!("debian:{v}"), &r, None, Some(&mirror), cache, opts)
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
fn fetch_suites(
    mirror: &Mirror,
    suites: &[String],
    cache: &Cache,
    trust: &TrustOptions,
) -> Result<Vec<index::SuiteIndex>> {
    let mut out = Vec::new();
    let mut last = None;
    for s in suites {
        match index::fetch_suite(mirror, s, Arch::X86_64, cache, trust) {
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
            discovered = Mirror::from_options(opts)?;
            &discovered
        }
    };
    let downloads =
        tempfile::Builder::new().prefix(".download-").tempdir_in(&kroot).map_err(KernelError::io(&kroot))?;
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
    let staging = tempfile::Builder::new().prefix(".staging-").tempdir_in(&kroot).map_err(KernelError::io(&kroot))?;
    let seed = Manifest {
        format: 1,
        release: r.release.clone(),
        package: Some(r.image.clone()),
        package_version: Some(r.version.clone()),
        suite: Some(r.suite.clone()),
        signature: Some(r.signature.clone()),
        arch: r.arch,
        debs: r.packages.iter().map(|p| DebPackage { depends: String::new(), ..p.clone() }).collect(),
        bzimage: String::new(),
        vmlinux: None,
        btf: None,
        config: None,
        system_map: None,
        modules_dir: None,
        files: BTreeMap::new(),
    };
    let m = store::build_entry(staging.path(), &debs, seed)?;
    drop(downloads); // the .deb files are not kept
    check_pinned(id, &m, pinned)?;
    if entry.exists() {
        fs::remove_dir_all(&entry).map_err(KernelError::io(&entry))?;
    }
    let staged = staging.keep();
    fs::rename(&staged, &entry).map_err(KernelError::io(&entry))?;
    Ok(PreparedKernel::from_entry(id, &entry, &m, pinning))
}

/// A kernel file the user built: check it is a bzImage or a PVH ELF, derive `vmlinux` and its
/// BTF into `kernels/local-<sha256>/`.
fn prepare_local(path: &Path, modules: Option<&Path>, config: Option<&Path>, cache: &Cache) -> Result<PreparedKernel> {
    let not_kernel = |detail: String| KernelError::NotAKernel { path: path.to_path_buf(), detail };
    let bytes = fs::read(path).map_err(KernelError::io(path))?;
    let abs = fs::canonicalize(path).map_err(KernelError::io(path))?;
    let digest = hex::encode(sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes)));
    let kroot = cache.dir("kernels")?;
    let name = format!("local-{}", &digest[..16]);
    cache.hold(&format!("kernel-{name}"))?;
    let _guard = cache.lock(&format!("kernel-{name}"))?;
    let entry = kroot.join(&name);
    let mut k = PreparedKernel::empty(&format!("local:{}", abs.display()), "");
    k.bzimage = abs.clone();
    k.pinning = Pinning::Local;
    k.sha256 = Some(digest.clone());

    let (release, vmlinux_from_bz) = match image::parse_bzimage(&bytes) {
        Ok(bz) => {
            let release = bz.release();
            (release, true)
        }
        Err(bz_why) => match image::parse_elf(&bytes) {
            Ok(elf) => {
                if elf.pvh_entry.is_none() {
                    return Err(not_kernel(
                        "an ELF kernel without the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build with CONFIG_PVH=y or pass the bzImage".into(),
                    ));
                }
                k.vmlinux = Some(abs.clone());
                (image::banner_release(&bytes), false)
            }
            Err(elf_why) => {
                return Err(not_kernel(format!("neither a bzImage ({bz_why}) nor a kernel ELF ({elf_why})")))
            }
        },
    };
    drop(bytes);
    let mpath = entry.join(MANIFEST);
    let manifest = match Manifest::load(&mpath).and_then(|m| m.verify(&entry).map(|_| m)) {
        Ok(m) => m,
        Err(_) => {
            let (vmlinux, btf) = if vmlinux_from_bz {
                store::derive_vmlinux(&abs)?
            } else {
                let b = fs::read(&abs).map_err(KernelError::io(&abs))?;
                let btf = image::elf_section(&b, ".BTF").map(<[u8]>::to_vec);
                (None, btf)
            };
            let staging =
                tempfile::Builder::new().prefix(".staging-").tempdir_in(&kroot).map_err(KernelError::io(&kroot))?;
            let mut files = BTreeMap::new();
            let mut m = Manifest {
                format: 1,
                release: release.clone().unwrap_or_default(),
                package: None,
                package_version: None,
                suite: None,
                signature: None,
                arch: Arch::X86_64,
                debs: Vec::new(),
                bzimage: abs.display().to_string(),
                vmlinux: None,
                btf: None,
                config: None,
                system_map: None,
                modules_dir: None,
                files: BTreeMap::new(),
            };
            for (rel, data, slot) in [("vmlinux", vmlinux, &mut m.vmlinux), ("vmlinux.btf", btf, &mut m.btf)] {
                if let Some(d) = data {
                    let p = staging.path().join(rel);
                    fs::write(&p, &d).map_err(KernelError::io(&p))?;
                    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&d));
                    files.insert(rel.to_string(), store::FileSum { sha256: sha, size: d.len() as u64 });
                    *slot = Some(rel.to_string());
                }
            }
            m.files = files;
            let json = serde_json::to_vec_pretty(&m)
                .map_err(|e| KernelError::Parse { what: "manifest".into(), detail: e.to_string() })?;
            crate::cache::write_atomic(&staging.path().join(MANIFEST), &json)?;
            if entry.exists() {
                fs::remove_dir_all(&entry).map_err(KernelError::io(&entry))?;
            }
            fs::rename(staging.keep(), &entry).map_err(KernelError::io(&entry))?;
            m
        }
    };
    if let Some(v) = &manifest.vmlinux {
        k.vmlinux = Some(entry.join(v));
    }
    k.btf = manifest.btf.as_ref().map(|b| entry.join(b));
    k.release = release.unwrap_or_default();
    if let Some(c) = config {
        if !c.is_file() {
            return Err(KernelError::Invalid {
                path: c.display().to_string(),
                detail: "--config is not a file".into(),
            });
        }
        k.config = Some(c.to_path_buf());
    }
    if let Some(dir) = modules {
        k.modules_dir = Some(local_modules_dir(dir, &k.release)?);
        if k.release.is_empty() {
            if let Some(n) = k.modules_dir.as_ref().and_then(|d| d.file_name()) {
                k.release = n.to_string_lossy().into_owned();
            }
        }
    }
    Ok(k)
}

/// `DIR` is `lib/modules/<release>` itself, or a directory holding `<release>/`.
fn local_modules_dir(dir: &Path, release: &str) -> Result<PathBuf> {
    let looks =
        |d: &Path| d.join("modules.order").is_file() || d.join("modules.dep").is_file() || d.join("kernel").is_dir();
    if looks(dir) {
        return Ok(dir.to_path_buf());
    }
    for cand in [dir.join(release), dir.join("lib/modules").join(release)] {
        if !release.is_empty() && looks(&cand) {
            return Ok(cand);
        }
    }
    Err(KernelError::Invalid {
        path: dir.display().to_string(),
        detail: format!("--modules is neither lib/modules/{release} nor a directory holding it"),
    })
}

/// One build of a kernel line on the mirror, for bisecting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AvailableKernel {
    pub package: String,
    pub version: String,
    pub suite: String,
    /// The spec that selects it: `debian:<version>`.
    pub spec: String,
}

/// Every build of `line` (`6.12`) in every suite the matrix knows, newest first.
pub fn available(line: &str, cache: &Cache, opts: &FetchOptions) -> Result<Vec<AvailableKernel>> {
    let matrix = KernelsDir::locate(opts.kernels_dir.as_deref()).matrix()?;
    let mirror = Mirror::from_options(opts)?;
    let indexes = fetch_suites(&mirror, &matrix.suites(), cache, &opts.trust)?;
    let mut out: Vec<AvailableKernel> = indexes
        .iter()
        .flat_map(|idx| {
            index::builds_of_line(idx, line, "amd64").into_iter().map(|p| AvailableKernel {
                package: p.name.clone(),
                version: p.version.clone(),
                suite: idx.suite.clone(),
                spec: format!("debian:{}", p.version),
            })
        })
        .collect();
    out.sort_by(|a, b| version::compare(&b.version, &a.version).then_with(|| a.suite.cmp(&b.suite)));
    Ok(out)
}

/// What can be known about a kernel before booting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelInfo {
    pub id: String,
    pub release: String,
    pub package: Option<String>,
    pub package_version: Option<String>,
    pub pinning: Pinning,
    /// `vmlinux.btf` was extracted from the image.
    pub btf_file: bool,
    /// `CONFIG_DEBUG_INFO_BTF`, when the config is known.
    pub btf_config: Option<bool>,
    pub pvh: bool,
    /// Each of [`config::TRACING_OPTIONS`] with its value (`y`, `m`, a string), `None` when not set
    /// or no config is known.
    pub options: Vec<(String, Option<String>)>,
}

/// Version, BTF and tracing options of a prepared kernel, from its files (no VM).
pub fn info(kernel: &PreparedKernel) -> Result<KernelInfo> {
    let cfg = match &kernel.config {
        Some(p) => Some(config::KernelConfig::parse(&fs::read_to_string(p).map_err(KernelError::io(p))?)),
        None => None,
    };
    Ok(KernelInfo {
        id: kernel.id.clone(),
        release: kernel.release.clone(),
        package: kernel.package.clone(),
        package_version: kernel.package_version.clone(),
        pinning: kernel.pinning,
        btf_file: kernel.btf.as_ref().is_some_and(|p| p.is_file()),
        btf_config: cfg.as_ref().map(|c| c.is_enabled("DEBUG_INFO_BTF")),
        pvh: kernel.vmlinux.is_some(),
        options: config::TRACING_OPTIONS
            .iter()
            .map(|o| (o.to_string(), cfg.as_ref().and_then(|c| c.get(o)).map(str::to_string)))
            .collect(),
    })
}

/// The ids of the kernel matrix, in file order.
pub fn matrix_ids() -> Result<Vec<String>> {
    Ok(KernelsDir::try_locate(None)?.matrix()?.ids().into_iter().map(str::to_string).collect())
}

/// `names` as given to `--kernels`, each group ([`Matrix::group`]: `all`, `default`, `arm64`,
/// ...) replaced by its kernels, once each, in order; other names are kept for `KernelSpec`.
pub fn expand_names(names: &[String]) -> Result<Vec<String>> {
    let matrix = KernelsDir::try_locate(None)?.matrix()?;
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let ids = match matrix.group(n) {
            Some(ids) if ids.is_empty() => {
                return Err(KernelError::Invalid {
                    path: format!("--kernels {n}"),
                    detail: format!("the matrix has no kernel in group {n:?} (ids: {})", matrix.ids().join(", ")),
                })
            }
            Some(ids) => ids.into_iter().map(str::to_string).collect(),
            None => vec![n.clone()],
        };
        for id in ids {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// The ids of the default matrix (see [`Matrix::default_ids`]), in file order.
pub fn default_ids() -> Result<Vec<String>> {
    Ok(KernelsDir::try_locate(None)?.matrix()?.default_ids().into_iter().map(str::to_string).collect())
}

/// The [`config::TRACING_OPTIONS`] the kernel's config sets (`KPROBES` → `y`); empty when the
/// config is unknown or unreadable.
pub fn tracing_config(kernel: &PreparedKernel) -> BTreeMap<String, String> {
    let Some(text) = kernel.config.as_ref().and_then(|p| fs::read_to_string(p).ok()) else { return BTreeMap::new() };
    let cfg = config::KernelConfig::parse(&text);
    config::TRACING_OPTIONS.iter().filter_map(|o| cfg.get(o).map(|v| (o.to_string(), v.to_string()))).collect()
}

/// Re-resolve every matrix id on the mirror (newest build of its line), prepare it (download,
/// verify, extract) and rewrite the lock atomically. Returns the new lock.
pub fn update_lock(cache: &Cache, opts: &FetchOptions) -> Result<Lock> {
    let kd = KernelsDir::locate(opts.kernels_dir.as_deref());
    let matrix = kd.matrix()?;
    let mirror = Mirror::from_options(opts)?;
    let mut lock = Lock { version: 1, kernels: BTreeMap::new() };
    let mut indexes: BTreeMap<(String, Arch), index::SuiteIndex> = BTreeMap::new();
    for mk in &matrix.kernels {
        let key = (mk.suite.clone(), mk.arch);
        if !indexes.contains_key(&key) {
            let idx = index::fetch_suite(&mirror, &mk.suite, mk.arch, cache, &opts.trust)?;
            indexes.insert(key.clone(), idx);
        }
        let Some(idx) = indexes.get(&key) else { continue };
        let r = index::pick_line(idx, &mk.line, mk.flavour())?;
        let k = prepare_resolved(&mk.id, &r, None, Some(&mirror), cache, opts)?;
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
                packages: r.packages.iter().map(|p| DebPackage { depends: String::new(), ..p.clone() }).collect(),
                files: m.pinned_files(),
            },
        );
    }
    kd.write_lock(&lock)?;
    Ok(lock)
}

/// Remove the kernel cache entries the lock does not name (other builds, local kernels, stale
/// indexes), except those a running kmatrix holds. Returns what was removed.
pub fn gc(cache: &Cache, lock: &Lock) -> Result<Vec<PathBuf>> {
    let kroot = cache.dir("kernels")?;
    let keep: std::collections::HashSet<String> =
        lock.kernels.values().map(|k| store::entry_name(&k.image, &k.version)).collect();
    let mut removed = Vec::new();
    for e in fs::read_dir(&kroot).map_err(KernelError::io(&kroot))? {
        let e = e.map_err(KernelError::io(&kroot))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name == "index" || keep.contains(&name) || !path.is_dir() {
            continue;
        }
        if name.starts_with('.') {
            // A staging or download directory: only when old, it may belong to a running prepare.
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 24 * 3600);
            if !old {
                continue;
            }
        }
        // One a running kmatrix holds stays (`kmatrix gc` says so).
        let Some(_claim) = cache.claim(&format!("kernel-{name}"))? else { continue };
        let _guard = cache.lock(&format!("kernel-{name}"))?;
        fs::remove_dir_all(&path).map_err(KernelError::io(&path))?;
        removed.push(path);
    }
    Ok(removed)
}
