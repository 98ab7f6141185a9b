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
use crate::settings::GuestSettings;
use crate::vm::accel::Accelerator;
use crate::vm::{Accel, AccelChoice, Emulator, VmError};
use std::path::PathBuf;
use std::sync::Arc;

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

    /// The options of one boot of `kernel` with `settings`, its console log at `log`: the
    /// emulator for the kernel's architecture under the session's QEMU and accelerator, this
    /// session's cache for snapshots when the settings take them, no share (a caller that
    /// shares the host root sets `share`).
    pub fn guest_options(&self, kernel: &PreparedKernel, settings: &GuestSettings, log: PathBuf) -> GuestOptions {
        GuestOptions {
            emulator: self.emulator(kernel, settings),
            settings: settings.clone(),
            console_log: log,
            snapshots: settings.snapshots().then(|| self.cache.clone()),
            share: None,
        }
    }

    /// The emulator a guest of `kernel` gets now (the accelerator may have fallen back to TCG).
    pub fn emulator(&self, kernel: &PreparedKernel, settings: &GuestSettings) -> Emulator {
        Emulator::for_arch(kernel.arch, &self.qemu, self.accel.current(), settings.boot_timeout)
    }

    /// Start a guest under the session's accelerator. Under KVM the real kernel must reach
    /// `Hello` within [`crate::vm::accel::KVM_HELLO_DEADLINE`] — that boot is the proof KVM works; when KVM fails
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
            o.emulator = self.emulator(kernel, &o.settings);
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
                        VmError::Timeout { secs, waiting_for, console } if o.emulator.accel == Accel::Kvm => {
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
                    if o.emulator.accel == Accel::Kvm && e.is_accelerator() && self.accel.fall_back(&e) {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }
}
