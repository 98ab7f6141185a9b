//! JUnit XML for CI systems: one `<testsuite>` per kernel, one `<testcase>` per scenario.
//! `fail` → `<failure>`, `error` → `<error>`, `unsupported`/`xfail` → `<skipped>` with the reason
//! (never silently: the message says which requirement was missing).

use kmatrix_proto::{ScenarioResult, Status};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 forbids most control characters even when escaped.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// The JUnit XML of `results`: a `<testsuite>` per kernel (with its accelerator as a property),
/// a `<testcase>` per result; `unsupported` and `xfail` are skipped, `fail` a failure, `error` an
/// error. `tests/reports.rs` checks it against `junit.xsd` with xmllint.
pub fn render(results: &[ScenarioResult]) -> String {
    let mut by_kernel: BTreeMap<&str, Vec<&ScenarioResult>> = BTreeMap::new();
    for r in results {
        by_kernel.entry(r.kernel.as_str()).or_default().push(r);
    }
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = results.len();
    let failures = results.iter().filter(|r| r.status == Status::Fail).count();
    let errors = results.iter().filter(|r| r.status == Status::Error).count();
    let _ = writeln!(x, "<testsuites name=\"kmatrix\" tests=\"{total}\" failures=\"{failures}\" errors=\"{errors}\">");
    for (kernel, rs) in by_kernel {
        let f = rs.iter().filter(|r| r.status == Status::Fail).count();
        let e = rs.iter().filter(|r| r.status == Status::Error).count();
        let s = rs.iter().filter(|r| matches!(r.status, Status::Unsupported | Status::Xfail)).count();
        let time: f64 = rs.iter().map(|r| secs(r)).sum();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" errors=\"{e}\" skipped=\"{s}\" time=\"{time:.3}\">",
            esc(kernel),
            rs.len()
        );
        // Which accelerator the kernel's guests ran under: a TCG run takes ten times longer.
        let accels: BTreeSet<&str> = rs.iter().map(|r| r.accel.as_str()).filter(|a| !a.is_empty()).collect();
        if !accels.is_empty() {
            let v = accels.into_iter().collect::<Vec<_>>().join(",");
            let _ = writeln!(
                x,
                "    <properties>\n      <property name=\"accel\" value=\"{}\"/>\n    </properties>",
                esc(&v)
            );
        }
        for r in rs {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                esc(kernel),
                esc(&r.scenario),
                secs(r)
            );
            let body = detail(r);
            match r.status {
                Status::Pass => x.push_str("/>\n"),
                // Passed on the retry: a pass, with the first attempt said.
                Status::Flaky => {
                    let first =
                        r.previous.as_deref().map(|p| format!("{}: {}", p.status, p.explanation())).unwrap_or_default();
                    let _ = writeln!(
                        x,
                        ">\n      <system-out>flaky: the first attempt gave {}; the retry passed</system-out>\n    </testcase>",
                        esc(&first)
                    );
                }
                Status::Fail => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        esc(&r.explanation()),
                        esc(&body)
                    );
                }
                Status::Error => {
                    let _ = writeln!(
                        x,
                        ">\n      <error message=\"{}\">{}</error>\n    </testcase>",
                        esc(&r.explanation()),
                        esc(&body)
                    );
                }
                Status::Unsupported | Status::Xfail => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"{}: {}\"/>\n    </testcase>",
                        r.status,
                        esc(&r.explanation())
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

fn secs(r: &ScenarioResult) -> f64 {
    (r.timings.attach_ms + r.timings.run_ms + r.timings.detach_ms) / 1000.0
}

fn detail(r: &ScenarioResult) -> String {
    let mut s = r.explanation();
    for c in &r.counts {
        let _ = write!(s, "\n{}: expected {}, observed {}", c.what, c.expected, c.observed);
    }
    if let Some(e) = r.errno {
        let _ = write!(s, "\nerrno {e}");
    }
    if !r.excerpt.is_empty() {
        let _ = write!(s, "\n--- excerpt ---\n{}", r.excerpt);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_junit_elements_and_text_is_escaped() {
        let mut a =
            ScenarioResult::new("kprobe.tracefs.openat", Status::Fail, "hits 9 < 10 & \"x\"").on_kernel("debian-6.1");
        a.excerpt = "ctl\u{1}char <tag>".into();
        let b =
            ScenarioResult::new("kprobe.fprobe.openat", Status::Unsupported, "no f[ syntax").on_kernel("debian-6.1");
        let mut c = ScenarioResult::new("ftrace.tracers.available", Status::Pass, "").on_kernel("debian-6.12");
        c.accel = "tcg".into();
        let x = render(&[a, b, c]);
        // The accelerator is a property of the suite that ran under it, and only of that one.
        assert_eq!(x.matches("<property name=\"accel\" value=\"tcg\"/>").count(), 1, "{x}");
        assert!(x.contains("skipped=\"0\" time=\"0.000\">\n    <properties>"), "{x}");
        assert!(x.contains("<testsuites name=\"kmatrix\" tests=\"3\" failures=\"1\" errors=\"0\">"), "{x}");
        assert!(x.contains("<failure message=\"hits 9 &lt; 10 &amp; &quot;x&quot;\">"), "{x}");
        assert!(x.contains("ctl\u{fffd}char &lt;tag&gt;"), "{x}");
        assert!(x.contains("<skipped message=\"unsupported: no f[ syntax\"/>"), "{x}");
        assert!(
            x.contains("<testsuite name=\"debian-6.12\" tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"0\""),
            "{x}"
        );
    }
}
