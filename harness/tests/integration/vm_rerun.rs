//! `kmatrix rerun` against a real run (Debian 6.1, real boots): the cells run again on the very
//! build, with the very parameters and accelerator they recorded; a build the mirror does not
//! have, a build whose package differs, results from before builds were recorded and a selection
//! that matches nothing are refused with the error naming them; `--shell` opens a shell on the
//! scenario's kept tracefs state (driven through tmux, as `vm_shell.rs` does).

use crate::common;

use common::Tmux;
use kmatrix_proto::{ScenarioResult, Status};
use std::path::Path;
use std::process::Output;

fn kmatrix(args: &[&str], out: &Path) -> Output {
    common::kmatrix().args(args).arg("--out").arg(out).output().unwrap()
}

fn write_results(path: &Path, rs: &[ScenarioResult]) {
    let text: String = rs.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn vm_rerun_replays_cells_on_the_same_build_with_the_same_parameters() {
    let d = tempfile::tempdir().unwrap();
    let first = kmatrix(
        &[
            "run",
            "--kernels",
            "debian-6.1",
            "-s",
            "kprobe.tracefs.openat,ftrace.tracers.available",
            "-p",
            "count=7",
            "--json",
        ],
        d.path(),
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    let before = kmatrix::run::results::read(&common::run_dirs(d.path())[0].join("results.jsonl")).unwrap();
    assert_eq!(before.len(), 2);

    // One cell, by kernel and scenario.
    let run = common::run_dirs(d.path())[0].display().to_string();
    let again =
        kmatrix(&["rerun", &run, "--kernel", "debian-6.1", "--scenario", "kprobe.tracefs.openat", "--json"], d.path());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    let dirs = common::run_dirs(d.path());
    assert_eq!(dirs.len(), 2, "a rerun writes a run directory of its own");
    let after = kmatrix::run::results::read(&dirs[1].join("results.jsonl")).unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    let (b, a) = (before.iter().find(|r| r.scenario == "kprobe.tracefs.openat").unwrap(), &after[0]);
    assert_eq!(
        (a.kernel.as_str(), a.scenario.as_str(), a.status),
        ("debian-6.1", "kprobe.tracefs.openat", Status::Pass)
    );
    assert_eq!(a.build, b.build, "not the same build");
    assert_eq!(a.accel, b.accel, "not the same accelerator");
    assert_eq!(a.params, b.params);
    assert_eq!(a.params["count"], "7");
    // The agent ran it with count=7: the counts say so.
    let hits = a.counts.iter().find(|c| c.what == "kprobe_profile hits").unwrap();
    assert_eq!((hits.expected, hits.observed), (7, 7));
    // With --json the results go to stdout, the table and the then/now lines to stderr.
    assert!(stderr.contains("debian-6.1 kprobe.tracefs.openat: was pass, now pass"), "{stderr}");

    // Nothing failed: --failed has nothing to run (bad input, naming the file).
    let none = kmatrix(&["rerun", &run, "--failed"], d.path());
    common::assert_bad_input(&none, &["results.jsonl has no result that failed"]);

    // A build the mirror does not have: infrastructure, naming the build and --mirror.
    let gone_path = d.path().join("gone.jsonl");
    let mut gone = b.clone();
    gone.build.as_mut().unwrap().spec = "debian:6.1.2-1".into();
    write_results(&gone_path, &[gone]);
    let out = kmatrix(&["rerun", gone_path.to_str().unwrap()], d.path());
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{e}");
    assert!(e.contains("kernel build debian:6.1.2-1") && e.contains("--mirror"), "{e}");

    // The same version with another package hash is another build: refused.
    let other_path = d.path().join("other.jsonl");
    let mut other = b.clone();
    other.build.as_mut().unwrap().sha256 = Some("0".repeat(64));
    write_results(&other_path, &[other]);
    let out = kmatrix(&["rerun", other_path.to_str().unwrap()], d.path());
    common::assert_bad_input(&out, &["is not the one the result ran on", &"0".repeat(64)]);

    // Results from before builds were recorded say how to run the cell instead.
    let old_path = d.path().join("old.jsonl");
    let mut old = b.clone();
    old.build = None;
    write_results(&old_path, &[old]);
    let out = kmatrix(&["rerun", old_path.to_str().unwrap()], d.path());
    common::assert_bad_input(&out, &["kmatrix run --kernels debian-6.1 --scenarios kprobe.tracefs.openat"]);

    // A torn last line is dropped (the run died mid-write); a malformed one elsewhere is named.
    let torn = d.path().join("torn.jsonl");
    std::fs::write(&torn, "not json\n{}\n").unwrap();
    let out = kmatrix(&["rerun", torn.to_str().unwrap()], d.path());
    common::assert_bad_input(&out, &["torn.jsonl:1"]);
}

#[test]
fn vm_rerun_shell_opens_on_the_scenarios_kept_tracefs_state() {
    let d = tempfile::tempdir().unwrap();
    let first = kmatrix(&["run", "--kernels", "debian-6.1", "-s", "kprobe.tracefs.openat", "-p", "count=9"], d.path());
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
    let run = common::run_dirs(d.path())[0].display().to_string();
    let cmd = format!(
        "env PS1='km-prompt$ ' {} rerun {run} --out {} --shell -- /bin/bash --norc --noprofile; echo KMATRIX-EXIT=$?; sleep 600",
        env!("CARGO_BIN_EXE_kmatrix"),
        d.path().display()
    );
    let t = Tmux::start("rerun", 160, 50, &cmd);
    let s = t.wait_for("km-prompt$ ", 1, 180);
    assert!(s.contains("debian-6.1 kprobe.tracefs.openat on debian-6.1: was pass, now pass"), "{s}");
    // The probe the scenario defined is still registered, with its 9 hits, and the trace
    // buffer still holds its 9 entries for the workload.
    t.send(&["echo EVENTS=$(cat /sys/kernel/tracing/kprobe_events | cut -d' ' -f1)", "Enter"]);
    t.wait_for("EVENTS=p:kmatrix/openat", 1, 30);
    t.send(&[
        "echo HITS=$(awk '$1==\"openat\" || $1==\"kmatrix/openat\" {print $2}' /sys/kernel/tracing/kprobe_profile)",
        "Enter",
    ]);
    t.wait_for("HITS=9", 1, 30);
    t.send(&["echo ENTRIES=$(grep -c ' openat: ' /sys/kernel/tracing/trace)", "Enter"]);
    t.wait_for("ENTRIES=9", 1, 30);
    t.send(&["exit 7", "Enter"]);
    let s = t.wait_for("KMATRIX-EXIT=", 1, 60);
    assert!(s.contains("KMATRIX-EXIT=7"), "{s}");
}
