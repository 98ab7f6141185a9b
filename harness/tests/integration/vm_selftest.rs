//! The kernel's own ftracetest through kmatrix on the real Debian 6.1, from Debian's
//! linux-source-6.1 (downloaded and verified on first use): a handful of cases with exact
//! statuses, mapped to `selftest.ftrace.<dir>.<file>` results in a run directory.

use crate::common;

use kmatrix_proto::Status;

#[test]
fn vm_selftest_ftrace_cases_become_results_with_ftracetest_statuses() {
    let d = tempfile::tempdir().unwrap();
    let out = common::kmatrix()
        .args(["selftest", "ftrace", "--kernels", "debian-6.1", "--json", "--out"])
        .arg(d.path())
        .args(["--tests", "00basic/basic1.tc,kprobe/kprobe_args.tc,preemptirq/irqsoff_tracer.tc"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rs = common::json_results(&out.stdout);
    let got: Vec<(&str, Status)> = rs.iter().map(|r| (r.scenario.as_str(), r.status)).collect();
    assert_eq!(
        got,
        vec![
            ("selftest.ftrace.00basic.basic1", Status::Pass),
            ("selftest.ftrace.kprobe.kprobe_args", Status::Pass),
            // Debian builds no irqsoff tracer: ftracetest's own `requires:` says UNSUPPORTED.
            ("selftest.ftrace.preemptirq.irqsoff_tracer", Status::Unsupported),
        ],
        "{stderr}"
    );
    assert!(rs.iter().all(|r| r.kernel == "debian-6.1"));
    assert!(stderr.contains("ftracetest from linux-source-6.1 "), "{stderr}");
    // The run directory renders like any other.
    let run = std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
    let on_disk = kmatrix::run::results::read(&run.join("results.jsonl")).unwrap();
    assert_eq!(on_disk.len(), 3);
    // A test that does not exist is bad input, named.
    let out = common::kmatrix()
        .args(["selftest", "ftrace", "--kernels", "debian-6.1", "--tests", "00basic/no_such_case.tc", "--out"])
        .arg(d.path())
        .output()
        .unwrap();
    common::assert_bad_input(&out, &["00basic/no_such_case.tc"]);
}

/// ftracetest killed at `--timeout` (half a second: less than bash and ftracetest's own start
/// take under TCG) is not a run of the cases it reached: every case it did not reach is
/// `error (timeout)`, and the exit code is the infrastructure's.
#[test]
fn vm_selftest_ftrace_cut_at_the_timeout_is_an_error_for_every_case_not_reached() {
    let d = tempfile::tempdir().unwrap();
    let tests = ["00basic/basic1.tc", "00basic/basic2.tc", "kprobe/kprobe_args.tc"];
    let out = common::kmatrix()
        .args(["selftest", "ftrace", "--kernels", "debian-6.1", "--json", "--timeout", "0.5", "--out"])
        .arg(d.path())
        .args(["--tests", &tests.join(",")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let rs = common::json_results(&out.stdout);
    let mut ids: Vec<&str> = rs.iter().map(|r| r.scenario.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["selftest.ftrace.00basic.basic1", "selftest.ftrace.00basic.basic2", "selftest.ftrace.kprobe.kprobe_args"],
        "{stderr}"
    );
    let cut: Vec<_> = rs.iter().filter(|r| r.status == Status::Error).collect();
    assert!(!cut.is_empty(), "{rs:?}");
    assert!(
        cut.iter().all(|r| r.cause == Some(kmatrix_proto::Cause::Timeout) && r.reason.contains("timed out")),
        "{cut:?}"
    );
}
