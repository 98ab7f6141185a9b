//! Which guest machine each cell of a run gets: what a scenario needs of the machine (at least N
//! CPUs, a scratch disk), read once from the catalogue's requirement texts, and where a run
//! places each cell when the user did not fix the machine (`--cpus`, `--disk`): a scenario the
//! run's own machine does not meet goes to one fitted machine per kernel that meets every such
//! scenario of that kernel, so a plain `kmatrix run` judges per-CPU and block-layer paths instead
//! of calling them `unsupported`. An explicit flag wins: that dimension is never changed, and
//! the host's machine-gap verdict (`verdict::machine_unmet`) judges what the user asked for.
//!
//! Not here: booting (the scheduler hands each guest its settings), judging (`verdict`).

use crate::settings::GuestSettings;

/// The scratch disk a fitted machine gets: the block scenarios write and read a few hundred KiB
/// with `O_DIRECT`; the file is sparse, so its size costs nothing until written.
pub const FIT_DISK_BYTES: u64 = 64 << 20;

/// What a scenario needs of the guest machine (not of the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// At least this many online CPUs (0 or 1: any machine).
    pub cpus: u32,
    /// A scratch block device.
    pub disk: bool,
}

/// The CPUs a requirement text asks for: `at least N online CPUs (--cpus N)` (the agent's
/// `Req::Cpus`), else `None`.
pub fn cpus_needed(req: &str) -> Option<u32> {
    req.strip_prefix("at least ")?.split_once(" online CPUs")?.0.parse().ok()
}

/// Whether a requirement text asks for the scratch disk (`block device /dev/vda ...`, the
/// agent's `Req::BlockDevice`).
pub fn is_disk(req: &str) -> bool {
    req.starts_with("block device ")
}

impl Needs {
    /// The machine needs among a scenario's requirement texts (`ScenarioInfo::requires`).
    pub fn of(requires: &[String]) -> Needs {
        requires.iter().fold(Needs::default(), |n, req| Needs {
            cpus: n.cpus.max(cpus_needed(req).unwrap_or(0)),
            disk: n.disk || is_disk(req),
        })
    }

    /// Whether a guest of `m` meets these needs.
    pub fn met_by(&self, m: Machine) -> bool {
        m.cpus >= self.cpus && (!self.disk || m.disk_bytes.is_some())
    }
}

/// Which dimensions of the machine a run may choose per cell: those the user did not fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// Raise the CPUs for a scenario that needs more (no `--cpus` given).
    pub cpus: bool,
    /// Add a scratch disk for a scenario that needs one (no `--disk` given).
    pub disk: bool,
}

impl Fit {
    /// Every cell gets the machine it needs (a run without `--cpus` or `--disk`).
    pub const ALL: Fit = Fit { cpus: true, disk: true };
    /// Every cell gets the run's machine as it is (a rerun replays what each result recorded).
    pub const NONE: Fit = Fit { cpus: false, disk: false };
}

/// The part of a guest's machine a cell's placement changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Machine {
    /// QEMU `-smp`.
    pub cpus: u32,
    /// The scratch disk's size, if any.
    pub disk_bytes: Option<u64>,
}

impl Machine {
    /// The machine of `s`.
    pub fn of(s: &GuestSettings) -> Machine {
        Machine { cpus: s.cpus, disk_bytes: s.disk_bytes }
    }

    /// `base` with this machine.
    pub fn apply(self, base: &GuestSettings) -> GuestSettings {
        GuestSettings { cpus: self.cpus, disk_bytes: self.disk_bytes, ..base.clone() }
    }
}

/// The machine of each of one kernel's cells (`needs`, in order): the run's own (`base`) where
/// it meets the cell's needs or `fit` lets nothing change; else one fitted machine shared by all
/// such cells of the kernel, `base` raised to the most CPUs any of them needs and given a disk
/// if any needs one (as far as `fit` allows), so a kernel boots at most two kinds of guest.
pub fn place(base: Machine, fit: Fit, needs: &[Needs]) -> Vec<Machine> {
    let unmet: Vec<&Needs> = needs.iter().filter(|n| !n.met_by(base)).collect();
    let mut fitted = base;
    if fit.cpus {
        fitted.cpus = unmet.iter().map(|n| n.cpus).fold(base.cpus, u32::max);
    }
    if fit.disk && base.disk_bytes.is_none() && unmet.iter().any(|n| n.disk) {
        fitted.disk_bytes = Some(FIT_DISK_BYTES);
    }
    needs.iter().map(|n| if n.met_by(base) { base } else { fitted }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reqs(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn needs_are_read_from_the_catalogues_requirement_texts() {
        let percpu = reqs(&["at least 2 online CPUs (--cpus 2)", "tracefs mounted"]);
        assert_eq!(Needs::of(&percpu), Needs { cpus: 2, disk: false });
        let block = reqs(&["block device /dev/vda (the scratch disk: --disk SIZE)", "event block/block_rq_issue"]);
        assert_eq!(Needs::of(&block), Needs { cpus: 0, disk: true });
        assert_eq!(Needs::of(&reqs(&["at least many online CPUs", "machine: hardware PMU"])), Needs::default());
    }

    #[test]
    fn cells_the_runs_machine_does_not_meet_share_one_fitted_machine() {
        let base = Machine { cpus: 1, disk_bytes: None };
        let needs = [
            Needs::default(),
            Needs { cpus: 2, disk: false },
            Needs { cpus: 0, disk: true },
            Needs { cpus: 1, disk: false },
        ];
        let fitted = Machine { cpus: 2, disk_bytes: Some(FIT_DISK_BYTES) };
        assert_eq!(place(base, Fit::ALL, &needs), vec![base, fitted, fitted, base]);
        // Nothing needs more: every cell keeps the run's machine.
        assert_eq!(place(base, Fit::ALL, &[Needs::default(); 2]), vec![base; 2]);
        // An explicit flag wins: --cpus 1 keeps one CPU, the disk is still added.
        let disk_only = Fit { cpus: false, disk: true };
        let with_disk = Machine { cpus: 1, disk_bytes: Some(FIT_DISK_BYTES) };
        assert_eq!(place(base, disk_only, &needs), vec![base, with_disk, with_disk, base]);
        assert_eq!(place(base, Fit::NONE, &needs), vec![base; 4]);
        // --disk 128M: the user's disk is kept, the CPUs still fitted.
        let big = Machine { cpus: 1, disk_bytes: Some(128 << 20) };
        let cpus_only = Fit { cpus: true, disk: false };
        assert_eq!(
            place(big, cpus_only, &needs),
            vec![big, Machine { cpus: 2, disk_bytes: Some(128 << 20) }, big, big]
        );
    }
}
