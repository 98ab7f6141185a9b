//! Which device shares the host's root into a guest — virtio-fs (vhost-user-fs with virtiofsd)
//! or virtio-9p (no daemon) — and why, plus the extra host directories a guest gets (`--rw`,
//! read-only extras such as kernel headers), each mounted at a path of the guest's view.
//!
//! The rule (`--share auto`), from measurements on a 2-core host under TCG (docs/architecture.md):
//! QEMU 7.2 cannot migrate a guest with a vhost-user-fs device ("Migration is disabled when
//! VirtIOFS is used"), so a virtio-fs guest always boots cold, while a 9p guest restores from a
//! snapshot. When the guest would start from a snapshot, 9p; when it boots cold anyway
//! (`--snapshot off`), virtio-fs, whose file access is several times faster. virtio-fs needs a
//! usable virtiofsd and `CONFIG_VIRTIO_FS` in the kernel; without them, 9p, and the reason says
//! which was missing. Not here: starting the daemon (`virtiofs.rs`), the QEMU devices (`qemu.rs`).

use super::virtiofs::{self, VirtiofsError};
use std::path::{Path, PathBuf};

/// What the user asked for (`--share`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ShareMode {
    /// virtio-fs for cold boots, 9p when the guest starts from a snapshot.
    #[default]
    Auto,
    /// virtio-fs, or an error when it cannot be had.
    Virtiofs,
    /// virtio-9p.
    #[value(name = "9p")]
    NineP,
}

/// The file system a guest's shares use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareFs {
    /// virtio-9p, served by QEMU itself; works with snapshots.
    NineP,
    /// virtio-fs served by this virtiofsd.
    Virtiofs {
        /// The virtiofsd binary.
        daemon: PathBuf,
    },
}

impl ShareFs {
    /// The guest's name for it (`mount -t`).
    pub fn name(&self) -> &'static str {
        match self {
            ShareFs::NineP => "9p",
            ShareFs::Virtiofs { .. } => "virtiofs",
        }
    }
}

/// A host directory shared besides the root, mounted at `guest` in the guest's view of the host
/// root (for `--rw DIR`, its own host path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraShare {
    /// The host directory.
    pub host: PathBuf,
    /// Where it appears under the guest's view of the host root.
    pub guest: PathBuf,
    /// The guest cannot write to it.
    pub readonly: bool,
}

impl ExtraShare {
    /// `--rw DIR`: writable, at its own path.
    pub fn rw(dir: &Path) -> Self {
        ExtraShare { host: dir.into(), guest: dir.into(), readonly: false }
    }
}

/// The host root (read-only) and `extra`, over `fs`, chosen because of `why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePlan {
    /// The file system every share of the guest uses.
    pub fs: ShareFs,
    /// Why that one, for the user (`--share 9p`, snapshots on, no virtiofsd).
    pub why: String,
    /// Directories shared besides the host root.
    pub extra: Vec<ExtraShare>,
}

impl SharePlan {
    /// 9p for `why` (surfaces that always start from snapshots).
    pub fn nine_p(why: &str, extra: Vec<ExtraShare>) -> Self {
        SharePlan { fs: ShareFs::NineP, why: why.into(), extra }
    }
}

/// Why the virtio-fs the user asked for (`--share virtiofs`) cannot be had.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShareError {
    /// No usable virtiofsd on the host.
    #[error("--share virtiofs: {0}")]
    NoDaemon(VirtiofsError),
    /// The kernel's config lacks `CONFIG_VIRTIO_FS`.
    #[error("--share virtiofs: kernel {kernel} has no virtio-fs (CONFIG_VIRTIO_FS is not set in {config})")]
    NoKernelSupport {
        /// The kernel, as the caller named it.
        kernel: String,
        /// Where the setting was looked for, in words.
        config: String,
    },
}

/// Whether a kernel config enables virtio-fs; `None` when there is no config to read.
pub fn kernel_has_virtiofs(config: Option<&Path>) -> Option<bool> {
    let text = std::fs::read_to_string(config?).ok()?;
    Some(text.lines().any(|l| l == "CONFIG_VIRTIO_FS=y" || l == "CONFIG_VIRTIO_FS=m"))
}

/// Decide, for a guest that would start from a snapshot when `snapshots`, of kernel `kernel`
/// whose config says `kernel_virtiofs`, with `daemon` the virtiofsd lookup.
pub fn choose(
    mode: ShareMode,
    snapshots: bool,
    kernel: &str,
    kernel_virtiofs: Option<bool>,
    daemon: Result<PathBuf, VirtiofsError>,
    extra: Vec<ExtraShare>,
) -> Result<SharePlan, ShareError> {
    let no_kernel = kernel_virtiofs == Some(false);
    match mode {
        ShareMode::NineP => Ok(SharePlan::nine_p("asked for (--share 9p)", extra)),
        ShareMode::Virtiofs => {
            if no_kernel {
                return Err(ShareError::NoKernelSupport { kernel: kernel.into(), config: "its config".into() });
            }
            let daemon = daemon.map_err(ShareError::NoDaemon)?;
            Ok(SharePlan { fs: ShareFs::Virtiofs { daemon }, why: "asked for (--share virtiofs)".into(), extra })
        }
        ShareMode::Auto if snapshots => Ok(SharePlan::nine_p(
            "the guest starts from a snapshot, which QEMU cannot take with virtio-fs; 9p after a restore beats a cold virtio-fs boot for short programs",
            extra,
        )),
        ShareMode::Auto if no_kernel => {
            Ok(SharePlan::nine_p(&format!("kernel {kernel} has no virtio-fs (CONFIG_VIRTIO_FS)"), extra))
        }
        ShareMode::Auto => match daemon {
            Ok(daemon) => Ok(SharePlan {
                fs: ShareFs::Virtiofs { daemon },
                why: "cold boot and virtiofsd found: virtio-fs reads files several times faster than 9p".into(),
                extra,
            }),
            Err(e) => Ok(SharePlan::nine_p(&format!("no virtio-fs: {e}"), extra)),
        },
    }
}

/// [`choose`] with this host's virtiofsd.
pub fn choose_here(
    mode: ShareMode,
    snapshots: bool,
    kernel: &str,
    config: Option<&Path>,
    extra: Vec<ExtraShare>,
) -> Result<SharePlan, ShareError> {
    // Only look for the daemon when it could be used: `--share 9p` works without one.
    let daemon = match mode {
        ShareMode::NineP => Err(VirtiofsError::NotFound { looked: "(not looked for)".into() }),
        ShareMode::Auto if snapshots => Err(VirtiofsError::NotFound { looked: "(not looked for)".into() }),
        _ => virtiofs::find(),
    };
    choose(mode, snapshots, kernel, kernel_has_virtiofs(config), daemon, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found() -> Result<PathBuf, VirtiofsError> {
        Ok("/usr/bin/virtiofsd".into())
    }
    fn missing() -> Result<PathBuf, VirtiofsError> {
        Err(VirtiofsError::NotFound { looked: "/nonexistent/virtiofsd".into() })
    }

    /// `auto`: 9p from a snapshot, without the daemon or without the kernel's support, each
    /// saying why; virtio-fs for a cold boot that has both.
    #[test]
    fn auto_picks_by_snapshot_daemon_and_kernel_and_says_why() {
        for (snapshot, kernel, virtio_fs, daemon, want, why) in [
            (true, "k", Some(true), found(), "9p", "snapshot"),
            (false, "k", Some(true), found(), "virtiofs", ""),
            (false, "k", Some(true), missing(), "9p", "/nonexistent/virtiofsd"),
            (false, "old", Some(false), found(), "9p", "CONFIG_VIRTIO_FS"),
        ] {
            let p = choose(ShareMode::Auto, snapshot, kernel, virtio_fs, daemon, vec![]).unwrap();
            assert_eq!(p.fs.name(), want, "snapshot {snapshot}, {kernel}: {}", p.why);
            assert!(p.why.contains(why), "{}", p.why);
        }
    }

    #[test]
    fn forced_virtiofs_without_it_is_an_error_naming_the_daemon() {
        let e = choose(ShareMode::Virtiofs, true, "k", Some(true), missing(), vec![]).unwrap_err();
        assert!(e.to_string().contains("virtiofsd"), "{e}");
        assert!(choose(ShareMode::Virtiofs, false, "k", Some(false), found(), vec![]).is_err());
        assert_eq!(choose(ShareMode::NineP, false, "k", Some(true), found(), vec![]).unwrap().fs, ShareFs::NineP);
    }

    #[test]
    fn kernel_config_is_read_for_virtio_fs() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("config");
        std::fs::write(&c, "CONFIG_FUSE_FS=m\nCONFIG_VIRTIO_FS=m\n").unwrap();
        assert_eq!(kernel_has_virtiofs(Some(&c)), Some(true));
        std::fs::write(&c, "# CONFIG_VIRTIO_FS is not set\n").unwrap();
        assert_eq!(kernel_has_virtiofs(Some(&c)), Some(false));
        assert_eq!(kernel_has_virtiofs(None), None);
    }
}
