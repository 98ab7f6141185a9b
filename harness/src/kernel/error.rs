//! The one error type of the kernel provider.
//!
//! Every message is lowercase, reads after "failed to", and names the input it is about (a URL, a
//! file, a package or a kernel id), so the CLI can print the chain once and the user knows where to
//! look. Variants keep the evidence (expected and actual hashes, the known ids).

use std::path::PathBuf;

use crate::cache::CacheError;

/// Why a kernel could not be resolved, fetched, verified, extracted or read.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No mirror was given and the host's apt configuration names none.
    #[error(
        "find a package mirror: pass --mirror or set KMATRIX_MIRROR (no `deb` URI ending in /debian in {searched})"
    )]
    NoMirror {
        /// The apt sources that were read.
        searched: String,
    },

    /// No Ubuntu mirror: no `--ubuntu-mirror`, no `KMATRIX_UBUNTU_MIRROR`, not an Ubuntu host,
    /// and no debootstrap script naming a default.
    #[error(
        "find Ubuntu's mirror: pass --ubuntu-mirror or set KMATRIX_UBUNTU_MIRROR (the host is not Ubuntu and {scripts} has no script naming a default_mirror: apt-get install debootstrap)"
    )]
    NoUbuntuMirror {
        /// The debootstrap scripts directory that was read.
        scripts: String,
    },

    /// Ubuntu's archive keyring is neither installed nor to be had from Debian's `ubuntu-keyring`.
    #[error("get Ubuntu's archive keyring ({detail}); pass --keyring FILE, or --allow-unsigned to trust hashes only")]
    NoUbuntuKeyring {
        /// Why each way failed.
        detail: String,
    },

    /// The HTTP request failed (connection, TLS, a status other than 404).
    #[error("download {url}")]
    Http {
        /// The URL asked for.
        url: String,
        /// What the HTTP client said.
        #[source]
        source: Box<ureq::Error>,
    },

    /// The mirror answered 404.
    #[error("download {url}: not found (404)")]
    NotFound {
        /// The URL asked for.
        url: String,
    },

    /// Reading a response body failed.
    #[error("read {url}")]
    Network {
        /// The URL being read.
        url: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },

    /// The mirror sent nothing for the read timeout in the middle of a body (or of its headers).
    #[error(
        "download {url}: the mirror stalled, no data for {secs} s after {received} of {expected} bytes (KMATRIX_READ_TIMEOUT sets the limit, in seconds)"
    )]
    Stalled {
        /// The URL being read.
        url: String,
        /// The read timeout that ran out.
        secs: u64,
        /// Bytes received before the stall.
        received: u64,
        /// The length the mirror announced, as text.
        expected: String,
    },

    /// The connection ended before the body's announced length.
    #[error("download {url}: the mirror closed the connection after {received} of {expected} bytes")]
    Truncated {
        /// The URL being read.
        url: String,
        /// Bytes received before the end.
        received: u64,
        /// The length the mirror announced, as text.
        expected: String,
    },

    /// A file or directory could not be read, written, created or removed.
    #[error("access {path}")]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },

    /// A file's sha256 is not the one its index, manifest or lock records.
    #[error("verify {what}: sha256 is {actual}, expected {expected}")]
    HashMismatch {
        /// The file (URL, path or package).
        what: String,
        /// The recorded hash.
        expected: String,
        /// The hash of the bytes at hand.
        actual: String,
    },

    /// A file's size is not the one its index or manifest records.
    #[error("verify {what}: size is {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The file (URL, path or package).
        what: String,
        /// The recorded size.
        expected: u64,
        /// The size at hand.
        actual: u64,
    },

    /// `gpgv` rejected a Release file's signature (never accepted, even with `--allow-unsigned`).
    #[error("verify the signature of {what}: {detail}")]
    Signature {
        /// The Release file's URL.
        what: String,
        /// What gpgv said.
        detail: String,
    },
    /// The signature could not be checked at all (no gpgv, no keyring): refused unless the user
    /// said `--allow-unsigned`.
    #[error("verify the signature of {what}: {missing}; install it, or pass --allow-unsigned to trust the mirror's hashes without a signature")]
    Unverifiable {
        /// The Release file's URL.
        what: String,
        /// What is missing to check it.
        missing: String,
    },

    /// The mirror has neither `InRelease` nor `Release` for the suite.
    #[error("find suite {suite} on the mirror: neither {url}/InRelease nor {url}/Release exists")]
    UnknownSuite {
        /// The suite asked for (`bookworm`).
        suite: String,
        /// The suite's `dists/` URL.
        url: String,
    },

    /// A file kmatrix reads (Release, Packages, manifest, ELF, ...) is malformed.
    #[error("parse {what}: {detail}")]
    Parse {
        /// The file (URL or path).
        what: String,
        /// What is wrong with it.
        detail: String,
    },

    /// The Release file does not list the index kmatrix needs, so it cannot be verified.
    #[error("find {file} in {release}: the Release file does not list it")]
    IndexNotListed {
        /// The index (`main/binary-amd64/Packages.xz`).
        file: String,
        /// The Release file's URL.
        release: String,
    },

    /// A package a kernel needs is not in the suite's index.
    #[error("find package {package} in suite {suite}")]
    PackageNotFound {
        /// The package name and version.
        package: String,
        /// The suite searched.
        suite: String,
    },

    /// The suite has no image package of the line in the wanted flavour.
    #[error("find a kernel for line {line} in suite {suite} (flavour -{flavour})")]
    LineNotFound {
        /// The upstream line (`6.1`).
        line: String,
        /// The suite searched.
        suite: String,
        /// The flavour (`amd64`, `arm64`).
        flavour: String,
    },

    /// No suite has the package version asked for with `debian:<version>`.
    #[error("find kernel build {version} in suites {suites}")]
    VersionNotFound {
        /// The version asked for.
        version: String,
        /// The suites searched, comma-separated.
        suites: String,
    },

    /// The matrix has no kernel of this id.
    #[error("find kernel id {id}: known ids are {known}")]
    UnknownKernel {
        /// The id asked for.
        id: String,
        /// The matrix's ids, comma-separated.
        known: String,
    },

    /// The kernel spec is neither an id, `debian:<version>` nor a path.
    #[error("read kernel spec {spec:?}: {detail}")]
    BadSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A `.deb` (ar archive, control or data member) is malformed.
    #[error("read debian archive {what}: {detail}")]
    Deb {
        /// The package or file.
        what: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A package's files could not be turned into a cache entry.
    #[error("extract {what}: {detail}")]
    Extract {
        /// The package.
        what: String,
        /// What went wrong.
        detail: String,
    },

    /// A local file is not a kernel kmatrix can boot.
    #[error("use {path} as a kernel: {detail}")]
    NotAKernel {
        /// The file.
        path: PathBuf,
        /// Why it is not one.
        detail: String,
    },

    /// `matrix.toml` or `kernels.lock` is not valid TOML of its schema.
    #[error("read {path}")]
    Toml {
        /// The file.
        path: String,
        /// The TOML parser's error.
        #[source]
        source: Box<toml::de::Error>,
    },

    /// A file or option is well-formed but does not hold what it must.
    #[error("check {path}: {detail}")]
    Invalid {
        /// The file or option.
        path: String,
        /// What does not hold.
        detail: String,
    },

    /// A prepared kernel's file is not the one `kernels.lock` pins.
    #[error("match kernel {id} against {lock}: {file} has sha256 {actual}, the lock pins {expected}")]
    LockMismatch {
        /// The matrix id.
        id: String,
        /// The lock file.
        lock: String,
        /// The file inside the entry.
        file: String,
        /// The hash the lock pins.
        expected: String,
        /// The hash of the file at hand.
        actual: String,
    },

    /// A package the lock pins is no longer on the mirror.
    #[error("download {url}: the mirror no longer has {package}, which kernels.lock pins for {id}; run `kmatrix kernels update`, or pass --mirror pointing at an archive snapshot")]
    PinnedGone {
        /// The matrix id.
        id: String,
        /// The package name and version.
        package: String,
        /// Where it was.
        url: String,
    },

    /// A module asked for is not in the kernel's modules directory.
    #[error("find module {name} in {dir}")]
    ModuleNotFound {
        /// The module name.
        name: String,
        /// The modules directory searched.
        dir: PathBuf,
    },

    /// Modules were asked for a kernel without a modules directory.
    #[error("find the modules of kernel {id}: it has no modules directory")]
    NoModules {
        /// The kernel's id.
        id: String,
    },

    /// The cache could not be opened, locked or written.
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

    /// A `map_err` adapter: an I/O error on `path` as [`KernelError::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> KernelError {
        let path = path.into();
        move |source| KernelError::Io { path, source }
    }
}

/// The kernel provider's result.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;
