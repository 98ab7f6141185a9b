//! The one error type of the kernel provider.
//!
//! Every message is lowercase, reads after "failed to", and names the input it is about (a URL, a
//! file, a package or a kernel id), so the CLI can print the chain once and the user knows where to
//! look. Variants keep the evidence (expected and actual hashes, the known ids).

use std::path::PathBuf;

use crate::cache::CacheError;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "find a package mirror: pass --mirror or set KMATRIX_MIRROR (no `deb` URI ending in /debian in {searched})"
    )]
    NoMirror { searched: String },

    #[error("download {url}")]
    Http {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },

    #[error("download {url}: not found (404)")]
    NotFound { url: String },

    #[error("read {url}")]
    Network {
        url: String,
        #[source]
        source: std::io::Error,
    },

    /// The mirror sent nothing for the read timeout in the middle of a body (or of its headers).
    #[error(
        "download {url}: the mirror stalled, no data for {secs} s after {received} of {expected} bytes (KMATRIX_READ_TIMEOUT sets the limit, in seconds)"
    )]
    Stalled { url: String, secs: u64, received: u64, expected: String },

    /// The connection ended before the body's announced length.
    #[error("download {url}: the mirror closed the connection after {received} of {expected} bytes")]
    Truncated { url: String, received: u64, expected: String },

    #[error("access {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("verify {what}: sha256 is {actual}, expected {expected}")]
    HashMismatch { what: String, expected: String, actual: String },

    #[error("verify {what}: size is {actual} bytes, expected {expected}")]
    SizeMismatch { what: String, expected: u64, actual: u64 },

    #[error("verify the signature of {what}: {detail}")]
    Signature { what: String, detail: String },
    /// The signature could not be checked at all (no gpgv, no keyring): refused unless the user
    /// said `--allow-unsigned`.
    #[error("verify the signature of {what}: {missing}; install it, or pass --allow-unsigned to trust the mirror's hashes without a signature")]
    Unverifiable { what: String, missing: String },

    #[error("find suite {suite} on the mirror: neither {url}/InRelease nor {url}/Release exists")]
    UnknownSuite { suite: String, url: String },

    #[error("parse {what}: {detail}")]
    Parse { what: String, detail: String },

    #[error("find {file} in {release}: the Release file does not list it")]
    IndexNotListed { file: String, release: String },

    #[error("find package {package} in suite {suite}")]
    PackageNotFound { package: String, suite: String },

    #[error("find a kernel for line {line} in suite {suite} (flavour -{flavour})")]
    LineNotFound { line: String, suite: String, flavour: String },

    #[error("find kernel build {version} in suites {suites}")]
    VersionNotFound { version: String, suites: String },

    #[error("find kernel id {id}: known ids are {known}")]
    UnknownKernel { id: String, known: String },

    #[error("read kernel spec {spec:?}: {detail}")]
    BadSpec { spec: String, detail: String },

    #[error("read debian archive {what}: {detail}")]
    Deb { what: String, detail: String },

    #[error("extract {what}: {detail}")]
    Extract { what: String, detail: String },

    #[error("use {path} as a kernel: {detail}")]
    NotAKernel { path: PathBuf, detail: String },

    #[error("read {path}")]
    Toml {
        path: String,
        #[source]
        source: Box<toml::de::Error>,
    },

    #[error("check {path}: {detail}")]
    Invalid { path: String, detail: String },

    #[error("match kernel {id} against {lock}: {file} has sha256 {actual}, the lock pins {expected}")]
    LockMismatch { id: String, lock: String, file: String, expected: String, actual: String },

    #[error("download {url}: the mirror no longer has {package}, which kernels.lock pins for {id}; run `kmatrix kernels update`, or pass --mirror pointing at an archive snapshot")]
    PinnedGone { id: String, package: String, url: String },

    #[error("find module {name} in {dir}")]
    ModuleNotFound { name: String, dir: PathBuf },

    #[error("find the modules of kernel {id}: it has no modules directory")]
    NoModules { id: String },

    #[error("use the kernel cache")]
    Cache(#[from] CacheError),
}

impl KernelError {
    /// The user's input is wrong (unknown id, bad spec or file, malformed matrix), as opposed to
    /// the network, the mirror or the disk failing. The CLI maps this to its bad-input exit code.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            KernelError::UnknownKernel { .. }
                | KernelError::BadSpec { .. }
                | KernelError::NotAKernel { .. }
                | KernelError::Toml { .. }
                | KernelError::Invalid { .. }
                | KernelError::VersionNotFound { .. }
                | KernelError::ModuleNotFound { .. }
        )
    }

    /// The mirror does not have the build (any more): not in any suite's index, or its package
    /// is gone from the pool. An archive snapshot given with `--mirror` may still have it.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            KernelError::VersionNotFound { .. } | KernelError::PinnedGone { .. } | KernelError::NotFound { .. }
        )
    }

    /// The chain of trust failed (a hash, a size, a signature, the lock): never worked around.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            KernelError::HashMismatch { .. }
                | KernelError::SizeMismatch { .. }
                | KernelError::Signature { .. }
                | KernelError::Unverifiable { .. }
                | KernelError::LockMismatch { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> KernelError {
        let path = path.into();
        move |source| KernelError::Io { path, source }
    }
}

pub type Result<T, E = KernelError> = std::result::Result<T, E>;
