//! The peers, installed on demand into the bench directory (`<cache>/bench`) with their own
//! package managers, at pinned versions: vmtest with `cargo install --locked --root`, virtme-ng
//! in a Python venv with pip. Installing what is already there is a no-op (the installed
//! binary reports the pinned version). Host programs the peers need are checked, and a missing
//! one is named with the Debian package that has it. Not for kmatrix's own prerequisites
//! (`scripts/setup.sh`).

use super::Peer;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The vmtest release the bench installs (`cargo install vmtest --version`).
pub const VMTEST_VERSION: &str = "0.18.0";
/// The virtme-ng release the bench installs into its venv (`pip install virtme-ng==`).
pub const VIRTME_NG_VERSION: &str = "1.42";

/// Why a peer could not be installed or given what it needs.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A host program the peer needs is not installed.
    #[error("{peer} needs `{program}` on the host: install it with `apt-get install {package}`")]
    MissingProgram {
        /// The peer concerned.
        peer: Peer,
        /// The program looked for in PATH.
        program: String,
        /// The Debian package that has it.
        package: String,
    },
    /// An install or preparation command failed, or the installed binary reports another version.
    #[error("installing {peer} failed: `{command}` exited with {status}; last lines:\n{tail}")]
    Install {
        /// The peer concerned.
        peer: Peer,
        /// The command, as run.
        command: String,
        /// Its exit status, as text.
        status: String,
        /// The last lines of its output (or what was wrong with the version it reports).
        tail: String,
    },
    /// A command could not be started at all.
    #[error("cannot run `{command}`")]
    Spawn {
        /// The command, as it would have run.
        command: String,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// A file or folder of the bench directory could not be made or written.
    #[error("{what} {path}")]
    Io {
        /// What was being done, read before the path (`cannot create`).
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A kernel of the comparison could not be parsed, fetched or read.
    #[error("kernel {id}")]
    Kernel {
        /// The kernel id, as given.
        id: String,
        /// The kernel provider's error.
        #[source]
        source: Box<crate::kernel::KernelError>,
    },
    /// The cached kernel lacks a file a peer needs (a module tree).
    #[error("kernel {id} has no {what} in the cache, which {peer} needs")]
    KernelFile {
        /// The kernel id.
        id: String,
        /// The missing file, in words.
        what: &'static str,
        /// The peer concerned.
        peer: Peer,
    },
    /// The cache's bench folder could not be made.
    #[error("{0}")]
    Cache(#[from] crate::cache::CacheError),
}

impl PeerError {
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PeerError {
        let path = path.to_path_buf();
        move |source| PeerError::Io { what, path, source }
    }
}

/// The bench directory and where each thing goes in it. Everything the bench writes is under
/// `root`: the peers, their HOME and TMPDIR, the per-kernel files they need, kmatrix's console logs.
#[derive(Debug, Clone)]
pub struct BenchDir {
    /// `<cache>/bench`.
    pub root: PathBuf,
}

impl BenchDir {
    /// The bench directory of `cache`, with the peers' HOME and TMPDIR, created if missing.
    pub fn open(cache: &crate::cache::Cache) -> Result<BenchDir, PeerError> {
        let root = cache.dir("bench")?;
        let d = BenchDir { root };
        for sub in [d.home(), d.tmp()] {
            std::fs::create_dir_all(&sub).map_err(PeerError::io("cannot create", &sub))?;
        }
        Ok(d)
    }
    /// vmtest's `cargo install --root`.
    pub fn vmtest_root(&self) -> PathBuf {
        self.root.join("vmtest")
    }
    /// The installed vmtest binary.
    pub fn vmtest(&self) -> PathBuf {
        self.vmtest_root().join("bin/vmtest")
    }
    /// The Python venv virtme-ng is installed in.
    pub fn venv(&self) -> PathBuf {
        self.root.join("virtme-ng")
    }
    /// The installed `vng` script.
    pub fn vng(&self) -> PathBuf {
        self.venv().join("bin/vng")
    }
    /// HOME and TMPDIR of the peers, so that their caches and logs stay in the bench directory.
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }
    /// The peers' TMPDIR (see [`BenchDir::home`]).
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    /// Per-kernel files (initramfs, module tree, vmtest.toml), by release.
    pub fn kernel_dir(&self, release: &str) -> PathBuf {
        self.root.join("kernels").join(release)
    }
    /// PATH for the peers: the venv first (as an activated venv has it), then the caller's, then
    /// the sbin directories (modprobe, depmod, udevadm, qemu-ga live there on Debian).
    pub fn path_env(&self) -> String {
        let mut parts = vec![self.venv().join("bin").display().to_string()];
        parts.extend(std::env::var("PATH").ok().filter(|p| !p.is_empty()));
        parts.push("/usr/sbin:/sbin".into());
        parts.join(":")
    }
}

/// Host programs each peer needs, with the Debian package that has them.
pub fn host_needs(peer: Peer) -> &'static [(&'static str, &'static str)] {
    match peer {
        // The guest runs the host's qemu-ga over the 9p root; our initramfs is busybox.
        Peer::Vmtest => &[("qemu-ga", "qemu-guest-agent"), ("busybox", "busybox-static"), ("bash", "bash")],
        // modprobe/depmod resolve the module list, udevd names the virtio ports of the script's
        // I/O (without it the output goes to the console only), busybox is its initramfs.
        Peer::VirtmeNg => &[
            ("modprobe", "kmod"),
            ("depmod", "kmod"),
            ("udevadm", "udev"),
            ("busybox", "busybox-static"),
            ("python3", "python3-venv"),
        ],
    }
}

/// `program` in `path` (a PATH value), if there.
pub fn which(program: &str, path: &str) -> Option<PathBuf> {
    std::env::split_paths(path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// The first host program `peer` needs that is missing.
pub fn check_host(peer: Peer, dir: &BenchDir) -> Result<(), PeerError> {
    let path = dir.path_env();
    for (program, package) in host_needs(peer) {
        if which(program, &path).is_none() {
            return Err(PeerError::MissingProgram { peer, program: program.to_string(), package: package.to_string() });
        }
    }
    Ok(())
}

/// The version `program --version` prints (its last word), if it runs.
fn version_of(program: &Path) -> Option<String> {
    let out = Command::new(program).arg("--version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace().last().map(str::to_string)
}

/// Install `peer` at its pinned version unless it is there; its version.
pub fn ensure(peer: Peer, dir: &BenchDir, progress: &dyn Fn(&str)) -> Result<String, PeerError> {
    let (bin, want) = match peer {
        Peer::Vmtest => (dir.vmtest(), VMTEST_VERSION),
        Peer::VirtmeNg => (dir.vng(), VIRTME_NG_VERSION),
    };
    if version_of(&bin).as_deref() == Some(want) {
        return Ok(want.to_string());
    }
    progress(&format!("installing {peer} {want} into {}", dir.root.display()));
    match peer {
        Peer::Vmtest => {
            // Its own target directory, removed afterwards: nothing outside the bench directory.
            let target = dir.root.join("vmtest-build");
            let root = dir.vmtest_root();
            let mut c = Command::new("cargo");
            c.args(["install", "vmtest", "--version", VMTEST_VERSION, "--locked", "--root"])
                .arg(&root)
                .env("CARGO_TARGET_DIR", &target);
            run_install(peer, c)?;
            let _ = std::fs::remove_dir_all(&target);
        }
        Peer::VirtmeNg => {
            let venv = dir.venv();
            let mut c = Command::new("python3");
            c.args(["-m", "venv"]).arg(&venv);
            run_install(peer, c).map_err(|e| match e {
                PeerError::Install { tail, .. } if tail.contains("ensurepip") => PeerError::MissingProgram {
                    peer,
                    program: "python3 -m venv".into(),
                    package: "python3-venv".into(),
                },
                e => e,
            })?;
            let mut c = Command::new(venv.join("bin/pip"));
            c.args(["install", "--no-cache-dir", "--quiet", &format!("virtme-ng=={VIRTME_NG_VERSION}")]);
            run_install(peer, c)?;
        }
    }
    match version_of(&bin) {
        Some(v) if v == want => Ok(v),
        got => Err(PeerError::Install {
            peer,
            command: format!("{} --version", bin.display()),
            status: "success".into(),
            tail: format!("it reports {got:?}, not {want}"),
        }),
    }
}

fn run_install(peer: Peer, mut c: Command) -> Result<(), PeerError> {
    let command = format!("{c:?}");
    let out =
        c.stdin(Stdio::null()).output().map_err(|source| PeerError::Spawn { command: command.clone(), source })?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Err(PeerError::Install {
        peer,
        command,
        status: out.status.to_string(),
        tail: super::tail_lines(&text, 12).join("\n"),
    })
}
