//! Ubuntu's archive keyring, the first link of Ubuntu's chain of trust: `--keyring FILE` when
//! given, else the host's (`ubuntu-keyring` installed: an Ubuntu host, or Debian trixie and
//! later), else the one kept in the cache, else Debian's `ubuntu-keyring` package fetched along
//! Debian's own chain of trust (InRelease checked against the Debian archive keyring → Packages
//! sha256 → `.deb` sha256), as `scripts/fetch-rust-src.sh` does for `rust-src`. Nothing is added
//! to apt.
//!
//! It does not check signatures: [`crate::kernel::debian::release`] runs `gpgv` with the keyring
//! this module finds.

use std::path::PathBuf;

use crate::cache::{write_atomic, Cache};
use crate::kernel::arch::Arch;
use crate::kernel::debian::index::{self, parse_stanzas, stanza_to_package, DebPackage, Signature};
use crate::kernel::debian::version;
use crate::kernel::error::{KernelError, Result};
use crate::kernel::files::deb;
use crate::kernel::mirror::Mirror;
use crate::kernel::spec::FetchOptions;

/// Where `ubuntu-keyring` installs the archive keyring.
pub const SYSTEM: &str = "/usr/share/keyrings/ubuntu-archive-keyring.gpg";

/// The keyring's path inside the `ubuntu-keyring` package.
const IN_PACKAGE: &str = "usr/share/keyrings/ubuntu-archive-keyring.gpg";

/// Debian suites that carry `ubuntu-keyring` (bookworm does not), newest-stable first.
const DEBIAN_SUITES: [&str; 3] = ["trixie", "forky", "sid"];

/// Largest keyring package kmatrix downloads (the real one is about 20 KB).
const MAX_PACKAGE: u64 = 4 << 20;

/// The keyring to check Ubuntu's Release files with, and where it came from.
pub fn keyring(cache: &Cache, opts: &FetchOptions) -> Result<(PathBuf, String)> {
    if let Some(k) = &opts.trust.keyring {
        return Ok((k.clone(), "--keyring".into()));
    }
    let system = PathBuf::from(SYSTEM);
    if system.is_file() {
        return Ok((system, "the host's ubuntu-keyring package".into()));
    }
    let dir = cache.dir("keyrings")?;
    let kept = dir.join("ubuntu-archive-keyring.gpg");
    let note = dir.join("ubuntu-archive-keyring.source");
    if kept.is_file() {
        let source = std::fs::read_to_string(&note).unwrap_or_default();
        return Ok((kept, source.trim().to_string()));
    }
    let _guard = cache.lock("ubuntu-keyring")?;
    if kept.is_file() {
        return Ok((kept, std::fs::read_to_string(&note).unwrap_or_default().trim().to_string()));
    }
    let (bytes, source) = from_debian(cache, opts)?;
    write_atomic(&note, source.as_bytes())?;
    write_atomic(&kept, &bytes)?;
    eprintln!("ubuntu: archive keyring {source}, kept in {}", kept.display());
    Ok((kept, source))
}

/// Debian's `ubuntu-keyring` package from the first of [`DEBIAN_SUITES`] that has it, verified
/// along Debian's chain of trust; the keyring's bytes and a line saying where they came from.
fn from_debian(cache: &Cache, opts: &FetchOptions) -> Result<(Vec<u8>, String)> {
    let mirror = Mirror::from_options(opts)?;
    // Debian's Release files are checked against Debian's keyring, whatever --keyring says.
    let trust = index::TrustOptions { keyring: None, ..opts.trust.clone() };
    let mut tried = Vec::new();
    for suite in DEBIAN_SUITES {
        let (sig, text) = match index::fetch_filtered(
            &mirror,
            suite,
            Arch::X86_64,
            cache,
            &trust,
            |n| n == "ubuntu-keyring",
            "ubuntu-keyring-v1",
        ) {
            Ok(x) => x,
            Err(e @ KernelError::UnknownSuite { .. }) => {
                tried.push(format!("{suite}: {e}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        let newest = parse_stanzas(&text)
            .iter()
            .filter_map(stanza_to_package)
            .max_by(|a, b| version::compare(&a.version, &b.version));
        let Some(pkg) = newest else {
            tried.push(format!("{suite}: no ubuntu-keyring"));
            continue;
        };
        let bytes = keyring_of(&mirror, &pkg, cache)?;
        let checked = if sig == Signature::Good { "signature checked" } else { "SIGNATURE NOT CHECKED" };
        return Ok((bytes, format!("from Debian's ubuntu-keyring {} ({suite}, {checked})", pkg.version)));
    }
    Err(KernelError::NoUbuntuKeyring {
        detail: format!("{SYSTEM} is missing and no Debian suite has ubuntu-keyring: {}", tried.join("; ")),
    })
}

/// Download `pkg` (sha256 and size from the index) and take the archive keyring out of it.
fn keyring_of(mirror: &Mirror, pkg: &DebPackage, cache: &Cache) -> Result<Vec<u8>> {
    let dir = cache.dir("keyrings")?;
    let tmp = tempfile::Builder::new().prefix(".dl-").tempdir_in(&dir).map_err(KernelError::io(&dir))?;
    let dest = tmp.path().join("ubuntu-keyring.deb");
    mirror.download_checked(&pkg.filename, &pkg.sha256, pkg.size, &dest, MAX_PACKAGE, &pkg.name)?;
    let mut found = None;
    deb::for_each_file(&dest, |path, size, reader| {
        if path == IN_PACKAGE {
            found = Some(deb::read_file(reader, size, MAX_PACKAGE).map_err(KernelError::io(&dest))?);
        }
        Ok(())
    })?;
    found.ok_or_else(|| KernelError::Extract {
        what: format!("{} {}", pkg.name, pkg.version),
        detail: format!("no {IN_PACKAGE} in the package"),
    })
}
