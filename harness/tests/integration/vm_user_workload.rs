//! `kmatrix run --workload 'CMD'` for the scenarios that take a workload (`kprobe.tracefs.any`,
//! `ftrace.event.any`), in real Debian 6.1 guests: a user's shell line run through the shared
//! host root, its whole process tree counted (the shell, `touch`, `rm`, `ls`: four execs, one
//! unlink), "at least once" by default and exact with `--expect-runs`, both ways; a command that
//! never reaches the hook fails; a function or event the kernel lacks is its refusal with the
//! evidence; a `--workload` no selected scenario takes is bad input before anything boots; the
//! command runs in the caller's directory.

use crate::common;

use kmatrix_proto::{ScenarioResult, Status};

/// The user's trigger: one unlink, and four execs counting the gate shell's own `exec sh`.
const SHELL_LINE: &str = "sh -c 'touch /tmp/kmatrix-k && rm /tmp/kmatrix-k; ls / >/dev/null'";

/// `kmatrix run --json --kernels debian-6.1 --scenarios '*.any' ARGS`: exit code, results by
/// scenario id, stderr.
fn run(args: &[&str]) -> (Option<i32>, Vec<ScenarioResult>, String) {
    run_of("*.any", args)
}

/// `kmatrix run` as [`run`] does, of the scenarios `scenarios`.
fn run_of(scenarios: &str, args: &[&str]) -> (Option<i32>, Vec<ScenarioResult>, String) {
    run_in(env!("CARGO_MANIFEST_DIR").as_ref(), scenarios, args)
}

/// [`run_of`] from the directory `cwd`.
fn run_in(cwd: &std::path::Path, scenarios: &str, args: &[&str]) -> (Option<i32>, Vec<ScenarioResult>, String) {
    let d = tempfile::tempdir().unwrap();
    let out = common::kmatrix()
        .current_dir(cwd)
        .args(["run", "--json", "--retries", "0", "--kernels", "debian-6.1", "--scenarios", scenarios])
        .args(["--param", "function=do_unlinkat", "--param", "event=sched/sched_process_exec"])
        .args(args)
        .arg("--out")
        .arg(d.path())
        .output()
        .unwrap();
    let mut results: Vec<ScenarioResult> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    results.sort_by(|a, b| a.scenario.cmp(&b.scenario));
    (out.status.code(), results, String::from_utf8_lossy(&out.stderr).to_string())
}

fn hits(r: &ScenarioResult) -> u64 {
    r.detail["hits"].as_u64().unwrap_or_else(|| panic!("{r:#?}"))
}

#[test]
fn vm_a_users_command_is_counted_over_its_process_tree() {
    let (code, rs, stderr) = run(&["--workload", SHELL_LINE]);
    let ids: Vec<&str> = rs.iter().map(|r| r.scenario.as_str()).collect();
    assert_eq!(ids, ["ftrace.event.any", "kprobe.tracefs.any"], "{stderr}");
    for r in &rs {
        assert_eq!(r.status, Status::Pass, "{r:#?}");
        assert!(r.counts[0].what.ends_with("(at least once)"), "{r:#?}");
        assert_eq!(r.detail["pids"].as_array().map(Vec::len), Some(4), "{r:#?}");
    }
    assert_eq!((hits(&rs[0]), hits(&rs[1])), (4, 1));
    assert_eq!(code, Some(0));

    // Exact: four execs pass, one unlink is not four.
    let (code, rs, stderr) = run(&["--workload", SHELL_LINE, "--expect-runs", "4"]);
    assert_eq!(rs.len(), 2, "{stderr}");
    assert_eq!(rs[0].status, Status::Pass, "{:#?}", rs[0]);
    assert_eq!(rs[1].status, Status::Fail, "{:#?}", rs[1]);
    assert!(rs[1].reason.contains("expected 4, observed 1"), "{}", rs[1].reason);
    assert_eq!(code, Some(1));
}

#[test]
fn vm_a_command_that_misses_the_hook_fails_and_a_missing_event_is_refused() {
    let (code, rs, stderr) = run(&["--workload", "/bin/true", "--param", "event=sched/kmatrix_no_such_event"]);
    assert_eq!(rs.len(), 2, "{stderr}");
    // No event: the agent's unsupported, judged a failure (the path exists since 2.6.31).
    assert_eq!(rs[0].status, Status::Fail, "{:#?}", rs[0]);
    assert_eq!(rs[0].agent_status, Some(Status::Unsupported), "{:#?}", rs[0]);
    assert!(rs[0].evidence.as_deref().unwrap_or("").contains("sched_process_exec"), "{:#?}", rs[0]);
    // `true` unlinks nothing.
    assert_eq!(rs[1].status, Status::Fail, "{:#?}", rs[1]);
    assert!(rs[1].reason.contains("at least once"), "{}", rs[1].reason);
    assert_eq!(code, Some(1));
}

#[test]
fn vm_a_function_the_kernel_lacks_is_its_refusal() {
    let (_, rs, stderr) =
        run_of("kprobe.tracefs.any", &["--workload", "/bin/true", "--param", "function=kmatrix_no_such_fn"]);
    assert_eq!(rs.len(), 1, "{stderr}");
    assert_eq!(rs[0].agent_status, Some(Status::Unsupported), "{:#?}", rs[0]);
    // ENOENT: kprobe_events finds no such symbol.
    assert_eq!(rs[0].errno, Some(2), "{:#?}", rs[0]);
    assert!(rs[0].reason.contains("kmatrix_no_such_fn"), "{}", rs[0].reason);
}

#[test]
fn a_workload_no_selected_scenario_takes_is_bad_input() {
    let out = common::kmatrix()
        .args(["run", "--kernels", "debian-6.1", "--scenarios", "kprobe.tracefs.openat", "--workload", "hello:3"])
        .output()
        .unwrap();
    common::assert_bad_input(&out, &["none of the selected scenarios takes a workload", "kprobe.tracefs.any"]);
}

/// A host command runs in the caller's directory (through the shared root), as a shell would
/// run it there: a relative path it opens is found from where kmatrix was started, not from the
/// guest's `/tmp`, also when that directory is under the host's `/tmp` (a scratch clone), from a
/// cold boot and from a snapshot. The program checks its `pwd` and the file beside it against
/// what it is told: from a directory with another file the same command fails; from the guest's
/// own `/proc` the command is refused before anything boots.
#[test]
fn vm_a_users_command_runs_in_the_callers_directory() {
    let check = "#!/bin/sh\ntest \"$(pwd)\" = \"$1\" && test \"$(cat kmatrix-here)\" = \"$2\"\n";
    let place = |token: &str| {
        let d = tempfile::tempdir_in("/tmp").unwrap();
        std::fs::write(d.path().join("kmatrix-here"), token).unwrap();
        let p = d.path().join("check.sh");
        std::fs::write(&p, check).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        d
    };
    let token = format!("token-{}", std::process::id());
    let here = place(&token);
    let workload = format!("./check.sh {} {token}", here.path().display());
    let args = ["--workload", &workload, "--param", "event=sched/sched_process_exec"];
    for snapshot in ["off", "on"] {
        let (code, rs, stderr) =
            run_in(here.path(), "ftrace.event.any", &[&args[..], &["--snapshot", snapshot]].concat());
        assert_eq!(rs.len(), 1, "snapshot {snapshot}: {stderr}");
        assert_eq!(rs[0].status, Status::Pass, "snapshot {snapshot}: {:#?}", rs[0]);
        assert_eq!(code, Some(0));
    }
    // The same command line from a directory whose file says something else.
    let elsewhere = place("another-token");
    let (_, rs, stderr) = run_in(elsewhere.path(), "ftrace.event.any", &args);
    assert_eq!(rs.len(), 1, "{stderr}");
    assert_eq!(rs[0].status, Status::Fail, "{:#?}", rs[0]);
    assert!(rs[0].reason.contains("workload ended with exit 1"), "{}", rs[0].reason);
    let (code, rs, stderr) = run_in("/proc/self".as_ref(), "ftrace.event.any", &["--workload", "/bin/true"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(rs.is_empty() && stderr.contains("/proc there is the guest's own"), "{stderr}");
}

/// `--workload` and `--expect-runs` go to every selected scenario; the BPF object self-test
/// (`bpf.object.load` without `--bpf-object`) keeps its own workload and count. Before it did,
/// this run failed it with "expected 1, observed 2".
#[test]
fn vm_the_bpf_object_self_test_keeps_its_own_workload() {
    let (_, rs, stderr) = run_of("bpf.object.load", &["--workload", "/bin/true", "--expect-runs", "1"]);
    assert_eq!(rs.len(), 1, "{stderr}");
    assert_eq!(rs[0].status, Status::Pass, "{:#?}", rs[0]);
    assert_eq!(rs[0].counts[0].expected, 10, "{:#?}", rs[0]);
}
