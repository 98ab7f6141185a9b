//! What the user asks for — a kernel spec (`debian-6.1`, `debian:6.12.57-1`, a local file) — and
//! how to fetch it (mirror, trust, a local kernel's modules and config).
//!
//! Parsing only: resolving a spec to files is [`super::prepare`]'s job.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::debian::release::TrustOptions;
use super::error::{KernelError, Result};
#[cfg(doc)]
use super::{mirror, KernelsDir};

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// A kernel of `kernels/matrix.toml`, e.g. `debian-6.1`.
    Matrix(String),
    /// Any build the mirror has, by Debian package version: `debian:6.12.57-1` (or the newest
    /// build of an upstream version: `debian:6.12.57`).
    Debian(String),
    /// Any generic build Ubuntu's archive has, by ABI (`ubuntu:5.4.0-216`) or package version
    /// (`ubuntu:5.4.0-216.236`).
    Ubuntu(String),
    /// A kernel built by the user: a bzImage or an ELF vmlinux with a PVH note.
    Local {
        /// The kernel file.
        path: PathBuf,
        /// Its `lib/modules/<release>` (or a directory holding it).
        modules: Option<PathBuf>,
        /// Its `.config`.
        config: Option<PathBuf>,
    },
}

impl FromStr for KernelSpec {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<KernelSpec> {
        let bad = |detail: &str| KernelError::BadSpec { spec: s.to_string(), detail: detail.to_string() };
        if s.trim().is_empty() {
            return Err(bad("empty; use a matrix id (debian-6.1), debian:<version> or a path"));
        }
        if let Some(v) = s.strip_prefix("debian:") {
            let ok = !v.is_empty()
                && v.starts_with(|c: char| c.is_ascii_digit())
                && v.chars().all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c));
            if !ok {
                return Err(bad("after debian: comes a package version such as 6.12.57-1"));
            }
            return Ok(KernelSpec::Debian(v.to_string()));
        }
        if let Some(v) = s.strip_prefix("ubuntu:") {
            let ok = v.split_once('-').is_some_and(|(up, rest)| {
                up.split('.').count() == 3
                    && up.split('.').all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
                    && !rest.is_empty()
                    && rest.chars().all(|c| c.is_ascii_alphanumeric() || ".~+".contains(c))
            });
            if !ok {
                return Err(bad(
                    "after ubuntu: comes an ABI such as 5.4.0-216 (or a package version such as 5.4.0-216.236)",
                ));
            }
            return Ok(KernelSpec::Ubuntu(v.to_string()));
        }
        if s.contains('/') || Path::new(s).is_file() {
            return Ok(KernelSpec::Local { path: PathBuf::from(s), modules: None, config: None });
        }
        Ok(KernelSpec::Matrix(s.to_string()))
    }
}

impl std::fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelSpec::Matrix(id) => f.write_str(id),
            KernelSpec::Debian(v) => write!(f, "debian:{v}"),
            KernelSpec::Ubuntu(v) => write!(f, "ubuntu:{v}"),
            KernelSpec::Local { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

/// How to fetch: mirror, trust, and the extras of a local kernel.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// `--mirror`; else `KMATRIX_MIRROR`, else the host's apt configuration.
    pub mirror: Option<String>,
    /// `--ubuntu-mirror`; else `KMATRIX_UBUNTU_MIRROR`, else the host's apt configuration on
    /// an Ubuntu host, else debootstrap's default (`kernel/ubuntu/mirror.rs`).
    pub ubuntu_mirror: Option<String>,
    /// `--modules DIR` for a local kernel (`lib/modules/<release>` or its parent).
    pub modules: Option<PathBuf>,
    /// `--config FILE` for a local kernel.
    pub config: Option<PathBuf>,
    /// Where `matrix.toml` and `kernels.lock` are; else [`KernelsDir::locate`].
    pub kernels_dir: Option<PathBuf>,
    /// How to authenticate the mirror's Release files.
    pub trust: TrustOptions,
    /// How long a download may wait for data before it is called stalled; else
    /// `KMATRIX_READ_TIMEOUT` seconds, else 30 s ([`mirror::DEFAULT_READ_TIMEOUT`]).
    pub read_timeout: Option<std::time::Duration>,
}
