//! How a run's guests boot — the session (cache, QEMU, accelerator), where kernels come from,
//! the guests' settings (`settings::GuestSettings`, carried whole), how long a scenario may take —
//! as the scheduler (`kmatrix run`) and bisection both need it, so the two cannot drift apart.
//! Not here: what runs in the guests (the scheduler's plan, the bisection's predicate).

use crate::guest::GuestOptions;
use crate::kernel::{FetchOptions, PreparedKernel};
use crate::session::Session;
use crate::settings::GuestSettings;
use crate::vm::share::{ShareError, SharePlan};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What every boot of a run shares.
#[derive(Debug, Clone)]
pub struct Guests {
    /// Cache, QEMU and the accelerator (which may switch to TCG mid-run).
    pub session: Arc<Session>,
    /// Where kernels are downloaded from and how they are verified.
    pub fetch: FetchOptions,
    /// What kind of guest every boot is.
    pub settings: GuestSettings,
    /// How long one scenario may run in the guest before it is called timed out.
    pub scenario_timeout: Duration,
}

impl Guests {
    /// The options of one boot of `k`, its console log at `log` ([`Session::guest_options`]).
    pub fn options(&self, k: &PreparedKernel, log: PathBuf) -> GuestOptions {
        self.session.guest_options(k, &self.settings, log)
    }

    /// [`Guests::options`] in machine `m` instead of the settings' own (a cell the run placed
    /// in a guest that meets its scenario's needs: `run::machine`).
    pub fn options_in(&self, k: &PreparedKernel, log: PathBuf, m: super::machine::Machine) -> GuestOptions {
        self.session.guest_options(k, &m.apply(&self.settings), log)
    }

    /// How a guest of `kernel` (its config at `config`) that shares the host root gets it: the
    /// run's `--share` mode on this host; a forced virtio-fs that cannot be had is an error.
    pub fn share_plan(&self, kernel: &str, config: Option<&Path>) -> Result<SharePlan, ShareError> {
        self.settings.share_plan(kernel, config, Vec::new())
    }
}
