//! Reports rendered from real runs (fixtures captured from `kmatrix run`, see
//! fixtures/runs/README.md) and checked by the tools that consume them: the JUnit XML against its
//! schema with xmllint, the HTML matrix in headless Chromium, KTAP with the kernel's own
//! `kunit_parser.py`, the published site in headless Chromium (links, details, a screenshot),
//! and `report diff` between two runs. `vm_report_diff_…` boots debian-6.1
//! twice (a user's object and its regressed version) for the baseline/candidate gate.

use crate::common;
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

/// Headless Chromium with `args` (a profile of its own under `dir`); its stdout.
fn headless(dir: &Path, args: &[&str]) -> String {
    let profile = tempfile::tempdir_in(dir).unwrap();
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
            "--hide-scrollbars",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("chromium (Debian: apt-get install chromium; elsewhere set KMATRIX_CHROMIUM)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A PNG's width and height (its IHDR chunk) and its size in bytes.
fn png_shape(p: &Path) -> (u32, u32, usize) {
    let b = std::fs::read(p).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", p.display());
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20), b.len())
}

/// `report site` of two real runs: the index holds one link per (kernel, scenario) of the runs
/// (a later run's cell replacing an earlier one's), a failed cell's link opens its section of
/// the scenario's page in Chromium with the run's reason and rerun command line, and a
/// screenshot of the index is a full page of table, not a blank one.
#[test]
fn report_site_links_every_cell_to_its_detail_in_headless_chromium() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("site");
    let made = kmatrix()
        .args(["report", "site", "--out"])
        .arg(&out)
        .arg(fixture("before"))
        .arg(fixture("after"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let mut pairs = std::collections::BTreeSet::new();
    for run in ["before", "after"] {
        for r in kmatrix::run::results::read_run(&fixture(run)).unwrap() {
            pairs.insert((r.kernel, r.scenario));
        }
    }
    let index = format!("file://{}", out.join("index.html").display());
    let dom = headless(d.path(), &["--dump-dom", &index]);
    assert!(dom.contains("<table id=\"compat\">"), "{dom}");
    assert_eq!(dom.matches("class=\"cell\"").count(), pairs.len(), "one link per cell");

    // A cell that failed in `after` (the later run): its link, then its detail.
    let after = kmatrix::run::results::read_run(&fixture("after")).unwrap();
    let failed = after.iter().find(|r| r.status == kmatrix_proto::Status::Fail).expect("a failed cell in after/");
    let href = format!("scenario/{}.html#{}", failed.scenario, failed.kernel);
    assert!(dom.contains(&format!("href=\"{href}\">fail</a>")), "no link {href}");
    let detail = headless(d.path(), &["--dump-dom", &format!("file://{}/{href}", out.display())]);
    let section = detail
        .split(&format!("<section id=\"{}\"", failed.kernel))
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .unwrap_or_else(|| panic!("no section {} in {detail}", failed.kernel));
    let reason_head: String = failed.reason.chars().take(40).collect();
    assert!(
        section.contains(&reason_head.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")),
        "{section}"
    );
    let rerun = format!(
        "kmatrix rerun {} --kernel {} --scenario {}",
        fixture("after").display(),
        failed.kernel,
        failed.scenario
    );
    assert!(section.contains(&rerun), "no {rerun} in {section}");

    // Screenshots at one size: the index's table against a blank page.
    let (shot, blank) = (d.path().join("index.png"), d.path().join("blank.png"));
    headless(d.path(), &["--window-size=1200,900", &format!("--screenshot={}", shot.display()), &index]);
    headless(d.path(), &["--window-size=1200,900", &format!("--screenshot={}", blank.display()), "about:blank"]);
    let (w, h, size) = png_shape(&shot);
    let (bw, bh, bsize) = png_shape(&blank);
    assert_eq!((w, h), (bw, bh));
    assert!(w >= 1000 && h >= 700, "{w}x{h}");
    assert!(size > 4 * bsize, "the index's screenshot ({size} B) is no fuller than a blank page's ({bsize} B)");

    // Written over a site already there: refused, naming the directory (exit 2).
    let again = kmatrix().args(["report", "site", "--out"]).arg(&out).arg(fixture("after")).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stderr).contains(&format!("{} exists and is not empty", out.display())));
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
    let url = format!("file://{}#open=0", page.display());
    let dom = headless(d.path(), &["--dump-dom", &url]);
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
    let cell = |c: &serde_json::Value| {
        let s = |k: &str| c[k].as_str().unwrap_or("(absent)").to_string();
        (s("kernel"), s("scenario"), s("before"), s("after"))
    };
    // Every cell in both runs whose status changed, exactly (the fixtures' README says what
    // each run was); `before` ran two more kernels, whose 114 cells are absent from `after`,
    // and `after` has bpf.object.load on its two kernels, absent from `before`.
    let both: Vec<(String, String, String, String)> =
        changes.iter().map(cell).filter(|c| c.2 != "(absent)" && c.3 != "(absent)").collect();
    let want = [
        ("debian-6.1", "bpf.kprobe_multi.openat", "fail", "xfail"),
        ("debian-6.1", "ftrace.event.urandom_read", "fail", "unsupported"),
        ("debian-6.1", "ftrace.function.stacktrace", "fail", "pass"),
        ("debian-6.1", "kprobe.seed.do_sys_open", "fail", "unsupported"),
        ("debian-6.12", "ftrace.event.sched_switch", "fail", "pass"),
        ("debian-6.12", "ftrace.event.urandom_read", "fail", "unsupported"),
        ("debian-6.12", "ftrace.function.stacktrace", "fail", "pass"),
        ("debian-6.12", "ftrace.function_graph.retval", "fail", "xfail"),
        ("debian-6.12", "kprobe.seed.do_sys_open", "fail", "unsupported"),
    ]
    .map(|(k, s, b, a)| (k.to_string(), s.to_string(), b.to_string(), a.to_string()));
    assert_eq!(both, want);
    let gone = changes.iter().map(cell).filter(|c| c.3 == "(absent)").count();
    let new: Vec<(String, String)> =
        changes.iter().map(cell).filter(|c| c.2 == "(absent)").map(|c| (c.0, c.1)).collect();
    assert_eq!(gone, 114);
    assert_eq!(
        new,
        [("debian-6.1", "bpf.object.load"), ("debian-6.12", "bpf.object.load")].map(|(k, s)| (k.into(), s.into()))
    );
    assert_eq!(changes.len(), 9 + 114 + 2);

    // The same two runs classified for a gate: every class, counted, and the cells of each
    // class but the two large ones named.
    let (before, after) = (fixture("before"), fixture("after"));
    let (code, out, err) = diff(&[
        "--baseline".as_ref(),
        before.as_os_str(),
        "--candidate".as_ref(),
        after.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["counts"],
        serde_json::json!({"new-regression": 0, "fixed": 9, "still-failing": 3, "still-passing": 102,
            "coverage-added": 2, "coverage-removed": 114, "inconclusive": 0}),
        "{out}"
    );
    let (cells, failed) = classes(&out);
    assert!(!failed);
    let named: Vec<(String, String, String)> =
        cells.into_iter().filter(|c| c.2 != "still-passing" && c.2 != "coverage-removed").collect();
    let mut want: Vec<(String, String, String)> = want
        .iter()
        .map(|(k, s, _, _)| (k.clone(), s.clone(), "fixed".to_string()))
        .chain(
            [
                ("debian-6.1", "kprobe.eprobe.sys_enter_openat", "still-failing"),
                ("debian-6.1", "perf.hardware.instructions", "still-failing"),
                ("debian-6.12", "perf.hardware.instructions", "still-failing"),
                ("debian-6.1", "bpf.object.load", "coverage-added"),
                ("debian-6.12", "bpf.object.load", "coverage-added"),
            ]
            .map(|(k, s, c)| (k.to_string(), s.to_string(), c.to_string())),
        )
        .collect();
    want.sort();
    let mut named = named;
    named.sort();
    assert_eq!(named, want);
}

#[test]
fn report_of_a_missing_run_is_bad_input() {
    let out = kmatrix().args(["report", "/nonexistent/run-1"]).output().unwrap();
    common::assert_bad_input(&out, &["/nonexistent/run-1"]);
}

/// A report read by a reader that has gone away (`kmatrix report diff A B | head -1`): the
/// output ends quietly, exit 0; `print!` panicked on the broken pipe (exit 101, "failed printing
/// to stdout"). The pipe's read end is closed before kmatrix starts, so every write meets EPIPE.
#[test]
fn a_report_whose_reader_went_away_ends_quietly() {
    for args in [
        vec!["report".into(), "diff".into(), fixture("before").into_os_string(), fixture("after").into_os_string()],
        vec!["report".into(), fixture("snapshot").into_os_string(), "--format".into(), "html".into()],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = kmatrix().args(&args).stdout(writer).stderr(std::process::Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// `kmatrix report diff ARGS`: exit code, stdout, stderr.
fn diff(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = kmatrix().args(["report", "diff"]).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The (kernel, scenario, class) of every cell of a `report diff --baseline --json` answer, and
/// the `failed` flag.
fn classes(json: &str) -> (Vec<(String, String, String)>, bool) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let cells = v["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_string();
            (s("kernel"), s("scenario"), s("class"))
        })
        .collect();
    (cells, v["failed"].as_bool().unwrap())
}

/// One real `kmatrix run` of `object` (as a user's `count_openat` kprobe, 100 openats) on
/// debian-6.1, with no retry; its exit code and run directory.
fn run_object(object: &Path, out: &Path) -> (Option<i32>, PathBuf) {
    let st = kmatrix()
        .args(["run", "--kernels", "debian-6.1", "--retries", "0", "--bpf-object"])
        .arg(object)
        .args(["--program", "count_openat", "--attach", "kprobe:do_sys_openat2", "--workload", "openat-loop:100"])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let runs: Vec<PathBuf> = std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "{runs:?}: {}", String::from_utf8_lossy(&st.stderr));
    (st.status.code(), runs[0].clone())
}

#[test]
fn vm_report_diff_gates_on_a_users_regressed_object_both_ways() {
    let d = tempfile::tempdir().unwrap();
    let (good_dir, bad_dir) = (d.path().join("good"), d.path().join("bad"));
    std::fs::create_dir_all(&good_dir).unwrap();
    std::fs::create_dir_all(&bad_dir).unwrap();
    let good = common::build(&common::fixture("count_openat.bpf.c"), &good_dir);
    let bad = common::build(&common::root().join("harness/tests/fixtures/diff/count_openat.bpf.c"), &bad_dir);
    let (code, base) = run_object(&good, &d.path().join("base-run"));
    assert_eq!(code, Some(0), "the original object passes");
    let (code, cand) = run_object(&bad, &d.path().join("cand-run"));
    assert_eq!(code, Some(1), "the regressed object fails");

    // Baseline passing, candidate failing, same build, accelerator and parameters: a regression.
    let (code, out, err) =
        diff(&["--baseline".as_ref(), base.as_os_str(), "--candidate".as_ref(), cand.as_os_str(), "--json".as_ref()]);
    assert_eq!(code, Some(1), "{out}{err}");
    let (cells, failed) = classes(&out);
    assert_eq!(cells, [("debian-6.1".to_string(), "bpf.object.load".to_string(), "new-regression".to_string())]);
    assert!(failed);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cells"][0]["differs"], serde_json::json!([]), "{out}");
    assert_eq!((v["cells"][0]["baseline"].as_str(), v["cells"][0]["candidate"].as_str()), (Some("pass"), Some("fail")));
    assert!(v["cells"][0]["reason"].as_str().unwrap().contains("load count_openat failed"), "{out}");
    // The same as text.
    let (code, text, _) = diff(&["--baseline".as_ref(), base.as_os_str(), "--candidate".as_ref(), cand.as_os_str()]);
    assert_eq!(code, Some(1));
    assert!(text.starts_with("new-regression   debian-6.1     bpf.object.load"), "{text}");
    assert!(text.ends_with("gate (--fail-on new-regression): FAILED\n"), "{text}");

    // The other way round: fixed, which the default gate lets through and `--fail-on fixed` not.
    let (code, out, err) =
        diff(&["--baseline".as_ref(), cand.as_os_str(), "--candidate".as_ref(), base.as_os_str(), "--json".as_ref()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (cells, failed) = classes(&out);
    assert_eq!(cells, [("debian-6.1".to_string(), "bpf.object.load".to_string(), "fixed".to_string())]);
    assert!(!failed);
    let (code, _, _) = diff(&[
        "--baseline".as_ref(),
        cand.as_os_str(),
        "--candidate".as_ref(),
        base.as_os_str(),
        "--fail-on".as_ref(),
        "new-regression,fixed".as_ref(),
    ]);
    assert_eq!(code, Some(1));

    // The candidate's KTAP, as the kernel's parser reads it: one kernel, one failed case.
    let ktap = d.path().join("candidate.ktap");
    let st = kmatrix().args(["report", "--format", "ktap", "-o"]).arg(&ktap).arg(&cand).status().unwrap();
    assert!(st.success());
    let (v, log) = kunit_parse(&kunit_tree(), &ktap);
    assert_eq!(
        v["kernels"],
        serde_json::json!([{"name": "debian-6.1", "status": "FAILURE", "cases": 1, "passed": 0, "failed": 1, "crashed": 0, "skipped": 0, "errors": 0}]),
        "{log}"
    );
}

#[test]
fn report_diff_refuses_a_missing_baseline_another_matrix_and_unknown_classes() {
    let missing = Path::new("/nonexistent/baseline-run");
    let after = fixture("after");
    let out =
        kmatrix().args(["report", "diff", "--baseline"]).arg(missing).arg("--candidate").arg(&after).output().unwrap();
    common::assert_bad_input(&out, &["the baseline run", "/nonexistent/baseline-run"]);
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    // A baseline of debian-5.10 only against a run of 6.1 and 6.12: nothing to compare.
    let other = common::root().join("harness/tests/fixtures/diff/perf-5.10-pass.jsonl");
    let out =
        kmatrix().args(["report", "diff", "--baseline"]).arg(&other).arg("--candidate").arg(&after).output().unwrap();
    let stderr = common::assert_bad_input(&out, &[&other.display().to_string(), "no kernel in common"]);
    assert!(stderr.contains("baseline: debian-5.10; candidate: debian-6.1, debian-6.12"), "{stderr}");
    let out = kmatrix()
        .args(["report", "diff", "--fail-on", "regression", "--baseline"])
        .arg(fixture("before"))
        .arg("--candidate")
        .arg(&after)
        .output()
        .unwrap();
    common::assert_bad_input(&out, &["regression"]);
}

/// The kernel's `tools/testing/kunit` (its KTAP parser) from debian-6.1's source package, fetched
/// and extracted the way `kmatrix selftest` fetches the ftrace selftests when the cache lacks it.
fn kunit_tree() -> PathBuf {
    let cache = kmatrix::cache::Cache::from_env().expect("the kmatrix cache");
    let opts =
        kmatrix::kernel::FetchOptions { kernels_dir: Some(common::root().join("kernels")), ..Default::default() };
    let spec: kmatrix::kernel::KernelSpec = "debian-6.1".parse().unwrap();
    let k = kmatrix::kernel::prepare(&spec, &cache, &opts).unwrap_or_else(|e| panic!("prepare debian-6.1: {e}"));
    let tree = kmatrix::kernel::source_dir(&k, "tools/testing/kunit", &cache, &opts)
        .unwrap_or_else(|e| panic!("tools/testing/kunit of debian-6.1's source: {e}"));
    assert!(tree.dir.join("kunit_parser.py").is_file(), "{} has no kunit_parser.py", tree.dir.display());
    tree.dir
}

/// What kunit_parser.py makes of the KTAP file `ktap`: the JSON the script below prints (the
/// parser's own counts per top-level subtest), and the parser's output.
fn kunit_parse(kunit: &Path, ktap: &Path) -> (serde_json::Value, String) {
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import kunit_parser
with open(sys.argv[2]) as f:
    test = kunit_parser.parse_run_tests(f.read().splitlines())
def counts(t):
    c = t.counts
    return {"passed": c.passed, "failed": c.failed, "crashed": c.crashed, "skipped": c.skipped, "errors": c.errors}
print("KMATRIX " + json.dumps({
    "status": test.status.name,
    "counts": counts(test),
    "kernels": [dict(name=t.name, status=t.status.name, cases=len(t.subtests), **counts(t)) for t in test.subtests],
}))
"#;
    let out = Command::new("python3").arg("-c").arg(script).arg(kunit).arg(ktap).output().expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let json = stdout.lines().find_map(|l| l.strip_prefix("KMATRIX ")).unwrap_or_else(|| panic!("{stdout}"));
    (serde_json::from_str(json).unwrap(), stdout)
}

#[test]
fn ktap_of_a_real_run_parses_with_the_kernels_kunit_parser() {
    use kmatrix_proto::Status;
    let kunit = kunit_tree();
    let d = tempfile::tempdir().unwrap();
    let ktap = d.path().join("run.ktap");
    let run = fixture("after");
    let st = kmatrix().args(["report", "--format", "ktap", "-o"]).arg(&ktap).arg(&run).status().unwrap();
    assert!(st.success());
    let (v, log) = kunit_parse(&kunit, &ktap);
    // The witness: the run's own results, counted per kernel here.
    let results = kmatrix::run::results::read(&run.join("results.jsonl")).unwrap();
    // In the order the run wrote them (`kmatrix report` keeps it).
    let kernels = ["debian-6.12", "debian-6.1"];
    assert_eq!(v["counts"]["errors"], 0, "kunit_parser found errors in the KTAP:\n{log}");
    assert_eq!(v["kernels"].as_array().unwrap().len(), kernels.len(), "{v}");
    for (i, k) in kernels.iter().enumerate() {
        let n = |f: &dyn Fn(Status) -> bool| results.iter().filter(|r| r.kernel == *k && f(r.status)).count();
        // kunit_parser knows SKIP; TODO (xfail) and the ERROR/TIMEOUT directives fall back to
        // `not ok`, as the KTAP spec says a parser should for directives it does not support.
        let want = serde_json::json!({
            "name": k,
            "cases": n(&|_| true),
            "passed": n(&|s| matches!(s, Status::Pass | Status::Flaky)),
            "failed": n(&|s| matches!(s, Status::Fail | Status::Xfail | Status::Error)),
            "skipped": n(&|s| s == Status::Unsupported),
            "crashed": 0,
            "errors": 0,
        });
        let mut got = v["kernels"][i].clone();
        got.as_object_mut().unwrap().remove("status");
        assert_eq!(got, want, "{log}");
    }
    let fails = results.iter().filter(|r| r.status == Status::Fail).count();
    assert!(
        fails > 0 && results.iter().any(|r| r.status == Status::Unsupported),
        "the fixture exercises fail and skip"
    );
    // A KTAP file that cannot be written (its directory would be under a regular file) is bad
    // input naming it.
    let under_file = d.path().join("run.ktap/again.ktap");
    let out = kmatrix().args(["report", "--format", "ktap", "-o"]).arg(&under_file).arg(&run).output().unwrap();
    common::assert_bad_input(&out, &[&under_file.display().to_string()]);
}
