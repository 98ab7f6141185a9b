//! The terminal matrix: scenarios down, kernels across, one symbol (and colour, on a terminal)
//! per status, then a one-line summary. Also the per-result line printed while a run goes.

use kmatrix_proto::{ScenarioResult, Status};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Symbol for a status, and its ANSI colour.
pub fn symbol(s: Status) -> (&'static str, &'static str) {
    match s {
        Status::Pass => ("ok", "\x1b[32m"),
        Status::Fail => ("FAIL", "\x1b[1;31m"),
        Status::Unsupported => ("unsup", "\x1b[33m"),
        Status::Xfail => ("xfail", "\x1b[35m"),
        Status::Error => ("ERROR", "\x1b[1;41;37m"),
        Status::Flaky => ("flaky", "\x1b[36m"),
    }
}

/// Counts per status.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Results judged `pass`.
    pub pass: usize,
    /// Results judged `fail`.
    pub fail: usize,
    /// Results judged `unsupported`.
    pub unsupported: usize,
    /// Results judged `xfail` (known gaps from the expectations).
    pub xfail: usize,
    /// Results judged `error` (the machinery, not the kernel's tracing, failed).
    pub error: usize,
    /// Results that failed once and passed on the retry.
    pub flaky: usize,
    /// Errors per cause (`timeout`, `kernel-oops`, ...), for errors that say.
    pub causes: std::collections::BTreeMap<String, usize>,
    /// Results per accelerator (`kvm`, `tcg`), for results that say.
    pub accels: std::collections::BTreeMap<String, usize>,
}

impl Summary {
    /// The counts of `rs`.
    pub fn of<'a>(rs: impl IntoIterator<Item = &'a ScenarioResult>) -> Summary {
        let mut s = Summary::default();
        for r in rs {
            match r.status {
                Status::Pass => s.pass += 1,
                Status::Fail => s.fail += 1,
                Status::Unsupported => s.unsupported += 1,
                Status::Xfail => s.xfail += 1,
                Status::Error => {
                    s.error += 1;
                    let cause = r.cause.map_or("unknown cause", kmatrix_proto::Cause::as_str);
                    *s.causes.entry(cause.to_string()).or_default() += 1;
                }
                Status::Flaky => s.flaky += 1,
            }
            if !r.accel.is_empty() {
                *s.accels.entry(r.accel.clone()).or_default() += 1;
            }
        }
        s
    }

    /// One line for the end of a run: the counts, the causes of errors, the accelerator(s).
    pub fn line(&self) -> String {
        let mut l = format!(
            "{} passed, {} failed, {} unsupported, {} xfail, {} flaky, {} error",
            self.pass, self.fail, self.unsupported, self.xfail, self.flaky, self.error
        );
        if !self.causes.is_empty() {
            let parts: Vec<String> = self.causes.iter().map(|(c, n)| format!("{n} {c}")).collect();
            l.push_str(&format!(" ({})", parts.join(", ")));
        }
        match self.accels.len() {
            0 => {}
            1 => l.push_str(&format!(" under {}", self.accels.keys().next().map_or("", |k| k.as_str()))),
            _ => {
                let parts: Vec<String> = self.accels.iter().map(|(a, n)| format!("{n} {a}")).collect();
                l.push_str(&format!(" (accelerators: {})", parts.join(", ")));
            }
        }
        l
    }
}

/// Render the matrix. `kernels` gives the column order; scenarios keep first-seen order.
pub fn render(results: &[ScenarioResult], kernels: &[String], color: bool) -> String {
    let mut scenarios: Vec<&str> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut cell: BTreeMap<(&str, &str), Status> = BTreeMap::new();
    for r in results {
        if seen.insert(r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
        cell.insert((r.scenario.as_str(), r.kernel.as_str()), r.status);
    }
    let w0 = scenarios.iter().map(|s| s.len()).max().unwrap_or(8).max(8);
    let widths: Vec<usize> = kernels.iter().map(|k| k.len().max(5)).collect();
    let mut out = String::new();
    let _ = write!(out, "{:w0$}", "scenario");
    for (k, w) in kernels.iter().zip(&widths) {
        let _ = write!(out, "  {k:>w$}");
    }
    out.push('\n');
    for s in &scenarios {
        let _ = write!(out, "{s:w0$}");
        for (k, w) in kernels.iter().zip(&widths) {
            match cell.get(&(*s, k.as_str())) {
                Some(st) => {
                    let (sym, col) = symbol(*st);
                    if color {
                        let _ = write!(out, "  {col}{sym:>w$}\x1b[0m");
                    } else {
                        let _ = write!(out, "  {sym:>w$}");
                    }
                }
                None => {
                    let _ = write!(out, "  {:>w$}", "-");
                }
            }
        }
        out.push('\n');
    }
    out
}

/// One line for a result as it arrives: status, kernel, scenario, counts, reason.
pub fn result_line(r: &ScenarioResult, color: bool) -> String {
    let (sym, col) = symbol(r.status);
    let counts: Vec<String> = r.counts.iter().map(|c| format!("{} {}/{}", c.what, c.observed, c.expected)).collect();
    let status = if color { format!("{col}{sym:>5}\x1b[0m") } else { format!("{sym:>5}") };
    let mut line = format!("{status}  {:<12} {}", r.kernel, r.scenario);
    if !counts.is_empty() {
        let _ = write!(line, "  [{}]", counts.join(", "));
    }
    let why = r.explanation();
    if !why.is_empty() && r.status != Status::Pass {
        let _ = write!(line, "  — {}", why.lines().next().unwrap_or(""));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmatrix_proto::Count;

    fn r(k: &str, s: &str, st: Status) -> ScenarioResult {
        ScenarioResult::new(s, st, "why").on_kernel(k)
    }

    #[test]
    fn matrix_has_one_cell_per_pair_and_dash_for_missing() {
        let rs = vec![
            r("debian-5.10", "kprobe.fprobe.openat", Status::Unsupported),
            r("debian-6.12", "kprobe.fprobe.openat", Status::Pass),
            r("debian-6.12", "ftrace.tracers.available", Status::Fail),
        ];
        let t = render(&rs, &["debian-5.10".into(), "debian-6.12".into()], false);
        let expected = "\
scenario                  debian-5.10  debian-6.12
kprobe.fprobe.openat            unsup           ok
ftrace.tracers.available            -         FAIL
";
        assert_eq!(t, expected);
        assert_eq!(Summary::of(&rs).line(), "1 passed, 1 failed, 1 unsupported, 0 xfail, 0 flaky, 0 error");
    }

    #[test]
    fn summary_names_the_accelerators() {
        let mut a = r("debian-6.1", "x", Status::Pass);
        let mut b = r("debian-6.12", "x", Status::Fail);
        assert!(!Summary::of([&a, &b]).line().contains("under"));
        a.accel = "tcg".into();
        b.accel = "tcg".into();
        assert_eq!(
            Summary::of([&a, &b]).line(),
            "1 passed, 1 failed, 0 unsupported, 0 xfail, 0 flaky, 0 error under tcg"
        );
        b.accel = "kvm".into();
        assert!(Summary::of([&a, &b]).line().ends_with("(accelerators: 1 kvm, 1 tcg)"));
    }

    #[test]
    fn result_line_shows_counts_and_reason() {
        let mut x = r("debian-6.1", "kprobe.tracefs.openat", Status::Fail);
        x.counts.push(Count { what: "hits".into(), expected: 100, observed: 99 });
        x.reason = "hits 99 != 100\nmore".into();
        assert_eq!(
            result_line(&x, false),
            " FAIL  debian-6.1   kprobe.tracefs.openat  [hits 99/100]  — hits 99 != 100"
        );
    }
}
