//! Where packages come from, and how they are downloaded.
//!
//! The mirror is never written into kmatrix: it is `--mirror`, else `KMATRIX_MIRROR`, else the first
//! `deb` URI of the host's own apt configuration whose path ends in `/debian`. Downloads stream into
//! a file while hashing, with a progress bar on stderr when it is a terminal. This module does not
//! decide what to trust: callers compare the returned sha256 with the index.
//!
//! A mirror that stalls (sends nothing for the read timeout: [`FetchOptions::read_timeout`], else
//! `KMATRIX_READ_TIMEOUT` seconds, else 30 s) or closes mid-body ends the download with an error
//! naming the URL and how far it got; callers download into temporary files, so nothing partial
//! stays in the cache.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::{KernelError, Result};
use super::FetchOptions;

/// How long a read from the mirror may wait for data before the download is called stalled.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A Debian mirror base URL, without a trailing slash (e.g. `http://host/debian`).
#[derive(Debug, Clone)]
pub struct Mirror {
    base: String,
    agent: ureq::Agent,
    read_timeout: Duration,
}

impl Mirror {
    /// A mirror at `base` (`http://host/debian`), with the default read timeout.
    pub fn new(base: &str) -> Mirror {
        Mirror::with_read_timeout(base, DEFAULT_READ_TIMEOUT)
    }

    /// A mirror whose reads give up after `read_timeout` without data.
    pub fn with_read_timeout(base: &str, read_timeout: Duration) -> Mirror {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(read_timeout)
            .try_proxy_from_env(true)
            .build();
        Mirror { base: base.trim_end_matches('/').to_string(), agent, read_timeout }
    }

    /// The mirror of `opts` ([`Mirror::discover`]) with its read timeout: `opts.read_timeout`,
    /// else `KMATRIX_READ_TIMEOUT` (whole seconds, at least 1), else [`DEFAULT_READ_TIMEOUT`].
    pub fn from_options(opts: &FetchOptions) -> Result<Mirror> {
        let timeout = match opts.read_timeout {
            Some(t) => t,
            None => read_timeout_from_env(std::env::var("KMATRIX_READ_TIMEOUT").ok().as_deref())?,
        };
        let m = Mirror::discover(opts.mirror.as_deref())?;
        Ok(Mirror::with_read_timeout(&m.base, timeout))
    }

    /// `explicit` (from `--mirror`), else `KMATRIX_MIRROR`, else the host's apt configuration.
    pub fn discover(explicit: Option<&str>) -> Result<Mirror> {
        if let Some(m) = explicit.filter(|m| !m.is_empty()) {
            return Ok(Mirror::new(m));
        }
        if let Ok(m) = std::env::var("KMATRIX_MIRROR") {
            if !m.is_empty() {
                return Ok(Mirror::new(&m));
            }
        }
        mirror_from_apt(Path::new("/etc/apt"), "/debian").map(|m| Mirror::new(&m))
    }

    /// The mirror's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of `rel` (a path under the mirror's root).
    pub fn url(&self, rel: &str) -> String {
        format!("{}/{}", self.base, rel.trim_start_matches('/'))
    }

    /// GET with two retries on transport errors and 5xx (mirrors and proxies drop connections);
    /// a 404 or other 4xx is final.
    fn get(&self, url: &str) -> Result<ureq::Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.agent.get(url).call() {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(404, _)) => return Err(KernelError::NotFound { url: url.to_string() }),
                Err(e) => {
                    let transient = matches!(&e, ureq::Error::Transport(_) | ureq::Error::Status(500..=599, _));
                    if !transient || attempt >= 3 {
                        return Err(KernelError::Http { url: url.to_string(), source: Box::new(e) });
                    }
                    std::thread::sleep(Duration::from_millis(500 * attempt));
                }
            }
        }
    }

    /// A small file (Release, InRelease) into memory, at most `limit` bytes.
    pub fn fetch(&self, rel: &str, limit: u64) -> Result<Vec<u8>> {
        let url = self.url(rel);
        let resp = self.get(&url)?;
        let mut buf = Vec::new();
        resp.into_reader()
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|source| KernelError::Network { url: url.clone(), source })?;
        if buf.len() as u64 > limit {
            return Err(KernelError::Parse { what: url, detail: format!("larger than {limit} bytes") });
        }
        Ok(buf)
    }

    /// Download `rel` into `dest` (created or truncated), hashing on the way. Returns the size and
    /// hex sha256 of what was written. Stops with an error past `max_size` bytes, so a hostile or
    /// broken server cannot fill the disk.
    pub fn download(&self, rel: &str, dest: &Path, max_size: u64, label: &str) -> Result<(u64, String)> {
        let url = self.url(rel);
        let resp = self.get(&url)?;
        let len = resp.header("content-length").and_then(|l| l.parse::<u64>().ok());
        let expected = len.map_or_else(|| "an unannounced number of".to_string(), |l| l.to_string());
        let bar = progress_bar(len.unwrap_or(max_size), label);
        let mut reader = resp.into_reader().take(max_size + 1);
        let mut file = fs::File::create(dest).map_err(KernelError::io(dest))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // SO_RCVTIMEO expiring reads as EAGAIN (WouldBlock) on Linux.
                Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
                    bar.finish_and_clear();
                    let secs = self.read_timeout.as_secs().max(1);
                    return Err(KernelError::Stalled { url, secs, received: total, expected });
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    bar.finish_and_clear();
                    return Err(KernelError::Truncated { url, received: total, expected });
                }
                Err(source) => return Err(KernelError::Network { url, source }),
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(KernelError::io(dest))?;
            total += n as u64;
            bar.set_position(total);
        }
        bar.finish_and_clear();
        if len.is_some_and(|l| total < l) {
            return Err(KernelError::Truncated { url, received: total, expected });
        }
        if total > max_size {
            return Err(KernelError::SizeMismatch { what: url, expected: max_size, actual: total });
        }
        file.sync_all().map_err(KernelError::io(dest))?;
        Ok((total, hex::encode(hasher.finalize())))
    }
}

impl Mirror {
    /// Download the package file `filename` into `dest` and hold it to what the signed index
    /// says: exactly `size` bytes (never more than `max_size` read) with sha256 `sha256`. The one
    /// place a `.deb` is checked against its index entry.
    pub fn download_checked(
        &self,
        filename: &str,
        sha256: &str,
        size: u64,
        dest: &Path,
        max_size: u64,
        label: &str,
    ) -> Result<()> {
        let (got_size, sha) = self.download(filename, dest, size.min(max_size), label)?;
        let url = self.url(filename);
        if sha != sha256 {
            return Err(KernelError::HashMismatch { what: url, expected: sha256.to_string(), actual: sha });
        }
        if got_size != size {
            return Err(KernelError::SizeMismatch { what: url, expected: size, actual: got_size });
        }
        Ok(())
    }
}

/// `KMATRIX_READ_TIMEOUT`: whole seconds, at least 1; unset or empty is the default.
fn read_timeout_from_env(value: Option<&str>) -> Result<Duration> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_READ_TIMEOUT),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Duration::from_secs(n)),
            _ => Err(KernelError::Parse {
                what: "KMATRIX_READ_TIMEOUT".into(),
                detail: format!("{v:?} is not a whole number of seconds >= 1"),
            }),
        },
    }
}

fn progress_bar(len: u64, label: &str) -> indicatif::ProgressBar {
    // ProgressDrawTarget::stderr draws nothing when stderr is not a terminal.
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:40!} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {eta:>4}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(label.to_string());
    bar
}

/// The first `deb` URI whose path ends in `archive` (`/debian`, `/ubuntu`) in the apt
/// configuration under `root` (`sources.list`, then `sources.list.d/*.list` and `*.sources` in
/// name order).
pub fn mirror_from_apt(root: &Path, archive: &str) -> Result<String> {
    let mut files: Vec<PathBuf> = vec![root.join("sources.list")];
    if let Ok(rd) = fs::read_dir(root.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    for f in &files {
        let Ok(text) = fs::read_to_string(f) else { continue };
        let uris =
            if f.extension().is_some_and(|e| e == "sources") { deb822_uris(&text) } else { one_line_uris(&text) };
        if let Some(u) = uris.into_iter().find(|u| is_archive(u, archive)) {
            return Ok(u.trim_end_matches('/').to_string());
        }
    }
    Err(KernelError::NoMirror { searched: format!("{}/sources.list{{,.d/}}", root.display()) })
}

fn is_archive(uri: &str, archive: &str) -> bool {
    (uri.starts_with("http://") || uri.starts_with("https://") || uri.starts_with("file:/"))
        && uri.trim_end_matches('/').ends_with(archive)
}

/// URIs of enabled `Types: deb` stanzas of a deb822 `.sources` file.
fn deb822_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let (mut types, mut uris, mut enabled) = (String::new(), String::new(), true);
        let mut current: Option<&str> = None;
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                // Continuation of a multi-line field.
                match current {
                    Some("types") => types.push_str(line),
                    Some("uris") => uris.push_str(line),
                    _ => {}
                }
                continue;
            }
            let Some((k, v)) = line.split_once(':') else { continue };
            match k.trim().to_ascii_lowercase().as_str() {
                "types" => {
                    types = v.to_string();
                    current = Some("types");
                }
                "uris" => {
                    uris = v.to_string();
                    current = Some("uris");
                }
                "enabled" => {
                    enabled = !v.trim().eq_ignore_ascii_case("no");
                    current = None;
                }
                _ => current = None,
            }
        }
        if enabled && types.split_whitespace().any(|t| t == "deb") {
            out.extend(uris.split_whitespace().map(str::to_string));
        }
    }
    out
}

/// URIs of `deb` lines of a one-line-format `sources.list` (`deb [options] uri suite components`).
fn one_line_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ").or_else(|| line.strip_prefix("deb\t")) else { continue };
        let rest = rest.trim_start();
        let rest = if rest.starts_with('[') { rest.split_once(']').map(|(_, r)| r).unwrap_or("") } else { rest };
        if let Some(uri) = rest.split_whitespace().next() {
            out.push(uri.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The deb822 file shipped on this project's machines, host names replaced.
    const SOURCES: &str = "Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.example/archive/debian-security/20250520T000000Z
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    #[test]
    fn deb822_first_debian_uri() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("sources.list.d")).unwrap();
        fs::write(d.path().join("sources.list.d/debian.sources"), SOURCES).unwrap();
        assert_eq!(mirror_from_apt(d.path(), "/debian").unwrap(), "http://mirror.example/debian");
    }

    #[test]
    fn deb822_skips_disabled_and_deb_src() {
        let text = "Types: deb-src\nURIs: http://a.example/debian\n\nEnabled: no\nTypes: deb\nURIs: http://b.example/debian\n\nTypes: deb deb-src\nURIs:\n http://c.example/debian-security\n http://d.example/debian/\n";
        let uris = deb822_uris(text);
        assert_eq!(uris, vec!["http://c.example/debian-security", "http://d.example/debian/"]);
        assert_eq!(uris.iter().find(|u| is_archive(u, "/debian")).unwrap(), "http://d.example/debian/");
        assert_eq!(uris.iter().find(|u| is_archive(u, "/ubuntu")), None);
    }

    #[test]
    fn an_ubuntu_hosts_apt_names_ubuntus_archive() {
        // Ubuntu 24.04's deb822 layout (host names replaced).
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("sources.list.d")).unwrap();
        fs::write(
            d.path().join("sources.list.d/ubuntu.sources"),
            "Types: deb\nURIs: http://main.example/ubuntu/\nSuites: noble noble-updates noble-backports\nComponents: main restricted universe multiverse\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n",
        )
        .unwrap();
        assert_eq!(mirror_from_apt(d.path(), "/ubuntu").unwrap(), "http://main.example/ubuntu");
        assert!(mirror_from_apt(d.path(), "/debian").is_err());
    }

    #[test]
    fn one_line_format() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("sources.list"),
            "# comment\ndeb-src http://x.example/debian bookworm main\ndeb [signed-by=/k.gpg arch=amd64] http://y.example/debian-security bookworm-security main\ndeb http://z.example/debian/ bookworm main # trailing\n",
        )
        .unwrap();
        assert_eq!(mirror_from_apt(d.path(), "/debian").unwrap(), "http://z.example/debian");
    }

    #[test]
    fn read_timeout_comes_from_the_environment_or_defaults() {
        assert_eq!(read_timeout_from_env(None).unwrap(), DEFAULT_READ_TIMEOUT);
        assert_eq!(read_timeout_from_env(Some(" ")).unwrap(), DEFAULT_READ_TIMEOUT);
        assert_eq!(read_timeout_from_env(Some("5")).unwrap(), Duration::from_secs(5));
        for bad in ["0", "-1", "1.5", "soon"] {
            let e = read_timeout_from_env(Some(bad)).unwrap_err().to_string();
            assert!(e.starts_with("parse KMATRIX_READ_TIMEOUT: "), "{e}");
        }
    }

    #[test]
    fn no_mirror_names_the_files() {
        let d = tempfile::tempdir().unwrap();
        let e = mirror_from_apt(d.path(), "/debian").unwrap_err();
        assert!(matches!(e, KernelError::NoMirror { .. }));
        assert!(e.to_string().contains("sources.list"), "{e}");
    }
}
