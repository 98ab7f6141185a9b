//! The host's root file system in the guest: mounted read-only at [`HOST_ROOT`] on first use, with
//! the guest's own `/proc`, `/sys` (tracefs, debugfs, bpffs, cgroup2 included), `/dev`, `/tmp` and
//! `/run` bound over the host's, so a program run with [`HOST_ROOT`] as its root finds the host's
//! `/usr`, `/lib`, `/home` and the caller's cwd where it expects them while everything the kernel
//! exposes is the guest's.
//!
//! Mounted lazily, never at boot: a snapshot is taken at `Hello`, before any share is mounted (a
//! mounted 9p export blocks migration), and a restored guest mounts it on its first `Exec`. The
//! modules (`9p`, `9pnet_virtio`, or `virtiofs`/`fuse` on kernels that build them as modules) are
//! in the image, listed in [`LOAD_LIST`], and loaded here. Not here: what runs in the view
//! (`exec.rs`).

use crate::{modules, sys};
use anyhow::{bail, Context, Result};
use kmatrix_proto::Share;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// Where the host root is mounted.
pub const HOST_ROOT: &str = "/host";
/// The share modules the image builder listed, in load order.
pub const LOAD_LIST: &str = "/lib/modules/kmatrix-share.load";
/// The guest's own mounts bound over the host's, recursively (sysfs carries tracefs & co).
const GUEST_OWN: &[&str] = &["/proc", "/sys", "/dev", "/tmp", "/run"];

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

/// The offered share, mounted (once); `Err` says why there is none.
pub fn mount_offered() -> Result<String, String> {
    let offered = OFFERED.lock().map_err(|_| "share state poisoned".to_string())?.clone();
    match offered {
        None => Err("the host root is not shared into this guest".into()),
        Some(s) => ensure(&s).map_err(|e| format!("{e:#}")),
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
    let loaded = modules::load_listed(Path::new(LOAD_LIST));
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
    for dir in GUEST_OWN {
        let target = format!("{HOST_ROOT}{dir}");
        if !Path::new(&target).is_dir() {
            bail!("the host root has no {dir} to bind the guest's over");
        }
        mount(dir, &target, "", libc::MS_BIND | libc::MS_REC, "")
            .map_err(|e| anyhow::anyhow!("bind mount({dir}, {target}) failed: {e}"))?;
    }
    for (tag, host_path) in &share.rw {
        let target = format!("{HOST_ROOT}{host_path}");
        mount(tag, &target, fstype, 0, &data)
            .map_err(|e| anyhow::anyhow!("mount({fstype} {tag}, {target}, rw) failed: {e}"))?;
    }
    let said = format!(
        "host root over {fstype} ({}) read-only at {HOST_ROOT}{}{}, mounted in {} ms",
        share.tag,
        if share.rw.is_empty() {
            String::new()
        } else {
            format!(", writable: {}", share.rw.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>().join(", "))
        },
        share.headers.as_ref().map_or(String::new(), |h| format!(", kernel headers from {h}")),
        started.elapsed().as_millis()
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

fn mount(src: &str, target: &str, fstype: &str, flags: libc::c_ulong, data: &str) -> Result<(), String> {
    let (Ok(s), Ok(t), Ok(f), Ok(d)) =
        (sys::cstring(src), sys::cstring(target), sys::cstring(fstype), sys::cstring(data))
    else {
        return Err("a NUL byte in a mount argument".into());
    };
    let fptr = if fstype.is_empty() { std::ptr::null() } else { f.as_ptr() };
    let dptr = if data.is_empty() { std::ptr::null() } else { d.as_ptr().cast() };
    // SAFETY: NUL-terminated strings (or null) that outlive the call.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), fptr, flags, dptr) };
    if rc != 0 {
        return Err(sys::errno_text(sys::errno()));
    }
    Ok(())
}
