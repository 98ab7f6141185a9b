//! The scratch disk (`--disk SIZE`): a virtio-blk device the host attaches and names on the
//! kernel command line (`kmatrix.disk`), whose driver (`virtio_blk`, a module on Debian's 5.10
//! and 6.1) the agent loads before `Hello` from the image's `kmatrix-disk.load`. Nothing is
//! mounted on it: block-layer scenarios (`ftrace.event.block_rq_direct_io`) use the raw device.

use crate::modules;
use std::path::Path;

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
