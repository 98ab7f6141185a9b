//! A session: the composition root. What every surface (the CLI's commands, the scheduler,
//! bisection, the cargo test harness, the integration tests) needs before it can boot a guest,
//! set up in one place — the cache, the QEMU binary, the accelerator — and the one way from a
//! kernel spec and the guests' settings (`settings::GuestSettings`) to a prepared kernel, its
//! image ([`Prepared`]) and a started guest: the settings resolved for one boot
//! ([`Session::guest_options`]: the emulator for the kernel's architecture), the host root
//! shared ([`Prepared::start_shared`]), and a guest redone under TCG when KVM turns out not to
//! work ([`Session::start_guest`]).
//!
//! Not here: what runs in the guest (callers send requests to the [`Guest`]), verdicts, rendering.

#![warn(missing_docs)]

use crate::cache::{sanitize, Cache, CacheError};
use crate::guest::{Guest, GuestOptions};
use crate::image::{self, Image, ImageError, ImageOptions};
use crate::kernel::{self, FetchOptions, KernelError, KernelSpec, PreparedKernel};
use crate::settings::GuestSettings;
use crate::vm::accel::Accelerator;
use crate::vm::share::{ExtraShare, ShareError};
use crate::vm::{Accel, AccelChoice, Emulator, VmError};
use std::path::{Path, PathBuf};
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
    /// The directory console logs go to could not be made.
    #[error("cannot create {}", dir.display())]
    LogDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kernel's headers could not be had.
    #[error("no headers for {kernel}")]
    Headers {
        /// The kernel spec.
        kernel: String,
        /// The kernel provider's error.
        #[source]
        source: Box<KernelError>,
    },
    /// The host root cannot be shared as the settings ask (a forced virtio-fs without its daemon).
    #[error(transparent)]
    Share(#[from] ShareError),
    /// The guest did not start.
    #[error("booting {kernel} failed (console log: {})", console_log.display())]
    Boot {
        /// The kernel spec.
        kernel: String,
        /// The boot's console log.
        console_log: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<VmError>,
    },
}

impl SessionError {
    /// Bad input (an unknown kernel id, a file that is not a kernel), not broken infrastructure.
    pub fn is_bad_input(&self) -> bool {
        match self {
            SessionError::Kernel { source, .. } | SessionError::Headers { source, .. } => source.is_bad_input(),
            SessionError::Share(_) => true,
            _ => false,
        }
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

    /// Fetch (or find in the cache) `kernel` and build its image for guests of `settings` (the
    /// channel's modules; the share's when they share the host root), with `extra` files.
    pub async fn prepare_guest(
        self: &Arc<Self>,
        kernel: &str,
        fetch: &FetchOptions,
        settings: &GuestSettings,
        share: bool,
        extra: &[image::ExtraFile],
    ) -> Result<Prepared, SessionError> {
        let (k, image) = self.prepare(kernel, fetch, settings.image_options(share), extra).await?;
        Ok(Prepared { session: self.clone(), spec: kernel.to_string(), kernel: k, image })
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
        let v = self.accel.verdict();
        Emulator::for_arch(kernel.arch, &self.qemu, (v.accel, v.proven), settings.boot_timeout)
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
                        self.accel.proven(&kernel.id, g.hello_after, g.first_output_after());
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

/// A kernel ready to boot in a session: fetched and verified, with the guest image built for it.
pub struct Prepared {
    /// The cache, QEMU and accelerator the kernel was prepared with.
    pub session: Arc<Session>,
    /// The kernel as it was asked for (a matrix id, a build, a path): what messages name it by.
    pub spec: String,
    /// The kernel, fetched and verified.
    pub kernel: PreparedKernel,
    /// The guest image built for it.
    pub image: Image,
}

impl Prepared {
    /// The options of one boot with `settings`: the console log in `dir` (created if missing),
    /// named after the kernel, `tag` and the time.
    pub fn guest_options(&self, settings: &GuestSettings, dir: &Path, tag: &str) -> Result<GuestOptions, SessionError> {
        std::fs::create_dir_all(dir).map_err(|source| SessionError::LogDir { dir: dir.to_path_buf(), source })?;
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let log = dir.join(format!("{}-{tag}-{stamp}.console.log", sanitize(&self.kernel.id)));
        Ok(self.session.guest_options(&self.kernel, settings, log))
    }

    /// Start a guest with `opts` ([`Session::start_guest`]).
    pub async fn start(&self, opts: &GuestOptions) -> Result<Guest, SessionError> {
        self.session.start_guest(&self.kernel, &self.image, opts).await.map_err(|source| SessionError::Boot {
            kernel: self.spec.clone(),
            console_log: opts.console_log.clone(),
            source: Box::new(source),
        })
    }

    /// Boot it sharing the host root (read-only, `rw` directories writable) as `settings` say,
    /// its console log in `dir`: for the commands that run the user's programs (`exec`,
    /// `shell`, `selftest`, `rerun --shell`). The image must carry the share's modules
    /// ([`Session::prepare_guest`] with `share`). With `headers`, the kernel's own headers are
    /// fetched first and offered with the share, beside its module tree.
    pub async fn start_shared(
        &self,
        settings: &GuestSettings,
        fetch: &FetchOptions,
        dir: &Path,
        tag: &str,
        rw: Vec<PathBuf>,
        headers: bool,
    ) -> Result<Guest, SessionError> {
        let id = self.spec.clone();
        let headers_dir = match headers {
            false => None,
            true => {
                let (k, cache, fetch) = (self.kernel.clone(), self.session.cache.clone(), fetch.clone());
                let tree = tokio::task::spawn_blocking(move || crate::kernel::headers(&k, &cache, &fetch))
                    .await
                    .map_err(|e| SessionError::Task(e.to_string()))?
                    .map_err(|e| SessionError::Headers { kernel: id.clone(), source: Box::new(e) })?;
                Some(tree.dir.display().to_string())
            }
        };
        let modules = crate::guest::module_tree(&self.kernel, &self.session.cache).await;
        let mut opts = self.guest_options(settings, dir, tag)?;
        let extra = rw.iter().map(|d| ExtraShare::rw(d)).collect();
        opts.share = Some(settings.share_plan(&id, self.kernel.boot.config.as_deref(), extra)?);
        let mut g = self.start(&opts).await?;
        if let Some(share) = g.share.as_mut() {
            share.headers = headers_dir;
            share.modules = modules;
            share.module_files = true;
        }
        Ok(g)
    }
}
