//! Ubuntu's archive as a kernel source: every ABI build of the `-generic` kernels its pockets
//! keep (`bionic-updates` 4.15 … `noble-updates` 6.8 and the HWE lines).
//!
//! The archive has Debian's layout, so the Release and Packages parsers are
//! [`super::debian`]'s; what differs is here: the mirror ([`mirror`]), the keyring
//! ([`keyring`]), and the packages a build is made of — `linux-image-unsigned-<abi>-generic`
//! (`boot/vmlinuz-<abi>-generic`, a bzImage whose payload is the ELF vmlinux) and
//! `linux-modules-<abi>-generic` (the modules, `boot/config-*`, `boot/System.map-*`), both of
//! one source version. A build is named by its ABI: `ubuntu:5.4.0-216`.
//!
//! Extracting the packages is `kernel/store.rs`'s job, as for Debian.

pub mod keyring;
pub mod mirror;

use std::cell::OnceCell;

use crate::cache::Cache;
use crate::kernel::arch::Arch;
use crate::kernel::archive::{Archive, AvailableKernel};
use crate::kernel::debian::index::{self, DebPackage, Resolved, SuiteIndex, TrustOptions};
use crate::kernel::debian::version;
use crate::kernel::error::{KernelError, Result};
use crate::kernel::matrix::{Distro, Matrix};
use crate::kernel::mirror::Mirror;
use crate::kernel::spec::FetchOptions;

/// The pockets a version spec and `kernels available --distro ubuntu` search besides the
/// matrix's: every LTS release's `-updates`, which keeps each ABI build of its kernel lines.
pub const SUITES: [&str; 4] = ["bionic-updates", "focal-updates", "jammy-updates", "noble-updates"];

/// The only flavour kmatrix takes from Ubuntu (no -lowlatency, -aws, …).
pub const FLAVOUR: &str = "generic";

/// Ubuntu's archive: the mirror [`mirror::discover`] finds, Release files checked against the
/// keyring [`keyring::keyring`] finds.
pub struct UbuntuArchive {
    mirror: Mirror,
    source: String,
    opts: FetchOptions,
    /// The trust options with the keyring filled in, once an index has been fetched.
    trust: OnceCell<TrustOptions>,
}

impl UbuntuArchive {
    /// The archive at the mirror `opts`, the environment or the host name (said on stderr).
    pub fn new(opts: &FetchOptions) -> Result<UbuntuArchive> {
        let (found, source) = mirror::discover(opts, SUITES[0])?;
        let timeout = Mirror::from_options(&FetchOptions { mirror: Some(found.base().to_string()), ..opts.clone() })?;
        eprintln!("ubuntu: mirror {} (from {source})", found.base());
        Ok(UbuntuArchive { mirror: timeout, source, opts: opts.clone(), trust: OnceCell::new() })
    }

    fn trust(&self, cache: &Cache) -> Result<TrustOptions> {
        if let Some(t) = self.trust.get() {
            return Ok(t.clone());
        }
        let keyring = match keyring::keyring(cache, &self.opts) {
            Ok((path, _)) => Some(path),
            // Without a keyring the Release cannot be checked: only --allow-unsigned goes on
            // (and says so when the Release is read).
            Err(e) if self.opts.trust.allow_unsigned => {
                eprintln!("warning: {e}");
                Some(std::path::PathBuf::from(keyring::SYSTEM))
            }
            Err(e) => return Err(e),
        };
        let t = TrustOptions { keyring, ..self.opts.trust.clone() };
        Ok(self.trust.get_or_init(|| t).clone())
    }
}

/// The ABI of `linux-image-unsigned-<abi>-generic` (`5.4.0-216`), `None` for other packages
/// (other flavours, the signed image, meta packages).
pub fn image_abi(name: &str) -> Option<&str> {
    let abi = name.strip_prefix("linux-image-unsigned-")?.strip_suffix(FLAVOUR)?.strip_suffix('-')?;
    let ok = abi.split_once('-').is_some_and(|(up, n)| {
        up.split('.').all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
            && !n.is_empty()
            && n.bytes().all(|c| c.is_ascii_digit())
    });
    ok.then_some(abi)
}

/// Every generic image build of `line` in `index`, newest first.
fn builds<'a>(index: &'a SuiteIndex, line: &str) -> Vec<&'a DebPackage> {
    let mut v: Vec<&DebPackage> =
        index.packages.iter().filter(|p| image_abi(&p.name).is_some_and(|abi| version::in_line(abi, line))).collect();
    v.sort_by(|a, b| version::compare(&b.version, &a.version));
    v
}

/// The build of `image`: the image and its modules package, of the same version.
fn resolved(index: &SuiteIndex, image: &DebPackage) -> Result<Resolved> {
    let abi = image_abi(&image.name).unwrap_or("");
    let release = format!("{abi}-{FLAVOUR}");
    let modules_name = format!("linux-modules-{release}");
    let modules =
        index.packages.iter().find(|p| p.name == modules_name && p.version == image.version).ok_or_else(|| {
            KernelError::PackageNotFound {
                package: format!("{modules_name} {}", image.version),
                suite: index.suite.clone(),
            }
        })?;
    Ok(Resolved {
        suite: index.suite.clone(),
        arch: index.arch,
        signature: index.signature.clone(),
        image: image.name.clone(),
        version: image.version.clone(),
        release,
        packages: vec![image.clone(), modules.clone()],
    })
}

/// The newest build of `line` in `index`.
pub fn pick_line(index: &SuiteIndex, line: &str) -> Result<Resolved> {
    let img = builds(index, line).into_iter().next().ok_or_else(|| KernelError::LineNotFound {
        line: line.to_string(),
        suite: index.suite.clone(),
        flavour: FLAVOUR.to_string(),
    })?;
    resolved(index, img)
}

/// The build whose ABI (`5.4.0-216`) or package version (`5.4.0-216.236`) is `wanted`, newest
/// first across `indexes`.
pub fn pick_version(indexes: &[SuiteIndex], wanted: &str) -> Result<Resolved> {
    let mut best: Option<(&SuiteIndex, &DebPackage)> = None;
    for idx in indexes {
        for p in &idx.packages {
            let hit = image_abi(&p.name).is_some_and(|abi| abi == wanted)
                || (image_abi(&p.name).is_some() && p.version == wanted);
            if hit && best.is_none_or(|(_, b)| version::compare(&p.version, &b.version).is_gt()) {
                best = Some((idx, p));
            }
        }
    }
    match best {
        Some((idx, p)) => resolved(idx, p),
        None => Err(KernelError::VersionNotFound {
            version: format!("ubuntu:{wanted}"),
            suites: indexes.iter().map(|i| i.suite.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

impl Archive for UbuntuArchive {
    fn distro(&self) -> Distro {
        Distro::Ubuntu
    }

    fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    fn mirror_source(&self) -> &str {
        &self.source
    }

    fn index(&self, suite: &str, arch: Arch, cache: &Cache) -> Result<SuiteIndex> {
        if arch != Arch::X86_64 {
            return Err(KernelError::Invalid {
                path: format!("ubuntu suite {suite}"),
                detail: format!("only x86_64 Ubuntu kernels are supported, not {arch:?}"),
            });
        }
        index::fetch_suite(&self.mirror, suite, arch, cache, &self.trust(cache)?)
    }

    fn pick_line(&self, index: &SuiteIndex, line: &str, _flavour: Option<&str>) -> Result<Resolved> {
        pick_line(index, line)
    }

    fn pick_version(&self, indexes: &[SuiteIndex], version: &str) -> Result<Resolved> {
        pick_version(indexes, version)
    }

    fn builds_of_line(&self, index: &SuiteIndex, line: &str) -> Vec<AvailableKernel> {
        builds(index, line)
            .into_iter()
            .map(|p| AvailableKernel {
                package: p.name.clone(),
                version: p.version.clone(),
                suite: index.suite.clone(),
                spec: format!("ubuntu:{}", image_abi(&p.name).unwrap_or(&p.version)),
            })
            .collect()
    }

    fn search_suites(&self, matrix: &Matrix) -> Vec<String> {
        let mut v: Vec<String> = SUITES.iter().map(|s| s.to_string()).collect();
        for k in matrix.kernels.iter().filter(|k| k.distro == Distro::Ubuntu) {
            if !v.contains(&k.suite) {
                v.push(k.suite.clone());
            }
        }
        v
    }
}

#[cfg(test)]
mod tests;
