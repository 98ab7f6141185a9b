//! Differences between two runs, cell by cell, in two views. [`diff`] lists the cells whose
//! status changed (`kmatrix report diff A B`, for a person). [`classify`] puts every (kernel,
//! scenario) of a baseline and a candidate run in one [`Class`] a CI job gates on (`kmatrix report
//! diff --baseline A --candidate B --fail-on ...`), and refuses to blame a changed outcome on the
//! candidate when the two cells ran under different conditions (kernel build, accelerator, the
//! guest's CPUs and memory, parameters): such a cell is `inconclusive`, and says which differed.
//!
//! Not here: reading the files (`run::results`) or turning a gate into an exit code (the CLI).

use kmatrix_proto::{KernelBuild, ScenarioResult, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A (kernel, scenario) cell whose status differs between two runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellChange {
    /// The cell's kernel label.
    pub kernel: String,
    /// The cell's scenario id.
    pub scenario: String,
    /// Its status in the older run; `None` when that run lacks the cell.
    pub before: Option<Status>,
    /// Its status in the newer run; `None` when that run lacks the cell.
    pub after: Option<Status>,
    /// The newer run's reason (or the older one's when the cell disappeared).
    pub reason: String,
}

/// The cells whose status differs from the older run `a` to the newer `b` (a cell only one run
/// has included), sorted by kernel then scenario. A cell listed twice in a run counts as its last.
pub fn diff(a: &[ScenarioResult], b: &[ScenarioResult]) -> Vec<CellChange> {
    let key = |r: &ScenarioResult| (r.kernel.clone(), r.scenario.clone());
    let ma: BTreeMap<_, _> = a.iter().map(|r| (key(r), r)).collect();
    let mb: BTreeMap<_, _> = b.iter().map(|r| (key(r), r)).collect();
    let mut keys: Vec<_> = ma.keys().chain(mb.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (ma.get(&k), mb.get(&k));
            let (before, after) = (x.map(|r| r.status), y.map(|r| r.status));
            (before != after).then(|| CellChange {
                kernel: k.0.clone(),
                scenario: k.1.clone(),
                before,
                after,
                reason: y.or(x).map(|r| r.explanation()).unwrap_or_default(),
            })
        })
        .collect()
}

/// One aligned line per change (kernel, scenario, before -> after, first line of the reason),
/// then the count.
pub fn render(changes: &[CellChange]) -> String {
    let s = |o: Option<Status>| o.map(|s| s.as_str()).unwrap_or("(absent)");
    let mut out = String::new();
    for c in changes {
        out.push_str(&format!(
            "{:14} {:40} {:>11} -> {:<11} {}\n",
            c.kernel,
            c.scenario,
            s(c.before),
            s(c.after),
            c.reason.lines().next().unwrap_or("")
        ));
    }
    out.push_str(&format!("{} cells changed\n", changes.len()));
    out
}

/// What a (kernel, scenario) cell did from the baseline run to the candidate run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Accepted in the baseline (pass, flaky, xfail or a judged unsupported), `fail` in the
    /// candidate, under the same conditions.
    NewRegression,
    /// `fail` in the baseline, accepted in the candidate, under the same conditions.
    Fixed,
    /// `fail` in both.
    StillFailing,
    /// Accepted in both (the statuses may differ: pass then xfail is still accepted).
    StillPassing,
    /// Only the candidate has the cell.
    CoverageAdded,
    /// Only the baseline has the cell.
    CoverageRemoved,
    /// The outcome cannot be blamed on the candidate: it changed while the kernel build, the
    /// accelerator, the guest's CPUs or memory, or the parameters differed, or one side is an
    /// `error` (the machinery, not the code under test).
    Inconclusive,
}

impl Class {
    /// Every class, in the order reports list them.
    pub const ALL: [Class; 7] = [
        Class::NewRegression,
        Class::Fixed,
        Class::StillFailing,
        Class::StillPassing,
        Class::CoverageAdded,
        Class::CoverageRemoved,
        Class::Inconclusive,
    ];

    /// The class as `--fail-on` and the JSON spell it (`new-regression`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::NewRegression => "new-regression",
            Class::Fixed => "fixed",
            Class::StillFailing => "still-failing",
            Class::StillPassing => "still-passing",
            Class::CoverageAdded => "coverage-added",
            Class::CoverageRemoved => "coverage-removed",
            Class::Inconclusive => "inconclusive",
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Class {
    type Err = DiffError;

    fn from_str(s: &str) -> Result<Class, DiffError> {
        Class::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| DiffError::UnknownClass(s.to_string()))
    }
}

/// Why two runs cannot be compared, or a class name that is not one.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The two runs share no kernel: a baseline of another matrix (or an empty file) would
    /// make every cell coverage-added and hide every regression.
    #[error(
        "compare runs with no kernel in common (baseline: {}; candidate: {}): not one cell could be compared",
        list(.baseline),
        list(.candidate)
    )]
    NoCommonKernel {
        /// The baseline's kernels.
        baseline: Vec<String>,
        /// The candidate's kernels.
        candidate: Vec<String>,
    },
    /// Not one of [`Class::ALL`].
    #[error("read class {0:?}: not one of new-regression, fixed, still-failing, still-passing, coverage-added, coverage-removed, inconclusive")]
    UnknownClass(String),
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "no results".to_string()
    } else {
        v.join(", ")
    }
}

/// A condition the two cells ran under that differs between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `build`, `accelerator`, `guest` (CPUs and memory) or `parameters`.
    pub what: &'static str,
    /// The baseline's value, as text.
    pub baseline: String,
    /// The candidate's value, as text.
    pub candidate: String,
}

/// One (kernel, scenario) cell of a baseline/candidate comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifiedCell {
    /// The cell's kernel label.
    pub kernel: String,
    /// The cell's scenario id.
    pub scenario: String,
    /// What it did.
    pub class: Class,
    /// Its status in the baseline; `None` when the baseline lacks it.
    pub baseline: Option<Status>,
    /// Its status in the candidate; `None` when the candidate lacks it.
    pub candidate: Option<Status>,
    /// The conditions that differ between the two (empty when one side lacks the cell).
    pub differs: Vec<Difference>,
    /// For `inconclusive`: why the change cannot be blamed on the candidate.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// The candidate's reason (the baseline's when the candidate lacks the cell).
    pub reason: String,
}

/// The build as a person compares it: spec, release, and a short hash when `full`.
fn build_text(b: Option<&KernelBuild>, full: bool) -> String {
    let Some(b) = b else { return "(not recorded)".to_string() };
    let mut s = b.spec.clone();
    if !b.release.is_empty() {
        let _ = write!(s, " ({})", b.release);
    }
    if full {
        let _ = write!(s, " sha256 {}", b.sha256.as_deref().map(|h| &h[..h.len().min(12)]).unwrap_or("unknown"));
    }
    s
}

/// The conditions of `b` (baseline) and `c` (candidate) that differ.
fn differences(b: &ScenarioResult, c: &ScenarioResult) -> Vec<Difference> {
    let mut out = Vec::new();
    let key = |r: &ScenarioResult| r.build.as_ref().map(|b| (b.spec.clone(), b.release.clone(), b.sha256.clone()));
    if key(b) != key(c) {
        // Same spec and release but another hash: a rebuilt package; only the hash tells them apart.
        let same_name = key(b).map(|k| (k.0, k.1)) == key(c).map(|k| (k.0, k.1));
        out.push(Difference {
            what: "build",
            baseline: build_text(b.build.as_ref(), same_name),
            candidate: build_text(c.build.as_ref(), same_name),
        });
    }
    if b.accel != c.accel {
        let a = |s: &str| if s.is_empty() { "(not recorded)".to_string() } else { s.to_string() };
        out.push(Difference { what: "accelerator", baseline: a(&b.accel), candidate: a(&c.accel) });
    }
    // Results written before kmatrix recorded the guest's size had one CPU and 512 MiB.
    let guest = |r: &ScenarioResult| (r.cpus.unwrap_or(1), r.memory_mb.unwrap_or(512));
    if guest(b) != guest(c) {
        let text = |r: &ScenarioResult| {
            let (cpus, mb) = guest(r);
            format!("{cpus} CPU{}, {mb} MiB", if cpus == 1 { "" } else { "s" })
        };
        out.push(Difference { what: "guest", baseline: text(b), candidate: text(c) });
    }
    if b.params != c.params {
        // Only the keys that differ, so a long parameter list does not hide the one that changed.
        let mut keys: Vec<&String> = b.params.keys().chain(c.params.keys()).collect();
        keys.sort();
        keys.dedup();
        let side = |m: &BTreeMap<String, String>| {
            keys.iter()
                .filter(|k| b.params.get(**k) != c.params.get(**k))
                .map(|k| match m.get(*k) {
                    Some(v) => format!("{k}={v}"),
                    None => format!("{k} unset"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        out.push(Difference { what: "parameters", baseline: side(&b.params), candidate: side(&c.params) });
    }
    out
}

/// Whether CI accepts a status: everything but `fail` and `error` (an `unsupported` in a results
/// file is already judged expected: one that should not be is written as `fail`).
fn accepted(s: Status) -> bool {
    !matches!(s, Status::Fail | Status::Error)
}

fn one(b: Option<&ScenarioResult>, c: Option<&ScenarioResult>) -> (Class, Vec<Difference>, String) {
    let (b, c) = match (b, c) {
        (Some(b), Some(c)) => (b, c),
        (Some(_), None) => return (Class::CoverageRemoved, Vec::new(), String::new()),
        _ => return (Class::CoverageAdded, Vec::new(), String::new()),
    };
    let differs = differences(b, c);
    for (side, r) in [("baseline", b), ("candidate", c)] {
        if r.status == Status::Error {
            let cause = r.cause.map(|c| format!(" ({c})")).unwrap_or_default();
            return (Class::Inconclusive, differs, format!("the {side} erred{cause}"));
        }
    }
    let (was, is) = (accepted(b.status), accepted(c.status));
    if was != is && !differs.is_empty() {
        let what: Vec<&str> = differs.iter().map(|d| d.what).collect();
        let why = format!("{} -> {} under another {}", b.status, c.status, what.join(" and "));
        return (Class::Inconclusive, differs, why);
    }
    let class = match (was, is) {
        (true, true) => Class::StillPassing,
        (false, false) => Class::StillFailing,
        (true, false) => Class::NewRegression,
        (false, true) => Class::Fixed,
    };
    (class, differs, String::new())
}

/// Every (kernel, scenario) of `baseline` and `candidate`, classified, sorted by kernel then
/// scenario; a cell listed twice in a run counts as its last. Refuses two runs that share no
/// kernel.
pub fn classify(baseline: &[ScenarioResult], candidate: &[ScenarioResult]) -> Result<Vec<ClassifiedCell>, DiffError> {
    let kernels = |rs: &[ScenarioResult]| {
        let mut ks: Vec<String> = rs.iter().map(|r| r.kernel.clone()).collect();
        ks.sort();
        ks.dedup();
        ks
    };
    let (kb, kc) = (kernels(baseline), kernels(candidate));
    if !kb.iter().any(|k| kc.contains(k)) {
        return Err(DiffError::NoCommonKernel { baseline: kb, candidate: kc });
    }
    let key = |r: &ScenarioResult| (r.kernel.clone(), r.scenario.clone());
    let mb: BTreeMap<_, _> = baseline.iter().map(|r| (key(r), r)).collect();
    let mc: BTreeMap<_, _> = candidate.iter().map(|r| (key(r), r)).collect();
    let mut keys: Vec<_> = mb.keys().chain(mc.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    Ok(keys
        .into_iter()
        .map(|k| {
            let (b, c) = (mb.get(&k).copied(), mc.get(&k).copied());
            let (class, differs, why) = one(b, c);
            ClassifiedCell {
                reason: c.or(b).map(|r| r.explanation()).unwrap_or_default(),
                kernel: k.0,
                scenario: k.1,
                class,
                baseline: b.map(|r| r.status),
                candidate: c.map(|r| r.status),
                differs,
                why,
            }
        })
        .collect())
}

/// How many cells of each class (every class present, zeros included).
pub fn counts(cells: &[ClassifiedCell]) -> BTreeMap<Class, usize> {
    let mut m: BTreeMap<Class, usize> = Class::ALL.iter().map(|c| (*c, 0)).collect();
    for c in cells {
        *m.entry(c.class).or_default() += 1;
    }
    m
}

/// Whether the gate fails: some cell is of a class in `fail_on`.
pub fn gate_fails(cells: &[ClassifiedCell], fail_on: &[Class]) -> bool {
    cells.iter().any(|c| fail_on.contains(&c.class))
}

/// The comparison for a person: one line per cell that is not still passing (class, kernel,
/// scenario, baseline -> candidate, why or the first line of the reason, the conditions that
/// differ), then the counts of every class and the gate's verdict.
pub fn render_classified(cells: &[ClassifiedCell], fail_on: &[Class]) -> String {
    let s = |o: Option<Status>| o.map(|s| s.as_str()).unwrap_or("(absent)");
    let mut out = String::new();
    for c in cells.iter().filter(|c| c.class != Class::StillPassing) {
        let note = if c.why.is_empty() { c.reason.lines().next().unwrap_or("") } else { c.why.as_str() };
        let _ = writeln!(
            out,
            "{:16} {:14} {:40} {:>11} -> {:<11} {}",
            c.class.as_str(),
            c.kernel,
            c.scenario,
            s(c.baseline),
            s(c.candidate),
            note
        );
        for d in &c.differs {
            let _ = writeln!(out, "{:16} {} differs: {} -> {}", "", d.what, d.baseline, d.candidate);
        }
    }
    let n = counts(cells);
    let parts: Vec<String> = Class::ALL.iter().map(|c| format!("{} {c}", n[c])).collect();
    let names: Vec<&str> = fail_on.iter().map(|c| c.as_str()).collect();
    let verdict = if gate_fails(cells, fail_on) { "FAILED" } else { "passed" };
    let _ = writeln!(out, "{}; gate (--fail-on {}): {verdict}", parts.join(", "), names.join(","));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(k: &str, s: &str, st: Status) -> ScenarioResult {
        ScenarioResult::new(s, st, format!("{st}")).on_kernel(k)
    }

    #[test]
    fn changed_new_and_gone_cells_are_listed_unchanged_ones_not() {
        let a = vec![r("k1", "s1", Status::Pass), r("k1", "s2", Status::Pass), r("k1", "gone", Status::Fail)];
        let b = vec![r("k1", "s1", Status::Pass), r("k1", "s2", Status::Fail), r("k2", "new", Status::Unsupported)];
        let d = diff(&a, &b);
        assert_eq!(d.len(), 3);
        assert_eq!((d[0].scenario.as_str(), d[0].before, d[0].after), ("gone", Some(Status::Fail), None));
        assert_eq!((d[1].scenario.as_str(), d[1].before, d[1].after), ("s2", Some(Status::Pass), Some(Status::Fail)));
        assert_eq!((d[2].kernel.as_str(), d[2].before, d[2].after), ("k2", None, Some(Status::Unsupported)));
        assert!(render(&d).ends_with("3 cells changed\n"));
    }

    /// Real results lines (tests/fixtures/diff, see its README), parsed as `kmatrix report`
    /// reads them.
    fn real(name: &str) -> Vec<ScenarioResult> {
        let text = match name {
            "fail" => include_str!("../../tests/fixtures/diff/perf-5.10-fail.jsonl"),
            "pass" => include_str!("../../tests/fixtures/diff/perf-5.10-pass.jsonl"),
            _ => include_str!("../../tests/fixtures/diff/mixed-5.10-6.1.jsonl"),
        };
        crate::run::results::read_from(text.as_bytes(), std::path::Path::new(name)).unwrap()
    }

    /// (kernel, scenario, class) of each cell.
    fn classes(cells: &[ClassifiedCell]) -> Vec<(&str, &str, Class)> {
        cells.iter().map(|c| (c.kernel.as_str(), c.scenario.as_str(), c.class)).collect()
    }

    #[test]
    fn a_fix_and_its_reverse_a_regression_gate_only_on_the_regression() {
        let fixed = classify(&real("fail"), &real("pass")).unwrap();
        assert_eq!(
            classes(&fixed),
            [
                ("debian-5.10", "tool.perf.record_report", Class::Fixed),
                ("debian-5.10", "tool.perf.record_system", Class::Fixed)
            ]
        );
        assert!(fixed.iter().all(|c| c.differs.is_empty()), "{fixed:#?}");
        assert!(!gate_fails(&fixed, &[Class::NewRegression]));
        assert!(gate_fails(&fixed, &[Class::NewRegression, Class::Fixed]));
        let broke = classify(&real("pass"), &real("fail")).unwrap();
        assert_eq!(broke.iter().filter(|c| c.class == Class::NewRegression).count(), 2, "{broke:#?}");
        assert_eq!((broke[0].baseline, broke[0].candidate), (Some(Status::Pass), Some(Status::Fail)));
        assert_eq!(broke[0].reason, "perf record -g failed");
        assert!(gate_fails(&broke, &[Class::NewRegression]));
        let text = render_classified(&broke, &[Class::NewRegression]);
        assert!(text.starts_with("new-regression   debian-5.10    tool.perf.record_report"), "{text}");
        assert!(
            text.ends_with(
                "2 new-regression, 0 fixed, 0 still-failing, 0 still-passing, 0 coverage-added, \
                 0 coverage-removed, 0 inconclusive; gate (--fail-on new-regression): FAILED\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_run_against_itself_and_against_a_smaller_run() {
        // Four perf cells fail on 5.10; unsupported (eprobes on 5.10) and xfail count as accepted.
        let same = counts(&classify(&real("mixed"), &real("mixed")).unwrap());
        assert_eq!((same[&Class::StillFailing], same[&Class::StillPassing]), (4, 7), "{same:?}");
        assert_eq!(same.values().sum::<usize>(), 11);
        let smaller = classify(&real("mixed"), &real("pass")).unwrap();
        let n = counts(&smaller);
        assert_eq!((n[&Class::Fixed], n[&Class::CoverageRemoved]), (2, 9), "{n:?}");
        let added = counts(&classify(&real("pass"), &real("mixed")).unwrap());
        assert_eq!((added[&Class::NewRegression], added[&Class::CoverageAdded]), (2, 9), "{added:?}");
    }

    #[test]
    fn a_change_under_another_build_accelerator_guest_or_parameters_is_inconclusive_and_says_which() {
        let base = real("pass");
        let mut cand = real("fail");
        cand[0].accel = "kvm".into();
        if let Some(b) = cand[1].build.as_mut() {
            b.sha256 = Some("0123456789abcdef".into());
        }
        cand[1].params.insert("seconds".into(), "5".into());
        let cells = classify(&base, &cand).unwrap();
        assert_eq!(cells.iter().filter(|c| c.class == Class::Inconclusive).count(), 2, "{cells:#?}");
        assert_eq!(
            cells[0].differs,
            [Difference { what: "accelerator", baseline: "tcg".into(), candidate: "kvm".into() }]
        );
        assert_eq!(cells[0].why, "pass -> fail under another accelerator");
        let d = &cells[1].differs;
        assert_eq!((d[0].what, d[1].what), ("build", "parameters"), "{d:#?}");
        assert_eq!(d[0].baseline, "debian:5.10.223-1 (5.10.0-32-amd64) sha256 86a6792f3a03");
        assert_eq!(d[0].candidate, "debian:5.10.223-1 (5.10.0-32-amd64) sha256 0123456789ab");
        assert_eq!((d[1].baseline.as_str(), d[1].candidate.as_str()), ("seconds=1", "seconds=5"));
        assert!(!gate_fails(&cells, &[Class::NewRegression]));
        let mut bigger = real("fail");
        bigger[0].cpus = Some(2);
        let cells = classify(&base, &bigger).unwrap();
        assert_eq!(cells[0].why, "pass -> fail under another guest");
        let d = &cells[0].differs[0];
        assert_eq!((d.baseline.as_str(), d.candidate.as_str()), ("1 CPU, 512 MiB", "2 CPUs, 512 MiB"));
        // The same outcome under another accelerator is still what it was, with the difference kept.
        let mut again = real("pass");
        again[0].accel = "kvm".into();
        let cells = classify(&base, &again).unwrap();
        assert_eq!((cells[0].class, cells[0].differs.len()), (Class::StillPassing, 1));
        // An error on either side says nothing of the code under test.
        let mut erred = real("pass");
        erred[0].status = Status::Error;
        erred[0].cause = Some(kmatrix_proto::Cause::Timeout);
        let cells = classify(&base, &erred).unwrap();
        assert_eq!((cells[0].class, cells[0].why.as_str()), (Class::Inconclusive, "the candidate erred (timeout)"));
    }

    #[test]
    fn runs_with_no_kernel_in_common_are_refused_naming_both_sides() {
        let only_61: Vec<ScenarioResult> = real("mixed").into_iter().filter(|r| r.kernel == "debian-6.1").collect();
        let e = classify(&real("pass"), &only_61).unwrap_err().to_string();
        assert!(e.contains("(baseline: debian-5.10; candidate: debian-6.1)"), "{e}");
        let e = classify(&[], &real("pass")).unwrap_err().to_string();
        assert!(e.contains("baseline: no results"), "{e}");
        assert_eq!("fixed".parse::<Class>().unwrap(), Class::Fixed);
        assert!("regression".parse::<Class>().is_err());
    }
}
