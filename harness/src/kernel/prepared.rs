//! A kernel ready to boot ([`PreparedKernel`]): the paths of its files in the cache, what pins
//! them, and the exact build results record.
//!
//! It describes a prepared kernel; preparing one is [`super::prepare`]'s job.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::arch::Arch;
use super::describe::{BootFiles, Origin};
use super::manifest::{Manifest, MANIFEST};
use super::matrix::Distro;

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
///
/// Its JSON has flat keys: [`Origin`] and [`BootFiles`] are flattened into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreparedKernel {
    /// The id the run names it by (matrix id, `debian:<version>`, `local:<path>`).
    pub id: String,
    /// `uname -r`, e.g. `6.1.0-50-amd64`.
    pub release: String,
    /// The guest architecture: which QEMU, agent and workloads boot it.
    pub arch: Arch,
    /// The package and suite it came from, for a packaged kernel.
    #[serde(flatten)]
    pub origin: Origin,
    /// Its boot files, absolute paths.
    #[serde(flatten)]
    pub boot: BootFiles<PathBuf>,
    /// The cache entry's `manifest.json` (sha256 of every file), when the kernel came from a
    /// package.
    pub manifest: Option<PathBuf>,
    /// Whether the lock pins its bytes.
    pub pinning: Pinning,
    /// sha256 of the image package (`.deb`) of a Debian build, of the file of a local kernel.
    pub sha256: Option<String>,
}

impl PreparedKernel {
    /// The exact build, as results record it: the spec that boots this build again
    /// (`debian:<package version>`, a local file's path) and what identifies its bytes.
    pub fn build(&self) -> kmatrix_proto::KernelBuild {
        let local = self.pinning == Pinning::Local;
        let spec = match (&self.origin.package_version, local) {
            (Some(v), false) if self.origin.distro == Distro::Ubuntu => format!("ubuntu:{v}"),
            (Some(v), false) => format!("debian:{v}"),
            _ => self.boot.bzimage.display().to_string(),
        };
        let path = |p: &Option<PathBuf>| p.as_ref().filter(|_| local).map(|p| p.display().to_string());
        kmatrix_proto::KernelBuild {
            spec,
            release: self.release.clone(),
            package: self.origin.package.clone(),
            suite: self.origin.suite.clone(),
            sha256: self.sha256.clone(),
            modules: path(&self.boot.modules_dir),
            config: path(&self.boot.config),
        }
    }

    pub(crate) fn empty(id: &str, release: &str) -> PreparedKernel {
        PreparedKernel {
            id: id.into(),
            release: release.into(),
            arch: Arch::X86_64,
            origin: Origin::default(),
            boot: BootFiles::image(PathBuf::new()),
            manifest: None,
            pinning: Pinning::Local,
            sha256: None,
        }
    }

    pub(super) fn from_entry(id: &str, root: &Path, m: &Manifest, pinning: Pinning) -> PreparedKernel {
        PreparedKernel {
            id: id.to_string(),
            release: m.release.clone(),
            arch: m.arch,
            origin: m.origin.clone(),
            boot: m.boot.map(|rel| root.join(rel)),
            manifest: Some(root.join(MANIFEST)),
            pinning,
            sha256: m.debs.iter().find(|d| Some(&d.name) == m.origin.package.as_ref()).map(|d| d.sha256.clone()),
        }
    }
}
