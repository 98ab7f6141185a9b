//! virtiofsd, the vhost-user daemon behind a virtio-fs share: found on this host, started once
//! per shared directory per guest, and gone with the guest.
//!
//! Only the Rust virtiofsd is used (`cargo install virtiofsd`, see `scripts/setup.sh`): it has a
//! read-only mode (`--readonly`) and takes a listening socket by fd. The C daemon QEMU 7.2 ships
//! in `/usr/lib/qemu` has neither, and a writable host root is not something kmatrix hands a
//! guest, so it counts as absent. Lifetime: kmatrix binds the socket itself and passes it as
//! fd 3 (`--fd 3`), so QEMU can connect the moment the daemon is spawned (no polling for a
//! socket file); the daemon gets `PR_SET_PDEATHSIG(SIGKILL)` and `kill_on_drop`, and it exits by
//! itself when QEMU disconnects. Not here: the QEMU device (`qemu.rs`), the choice between
//! virtio-fs and 9p (`share.rs`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use tokio::process::{Child, Command};

/// Environment variable naming the virtiofsd to use (tests point it at a missing file).
pub const ENV: &str = "KMATRIX_VIRTIOFSD";
/// What to install when there is none.
pub const INSTALL_HINT: &str =
    "install it with scripts/setup.sh (or: apt-get install libseccomp-dev libcap-ng-dev && cargo install virtiofsd --locked), or set KMATRIX_VIRTIOFSD";

/// Why no virtiofsd can serve a share.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum VirtiofsError {
    /// None of the [`candidates`] exists.
    #[error("virtiofsd not found (looked at {looked}): {INSTALL_HINT}")]
    NotFound {
        /// The places looked at, comma-separated.
        looked: String,
    },
    /// The program found does not run, or lacks an option kmatrix needs (`--readonly`, `--fd`...).
    #[error("{path} is not a usable virtiofsd ({detail}): {INSTALL_HINT}")]
    Unusable {
        /// The program found.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The daemon for one share could not be started.
    #[error("cannot start virtiofsd ({path}) for {dir}: {detail}")]
    Spawn {
        /// The virtiofsd binary.
        path: PathBuf,
        /// The directory it was to serve.
        dir: PathBuf,
        /// The spawn or socket error.
        detail: String,
    },
}

/// Where virtiofsd is looked for, in order: `$KMATRIX_VIRTIOFSD` alone when set, else `PATH`,
/// `~/.cargo/bin` (where `cargo install` puts it), `/usr/libexec`, `/usr/lib/qemu`.
pub fn candidates() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os(ENV).filter(|s| !s.is_empty()) {
        return vec![p.into()];
    }
    let mut v: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|d| d.join("virtiofsd")).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        v.push(Path::new(&home).join(".cargo/bin/virtiofsd"));
    }
    v.push("/usr/libexec/virtiofsd".into());
    v.push("/usr/lib/qemu/virtiofsd".into());
    v
}

/// The first usable virtiofsd among [`candidates`] (checked once per process).
pub fn find() -> Result<PathBuf, VirtiofsError> {
    static FOUND: OnceLock<Result<PathBuf, VirtiofsError>> = OnceLock::new();
    FOUND.get_or_init(|| find_in(&candidates())).clone()
}

/// The first usable virtiofsd in `list`; when none is, the reason for the first one that exists.
pub fn find_in(list: &[PathBuf]) -> Result<PathBuf, VirtiofsError> {
    let mut first_bad = None;
    for p in list.iter().filter(|p| p.is_file()) {
        match check(p) {
            Ok(()) => return Ok(p.clone()),
            Err(e) => {
                first_bad.get_or_insert(e);
            }
        }
    }
    Err(first_bad.unwrap_or_else(|| VirtiofsError::NotFound {
        looked: list.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
    }))
}

/// A virtiofsd with the options kmatrix passes (`--readonly`, `--fd`, `--sandbox`), as its
/// `--help` says.
fn check(path: &Path) -> Result<(), VirtiofsError> {
    let out = std::process::Command::new(path)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| VirtiofsError::Unusable { path: path.into(), detail: format!("cannot run it: {e}") })?;
    let help = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let missing: Vec<&str> =
        ["--readonly", "--fd", "--sandbox", "--shared-dir"].into_iter().filter(|o| !help.contains(o)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(VirtiofsError::Unusable {
            path: path.into(),
            detail: format!(
                "no {} option: the C virtiofsd of QEMU 7.2 has no read-only mode; kmatrix needs the Rust one",
                missing.join(", ")
            ),
        })
    }
}

/// A running virtiofsd serving one directory to one guest.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// The vhost-user socket QEMU connects to.
    pub socket: PathBuf,
    /// The private directory holding the socket; removed with the daemon.
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Start `bin` serving `shared` (read-only when `readonly`). The socket is bound here, in a
    /// fresh private directory, and handed over listening: QEMU may connect at once.
    pub fn start(bin: &Path, shared: &Path, readonly: bool) -> Result<Daemon, VirtiofsError> {
        let spawn_err = |detail: String| VirtiofsError::Spawn { path: bin.into(), dir: shared.into(), detail };
        let dir = tempfile::Builder::new()
            .prefix("kmatrix-vfs-")
            .tempdir()
            .map_err(|e| spawn_err(format!("cannot create its socket directory: {e}")))?;
        let socket = dir.path().join("fs.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket)
            .map_err(|e| spawn_err(format!("cannot bind {}: {e}", socket.display())))?;
        let fd: OwnedFd = listener.into();
        let raw = fd.as_raw_fd();
        let mut cmd = Command::new(bin);
        cmd.arg("--fd=3").arg("--shared-dir").arg(shared);
        if readonly {
            cmd.arg("--readonly");
        }
        // The sandbox would pivot_root or chroot into the shared directory: for the host root
        // that confines nothing and costs a fork and namespaces. `always`: the guest caches
        // metadata and data like 9p's cache=loose (a file changed on the host while a program
        // runs may be seen late, as with 9p).
        cmd.args(["--sandbox=none", "--log-level=error"]);
        cmd.arg(if readonly { "--cache=always" } else { "--cache=auto" });
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit()).kill_on_drop(true);
        // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl, prctl) on
        // an fd this process owns and keeps open until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if raw == 3 {
                    let flags = libc::fcntl(3, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| spawn_err(e.to_string()))?;
        drop(fd);
        Ok(Daemon { child, socket, _dir: dir })
    }

    /// The daemon's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_daemon_names_where_it_looked_and_what_to_install() {
        let e = find_in(&["/nonexistent/virtiofsd".into()]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("/nonexistent/virtiofsd") && text.contains("cargo install virtiofsd"), "{text}");
    }

    #[test]
    fn a_program_without_the_read_only_option_is_not_used() {
        // /bin/true prints no help: it has none of the options kmatrix needs.
        let e = find_in(&["/bin/true".into()]).unwrap_err();
        assert!(matches!(&e, VirtiofsError::Unusable { detail, .. } if detail.contains("--readonly")), "{e}");
    }
}
