//! "A distribution's archive", the one shape every distribution's kernel provider has: where its
//! packages come from (and how that mirror was chosen), the authenticated kernel part of a suite's
//! index (the chain of trust up to each package's sha256), the build a matrix line or a version
//! spec names, and the builds of a line.
//!
//! Debian ([`super::debian::DebianArchive`]) is the first; another distribution (Ubuntu, an RPM
//! one) is one more module implementing [`Archive`]. Turning
//! the chosen packages into a cache entry is not an archive's job: [`super::prepare`] downloads
//! them (sha256-checked) and [`super::store`] extracts them.

use super::arch::Arch;
use super::debian::index::{Resolved, SuiteIndex};
use super::error::Result;
use super::matrix::{Distro, Matrix};
use super::mirror::Mirror;
use crate::cache::Cache;

/// One build of a kernel line in an archive, for listing and bisecting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AvailableKernel {
    /// The image package (`linux-image-6.12.43+deb12-amd64`, `linux-image-unsigned-5.4.0-216-generic`).
    pub package: String,
    /// Its package version.
    pub version: String,
    /// The suite that has it.
    pub suite: String,
    /// The spec that selects it: `debian:<version>`, `ubuntu:<abi>`.
    pub spec: String,
}

/// A distribution's package archive, as the kernel provider uses it.
pub trait Archive {
    /// Which distribution this is.
    fn distro(&self) -> Distro;

    /// The mirror packages are downloaded from.
    fn mirror(&self) -> &Mirror;

    /// Where the mirror came from (`--mirror`, an environment variable, apt, debootstrap), for
    /// the run's first lines.
    fn mirror_source(&self) -> &str;

    /// The authenticated kernel packages of `suite`'s index for `arch`: signed Release, then the
    /// Packages index's sha256 from it. Each package carries the sha256 its download must have.
    fn index(&self, suite: &str, arch: Arch, cache: &Cache) -> Result<SuiteIndex>;

    /// The newest build of `line` (`5.4`) in `index`; `flavour` overrides the default flavour.
    fn pick_line(&self, index: &SuiteIndex, line: &str, flavour: Option<&str>) -> Result<Resolved>;

    /// The build a version spec names (what follows `debian:` or `ubuntu:`) in any of `indexes`.
    fn pick_version(&self, indexes: &[SuiteIndex], version: &str) -> Result<Resolved>;

    /// Every build of `line` in `index`, newest first.
    fn builds_of_line(&self, index: &SuiteIndex, line: &str) -> Vec<AvailableKernel>;

    /// The suites a version spec or `kernels available` searches: the matrix's suites of this
    /// distribution, and any the distribution adds.
    fn search_suites(&self, matrix: &Matrix) -> Vec<String>;
}
