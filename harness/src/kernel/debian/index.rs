//! The Debian archive's chain of trust from a suite's authenticated Release to a kernel package's
//! `.deb` hash: the Release ([`fetch_release`]) lists the sha256 of `Packages.xz`;
//! `Packages.xz` lists the sha256 of every `.deb`. This module fetches and checks the index and
//! picks kernel packages out of it. It does not download or open `.deb` files: `deb.rs` does.
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use super::release::{
    fetch_release, parse_release, parse_stanzas, strip_clearsign, Release, ReleaseFile, Signature, Stanza,
    TrustOptions, DEFAULT_KEYRING,
};
use super::version;
use crate::cache::{write_atomic, Cache};
use crate::kernel::arch::Arch;
use crate::kernel::error::{KernelError, Result};
use crate::kernel::mirror::Mirror;

/// Upper bound on what a mirror may send as a Packages index, so a broken one cannot fill memory
/// or disk.
const MAX_INDEX: u64 = 256 << 20;

/// One binary package of a Packages index, with what is needed to fetch and check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebPackage {
    /// The package name (`linux-image-6.1.0-50-amd64`).
    pub name: String,
    /// Its Debian version (`6.1.176-1`).
    pub version: String,
    /// Its path under the mirror's root (`pool/main/l/linux/...deb`).
    pub filename: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, as the index lists it.
    pub sha256: String,
    /// Its `Depends` field (empty once recorded in a manifest or lock).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub depends: String,
}

/// The kernel packages of one suite's `main/binary-amd64` index.
#[derive(Debug, Clone)]
pub struct SuiteIndex {
    /// The suite (`bookworm`).
    pub suite: String,
    /// Whose `binary-<arch>` index this is.
    pub arch: Arch,
    /// How the suite's Release was authenticated.
    pub signature: Signature,
    /// The kernel packages of the index (others are filtered out).
    pub packages: Vec<DebPackage>,
}

/// True for the packages an index is filtered down to: the ones a kernel can be made of.
fn is_kernel_package(name: &str) -> bool {
    // linux-source-<line>: the kernel's own selftests (`kmatrix selftest ftrace`);
    // linux-headers-*: BCC's headers (`kernel/headers.rs`).
    ["linux-image-", "linux-binary-", "linux-base-", "linux-modules-", "linux-source-", "linux-headers-"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The package a Packages stanza describes, when it has every field a download needs.
pub fn stanza_to_package(st: &Stanza) -> Option<DebPackage> {
    Some(DebPackage {
        name: st.get("package")?.clone(),
        version: st.get("version")?.clone(),
        filename: st.get("filename")?.clone(),
        size: st.get("size")?.parse().ok()?,
        sha256: st.get("sha256")?.to_ascii_lowercase(),
        depends: st.get("depends").cloned().unwrap_or_default(),
    })
}

/// Keep the kernel stanzas of a Packages stream (decompressed), as text.
pub fn filter_packages(r: impl BufRead, what: &str) -> Result<String> {
    filter_packages_by(r, what, is_kernel_package)
}

/// Keep the stanzas of a Packages stream (decompressed) whose package name `keep` accepts.
fn filter_packages_by(r: impl BufRead, what: &str, keep_name: fn(&str) -> bool) -> Result<String> {
    let mut out = String::new();
    let mut stanza = String::new();
    let mut keep = false;
    for line in r.lines() {
        let line = line.map_err(|e| KernelError::Parse { what: what.to_string(), detail: e.to_string() })?;
        if line.is_empty() {
            if keep {
                out.push_str(&stanza);
                out.push('\n');
            }
            stanza.clear();
            keep = false;
            continue;
        }
        if let Some(name) = line.strip_prefix("Package:") {
            keep = keep_name(name.trim());
        }
        stanza.push_str(&line);
        stanza.push('\n');
    }
    if keep {
        out.push_str(&stanza);
        out.push('\n');
    }
    Ok(out)
}

/// Parse (already filtered or full) Packages text into the kernel packages it lists.
pub fn parse_packages(text: &str) -> Vec<DebPackage> {
    parse_stanzas(text)
        .iter()
        .filter(|st| st.get("package").is_some_and(|n| is_kernel_package(n)))
        .filter_map(stanza_to_package)
        .collect()
}

/// Fetch the authenticated kernel part of `<suite>/main/binary-<arch>/Packages`. The filtered
/// index is cached under `kernels/index/` by the sha256 the Release file gives, so an unchanged
/// suite costs one InRelease download.
pub fn fetch_suite(
    mirror: &Mirror,
    suite: &str,
    arch: Arch,
    cache: &Cache,
    trust: &TrustOptions,
) -> Result<SuiteIndex> {
    // The name says what the filter kept (v2: linux-source too; v3: linux-headers too), so an
    // older cache is not reused.
    let (signature, text) = fetch_filtered(mirror, suite, arch, cache, trust, is_kernel_package, "kernel-packages-v3")?;
    Ok(SuiteIndex { suite: suite.to_string(), arch, signature, packages: parse_packages(&text) })
}

/// The stanzas of `<suite>/main/binary-<arch>/Packages` whose package name `keep` accepts, as
/// text, authenticated along the chain of trust; cached under `kernels/index/<sha256>.<tag>`.
pub fn fetch_filtered(
    mirror: &Mirror,
    suite: &str,
    arch: Arch,
    cache: &Cache,
    trust: &TrustOptions,
    keep: fn(&str) -> bool,
    tag: &str,
) -> Result<(Signature, String)> {
    let (rel, signature) = fetch_release(mirror, suite, trust)?;
    let base = format!("main/binary-{}/Packages", arch.debian());
    let entry = ["xz", "gz"]
        .iter()
        .find_map(|ext| rel.files.iter().find(|f| f.path == format!("{base}.{ext}")))
        .ok_or_else(|| KernelError::IndexNotListed {
            file: format!("{base}.xz"),
            release: mirror.url(&format!("dists/{suite}/InRelease")),
        })?
        .clone();
    let dir = cache.dir("kernels/index")?;
    let cached = dir.join(format!("{}.{tag}", entry.sha256));
    if let Ok(text) = fs::read_to_string(&cached) {
        return Ok((signature, text));
    }
    let rel_path = if rel.by_hash {
        let d = entry.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        format!("dists/{suite}/{d}/by-hash/SHA256/{}", entry.sha256)
    } else {
        format!("dists/{suite}/{}", entry.path)
    };
    let url = mirror.url(&rel_path);
    let tmp = tempfile::Builder::new().prefix(".dl-").tempfile_in(&dir).map_err(KernelError::io(&dir))?;
    let (size, sha) =
        mirror.download(&rel_path, tmp.path(), entry.size.min(MAX_INDEX), &format!("{suite} Packages"))?;
    if sha != entry.sha256 {
        return Err(KernelError::HashMismatch { what: url, expected: entry.sha256, actual: sha });
    }
    if size != entry.size {
        return Err(KernelError::SizeMismatch { what: url, expected: entry.size, actual: size });
    }
    let file = fs::File::open(tmp.path()).map_err(KernelError::io(tmp.path()))?;
    let text = if entry.path.ends_with(".xz") {
        filter_packages_by(BufReader::new(xz2::read::XzDecoder::new(file)), &url, keep)?
    } else {
        filter_packages_by(BufReader::new(flate2::read::GzDecoder::new(file)), &url, keep)?
    };
    write_atomic(&cached, text.as_bytes())?;
    Ok((signature, text))
}

/// The ABI part of `linux-image-<abi>-<flavour>` when the package is exactly that flavour:
/// `6.1.0-50` for `linux-image-6.1.0-50-amd64`, `None` for `-cloud-amd64`, `-rt-amd64`, `-dbg`,
/// `-unsigned` and the `linux-image-amd64` meta package.
pub fn image_abi<'a>(name: &'a str, flavour: &str) -> Option<&'a str> {
    let abi = name.strip_prefix("linux-image-")?.strip_suffix(flavour)?.strip_suffix('-')?;
    let ok = !abi.is_empty() && abi.split('-').all(|part| part.starts_with(|c: char| c.is_ascii_digit()));
    ok.then_some(abi)
}

/// A kernel build chosen from an index: the packages to download, in extraction order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The suite the build comes from.
    pub suite: String,
    /// The architecture of its index.
    pub arch: Arch,
    /// How the suite's Release was authenticated.
    pub signature: Signature,
    /// The `linux-image-*` package the build is named by (a meta package from 7.x).
    pub image: String,
    /// The image package's Debian version (`6.1.176-1`).
    pub version: String,
    /// `uname -r`: `6.1.0-50-amd64`.
    pub release: String,
    /// The packages to download, in extraction order.
    pub packages: Vec<DebPackage>,
}

/// The packages that hold the files of `image`: itself up to 6.12; from 7.x, where
/// `linux-image-*` is a meta package, the `linux-binary-*`, `linux-base-*` and `linux-modules-*`
/// it depends on (exact versions).
pub fn expand(index: &SuiteIndex, image: &DebPackage) -> Result<Vec<DebPackage>> {
    let mut out = Vec::new();
    for dep in image.depends.split(',') {
        // Alternatives ("a | b") never name the split packages; take the first.
        let dep = dep.split('|').next().unwrap_or("").trim();
        let name = dep.split_whitespace().next().unwrap_or("");
        if !["linux-binary-", "linux-base-", "linux-modules-"].iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let want = dep.split_once("(=").map(|(_, v)| v.trim_end_matches(')').trim());
        let pkg = index
            .packages
            .iter()
            .filter(|p| p.name == name && want.is_none_or(|v| p.version == v))
            .max_by(|a, b| version::compare(&a.version, &b.version))
            .ok_or_else(|| KernelError::PackageNotFound {
                package: format!("{name} {}", want.unwrap_or("")).trim().to_string(),
                suite: index.suite.clone(),
            })?;
        out.push(pkg.clone());
    }
    if out.is_empty() {
        return Ok(vec![image.clone()]);
    }
    // binary, then base, then modules: the order files are looked for in.
    out.sort_by_key(|p| ["linux-binary-", "linux-base-", "linux-modules-"].iter().position(|x| p.name.starts_with(x)));
    Ok(out)
}

fn resolved(index: &SuiteIndex, image: &DebPackage, flavour: &str) -> Result<Resolved> {
    let abi = image_abi(&image.name, flavour).unwrap_or("");
    Ok(Resolved {
        suite: index.suite.clone(),
        arch: index.arch,
        signature: index.signature.clone(),
        image: image.name.clone(),
        version: image.version.clone(),
        release: format!("{abi}-{flavour}"),
        packages: expand(index, image)?,
    })
}

/// Every `linux-image-<abi>-<flavour>` build of `line` (`6.12`) in the index, newest first.
pub fn builds_of_line<'a>(index: &'a SuiteIndex, line: &str, flavour: &str) -> Vec<&'a DebPackage> {
    let mut v: Vec<&DebPackage> = index
        .packages
        .iter()
        .filter(|p| image_abi(&p.name, flavour).is_some() && version::in_line(&p.version, line))
        .collect();
    v.sort_by(|a, b| version::compare(&b.version, &a.version).then_with(|| b.name.cmp(&a.name)));
    v
}

/// The newest build of `line` in the index.
pub fn pick_line(index: &SuiteIndex, line: &str, flavour: &str) -> Result<Resolved> {
    let img = builds_of_line(index, line, flavour).into_iter().next().ok_or_else(|| KernelError::LineNotFound {
        line: line.to_string(),
        suite: index.suite.clone(),
        flavour: flavour.to_string(),
    })?;
    resolved(index, img, flavour)
}

/// The build whose Version is `wanted` in any of the indexes. A bare upstream version
/// (`6.12.57`) takes the newest build of it; a version with a revision that no suite has exactly
/// (`6.12.57-1`) takes its backport or rebuild (`6.12.57-1~bpo12+1`).
pub fn pick_version(indexes: &[SuiteIndex], wanted: &str, flavour: &str) -> Result<Resolved> {
    let has_exact = indexes.iter().flat_map(|i| &i.packages).any(|p| p.version == wanted);
    let matches = |v: &str| {
        if !wanted.contains('-') {
            version::upstream(v) == wanted
        } else if has_exact {
            v == wanted
        } else {
            v.strip_prefix(wanted).is_some_and(|rest| rest.starts_with('~') || rest.starts_with('+'))
        }
    };
    let mut best: Option<(&SuiteIndex, &DebPackage)> = None;
    for idx in indexes {
        for p in &idx.packages {
            if image_abi(&p.name, flavour).is_none() {
                continue;
            }
            let hit = matches(&p.version);
            if hit && best.is_none_or(|(_, b)| version::compare(&p.version, &b.version).is_gt()) {
                best = Some((idx, p));
            }
        }
    }
    match best {
        Some((idx, p)) => resolved(idx, p, flavour),
        None => Err(KernelError::VersionNotFound {
            version: wanted.to_string(),
            suites: indexes.iter().map(|i| i.suite.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Stream-hash a file.
pub fn sha256_file(path: &Path) -> Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    let mut f = fs::File::open(path).map_err(KernelError::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(KernelError::io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((n_total, hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real stanzas from the bookworm and trixie-backports indexes (descriptions trimmed).
    const PACKAGES: &str = include_str!("../fixtures/Packages.kernel");

    fn index(suite: &str) -> SuiteIndex {
        SuiteIndex {
            suite: suite.into(),
            arch: Arch::X86_64,
            signature: Signature::Good,
            packages: parse_packages(PACKAGES),
        }
    }

    #[test]
    fn flavours() {
        assert_eq!(image_abi("linux-image-6.1.0-50-amd64", "amd64"), Some("6.1.0-50"));
        assert_eq!(image_abi("linux-image-6.12.94+deb13-amd64", "amd64"), Some("6.12.94+deb13"));
        for n in [
            "linux-image-6.1.0-50-cloud-amd64",
            "linux-image-6.1.0-50-rt-amd64",
            "linux-image-6.1.0-50-amd64-dbg",
            "linux-image-6.1.0-50-amd64-unsigned",
            "linux-image-amd64",
            "linux-image-cloud-amd64",
        ] {
            assert_eq!(image_abi(n, "amd64"), None, "{n}");
        }
    }

    #[test]
    fn picks_newest_of_line_and_skips_other_flavours() {
        let r = pick_line(&index("bookworm"), "6.1", "amd64").unwrap();
        assert_eq!(r.image, "linux-image-6.1.0-50-amd64");
        assert_eq!(r.version, "6.1.176-1");
        assert_eq!(r.release, "6.1.0-50-amd64");
        assert_eq!(r.packages.len(), 1);
        assert_eq!(r.packages[0].sha256, "7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3");
        assert_eq!(r.packages[0].size, 70305560);
    }

    #[test]
    fn seven_x_follows_depends_of_the_meta_package() {
        let r = pick_line(&index("trixie-backports"), "7.3", "amd64").unwrap();
        assert_eq!(r.image, "linux-image-7.3.4+deb13-amd64");
        assert_eq!(r.release, "7.3.4+deb13-amd64");
        let names: Vec<_> = r.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["linux-binary-7.3.4+deb13-amd64", "linux-base-7.3.4+deb13-amd64", "linux-modules-7.3.4+deb13-amd64"]
        );
        assert!(r.packages.iter().all(|p| p.version == "7.3.4-1~bpo13+1"));
    }

    #[test]
    fn unknown_line_and_version() {
        let e = pick_line(&index("bookworm"), "5.4", "amd64").unwrap_err();
        assert_eq!(e.to_string(), "find a kernel for line 5.4 in suite bookworm (flavour -amd64)");
        let e = pick_version(&[index("bookworm")], "6.1.1-1", "amd64").unwrap_err();
        assert_eq!(e.to_string(), "find kernel build 6.1.1-1 in suites bookworm");
        let r = pick_version(&[index("bookworm")], "6.1.170-3", "amd64").unwrap();
        assert_eq!(r.image, "linux-image-6.1.0-47-amd64");
        let r = pick_version(&[index("bookworm")], "6.1.176", "amd64").unwrap();
        assert_eq!(r.version, "6.1.176-1");
        // A backport stands in for the revision it was built from.
        let r = pick_version(&[index("trixie-backports")], "7.3.4-1", "amd64").unwrap();
        assert_eq!(r.version, "7.3.4-1~bpo13+1");
        assert!(pick_version(&[index("trixie-backports")], "7.3.4-2", "amd64").is_err());
    }

    #[test]
    fn missing_split_package_is_named() {
        let mut idx = index("trixie-backports");
        idx.packages.retain(|p| !p.name.starts_with("linux-base-"));
        let e = pick_line(&idx, "7.3", "amd64").unwrap_err();
        assert_eq!(
            e.to_string(),
            "find package linux-base-7.3.4+deb13-amd64 7.3.4-1~bpo13+1 in suite trixie-backports"
        );
    }

    #[test]
    fn filter_keeps_only_kernel_stanzas() {
        let text = "Package: bash\nVersion: 5\n\nPackage: linux-image-6.1.0-50-amd64\nVersion: 6.1.176-1\nFilename: a.deb\nSize: 1\nSHA256: ab\n\nPackage: zsh\n";
        let out = filter_packages(text.as_bytes(), "x").unwrap();
        assert_eq!(parse_packages(&out).len(), 1);
        assert!(!out.contains("bash"));
    }
}
