//! Reports rendered from real runs (fixtures captured from `kmatrix run`, see
//! fixtures/runs/README.md) and checked by the tools that consume them: the JUnit XML against its
//! schema with xmllint, the HTML matrix in headless Chromium, and `report diff` between two runs.

mod common;
use common::kmatrix;

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs").join(name)
}

/// `kmatrix report --format junit` of `run` into `dir`/junit.xml, checked against the schema with
/// xmllint; its text.
fn valid_junit(run: &Path, dir: &Path) -> String {
    let out = dir.join("junit.xml");
    let st = kmatrix().args(["report", "--format", "junit", "-o"]).arg(&out).arg(run).status().unwrap();
    assert!(st.success());
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/report/junit.xsd");
    let v = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(&out)
        .output()
        .expect("xmllint (apt-get install libxml2-utils)");
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    std::fs::read_to_string(&out).unwrap()
}

#[test]
fn junit_validates_against_the_schema() {
    let d = tempfile::tempdir().unwrap();
    let text = valid_junit(&fixture("after"), d.path());
    assert!(
        text.contains("<testsuite name=\"debian-6.1\"") && text.contains("<testsuite name=\"debian-6.12\""),
        "{text}"
    );
}

/// The browser: `$KMATRIX_CHROMIUM`, else the first of Debian's `chromium`, Ubuntu's
/// `chromium-browser` and Google's `google-chrome` (what GitHub's Ubuntu runners have) on PATH.
fn chromium() -> String {
    if let Some(b) = std::env::var("KMATRIX_CHROMIUM").ok().filter(|b| !b.is_empty()) {
        return b;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| std::env::split_paths(&path).any(|d| d.join(b).is_file()))
        .unwrap_or("chromium")
        .to_string()
}

#[test]
fn junit_of_flaky_cells_and_errors_with_causes_validates() {
    use kmatrix_proto::{Cause, ScenarioResult, Status};
    let d = tempfile::tempdir().unwrap();
    let first =
        ScenarioResult::new("kprobe.tracefs.openat", Status::Fail, "kprobe_profile hits: expected 100, observed 99")
            .on_kernel("debian-6.1");
    let mut flaky = ScenarioResult::new("kprobe.tracefs.openat", Status::Flaky, "").on_kernel("debian-6.1");
    flaky.previous = Some(Box::new(first));
    let mut err = ScenarioResult::new("ftrace.tracers.available", Status::Error, "scenario timed out after 6.0 s")
        .on_kernel("debian-6.1");
    err.cause = Some(Cause::Timeout);
    let text: String = [flaky, err].iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
    std::fs::write(d.path().join("results.jsonl"), text).unwrap();
    let x = valid_junit(d.path(), d.path());
    assert!(x.contains("<system-out>flaky: the first attempt gave fail: kprobe_profile hits: expected 100, observed 99; the retry passed</system-out>"), "{x}");
    assert!(x.contains("errors=\"1\"") && x.contains("failures=\"0\""), "{x}");
    let table = kmatrix().arg("report").arg(d.path()).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("0 passed, 0 failed, 0 unsupported, 0 xfail, 1 flaky, 1 error (1 timeout)"), "{table}");
}

#[test]
fn html_matrix_renders_and_opens_a_cell_in_headless_chromium() {
    let d = tempfile::tempdir().unwrap();
    let page = d.path().join("matrix.html");
    let st = kmatrix().args(["report", "--format", "html", "-o"]).arg(&page).arg(fixture("after")).status().unwrap();
    assert!(st.success());
    let profile = d.path().join("chromium-profile");
    let url = format!("file://{}#open=0", page.display());
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium (Debian: apt-get install chromium; elsewhere set KMATRIX_CHROMIUM)");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The table was built, and the script opened cell 0's detail.
    assert!(dom.contains("<table id=\"matrix\">"), "{dom}");
    let detail = dom.split("<div id=\"detail\">").nth(1).unwrap_or("");
    assert!(
        detail.starts_with("debian-"),
        "detail not opened by the page's script: {}",
        &detail[..detail.len().min(300)]
    );
    assert!(detail.contains("reason: "), "{detail}");
    // Each failed cell of the run (three in this fixture) has its rerun command line, on the
    // page and in its detail.
    let reruns = dom.split("<ul id=\"reruns\">").nth(1).and_then(|s| s.split("</ul>").next()).unwrap_or("");
    let run = fixture("after").display().to_string();
    for (k, s) in [
        ("debian-6.1", "kprobe.eprobe.sys_enter_openat"),
        ("debian-6.12", "perf.hardware.instructions"),
        ("debian-6.1", "perf.hardware.instructions"),
    ] {
        let line = format!("<code>kmatrix rerun {run} --kernel {k} --scenario {s}</code>");
        assert!(reruns.contains(&line), "no {line} in {reruns}");
    }
    assert_eq!(reruns.matches("<li>").count(), 3, "{reruns}");
}

#[test]
fn report_diff_lists_the_cells_that_changed_between_two_runs() {
    let out =
        kmatrix().args(["report", "diff"]).arg(fixture("before")).arg(fixture("after")).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes = v.as_array().unwrap();
    assert!(!changes.is_empty());
    for c in changes {
        assert_ne!(c["before"], c["after"]);
    }
}

#[test]
fn report_of_a_missing_run_is_bad_input() {
    let out = kmatrix().args(["report", "/nonexistent/run-1"]).output().unwrap();
    common::assert_bad_input(&out, &["/nonexistent/run-1"]);
}
