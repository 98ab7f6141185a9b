//! The host's root file system in the guest: mounted read-only at [`HOST_ROOT`] on first use, with
//! the guest's own `/proc`, `/sys` (tracefs, debugfs, bpffs, cgroup2 included), `/dev`, `/tmp` and
//! `/run` bound over the host's, so a program run with [`HOST_ROOT`] as its root finds the host's
//! `/usr`, `/lib`, `/home` and the caller's cwd where it expects them while everything the kernel
//! exposes is the guest's. Host paths under `/tmp` and `/run` that a request names are shown
//! again at their host paths (`host_paths.rs`).
//!
//! Mounted lazily, never at boot: a snapshot is taken at `Hello`, before any share is mounted (a
//! mounted 9p export blocks migration), and a restored guest mounts it on its first `Exec`. The
//! modules (`9p`, `9pnet_virtio`, or `virtiofs`/`fuse` on kernels that build them as modules) are
//! in the image, listed in [`LOAD_LIST`] and [`VIRTIOFS_LOAD_LIST`], and only the chosen file
//! system's are loaded here (a module load costs tens of ms under TCG). Not here: what runs in the view
//! (`exec.rs`).

use crate::{host_paths, modules, sys};
use anyhow::{bail, Context, Result};
use kmatrix_proto::Share;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// Where the host root is mounted.
pub const HOST_ROOT: &str = "/host";
/// The 9p share modules the image builder listed, in load order.
pub const LOAD_LIST: &str = "/lib/modules/kmatrix-share.load";
/// The virtio-fs share modules (`fuse`, `virtiofs`) where the kernel builds them as modules.
pub const VIRTIOFS_LOAD_LIST: &str = "/lib/modules/kmatrix-virtiofs.load";
/// The guest's kernel-backed mounts bound over the host's, recursively (sysfs carries tracefs &
/// co); the scratch directories (`host_paths::SCRATCH`) are bound after them.
const GUEST_OWN: &[&str] = &["/proc", "/sys", "/dev"];

/// The share modules were loaded at boot ([`preload`]).
static PRELOADED: Mutex<Option<String>> = Mutex::new(None);

/// At boot, before `Hello`: load the modules of the file system the host named on the command
/// line (`kmatrix.share=9p|virtiofs`). They then are in the snapshot taken at `Hello`, and a
/// restored guest's first `Exec` only mounts (loading 9pnet_virtio + 9p after a restore cost
/// ~0.4 s under TCG). Loading a driver binds the device but attaches nothing: migration stays
/// possible. Returns what was loaded, for the console.
pub fn preload() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    let fs = cmdline.split_whitespace().find_map(|w| w.strip_prefix("kmatrix.share="))?.to_string();
    let list = if fs == "virtiofs" { VIRTIOFS_LOAD_LIST } else { LOAD_LIST };
    let loaded = modules::load_listed(Path::new(list));
    let said: Vec<String> = loaded.iter().map(|m| format!("{} {} ({} ms)", m.name, m.outcome, m.ms)).collect();
    if let Ok(mut p) = PRELOADED.lock() {
        *p = Some(fs.clone());
    }
    Some(format!("{fs} share modules: {}", said.join(", ")))
}

/// What was mounted, said once and then repeated for every program that uses it.
static MOUNTED: Mutex<Option<String>> = Mutex::new(None);
/// The share the host offered with the running request (scenarios learn it from here).
static OFFERED: Mutex<Option<Share>> = Mutex::new(None);

/// Record the share the host offers with a request (`None`: this guest has none).
pub fn offer(share: Option<Share>) {
    if let Ok(mut o) = OFFERED.lock() {
        *o = share;
    }
}

/// Why the host root is not there for a program (a requirement's evidence, an error's cause).
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// A thread panicked while it held the share state.
    #[error("share state poisoned")]
    Poisoned,
    /// The host offered no share with the request.
    #[error("the host root is not shared into this guest")]
    NotShared,
    /// The offered share did not mount (the whole chain, one line).
    #[error("{0:#}")]
    Mount(anyhow::Error),
}

/// The offered share, mounted (once); `Err` says why there is none.
pub fn mount_offered() -> Result<String, Unavailable> {
    let offered = OFFERED.lock().map_err(|_| Unavailable::Poisoned)?.clone();
    match offered {
        None => Err(Unavailable::NotShared),
        Some(s) => ensure(&s).map_err(Unavailable::Mount),
    }
}

/// The offered share, if any.
pub fn offered() -> Option<Share> {
    OFFERED.lock().ok().and_then(|o| o.clone())
}

/// Mount the share described by `share` (once) and return one line saying how, and how long the
/// first mount took.
pub fn ensure(share: &Share) -> Result<String> {
    let mut done = MOUNTED.lock().map_err(|_| anyhow::anyhow!("share state poisoned"))?;
    if let Some(d) = done.as_ref() {
        return Ok(d.clone());
    }
    let started = Instant::now();
    let list = if share.fs == "virtiofs" { VIRTIOFS_LOAD_LIST } else { LOAD_LIST };
    let preloaded = PRELOADED.lock().ok().and_then(|p| p.clone()).as_deref() == Some(share.fs.as_str());
    let loaded = if preloaded { Vec::new() } else { modules::load_listed(Path::new(list)) };
    let failed: Vec<String> = loaded
        .iter()
        .filter(|m| m.outcome != "ok" && m.outcome != "exists")
        .map(|m| format!("{}: {}", m.name, m.outcome))
        .collect();
    std::fs::create_dir_all(HOST_ROOT).with_context(|| format!("mkdir({HOST_ROOT}) failed"))?;
    // Shared propagation, as systemd sets it on every host: programs parse /proc/self/mountinfo
    // expecting the optional `shared:N` field (uftrace 0.13 finds tracefs only then), and the
    // binds below inherit it.
    mount("", "/", "", libc::MS_REC | libc::MS_SHARED, "")
        .map_err(|e| anyhow::anyhow!("mount(/, MS_REC|MS_SHARED) failed: {e}"))?;
    let (fstype, data) = match share.fs.as_str() {
        // msize: 9p moves at most msize bytes per request; 512 KiB is the virtio transport's
        // ceiling and cuts round trips for large reads (binaries, libraries).
        "9p" => ("9p", "trans=virtio,version=9p2000.L,msize=512000,cache=loose,access=client".to_string()),
        "virtiofs" => ("virtiofs", String::new()),
        other => bail!("unknown share filesystem {other:?} (9p or virtiofs)"),
    };
    if let Err(e) = mount(&share.tag, HOST_ROOT, fstype, libc::MS_RDONLY, &data) {
        let modules = if failed.is_empty() { String::new() } else { format!(" (modules: {})", failed.join(", ")) };
        bail!("mount({fstype} {}, {HOST_ROOT}, ro) failed: {e}{modules}", share.tag);
    }
    for dir in GUEST_OWN.iter().chain(host_paths::SCRATCH) {
        let target = format!("{HOST_ROOT}{dir}");
        if !Path::new(&target).is_dir() {
            bail!("the host root has no {dir} to bind the guest's over");
        }
        let scratch = host_paths::SCRATCH.contains(dir);
        if scratch {
            host_paths::keep_host_scratch(dir)?;
        }
        mount(dir, &target, "", libc::MS_BIND | libc::MS_REC, "")
            .map_err(|e| anyhow::anyhow!("bind mount({dir}, {target}) failed: {e}"))?;
        if scratch {
            host_paths::isolate_view_scratch(dir)?;
        }
    }
    // Host paths the share names are shown at their host paths first, under /tmp too: an extra
    // share mounts on the host's directory there, and the kernel headers and module tree live
    // in the kmatrix cache, which a user may keep there (KMATRIX_CACHE=/tmp/...).
    let named: Vec<std::path::PathBuf> = share
        .extra
        .iter()
        .map(|m| m.path.clone().into())
        .chain(share.headers.iter().chain(share.modules.iter()).map(std::path::PathBuf::from))
        .collect();
    host_paths::reveal(&named)?;
    let modules = crate::modtree::bind(share, HOST_ROOT).unwrap_or_else(|e| Some(format!("no /lib/modules: {e:#}")));
    for m in &share.extra {
        let target = format!("{HOST_ROOT}{}", m.path);
        let (flags, how) = if m.readonly { (libc::MS_RDONLY, "ro") } else { (0, "rw") };
        mount(&m.tag, &target, fstype, flags, &data)
            .map_err(|e| anyhow::anyhow!("mount({fstype} {}, {target}, {how}) failed: {e}", m.tag))?;
    }
    let list = |ro: bool| share.extra.iter().filter(|m| m.readonly == ro).map(|m| m.path.as_str()).collect::<Vec<_>>();
    let (rw, ro) = (list(false), list(true));
    let said = format!(
        "host root over {fstype} ({}) read-only at {HOST_ROOT}{}{}{}, mounted in {} ms{}",
        share.tag,
        if rw.is_empty() { String::new() } else { format!(", writable: {}", rw.join(", ")) },
        if ro.is_empty() { String::new() } else { format!(", read-only: {}", ro.join(", ")) },
        share.headers.as_ref().map_or(String::new(), |h| format!(", kernel headers from {h}"))
            + &modules.map_or(String::new(), |m| format!(", {m}")),
        started.elapsed().as_millis(),
        if share.why.is_empty() { String::new() } else { format!("; {fstype} because {}", share.why) },
    );
    *done = Some(said.clone());
    Ok(said)
}

/// The kernel's headers the host offered (a merged header tree, see the harness's
/// `kernel/headers.rs`), as the agent sees them, if they are there: `BCC_KERNEL_SOURCE` for
/// programs run in the view is the host path itself.
pub fn headers_dir() -> Option<(String, std::path::PathBuf)> {
    let host_path = offered()?.headers?;
    let seen = Path::new(HOST_ROOT).join(host_path.trim_start_matches('/'));
    seen.join("include/linux/kconfig.h").is_file().then_some((host_path, seen))
}

/// Why `mount(2)` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MountError {
    /// An argument holds a NUL byte, so it cannot be passed as a C string.
    #[error("a NUL byte in a mount argument")]
    Nul,
    /// The call failed with this errno.
    #[error("{}", sys::errno_text(*.0))]
    Errno(i32),
}

/// `mount(2)` with Rust strings.
pub(crate) fn mount(src: &str, target: &str, fstype: &str, flags: libc::c_ulong, data: &str) -> Result<(), MountError> {
    let (Ok(s), Ok(t), Ok(f), Ok(d)) =
        (sys::cstring(src), sys::cstring(target), sys::cstring(fstype), sys::cstring(data))
    else {
        return Err(MountError::Nul);
    };
    let fptr = if fstype.is_empty() { std::ptr::null() } else { f.as_ptr() };
    let dptr = if data.is_empty() { std::ptr::null() } else { d.as_ptr().cast() };
    // SAFETY: NUL-terminated strings (or null) that outlive the call.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), fptr, flags, dptr) };
    if rc != 0 {
        return Err(MountError::Errno(sys::errno()));
    }
    Ok(())
}
