//! A guest's settings: the one type that says what kind of guest to start — its machine (CPUs,
//! memory, scratch disk), kernel command line, channel, snapshot mode, boot deadline and how the
//! host root reaches it — with the defaults written once, here. The CLI turns its flags into a
//! [`GuestSettings`]; `run`, `exec`, `shell`, `selftest`, `bench`, `bisect`, `rerun`, the cargo test
//! harness and the tests hand it, unchanged, to the session (`session.rs`), which resolves it for
//! one boot of one kernel (QEMU binary, accelerator, console log, share plan: `guest::GuestOptions`).
//!
//! Not here: which QEMU or accelerator (the session's), where kernels come from (`kernel`), what
//! runs in the guest.

#![warn(missing_docs)]

use crate::image::ImageOptions;
use crate::vm::share::{ExtraShare, ShareError, ShareMode, SharePlan};
use std::path::Path;
use std::time::Duration;

/// QEMU start → the agent's `Hello` (TCG; KVM boots are held to
/// [`crate::vm::accel::KVM_HELLO_DEADLINE`]). A cold TCG boot takes 2-4 s on a 2-core host; the
/// margin is for two guests booting at once on a busy machine.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// One scenario's answer.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// One kernel's whole run (all its VMs).
pub const VM_TIMEOUT: Duration = Duration::from_secs(1200);
/// Guest memory in MiB (`--memory`).
pub const MEMORY_MB: u32 = 512;
/// The least guest memory in MiB that `--memory` takes: below it a Debian kernel does not reach
/// the agent's `Hello` (measured under TCG with 2 CPUs: Debian 6.1 and 6.12 reach it with 96 MiB,
/// 6.1 panics "System is deadlocked on memory" with 88; see docs/machine.md).
pub const MEMORY_FLOOR_MB: u32 = 96;
/// Guest CPUs (`--cpus`), chosen from measurement (docs/machine.md): on this shared 2-core TCG
/// host a second vCPU bought nothing measurable (debian-6.1's core lane 47 s vs 93 s in one round,
/// 113 s vs 75 s in the next; restore 0.5-0.7 s either way) while it can only add contention, so
/// one is the default and the core lane and restore keep the machine they were measured on;
/// scenarios that need two say so (`at least 2 online CPUs`) and run with `--cpus 2`.
pub const CPUS: u32 = 1;

/// The channel the agent answers on (`--channel virtio|serial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Channel {
    /// virtio-serial; the 8250 when the kernel lacks the driver.
    #[default]
    Virtio,
    /// The 8250 UART: no modules to load.
    Serial,
}

/// Whether guests start from a snapshot taken at the agent's `Hello` (`--snapshot on|off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    /// Always (`--snapshot on`).
    On,
    /// Never: every guest boots cold (`--snapshot off`).
    Off,
    /// On unless `KMATRIX_SNAPSHOT` is `0`, `off` or `no`: what a command that starts guests
    /// from snapshots does when `--snapshot` is not given.
    #[default]
    Auto,
}

// By hand rather than derived: the flags' help lists the bare values, as it always has (a
// derive would print each variant's doc there).
impl clap::ValueEnum for Channel {
    fn value_variants<'a>() -> &'a [Self] {
        &[Channel::Virtio, Channel::Serial]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Channel::Virtio => "virtio",
            Channel::Serial => "serial",
        }))
    }
}

impl clap::ValueEnum for SnapshotMode {
    /// `auto` is no flag's value: it is what no `--snapshot` means.
    fn value_variants<'a>() -> &'a [Self] {
        &[SnapshotMode::On, SnapshotMode::Off]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            SnapshotMode::On => Some(clap::builder::PossibleValue::new("on")),
            SnapshotMode::Off => Some(clap::builder::PossibleValue::new("off")),
            SnapshotMode::Auto => None,
        }
    }
}

impl SnapshotMode {
    /// Whether guests start from snapshots, the environment consulted for [`SnapshotMode::Auto`].
    pub fn enabled(self) -> bool {
        match self {
            SnapshotMode::On => true,
            SnapshotMode::Off => false,
            SnapshotMode::Auto => {
                !matches!(std::env::var("KMATRIX_SNAPSHOT").as_deref(), Ok("0") | Ok("off") | Ok("no"))
            }
        }
    }
}

/// See the module doc. `Default` is every default of every command that starts guests.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestSettings {
    /// Guest CPUs (`--cpus`).
    pub cpus: u32,
    /// Guest RAM in MiB (`--memory`).
    pub memory_mb: u32,
    /// A scratch disk of this many bytes (`--disk`): a sparse file beside the console log,
    /// attached as virtio-blk (`/dev/vda`) and removed with the guest.
    pub disk_bytes: Option<u64>,
    /// Extra kernel command line words (`--append`).
    pub append: Vec<String>,
    /// The channel the agent answers on; also what the image carries for it.
    pub channel: Channel,
    /// Start guests from snapshots taken at `Hello` (see `vm::snapshot`).
    pub snapshot: SnapshotMode,
    /// QEMU start → `Hello` before the boot counts as failed (a guest of another architecture
    /// gets longer: `vm::Emulator`).
    pub boot_timeout: Duration,
    /// How guests that share the host root get it (`--share`).
    pub share: ShareMode,
    /// The guest's network besides `lo` (`--net`).
    pub net: Net,
}

/// A guest's network besides `lo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Net {
    /// None: the guest reaches nothing outside (the default).
    #[default]
    None,
    /// QEMU's user-mode network: a virtio-net `eth0` at 10.0.2.15/24, the host's loopback at
    /// 10.0.2.2 (its gateway), outbound TCP/UDP through QEMU; nothing reaches in.
    User,
}

impl Default for GuestSettings {
    fn default() -> Self {
        GuestSettings {
            cpus: CPUS,
            memory_mb: MEMORY_MB,
            disk_bytes: None,
            append: Vec::new(),
            channel: Channel::Virtio,
            snapshot: SnapshotMode::Auto,
            boot_timeout: BOOT_TIMEOUT,
            share: ShareMode::Auto,
            net: Net::None,
        }
    }
}

impl GuestSettings {
    /// Whether guests start from snapshots ([`SnapshotMode::enabled`]).
    pub fn snapshots(&self) -> bool {
        self.snapshot.enabled()
    }

    /// What goes into a kernel's image for these guests: the channel's modules, and the share's
    /// when guests share the host root.
    pub fn image_options(&self, share: bool) -> ImageOptions {
        ImageOptions { virtio_channel: self.channel == Channel::Virtio, share }
    }

    /// How a guest of `kernel` (its config at `config`) that shares the host root, and `extra`
    /// directories, gets it: `--share` on this host, knowing whether the guest starts from a
    /// snapshot; a forced virtio-fs that cannot be had is an error.
    pub fn share_plan(
        &self,
        kernel: &str,
        config: Option<&Path>,
        extra: Vec<ExtraShare>,
    ) -> Result<SharePlan, ShareError> {
        crate::vm::share::choose_here(self.share, self.snapshots(), kernel, config, extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_modes_say_on_and_off_whatever_the_environment() {
        assert!(SnapshotMode::On.enabled());
        assert!(!SnapshotMode::Off.enabled());
        let d = GuestSettings::default();
        assert_eq!(
            (d.cpus, d.memory_mb, d.channel, d.snapshot),
            (CPUS, MEMORY_MB, Channel::Virtio, SnapshotMode::Auto)
        );
        assert!(d.image_options(false).virtio_channel);
        let serial = GuestSettings { channel: Channel::Serial, ..d };
        assert!(!serial.image_options(true).virtio_channel && serial.image_options(true).share);
    }
}
