//! Replaying cells of a results file (`kmatrix rerun`): which cells, on which exact build, under
//! which accelerator, with which parameters — everything decided from what each result recorded
//! (see `ScenarioResult::build` and `params`), so a cell from a CI shard runs here as it ran there.
//! Also the `kmatrix rerun` command line a report prints for a failed cell.
//!
//! Not here: booting and judging (the scheduler and `matrix::execute` do that for a rerun as for
//! any run), nor the shell at the point of failure (`cli/rerun.rs`).

use super::scheduler::{KernelPlan, Planned};
use crate::kernel::{KernelSpec, Lock};
use crate::vm::AccelChoice;
use kmatrix_proto::{ScenarioResult, Status};

/// Why cells of a results file cannot be run again; each names the cell and what to do instead.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RerunError {
    /// The selection picked no cell of the file.
    #[error("{source_name} has no result{filter}")]
    NoMatch {
        /// The results file, as the user named it.
        source_name: String,
        /// The selection in words (` that failed, on kernel debian-6.1`), empty for none.
        filter: String,
    },
    /// The result predates recorded builds, so its exact kernel is unknown.
    #[error(
        "{kernel} {scenario} records no kernel build (written by a kmatrix from before results recorded \
         builds): run it again with `kmatrix run --kernels {kernel} --scenarios {scenario}`"
    )]
    NoBuild {
        /// The cell's kernel label.
        kernel: String,
        /// The cell's scenario id.
        scenario: String,
    },
    /// The recorded build does not parse as a kernel spec (a hand-edited or foreign file).
    #[error("{kernel} {scenario} records the kernel build {spec:?}, which is not a kernel spec: {detail}")]
    BadBuild {
        /// The cell's kernel label.
        kernel: String,
        /// The cell's scenario id.
        scenario: String,
        /// The recorded build spec.
        spec: String,
        /// The spec parser's error.
        detail: String,
    },
    /// The cell ran a `--bpf-object` the results file does not contain.
    #[error(
        "{kernel} {scenario} ran the user's BPF object, which a results file does not hold: run it again \
         with `kmatrix run --kernels {spec} --bpf-object <the object> ...`"
    )]
    UserObject {
        /// The cell's kernel label.
        kernel: String,
        /// The cell's scenario id.
        scenario: String,
        /// The recorded build spec, for the command to suggest.
        spec: String,
    },
    /// The cell is a kernel selftest case, which `kmatrix selftest` runs, not `kmatrix rerun`.
    #[error(
        "{kernel} {scenario} is a case of the kernel's own selftests: run it again with \
         `kmatrix selftest ftrace --kernels {spec}`"
    )]
    Selftest {
        /// The cell's kernel label.
        kernel: String,
        /// The cell's scenario id.
        scenario: String,
        /// The recorded build spec, for the command to suggest.
        spec: String,
    },
    /// The recorded accelerator is not one [`AccelChoice`] parses (a newer kmatrix wrote it).
    #[error("{kernel} {scenario} ran under the accelerator {accel:?}, which this kmatrix does not know")]
    UnknownAccel {
        /// The cell's kernel label.
        kernel: String,
        /// The cell's scenario id.
        scenario: String,
        /// The recorded accelerator name.
        accel: String,
    },
}

/// Which cells of a results file to run again.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only `fail`, `error` and `flaky` cells.
    pub failed: bool,
    /// Kernel id globs (`debian-6.1`, `debian-*`), or a build's spec (`debian:6.1.176-1`).
    pub kernel: Option<String>,
    /// Scenario id globs, comma-separated.
    pub scenario: Option<String>,
}

impl Selection {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.failed {
            parts.push("that failed".to_string());
        }
        if let Some(k) = &self.kernel {
            parts.push(format!("on kernel {k}"));
        }
        if let Some(s) = &self.scenario {
            parts.push(format!("of scenario {s}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" {}", parts.join(", "))
        }
    }
}

/// A cell that failed (flaky ones failed once): what `--failed` and the report's rerun lines pick.
pub fn failed(r: &ScenarioResult) -> bool {
    matches!(r.status, Status::Fail | Status::Error | Status::Flaky)
}

/// The cells of `results` that `sel` picks, in file order; a cell listed twice (a merged file,
/// an appended rerun) counts once, as its last line says. `source_name` names the file in the
/// error when nothing matches.
pub fn select<'a>(
    results: &'a [ScenarioResult],
    sel: &Selection,
    source_name: &str,
) -> Result<Vec<&'a ScenarioResult>, RerunError> {
    let mut last: Vec<&ScenarioResult> = Vec::new();
    for r in results {
        match last.iter_mut().find(|c| c.kernel == r.kernel && c.scenario == r.scenario) {
            Some(c) => *c = r,
            None => last.push(r),
        }
    }
    let picked: Vec<&ScenarioResult> = last
        .into_iter()
        .filter(|r| !sel.failed || failed(r))
        .filter(|r| {
            sel.kernel
                .as_deref()
                .is_none_or(|k| super::matches_any(k, &r.kernel) || r.build.as_ref().is_some_and(|b| b.spec == k))
        })
        .filter(|r| sel.scenario.as_deref().is_none_or(|s| super::matches_any(s, &r.scenario)))
        .collect();
    if picked.is_empty() {
        return Err(RerunError::NoMatch { source_name: source_name.to_string(), filter: sel.describe() });
    }
    Ok(picked)
}

/// The spec to boot for `r`: its kernel id when `lock` pins that id to the very build the result
/// ran on (same package version and `.deb` hash: no mirror needed), else the build's own spec.
pub fn boot_spec(r: &ScenarioResult, lock: Option<&Lock>) -> Result<String, RerunError> {
    let b = r
        .build
        .as_ref()
        .ok_or_else(|| RerunError::NoBuild { kernel: r.kernel.clone(), scenario: r.scenario.clone() })?;
    let spec: KernelSpec = b.spec.parse().map_err(|e: crate::kernel::KernelError| RerunError::BadBuild {
        kernel: r.kernel.clone(),
        scenario: r.scenario.clone(),
        spec: b.spec.clone(),
        detail: e.to_string(),
    })?;
    if r.scenario == crate::bpf_object::SCENARIO {
        return Err(RerunError::UserObject {
            kernel: r.kernel.clone(),
            scenario: r.scenario.clone(),
            spec: b.spec.clone(),
        });
    }
    if r.scenario.starts_with("selftest.ftrace.") {
        return Err(RerunError::Selftest {
            kernel: r.kernel.clone(),
            scenario: r.scenario.clone(),
            spec: b.spec.clone(),
        });
    }
    if let (KernelSpec::Debian(version), Some(locked)) = (&spec, lock.and_then(|l| l.kernels.get(&r.kernel))) {
        let same_deb = locked.packages.iter().any(|p| p.name == locked.image && Some(&p.sha256) == b.sha256.as_ref());
        if &locked.version == version && same_deb {
            return Ok(r.kernel.clone());
        }
    }
    Ok(b.spec.clone())
}

/// The accelerator `r` ran under, as a choice that forces it again (`auto` when not recorded).
pub fn accel_of(r: &ScenarioResult) -> Result<AccelChoice, RerunError> {
    match r.accel.as_str() {
        "" => Ok(AccelChoice::Auto),
        a => a.parse().map_err(|_| RerunError::UnknownAccel {
            kernel: r.kernel.clone(),
            scenario: r.scenario.clone(),
            accel: a.to_string(),
        }),
    }
}

/// The guest machine `r` ran in, (CPUs, MiB, scratch disk MiB): as recorded, else what every
/// guest had before results recorded it (one CPU, 512 MiB, no disk).
pub fn machine_of(r: &ScenarioResult) -> (u32, u32, Option<u64>) {
    (r.cpus.unwrap_or(1), r.memory_mb.unwrap_or(512), r.disk_mb)
}

/// One accelerator's and machine's share of a rerun: the kernels to boot and their cells.
#[derive(Debug, Clone)]
pub struct Group {
    /// The accelerator these cells run under (forced, so a TCG cell is not rerun under KVM).
    pub accel: AccelChoice,
    /// The guest's (CPUs, MiB, disk MiB) the cells ran in ([`machine_of`]), so a cell that
    /// needed two CPUs or a disk is not rerun without.
    pub machine: (u32, u32, Option<u64>),
    /// The kernels to boot under it, each with its cells and their recorded parameters.
    pub plan: Vec<KernelPlan>,
}

/// The plan that runs `cells` again: grouped by accelerator (`force` overrides what they ran
/// under) and guest machine, then by kernel and build, in file order, each scenario with its recorded parameters.
pub fn plan(
    cells: &[&ScenarioResult],
    lock: Option<&Lock>,
    force: Option<AccelChoice>,
) -> Result<Vec<Group>, RerunError> {
    let mut groups: Vec<Group> = Vec::new();
    for r in cells {
        let spec = boot_spec(r, lock)?;
        let accel = match force {
            Some(a) => a,
            None => accel_of(r)?,
        };
        let machine = machine_of(r);
        let gi = match groups.iter().position(|g| g.accel == accel && g.machine == machine) {
            Some(i) => i,
            None => {
                groups.push(Group { accel, machine, plan: Vec::new() });
                groups.len() - 1
            }
        };
        let g = &mut groups[gi];
        // The machine is the one the result recorded (the group's), not fitted again.
        let planned = Planned { scenario: r.scenario.clone(), params: r.params.clone(), needs: Default::default() };
        match g.plan.iter_mut().find(|k| k.label == r.kernel && k.spec == spec) {
            Some(k) => k.scenarios.push(planned),
            None => g.plan.push(KernelPlan { label: r.kernel.clone(), spec, scenarios: vec![planned] }),
        }
    }
    Ok(groups)
}

/// `s` as one shell word.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command that runs `r` again from the results at `run` (a run directory or results.jsonl).
pub fn command_line(run: &str, r: &ScenarioResult) -> String {
    format!(
        "kmatrix rerun {} --kernel {} --scenario {}",
        shell_word(run),
        shell_word(&r.kernel),
        shell_word(&r.scenario)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmatrix_proto::KernelBuild;

    fn cell(kernel: &str, scenario: &str, status: Status, spec: Option<&str>, accel: &str) -> ScenarioResult {
        let mut r = ScenarioResult::new(scenario, status, "").on_kernel(kernel);
        r.accel = accel.into();
        r.build = spec.map(|s| KernelBuild { spec: s.into(), sha256: Some("a".repeat(64)), ..Default::default() });
        r.params.insert("count".into(), format!("{}", scenario.len()));
        r
    }

    #[test]
    fn selects_failed_cells_by_kernel_and_scenario_last_line_wins() {
        let rs = vec![
            cell("debian-6.1", "a.b.c", Status::Fail, Some("debian:6.1.176-1"), "tcg"),
            cell("debian-6.1", "a.b.d", Status::Pass, Some("debian:6.1.176-1"), "tcg"),
            cell("debian-6.12", "a.b.c", Status::Error, Some("debian:6.12.57-1"), "tcg"),
            // Appended by a later rerun: the cell passed since.
            cell("debian-6.1", "a.b.c", Status::Pass, Some("debian:6.1.176-1"), "tcg"),
        ];
        let failed = Selection { failed: true, ..Default::default() };
        let got = select(&rs, &failed, "r.jsonl").unwrap();
        assert_eq!(
            got.iter().map(|r| (r.kernel.as_str(), r.scenario.as_str())).collect::<Vec<_>>(),
            [("debian-6.12", "a.b.c")]
        );
        let by_build =
            Selection { kernel: Some("debian:6.1.176-1".into()), scenario: Some("a.b.*".into()), ..Default::default() };
        assert_eq!(select(&rs, &by_build, "r.jsonl").unwrap().len(), 2);
        let none = Selection { failed: true, kernel: Some("debian-5.10".into()), ..Default::default() };
        assert_eq!(
            select(&rs, &none, "r.jsonl").unwrap_err().to_string(),
            "r.jsonl has no result that failed, on kernel debian-5.10"
        );
    }

    #[test]
    fn plans_exact_builds_per_accelerator_with_recorded_params() {
        let a = cell("debian-6.1", "a.b.c", Status::Fail, Some("debian:6.1.176-1"), "tcg");
        let b = cell("debian-6.1", "x.y.zz", Status::Fail, Some("debian:6.1.176-1"), "tcg");
        let c = cell("debian-6.12", "a.b.c", Status::Fail, Some("debian:6.12.57-1"), "kvm");
        let groups = plan(&[&a, &b, &c], None, None).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].accel, AccelChoice::Tcg);
        assert_eq!(groups[0].plan.len(), 1);
        assert_eq!(groups[0].plan[0].label, "debian-6.1");
        assert_eq!(groups[0].plan[0].spec, "debian:6.1.176-1");
        assert_eq!(groups[0].plan[0].scenarios[1].params["count"], "6");
        assert_eq!((groups[1].accel, groups[1].plan[0].spec.as_str()), (AccelChoice::Kvm, "debian:6.12.57-1"));
        let forced = plan(&[&a, &c], None, Some(AccelChoice::Tcg)).unwrap();
        assert_eq!(forced.len(), 1);
        assert_eq!(forced[0].plan.len(), 2);
        // A result of a 2-CPU guest is not rerun with an older result's single CPU.
        let mut two = cell("debian-6.1", "x.y.zz", Status::Fail, Some("debian:6.1.176-1"), "tcg");
        (two.cpus, two.memory_mb) = (Some(2), Some(512));
        let split = plan(&[&a, &two], None, None).unwrap();
        assert_eq!(split.iter().map(|g| g.machine).collect::<Vec<_>>(), [(1, 512, None), (2, 512, None)]);
    }

    #[test]
    fn a_lock_that_pins_the_same_build_boots_the_id_else_the_build() {
        let toml = r#"
version = 1
[kernels."debian-6.1"]
suite = "bookworm"
image = "linux-image-6.1.0-50-amd64"
version = "6.1.176-1"
release = "6.1.0-50-amd64"
signature = "good"
[[kernels."debian-6.1".packages]]
name = "linux-image-6.1.0-50-amd64"
version = "6.1.176-1"
filename = "pool/x.deb"
size = 1
sha256 = "{sha}"
[kernels."debian-6.1".files]
"#
        .replace("{sha}", &"a".repeat(64));
        let lock = Lock::parse(&toml, "kernels.lock").unwrap();
        let same = cell("debian-6.1", "a.b.c", Status::Fail, Some("debian:6.1.176-1"), "tcg");
        assert_eq!(boot_spec(&same, Some(&lock)).unwrap(), "debian-6.1");
        let older = cell("debian-6.1", "a.b.c", Status::Fail, Some("debian:6.1.170-3"), "tcg");
        assert_eq!(boot_spec(&older, Some(&lock)).unwrap(), "debian:6.1.170-3");
        let mut rebuilt = same.clone();
        rebuilt.build.as_mut().unwrap().sha256 = Some("b".repeat(64));
        assert_eq!(boot_spec(&rebuilt, Some(&lock)).unwrap(), "debian:6.1.176-1");
    }

    #[test]
    fn cells_that_cannot_be_replayed_say_why() {
        let old = cell("debian-6.1", "a.b.c", Status::Fail, None, "tcg");
        let e = boot_spec(&old, None).unwrap_err().to_string();
        assert!(
            e.contains("records no kernel build") && e.contains("kmatrix run --kernels debian-6.1 --scenarios a.b.c"),
            "{e}"
        );
        let obj = cell("debian-6.1", crate::bpf_object::SCENARIO, Status::Fail, Some("debian:6.1.176-1"), "tcg");
        assert!(matches!(boot_spec(&obj, None), Err(RerunError::UserObject { .. })));
        let st = cell("debian-6.1", "selftest.ftrace.00basic.basic1", Status::Fail, Some("debian:6.1.176-1"), "tcg");
        assert!(boot_spec(&st, None)
            .unwrap_err()
            .to_string()
            .contains("kmatrix selftest ftrace --kernels debian:6.1.176-1"));
        let weird = cell("debian-6.1", "a.b.c", Status::Fail, Some("debian:6.1.176-1"), "hvf");
        assert!(matches!(accel_of(&weird), Err(RerunError::UnknownAccel { .. })));
        let bad = cell("debian-6.1", "a.b.c", Status::Fail, Some("debian:"), "tcg");
        assert!(matches!(boot_spec(&bad, None), Err(RerunError::BadBuild { .. })));
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let r = cell("debian-6.1", "kprobe.tracefs.openat", Status::Fail, None, "");
        assert_eq!(
            command_line("target/kmatrix/run-1", &r),
            "kmatrix rerun target/kmatrix/run-1 --kernel debian-6.1 --scenario kprobe.tracefs.openat"
        );
        assert_eq!(
            command_line("my runs/it's", &r).split(" --kernel").next(),
            Some(r"kmatrix rerun 'my runs/it'\''s'")
        );
    }
}
