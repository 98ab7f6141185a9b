//! Running guests under QEMU: the command line (`qemu`), the accelerator choice (`accel`), the
//! console watcher (`console`), the channel's framing (`channel`), the running machine
//! (`machine`), and the host-root share (`share`: virtio-fs or 9p, `virtiofs`: its daemon).

#![warn(missing_docs)]

pub mod accel;
pub mod channel;
pub mod console;
pub mod error;
pub mod machine;
pub mod qemu;
pub mod share;
pub mod snapshot;
pub mod virtiofs;

pub use accel::{AccelChoice, AccelVerdict};
pub use error::VmError;
pub use machine::{Vm, VmFiles};
pub use qemu::{Accel, QemuConfig};

/// The QEMU binary: `$KMATRIX_QEMU`, else `qemu-system-x86_64` found in PATH (resolved to a full
/// path so its identity can key the accelerator verdict). A missing binary is reported when a VM
/// is started, with how to install it.
pub fn qemu_binary() -> std::path::PathBuf {
    qemu::find_binary("KMATRIX_QEMU", "qemu-system-x86_64")
}
