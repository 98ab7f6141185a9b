//! The scratch disk (`--disk SIZE`): a virtio-blk device the host attaches and names on the
//! kernel command line (`kmatrix.disk`), whose driver (`virtio_blk`, a module on Debian's 5.10
//! and 6.1) the agent loads before `Hello` from the image's `kmatrix-disk.load`. Nothing is
//! mounted on it: block-layer scenarios (`ftrace.event.block_rq_direct_io`, `bpf.block.rq_latency`)
//! use the raw device, its `dev_t` and its `/sys/block/<disk>/stat` accounting (here).

use crate::modules;
use anyhow::{Context, Result};
use std::path::Path;

/// The scratch disk as the kernel names it (the first virtio-blk device).
pub const DISK: &str = "vda";

/// The image's list of the disk driver's modules, in load order.
pub const LOAD_LIST: &str = "/lib/modules/kmatrix-disk.load";

/// Load the disk driver when the host attached a disk; what was loaded, for the console.
pub fn preload() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline.split_whitespace().find(|w| *w == "kmatrix.disk")?;
    let loaded = modules::load_listed(Path::new(LOAD_LIST));
    let said: Vec<String> = loaded.iter().map(|m| format!("{} {} ({} ms)", m.name, m.outcome, m.ms)).collect();
    Some(format!("scratch disk modules: {}", said.join(", ")))
}

/// Completed reads and writes of `/sys/block/<disk>/stat` (its fields 1 and 5).
pub fn stat(disk: &str) -> Result<(u64, u64)> {
    let path = format!("/sys/block/{disk}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read({path}) failed"))?;
    let f: Vec<u64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    anyhow::ensure!(f.len() >= 5, "{path} has {} fields: {text:?}", f.len());
    Ok((f[0], f[4]))
}

/// The kernel's `dev_t` of `/sys/block/<disk>/dev` (`254:0`), as the event's `dev` field holds
/// it: `MKDEV(major, minor)` = major << 20 | minor.
pub fn dev_t(disk: &str) -> Result<u64> {
    let path = format!("/sys/block/{disk}/dev");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read({path}) failed"))?;
    let (major, minor) = text.trim().split_once(':').with_context(|| format!("{path}: {text:?}"))?;
    Ok((major.parse::<u64>()? << 20) | minor.parse::<u64>()?)
}
