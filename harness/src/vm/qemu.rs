//! The QEMU command line, built from a typed description of the guest.
//!
//! Choices and why (measured on a 2-core host under TCG, Debian 6.1):
//! - the uncompressed `vmlinux` through its PVH entry: ~4 s faster than decompressing a bzImage
//!   in an emulated CPU;
//! - qboot as firmware and `-nodefaults`: no option ROMs, no VGA, no NIC to probe (~0.3 s);
//! - `cryptomgr.notests`, `quiet`: crypto self-tests and a synchronous 8250 console cost ~0.5 s;
//! - `pci=noacpi`: enabling a PCI device otherwise routes its legacy interrupt through ACPI's
//!   interrupt link objects, AML the emulated CPU interprets: ~200 ms per virtio device (the
//!   virtio-serial port, each 9p share) on Debian 6.1's `virtio_pci` load under TCG, 7 ms
//!   without; virtio uses MSI-X, so the legacy line it then lacks is never used;
//! - `panic=-1` with `-no-reboot`: a guest panic ends QEMU at once instead of hanging.
//!
//! arm64 guests (`arch`) run on `-M virt` under TCG with the kernel's `Image` and no firmware;
//! the console is the PL011 (`ttyAMA0`), the channel virtio-serial over PCI as on x86. virt has
//! one UART, so the 8250 channel (ttyS1) does not exist there.
//!
//! This module only builds the command; spawning and watching it is `machine.rs`'s job.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::kernel::Arch;

/// How the guest CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization through `/dev/kvm`.
    Kvm,
    /// QEMU's emulator: slower, works everywhere.
    Tcg,
}

impl Accel {
    /// QEMU's name for it (`-M ...,accel=`), also what results record.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Everything that decides a guest's QEMU command line.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// The `qemu-system-*` binary.
    pub qemu: PathBuf,
    /// The guest architecture: machine, CPU, console and kernel command line follow it.
    pub arch: Arch,
    /// The kernel image (`-kernel`).
    pub kernel: PathBuf,
    /// The guest image (`-initrd`); `None` boots the kernel alone (the KVM probe).
    pub initrd: Option<PathBuf>,
    /// The accelerator (`-M ...,accel=`); also picks the CPU model.
    pub accel: Accel,
    /// Guest RAM in MiB.
    pub memory_mb: u32,
    /// Guest CPUs (`-smp`).
    pub cpus: u32,
    /// Extra kernel command line words, after kmatrix's own.
    pub append: Vec<String>,
    /// Unix socket the guest's 8250 channel (ttyS1) connects to.
    pub serial_channel: Option<PathBuf>,
    /// Unix socket the guest's virtio-serial port `kmatrix.0` connects to.
    pub virtio_channel: Option<PathBuf>,
    /// Firmware image (`-bios`); `None` keeps QEMU's default.
    pub bios: Option<PathBuf>,
    /// Add `isa-debug-exit` at port 0xf4 (used by the KVM probe).
    pub debug_exit: bool,
    /// Unix socket the human monitor (HMP) connects to; used to send sysrq to a hung guest.
    pub monitor: Option<PathBuf>,
    /// Guest RAM backed by this file: shared while a snapshot is taken (the file then holds the
    /// RAM), private (copy-on-write) when restoring from it.
    pub memory_file: Option<MemoryFile>,
    /// Start paused, waiting for `migrate_incoming` (snapshot restore).
    pub incoming: bool,
    /// Host directories shared into the guest (the host root, read-only, and extra dirs).
    pub shares: Vec<ShareDir>,
    /// A scratch disk (`--disk SIZE`): a raw file as a virtio-blk device (`/dev/vda`).
    pub disk: Option<PathBuf>,
    /// QEMU's user-mode network on a virtio-net device (`--net user`).
    pub net_user: bool,
    /// The guest must print on its console within this long, or it is an accelerator failure:
    /// the proof boot of a KVM not yet proven on this host ([`super::accel::KVM_FIRST_OUTPUT`]).
    /// Such a boot's kernel prints from its first milliseconds (`quiet` dropped, `earlyprintk`
    /// on the console's 8250), so a silent KVM is told from a slow one at once.
    pub first_output: Option<std::time::Duration>,
}

/// A host directory the guest can mount by its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareDir {
    /// The mount tag the guest names it by (`kmatrix-root`, `kmatrix-rw0`).
    pub tag: String,
    /// The host directory.
    pub path: PathBuf,
    /// The guest cannot write to it.
    pub readonly: bool,
    /// `None`: virtio-9p (QEMU serves `path` itself); `Some(socket)`: vhost-user-fs, served by
    /// the virtiofsd listening there (which was told `path` and `readonly`).
    pub virtiofs: Option<PathBuf>,
}

/// A file that backs guest RAM (`memory-backend-file`), for snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryFile {
    /// The file, the snapshot's `ram`.
    pub path: PathBuf,
    /// `share=on`: guest writes reach the file (taking a snapshot); off: copy-on-write (restoring).
    pub shared: bool,
}

/// Kernel command line words kmatrix always passes.
pub const BASE_CMDLINE: &[&str] = &[
    "console=ttyS0",
    "panic=-1",
    "oops=panic",
    "quiet",
    "cryptomgr.notests",
    "8250.nr_uarts=2",
    "no_timer_check",
    "rcupdate.rcu_expedited=1",
    "random.trust_cpu=on",
    "i8042.noaux",
    "i8042.nomux",
    "i8042.nopnp",
    "pci=noacpi",
];

/// The command line words of arm64 guests: the PL011 console, and none of the x86 words
/// (8250, i8042, timer check) that an arm64 kernel would hand to init as arguments.
pub const ARM64_CMDLINE: &[&str] =
    &["console=ttyAMA0", "panic=-1", "oops=panic", "quiet", "cryptomgr.notests", "rcupdate.rcu_expedited=1"];

/// The CPU model of arm64 guests under TCG: `max` with the cheap QEMU-defined pointer
/// authentication instead of the architected QARMA (whose emulation dominates TCG time on kernels
/// built with pointer authentication, as Debian's are). `$KMATRIX_ARM64_CPU` overrides it (for
/// measuring other models: `cortex-a57`, `neoverse-n1`).
pub const ARM64_CPU: &str = "max,pauth-impdef=on";

/// The QEMU binary for `arch`, as [`super::qemu_binary`] finds x86's: `$KMATRIX_QEMU_AARCH64`, else
/// `qemu-system-aarch64` from PATH.
pub fn binary_for(arch: Arch) -> PathBuf {
    match arch {
        Arch::X86_64 => super::qemu_binary(),
        Arch::Arm64 => find_binary("KMATRIX_QEMU_AARCH64", "qemu-system-aarch64"),
    }
}

/// `$var` when set and not empty, else `name` found in PATH (a full path), else `name` itself
/// (the start of a VM then says it is missing and how to install it).
pub(super) fn find_binary(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|s| !s.is_empty()) {
        return p.into();
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()))
        .unwrap_or_else(|| name.into())
}

/// qboot, when this QEMU ships it: a firmware that does nothing but load the kernel.
pub fn default_bios(qemu: &Path) -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/share/qemu/qboot.rom")];
    if let Some(prefix) = qemu.parent().and_then(Path::parent) {
        candidates.insert(0, prefix.join("share/qemu/qboot.rom"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

impl QemuConfig {
    /// The kernel command line: kmatrix's own words for the architecture, then `append`.
    pub fn cmdline(&self) -> String {
        let base = if self.arch == Arch::Arm64 { ARM64_CMDLINE } else { BASE_CMDLINE };
        let mut words: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        if self.first_output.is_some() {
            words.retain(|w| w != "quiet");
            words.push(if self.arch == Arch::Arm64 { "earlycon" } else { "earlyprintk=serial,ttyS0,115200" }.into());
        }
        words.extend(self.append.iter().cloned());
        words.join(" ")
    }

    /// The arguments after the QEMU binary.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(OsString::from(s));
        push("-nodefaults");
        push("-no-user-config");
        push("-display");
        push("none");
        push("-no-reboot");
        push("-M");
        let board = if self.arch == Arch::Arm64 { "virt" } else { "pc" };
        let mut machine = format!("{board},accel={}", self.accel.as_str());
        // vhost-user-fs: virtiofsd maps guest RAM, so it must be shared memory.
        let memfd = self.memory_file.is_none() && self.shares.iter().any(|d| d.virtiofs.is_some());
        if self.memory_file.is_some() || memfd {
            machine.push_str(",memory-backend=kmram");
        }
        push(&machine);
        if self.arch == Arch::Arm64 {
            push("-cpu");
            let cpu = std::env::var("KMATRIX_ARM64_CPU").ok().filter(|c| !c.is_empty());
            push(cpu.as_deref().unwrap_or(ARM64_CPU));
        } else if self.accel == Accel::Kvm {
            push("-cpu");
            push("host");
        } else {
            // `max` gives the emulated CPU every feature TCG can do (e.g. for BPF JIT paths).
            push("-cpu");
            push("max");
        }
        push("-m");
        push(&format!("{}M", self.memory_mb));
        if let Some(m) = &self.memory_file {
            push("-object");
            let path = m.path.to_string_lossy().replace(',', ",,");
            push(&format!(
                "memory-backend-file,id=kmram,size={}M,mem-path={path},share={}",
                self.memory_mb,
                if m.shared { "on" } else { "off" }
            ));
        }
        if memfd {
            push("-object");
            push(&format!("memory-backend-memfd,id=kmram,size={}M,share=on", self.memory_mb));
        }
        if self.incoming {
            push("-incoming");
            push("defer");
        }
        push("-smp");
        push(&self.cpus.to_string());
        if let Some(b) = &self.bios {
            push("-bios");
            a.push(b.clone().into_os_string());
        }
        let mut push = |s: &str| a.push(OsString::from(s));
        push("-kernel");
        a.push(self.kernel.clone().into_os_string());
        if let Some(i) = &self.initrd {
            a.push("-initrd".into());
            a.push(i.clone().into_os_string());
        }
        a.push("-append".into());
        a.push(self.cmdline().into());
        // ttyS0: the console, on QEMU's stdout, read by the console watcher.
        a.push("-chardev".into());
        a.push("stdio,id=con,signal=off".into());
        a.push("-serial".into());
        a.push("chardev:con".into());
        // ttyS1: the 8250 channel; QEMU connects to the harness's listening socket. On arm64
        // the chardev is still created (the harness waits for it to connect) but virt has no
        // second UART to wire it to.
        if let Some(p) = &self.serial_channel {
            a.push("-chardev".into());
            a.push(socket_chardev("ch8250", p));
            if self.arch != Arch::Arm64 {
                a.push("-serial".into());
                a.push("chardev:ch8250".into());
            }
        }
        if let Some(p) = &self.virtio_channel {
            a.push("-device".into());
            a.push("virtio-serial-pci,id=vser".into());
            a.push("-chardev".into());
            a.push(socket_chardev("chvirt", p));
            a.push("-device".into());
            a.push("virtserialport,bus=vser.0,chardev=chvirt,name=kmatrix.0".into());
        }
        if let Some(p) = &self.monitor {
            a.push("-chardev".into());
            a.push(socket_chardev("hmp", p));
            a.push("-mon".into());
            a.push("chardev=hmp,mode=readline".into());
        }
        for (i, d) in self.shares.iter().enumerate() {
            if let Some(socket) = &d.virtiofs {
                a.push("-chardev".into());
                a.push(socket_chardev(&format!("kmvfs{i}"), socket));
                a.push("-device".into());
                a.push(format!("vhost-user-fs-pci,chardev=kmvfs{i},tag={}", d.tag).into());
                continue;
            }
            // security_model=none: files are accessed as QEMU's own user, nothing is remapped;
            // the guest sees the host's owners and modes as they are. multidevs=remap: the host
            // root spans several file systems (/proc and /sys both have inode 1), and without
            // remapping their 9p qids collide and the guest takes one directory for the other.
            let mut fsdev = OsString::from(format!("local,id=kmfs{i},security_model=none,multidevs=remap,path="));
            fsdev.push(d.path.as_os_str().to_string_lossy().replace(',', ",,"));
            if d.readonly {
                fsdev.push(",readonly=on");
            }
            a.push("-fsdev".into());
            a.push(fsdev);
            a.push("-device".into());
            a.push(format!("virtio-9p-pci,fsdev=kmfs{i},mount_tag={}", d.tag).into());
        }
        if let Some(d) = &self.disk {
            // Raw, no host page cache between the guest's direct I/O and the file; the serial
            // names it for a person reading /sys/block/vda/serial.
            let mut drive = OsString::from("if=none,id=kmdisk,format=raw,cache=none,aio=threads,file=");
            drive.push(d.as_os_str().to_string_lossy().replace(',', ",,"));
            a.push("-drive".into());
            a.push(drive);
            a.push("-device".into());
            a.push("virtio-blk-pci,drive=kmdisk,serial=kmatrix-scratch".into());
        }
        if self.net_user {
            // QEMU's own NAT: the guest's outbound connections become the host's; the host's
            // loopback is 10.0.2.2. No option ROM (qboot boots the kernel itself).
            a.push("-netdev".into());
            a.push("user,id=kmnet".into());
            a.push("-device".into());
            a.push("virtio-net-pci,netdev=kmnet,romfile=".into());
        }
        if self.debug_exit {
            a.push("-device".into());
            a.push("isa-debug-exit,iobase=0xf4,iosize=0x04".into());
        }
        a
    }
}

fn socket_chardev(id: &str, path: &Path) -> OsString {
    let mut s = OsString::from(format!("socket,id={id},path="));
    // QEMU splits options on ','; a comma in the path is written doubled.
    s.push(path.as_os_str().to_string_lossy().replace(',', ",,"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> QemuConfig {
        QemuConfig {
            qemu: "qemu-system-x86_64".into(),
            arch: Arch::X86_64,
            kernel: "/k/vmlinux".into(),
            initrd: Some("/i/a.cpio".into()),
            accel: Accel::Tcg,
            memory_mb: 1024,
            cpus: 1,
            append: vec!["kmatrix.extra=1".into()],
            serial_channel: Some("/run/a,b.sock".into()),
            virtio_channel: None,
            bios: None,
            debug_exit: false,
            monitor: None,
            memory_file: None,
            incoming: false,
            shares: Vec::new(),
            disk: None,
            first_output: None,
            net_user: false,
        }
    }

    #[test]
    fn a_kvm_proof_boot_is_loud_from_its_first_milliseconds() {
        let quiet = cfg().cmdline();
        assert!(quiet.split(' ').any(|w| w == "quiet") && !quiet.contains("earlyprintk"), "{quiet}");
        let proof = QemuConfig { first_output: Some(std::time::Duration::from_secs(3)), ..cfg() }.cmdline();
        assert!(!proof.split(' ').any(|w| w == "quiet"), "{proof}");
        assert!(proof.split(' ').any(|w| w == "earlyprintk=serial,ttyS0,115200"), "{proof}");
        // The rest of the line is the same, so the boot is the one later guests get.
        fn rest(c: &str) -> Vec<&str> {
            c.split(' ').filter(|w| *w != "quiet" && !w.starts_with("earlyprintk")).collect()
        }
        assert_eq!(rest(&quiet), rest(&proof));
    }

    #[test]
    fn command_line_has_channel_console_and_cmdline() {
        let args: Vec<String> = cfg().args().into_iter().map(|s| s.into_string().unwrap()).collect();
        let joined = args.join(" ");
        assert!(joined.contains("-M pc,accel=tcg"), "{joined}");
        assert!(joined.contains("-chardev socket,id=ch8250,path=/run/a,,b.sock"), "{joined}");
        assert!(joined.contains("-serial chardev:con -chardev"), "{joined}");
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(append.starts_with("console=ttyS0 panic=-1"));
        assert!(append.ends_with("kmatrix.extra=1"));
        assert!(!joined.contains("virtio-serial"));
        assert!(!joined.contains("9p"));
    }

    #[test]
    fn shares_are_9p_devices_with_their_tags_read_only_unless_asked() {
        let mut c = cfg();
        c.shares = vec![
            ShareDir { tag: "kmatrix-root".into(), path: "/".into(), readonly: true, virtiofs: None },
            ShareDir { tag: "kmatrix-rw0".into(), path: "/work/a,b".into(), readonly: false, virtiofs: None },
        ];
        let joined: Vec<String> = c.args().into_iter().map(|s| s.into_string().unwrap()).collect();
        let joined = joined.join(" ");
        assert!(joined.contains("-fsdev local,id=kmfs0,security_model=none,multidevs=remap,path=/,readonly=on -device virtio-9p-pci,fsdev=kmfs0,mount_tag=kmatrix-root"), "{joined}");
        assert!(joined.contains("-fsdev local,id=kmfs1,security_model=none,multidevs=remap,path=/work/a,,b -device virtio-9p-pci,fsdev=kmfs1,mount_tag=kmatrix-rw0"), "{joined}");
    }

    #[test]
    fn virtiofs_shares_are_vhost_user_devices_over_shared_memory() {
        let mut c = cfg();
        c.shares = vec![ShareDir {
            tag: "kmatrix-root".into(),
            path: "/".into(),
            readonly: true,
            virtiofs: Some("/tmp/v/fs.sock".into()),
        }];
        let joined: Vec<String> = c.args().into_iter().map(|s| s.into_string().unwrap()).collect();
        let joined = joined.join(" ");
        assert!(joined.contains("-M pc,accel=tcg,memory-backend=kmram"), "{joined}");
        assert!(joined.contains("-object memory-backend-memfd,id=kmram,size=1024M,share=on"), "{joined}");
        assert!(joined.contains("-chardev socket,id=kmvfs0,path=/tmp/v/fs.sock -device vhost-user-fs-pci,chardev=kmvfs0,tag=kmatrix-root"), "{joined}");
        assert!(!joined.contains("9p"), "{joined}");
    }

    #[test]
    fn snapshot_restore_maps_ram_privately_and_waits_for_incoming() {
        let mut c = cfg();
        c.memory_file = Some(MemoryFile { path: "/c/snap/ram".into(), shared: false });
        c.incoming = true;
        let joined: Vec<String> = c.args().into_iter().map(|s| s.into_string().unwrap()).collect();
        let joined = joined.join(" ");
        assert!(joined.contains("-M pc,accel=tcg,memory-backend=kmram"), "{joined}");
        assert!(joined.contains("memory-backend-file,id=kmram,size=1024M,mem-path=/c/snap/ram,share=off"), "{joined}");
        assert!(joined.contains("-incoming defer"), "{joined}");
    }

    #[test]
    fn arm64_runs_virt_with_the_pl011_console_and_no_x86_words() {
        let mut c = cfg();
        c.arch = Arch::Arm64;
        c.virtio_channel = Some("/tmp/v.sock".into());
        let args: Vec<String> = c.args().into_iter().map(|s| s.into_string().unwrap()).collect();
        let joined = args.join(" ");
        assert!(joined.contains("-M virt,accel=tcg -cpu max,pauth-impdef=on"), "{joined}");
        assert!(!joined.contains("chardev:ch8250"), "{joined}");
        assert!(joined.contains("virtio-serial-pci,id=vser"), "{joined}");
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(append.starts_with("console=ttyAMA0 "), "{append}");
        assert!(!append.contains("i8042") && !append.contains("8250"), "{append}");
    }

    #[test]
    fn a_scratch_disk_is_a_raw_virtio_blk_drive() {
        let mut c = cfg();
        c.disk = Some("/run/d,1/scratch.img".into());
        let joined: Vec<String> = c.args().into_iter().map(|s| s.into_string().unwrap()).collect();
        let joined = joined.join(" ");
        assert!(joined.contains("-drive if=none,id=kmdisk,format=raw,cache=none,aio=threads,file=/run/d,,1/scratch.img -device virtio-blk-pci,drive=kmdisk,serial=kmatrix-scratch"), "{joined}");
        assert!(!cfg().args().iter().any(|a| a.to_string_lossy().contains("kmdisk")));
    }

    #[test]
    fn virtio_channel_adds_port_named_for_the_agent() {
        let mut c = cfg();
        c.virtio_channel = Some("/tmp/v.sock".into());
        c.accel = Accel::Kvm;
        let joined: Vec<String> = c.args().into_iter().map(|s| s.into_string().unwrap()).collect();
        let joined = joined.join(" ");
        assert!(joined.contains("virtserialport,bus=vser.0,chardev=chvirt,name=kmatrix.0"));
        assert!(joined.contains("-cpu host"));
    }
}
