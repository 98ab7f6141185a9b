//! A booted guest with its agent: from a prepared kernel and image to `Hello`, requests, and a
//! clean power-off.
//!
//! This is the seam every surface uses (`kmatrix boot`, `run`, `bench`, the test harness): it
//! picks the boot file (the PVH `vmlinux` when there is one), the channel (virtio-serial when the
//! image can load its driver, the 8250 otherwise), and times the boot. It does not decide what to
//! run; callers send requests.

use crate::image::Image;
use crate::kernel::PreparedKernel;
use crate::vm::{Accel, QemuConfig, Vm, VmError, VmFiles};
use kmatrix_proto::{Capabilities, ExecOutcome, ExecRequest, GuestMsg, HostMsg, RunRequest, ScenarioResult};
use std::path::PathBuf;
use std::time::Duration;

/// How to boot.
#[derive(Debug, Clone)]
pub struct GuestOptions {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub memory_mb: u32,
    pub cpus: u32,
    /// Deadline for QEMU start → `Hello`.
    pub boot_timeout: Duration,
    /// Where the console log goes.
    pub console_log: PathBuf,
    /// Extra kernel command line words.
    pub append: Vec<String>,
    /// Offer a virtio-serial channel when the image can drive it.
    pub virtio: bool,
}

impl GuestOptions {
    pub fn new(qemu: PathBuf, accel: Accel, console_log: PathBuf) -> Self {
        GuestOptions {
            qemu,
            accel,
            memory_mb: 512,
            cpus: 1,
            boot_timeout: Duration::from_secs(60),
            console_log,
            append: Vec::new(),
            virtio: true,
        }
    }
}

/// A guest whose agent has said `Hello`.
pub struct Guest {
    vm: Vm,
    pub caps: Capabilities,
    /// QEMU spawn → `Hello` received.
    pub hello_after: Duration,
    /// Which file was booted and how (`vmlinux (PVH)` or `bzImage`).
    pub boot_path: String,
}

impl Guest {
    pub async fn start(kernel: &PreparedKernel, image: &Image, opts: &GuestOptions) -> Result<Guest, VmError> {
        let (boot_file, boot_path) = match &kernel.vmlinux {
            Some(v) => (v.clone(), "vmlinux (PVH entry)".to_string()),
            None => (kernel.bzimage.clone(), "bzImage".to_string()),
        };
        let cfg = QemuConfig {
            qemu: opts.qemu.clone(),
            kernel: boot_file,
            initrd: Some(image.path.clone()),
            accel: opts.accel,
            memory_mb: opts.memory_mb,
            cpus: opts.cpus,
            append: opts.append.clone(),
            serial_channel: None,
            virtio_channel: None,
            bios: crate::vm::qemu::default_bios(&opts.qemu),
            debug_exit: false,
            monitor: None,
        };
        let virtio = opts.virtio && image.has_virtio_console();
        let mut vm = Vm::start(cfg, VmFiles { console_log: opts.console_log.clone() }, virtio).await?;
        let caps = vm.hello(opts.boot_timeout).await?;
        let hello_after = vm.elapsed();
        Ok(Guest { vm, caps, hello_after, boot_path })
    }

    /// Run one scenario; `timeout` bounds the agent's answer.
    pub async fn run(&mut self, req: RunRequest, timeout: Duration) -> Result<ScenarioResult, VmError> {
        let what = format!("the result of {}", req.scenario);
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
        self.vm.send(&HostMsg::Exec(req)).await?;
        loop {
            match self.vm.recv(timeout, "an exec to finish").await? {
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

    pub fn channel(&self) -> &'static str {
        self.vm.channel().unwrap_or("none")
    }

    pub fn console_log(&self) -> &std::path::Path {
        &self.vm.console_log
    }

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
