//! The filesystems PID 1 mounts before anything else: proc, sysfs, devtmpfs, tmpfs, and the
//! tracing filesystems at their canonical places.
//!
//! tracefs is mounted explicitly at /sys/kernel/tracing: the debugfs automount of
//! /sys/kernel/debug/tracing is optional from 6.17 and kmatrix does not depend on it. A failed
//! mount is recorded in the capability record, not fatal, except for proc, sysfs and devtmpfs,
//! without which nothing else works. This module does not decide what a missing mount means for
//! a scenario; requirements do.

use crate::sys;
use anyhow::{bail, Result};
use kmatrix_proto::MountRecord;
use std::path::Path;

/// Where tracefs is mounted; scenarios and capability probes read from here.
pub const TRACEFS: &str = "/sys/kernel/tracing";
pub const DEBUGFS: &str = "/sys/kernel/debug";
pub const BPFFS: &str = "/sys/fs/bpf";

struct Spec {
    fstype: &'static str,
    target: &'static str,
    flags: libc::c_ulong,
    data: &'static str,
    essential: bool,
}

const NOSUID_NODEV: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV;
const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// Mounted first, in this order: the console needs /dev, everything else needs /sys and /proc.
const EARLY: &[Spec] = &[
    Spec { fstype: "proc", target: "/proc", flags: NOSUID_NODEV_NOEXEC, data: "", essential: true },
    Spec { fstype: "sysfs", target: "/sys", flags: NOSUID_NODEV_NOEXEC, data: "", essential: true },
    Spec { fstype: "devtmpfs", target: "/dev", flags: libc::MS_NOSUID, data: "mode=0755", essential: true },
];

const LATE: &[Spec] = &[
    Spec { fstype: "tmpfs", target: "/tmp", flags: NOSUID_NODEV, data: "mode=1777", essential: false },
    Spec { fstype: "tmpfs", target: "/run", flags: NOSUID_NODEV, data: "mode=0755", essential: false },
    // Pseudo-terminals for `kmatrix shell` (`/dev/ptmx` of devtmpfs opens the instance at pts/).
    Spec {
        fstype: "devpts",
        target: "/dev/pts",
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: "mode=0620,ptmxmode=0666",
        essential: false,
    },
    // POSIX shared memory (shm_open), as every distribution mounts it: the host's tools expect
    // it in the guest's /dev (uftrace's libmcount keeps its buffers there).
    Spec { fstype: "tmpfs", target: "/dev/shm", flags: NOSUID_NODEV, data: "mode=1777", essential: false },
    Spec { fstype: "tracefs", target: TRACEFS, flags: NOSUID_NODEV_NOEXEC, data: "", essential: false },
    Spec { fstype: "debugfs", target: DEBUGFS, flags: NOSUID_NODEV_NOEXEC, data: "", essential: false },
    Spec { fstype: "bpf", target: BPFFS, flags: NOSUID_NODEV_NOEXEC, data: "mode=0700", essential: false },
    Spec { fstype: "cgroup2", target: "/sys/fs/cgroup", flags: NOSUID_NODEV_NOEXEC, data: "", essential: false },
];

/// Mount proc, sysfs and devtmpfs. Any failure is fatal: the error names the failing call.
pub fn mount_early() -> Result<Vec<MountRecord>> {
    mount_list(EARLY)
}

/// Mount tmpfs, tracefs, debugfs, bpffs and cgroup2, recording failures.
pub fn mount_late() -> Vec<MountRecord> {
    // None of these is essential, so mount_list cannot fail here.
    mount_list(LATE).unwrap_or_default()
}

/// Whether a mount in `records` succeeded.
pub fn mounted(records: &[MountRecord], target: &str) -> bool {
    records.iter().any(|r| r.target == target && r.outcome == "ok")
}

fn mount_list(specs: &[Spec]) -> Result<Vec<MountRecord>> {
    let mut records = Vec::new();
    for spec in specs {
        let outcome = match mount_one(spec) {
            Ok(()) => "ok".to_string(),
            Err(e) if spec.essential => {
                bail!("mount({}, {}) failed: {e}", spec.fstype, spec.target)
            }
            Err(e) => e.to_string(),
        };
        records.push(MountRecord { fstype: spec.fstype.to_string(), target: spec.target.to_string(), outcome });
    }
    Ok(records)
}

/// Why a mount failed; its text is the outcome the mount record keeps (`EBUSY (16)`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum MountError {
    #[error("mkdir failed: {}", sys::errno_text(*.errno))]
    Mkdir { errno: i32 },
    #[error("bad mount spec")]
    Spec,
    #[error("{}", sys::errno_text(*.errno))]
    Mount { errno: i32 },
}

/// Create the mount point and mount; the error's text is the outcome for the record.
fn mount_one(spec: &Spec) -> Result<(), MountError> {
    let target = Path::new(spec.target);
    if !target.is_dir() {
        // On sysfs the kernel creates the tracing mount points itself; when one is missing the
        // filesystem is not built in and mkdir fails, which is the evidence we record.
        std::fs::create_dir_all(target).map_err(|e| MountError::Mkdir { errno: e.raw_os_error().unwrap_or(0) })?;
    }
    let (Ok(src), Ok(dst), Ok(fstype), Ok(data)) =
        (sys::cstring(spec.fstype), sys::cstring(spec.target), sys::cstring(spec.fstype), sys::cstring(spec.data))
    else {
        return Err(MountError::Spec);
    };
    let data_ptr = if spec.data.is_empty() { std::ptr::null() } else { data.as_ptr().cast() };
    // SAFETY: all pointers are NUL-terminated strings (or null data) alive for the call.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fstype.as_ptr(), spec.flags, data_ptr) };
    if rc != 0 {
        return Err(MountError::Mount { errno: sys::errno() });
    }
    Ok(())
}
