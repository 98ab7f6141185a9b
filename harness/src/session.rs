//! A session: what every surface (the CLI's commands, the scheduler, the cargo test harness, the
//! integration tests) needs before it can boot a guest, set up in one place with one set of
//! defaults — the cache, the QEMU binary, the accelerator — and the one way to start a guest,
//! which redoes a guest under TCG when KVM turns out not to work.
//!
//! Not here: what runs in the guest (callers send requests to the [`Guest`]), verdicts, rendering.

#![warn(missing_docs)]

use crate::cache::{Cache, CacheError};
use crate::guest::{Guest, GuestOptions};
use crate::image::{self, Image, ImageError, ImageOptions};
use crate::kernel::{self, FetchOptions, KernelError, KernelSpec, PreparedKernel};
use crate::vm::accel::{Accelerator, KVM_HELLO_DEADLINE};
use crate::vm::{Accel, AccelChoice, VmError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// QEMU start → the agent's `Hello` (TCG; KVM boots are held to [`KVM_HELLO_DEADLINE`]). A cold
/// TCG boot takes 2-4 s on a 2-core host; the margin is for two guests booting at once on a busy
/// machine.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// One scenario's answer.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// One kernel's whole run (all its VMs).
pub const VM_TIMEOUT: Duration = Duration::from_secs(1200);
/// Guest memory in MiB (`--memory`).
pub const MEMORY_MB: u32 = 512;
/// The least guest memory in MiB that `--memory` takes: below it a Debian kernel does not reach
/// the agent's `Hello` (measured under TCG with 2 CPUs: Debian 6.1 and 6.12 reach it with 96 MiB,
/// 6.1 panics "System is deadlocked on memory" with 88; see docs/machine.md).
pub const MEMORY_FLOOR_MB: u32 = 96;
/// Guest CPUs (`--cpus`), chosen from measurement (docs/machine.md): on this shared 2-core TCG
/// host a second vCPU bought nothing measurable (debian-6.1's core lane 47 s vs 93 s in one round,
/// 113 s vs 75 s in the next; restore 0.5-0.7 s either way) while it can only add contention, so
/// one is the default and the core lane and restore keep the machine they were measured on;
/// scenarios that need two say so (`at least 2 online CPUs`) and run with `--cpus 2`.
pub const CPUS: u32 = 1;

/// Why a session could not prepare a kernel or an image.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The cache could not be opened.
    #[error("cannot open the cache")]
    Cache(#[from] CacheError),
    /// The kernel could not be prepared.
    #[error("cannot prepare kernel {kernel:?}")]
    Kernel {
        /// The kernel spec.
        kernel: String,
        /// The kernel provider's error.
        #[source]
        source: Box<KernelError>,
    },
    /// The image could not be built.
    #[error("cannot build the guest image for {kernel}")]
    Image {
        /// The kernel's id.
        kernel: String,
        /// The image builder's error.
        #[source]
        source: ImageError,
    },
    /// A blocking preparation task panicked or was cancelled.
    #[error("a preparation task died: {0}")]
    Task(String),
}

impl SessionError {
    /// Bad input (an unknown kernel id, a file that is not a kernel), not broken infrastructure.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, SessionError::Kernel { source, .. } if source.is_bad_input())
    }
}

/// See the module doc. Cheap to share: `Arc<Session>`.
#[derive(Debug)]
pub struct Session {
    /// The cache every kernel, image and snapshot of the session is in.
    pub cache: Cache,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The accelerator, shared with every guest (flipped to TCG once when KVM fails).
    pub accel: Arc<Accelerator>,
}

impl Session {
    /// The cache from the environment (`KMATRIX_CACHE`, ...), QEMU from `KMATRIX_QEMU` or `PATH`,
    /// and the accelerator for `choice` (cached verdict, else probed).
    pub async fn open(choice: AccelChoice) -> Result<Session, SessionError> {
        let cache = Cache::from_env()?;
        Ok(Self::with(cache, crate::vm::qemu_binary(), choice).await)
    }

    /// A session on this cache and QEMU binary.
    pub async fn with(cache: Cache, qemu: PathBuf, choice: AccelChoice) -> Session {
        let accel = Accelerator::select(&cache, &qemu, choice).await;
        Session { cache, qemu, accel: Arc::new(accel) }
    }

    /// Fetch (or find in the cache) a kernel and build its guest image, on a blocking thread.
    pub async fn prepare(
        &self,
        kernel: &str,
        fetch: &FetchOptions,
        image: ImageOptions,
        extra: &[image::ExtraFile],
    ) -> Result<(PreparedKernel, Image), SessionError> {
        let spec: KernelSpec =
            kernel.parse().map_err(|e| SessionError::Kernel { kernel: kernel.into(), source: Box::new(e) })?;
        let (cache, fetch, extra, id) = (self.cache.clone(), fetch.clone(), extra.to_vec(), kernel.to_string());
        tokio::task::spawn_blocking(move || {
            let k = kernel::prepare(&spec, &cache, &fetch)
                .map_err(|e| SessionError::Kernel { kernel: id, source: Box::new(e) })?;
            let img = image::build_with(&cache, &k, image, &extra)
                .map_err(|source| SessionError::Image { kernel: k.id.clone(), source })?;
            Ok((k, img))
        })
        .await
        .map_err(|e| SessionError::Task(e.to_string()))?
    }

    /// Guest options with this session's QEMU, accelerator and defaults.
    pub fn guest_options(&self, console_log: PathBuf) -> GuestOptions {
        GuestOptions::new(self.qemu.clone(), self.accel.current(), console_log)
    }

    /// Start a guest under the session's accelerator. Under KVM the real kernel must reach
    /// `Hello` within [`KVM_HELLO_DEADLINE`] — that boot is the proof KVM works; when KVM fails
    /// instead (QEMU's words on stderr, QEMU dead, no `Hello` in time) the session falls back to
    /// TCG and the guest is started again, unless KVM was forced.
    pub async fn start_guest(
        &self,
        kernel: &PreparedKernel,
        image: &Image,
        opts: &GuestOptions,
    ) -> Result<Guest, VmError> {
        loop {
            let mut o = opts.clone();
            o.qemu = self.qemu.clone();
            // Another architecture's guest runs under TCG whatever the host's accelerator is.
            o.accel = if kernel.arch.is_host() { self.accel.current() } else { Accel::Tcg };
            if o.accel == Accel::Kvm {
                o.boot_timeout = o.boot_timeout.min(KVM_HELLO_DEADLINE);
            }
            match Guest::start(kernel, image, &o).await {
                Ok(g) => {
                    if g.accel == Accel::Kvm && !g.restored {
                        self.accel.proven(&kernel.id, g.hello_after);
                    }
                    return Ok(g);
                }
                Err(e) => {
                    let e = match e {
                        // Under KVM, a real kernel that does not reach Hello in time is a KVM
                        // that does not work (QEMU paused on an error it did not print, say).
                        VmError::Timeout { secs, waiting_for, console } if o.accel == Accel::Kvm => {
                            VmError::Accelerator {
                                accel: "kvm",
                                evidence: format!(
                                    "{} did not reach the agent's Hello under KVM within {secs:.0} s",
                                    kernel.id
                                ),
                                waiting_for,
                                qemu_stderr: String::new(),
                                console,
                            }
                        }
                        e => e,
                    };
                    if o.accel == Accel::Kvm && e.is_accelerator() && self.accel.fall_back(&e) {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }
}
