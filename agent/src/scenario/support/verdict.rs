//! Turning what a scenario observed into its result: exact counts compared with what was
//! expected ([`verdict`]), `unsupported` found while running ([`unsupported`]), and timings.
//!
//! Every count is kept in the result, matched or not, so the host sees what was observed as
//! well as the judgement. Not for requirement checks before a run (`scenario/req.rs`).

use kmatrix_proto::{Count, ScenarioResult, Status};
use std::time::Instant;

/// Milliseconds since `t`, for timings.
pub fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

pub fn count(what: impl Into<String>, expected: u64, observed: u64) -> Count {
    Count { what: what.into(), expected, observed }
}

/// `unsupported` found while running (a refusal that shows the kernel lacks the path, such as
/// ENOENT for a hardware counter without a PMU), with its evidence and errno.
pub fn unsupported(
    id: &str,
    reason: impl Into<String>,
    evidence: impl Into<String>,
    errno: Option<i32>,
) -> ScenarioResult {
    let mut r = ScenarioResult::new(id, Status::Unsupported, reason);
    r.evidence = Some(evidence.into());
    r.errno = errno;
    r
}

/// `pass` when every count matches and `problems` is empty, else `fail` naming each difference.
pub fn verdict(id: &str, counts: Vec<Count>, problems: Vec<String>) -> ScenarioResult {
    let mut why: Vec<String> = counts
        .iter()
        .filter(|c| c.expected != c.observed)
        .map(|c| format!("{}: expected {}, observed {}", c.what, c.expected, c.observed))
        .collect();
    why.extend(problems);
    let mut r = if why.is_empty() {
        ScenarioResult::new(id, Status::Pass, "")
    } else {
        ScenarioResult::new(id, Status::Fail, why.join("; "))
    };
    r.counts = counts;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_fails_on_any_count_mismatch_and_names_it() {
        let ok = verdict("x", vec![count("hits", 3, 3)], vec![]);
        assert_eq!(ok.status, Status::Pass);
        let bad = verdict("x", vec![count("hits", 3, 3), count("misses", 0, 2)], vec![]);
        assert_eq!(bad.status, Status::Fail);
        assert_eq!(bad.reason, "misses: expected 0, observed 2");
        let problem = verdict("x", vec![], vec!["workload ended with exit 1".into()]);
        assert_eq!(problem.status, Status::Fail);
    }
}
