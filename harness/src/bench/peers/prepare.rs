//! What each peer needs per kernel to boot kmatrix's cached Debian kernel under TCG, made in the
//! bench directory from the cache's files (read, never written): vmtest's TCG wrapper, its
//! initramfs that loads Debian's 9p and virtio modules before mounting vmtest's 9p root, its
//! `vmtest.toml`; virtme-ng's module tree (`boot/vmlinuz-<release>` and
//! `lib/modules/<release>` with modprobe's indexes, the modules themselves symlinked). Each list
//! of needs is written next to the code that meets it ([`VMTEST_NEEDS`], [`VIRTME_NG_NEEDS`]).

use super::install::{BenchDir, PeerError};
use super::{Peer, TASK};
use crate::image::cpio::CpioWriter;
use crate::kernel::PreparedKernel;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Kernel command line word every tool gets, as kmatrix passes it: under a loaded TCG host the
/// IO-APIC timer check fails and 6.1 panics ("IO-APIC + timer doesn't work!") before init.
pub const TIMER_WORD: &str = "no_timer_check";

/// What vmtest needed here beyond `vmtest -k <vmlinuz> "<command>"` (the why of each is in
/// docs/performance.md).
pub const VMTEST_NEEDS: &[&str] = &[
    "a TCG wrapper as qemu_command (it passes -enable-kvm -cpu host whenever /dev/kvm exists)",
    "an initramfs loading Debian's virtio/9p modules (vm.extra_args, hence a vmtest.toml)",
    "`mount -t tracefs` before the task (its init mounts tracefs under debugfs only)",
    "no_timer_check",
    "host qemu-guest-agent, busybox-static",
];

/// What virtme-ng needed here beyond `vng -r <vmlinuz> -e "<command>"`.
pub const VIRTME_NG_NEEDS: &[&str] = &[
    "--disable-kvm",
    "--append no_timer_check",
    "a module tree (boot/vmlinuz-<release>, lib/modules/<release> with depmod's indexes)",
    "host kmod, udev (without udevd: no output, exit 255), busybox-static",
];

/// vmtest's init mounts tracefs at /sys/kernel/debug/tracing only; the task reads
/// /sys/kernel/tracing, as on any current system.
pub const VMTEST_TRACEFS: &str = "mount -t tracefs nodev /sys/kernel/tracing; ";

/// The modules vmtest's guest needs before its root: the 9p transport and the virtio console
/// (its qemu-ga channel). On kernels where they are built in there is nothing to load.
const VMTEST_MODULES: &[&str] = &["virtio_pci", "virtio_console", "9pnet_virtio", "9p"];

/// The kernel's files, from kmatrix's cache (fetched there first if missing).
pub fn kernel(
    id: &str,
    cache: &crate::cache::Cache,
    fetch: &crate::kernel::FetchOptions,
) -> Result<PreparedKernel, PeerError> {
    let spec: crate::kernel::KernelSpec =
        id.parse().map_err(|e| PeerError::Kernel { id: id.into(), source: Box::new(e) })?;
    crate::kernel::prepare(&spec, cache, fetch).map_err(|e| PeerError::Kernel { id: id.into(), source: Box::new(e) })
}

/// `dir`, created.
fn mkdir(dir: &Path) -> Result<(), PeerError> {
    std::fs::create_dir_all(dir).map_err(PeerError::io("cannot create", dir))
}

/// Write `data` to `path` through a temporary file and a rename: a crash leaves the old file or
/// none, never half a file.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), PeerError> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(PeerError::io("cannot write", &tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(PeerError::io("cannot chmod", &tmp))?;
    std::fs::rename(&tmp, path).map_err(PeerError::io("cannot rename into", path))
}

/// The TCG wrapper vmtest runs instead of QEMU.
pub fn tcg_wrapper(dir: &BenchDir) -> Result<PathBuf, PeerError> {
    let path = dir.root.join("qemu-system-x86_64-tcg");
    let script = r#"#!/bin/sh
# kmatrix bench peers: vmtest passes `-enable-kvm -cpu host` whenever /dev/kvm exists; on this
# host KVM aborts, so run the same command line under TCG with the emulated `max` CPU.
n=$#; i=0; prev=
while [ "$i" -lt "$n" ]; do
  a=$1; shift; i=$((i + 1))
  if [ "$a" = -enable-kvm ]; then set -- "$@" -accel tcg
  elif [ "$prev" = -cpu ] && [ "$a" = host ]; then set -- "$@" max
  else set -- "$@" "$a"; fi
  prev=$a
done
exec qemu-system-x86_64 "$@"
"#;
    write_atomic(&path, script.as_bytes(), 0o755)?;
    Ok(path)
}

/// A static busybox on the host (an initramfs has no libc to load a dynamic one with).
fn static_busybox(dir: &BenchDir) -> Result<PathBuf, PeerError> {
    let missing = || PeerError::MissingProgram {
        peer: Peer::Vmtest,
        program: "busybox (static)".into(),
        package: "busybox-static".into(),
    };
    let path = super::install::which("busybox", &dir.path_env()).ok_or_else(missing)?;
    let data = std::fs::read(&path).map_err(PeerError::io("cannot read", &path))?;
    use object::{Object, ObjectSection};
    let file = object::File::parse(&*data).map_err(|_| missing())?;
    if file.sections().any(|s| s.name() == Ok(".interp")) {
        return Err(missing());
    }
    Ok(path)
}

/// vmtest's initramfs for `k`: busybox, the 9p/virtio modules, and an /init that loads them,
/// mounts vmtest's 9p root (tag `/dev/root`, its `rootflags`) read-only and switches to the
/// `init=` vmtest put on the command line.
pub fn vmtest_initramfs(dir: &BenchDir, k: &PreparedKernel) -> Result<PathBuf, PeerError> {
    let kdir = dir.kernel_dir(&k.release);
    mkdir(&kdir)?;
    let closure = crate::kernel::module_closure(k, VMTEST_MODULES)
        .map_err(|e| PeerError::Kernel { id: k.id.clone(), source: Box::new(e) })?;
    let busybox = static_busybox(dir)?;
    let bb = std::fs::read(&busybox).map_err(PeerError::io("cannot read", &busybox))?;
    let mut init = String::from(
        "#!/bin/sh\n# kmatrix bench peers: load what vmtest's 9p root needs, mount it, hand over to vmtest's init.\n\
         export PATH=/bin\nmkdir -p /proc /newroot\nmount -t proc proc /proc\n",
    );
    let mut w = CpioWriter::new(Vec::new());
    let io =
        |e: std::io::Error| PeerError::Io { what: "cannot build the initramfs for", path: kdir.clone(), source: e };
    w.dir("dev", 0o755).map_err(io)?;
    w.char_dev("dev/console", 0o600, 5, 1).map_err(io)?;
    w.file("bin/busybox", 0o755, &bb).map_err(io)?;
    for applet in ["sh", "mount", "umount", "insmod", "mkdir", "cat", "switch_root", "echo"] {
        w.symlink(&format!("bin/{applet}"), "busybox").map_err(io)?;
    }
    for m in closure.iter() {
        let bytes =
            crate::kernel::read_module(m).map_err(|e| PeerError::Kernel { id: k.id.clone(), source: Box::new(e) })?;
        w.file(&format!("lib/modules/{}.ko", m.name), 0o644, &bytes).map_err(io)?;
        init.push_str(&format!("insmod /lib/modules/{}.ko || echo \"initramfs: insmod {} failed\"\n", m.name, m.name));
    }
    init.push_str(
        "init=/sbin/init; flags=trans=virtio\n\
         for w in $(cat /proc/cmdline); do case \"$w\" in init=*) init=${w#init=};; rootflags=*) flags=${w#rootflags=};; esac; done\n\
         mount -t 9p -o ro,$flags /dev/root /newroot || { echo 'initramfs: cannot mount the 9p root'; exec sh; }\n\
         umount /proc\nexec switch_root /newroot \"$init\"\n",
    );
    w.file("init", 0o755, init.as_bytes()).map_err(io)?;
    let data = w.finish().map_err(io)?;
    let path = kdir.join("vmtest-initramfs.cpio");
    write_atomic(&path, &data, 0o644)?;
    Ok(path)
}

#[derive(serde::Serialize)]
struct VmtestConfig {
    target: Vec<VmtestTarget>,
}

#[derive(serde::Serialize)]
struct VmtestTarget {
    name: String,
    kernel: PathBuf,
    kernel_args: String,
    qemu_command: String,
    command: String,
    vm: VmtestVm,
}

#[derive(serde::Serialize)]
struct VmtestVm {
    extra_args: Vec<String>,
}

/// vmtest.toml for `k`: the kernel, the TCG wrapper, the initramfs, the task.
pub fn vmtest_config(dir: &BenchDir, k: &PreparedKernel, wrapper: &Path, initrd: &Path) -> Result<PathBuf, PeerError> {
    let cfg = VmtestConfig {
        target: vec![VmtestTarget {
            name: k.id.clone(),
            kernel: k.boot.bzimage.clone(),
            kernel_args: TIMER_WORD.into(),
            qemu_command: wrapper.display().to_string(),
            command: format!("{VMTEST_TRACEFS}{TASK}"),
            vm: VmtestVm { extra_args: vec!["-initrd".into(), initrd.display().to_string()] },
        }],
    };
    let text = toml::to_string(&cfg).map_err(|e| PeerError::Io {
        what: "cannot serialize vmtest.toml for",
        path: dir.kernel_dir(&k.release),
        source: std::io::Error::other(e.to_string()),
    })?;
    let path = dir.kernel_dir(&k.release).join("vmtest.toml");
    mkdir(&dir.kernel_dir(&k.release))?;
    write_atomic(&path, text.as_bytes(), 0o644)?;
    Ok(path)
}

/// virtme-ng's module tree for `k`, made once: virtme-ng finds modules at `<root>/lib/modules/
/// <release>` above the kernel image, and resolves them with modprobe, which needs depmod's
/// binary indexes (kmatrix's cache has a text modules.dep only, and is not written here).
/// Returns the kernel image path inside the tree.
pub fn module_tree(dir: &BenchDir, k: &PreparedKernel) -> Result<PathBuf, PeerError> {
    let root = dir.kernel_dir(&k.release).join("tree");
    let image = root.join("boot").join(format!("vmlinuz-{}", k.release));
    let mods = root.join("lib/modules").join(&k.release);
    if mods.join("modules.dep.bin").is_file() && image.exists() {
        return Ok(image);
    }
    let src = k.boot.modules_dir.clone().ok_or(PeerError::KernelFile {
        id: k.id.clone(),
        what: "modules",
        peer: Peer::VirtmeNg,
    })?;
    let tmp = dir.kernel_dir(&k.release).join("tree.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let tmods = tmp.join("lib/modules").join(&k.release);
    mkdir(&tmods)?;
    mkdir(&tmp.join("boot"))?;
    let link =
        |target: &Path, at: &Path| std::os::unix::fs::symlink(target, at).map_err(PeerError::io("cannot link", at));
    link(&k.boot.bzimage, &tmp.join("boot").join(format!("vmlinuz-{}", k.release)))?;
    link(&src.join("kernel"), &tmods.join("kernel"))?;
    for f in ["modules.builtin", "modules.builtin.modinfo", "modules.order"] {
        if src.join(f).is_file() {
            std::fs::copy(src.join(f), tmods.join(f)).map_err(PeerError::io("cannot copy", &src.join(f)))?;
        }
    }
    let depmod = super::install::which("depmod", &dir.path_env()).ok_or_else(|| PeerError::MissingProgram {
        peer: Peer::VirtmeNg,
        program: "depmod".into(),
        package: "kmod".into(),
    })?;
    let mut c = Command::new(depmod);
    c.arg("-b").arg(&tmp).arg(&k.release).stdin(Stdio::null());
    let command = format!("{c:?}");
    let out = c.output().map_err(|source| PeerError::Spawn { command: command.clone(), source })?;
    if !out.status.success() || !tmods.join("modules.dep.bin").is_file() {
        return Err(PeerError::Install {
            peer: Peer::VirtmeNg,
            command,
            status: out.status.to_string(),
            tail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&tmp, &root).map_err(PeerError::io("cannot rename into", &root))?;
    Ok(image)
}
