//! Verdicts in both directions: what the agent observed, judged against what the catalogue and
//! `kernels/expectations.toml` say the kernel should do.
//!
//! - `unsupported` on a kernel at or above the scenario's `since` is a `fail` (a regression or a
//!   config gap nobody wrote down), unless the expectations name that (kernel, scenario) with a
//!   reason: then it is `xfail`.
//! - `fail` listed in the expectations is `xfail` too (a known bug, with its reason).
//! - An expectation that no longer applies (the scenario now passes) is reported as stale, so the
//!   file does not rot.
//!
//! Pure logic: no I/O besides parsing the expectations text.

use kmatrix_proto::{ScenarioResult, Status};
use serde::Deserialize;
use std::cmp::Ordering;

/// Versions are parsed by the one type both sides share.
pub use kmatrix_proto::KernelVersion as KVersion;

/// One expectation: what the agent will report for a (kernel, scenario), why, and the cause it
/// must show. The one schema of `kernels/expectations.toml` (known gaps, judged `xfail`) and of a
/// test suite's pinned statuses (`tests/expected.toml`, [`Role::Pins`]).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The kernel label (`debian-6.1`) the expectation holds for.
    pub kernel: String,
    /// The scenario id.
    pub scenario: String,
    /// What the agent reports (its own status, before any verdict).
    pub status: Status,
    /// Why, for people: a config gap with the config line, a kernel bug with the upstream fix.
    pub reason: String,
    /// Text that must appear in what the agent said (its reason, evidence, excerpt or a count
    /// that differed): the cause this expectation is about. A different cause is not this one.
    #[serde(default)]
    pub cause: Option<String>,
    /// The errno the failing call must have returned.
    #[serde(default)]
    pub errno: Option<i32>,
    /// The counts the cause makes differ (text each such count's name contains): a count that
    /// differs and is none of these, nor shows `cause` itself, is a deviation the expectation
    /// does not explain, so the result is a `fail`.
    #[serde(default)]
    pub counts: Vec<String>,
}

impl Expectation {
    /// Whether `r` is what this expectation says the agent reports: `None` for another status,
    /// else whether its cause shows ([`Expectation::cause_matches`]).
    pub fn check(&self, r: &ScenarioResult) -> Option<Result<(), OtherCause>> {
        (self.status == r.status).then(|| self.cause_matches(r))
    }

    /// Whether `r` (the agent's result) shows this expectation's cause; `Err` says what is
    /// missing.
    pub fn cause_matches(&self, r: &ScenarioResult) -> Result<(), OtherCause> {
        if let Some(want) = self.errno {
            if r.errno != Some(want) {
                return Err(OtherCause::Errno { want, got: r.errno });
            }
        }
        if let Some(cause) = &self.cause {
            let counts = r
                .counts
                .iter()
                .filter(|c| c.expected != c.observed)
                .map(|c| format!("{}: expected {}, observed {}", c.what, c.expected, c.observed));
            let said = [r.reason.as_str(), r.evidence.as_deref().unwrap_or(""), r.excerpt.as_str()]
                .into_iter()
                .map(str::to_string)
                .chain(counts)
                .collect::<Vec<_>>()
                .join("\n");
            if !said.contains(cause.as_str()) {
                return Err(OtherCause::NotShown { cause: cause.clone() });
            }
        }
        // The whole deviation, not a part of it: every count that differs is one the cause
        // explains, so a second regression behind a known bug is still seen. An expectation that
        // names no cause and no counts (a test's pin of a status alone) explains no counts, and
        // asks for none to be explained.
        if self.cause.is_none() && self.counts.is_empty() {
            return Ok(());
        }
        let explained = |line: &str, what: &str| {
            self.cause.as_deref().is_some_and(|c| line.contains(c))
                || self.counts.iter().any(|n| what.contains(n.as_str()))
        };
        if let Some(c) = r.counts.iter().find(|c| {
            c.expected != c.observed
                && !explained(&format!("{}: expected {}, observed {}", c.what, c.expected, c.observed), &c.what)
        }) {
            return Err(OtherCause::Unexplained {
                count: format!("{}: expected {}, observed {}", c.what, c.expected, c.observed),
            });
        }
        Ok(())
    }
}

/// How a result with the expected status differs from the expectation's cause: the outcome of
/// [`Expectation::cause_matches`], shown in the verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtherCause {
    /// The failing call returned another errno, or none was recorded.
    #[error("errno {want} expected, the result has {got:?}")]
    Errno {
        /// The expectation's errno.
        want: i32,
        /// The result's errno; `None` when the agent recorded none.
        got: Option<i32>,
    },
    /// The expected text is in none of the result's reason, evidence, excerpt or differing counts.
    #[error("the result does not show the expected cause {cause:?}")]
    NotShown {
        /// The text that was looked for.
        cause: String,
    },
    /// A count differs that the expectation's cause does not explain (see
    /// [`Expectation::counts`]).
    #[error("a count differs that the expected cause does not explain ({count})")]
    Unexplained {
        /// The count, as `what: expected E, observed O`.
        count: String,
    },
}

/// What a file of expectations is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `kernels/expectations.toml`: known gaps and bugs; the listed result becomes `xfail`. Only
    /// `unsupported` or `fail` can be expected, and each entry must name its cause.
    Verdicts,
    /// A test suite's pins: the agent must report exactly this status (and the cause, if given).
    Pins,
}

/// A parsed expectations file: `[[expect]]` tables, at most one per (kernel, scenario).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The `[[expect]]` tables, in file order.
    #[serde(default, rename = "expect")]
    pub entries: Vec<Expectation>,
}

/// Why an expectations file was refused; `path` names the file in each.
#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    /// Not TOML, or not the schema (unknown keys are refused).
    #[error("malformed expectations file {path}: {source}")]
    Parse {
        /// The file, as given to [`Expectations::parse`].
        path: String,
        /// The TOML error, with its line and column.
        #[source]
        source: toml::de::Error,
    },
    /// A verdicts file expects a status other than `unsupported` or `fail` (or pins `xfail`).
    #[error(
        "{path}: expectation for {kernel}/{scenario} has status {status}; only unsupported or fail can be expected"
    )]
    BadStatus {
        /// The file.
        path: String,
        /// The entry's kernel label.
        kernel: String,
        /// The entry's scenario id.
        scenario: String,
        /// The status it expects.
        status: Status,
    },
    /// A verdicts entry gives neither `cause` nor `errno`, so any failure would match it.
    #[error("{path}: expectation for {kernel}/{scenario} names no cause: give `cause` (text the result must show) or `errno`")]
    NoCause {
        /// The file.
        path: String,
        /// The entry's kernel label.
        kernel: String,
        /// The entry's scenario id.
        scenario: String,
    },
    /// Two entries for one (kernel, scenario): which one holds would be ambiguous.
    #[error("{path}: {kernel}/{scenario} is listed twice")]
    Duplicate {
        /// The file.
        path: String,
        /// The entry's kernel label.
        kernel: String,
        /// The entry's scenario id.
        scenario: String,
    },
}

impl Expectations {
    /// Parses `text` (the file at `path`, named in errors) and checks it for `role`: no
    /// duplicates; verdicts expect only `unsupported` or `fail` and name a cause; pins never `xfail`.
    pub fn parse(text: &str, path: &str, role: Role) -> Result<Expectations, VerdictError> {
        let e: Expectations =
            toml::from_str(text).map_err(|source| VerdictError::Parse { path: path.to_string(), source })?;
        let mut seen = std::collections::BTreeSet::new();
        for x in &e.entries {
            let (kernel, scenario, path) = (x.kernel.clone(), x.scenario.clone(), path.to_string());
            if !seen.insert((kernel.clone(), scenario.clone())) {
                return Err(VerdictError::Duplicate { path, kernel, scenario });
            }
            let allowed = match role {
                Role::Verdicts => matches!(x.status, Status::Unsupported | Status::Fail),
                Role::Pins => x.status != Status::Xfail,
            };
            if !allowed {
                return Err(VerdictError::BadStatus { path, kernel, scenario, status: x.status });
            }
            if role == Role::Verdicts && x.cause.is_none() && x.errno.is_none() {
                return Err(VerdictError::NoCause { path, kernel, scenario });
            }
        }
        Ok(e)
    }

    /// The entry for (kernel label, scenario id), if any.
    pub fn find(&self, kernel: &str, scenario: &str) -> Option<&Expectation> {
        self.entries.iter().find(|e| e.kernel == kernel && e.scenario == scenario)
    }

    /// Whether an expectation names the agent's result `r` as it is: its kernel label, scenario,
    /// status and cause (what [`judge_on`] makes `xfail`).
    pub fn names(&self, r: &ScenarioResult) -> bool {
        self.find(&r.kernel, &r.scenario).and_then(|e| e.check(r)).is_some_and(|m| m.is_ok())
    }
}

/// A machine requirement the host knows is unmet, and the words an `unsupported` result must
/// say for the machine to be its cause: an `unsupported` for any other cause is judged like
/// every other one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineGap {
    /// Why the machine lacks it (`TCG emulates no hardware PMU`).
    pub why: String,
    /// What the agent's reason says when this is the cause (`no hardware PMU`).
    pub shows: &'static str,
}

/// The machine requirements the host can judge from what it gave the guest (`r`'s accelerator,
/// CPUs and scratch disk), with what makes them unmet: `machine: hardware PMU` under TCG, which
/// emulates none; `at least N online CPUs` in a guest booted with fewer (`--cpus`); a `block
/// device` in a guest without a scratch disk (`--disk`).
pub fn machine_unmet(requires: &[String], r: &ScenarioResult) -> Option<MachineGap> {
    requires.iter().find_map(|req| {
        if req == "machine: hardware PMU" && r.accel == "tcg" {
            return Some(MachineGap { why: "TCG emulates no hardware PMU".into(), shows: "no hardware PMU" });
        }
        if let Some(need) = super::machine::cpus_needed(req) {
            let cpus = r.cpus.unwrap_or(1);
            return (cpus < need).then(|| MachineGap {
                why: format!("the guest was booted with {cpus} CPU(s), the scenario needs {need} (--cpus {need})"),
                shows: "online CPU(s), the scenario needs",
            });
        }
        if super::machine::is_disk(req) && r.disk_mb.is_none() {
            return Some(MachineGap {
                why: "the guest was booted without a scratch disk (--disk SIZE)".into(),
                shows: "no block device",
            });
        }
        None
    })
}

/// How a result's verdict starts when an expectation no longer applies.
pub const STALE: &str = "stale expectation";

/// What judging did to a result, for the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// The agent's status stands.
    Kept,
    /// `unsupported` at or above `since`: now `fail`.
    UnsupportedSinceFail {
        /// The scenario's first kernel version.
        since: KVersion,
    },
    /// Listed in the expectations, with its cause: now `xfail`.
    Expected,
    /// Listed with this status, but the result shows another cause: now `fail`.
    OtherCause {
        /// The status the entry expects.
        expected: Status,
        /// How the result's cause differs.
        why: OtherCause,
    },
    /// Listed, but the scenario did not do what was expected: the entry is stale.
    Stale {
        /// The status the entry expects.
        expected: Status,
    },
    /// Failed (or erred) once, passed on the retry: now `flaky`.
    Flaky,
}

/// Judge `r` (status from the agent) for a kernel of `release`, a scenario available from `since`
/// up to (not including) `until`. An empty or absent `since` means the answer depends on the
/// machine rather than the kernel version (e.g. a hardware PMU): `unsupported` then stands. The
/// agent's status and reason are kept (`agent_status`, `reason`); the host's word goes in
/// `verdict` when it changes the status.
pub fn judge(
    r: &mut ScenarioResult,
    release: &str,
    since: Option<&str>,
    until: Option<&str>,
    exp: &Expectations,
) -> Judgement {
    judge_on(r, release, since, until, None, exp)
}

/// [`judge`] on a machine that lacks what the scenario needs (`machine`, from
/// [`machine_unmet`]): `unsupported` then stands whatever the kernel version, and says why.
pub fn judge_on(
    r: &mut ScenarioResult,
    release: &str,
    since: Option<&str>,
    until: Option<&str>,
    machine: Option<MachineGap>,
    exp: &Expectations,
) -> Judgement {
    r.agent_status = Some(r.status);
    if let Some(first) = r.previous.as_deref().filter(|p| matches!(p.status, Status::Fail | Status::Error)) {
        if r.status == Status::Pass {
            r.status = Status::Flaky;
            r.verdict = Some(format!(
                "flaky: the first attempt gave {}: {}; the retry passed",
                first.status,
                first.explanation()
            ));
            return Judgement::Flaky;
        }
    }
    let listed = exp.find(&r.kernel, &r.scenario);
    if let Some(e) = listed {
        if let Some(matched) = e.check(r) {
            return match matched {
                Ok(()) => {
                    r.status = Status::Xfail;
                    r.verdict = Some(format!("expected: {}", e.reason));
                    Judgement::Expected
                }
                Err(why) => {
                    r.status = Status::Fail;
                    r.verdict = Some(format!(
                        "kernels/expectations.toml expects {} for another cause ({}): {why}",
                        e.status, e.reason
                    ));
                    Judgement::OtherCause { expected: e.status, why }
                }
            };
        }
    }
    let stale = listed.map(|e| Judgement::Stale { expected: e.status });
    if let Some(e) = listed {
        // Said in the result itself, so every report (and `cargo test`) shows it.
        r.verdict = Some(format!(
            "{STALE}: kernels/expectations.toml expects {} here ({}), the agent reported {}",
            e.status, e.reason, r.status
        ));
    }
    if KVersion::parse(release).is_none() && since.and_then(KVersion::parse).is_some() {
        // A local kernel whose version could not be read: nothing can be judged against `since`,
        // and the result says so rather than passing for judged.
        r.verdict = Some(format!(
            "not judged against `since` {}: the kernel's release {release:?} has no version",
            since.unwrap_or_default()
        ));
        return stale.unwrap_or(Judgement::Kept);
    }
    if let (Status::Unsupported, Some(lacks)) = (r.status, r.host_lacks.clone()) {
        // A tool the host has not installed (or that refuses to run) says nothing of the kernel.
        r.verdict = Some(format!("unsupported stands: the host lacks {lacks}, not the kernel"));
        return stale.unwrap_or(Judgement::Kept);
    }
    if let (Status::Unsupported, Some(gap)) = (r.status, machine) {
        if r.reason.contains(gap.shows) {
            r.verdict = Some(format!("unsupported stands: {}", gap.why));
            return stale.unwrap_or(Judgement::Kept);
        }
    }
    if r.status == Status::Unsupported {
        let removed = match (until.and_then(KVersion::parse), KVersion::parse(release)) {
            (Some(u), Some(kv)) => kv >= u,
            _ => false,
        };
        if let (Some(since), Some(kv), false) = (since.and_then(KVersion::parse), KVersion::parse(release), removed) {
            if kv.cmp(&since) != Ordering::Less {
                r.status = Status::Fail;
                r.verdict = Some(format!(
                    "unsupported on {release}, but the scenario is available since {since} \
                     (list it in kernels/expectations.toml with a reason and cause if this is a known config gap)"
                ));
                return stale.unwrap_or(Judgement::UnsupportedSinceFail { since });
            }
        }
    }
    stale.unwrap_or(Judgement::Kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(kernel: &str, scenario: &str, status: Status) -> ScenarioResult {
        ScenarioResult::new(scenario, status, "no f[ syntax in tracefs README").on_kernel(kernel)
    }

    const EXP: &str = r#"
[[expect]]
kernel = "debian-6.12"
scenario = "ftrace.function_graph.retval"
status = "unsupported"
reason = "CONFIG_FUNCTION_GRAPH_RETVAL is not set in Debian's 6.12"
cause = "f[ syntax"
"#;

    #[test]
    fn versions_parse_from_releases_and_since() {
        assert_eq!(KVersion::parse("6.1.0-47-amd64"), Some(KVersion::new(6, 1, 0)));
        assert_eq!(KVersion::parse("5.15"), Some(KVersion::new(5, 15, 0)));
    }

    /// `unsupported` against the scenario's `since`/`until` and the machine: it stands below
    /// `since`, after `until`, without a `since`, on a kernel without a version, and where the
    /// machine lacks what the scenario needs (TCG has no PMU); anywhere else it is a failure.
    #[test]
    fn unsupported_is_judged_by_since_until_and_the_machine() {
        let e = Expectations::default();
        let kept = (Judgement::Kept, Status::Unsupported);
        let fails = |a, b, c| (Judgement::UnsupportedSinceFail { since: KVersion::new(a, b, c) }, Status::Fail);
        let mut on_tcg = ScenarioResult::new("s", Status::Unsupported, "");
        on_tcg.accel = "tcg".into();
        let no_pmu = machine_unmet(&["machine: hardware PMU".to_string()], &on_tcg);
        for (release, since, until, machine, want) in [
            ("5.10.0-30-amd64", Some("5.15"), None, None, kept.clone()),
            ("6.1.0-47-amd64", Some("5.15"), None, None, fails(5, 15, 0)),
            ("6.1.0-47-amd64", Some("3.13"), Some("5.18"), None, kept.clone()),
            ("5.10.0-30-amd64", Some("3.13"), Some("5.18"), None, fails(3, 13, 0)),
            ("6.1.0-47-amd64", Some(""), None, None, kept.clone()),
            ("", Some("6.4"), None, None, kept.clone()),
            ("6.1.0-50-amd64", Some("2.6.31"), None, no_pmu, kept.clone()),
            ("6.1.0-50-amd64", Some("2.6.31"), None, None, fails(2, 6, 31)),
        ] {
            let mut r = res("k", "s", Status::Unsupported);
            r.reason = "no hardware PMU: perf_event_open(PERF_TYPE_HARDWARE, instructions) failed with ENOENT".into();
            let j = judge_on(&mut r, release, since, until, machine.clone(), &e);
            assert_eq!((j, r.status), want, "{release:?} since {since:?} until {until:?} machine {machine:?}");
        }
    }

    #[test]
    fn a_failed_since_keeps_the_agents_word_and_says_why() {
        let e = Expectations::default();
        let mut r = res("debian-6.1", "kprobe.eprobe.openat", Status::Unsupported);
        judge(&mut r, "6.1.0-47-amd64", Some("5.15"), None, &e);
        assert_eq!(r.agent_status, Some(Status::Unsupported));
        assert_eq!(r.reason, "no f[ syntax in tracefs README", "the agent's reason is kept");
        assert!(r.verdict.as_deref().unwrap_or("").contains("since 5.15.0"), "{:?}", r.verdict);
    }

    #[test]
    fn a_machine_requirement_is_judged_with_the_accelerator() {
        let requires = vec!["machine: hardware PMU".to_string(), "program /bin/hello".to_string()];
        let mut r = ScenarioResult::new("perf.hardware.x", Status::Unsupported, "");
        r.accel = "tcg".into();
        assert_eq!(machine_unmet(&requires, &r).map(|g| g.why), Some("TCG emulates no hardware PMU".into()));
        r.accel = "kvm".into();
        assert_eq!(machine_unmet(&requires, &r), None);
        // CPUs: a result that recorded none ran on one.
        let requires = vec!["at least 2 online CPUs (--cpus 2)".to_string(), "tracefs mounted".to_string()];
        assert!(machine_unmet(&requires, &r).unwrap().why.contains("booted with 1 CPU(s), the scenario needs 2"));
        r.cpus = Some(2);
        assert_eq!(machine_unmet(&requires, &r), None);
        let requires = vec!["block device /dev/vda (the scratch disk: --disk SIZE)".to_string()];
        assert!(machine_unmet(&requires, &r).unwrap().why.contains("without a scratch disk"));
        r.disk_mb = Some(64);
        assert_eq!(machine_unmet(&requires, &r), None);
    }

    /// The machine excuses only the `unsupported` it causes: on TCG a PMU scenario that is
    /// unsupported for another reason (perf missing, a refused attribute) is judged by `since`.
    #[test]
    fn a_machine_gap_excuses_only_the_unsupported_it_causes() {
        let e = Expectations::default();
        let mut on_tcg = ScenarioResult::new("s", Status::Unsupported, "");
        on_tcg.accel = "tcg".into();
        let gap = machine_unmet(&["machine: hardware PMU".to_string()], &on_tcg);
        let mut r = res("debian-6.1", "tool.perf.stat_instructions", Status::Unsupported);
        r.reason = "no hardware PMU: perf stat reports instructions <not supported>".into();
        assert_eq!(judge_on(&mut r, "6.1.0-50-amd64", Some("2.6.31"), None, gap.clone(), &e), Judgement::Kept);
        assert_eq!(r.verdict.as_deref(), Some("unsupported stands: TCG emulates no hardware PMU"));
        let mut r = res("debian-6.1", "tool.perf.stat_instructions", Status::Unsupported);
        r.reason = "perf_event_open(instructions) failed with EINVAL".into();
        let j = judge_on(&mut r, "6.1.0-50-amd64", Some("2.6.31"), None, gap, &e);
        assert_eq!((j, r.status), (Judgement::UnsupportedSinceFail { since: KVersion::new(2, 6, 31) }, Status::Fail));
    }

    #[test]
    fn a_tool_the_host_lacks_stays_unsupported_on_every_kernel() {
        let e = Expectations::default();
        let mut r = ScenarioResult::new(
            "tool.trace-cmd.record_pid",
            Status::Unsupported,
            "host program /usr/bin/trace-cmd missing: install Debian's trace-cmd on the host",
        )
        .on_kernel("debian-6.1");
        r.host_lacks = Some("Debian's trace-cmd".into());
        assert_eq!(judge(&mut r, "6.1.0-47-amd64", Some("2.6.31"), None, &e), Judgement::Kept);
        assert_eq!(r.status, Status::Unsupported);
        assert_eq!(r.verdict.as_deref(), Some("unsupported stands: the host lacks Debian's trace-cmd, not the kernel"));
        // The same result without it is the kernel's: `fail` at or above `since`.
        r.host_lacks = None;
        r.status = Status::Unsupported;
        assert!(matches!(
            judge(&mut r, "6.1.0-47-amd64", Some("2.6.31"), None, &e),
            Judgement::UnsupportedSinceFail { .. }
        ));
        assert_eq!(r.status, Status::Fail);
    }

    #[test]
    fn a_kernel_without_a_version_is_said_not_judged() {
        let e = Expectations::default();
        let mut r = res("local-abc", "kprobe.fprobe.openat", Status::Unsupported);
        judge(&mut r, "", Some("6.4"), None, &e);
        assert!(r.verdict.as_deref().unwrap_or("").contains("not judged against `since` 6.4"), "{:?}", r.verdict);
        let mut r = res("debian-6.1", "kprobe.fprobe.openat", Status::Pass);
        judge(&mut r, "6.1.0-50-amd64", Some("6.4"), None, &e);
        assert_eq!(r.verdict, None);
    }

    #[test]
    fn listed_expectation_gives_xfail_and_stale_entries_are_reported() {
        let e = Expectations::parse(EXP, "expectations.toml", Role::Verdicts).unwrap();
        let mut r = res("debian-6.12", "ftrace.function_graph.retval", Status::Unsupported);
        assert_eq!(judge(&mut r, "6.12.57+deb13-amd64", Some("6.5"), None, &e), Judgement::Expected);
        assert_eq!(r.status, Status::Xfail);
        assert_eq!(r.agent_status, Some(Status::Unsupported));
        assert!(r.explanation().contains("CONFIG_FUNCTION_GRAPH_RETVAL"));
        let mut r = res("debian-6.12", "ftrace.function_graph.retval", Status::Pass);
        assert_eq!(
            judge(&mut r, "6.12.57+deb13-amd64", Some("6.5"), None, &e),
            Judgement::Stale { expected: Status::Unsupported }
        );
        assert_eq!(r.status, Status::Pass);
        assert!(r.verdict.as_deref().unwrap_or("").starts_with(STALE), "{:?}", r.verdict);
    }

    #[test]
    fn a_listed_status_with_another_cause_is_a_fail_not_an_xfail() {
        let e = Expectations::parse(EXP, "expectations.toml", Role::Verdicts).unwrap();
        let mut r =
            ScenarioResult::new("ftrace.function_graph.retval", Status::Unsupported, "tracer function_graph absent")
                .on_kernel("debian-6.12");
        let j = judge(&mut r, "6.12.57+deb13-amd64", Some("6.5"), None, &e);
        assert!(matches!(j, Judgement::OtherCause { expected: Status::Unsupported, .. }), "{j:?}");
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.agent_status, Some(Status::Unsupported));
        assert!(r.explanation().contains("f[ syntax"), "{}", r.explanation());
        // errno is part of the cause too.
        let text = "[[expect]]\nkernel='k'\nscenario='s'\nstatus='unsupported'\nreason='r'\nerrno=95\n";
        let e = Expectations::parse(text, "x.toml", Role::Verdicts).unwrap();
        let mut r = ScenarioResult::new("s", Status::Unsupported, "refused").on_kernel("k");
        r.errno = Some(22);
        assert!(matches!(judge(&mut r, "6.1.0", None, None, &e), Judgement::OtherCause { .. }));
        let mut r = ScenarioResult::new("s", Status::Unsupported, "refused").on_kernel("k");
        r.errno = Some(95);
        assert_eq!(judge(&mut r, "6.1.0", None, None, &e), Judgement::Expected);
    }

    #[test]
    fn expectations_refuse_unknown_keys_statuses_missing_causes_and_duplicates() {
        let entry = |extra: &str| format!("[[expect]]\nkernel='a'\nscenario='b'\nreason='r'\n{extra}");
        let err = Expectations::parse(&entry("status='pass'\ncause='x'\n"), "x.toml", Role::Verdicts).unwrap_err();
        assert!(err.to_string().contains("only unsupported or fail"), "{err}");
        let err =
            Expectations::parse(&entry("status='fail'\ncause='x'\nwhy='?'\n"), "x.toml", Role::Verdicts).unwrap_err();
        assert!(err.to_string().contains("why"), "{err}");
        let err = Expectations::parse(&entry("status='fail'\n"), "x.toml", Role::Verdicts).unwrap_err();
        assert!(err.to_string().contains("names no cause"), "{err}");
        // Pins may pin any agent status, without a cause, but not a verdict.
        assert!(Expectations::parse(&entry("status='pass'\n"), "p.toml", Role::Pins).is_ok());
        assert!(Expectations::parse(&entry("status='xfail'\n"), "p.toml", Role::Pins).is_err());
        let twice = format!("{}{}", entry("status='pass'\n"), entry("status='fail'\n"));
        let err = Expectations::parse(&twice, "p.toml", Role::Pins).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }

    /// An expected `fail` covers the deviation its cause explains and nothing more: a second
    /// count that regresses behind the known bug makes the cell `fail` again.
    #[test]
    fn an_expected_cause_must_explain_every_count_that_differs() {
        let e = Expectations::parse(
            r#"
[[expect]]
kernel = "debian-6.1"
scenario = "kprobe.eprobe.sys_enter_openat"
status = "fail"
reason = "6.1 reads the pointer as one byte"
cause = "the sign-extended low byte of the pointer"
counts = ["entries with filename="]
"#,
            "expectations.toml",
            Role::Verdicts,
        )
        .unwrap();
        let count = |what: &str, expected, observed| kmatrix_proto::Count { what: what.into(), expected, observed };
        let mut known = res("debian-6.1", "kprobe.eprobe.sys_enter_openat", Status::Fail);
        known.reason = "$filename read as 0xff..9e, the sign-extended low byte of the pointer 0x7ffd..9e".into();
        known.counts = vec![
            count("kmatrix/openat_e entries for the workload pid", 100, 100),
            count("kmatrix/openat_e entries with filename=/etc/hostname", 100, 0),
        ];
        let mut worse = known.clone();
        worse.counts[0].observed = 37;
        assert_eq!(judge(&mut known, "6.1.0-50-amd64", Some("5.15"), None, &e), Judgement::Expected);
        let j = judge(&mut worse, "6.1.0-50-amd64", Some("5.15"), None, &e);
        let why = OtherCause::Unexplained {
            count: "kmatrix/openat_e entries for the workload pid: expected 100, observed 37".into(),
        };
        assert_eq!((j, worse.status), (Judgement::OtherCause { expected: Status::Fail, why }, Status::Fail));
        // A test's pin of the status alone (no cause, no counts) asks for no count to be
        // explained: the matrix test's 6.1 eprobe pin failed on exactly this.
        let pin = Expectations::parse(
            "[[expect]]\nkernel = \"debian-6.1\"\nscenario = \"kprobe.eprobe.sys_enter_openat\"\nstatus = \"fail\"\nreason = \"pinned\"\n",
            "expected.toml",
            Role::Pins,
        )
        .unwrap();
        assert_eq!(pin.entries[0].cause_matches(&known), Ok(()));
        assert_eq!(pin.entries[0].cause_matches(&worse), Ok(()));
    }
}
