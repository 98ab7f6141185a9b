//! The Debian archive's chain of trust, from `InRelease` to a kernel package's `.deb` hash.
//!
//! `InRelease` (checked with `gpgv` against the archive keyring; without either, or without a
//! signature, it is refused unless the user passes `--allow-unsigned`) lists the sha256 of
//! `Packages.xz`; `Packages.xz` lists the sha256 of every `.deb`. This module fetches and
//! checks those two files and picks kernel packages out of the index. It does not download or
//! open `.deb` files: `deb.rs` does.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::arch::Arch;
use super::error::{KernelError, Result};
use super::mirror::Mirror;
use super::version;
use crate::cache::{write_atomic, Cache};

/// Where the Debian archive keyring lives when `debian-archive-keyring` is installed.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Upper bounds on what a mirror may send, so a broken one cannot fill memory or disk.
const MAX_RELEASE: u64 = 16 << 20;
const MAX_INDEX: u64 = 256 << 20;

/// How the Release file of a suite was authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signature {
    /// `gpgv` accepted the signature against the keyring.
    Good,
    /// Not checked (no `gpgv`, no keyring, or no signature), which only `--allow-unsigned`
    /// accepts: hashes only.
    Unchecked,
}

impl Signature {
    pub fn as_str(&self) -> &'static str {
        match self {
            Signature::Good => "good",
            Signature::Unchecked => "unchecked",
        }
    }
}

/// How to authenticate Release files.
#[derive(Debug, Clone, Default)]
pub struct TrustOptions {
    /// The keyring for `gpgv`; `None` means [`DEFAULT_KEYRING`].
    pub keyring: Option<PathBuf>,
    /// The `gpgv` program; `None` means `gpgv` from `PATH`.
    pub gpgv: Option<PathBuf>,
    /// `--allow-unsigned`: use a Release whose signature cannot be checked (no `gpgv`, no
    /// keyring, or neither InRelease nor Release.gpg, as on a local test mirror), trusting the
    /// mirror's hashes alone. Without it such a Release is refused. A bad signature is an error
    /// even with it.
    pub allow_unsigned: bool,
}

/// One binary package of a Packages index, with what is needed to fetch and check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub depends: String,
}

/// The kernel packages of one suite's `main/binary-amd64` index.
#[derive(Debug, Clone)]
pub struct SuiteIndex {
    pub suite: String,
    /// Whose `binary-<arch>` index this is.
    pub arch: Arch,
    pub signature: Signature,
    pub packages: Vec<DebPackage>,
}

/// One deb822 paragraph: field names lowercased, continuation lines joined with `\n`.
pub type Stanza = BTreeMap<String, String>;

/// Split control-file text (Release, Packages) into paragraphs.
pub fn parse_stanzas(text: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    let mut cur = Stanza::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            last = None;
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(v) = last.as_ref().and_then(|k| cur.get_mut(k)) {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            cur.insert(k.clone(), v.trim().to_string());
            last = Some(k);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// An entry of a Release file's `SHA256:` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFile {
    pub sha256: String,
    pub size: u64,
    pub path: String,
}

/// The parsed fields of a Release file that kmatrix uses.
#[derive(Debug, Clone)]
pub struct Release {
    pub suite: String,
    pub codename: String,
    pub by_hash: bool,
    pub files: Vec<ReleaseFile>,
}

pub fn parse_release(text: &str, what: &str) -> Result<Release> {
    let st = parse_stanzas(text)
        .into_iter()
        .next()
        .ok_or_else(|| KernelError::Parse { what: what.to_string(), detail: "empty Release file".into() })?;
    let mut files = Vec::new();
    for line in st.get("sha256").map(String::as_str).unwrap_or("").lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [sha, size, path] = parts[..] {
            let size = size.parse().map_err(|_| KernelError::Parse {
                what: what.to_string(),
                detail: format!("bad size {size:?} for {path} in SHA256 list"),
            })?;
            if sha.len() != 64 || !sha.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(KernelError::Parse { what: what.to_string(), detail: format!("bad sha256 for {path}") });
            }
            files.push(ReleaseFile { sha256: sha.to_ascii_lowercase(), size, path: path.to_string() });
        }
    }
    if files.is_empty() {
        return Err(KernelError::Parse { what: what.to_string(), detail: "no SHA256 list".into() });
    }
    Ok(Release {
        suite: st.get("suite").cloned().unwrap_or_default(),
        codename: st.get("codename").cloned().unwrap_or_default(),
        by_hash: st.get("acquire-by-hash").is_some_and(|v| v.eq_ignore_ascii_case("yes")),
        files,
    })
}

/// The text of a clear-signed message without its armour (what `gpgv --output -` would print),
/// for when the signature cannot be checked.
pub fn strip_clearsign(text: &str) -> Option<String> {
    let mut lines = text.lines();
    lines.find(|l| l.trim_end() == "-----BEGIN PGP SIGNED MESSAGE-----")?;
    // Armour headers ("Hash: SHA256") end at the first empty line.
    for l in lines.by_ref() {
        if l.trim().is_empty() {
            break;
        }
    }
    let mut out = String::new();
    for l in lines {
        if l.trim_end() == "-----BEGIN PGP SIGNATURE-----" {
            return Some(out);
        }
        out.push_str(l.strip_prefix("- ").unwrap_or(l));
        out.push('\n');
    }
    None
}

fn warn(msg: &str) {
    eprintln!("warning: {msg}");
}

/// Check a signature with `gpgv`. `signed` is InRelease (clear-signed, `detached == None`) or
/// Release with its `Release.gpg`. Returns the signed text and the verdict.
fn verify(signed: &[u8], detached: Option<&[u8]>, what: &str, trust: &TrustOptions) -> Result<(Vec<u8>, Signature)> {
    let keyring = trust.keyring.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING));
    let unchecked = |why: String| -> Result<(Vec<u8>, Signature)> {
        if !trust.allow_unsigned {
            return Err(KernelError::Unverifiable { what: what.to_string(), missing: why });
        }
        warn(&format!("SIGNATURE NOT CHECKED for {what}: {why}; --allow-unsigned: trusting the mirror's hashes only"));
        let text = if detached.is_none() {
            strip_clearsign(&String::from_utf8_lossy(signed))
                .ok_or_else(|| KernelError::Parse {
                    what: what.to_string(),
                    detail: "not a clear-signed message".into(),
                })?
                .into_bytes()
        } else {
            signed.to_vec()
        };
        Ok((text, Signature::Unchecked))
    };
    if !keyring.is_file() {
        return unchecked(format!(
            "the archive keyring {} is missing (Debian and Ubuntu: apt-get install debian-archive-keyring)",
            keyring.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(KernelError::io(std::env::temp_dir()))?;
    let data = dir.path().join("signed");
    fs::write(&data, signed).map_err(KernelError::io(&data))?;
    let gpgv = trust.gpgv.clone().unwrap_or_else(|| PathBuf::from("gpgv"));
    let mut cmd = Command::new(&gpgv);
    cmd.arg("--keyring").arg(&keyring);
    if let Some(sig) = detached {
        let sig_path = dir.path().join("signed.gpg");
        fs::write(&sig_path, sig).map_err(KernelError::io(&sig_path))?;
        cmd.arg(&sig_path).arg(&data);
    } else {
        cmd.arg("--output").arg("-").arg(&data);
    }
    let out = match cmd.stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return unchecked(format!("{} is not installed (Debian and Ubuntu: apt-get install gpgv)", gpgv.display()));
        }
        Err(source) => return Err(KernelError::Io { path: gpgv, source }),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let detail = stderr.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("; ");
        return Err(KernelError::Signature { what: what.to_string(), detail: format!("gpgv rejected it: {detail}") });
    }
    let text = if detached.is_some() { signed.to_vec() } else { out.stdout };
    Ok((text, Signature::Good))
}

/// Fetch and authenticate `dists/<suite>/InRelease` (or `Release` + `Release.gpg`).
pub fn fetch_release(mirror: &Mirror, suite: &str, trust: &TrustOptions) -> Result<(Release, Signature)> {
    let dists = format!("dists/{suite}");
    let (text, sig, what) = match mirror.fetch(&format!("{dists}/InRelease"), MAX_RELEASE) {
        Ok(body) => {
            let what = mirror.url(&format!("{dists}/InRelease"));
            let (t, s) = verify(&body, None, &what, trust)?;
            (t, s, what)
        }
        Err(KernelError::NotFound { .. }) => {
            let what = mirror.url(&format!("{dists}/Release"));
            let body = match mirror.fetch(&format!("{dists}/Release"), MAX_RELEASE) {
                Ok(b) => b,
                Err(KernelError::NotFound { .. }) => {
                    return Err(KernelError::UnknownSuite { suite: suite.to_string(), url: mirror.url(&dists) })
                }
                Err(e) => return Err(e),
            };
            match mirror.fetch(&format!("{dists}/Release.gpg"), MAX_RELEASE) {
                Ok(sig) => {
                    let (t, s) = verify(&body, Some(&sig), &what, trust)?;
                    (t, s, what)
                }
                Err(KernelError::NotFound { .. }) if trust.allow_unsigned => {
                    warn(&format!("SIGNATURE NOT CHECKED for {what}: unsigned Release allowed"));
                    (body, Signature::Unchecked, what)
                }
                Err(KernelError::NotFound { .. }) => {
                    return Err(KernelError::Unverifiable {
                        what,
                        missing: "the mirror has neither InRelease nor Release.gpg, so there is no signature".into(),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let text =
        String::from_utf8(text).map_err(|_| KernelError::Parse { what: what.clone(), detail: "not UTF-8".into() })?;
    let rel = parse_release(&text, &what)?;
    // A validly signed Release of another suite must not stand in for this one.
    if rel.codename != suite && rel.suite != suite {
        return Err(KernelError::Parse {
            what,
            detail: format!("it describes suite {:?} (codename {:?}), not {suite}", rel.suite, rel.codename),
        });
    }
    Ok((rel, sig))
}

/// True for the packages an index is filtered down to: the ones a kernel can be made of.
fn is_kernel_package(name: &str) -> bool {
    // linux-source-<line>: the kernel's own selftests (`kmatrix selftest ftrace`);
    // linux-headers-*: BCC's headers (`kernel/headers.rs`).
    ["linux-image-", "linux-binary-", "linux-base-", "linux-modules-", "linux-source-", "linux-headers-"]
        .iter()
        .any(|p| name.starts_with(p))
}

fn stanza_to_package(st: &Stanza) -> Option<DebPackage> {
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
            keep = is_kernel_package(name.trim());
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
    // The name says what the filter kept (v2: linux-source too; v3: linux-headers too), so an
    // older cache is not reused.
    let cached = dir.join(format!("{}.kernel-packages-v3", entry.sha256));
    if let Ok(text) = fs::read_to_string(&cached) {
        return Ok(SuiteIndex { suite: suite.to_string(), arch, signature, packages: parse_packages(&text) });
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
        filter_packages(BufReader::new(xz2::read::XzDecoder::new(file)), &url)?
    } else {
        filter_packages(BufReader::new(flate2::read::GzDecoder::new(file)), &url)?
    };
    write_atomic(&cached, text.as_bytes())?;
    Ok(SuiteIndex { suite: suite.to_string(), arch, signature, packages: parse_packages(&text) })
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
    pub suite: String,
    pub arch: Arch,
    pub signature: Signature,
    /// The `linux-image-*` package the build is named by (a meta package from 7.x).
    pub image: String,
    pub version: String,
    /// `uname -r`: `6.1.0-50-amd64`.
    pub release: String,
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
    const PACKAGES: &str = include_str!("fixtures/Packages.kernel");
    const RELEASE: &str = include_str!("fixtures/Release.head");

    fn index(suite: &str) -> SuiteIndex {
        SuiteIndex {
            suite: suite.into(),
            arch: Arch::X86_64,
            signature: Signature::Good,
            packages: parse_packages(PACKAGES),
        }
    }

    #[test]
    fn release_sha256_list() {
        let r = parse_release(RELEASE, "Release").unwrap();
        assert_eq!(r.codename, "bookworm");
        assert_eq!(r.suite, "oldstable");
        assert!(r.by_hash);
        let p = r.files.iter().find(|f| f.path == "main/binary-amd64/Packages.xz").unwrap();
        assert_eq!(p.size, 8790396);
        assert_eq!(p.sha256, "9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5");
    }

    #[test]
    fn release_rejects_garbage() {
        assert!(matches!(parse_release("", "x"), Err(KernelError::Parse { .. })));
        let bad = "Codename: x\nSHA256:\n nothex 12 main/binary-amd64/Packages.xz\n";
        let e = parse_release(bad, "http://h/dists/x/Release").unwrap_err();
        assert!(e.to_string().contains("http://h/dists/x/Release"), "{e}");
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

    #[test]
    fn clearsign_armour_is_stripped() {
        let t = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\n- -dash\n-----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n";
        assert_eq!(strip_clearsign(t).unwrap(), "Origin: Debian\n-dash\n");
        assert!(strip_clearsign("Origin: Debian\n").is_none());
    }
}
