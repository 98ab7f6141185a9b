//! A booted guest with its agent: from a prepared kernel and image to `Hello`, requests, and a
//! clean power-off.
//!
//! This is the seam every surface uses (`kmatrix boot`, `run`, `bench`, the test harness): it
//! picks the boot file (the PVH `vmlinux` when there is one), the channel (virtio-serial when the
//! image can load its driver, the 8250 otherwise), and times the boot. Every request it sends
//! carries the host's time, which the agent sets the guest's clock to. It does not decide what
//! to run; callers send requests.

#![warn(missing_docs)]

use crate::image::Image;
use crate::kernel::PreparedKernel;
use crate::settings::{Channel, GuestSettings};
use crate::vm::share::{ShareFs, SharePlan};
use crate::vm::snapshot::{self, Snapshot, Taken};
use crate::vm::virtiofs::Daemon;
use crate::vm::{Accel, Emulator, QemuConfig, Vm, VmError, VmFiles};
use kmatrix_proto::{Capabilities, ExecOutcome, ExecRequest, GuestMsg, HostMsg, RunRequest, ScenarioResult};
use std::path::PathBuf;
use std::time::Duration;

/// One boot: the guest's settings, carried whole, and what the session resolved them to for
/// this boot of this kernel (`Session::guest_options`): the emulator, the console log, the share
/// plan, the snapshot cache.
#[derive(Debug, Clone)]
pub struct GuestOptions {
    /// What kind of guest (machine, command line, channel, snapshot mode, boot deadline).
    pub settings: GuestSettings,
    /// Which QEMU, accelerator and firmware, and the deadline to `Hello`, for the kernel's
    /// architecture.
    pub emulator: Emulator,
    /// Where the console log goes.
    pub console_log: PathBuf,
    /// Start from (and, the first time, take) a snapshot taken at `Hello` in this cache.
    pub snapshots: Option<crate::cache::Cache>,
    /// Share the host's root (read-only) into the guest, and the plan's extra directories, over
    /// the plan's file system. The image must carry the share modules (`ImageOptions::share`).
    /// A virtio-fs guest boots cold: QEMU cannot snapshot a vhost-user-fs device.
    pub share: Option<SharePlan>,
}

/// A guest whose agent has said `Hello`.
pub struct Guest {
    vm: Vm,
    /// The capability record of `Hello` (or the saved one of a restored snapshot).
    pub caps: Capabilities,
    /// QEMU spawn → `Hello` received.
    pub hello_after: Duration,
    /// Which file was booted and how (`vmlinux (PVH)` or `bzImage`), and whether from a snapshot.
    pub boot_path: String,
    /// Restored from a snapshot rather than booted.
    pub restored: bool,
    /// The accelerator this guest runs under.
    pub accel: Accel,
    /// The host root shared into this guest, for `Exec` requests that run in it.
    pub share: Option<kmatrix_proto::Share>,
    /// The virtiofsd daemons serving this guest's shares; killed with it.
    _daemons: Vec<Daemon>,
    /// The scratch disk's file, removed with the guest.
    _disk: Option<ScratchDisk>,
}

/// A scratch disk's sparse file, removed when dropped (with its guest).
#[derive(Debug)]
struct ScratchDisk(PathBuf);

impl ScratchDisk {
    /// A sparse file of `bytes` at `path` (replacing one a killed run left).
    fn create(path: PathBuf, bytes: u64) -> Result<ScratchDisk, VmError> {
        let made = std::fs::File::create(&path).and_then(|f| f.set_len(bytes));
        match made {
            Ok(()) => Ok(ScratchDisk(path)),
            Err(source) => {
                let _ = std::fs::remove_file(&path);
                Err(VmError::ChannelSetup { dir: path, source })
            }
        }
    }
}

impl Drop for ScratchDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Guest {
    /// When the console's first byte came, counted from QEMU's start (a restored guest prints
    /// nothing: `None`).
    pub fn first_output_after(&self) -> Option<Duration> {
        self.vm.first_output_after()
    }

    /// Boot `kernel` with `image` as `opts` say — from a snapshot when one is ready, else cold
    /// (taking one when asked) — and wait for the agent's `Hello`.
    pub async fn start(kernel: &PreparedKernel, image: &Image, opts: &GuestOptions) -> Result<Guest, VmError> {
        let disk = match opts.settings.disk_bytes {
            Some(b) => {
                Some(ScratchDisk::create(PathBuf::from(format!("{}.scratch.img", opts.console_log.display())), b)?)
            }
            None => None,
        };
        let mut g = Self::boot(kernel, image, opts, disk.as_ref().map(|d| d.0.clone())).await?;
        g._disk = disk;
        Ok(g)
    }

    /// [`Guest::start`] with the scratch disk's file, when there is one, already made.
    async fn boot(
        kernel: &PreparedKernel,
        image: &Image,
        opts: &GuestOptions,
        disk: Option<PathBuf>,
    ) -> Result<Guest, VmError> {
        let (shares, daemons) = share_dirs(opts.share.as_ref())?;
        let (boot_file, boot_path) = match &kernel.boot.vmlinux {
            Some(v) => (v.clone(), "vmlinux (PVH entry)".to_string()),
            None if kernel.arch == crate::kernel::Arch::Arm64 => {
                (kernel.boot.bzimage.clone(), "arm64 Image".to_string())
            }
            None => (kernel.boot.bzimage.clone(), "bzImage".to_string()),
        };
        let (em, settings) = (&opts.emulator, &opts.settings);
        let cfg = QemuConfig {
            qemu: em.qemu.clone(),
            arch: kernel.arch,
            kernel: boot_file,
            initrd: Some(image.path.clone()),
            accel: em.accel,
            memory_mb: settings.memory_mb,
            cpus: settings.cpus,
            append: {
                // The agent loads the share's modules before Hello (so they are in a snapshot).
                let mut a = settings.append.clone();
                if let Some(plan) = &opts.share {
                    a.push(format!("kmatrix.share={}", plan.fs.name()));
                }
                if settings.disk_bytes.is_some() {
                    a.push("kmatrix.disk".into());
                }
                if settings.net == crate::settings::Net::User {
                    a.push("kmatrix.net=user".into());
                }
                a
            },
            serial_channel: None,
            virtio_channel: None,
            bios: em.bios.clone(),
            debug_exit: false,
            monitor: None,
            memory_file: None,
            incoming: false,
            shares,
            disk,
            first_output: em.first_output,
            net_user: settings.net == crate::settings::Net::User,
        };
        let virtio = settings.channel == Channel::Virtio && image.has_virtio_console();
        let files = VmFiles { console_log: opts.console_log.clone() };
        // A KVM proof boot (its console loud, its first byte timed) is cold and leaves no
        // snapshot: later boots, once KVM is proven, take the quiet one.
        let snapshots = opts.snapshots.as_ref().filter(|_| daemons.is_empty() && em.first_output.is_none());
        match snapshots {
            None => Self::cold(cfg, files, virtio, opts, boot_path, daemons).await,
            Some(cache) => Self::from_snapshot(cache, cfg, files, virtio, opts, boot_path, daemons).await,
        }
    }

    /// Start from the snapshot of `cfg` in `cache`, taking it first when there is none (the
    /// recipes are `vm::snapshot`'s); a snapshot that will not restore is removed and the guest
    /// boots cold.
    async fn from_snapshot(
        cache: &crate::cache::Cache,
        mut cfg: QemuConfig,
        files: VmFiles,
        virtio: bool,
        opts: &GuestOptions,
        boot_path: String,
        daemons: Vec<Daemon>,
    ) -> Result<Guest, VmError> {
        let em = &opts.emulator;
        // The key sees the device list: say whether the virtio port will be there.
        cfg.virtio_channel = virtio.then(|| "V".into());
        let key = snapshot::key(&cfg);
        let lock = snapshot::lock(cache, &key).await;
        if let Some(s) = snapshot::find(cache, &key).filter(|s| s.meta.accel == Some(em.accel)) {
            drop(lock);
            snapshot::touch(&s);
            match Self::restore(cfg.clone(), &s, files.clone(), virtio, &boot_path, share_of(opts)).await {
                Ok(g) => return Ok(g),
                // The host's own side failed before QEMU ran (a console log or socket this user
                // cannot create, no QEMU): nothing says the snapshot is bad, and a cold boot
                // would fail the same way.
                Err(e @ (VmError::ConsoleLog { .. } | VmError::ChannelSetup { .. } | VmError::QemuMissing { .. })) => {
                    return Err(e)
                }
                Err(e) => {
                    // A snapshot that will not restore is evidence of a stale or damaged cache
                    // entry: remove it and boot cold (a new snapshot is taken next time).
                    eprintln!(
                        "kmatrix: snapshot {} did not restore ({e}); removing it and booting cold",
                        s.dir.display()
                    );
                    let _ = std::fs::remove_dir_all(&s.dir);
                    return Self::cold(cfg, files, virtio, opts, boot_path, daemons).await;
                }
            }
        }
        let taken = snapshot::take(cache, &cfg, &key, files.clone(), virtio, em.hello_deadline).await;
        drop(lock);
        match taken? {
            Taken::Saved(s) => Self::restore(cfg, &s, files, virtio, &boot_path, share_of(opts)).await,
            Taken::Unsaved { vm, caps, hello_after } => Ok(Guest {
                vm: *vm,
                caps,
                hello_after,
                boot_path,
                restored: false,
                accel: em.accel,
                share: share_of(opts),
                _daemons: daemons,
                _disk: None,
            }),
        }
    }

    async fn cold(
        cfg: QemuConfig,
        files: VmFiles,
        virtio: bool,
        opts: &GuestOptions,
        boot_path: String,
        mut daemons: Vec<Daemon>,
    ) -> Result<Guest, VmError> {
        let started = Vm::start(cfg, files, virtio).await;
        let mut vm = match started {
            Ok(vm) => vm,
            Err(e) => return Err(daemon_died(&mut daemons).unwrap_or(e)),
        };
        let caps = match vm.hello(opts.emulator.hello_deadline).await {
            Ok(c) => c,
            Err(e) => return Err(daemon_died(&mut daemons).unwrap_or(e)),
        };
        let hello_after = vm.elapsed();
        Ok(Guest {
            vm,
            caps,
            hello_after,
            boot_path,
            restored: false,
            accel: opts.emulator.accel,
            share: share_of(opts),
            _daemons: daemons,
            _disk: None,
        })
    }

    async fn restore(
        cfg: QemuConfig,
        s: &Snapshot,
        files: VmFiles,
        virtio: bool,
        boot_path: &str,
        share: Option<kmatrix_proto::Share>,
    ) -> Result<Guest, VmError> {
        let accel = cfg.accel;
        let vm = snapshot::restore(cfg, s, files, virtio).await?;
        let hello_after = vm.elapsed();
        Ok(Guest {
            vm,
            caps: s.meta.caps.clone(),
            hello_after,
            boot_path: format!("{boot_path}, restored from snapshot {}", s.meta.key),
            restored: true,
            accel,
            share,
            _daemons: Vec::new(),
            _disk: None,
        })
    }

    /// Run one scenario; `timeout` bounds the agent's answer.
    pub async fn run(&mut self, mut req: RunRequest, timeout: Duration) -> Result<ScenarioResult, VmError> {
        let what = format!("the result of {}", req.scenario);
        req.host_time_ns = host_time_ns();
        self.vm.send(&HostMsg::Run(req)).await?;
        loop {
            match self.vm.recv(timeout, &what).await? {
                GuestMsg::Result(r) => return Ok(*r),
                GuestMsg::Error { message } => {
                    return Err(VmError::Channel {
                        detail: format!("agent error: {message}"),
                        console: self.vm.console_tail(),
                    })
                }
                _ => continue,
            }
        }
    }

    /// Run a program in the guest.
    pub async fn exec(&mut self, req: ExecRequest, timeout: Duration) -> Result<ExecOutcome, VmError> {
        self.exec_streaming(req, timeout, |_, _| {}).await
    }

    /// Run a program in the guest, handing its output to `on_output(fd, bytes)` as it comes
    /// (when the request asks for streaming).
    pub async fn exec_streaming(
        &mut self,
        req: ExecRequest,
        timeout: Duration,
        mut on_output: impl FnMut(u8, &[u8]),
    ) -> Result<ExecOutcome, VmError> {
        let mut req = req;
        req.host_time_ns = host_time_ns();
        self.vm.send(&HostMsg::Exec(req)).await?;
        loop {
            match self.vm.recv(timeout, "an exec to finish").await? {
                GuestMsg::ExecOutput { fd, data } => on_output(fd, &data),
                GuestMsg::ExecDone(o) => return Ok(o),
                GuestMsg::Error { message } => {
                    return Err(VmError::Channel {
                        detail: format!("agent error: {message}"),
                        console: self.vm.console_tail(),
                    })
                }
                _ => continue,
            }
        }
    }

    /// Send a message to the agent: `Input`, `Winsize`, `Signal` while an `Exec` runs, or an
    /// `Exec` a caller drives itself (stamped with the host's time, as [`Guest::exec`] does).
    pub async fn send(&mut self, msg: &HostMsg) -> Result<(), VmError> {
        match msg {
            HostMsg::Exec(req) => {
                let mut req = req.clone();
                req.host_time_ns = host_time_ns();
                self.vm.send(&HostMsg::Exec(req)).await
            }
            HostMsg::Run(req) => {
                let mut req = req.clone();
                req.host_time_ns = host_time_ns();
                self.vm.send(&HostMsg::Run(req)).await
            }
            other => self.vm.send(other).await,
        }
    }

    /// The next message from the agent (for callers that drive an interactive `Exec`).
    pub async fn recv(&mut self, timeout: Duration, waiting_for: &str) -> Result<GuestMsg, VmError> {
        self.vm.recv(timeout, waiting_for).await
    }

    /// The channel the agent answered on (`ttyS1`, `virtio`), `none` before it has.
    pub fn channel(&self) -> &'static str {
        self.vm.channel().unwrap_or("none")
    }

    /// Where the console log is written.
    pub fn console_log(&self) -> &std::path::Path {
        &self.vm.console_log
    }

    /// The last lines of the console, for error messages.
    pub fn console_tail(&self) -> String {
        self.vm.console_tail()
    }

    /// Power off cleanly (QEMU is killed past the deadline).
    pub async fn shutdown(self) -> Result<(), VmError> {
        self.vm.shutdown(Duration::from_secs(10)).await
    }

    /// Ask the guest kernel for a task dump on the console (sysrq-t), waiting `wait` for it.
    pub async fn task_dump(&mut self, wait: Duration) {
        self.vm.task_dump(wait).await;
    }

    /// Kill the guest now.
    pub async fn kill(mut self) {
        self.vm.kill().await;
    }
}

/// The kernel's `lib/modules/<release>` with `depmod`'s indexes (made once, in `cache`), as a
/// host path for a share's `modules`; `None` when the kernel has no modules or the tree could
/// not be made (said on stderr: programs in the guest then find no `/lib/modules`).
pub async fn module_tree(k: &PreparedKernel, cache: &crate::cache::Cache) -> Option<String> {
    let (id, k, cache) = (k.id.clone(), k.clone(), cache.clone());
    let made = tokio::task::spawn_blocking(move || crate::kernel::module_tree(&k, &cache).map_err(Box::new));
    match made.await {
        Ok(Ok(t)) => Some(t.dir.display().to_string()),
        Ok(Err(e)) if matches!(*e, crate::kernel::KernelError::NoModules { .. }) => None,
        Ok(Err(e)) => {
            eprintln!("kmatrix: {id}: no /lib/modules in the guest: {}", crate::error_chain(&*e));
            None
        }
        Err(e) => {
            eprintln!("kmatrix: making a module tree panicked: {e}");
            None
        }
    }
}

/// The host's wall-clock time now, for a request (the agent sets the guest's clock to it: a
/// guest restored from a snapshot would otherwise live at the snapshot's time). `None` only on a
/// host clock before 1970 or past 2554.
fn host_time_ns() -> Option<u64> {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(d.as_nanos()).ok()
}

/// The QEMU share devices of `plan` (the read-only host root first, then its extra directories),
/// with the virtiofsd daemons serving them when the plan is virtio-fs.
fn share_dirs(plan: Option<&SharePlan>) -> Result<(Vec<crate::vm::qemu::ShareDir>, Vec<Daemon>), VmError> {
    let Some(plan) = plan else { return Ok((Vec::new(), Vec::new())) };
    let mut dirs = vec![crate::vm::qemu::ShareDir {
        tag: kmatrix_proto::ROOT_TAG.into(),
        path: PathBuf::from("/"),
        readonly: true,
        virtiofs: None,
    }];
    for (i, e) in plan.extra.iter().enumerate() {
        dirs.push(crate::vm::qemu::ShareDir {
            tag: format!("kmatrix-x{i}"),
            path: e.host.clone(),
            readonly: e.readonly,
            virtiofs: None,
        });
    }
    let mut daemons = Vec::new();
    if let ShareFs::Virtiofs { daemon } = &plan.fs {
        for d in &mut dirs {
            let started = Daemon::start(daemon, &d.path, d.readonly).map_err(VmError::Virtiofs)?;
            d.virtiofs = Some(started.socket.clone());
            daemons.push(started);
        }
    }
    Ok((dirs, daemons))
}

/// When a guest did not come up, a virtiofsd that died is the better explanation.
fn daemon_died(daemons: &mut [Daemon]) -> Option<VmError> {
    daemons.iter_mut().find_map(|d| {
        d.exited().map(|status| {
            VmError::Virtiofs(crate::vm::virtiofs::VirtiofsError::Spawn {
                path: "virtiofsd".into(),
                dir: d.socket.clone(),
                detail: format!("it exited ({status}) before the guest was up; its stderr is above"),
            })
        })
    })
}

/// What the agent needs to mount the shares of `opts`' plan.
fn share_of(opts: &GuestOptions) -> Option<kmatrix_proto::Share> {
    let plan = opts.share.as_ref()?;
    Some(kmatrix_proto::Share {
        fs: plan.fs.name().into(),
        tag: kmatrix_proto::ROOT_TAG.into(),
        extra: plan
            .extra
            .iter()
            .enumerate()
            .map(|(i, e)| kmatrix_proto::ShareMount {
                tag: format!("kmatrix-x{i}"),
                path: e.guest.display().to_string(),
                readonly: e.readonly,
            })
            .collect(),
        why: plan.why.clone(),
        headers: None,
        headers_missing: None,
        modules: None,
        module_files: false,
    })
}
