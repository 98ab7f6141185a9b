//! The Debian changelog of a kernel build: the place a user looks next once a bisect has named
//! the first bad build. Debian's kernel packages carry the whole changelog of the line in
//! `usr/share/doc/<package>/changelog.Debian.gz` (or `changelog.gz`, as the signed images name
//! it), newest entry first: `linux (6.12.57-1) trixie; urgency=medium`, the changes, the
//! ` -- Maintainer  date` trailer. Signed images add entries of their own source
//! (`linux-signed-amd64 (6.12.107+1)`) that say which build they sign.
//!
//! Not here: choosing the builds (`bisect`). Package files are downloaded and verified as
//! `prepare` does; the changelog is kept in the build's cache entry.

use std::path::Path;

use super::version;
use crate::cache::Cache;
use crate::kernel::error::{KernelError, Result};
use crate::kernel::files::deb;
use crate::kernel::manifest::Manifest;
use crate::kernel::{Distro, FetchOptions, PreparedKernel};

/// The file name the changelog is kept under in a build's cache entry (gzip, as shipped).
const CACHED: &str = "changelog.gz";
/// Largest changelog taken out of a package, compressed and uncompressed (6.12's is 1.4 MB
/// compressed, 3 MB of text).
const MAX: u64 = 64 << 20;

/// One entry of a Debian changelog.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// The source package (`linux`, `linux-signed-amd64`).
    pub source: String,
    /// The entry's version (`6.12.57-1`, `6.12.107+1`).
    pub version: String,
    /// The entry as written, header and trailer included.
    pub text: String,
}

impl Entry {
    /// The kernel build the entry is about: its own version, or for a signing entry the build
    /// it names (`Sign kernel from linux 6.12.107-1`).
    pub fn kernel_version(&self) -> &str {
        self.text
            .lines()
            .find_map(|l| l.trim().trim_start_matches("* ").strip_prefix("Sign kernel from linux "))
            .map(str::trim)
            .unwrap_or(&self.version)
    }
}

/// `name (version) distributions; urgency=...` → (name, version).
fn header(line: &str) -> Option<(&str, &str)> {
    if line.starts_with(char::is_whitespace) || !line.contains(';') {
        return None;
    }
    let (name, rest) = line.split_once(" (")?;
    let (ver, _) = rest.split_once(')')?;
    let ok = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
    (ok(name) && ok(ver)).then_some((name, ver))
}

/// The entries of a changelog's text, newest first as written.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for line in text.lines() {
        if let Some((source, version)) = header(line) {
            out.push(Entry { source: source.into(), version: version.into(), text: String::new() });
        }
        if let Some(e) = out.last_mut() {
            e.text.push_str(line);
            e.text.push('\n');
        }
    }
    for e in &mut out {
        let trimmed = e.text.trim_end().len();
        e.text.truncate(trimmed);
        e.text.push('\n');
    }
    out
}

/// The version a build is a rebuild of: a backport (`6.12.43-1~bpo12+1`) carries the changes of
/// `6.12.43-1`.
fn base(v: &str) -> &str {
    v.split('~').next().unwrap_or(v)
}

/// The entries of builds after `good` up to and including `bad`: what changed between the last
/// good and the first bad build, newest first.
pub fn between<'a>(entries: &'a [Entry], good: &str, bad: &str) -> Vec<&'a Entry> {
    let (good, bad) = (base(good), base(bad));
    entries
        .iter()
        .filter(|e| {
            let v = base(e.kernel_version());
            version::compare(v, good).is_gt() && version::compare(v, bad).is_le()
        })
        .collect()
}

/// Whether `path` in a package is its Debian changelog, and how much it is preferred
/// (`changelog.Debian.gz` over `changelog.gz`, which non-native packages use for upstream's).
fn rank(path: &str) -> Option<u8> {
    let rest = path.strip_prefix("usr/share/doc/")?;
    let (_, file) = rest.split_once('/')?;
    match file {
        "changelog.Debian.gz" => Some(0),
        "changelog.gz" => Some(1),
        _ => None,
    }
}

/// The changelog of the Debian build `k`, as text: kept in its cache entry, else taken from its
/// packages, downloaded again and checked against the sha256 the entry's manifest recorded.
pub fn changelog(k: &PreparedKernel, cache: &Cache, opts: &FetchOptions) -> Result<String> {
    let what = k.origin.package.clone().unwrap_or_else(|| k.id.clone());
    let not_debian =
        || KernelError::Invalid { path: k.id.clone(), detail: "a local kernel has no Debian changelog".into() };
    let manifest_path = k.manifest.as_deref().filter(|_| k.origin.package.is_some()).ok_or_else(not_debian)?;
    let entry = manifest_path.parent().ok_or_else(not_debian)?;
    let kept = entry.join(CACHED);
    if !kept.is_file() {
        let name = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _guard = cache.lock(&format!("kernel-{name}"))?;
        if !kept.is_file() {
            let gz = fetch(&Manifest::load(manifest_path)?, k.origin.distro, entry, opts, &what)?;
            crate::cache::write_atomic(&kept, &gz)?;
        }
    }
    let gz = std::fs::read(&kept).map_err(KernelError::io(&kept))?;
    let text =
        gunzip(&gz).map_err(|e| KernelError::Parse { what: kept.display().to_string(), detail: e.to_string() })?;
    if parse(&text).is_empty() {
        return Err(KernelError::Parse {
            what: kept.display().to_string(),
            detail: "not a Debian changelog (no `source (version) suite; urgency=` line)".into(),
        });
    }
    Ok(text)
}

/// Why a kept changelog did not decompress.
#[derive(Debug, thiserror::Error)]
enum GunzipError {
    #[error("gunzip: {0}")]
    Gzip(#[from] std::io::Error),
    #[error("larger than {MAX} bytes")]
    TooLarge,
}

fn gunzip(gz: &[u8]) -> std::result::Result<String, GunzipError> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz).take(MAX + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX {
        return Err(GunzipError::TooLarge);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Download the build's packages (image first) from its distribution's mirror until one holds a
/// changelog (Ubuntu's packages carry the same `changelog.Debian.gz`); return it, gzipped.
fn fetch(m: &Manifest, distro: Distro, entry: &Path, opts: &FetchOptions, what: &str) -> Result<Vec<u8>> {
    let archive = crate::kernel::archive(distro, opts)?;
    let mirror = archive.mirror();
    let dir = tempfile::Builder::new().prefix(".changelog-").tempdir_in(entry).map_err(KernelError::io(entry))?;
    let mut debs: Vec<_> = m.debs.iter().collect();
    debs.sort_by_key(|d| Some(&d.name) != m.origin.package.as_ref());
    for pkg in debs {
        let dest = dir.path().join("package.deb");
        let label = format!("{} (changelog)", pkg.name);
        mirror.download_checked(&pkg.filename, &pkg.sha256, pkg.size, &dest, pkg.size, &label)?;
        let mut best: Option<(u8, Vec<u8>)> = None;
        deb::for_each_file(&dest, |path, size, r| {
            if let Some(rank) = rank(path) {
                if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                    let data = deb::read_file(r, size, MAX)
                        .map_err(|e| KernelError::Deb { what: pkg.name.clone(), detail: format!("{path}: {e}") })?;
                    best = Some((rank, data));
                }
            }
            Ok(())
        })?;
        if let Some((_, gz)) = best {
            return Ok(gz);
        }
    }
    Err(KernelError::Extract {
        what: what.to_string(),
        detail: "no usr/share/doc/*/changelog.Debian.gz or changelog.gz".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The first entries of two real kernel changelogs (see fixtures/README.md): a trixie build
    // and a bookworm-backports one.
    const TRIXIE: &str = include_str!("../fixtures/changelog-6.12.txt");
    const BPO: &str = include_str!("../fixtures/changelog-6.12-bpo.txt");

    fn heads(e: &[Entry]) -> Vec<(&str, &str)> {
        e.iter().map(|e| (e.source.as_str(), e.version.as_str())).collect()
    }

    #[test]
    fn parses_entries_of_real_kernel_changelogs() {
        let t = parse(TRIXIE);
        assert_eq!(heads(&t), [("linux-signed-amd64", "6.12.107+1"), ("linux", "6.12.105-1")]);
        assert_eq!(t[0].kernel_version(), "6.12.107-1");
        assert_eq!(t[1].kernel_version(), "6.12.105-1");
        assert!(t[1].text.starts_with("linux (6.12.105-1) trixie-security; urgency=high\n"), "{}", t[1].text);
        assert!(t[1].text.ends_with("+0200\n"), "{}", t[1].text);
        let b = parse(BPO);
        assert_eq!(
            heads(&b),
            [
                ("linux-signed-amd64", "6.12.57+1~bpo12+1"),
                ("linux", "6.12.57-1"),
                ("linux", "6.12.48-1"),
                ("linux", "6.12.43-1~bpo12+1"),
                ("linux", "6.12.43-1"),
            ]
        );
        assert_eq!(b[0].kernel_version(), "6.12.57-1~bpo12+1");
    }

    #[test]
    fn entries_between_two_builds_are_those_after_the_good_one_up_to_the_bad_one() {
        let v = |xs: Vec<&Entry>| xs.iter().map(|e| e.version.clone()).collect::<Vec<_>>();
        let b = parse(BPO);
        // Two backports: the good one carries 6.12.43-1's changes, the bad one 6.12.57-1's.
        assert_eq!(
            v(between(&b, "6.12.43-1~bpo12+1", "6.12.57-1~bpo12+1")),
            ["6.12.57+1~bpo12+1", "6.12.57-1", "6.12.48-1"]
        );
        assert_eq!(v(between(&b, "6.12.48-1", "6.12.57-1~bpo12+1")), ["6.12.57+1~bpo12+1", "6.12.57-1"]);
        let t = parse(TRIXIE);
        assert_eq!(v(between(&t, "6.12.105-1", "6.12.107-1")), ["6.12.107+1"]);
        assert_eq!(v(between(&t, "6.12.57-1", "6.12.107-1")), ["6.12.107+1", "6.12.105-1"]);
        assert!(between(&t, "6.12.105-1", "6.12.105-1").is_empty());
    }

    #[test]
    fn changelog_files_are_found_in_a_package_and_ranked() {
        assert_eq!(rank("usr/share/doc/linux-image-6.12.107+deb13-amd64/changelog.gz"), Some(1));
        assert_eq!(rank("usr/share/doc/linux-image-6.1.0-50-amd64/changelog.Debian.gz"), Some(0));
        assert_eq!(rank("usr/share/doc/linux-image-6.1.0-50-amd64/NEWS.Debian.gz"), None);
        assert_eq!(rank("boot/vmlinuz-6.1.0-50-amd64"), None);
        assert!(parse("not a changelog\n  at all\n").is_empty());
        assert_eq!(gunzip(b"not gzip").unwrap_err().to_string().split(':').next(), Some("gunzip"));
    }
}
