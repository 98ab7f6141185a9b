//! The first link of the Debian archive's chain of trust: a suite's `InRelease` (or `Release`
//! with `Release.gpg`), checked with `gpgv` against the archive keyring, and the sha256 list it
//! carries for the indexes. Without `gpgv`, a keyring or a signature it is refused unless the
//! user passes `--allow-unsigned`; a bad signature is refused always.
//!
//! Also the deb822 paragraph reader both Release and Packages files use. The Packages index and
//! the kernel packages picked from it are [`super::index`]'s.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::kernel::error::{KernelError, Result};
use crate::kernel::mirror::Mirror;

/// Where the Debian archive keyring lives when `debian-archive-keyring` is installed.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Upper bound on what a mirror may send as a Release file, so a broken one cannot fill memory.
const MAX_RELEASE: u64 = 16 << 20;

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
    /// The name the manifest and the lock write (`good`, `unchecked`).
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
    /// The file's sha256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its path under `dists/<suite>/`.
    pub path: String,
}

/// The parsed fields of a Release file that kmatrix uses.
#[derive(Debug, Clone)]
pub struct Release {
    /// The `Suite:` field (`oldstable`).
    pub suite: String,
    /// The `Codename:` field (`bookworm`).
    pub codename: String,
    /// The mirror serves indexes by hash (`Acquire-By-Hash: yes`).
    pub by_hash: bool,
    /// The `SHA256:` list.
    pub files: Vec<ReleaseFile>,
}

/// Parse a Release file's text (`what` names it in errors); it must carry a `SHA256:` list.
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
    // The status lines on stdout (judged by `signature_judgement`), the signed text to a file.
    let text_path = dir.path().join("text");
    cmd.arg("--status-fd").arg("1").arg("--keyring").arg(&keyring);
    if let Some(sig) = detached {
        let sig_path = dir.path().join("signed.gpg");
        fs::write(&sig_path, sig).map_err(KernelError::io(&sig_path))?;
        cmd.arg(&sig_path).arg(&data);
    } else {
        cmd.arg("--output").arg(&text_path).arg(&data);
    }
    let out = match cmd.stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return unchecked(format!("{} is not installed (Debian and Ubuntu: apt-get install gpgv)", gpgv.display()));
        }
        Err(source) => return Err(KernelError::Io { path: gpgv, source }),
    };
    if let Err(why) = signature_judgement(&String::from_utf8_lossy(&out.stdout)) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = stderr.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("; ");
        return Err(KernelError::Signature {
            what: what.to_string(),
            detail: format!("gpgv rejected it ({why}): {said}"),
        });
    }
    let text = match detached {
        Some(_) => signed.to_vec(),
        None => fs::read(&text_path).map_err(KernelError::io(&text_path))?,
    };
    Ok((text, Signature::Good))
}

/// apt's rule on gpgv's status lines (`--status-fd`): a Release is trusted when at least one
/// signature is good (`GOODSIG`: a key of the keyring, neither expired nor revoked) and none is
/// bad (`BADSIG`: the text does not match). A signature by a key the keyring lacks (`NO_PUBKEY`)
/// or by an expired or revoked one counts for nothing, as in apt: archives sign with their
/// current and next keys, and a keyring older or newer than the archive (Ubuntu's
/// `debian-archive-keyring` checking Debian's bookworm, say) holds only some of them, so gpgv's
/// exit code alone (non-zero then) would refuse an archive apt accepts.
pub fn signature_judgement(status: &str) -> std::result::Result<(), String> {
    let mut good = 0;
    for line in status.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("[GNUPG:]") {
            continue;
        }
        match w.next() {
            Some("GOODSIG") => good += 1,
            Some("BADSIG") => return Err(format!("a bad signature by {}", w.next().unwrap_or("?"))),
            _ => {}
        }
    }
    if good == 0 {
        return Err("no good signature by a key of the keyring".into());
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    // Real stanzas from the bookworm index (descriptions trimmed).
    const RELEASE: &str = include_str!("../fixtures/Release.head");

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
    fn clearsign_armour_is_stripped() {
        let t = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\n- -dash\n-----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n";
        assert_eq!(strip_clearsign(t).unwrap(), "Origin: Debian\n-dash\n");
        assert!(strip_clearsign("Origin: Debian\n").is_none());
    }
}
