//! Traces a person can open, from a real run (Debian 6.1, real boots): the function_graph and
//! event captures become Chrome trace-event JSON that is well formed (every B has its E on its
//! track, timestamps never go back on a track, every task's pid that of the result's workload),
//! the sampled stacks a flame graph SVG that headless Chromium renders with hello's functions in
//! it; `kmatrix trace` says where they are and the HTML report links them. The checks here are
//! written apart from the library's own checker.

use crate::common;
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

fn gunzip(p: &Path) -> String {
    use std::io::Read;
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap()).read_to_string(&mut s).unwrap();
    s
}

/// The trace's function_graph slices against the capture's own lines, read here without the
/// library's parser: one `B` per open (`name() {`) or leaf (`name();`) line, named so and at its
/// timestamp column (seconds → µs); one real `E` per leaf (its duration later) and per close line
/// (at its timestamp), none made up for a call the capture never closed. Returns the calls.
fn slices_match_capture(v: &serde_json::Value, capture: &str) -> Result<usize, String> {
    let mut begins = Vec::new();
    let mut ends = Vec::new();
    // A leaf whose duration reaches past the next line's time (its line has the time its entry
    // was recorded, a little after the call began) ends at that next time.
    let mut leaf_end: Option<usize> = None;
    for l in capture.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = l.split('|').collect();
        let (Some(ts), Some(call)) = (cols.first().and_then(|t| t.trim().parse::<f64>().ok()), cols.last()) else {
            continue;
        };
        let call = call.trim();
        let us = ts * 1e6;
        if let Some(i) = leaf_end.take() {
            let end: &mut (String, f64) = &mut ends[i];
            end.1 = end.1.min(us).max(begins.last().map_or(f64::MIN, |b: &(String, f64)| b.1));
        }
        if let Some(name) = call.strip_suffix("() {") {
            begins.push((name.to_string(), us));
        } else if let Some(name) = call.strip_suffix("();") {
            let d: f64 = cols[cols.len() - 2]
                .trim()
                .trim_start_matches(['+', '!', '#', '*', '@', '$'])
                .trim()
                .trim_end_matches("us")
                .trim()
                .parse()
                .map_err(|e| format!("{l}: {e}"))?;
            begins.push((name.to_string(), us));
            ends.push((name.to_string(), us + d));
            leaf_end = Some(ends.len() - 1);
        } else if let Some(rest) = call.strip_prefix("} /* ") {
            ends.push((rest.trim_end_matches("*/").trim().to_string(), us));
        }
    }
    let events = v["traceEvents"].as_array().ok_or("no traceEvents")?;
    let of = |ph: &str| -> Vec<(String, f64)> {
        let mut x: Vec<(String, f64)> = events
            .iter()
            .filter(|e| e["ph"] == ph && e["cat"] == "function_graph" && e["args"]["cut"].is_null())
            .map(|e| (e["name"].as_str().unwrap_or("").to_string(), e["ts"].as_f64().unwrap_or(f64::NAN)))
            .collect();
        x.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        x
    };
    let close = |a: &[(String, f64)], b: &[(String, f64)]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() < 0.01)
    };
    let sorted = |mut x: Vec<(String, f64)>| {
        x.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        x
    };
    let (begins, ends) = (sorted(begins), sorted(ends));
    if !close(&of("B"), &begins) {
        return Err(format!("B slices {:?} differ from the capture's calls {begins:?}", of("B")));
    }
    if events.iter().any(|e| !e["args"]["cut"].is_null()) || !close(&of("E"), &ends) {
        return Err(format!("E slices {:?} differ from the capture's returns {ends:?}", of("E")));
    }
    Ok(begins.len())
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

    // function_graph: the whole capture kept beside the results (not in them), and its slices
    // at the kernel's own timestamps, one per call line of the capture.
    let g = get("ftrace.function_graph.nested");
    assert_eq!(
        g.artifacts,
        [
            "artifacts/debian-6.1/ftrace.function_graph.nested.capture.txt.gz",
            "artifacts/debian-6.1/ftrace.function_graph.nested.trace.json"
        ]
    );
    assert!(g.capture.is_none(), "the capture lives in its file, not in results.jsonl");
    let capture = gunzip(&run.join(&g.artifacts[0]));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join(&g.artifacts[1])).unwrap()).unwrap();
    let pid = g.detail["pid"].as_i64().unwrap();
    assert_eq!(check_trace(&v), [(pid, pid)], "one track, the workload's");
    let calls = slices_match_capture(&v, &capture).unwrap();
    assert_eq!(calls, 20 * 3, "20 openat calls, each with its 2 traced children: {capture}");
    // A capture with one `}` lost no longer matches its slices: the check can fail.
    let close = capture.lines().position(|l| l.trim_end().ends_with("} /* do_sys_openat2 */")).unwrap();
    let corrupt: String =
        capture.lines().enumerate().filter(|(i, _)| *i != close).map(|(_, l)| format!("{l}\n")).collect();
    let bad = ScenarioResult { capture: None, ..g.clone() }.with_capture("corrupted", &corrupt);
    let v = kmatrix::report::chrome_trace::from_result(&bad).unwrap();
    assert!(slices_match_capture(&v, &corrupt).is_err(), "a capture without one of its closes must not match");

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
