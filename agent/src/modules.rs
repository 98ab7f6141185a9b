//! Loading the kernel modules the host put in the image (virtio transport, virtio-serial, ...).
//!
//! The host lists them in `/lib/modules/kmatrix.load`, one path a line, already decompressed and
//! in dependency order, so loading is a plain `finit_module` per line. A module that fails to load
//! is recorded, never fatal: the agent falls back to the 8250 serial port, which every kernel has
//! built in. Working out dependencies is the host's job, not this module's.

use crate::sys;
use kmatrix_proto::ModuleLoad;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Instant;

/// The list the image builder writes.
pub const LOAD_LIST: &str = "/lib/modules/kmatrix.load";

/// Load every module named in `list` (absent list: nothing to load).
pub fn load_listed(list: &Path) -> Vec<ModuleLoad> {
    let Ok(text) = std::fs::read_to_string(list) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|path| load_one(Path::new(path)))
        .collect()
}

fn load_one(path: &Path) -> ModuleLoad {
    let started = Instant::now();
    let outcome = match File::open(path) {
        Err(e) => format!("open failed: {}", sys::errno_text(e.raw_os_error().unwrap_or(0))),
        Ok(file) => {
            // SAFETY: finit_module reads the module from an open fd we own; the params string is
            // an empty NUL-terminated literal and flags are 0.
            let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), c"".as_ptr(), 0 as libc::c_int) };
            if rc == 0 {
                "ok".to_string()
            } else {
                match sys::errno() {
                    libc::EEXIST => "exists".to_string(),
                    e => sys::errno_text(e),
                }
            }
        }
    };
    ModuleLoad { name: module_name(path), outcome, ms: started.elapsed().as_millis() as u64 }
}

/// `virtio_pci` from `/lib/modules/.../virtio_pci.ko` (or `.ko.xz`, `.ko.zst`).
fn module_name(path: &Path) -> String {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    match file.find(".ko") {
        Some(i) => file[..i].to_string(),
        None => file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_name_strips_directory_and_suffix() {
        assert_eq!(module_name(Path::new("/lib/modules/6.1/kernel/drivers/virtio/virtio_pci.ko")), "virtio_pci");
        assert_eq!(module_name(Path::new("virtio_console.ko.xz")), "virtio_console");
    }

    #[test]
    fn missing_list_loads_nothing() {
        assert!(load_listed(Path::new("/nonexistent/kmatrix.load")).is_empty());
    }
}
