//! A run as KTAP version 1 (the kernel's `Documentation/dev-tools/ktap.rst`), the format kernel
//! CI systems read: one subtest per kernel, one result line per cell. `unsupported` is `# SKIP`,
//! `xfail` is `not ok … # TODO` (TAP's expected failure), an `error` is `# TIMEOUT` or `# ERROR`
//! with its cause, and the result's reason is the result line's diagnostic data (its further
//! lines are `#` lines just before it). Each kernel's accelerator and build are diagnostic lines
//! after its plan. Checked by the kernel's own parser (`tools/testing/kunit/kunit_parser.py`) in
//! `tests/reports.rs`.
//!
//! Not for: results of other runs' formats (JUnit, HTML), or parsing KTAP back.

use kmatrix_proto::{Cause, ScenarioResult, Status};
use std::fmt::Write as _;

/// Most lines of a reason kept as diagnostic lines: a reason can carry a whole verifier log's
/// end, and KTAP is read in CI logs.
const MAX_REASON_LINES: usize = 12;

/// A name as a result line's description: no `#` (it would start the directive) and no line
/// breaks or runs of spaces.
fn description(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join("_").replace('#', "_")
}

/// One line of diagnostic text: whitespace runs (tabs, line breaks) made one space.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The result line's directive and diagnostic data for `r`, and its further reason lines.
fn directive(r: &ScenarioResult) -> (bool, String, Vec<String>) {
    let why = r.explanation();
    let mut lines = why.lines().map(one_line).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let rest: Vec<String> = lines.take(MAX_REASON_LINES).collect();
    let data = |prefix: &str| match (prefix.is_empty(), first.is_empty()) {
        (true, true) => String::new(),
        (true, false) => format!(" # {first}"),
        (false, true) => format!(" # {prefix}"),
        (false, false) => format!(" # {prefix} {first}"),
    };
    let (ok, text) = match r.status {
        Status::Pass | Status::Flaky => (true, data("")),
        Status::Fail => (false, data("")),
        Status::Unsupported => (true, data("SKIP")),
        Status::Xfail => (false, data("TODO")),
        Status::Error => match r.cause {
            Some(Cause::Timeout) => (false, data("TIMEOUT")),
            Some(c) => (false, data(&format!("ERROR {c}:"))),
            None => (false, data("ERROR")),
        },
    };
    (ok, text, rest)
}

/// The values `f` gives for `rs`, each once, in order of appearance.
fn distinct(rs: &[&ScenarioResult], f: impl Fn(&ScenarioResult) -> String) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in rs {
        let v = f(r);
        if !v.is_empty() && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// `results` as KTAP version 1: a subtest per kernel of `kernels` (in that order), `source`
/// (the run's path) named in a diagnostic line.
pub fn render(results: &[ScenarioResult], kernels: &[String], source: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "KTAP version 1");
    let _ = writeln!(out, "1..{}", kernels.len());
    let _ = writeln!(out, "# kmatrix run {}", one_line(source));
    for (i, k) in kernels.iter().enumerate() {
        let rs: Vec<&ScenarioResult> = results.iter().filter(|r| &r.kernel == k).collect();
        let _ = writeln!(out, "  KTAP version 1");
        let _ = writeln!(out, "  1..{}", rs.len());
        let accel = distinct(&rs, |r| r.accel.clone());
        let _ = writeln!(
            out,
            "  # accelerator: {}",
            if accel.is_empty() { "not recorded".to_string() } else { accel.join(", ") }
        );
        let builds = distinct(&rs, |r| {
            r.build
                .as_ref()
                .map(|b| {
                    let mut s = b.spec.clone();
                    if !b.release.is_empty() {
                        let _ = write!(s, " release {}", b.release);
                    }
                    if let Some(p) = &b.package {
                        let _ = write!(s, " package {p}");
                    }
                    if let Some(h) = &b.sha256 {
                        let _ = write!(s, " sha256 {h}");
                    }
                    one_line(&s)
                })
                .unwrap_or_default()
        });
        let _ = writeln!(
            out,
            "  # kernel build: {}",
            if builds.is_empty() { "not recorded".to_string() } else { builds.join("; ") }
        );
        for (n, r) in rs.iter().enumerate() {
            let (ok, text, rest) = directive(r);
            for l in rest {
                let _ = writeln!(out, "  # {l}");
            }
            let _ =
                writeln!(out, "  {} {} {}{text}", if ok { "ok" } else { "not ok" }, n + 1, description(&r.scenario));
        }
        // A kernel fails when a cell failed or erred (xfail is expected); one where nothing ran
        // (every cell unsupported) is skipped, as the spec suggests for a parent whose subtests
        // all were.
        let failed = rs.iter().filter(|r| matches!(r.status, Status::Fail | Status::Error)).count();
        let line = if failed > 0 {
            format!("not ok {} {} # {failed} of {} failed or erred", i + 1, description(k), rs.len())
        } else if !rs.is_empty() && rs.iter().all(|r| r.status == Status::Unsupported) {
            format!("ok {} {} # SKIP every scenario unsupported", i + 1, description(k))
        } else {
            format!("ok {} {}", i + 1, description(k))
        };
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real run (tests/fixtures/diff, see its README): eleven cells on 5.10 and 6.1.
    fn mixed() -> Vec<ScenarioResult> {
        let text = include_str!("../../tests/fixtures/diff/mixed-5.10-6.1.jsonl");
        crate::run::results::read_from(text.as_bytes(), std::path::Path::new("mixed")).unwrap()
    }

    #[test]
    fn a_real_run_as_ktap_line_by_line() {
        let rs = mixed();
        let kernels = vec!["debian-5.10".to_string(), "debian-6.1".to_string()];
        let k = render(&rs, &kernels, "target/kmatrix/run-1");
        let lines: Vec<&str> = k.lines().collect();
        assert_eq!(lines[..3], ["KTAP version 1", "1..2", "# kmatrix run target/kmatrix/run-1"]);
        assert_eq!(lines[3..6], ["  KTAP version 1", "  1..6", "  # accelerator: tcg"]);
        assert_eq!(
            lines[6],
            "  # kernel build: debian:5.10.223-1 release 5.10.0-32-amd64 package linux-image-5.10.0-32-amd64 \
             sha256 86a6792f3a03ab15a643f385830cdaa921f15e3e9c8bf63aa55a9243c62fc797"
        );
        assert_eq!(lines[7], "  ok 1 kprobe.eprobe.sys_enter_openat # SKIP no `e[` syntax in tracefs README");
        assert!(k.contains("\n  not ok 3 tool.perf.record_report # perf record -g failed\n"), "{k}");
        assert!(k.contains("\nnot ok 1 debian-5.10 # 4 of 6 failed or erred\n"), "{k}");
        assert!(k.contains("\n  1..5\n"), "{k}");
        assert!(k.contains("\n  not ok 1 kprobe.eprobe.sys_enter_openat # TODO expected: 6.1's eprobes"), "{k}");
        assert!(k.contains("\n  ok 2 kprobe.eprobe.sys_enter_openat_numeric\n"), "{k}");
        assert!(k.ends_with("\nok 2 debian-6.1\n"), "{k}");
        // One result line per cell, each numbered within its kernel.
        let results = lines.iter().filter(|l| l.starts_with("  ok ") || l.starts_with("  not ok ")).count();
        assert_eq!(results, rs.len());
    }

    #[test]
    fn errors_name_their_cause_and_reasons_stay_on_their_lines() {
        let mut t = ScenarioResult::new("ftrace.tracers.available", Status::Error, "scenario timed out after 6.0 s")
            .on_kernel("k");
        t.cause = Some(Cause::Timeout);
        let mut o =
            ScenarioResult::new("a#b c", Status::Error, "Oops: general protection fault\nRIP: x").on_kernel("k");
        o.cause = Some(Cause::KernelOops);
        let skip = ScenarioResult::new("s", Status::Unsupported, "").on_kernel("only-skips");
        let k = render(&[t, o, skip], &["k".into(), "only-skips".into()], "r");
        assert!(k.contains("\n  not ok 1 ftrace.tracers.available # TIMEOUT scenario timed out after 6.0 s\n"), "{k}");
        assert!(
            k.contains("\n  # RIP: x\n  not ok 2 a_b_c # ERROR kernel-oops: Oops: general protection fault\n"),
            "{k}"
        );
        assert!(k.contains("\nnot ok 1 k # 2 of 2 failed or erred\n"), "{k}");
        assert!(k.contains("  # accelerator: not recorded\n  # kernel build: not recorded\n"), "{k}");
        assert!(k.ends_with("  ok 1 s # SKIP\nok 2 only-skips # SKIP every scenario unsupported\n"), "{k}");
    }
}
