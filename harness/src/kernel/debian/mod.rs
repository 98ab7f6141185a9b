//! The Debian archive: a suite's signed Release ([`release`]), its Packages index and the kernel
//! packages picked from it ([`index`]), dpkg version ordering ([`version`], not a kernel's
//! `uname -r`: that is `kmatrix_proto::KernelVersion`), and a build's Debian changelog
//! ([`changelog`]).
//!
//! Ubuntu's archive has the same layout (InRelease, `main/binary-amd64/Packages.xz`, `.deb`
//! files); `super::ubuntu` reuses these parsers with its own mirror, keyring and package names.

pub mod changelog;
pub mod index;
pub mod release;
pub mod version;

use crate::cache::Cache;
use crate::kernel::arch::Arch;
use crate::kernel::archive::{Archive, AvailableKernel};
use crate::kernel::error::Result;
use crate::kernel::matrix::{Distro, Matrix};
use crate::kernel::mirror::Mirror;
use crate::kernel::spec::FetchOptions;
use index::{Resolved, SuiteIndex, TrustOptions};

/// The Debian archive: `linux-image-<abi>-<flavour>` builds (and the 7.x split packages), the
/// mirror from `--mirror`, `KMATRIX_MIRROR` or the host's apt configuration, Release files
/// checked against the Debian archive keyring.
pub struct DebianArchive {
    mirror: Mirror,
    source: String,
    trust: TrustOptions,
}

impl DebianArchive {
    /// The archive behind the mirror `opts` names (see [`Mirror::from_options`]).
    pub fn new(opts: &FetchOptions) -> Result<DebianArchive> {
        let source = if opts.mirror.as_deref().is_some_and(|m| !m.is_empty()) {
            "--mirror"
        } else if std::env::var("KMATRIX_MIRROR").is_ok_and(|m| !m.is_empty()) {
            "KMATRIX_MIRROR"
        } else {
            "the host's apt configuration"
        };
        Ok(DebianArchive { mirror: Mirror::from_options(opts)?, source: source.into(), trust: opts.trust.clone() })
    }
}

impl Archive for DebianArchive {
    fn distro(&self) -> Distro {
        Distro::Debian
    }

    fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    fn mirror_source(&self) -> &str {
        &self.source
    }

    fn index(&self, suite: &str, arch: Arch, cache: &Cache) -> Result<SuiteIndex> {
        index::fetch_suite(&self.mirror, suite, arch, cache, &self.trust)
    }

    fn pick_line(&self, index: &SuiteIndex, line: &str, flavour: Option<&str>) -> Result<Resolved> {
        index::pick_line(index, line, flavour.unwrap_or(index.arch.debian()))
    }

    fn pick_version(&self, indexes: &[SuiteIndex], version: &str) -> Result<Resolved> {
        index::pick_version(indexes, version, "amd64")
    }

    fn builds_of_line(&self, index: &SuiteIndex, line: &str) -> Vec<AvailableKernel> {
        index::builds_of_line(index, line, "amd64")
            .into_iter()
            .map(|p| AvailableKernel {
                package: p.name.clone(),
                version: p.version.clone(),
                suite: index.suite.clone(),
                spec: format!("debian:{}", p.version),
            })
            .collect()
    }

    fn search_suites(&self, matrix: &Matrix) -> Vec<String> {
        matrix.suites()
    }
}
