//! `--cpus N`, `--memory SIZE` and `--disk SIZE`: the guest machine's size as every guest-booting command takes
//! it (`run`, `exec`, `shell`, `selftest`, `bisect`, `rerun`, `boot`, `bench boot`), parsed and
//! bounded once. A value out of bounds is refused by clap naming the flag (exit 2) before
//! anything starts.
//!
//! Not here: what the size does to QEMU (`vm::qemu`), nor the defaults' measurement (see
//! `settings::CPUS`).

use clap::Args;

/// The most CPUs QEMU's x86 `pc` machine takes ("The max CPUs supported by machine
/// 'pc-i440fx-7.2' is 255"); arm64's `virt` with its default GICv2 takes 8, which QEMU itself
/// refuses at the boot, naming the limit.
pub const MAX_CPUS: u32 = 255;

/// The least memory, in MiB, a guest is given: below it Debian's kernels do not reach the
/// agent's `Hello` (measured on debian-6.1 and 6.12 under TCG: see `settings::MEMORY_FLOOR_MB`).
pub const MEMORY_FLOOR_MB: u32 = crate::settings::MEMORY_FLOOR_MB;

/// The most memory a guest is given (QEMU's `pc` machine would take more, but no guest of
/// kmatrix needs it, and a typo of a unit should not reserve the host's RAM).
pub const MEMORY_MAX_MB: u32 = 64 * 1024;

/// `--cpus`, `--memory` and `--disk`.
#[derive(Debug, Args, Clone, Copy, PartialEq, Eq)]
pub struct MachineArgs {
    /// Guest CPUs (QEMU `-smp`; several run in parallel under TCG too: MTTCG), 1 to 255
    /// [default: 1]. Without it, `run` gives the scenarios that need more (`ftrace.percpu.*`: 2)
    /// a guest that has them.
    #[arg(long, value_parser = cpus)]
    pub cpus: Option<u32>,
    /// Guest memory: MiB (`512`) or a size with a unit (`512M`, `1G`, `1536MiB`); at least the
    /// floor Debian's kernels need to boot (`settings::MEMORY_FLOOR_MB`).
    #[arg(long, default_value = "512M", value_parser = memory_mb)]
    pub memory: u32,
    /// A scratch disk of SIZE (`64M`, `1G`; MiB when bare) as `/dev/vda` (virtio-blk): a sparse
    /// file beside the run's console logs, removed with the guest. For block-layer tracing;
    /// without it, `run` gives the scenarios that need one a guest with a 64 MiB disk.
    #[arg(long, value_name = "SIZE", value_parser = disk_bytes)]
    pub disk: Option<u64>,
    /// The guest's network besides `lo`: none (default), or user (QEMU's user-mode network:
    /// `eth0` at 10.0.2.15/24, the host's loopback reachable at 10.0.2.2, outbound connections
    /// through QEMU, nothing reaching in).
    #[arg(long, value_enum, default_value_t = crate::settings::Net::None)]
    pub net: crate::settings::Net,
}

impl MachineArgs {
    /// The guests' settings with this machine, the rest default (see `GuestArgs::settings`).
    pub fn settings(self) -> crate::settings::GuestSettings {
        crate::settings::GuestSettings {
            cpus: self.cpus.unwrap_or(crate::settings::CPUS),
            memory_mb: self.memory,
            disk_bytes: self.disk,
            net: self.net,
            ..Default::default()
        }
    }
}

impl Default for MachineArgs {
    fn default() -> Self {
        MachineArgs { cpus: None, memory: crate::settings::MEMORY_MB, disk: None, net: crate::settings::Net::None }
    }
}

impl MachineArgs {
    /// What `run` may choose per cell: the dimensions these flags leave open (`run::machine`).
    pub fn fit(self) -> crate::run::machine::Fit {
        crate::run::machine::Fit { cpus: self.cpus.is_none(), disk: self.disk.is_none() }
    }
}

/// A `--cpus` value out of bounds, as given.
#[derive(Debug, thiserror::Error)]
pub enum BadMachine {
    /// Not a whole number from 1 to [`MAX_CPUS`].
    #[error("{0:?} is not a number of CPUs from 1 to {MAX_CPUS} (QEMU's pc machine takes at most {MAX_CPUS})")]
    Cpus(String),
    /// Not a size, or one with an unknown unit.
    #[error("{0:?} is not a memory size (MiB, or a number with K, M, G: 512M, 1G)")]
    Memory(String),
    /// A `--disk` size out of bounds.
    #[error("{0:?} is not a disk size from 1 MiB to 1 TiB (MiB, or a number with K, M, G: 64M, 1G)")]
    Disk(String),
    /// A size below the floor the kernels need, or above the bound.
    #[error(
        "{given:?} is {mb} MiB: guests need from {MEMORY_FLOOR_MB} MiB (below it the kernel does not reach \
         the agent) to {MEMORY_MAX_MB} MiB"
    )]
    MemoryBounds {
        /// As given.
        given: String,
        /// In MiB.
        mb: u64,
    },
}

/// `--cpus`: 1 to [`MAX_CPUS`].
pub fn cpus(s: &str) -> Result<u32, BadMachine> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_CPUS).contains(&n) => Ok(n),
        _ => Err(BadMachine::Cpus(s.to_string())),
    }
}

/// `--disk`: a size in bytes, 1 MiB to 1 TiB, whole MiB (units as [`memory_mb`]).
pub fn disk_bytes(s: &str) -> Result<u64, BadMachine> {
    let kib = size_kib(s).ok_or_else(|| BadMachine::Disk(s.to_string()))?;
    if kib % 1024 != 0 || !(1024..=(1u64 << 30)).contains(&kib) {
        return Err(BadMachine::Disk(s.to_string()));
    }
    Ok(kib * 1024)
}

/// `--disk` of `bytes` in `dir` (where the run keeps its files): refused (exit 2) when the file
/// system has less room free, since a guest writing to it would fail half-way with ENOSPC.
pub fn check_disk_room(dir: &std::path::Path, bytes: u64) -> anyhow::Result<()> {
    use crate::exit::{self, ExitContext};
    use anyhow::Context as _;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| anyhow::anyhow!("--disk: {} holds a NUL byte", dir.display()))
        .exit_code(exit::BAD_INPUT)?;
    // SAFETY: statvfs is plain data; zeroed is a valid value for it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs fills one struct we own from a NUL-terminated path.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(anyhow::Error::new(std::io::Error::last_os_error()))
            .with_context(|| format!("--disk: cannot read the free space of {}", dir.display()))
            .exit_code(exit::BAD_INPUT);
    }
    #[allow(clippy::useless_conversion, reason = "the fields' widths differ between targets")]
    let free = u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize));
    if free < bytes {
        return Err(anyhow::anyhow!(
            "--disk {} MiB: {} has only {} MiB free (the scratch file would fill it)",
            bytes >> 20,
            dir.display(),
            free >> 20
        ))
        .exit_code(exit::BAD_INPUT);
    }
    Ok(())
}

/// A size with an optional unit (bare: MiB) in KiB; `None` when it does not parse.
fn size_kib(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit.trim().to_ascii_lowercase().as_str() {
        "k" | "kib" | "kb" => Some(n),
        "" | "m" | "mib" | "mb" => n.checked_mul(1024),
        "g" | "gib" | "gb" => n.checked_mul(1024 * 1024),
        _ => None,
    }
}

/// `--memory`: a size in MiB, [`MEMORY_FLOOR_MB`] to [`MEMORY_MAX_MB`]. A bare number is MiB (as
/// QEMU's `-m` reads it); `K`/`KiB`, `M`/`MiB`, `G`/`GiB` (any case, binary units) otherwise.
pub fn memory_mb(s: &str) -> Result<u32, BadMachine> {
    let kib = size_kib(s).ok_or_else(|| BadMachine::Memory(s.to_string()))?;
    if kib % 1024 != 0 {
        return Err(BadMachine::Memory(s.to_string()));
    }
    let mb = kib / 1024;
    if mb < u64::from(MEMORY_FLOOR_MB) || mb > u64::from(MEMORY_MAX_MB) {
        return Err(BadMachine::MemoryBounds { given: s.to_string(), mb });
    }
    Ok(mb as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_one_to_the_machines_limit() {
        assert_eq!(cpus("1").unwrap(), 1);
        assert_eq!(cpus("255").unwrap(), 255);
        for bad in ["0", "256", "-1", "two", ""] {
            assert!(cpus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_takes_mib_or_units_within_the_bounds() {
        assert_eq!(memory_mb("512").unwrap(), 512);
        assert_eq!(memory_mb("512M").unwrap(), 512);
        assert_eq!(memory_mb("1G").unwrap(), 1024);
        assert_eq!(memory_mb("1536MiB").unwrap(), 1536);
        assert_eq!(memory_mb("262144k").unwrap(), 256);
        assert!(matches!(memory_mb("1T"), Err(BadMachine::Memory(_))));
        assert!(matches!(memory_mb("1000000k1"), Err(BadMachine::Memory(_))));
        assert!(matches!(memory_mb("1023k"), Err(BadMachine::Memory(_))));
        let floor_minus = format!("{}M", MEMORY_FLOOR_MB - 1);
        assert!(matches!(memory_mb(&floor_minus), Err(BadMachine::MemoryBounds { .. })));
        assert!(matches!(memory_mb("65G"), Err(BadMachine::MemoryBounds { .. })));
    }

    #[test]
    fn disks_are_whole_mib_up_to_a_tib_and_need_the_room() {
        assert_eq!(disk_bytes("64M").unwrap(), 64 << 20);
        assert_eq!(disk_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(disk_bytes("16").unwrap(), 16 << 20);
        for bad in ["0", "512k", "2T", "1025G", "x"] {
            assert!(disk_bytes(bad).is_err(), "{bad}");
        }
        let d = tempfile::tempdir().unwrap();
        check_disk_room(d.path(), 1 << 20).unwrap();
        let e = check_disk_room(d.path(), u64::MAX).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), crate::exit::BAD_INPUT);
        assert!(format!("{e:#}").contains("MiB free"), "{e:#}");
    }
}
