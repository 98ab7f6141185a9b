//! The scheduler against real failure modes in a real guest (Debian 6.1): a scenario that hangs
//! is timed out and the kernel's other scenarios still run, in a fresh VM; a guest kernel panic
//! becomes `error` with the console tail; each error says its cause and the summary counts them;
//! a scenario that fails once and passes on the automatic retry is `flaky`, with both attempts;
//! results stream to results.jsonl as they arrive; a kernel split over two VMs (a free job slot)
//! gives the same results, each once, in the same order as one VM; and a scenario in a VM
//! always starts from a clean tracefs, whatever the one before it left. After every run here,
//! no process kmatrix started is left (`common::output_leaving_nothing`).

use crate::common;

use kmatrix_proto::{RunRequest, ScenarioResult, Status};
use std::time::Duration;

fn run(scenarios: &str, extra: &[&str]) -> (Option<i32>, Vec<ScenarioResult>, String) {
    let d = tempfile::tempdir().unwrap();
    let out = common::output_leaving_nothing(
        common::kmatrix()
            .args(["run", "--kernels", "debian-6.1", "--scenarios", scenarios, "--json", "--out"])
            .arg(d.path())
            .args(extra),
    );
    let results = common::json_results(&out.stdout);
    // The same results were streamed to the run's results.jsonl.
    let run_dir = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("run-"))
        .unwrap();
    let on_disk = kmatrix::run::results::read(&run_dir.path().join("results.jsonl")).unwrap();
    assert_eq!(on_disk.len(), results.len());
    (out.status.code(), results, String::from_utf8_lossy(&out.stderr).to_string())
}

fn status_of<'a>(rs: &'a [ScenarioResult], id: &str) -> &'a ScenarioResult {
    rs.iter().find(|r| r.scenario == id).unwrap_or_else(|| panic!("no result for {id}: {rs:?}"))
}

#[test]
fn vm_hanging_scenario_times_out_and_the_rest_complete_in_a_fresh_vm() {
    let (code, rs, stderr) = run(
        "ftrace.tracers.available,selftest.hang,kprobe.tracefs.openat",
        &["--scenario-timeout", "6", "--retries", "0"],
    );
    assert_eq!(rs.len(), 3, "{stderr}");
    assert_eq!(status_of(&rs, "ftrace.tracers.available").status, Status::Pass);
    let hang = status_of(&rs, "selftest.hang");
    assert_eq!(hang.status, Status::Error);
    assert!(hang.reason.contains("timed out after 6.0 s"), "{}", hang.reason);
    assert_eq!(hang.cause, Some(kmatrix_proto::Cause::Timeout));
    assert!(stderr.contains("2 passed, 0 failed, 0 unsupported, 0 xfail, 0 flaky, 1 error (1 timeout)"), "{stderr}");
    assert!(!hang.excerpt.is_empty(), "no console evidence");
    let kp = status_of(&rs, "kprobe.tracefs.openat");
    assert_eq!(kp.status, Status::Pass, "{stderr}");
    assert!(stderr.contains("2 boots"), "the rest did not run in a fresh VM: {stderr}");
    // Every result says the exact build it ran on (the locked package version, not the line)
    // and the parameters it ran with (the catalogue's defaults: count=100 for this one).
    let lock = kmatrix::kernel::KernelsDir::locate(None).lock().unwrap();
    let version = &lock.kernels["debian-6.1"].version;
    for r in &rs {
        let b = r.build.as_ref().unwrap_or_else(|| panic!("{} has no build", r.scenario));
        assert_eq!(b.spec, format!("debian:{version}"), "{}", r.scenario);
        assert_eq!(b.sha256.as_deref(), Some(lock.kernels["debian-6.1"].packages[0].sha256.as_str()));
    }
    assert_eq!(kp.params.get("count").map(String::as_str), Some("100"), "{:?}", kp.params);
    assert_eq!(code, Some(3), "an infrastructure error must give exit code 3");
}

#[test]
fn vm_guest_panic_is_an_error_with_the_console_tail() {
    let (code, rs, stderr) = run("selftest.panic,ftrace.tracers.available", &["--retries", "0"]);
    assert_eq!(rs.len(), 2, "{stderr}");
    let p = status_of(&rs, "selftest.panic");
    assert_eq!(p.status, Status::Error);
    assert!(p.reason.contains("guest kernel panicked"), "{}", p.reason);
    assert_eq!(p.cause, Some(kmatrix_proto::Cause::KernelOops));
    assert!(p.excerpt.contains("Kernel panic - not syncing"), "{}", p.excerpt);
    assert!(p.excerpt.contains("sysrq"), "{}", p.excerpt);
    assert_eq!(status_of(&rs, "ftrace.tracers.available").status, Status::Pass);
    assert_eq!(code, Some(3));
}

#[test]
fn vm_a_scenario_that_fails_once_and_passes_on_the_retry_is_flaky_with_both_attempts() {
    let (code, rs, stderr) = run("selftest.flaky,ftrace.tracers.available", &[]);
    assert_eq!(rs.len(), 2, "{stderr}");
    let f = status_of(&rs, "selftest.flaky");
    assert_eq!((f.status, f.agent_status), (Status::Flaky, Some(Status::Pass)), "{f:?}");
    let first = f.previous.as_deref().expect("the first attempt is kept");
    assert_eq!(first.status, Status::Fail);
    assert!(first.reason.contains("fails on purpose"), "{}", first.reason);
    assert!(f.verdict.as_deref().unwrap_or("").starts_with("flaky: the first attempt gave fail"), "{:?}", f.verdict);
    assert!(stderr.contains("1 passed, 0 failed, 0 unsupported, 0 xfail, 1 flaky, 0 error"), "{stderr}");
    assert_eq!(code, Some(0), "flaky is not a failure");
    // Without the retry it is what it was: a failure.
    let (code, rs, stderr) = run("selftest.flaky", &["--retries", "0"]);
    assert_eq!((rs.len(), rs[0].status, rs[0].previous.is_none()), (1, Status::Fail, true), "{stderr}");
    assert_eq!(code, Some(1));
}

#[test]
fn unknown_scenario_pattern_is_bad_input_naming_it() {
    let out = common::kmatrix().args(["run", "--kernels", "debian-6.1", "--scenarios", "nosuch.*"]).output().unwrap();
    common::assert_bad_input(&out, &["nosuch.*"]);
}

/// A failure an expectation names with its cause is not run twice: 6.1's eprobe string fetch
/// (kernels/expectations.toml) comes out `xfail` from one attempt. With an expectation whose
/// cause the run does not show, the same failure is retried and stays `fail`.
#[test]
fn vm_a_known_failure_is_not_retried_and_an_unknown_one_is() {
    let id = "kprobe.eprobe.sys_enter_openat";
    let (_, rs, stderr) = run(id, &["--retries", "1"]);
    let r = status_of(&rs, id);
    assert_eq!((r.status, r.previous.is_none()), (Status::Xfail, true), "{stderr}");
    assert!(!stderr.contains("retrying it once"), "{stderr}");

    let d = tempfile::tempdir().unwrap();
    let other = d.path().join("expectations.toml");
    let text = format!(
        "[[expect]]\nkernel = \"debian-6.1\"\nscenario = \"{id}\"\nstatus = \"fail\"\nreason = \"a test\"\ncause = \"a cause no run shows\"\n"
    );
    std::fs::write(&other, text).unwrap();
    let (_, rs, stderr) = run(id, &["--retries", "1", "--expectations", other.to_str().unwrap()]);
    let r = status_of(&rs, id);
    assert_eq!(r.status, Status::Fail, "{stderr}");
    assert_eq!(r.previous.as_ref().map(|p| p.status), Some(Status::Fail), "{stderr}");
    assert!(stderr.contains("retrying it once"), "{stderr}");
}

/// `--kernels arm64` in a project whose matrix has no arm64 kernel: bad input naming the group,
/// not an empty run that falls back to the default matrix.
#[test]
fn an_empty_kernel_group_is_bad_input_naming_it() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("kernels")).unwrap();
    let matrix = "[[kernel]]\nid = \"only-6.1\"\ndistro = \"debian\"\nsuite = \"bookworm\"\nline = \"6.1\"\n";
    std::fs::write(d.path().join("kernels/matrix.toml"), matrix).unwrap();
    let out = common::kmatrix()
        .args(["run", "--kernels", "arm64", "--scenarios", "ftrace.tracers.available"])
        .env_remove("KMATRIX_KERNELS_DIR")
        .current_dir(d.path())
        .output()
        .unwrap();
    common::assert_bad_input(&out, &["--kernels arm64", "only-6.1"]);
}

/// `--jobs 2` with one kernel: the second job slot is free from the start, so once the kernel's
/// first VM is up a second one restored from its snapshot takes scenarios from the back of the
/// queue. Same cells, same statuses, each once, in the plan's order on stdout and on disk, as
/// the same run in one VM.
#[test]
fn vm_a_kernel_split_over_two_vms_gives_the_same_results_once_each_in_plan_order() {
    // 27 scenarios, a few seconds in all: enough left for a helper VM to be worth its restore.
    let pattern = "ftrace.*";
    // A machine that meets every cell (the per-CPU and block scenarios would otherwise get a
    // fitted guest of their own, a second VM even with one job slot).
    let machine = ["--cpus", "2", "--disk", "64M"];
    let (code1, one, stderr1) = run(pattern, &[&["--jobs", "1", "--lane", "core"][..], &machine].concat());
    let (code2, split, stderr2) = run(pattern, &[&["--jobs", "2", "--lane", "core"][..], &machine].concat());
    assert!(stderr1.contains("(1 boot,"), "one job slot, one VM: {stderr1}");
    assert!(stderr2.contains("second VM takes scenarios"), "the free slot did not split the kernel: {stderr2}");
    assert!(stderr2.contains("2 boots"), "{stderr2}");
    let ids = |rs: &[ScenarioResult]| rs.iter().map(|r| r.scenario.clone()).collect::<Vec<_>>();
    assert!(one.len() > 20, "{stderr1}");
    let mut dedup = ids(&split);
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), split.len(), "a result came twice: {:?}", ids(&split));
    assert_eq!(ids(&split), ids(&one), "lost or reordered by the split");
    for (a, b) in one.iter().zip(&split) {
        assert_eq!((a.status, &a.reason), (b.status, &b.reason), "{} differs between one VM and two", a.scenario);
    }
    assert_eq!((code1, code2), (code1, code1));
}

/// A scenario that keeps its state (`keep_state`, as `rerun --shell` runs it) leaves its kprobe
/// defined and enabled; the same scenario run next in that VM defines the same probe, which the
/// kernel refuses while the old one exists: it passes only if the reset before it really ran.
/// The run after it starts from a reset the agent skips (the last one was verified clean and
/// nothing ran since) and must pass too.
#[tokio::test(flavor = "multi_thread")]
async fn vm_each_scenario_starts_clean_after_one_that_kept_its_state() {
    let p = common::prepare("debian-6.1", Vec::new()).await;
    let mut opts = p.options("hygiene", Vec::new());
    opts.snapshots = Some(p.session.cache.clone());
    let mut g = p.start(&opts).await;
    let kprobe = |keep_state| RunRequest { scenario: "kprobe.tracefs.openat".into(), keep_state, ..Default::default() };
    for (step, keep) in [("kept", true), ("after the kept one", false), ("after a clean one", false)] {
        let r = g.run(kprobe(keep), Duration::from_secs(60)).await.unwrap();
        assert_eq!(r.status, Status::Pass, "{step}: {}", r.reason);
    }
    g.kill().await;
}

/// The binary alone, outside any project: copied into an empty directory and run from there with
/// no `KMATRIX_KERNELS_DIR`, it uses the built-in matrix with its lock *and* its expectations, so
/// the core lane on Debian 6.1 gets the same statuses as the same run in the repository. Before
/// the expectations were built in, Debian 6.1's known config gaps (irqsoff, preemptoff, the eprobe
/// string fetch, kprobe_multi) were four failures there.
#[test]
fn vm_the_binary_alone_gives_the_repositorys_verdicts() {
    let alone = tempfile::tempdir().unwrap();
    assert!(kmatrix::kernel::KernelsDir::discover(alone.path()).unwrap().is_none(), "{:?} is in a project", alone);
    let exe = alone.path().join("kmatrix");
    std::fs::copy(env!("CARGO_BIN_EXE_kmatrix"), &exe).unwrap();
    let statuses = |exe: &std::path::Path, cwd: &std::path::Path| {
        let out_dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(exe)
            .current_dir(cwd)
            .env_remove("KMATRIX_KERNELS_DIR")
            .env_remove("KMATRIX_QEMU")
            .args(["run", "--kernels", "debian-6.1", "--lane", "core", "--json", "--out"])
            .arg(out_dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let by_id: std::collections::BTreeMap<String, Status> =
            common::json_results(&out.stdout).into_iter().map(|r| (r.scenario, r.status)).collect();
        (out.status.code(), by_id, stderr)
    };
    let (code, here, stderr) = statuses(&exe, alone.path());
    assert!(stderr.contains("the built-in matrix, with its lock and expectations"), "{stderr}");
    let (repo_code, repo, repo_stderr) = statuses(env!("CARGO_BIN_EXE_kmatrix").as_ref(), &common::root());
    assert!(repo_stderr.contains(&common::root().join("kernels/matrix.toml").display().to_string()), "{repo_stderr}");
    assert_eq!(here, repo, "alone:\n{stderr}\nin the repository:\n{repo_stderr}");
    assert_eq!((code, repo_code), (Some(0), Some(0)), "alone:\n{stderr}\nin the repository:\n{repo_stderr}");
    for id in ["ftrace.tracer.irqsoff", "ftrace.tracer.preemptoff", "kprobe.eprobe.sys_enter_openat"] {
        assert_eq!(here.get(id), Some(&Status::Xfail), "{id}: {stderr}");
    }
}
