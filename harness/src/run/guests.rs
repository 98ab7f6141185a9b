//! How a run's guests boot — the session (cache, QEMU, accelerator), where kernels come from,
//! CPUs and memory, timeouts, snapshots — as the scheduler (`kmatrix run`) and bisection both need it, so
//! the two cannot drift apart. Not here: what runs in the guests (the scheduler's plan, the
//! bisection's predicate).

use crate::guest::GuestOptions;
use crate::kernel::FetchOptions;
use crate::session::Session;
use crate::vm::share::{ShareError, ShareMode, SharePlan};
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What every boot of a run shares.
#[derive(Debug, Clone)]
pub struct GuestSettings {
    /// Cache, QEMU and the accelerator (which may switch to TCG mid-run).
    pub session: Arc<Session>,
    /// Where kernels are downloaded from and how they are verified.
    pub fetch: FetchOptions,
    /// Guest RAM in MiB.
    pub memory_mb: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// A scratch disk of this many bytes per guest (`--disk`).
    pub disk_bytes: Option<u64>,
    /// How long a guest may take from QEMU's start to the agent's `Hello`.
    pub boot_timeout: Duration,
    /// How long one scenario may run in the guest before it is called timed out.
    pub scenario_timeout: Duration,
    /// Start guests from snapshots taken at `Hello` (see `vm::snapshot`).
    pub snapshots: bool,
    /// How guests that share the host root get it (`--share`).
    pub share: ShareMode,
}

impl GuestSettings {
    /// The options of one boot, its console log at `log`: the session's QEMU and accelerator,
    /// this run's CPUs, memory, boot timeout and snapshots.
    pub fn options(&self, log: PathBuf) -> GuestOptions {
        let mut opts = self.session.guest_options(log);
        opts.memory_mb = self.memory_mb;
        opts.cpus = self.cpus;
        opts.disk_bytes = self.disk_bytes;
        opts.boot_timeout = self.boot_timeout;
        opts.snapshots = self.snapshots.then(|| self.session.cache.clone());
        opts
    }

    /// How a guest of `kernel` (its config at `config`) that shares the host root gets it: the
    /// run's `--share` mode on this host; a forced virtio-fs that cannot be had is an error.
    pub fn share_plan(&self, kernel: &str, config: Option<&Path>) -> Result<SharePlan, ShareError> {
        crate::vm::share::choose_here(self.share, self.snapshots, kernel, config, Vec::new())
    }
}
