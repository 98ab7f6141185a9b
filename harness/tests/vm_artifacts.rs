//! Traces a person can open, from a real run (Debian 6.1, real boots): the function_graph and
//! event captures become Chrome trace-event JSON that is well formed (every B has its E on its
//! track, timestamps never go back on a track, every task's pid that of the result's workload),
//! the sampled stacks a flame graph SVG that headless Chromium renders with hello's functions in
//! it; `kmatrix trace` says where they are and the HTML report links them. The checks here are
//! written apart from the library's own checker.

mod common;
use common::kmatrix;

use kmatrix_proto::{ScenarioResult, Status};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every B closed by an E of the same name, in order, and no time going back, per (pid, tid).
fn check_trace(v: &serde_json::Value) -> Vec<(i64, i64)> {
    let mut stacks: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
    let mut last: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    for e in v["traceEvents"].as_array().expect("traceEvents") {
        if e["ph"] == "M" {
            continue;
        }
        let key = (e["pid"].as_i64().unwrap(), e["tid"].as_i64().unwrap());
        let ts = e["ts"].as_f64().unwrap();
        assert!(ts >= *last.get(&key).unwrap_or(&f64::MIN), "time goes back at {e}");
        last.insert(key, ts);
        let name = e["name"].as_str().unwrap().to_string();
        match e["ph"].as_str().unwrap() {
            "B" => stacks.entry(key).or_default().push(name),
            "E" => assert_eq!(stacks.entry(key).or_default().pop(), Some(name), "E without its B: {e}"),
            "i" => {}
            other => panic!("unexpected phase {other} in {e}"),
        }
    }
    assert!(stacks.values().all(Vec::is_empty), "B without E: {stacks:?}");
    last.into_keys().collect()
}

fn chromium_dom(url: &str, dir: &Path) -> String {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
        .args(["--virtual-time-budget=2000", "--dump-dom", url])
        .output()
        .expect("chromium (apt-get install chromium)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn vm_artifacts_are_valid_traces_and_a_rendered_flame_graph() {
    let d = tempfile::tempdir().unwrap();
    let scenarios = "ftrace.function_graph.nested,kprobe.tracefs.openat,tool.perf.flamegraph";
    let out = kmatrix()
        .args(["run", "--kernels", "debian-6.1", "-s", scenarios, "--json", "--out"])
        .arg(d.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let run: PathBuf = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("run-"))
        .unwrap()
        .path();
    let rs = kmatrix::run::results::read(&run.join("results.jsonl")).unwrap();
    let get =
        |id: &str| -> &ScenarioResult { rs.iter().find(|r| r.scenario == id).unwrap_or_else(|| panic!("no {id}")) };
    for r in &rs {
        assert_eq!(r.status, Status::Pass, "{} {}", r.scenario, r.reason);
        for a in &r.artifacts {
            let size = std::fs::metadata(run.join(a)).unwrap().len();
            eprintln!("artifact {a}: {size} bytes");
        }
    }

    // function_graph: nested slices on the workload's track.
    let g = get("ftrace.function_graph.nested");
    assert_eq!(g.artifacts, ["artifacts/debian-6.1/ftrace.function_graph.nested.trace.json"]);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join(&g.artifacts[0])).unwrap()).unwrap();
    let pid = g.detail["pid"].as_i64().unwrap();
    assert_eq!(check_trace(&v), [(pid, pid)], "one track, the workload's");
    let opens = g
        .excerpt
        .lines()
        .filter(|l| l.trim_end().ends_with(&format!("{}() {{", g.detail["symbol"].as_str().unwrap())))
        .count();
    let b = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "B" && e["name"] == g.detail["symbol"])
        .count();
    assert!(opens > 0);
    assert_eq!(b, opens, "one slice per call in the excerpt");

    // kprobe events: instants at their timestamps, on the workload's track.
    let k = get("kprobe.tracefs.openat");
    assert_eq!(k.artifacts, ["artifacts/debian-6.1/kprobe.tracefs.openat.trace.json"]);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join(&k.artifacts[0])).unwrap()).unwrap();
    let pid = k.detail["pid"].as_i64().unwrap();
    assert_eq!(check_trace(&v), [(pid, pid)]);
    let instants =
        v["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "i" && e["name"] == "openat").count();
    assert_eq!(instants, k.excerpt.lines().filter(|l| l.contains(" openat: (")).count());

    // perf's sampled stacks: a flame graph SVG and its folded stacks.
    let f = get("tool.perf.flamegraph");
    assert_eq!(
        f.artifacts,
        ["artifacts/debian-6.1/tool.perf.flamegraph.svg", "artifacts/debian-6.1/tool.perf.flamegraph.folded"]
    );
    let folded = std::fs::read_to_string(run.join(&f.artifacts[1])).unwrap();
    assert!(folded.lines().any(|l| l.contains(";main;hello_greet")), "{folded}");
    let svg = run.join(&f.artifacts[0]);
    let dom = chromium_dom(&format!("file://{}", svg.display()), d.path());
    assert!(dom.contains("<svg"), "{}", &dom[..dom.len().min(500)]);
    for name in ["main", "hello_greet"] {
        assert!(dom.contains(&format!("<title>{name} (")), "{name} not in the rendered flame graph");
    }

    // `kmatrix trace` says where they are.
    let t = kmatrix().arg("trace").arg(&run).arg("debian-6.1::tool.perf.flamegraph").output().unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let listed = String::from_utf8_lossy(&t.stdout);
    assert!(listed.contains(&svg.display().to_string()), "{listed}");
    let none = kmatrix().arg("trace").arg(&run).arg("debian-6.1::nosuch.*").output().unwrap();
    common::assert_bad_input(&none, &["nosuch.*"]);

    // The HTML report, written in the run directory, links every cell's artifacts.
    let page = run.join("matrix.html");
    let st = kmatrix().args(["report", "--format", "html", "-o"]).arg(&page).arg(&run).status().unwrap();
    assert!(st.success());
    let dom = chromium_dom(&format!("file://{}", page.display()), d.path());
    for r in &rs {
        for a in &r.artifacts {
            assert!(dom.contains(&format!("href=\"{a}\"")), "no link to {a}");
        }
    }
}
