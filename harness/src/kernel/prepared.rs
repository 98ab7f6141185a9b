//! A kernel ready to boot ([`PreparedKernel`]): the paths of its files in the cache, what pins
//! them, and the exact build results record.
//!
//! It describes a prepared kernel; preparing one is [`super::prepare`]'s job.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::arch::Arch;
use super::index::Signature;
use super::store::{Manifest, MANIFEST};

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
    /// The id the run names it by (matrix id, `debian:<version>`, `local:<path>`).
    pub id: String,
    /// `uname -r`, e.g. `6.1.0-50-amd64`.
    pub release: String,
    /// The guest architecture: which QEMU, agent and workloads boot it.
    pub arch: Arch,
    /// The image package, for a packaged kernel.
    pub package: Option<String>,
    /// The image package's Debian version.
    pub package_version: Option<String>,
    /// The file for `-kernel` in bzImage mode (for a local ELF kernel, that ELF).
    pub bzimage: PathBuf,
    /// The uncompressed ELF with a PVH entry note, for direct boot.
    pub vmlinux: Option<PathBuf>,
    /// The kernel's `.config`, when the package ships one or the user passed `--config`.
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
    /// Whether the lock pins its bytes.
    pub pinning: Pinning,
    /// The suite the package came from.
    pub suite: Option<String>,
    /// How the suite's Release was authenticated.
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

    pub(super) fn from_entry(id: &str, root: &Path, m: &Manifest, pinning: Pinning) -> PreparedKernel {
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
