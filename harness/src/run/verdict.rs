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

/// A kernel version as `major.minor.patch` (missing parts are 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KVersion(pub u32, pub u32, pub u32);

impl KVersion {
    /// Parse the leading `a.b[.c]` of a release (`6.1.0-47-amd64`) or of a `since` (`5.15`).
    pub fn parse(s: &str) -> Option<KVersion> {
        let head: String = s.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let mut it = head.split('.').filter(|p| !p.is_empty()).map(|p| p.parse::<u32>());
        let a = it.next()?.ok()?;
        let b = it.next().unwrap_or(Ok(0)).ok()?;
        let c = it.next().unwrap_or(Ok(0)).ok()?;
        Some(KVersion(a, b, c))
    }
}

impl std::fmt::Display for KVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One entry of `kernels/expectations.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub kernel: String,
    pub scenario: String,
    /// What the agent is expected to report: `unsupported` or `fail`.
    pub status: Status,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    #[serde(default, rename = "expect")]
    pub entries: Vec<Expectation>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    #[error("malformed expectations file {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error(
        "{path}: expectation for {kernel}/{scenario} has status {status}; only unsupported or fail can be expected"
    )]
    BadStatus { path: String, kernel: String, scenario: String, status: Status },
}

impl Expectations {
    pub fn parse(text: &str, path: &str) -> Result<Expectations, VerdictError> {
        let e: Expectations =
            toml::from_str(text).map_err(|source| VerdictError::Parse { path: path.to_string(), source })?;
        for x in &e.entries {
            if !matches!(x.status, Status::Unsupported | Status::Fail) {
                return Err(VerdictError::BadStatus {
                    path: path.to_string(),
                    kernel: x.kernel.clone(),
                    scenario: x.scenario.clone(),
                    status: x.status,
                });
            }
        }
        Ok(e)
    }

    pub fn find(&self, kernel: &str, scenario: &str) -> Option<&Expectation> {
        self.entries.iter().find(|e| e.kernel == kernel && e.scenario == scenario)
    }
}

/// What judging did to a result, for the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// The agent's status stands.
    Kept,
    /// `unsupported` at or above `since`: now `fail`.
    UnsupportedSinceFail { since: KVersion },
    /// Listed in the expectations: now `xfail`.
    Expected,
    /// Listed, but the scenario did not do what was expected: the entry is stale.
    Stale { expected: Status },
}

/// Judge `r` (status from the agent) for a kernel of `release`, a scenario available from `since`
/// up to (not including) `until`. An empty or absent `since` means the answer depends on the
/// machine rather than the kernel version (e.g. a hardware PMU): `unsupported` then stands.
pub fn judge(
    r: &mut ScenarioResult,
    release: &str,
    since: Option<&str>,
    until: Option<&str>,
    exp: &Expectations,
) -> Judgement {
    let listed = exp.find(&r.kernel, &r.scenario);
    if let Some(e) = listed {
        if e.status == r.status {
            r.status = Status::Xfail;
            r.reason = format!("{} (expected: {})", r.reason, e.reason);
            return Judgement::Expected;
        }
    }
    let stale = listed.map(|e| Judgement::Stale { expected: e.status });
    if r.status == Status::Unsupported {
        let removed = match (until.and_then(KVersion::parse), KVersion::parse(release)) {
            (Some(u), Some(kv)) => kv >= u,
            _ => false,
        };
        if let (Some(since), Some(kv), false) = (since.and_then(KVersion::parse), KVersion::parse(release), removed) {
            if kv.cmp(&since) != Ordering::Less {
                r.status = Status::Fail;
                r.reason = format!(
                    "unsupported on {release}, but the scenario is available since {since}: {} \
                     (list it in kernels/expectations.toml with a reason if this is a known config gap)",
                    r.reason
                );
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
        let mut r = ScenarioResult::new(scenario, status, "no f[ syntax in tracefs README");
        r.kernel = kernel.into();
        r
    }

    const EXP: &str = r#"
[[expect]]
kernel = "debian-6.12"
scenario = "ftrace.function_graph.retval"
status = "unsupported"
reason = "CONFIG_FUNCTION_GRAPH_RETVAL is not set in Debian's 6.12"
"#;

    #[test]
    fn versions_parse_from_releases_and_since() {
        assert_eq!(KVersion::parse("6.1.0-47-amd64"), Some(KVersion(6, 1, 0)));
        assert_eq!(KVersion::parse("5.15"), Some(KVersion(5, 15, 0)));
        assert_eq!(KVersion::parse("6.12.57+deb13-amd64"), Some(KVersion(6, 12, 57)));
        assert_eq!(KVersion::parse("abc"), None);
        assert!(KVersion(5, 10, 0) < KVersion(5, 15, 0));
        assert!(KVersion(6, 1, 0) > KVersion(5, 15, 0));
    }

    #[test]
    fn unsupported_below_since_stands_and_above_since_fails() {
        let e = Expectations::default();
        let mut r = res("debian-5.10", "kprobe.eprobe.openat", Status::Unsupported);
        assert_eq!(judge(&mut r, "5.10.0-30-amd64", Some("5.15"), None, &e), Judgement::Kept);
        assert_eq!(r.status, Status::Unsupported);
        let mut r = res("debian-6.1", "kprobe.eprobe.openat", Status::Unsupported);
        assert_eq!(
            judge(&mut r, "6.1.0-47-amd64", Some("5.15"), None, &e),
            Judgement::UnsupportedSinceFail { since: KVersion(5, 15, 0) }
        );
        assert_eq!(r.status, Status::Fail);
        assert!(r.reason.contains("since 5.15.0"), "{}", r.reason);
    }

    #[test]
    fn unsupported_after_removal_or_without_since_stands() {
        let e = Expectations::default();
        let mut r = res("debian-6.1", "ftrace.event.urandom_read", Status::Unsupported);
        assert_eq!(judge(&mut r, "6.1.0-47-amd64", Some("3.13"), Some("5.18"), &e), Judgement::Kept);
        assert_eq!(r.status, Status::Unsupported);
        let mut r = res("debian-5.10", "ftrace.event.urandom_read", Status::Unsupported);
        assert_eq!(
            judge(&mut r, "5.10.0-30-amd64", Some("3.13"), Some("5.18"), &e),
            Judgement::UnsupportedSinceFail { since: KVersion(3, 13, 0) }
        );
        let mut r = res("debian-6.1", "perf.hardware.instructions", Status::Unsupported);
        assert_eq!(judge(&mut r, "6.1.0-47-amd64", Some(""), None, &e), Judgement::Kept);
    }

    #[test]
    fn listed_expectation_gives_xfail_and_stale_entries_are_reported() {
        let e = Expectations::parse(EXP, "expectations.toml").unwrap();
        let mut r = res("debian-6.12", "ftrace.function_graph.retval", Status::Unsupported);
        assert_eq!(judge(&mut r, "6.12.57+deb13-amd64", Some("6.5"), None, &e), Judgement::Expected);
        assert_eq!(r.status, Status::Xfail);
        assert!(r.reason.contains("CONFIG_FUNCTION_GRAPH_RETVAL"));
        let mut r = res("debian-6.12", "ftrace.function_graph.retval", Status::Pass);
        assert_eq!(
            judge(&mut r, "6.12.57+deb13-amd64", Some("6.5"), None, &e),
            Judgement::Stale { expected: Status::Unsupported }
        );
        assert_eq!(r.status, Status::Pass);
    }

    #[test]
    fn expectations_refuse_unknown_keys_and_statuses() {
        let err = Expectations::parse("[[expect]]\nkernel='a'\nscenario='b'\nstatus='pass'\nreason='r'\n", "x.toml")
            .unwrap_err();
        assert!(err.to_string().contains("only unsupported or fail"), "{err}");
        let err =
            Expectations::parse("[[expect]]\nkernel='a'\nscenario='b'\nstatus='fail'\nreason='r'\nwhy='?'\n", "x.toml")
                .unwrap_err();
        assert!(err.to_string().contains("why"), "{err}");
    }
}
