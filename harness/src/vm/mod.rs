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

/// Which QEMU a guest of an architecture runs in, under which accelerator, with which firmware,
/// and how long it gets to reach `Hello`. The one statement of the foreign-architecture rule:
/// another architecture's guest runs in its own QEMU, under TCG whatever the host's accelerator,
/// without firmware, and boots several times slower; a KVM guest is held to
/// [`accel::KVM_HELLO_DEADLINE`] (that boot is the proof KVM works), and until a boot has proven
/// KVM on this host, to its first console byte within [`accel::KVM_FIRST_OUTPUT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    /// The QEMU binary.
    pub qemu: std::path::PathBuf,
    /// The accelerator.
    pub accel: Accel,
    /// The firmware (`-bios`): qboot when installed, for the host's architecture only.
    pub bios: Option<std::path::PathBuf>,
    /// QEMU start → `Hello` before the boot counts as failed.
    pub hello_deadline: std::time::Duration,
    /// QEMU start → the first console byte before the boot counts as an accelerator failure:
    /// set for the proof boot of a KVM not yet proven on this host
    /// ([`accel::KVM_FIRST_OUTPUT`]; see [`QemuConfig::first_output`]).
    pub first_output: Option<std::time::Duration>,
}

/// How much longer a guest of another architecture gets to reach `Hello` (arm64 under TCG).
const FOREIGN_BOOT_FACTOR: u32 = 3;

impl Emulator {
    /// For a guest of `arch` on this host, whose own QEMU is `host_qemu` and accelerator
    /// `host_accel` (`proven`: a real kernel has reached `Hello` under it here), given
    /// `boot_timeout` (the settings').
    pub fn for_arch(
        arch: crate::kernel::Arch,
        host_qemu: &std::path::Path,
        (host_accel, proven): (Accel, bool),
        boot_timeout: std::time::Duration,
    ) -> Emulator {
        if !arch.is_host() {
            return Emulator {
                qemu: qemu::binary_for(arch),
                accel: Accel::Tcg,
                bios: None,
                hello_deadline: boot_timeout * FOREIGN_BOOT_FACTOR,
                first_output: None,
            };
        }
        let hello_deadline = match host_accel {
            Accel::Kvm => boot_timeout.min(accel::KVM_HELLO_DEADLINE),
            Accel::Tcg => boot_timeout,
        };
        Emulator {
            qemu: host_qemu.to_path_buf(),
            accel: host_accel,
            bios: qemu::default_bios(host_qemu),
            hello_deadline,
            first_output: (host_accel == Accel::Kvm && !proven).then_some(accel::KVM_FIRST_OUTPUT),
        }
    }
}
