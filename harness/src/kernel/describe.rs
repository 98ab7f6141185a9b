//! The two parts of a kernel build's description that several records share: its boot files
//! ([`BootFiles`]) and where it came from ([`Origin`]). A cache entry's manifest holds both with
//! entry-relative paths, a [`super::PreparedKernel`] with absolute ones, and
//! [`super::KernelInfo`] reports the origin.
//!
//! Each record flattens them (`#[serde(flatten)]`), so their JSON keeps the keys it always had:
//! `manifest.json` (format 1) and `kernels info --json` byte for byte; a `PreparedKernel` (which
//! nothing prints) has the same keys, now in the order of its parts. This module only describes; reading, verifying
//! and preparing a build is [`super::store`]'s and [`super::prepare`]'s job.

use serde::{Deserialize, Serialize};

use super::debian::release::Signature;
use super::matrix::Distro;

/// The files of a kernel build a VM boots from, each a path of type `P`: a `String` relative to
/// its cache entry in the manifest, an absolute `PathBuf` in a prepared kernel.
///
/// The field order is the order `manifest.json` has always written them in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootFiles<P> {
    /// The file for `-kernel` in bzImage mode: the bzImage on x86_64, the plain `Image` on arm64
    /// (for a local ELF kernel, that ELF).
    pub bzimage: P,
    /// The uncompressed ELF with a PVH entry note, for direct boot.
    pub vmlinux: Option<P>,
    /// The `.BTF` section of vmlinux.
    pub btf: Option<P>,
    /// The kernel's `.config`, when the package ships one or the user passed `--config`.
    pub config: Option<P>,
    /// Debian ships a one-line placeholder here; real symbols need the -dbg package.
    pub system_map: Option<P>,
    /// `lib/modules/<release>`, with a generated `modules.dep`.
    pub modules_dir: Option<P>,
}

impl<P> BootFiles<P> {
    /// Only the image, no other file (yet).
    pub fn image(bzimage: P) -> BootFiles<P> {
        BootFiles { bzimage, vmlinux: None, btf: None, config: None, system_map: None, modules_dir: None }
    }

    /// The same files with each path passed through `f` (each present one once).
    pub fn map<Q>(&self, mut f: impl FnMut(&P) -> Q) -> BootFiles<Q> {
        BootFiles {
            bzimage: f(&self.bzimage),
            vmlinux: self.vmlinux.as_ref().map(&mut f),
            btf: self.btf.as_ref().map(&mut f),
            config: self.config.as_ref().map(&mut f),
            system_map: self.system_map.as_ref().map(&mut f),
            modules_dir: self.modules_dir.as_ref().map(&mut f),
        }
    }

    /// The single files (every one but the modules directory) that are present, `bzimage` first.
    pub fn single_files(&self) -> impl Iterator<Item = &P> {
        [Some(&self.bzimage), self.vmlinux.as_ref(), self.btf.as_ref(), self.config.as_ref(), self.system_map.as_ref()]
            .into_iter()
            .flatten()
    }
}

/// Where a kernel build came from: the Debian image package and the suite it was fetched from.
/// All `None` for a kernel file the user built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The distribution whose archive the package came from; Debian is left out of the JSON
    /// (entries and outputs written before Ubuntu existed have no such key).
    #[serde(default, skip_serializing_if = "Distro::is_debian")]
    pub distro: Distro,
    /// The image package, for a packaged kernel.
    pub package: Option<String>,
    /// The image package's Debian version.
    pub package_version: Option<String>,
    /// The suite the package came from.
    pub suite: Option<String>,
    /// How the suite's Release was authenticated.
    pub signature: Option<Signature>,
}

impl Origin {
    /// Serialize only `package` and `package_version`, as `kmatrix kernels info --json` has
    /// always printed them (its output did not carry the suite or the signature).
    pub(super) fn serialize_package<S: serde::Serializer>(o: &Origin, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Package<'a> {
            package: &'a Option<String>,
            package_version: &'a Option<String>,
        }
        Package { package: &o.package, package_version: &o.package_version }.serialize(s)
    }
}
