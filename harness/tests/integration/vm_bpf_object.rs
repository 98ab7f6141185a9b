//! `kmatrix run --bpf-object` in real guests: a user's kprobe object passes on Debian 6.1 with
//! exactly one run per openat of the workload; a program the verifier refuses fails with the
//! verifier's log in the excerpt; `core-check`'s verdict agrees with the in-guest load on 5.10
//! and 6.1 (the agent's CO-RE object loads on both, the bogus field fails on both); a corrupt
//! object is bad input (exit 2) before anything boots. Objects are compiled from
//! tests/fixtures/bpf (see its README).

use crate::common;

use common::{build, core_source, cut_object, fixture, json_results};
use kmatrix_proto::{ScenarioResult, Status};
use std::path::Path;

/// `kmatrix run --bpf-object OBJ ARGS --json`: exit code, results, stderr.
fn run(object: &Path, kernels: &str, args: &[&str]) -> (Option<i32>, Vec<ScenarioResult>, String) {
    let d = tempfile::tempdir().unwrap();
    let out = common::kmatrix()
        .args(["run", "--json", "--kernels", kernels, "--bpf-object"])
        .arg(object)
        .args(args)
        .arg("--out")
        .arg(d.path())
        .output()
        .unwrap();
    let results = json_results(&out.stdout);
    (out.status.code(), results, String::from_utf8_lossy(&out.stderr).to_string())
}

/// The (step, ok) pairs the agent reported.
fn steps(r: &ScenarioResult) -> Vec<(String, bool)> {
    r.detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_string(), s["ok"].as_bool().unwrap()))
        .collect()
}

#[test]
fn vm_user_kprobe_object_runs_once_per_openat() {
    let d = tempfile::tempdir().unwrap();
    let obj = build(&fixture("count_openat.bpf.c"), d.path());
    let (code, rs, stderr) = run(
        &obj,
        "debian-6.1",
        &["--program", "count_openat", "--attach", "kprobe:do_sys_openat2", "--workload", "openat-loop:100"],
    );
    assert_eq!(rs.len(), 1, "{stderr}");
    let r = &rs[0];
    assert_eq!(
        (r.kernel.as_str(), r.scenario.as_str(), r.status),
        ("debian-6.1", "bpf.object.load", Status::Pass),
        "{r:#?}"
    );
    assert_eq!(code, Some(0));
    assert_eq!(r.counts.len(), 1);
    assert_eq!((r.counts[0].expected, r.counts[0].observed), (100, 100), "{:?}", r.counts);
    let expected: Vec<(String, bool)> = [
        "load object /user/count_openat.bpf.o",
        "load count_openat (verifier)",
        "attach count_openat to kprobe:do_sys_openat2",
        "run /bin/openat-loop 100 /tmp/kmatrix-openat",
        "detach count_openat",
    ]
    .iter()
    .map(|s| (s.to_string(), true))
    .collect();
    assert_eq!(steps(r), expected);
    // The table and the steps reach the terminal too.
    assert!(stderr.contains("ok    attach count_openat to kprobe:do_sys_openat2"), "{stderr}");
}

#[test]
fn vm_verifier_rejection_carries_the_verifier_log() {
    let d = tempfile::tempdir().unwrap();
    let obj = build(&fixture("reject.bpf.c"), d.path());
    let (code, rs, stderr) =
        run(&obj, "debian-6.1", &["--attach", "tracepoint:syscalls/sys_enter_openat", "--workload", "openat-loop:10"]);
    assert_eq!(rs.len(), 1, "{stderr}");
    let r = &rs[0];
    assert_eq!(r.status, Status::Fail, "{r:#?}");
    assert_eq!(code, Some(1));
    assert_eq!(r.errno, Some(13), "EACCES from BPF_PROG_LOAD");
    assert!(r.reason.contains("load null_deref failed"), "{}", r.reason);
    assert!(r.excerpt.contains("R0 invalid mem access 'map_value_or_null'"), "{}", r.excerpt);
    assert_eq!(
        steps(r),
        [("load object /user/reject.bpf.o".to_string(), true), ("load null_deref".to_string(), false)]
    );
    assert!(stderr.contains("verifier log (end):"), "{stderr}");
}

/// core-check's verdict on each kernel equals the in-guest load's: the same object, the same
/// kernels, one without booting and one booted.
#[test]
fn vm_core_check_agrees_with_the_in_guest_load() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (build(&core_source(), d.path()), "tracepoint:syscalls/sys_enter_openat", true),
        (build(&fixture("bogus_field.bpf.c"), d.path()), "kprobe:do_sys_openat2", false),
    ];
    for (obj, attach, loads) in &cases {
        let check = common::kmatrix()
            .args(["core-check", "--json", "--kernels", "debian-5.10,debian-6.1"])
            .arg(obj)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
        let (code, rs, stderr) =
            run(obj, "debian-5.10,debian-6.1", &["--attach", attach, "--workload", "openat-loop:10"]);
        assert_eq!(rs.len(), 2, "{stderr}");
        for r in &rs {
            let k = report["kernels"].as_array().unwrap().iter().find(|k| k["kernel"] == r.kernel.as_str()).unwrap();
            assert_eq!(k["ok"].as_bool(), Some(*loads), "core-check on {}: {k:#}", r.kernel);
            let status = if *loads { Status::Pass } else { Status::Fail };
            assert_eq!(r.status, status, "{} on {}: {r:#?}", obj.display(), r.kernel);
            if !loads {
                assert!(r.excerpt.contains("invalid func unknown#195896080"), "{}", r.excerpt);
            }
        }
        assert_eq!(code, Some(if *loads { 0 } else { 1 }), "{stderr}");
        assert_eq!(check.status.code(), Some(if *loads { 0 } else { 1 }));
    }
}

#[test]
fn corrupt_object_is_bad_input_before_any_boot() {
    let d = tempfile::tempdir().unwrap();
    let (_, corrupt) = cut_object(d.path(), 3, "corrupt.bpf.o");
    let (code, rs, stderr) = run(&corrupt, "debian-6.1", &["--attach", "kprobe:do_sys_openat2"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(rs.is_empty());
    assert!(stderr.contains(&corrupt.display().to_string()) && stderr.contains("not a BPF object"), "{stderr}");
    assert!(!stderr.contains("booted"), "{stderr}");
    // A program the object lacks, and an attach kind that does not fit the program: named.
    let obj = d.path().join("count_openat.bpf.o");
    let (code, _, stderr) = run(&obj, "debian-6.1", &["--program", "nope"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no program \"nope\"") && stderr.contains("count_openat"), "{stderr}");
    let (code, _, stderr) = run(&obj, "debian-6.1", &["--attach", "fentry:do_sys_openat2"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("is a kprobe program"), "{stderr}");
}

#[test]
fn vm_user_object_with_a_host_command_as_workload_checks_it_ran() {
    let d = tempfile::tempdir().unwrap();
    let obj = build(&fixture("count_openat.bpf.c"), d.path());
    // The user's own trigger: a shell that creates and unlinks a file, hooked at do_unlinkat.
    let unlink = "sh -c 'touch /tmp/kmatrix-unlink && rm /tmp/kmatrix-unlink'";
    let (code, rs, stderr) =
        run(&obj, "debian-6.1", &["--program", "count_openat", "--attach", "kprobe:do_unlinkat", "--workload", unlink]);
    assert_eq!(rs.len(), 1, "{stderr}");
    let r = &rs[0];
    assert_eq!(r.status, Status::Pass, "{r:#?}");
    assert_eq!(code, Some(0));
    let ran = r.counts.iter().find(|c| c.what.contains("ran at least once")).unwrap_or_else(|| panic!("{r:#?}"));
    assert_eq!((ran.expected, ran.observed), (1, 1));
    // A command that never reaches the hook: the same check fails.
    let (code, rs, stderr) = run(
        &obj,
        "debian-6.1",
        &["--program", "count_openat", "--attach", "kprobe:do_unlinkat", "--workload", "/bin/true"],
    );
    assert_eq!(rs.len(), 1, "{stderr}");
    assert_eq!(rs[0].status, Status::Fail, "{:#?}", rs[0]);
    assert!(rs[0].reason.contains("ran at least once"), "{}", rs[0].reason);
    assert_eq!(code, Some(1));
    // A command the host does not have is bad input, before anything boots.
    let (code, rs, stderr) =
        run(&obj, "debian-6.1", &["--attach", "kprobe:do_unlinkat", "--workload", "kmatrix-no-such-cmd -x"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(rs.is_empty() && stderr.contains("kmatrix-no-such-cmd"), "{stderr}");
}

/// libbpf 1.x section names aya-obj does not read as written: `SEC("ksyscall/openat")` is
/// attached from its name alone (no --attach) as a kprobe on the kernel's openat symbol, found
/// in the guest's /proc/kallsyms, and runs exactly once per openat of the workload (the kernel's
/// BPF run statistics against openat-loop's own count); a `SEC("usdt")` program, which kmatrix
/// cannot attach, is `unsupported` naming its section after its object loaded in the guest.
#[test]
fn vm_ksyscall_object_attaches_from_its_section_and_counts_exactly() {
    let d = tempfile::tempdir().unwrap();
    let obj = build(&fixture("ksyscall_openat.bpf.c"), d.path());
    let (code, rs, stderr) = run(&obj, "debian-6.1", &["--workload", "openat-loop:100"]);
    assert_eq!(rs.len(), 1, "{stderr}");
    let r = &rs[0];
    assert_eq!(r.status, Status::Pass, "{r:#?}");
    assert_eq!(code, Some(0));
    assert_eq!(r.counts.len(), 1);
    assert_eq!((r.counts[0].expected, r.counts[0].observed), (100, 100), "{:?}", r.counts);
    let s = steps(r);
    assert!(s.iter().all(|(_, ok)| *ok), "{s:?}");
    assert!(
        s.iter().any(|(step, _)| step == "attach ksyscall_openat to ksyscall:openat (kprobe __x64_sys_openat)"),
        "{s:?}"
    );

    let obj = build(&fixture("libbpf_sections.bpf.c"), d.path());
    let (code, rs, stderr) = run(&obj, "debian-6.1", &["--program", "s_usdt", "--workload", "openat-loop:10"]);
    assert_eq!(rs.len(), 1, "{stderr}");
    let r = &rs[0];
    assert_eq!(r.status, Status::Unsupported, "{r:#?}");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(r.reason.contains("section \"usdt\"") && r.reason.contains("no attach path for usdt"), "{}", r.reason);
    assert_eq!(steps(r), [("load object /user/libbpf_sections.bpf.o".to_string(), true)]);
}

/// `--btf FILE` on a kernel built without BTF (Ubuntu's 4.15.0-213): the agent's CO-RE
/// scenario is `unsupported` without it, and with a BTF made by `kmatrix btf from-headers` from
/// *another* 4.15 build's headers (4.15.0-212) it passes: the pid and tgid read through CO-RE
/// equal the workload's pid from its spawn, on every one of its openat calls.
#[test]
fn vm_external_btf_makes_co_re_work_on_a_btf_less_kernel() {
    let d = tempfile::tempdir().unwrap();
    let btf = d.path().join("vmlinux-4.15.0-212.btf");
    let made = common::kmatrix()
        .args(["btf", "from-headers", "--kernel", "ubuntu:4.15.0-212", "--out"])
        .arg(&btf)
        .output()
        .unwrap();
    assert_eq!(made.status.code(), Some(0), "{}", String::from_utf8_lossy(&made.stderr));
    let core = |extra: &[&str]| {
        let out = common::kmatrix()
            .args(["run", "--json", "--kernels", "ubuntu-4.15", "--scenarios", "bpf.core.task_struct", "--out"])
            .arg(d.path())
            .args(extra)
            .output()
            .unwrap();
        let rs = json_results(&out.stdout);
        assert_eq!(rs.len(), 1, "{}", String::from_utf8_lossy(&out.stderr));
        rs.into_iter().next().unwrap()
    };
    let without = core(&[]);
    assert_eq!(without.status, Status::Unsupported, "{without:#?}");
    assert!(without.reason.contains("BTF"), "{}", without.reason);
    let with = core(&["--btf", btf.to_str().unwrap()]);
    assert_eq!(with.status, Status::Pass, "{with:#?}");
    assert_eq!(with.detail["btf"], "/kmatrix/vmlinux.btf", "{:#}", with.detail);
    let pid = with.detail["pid"].as_u64().unwrap();
    let c = with.counts.iter().find(|c| c.what == format!("events with task->pid = task->tgid = {pid}"));
    let c = c.unwrap_or_else(|| panic!("{:#?}", with.counts));
    assert_eq!((c.expected, c.observed), (10, 10));
    // A file that is not BTF is bad input naming it, before anything boots.
    let obj = build(&fixture("count_openat.bpf.c"), d.path());
    let out = common::kmatrix()
        .args(["run", "--kernels", "ubuntu-4.15", "--scenarios", "bpf.core.task_struct", "--btf"])
        .arg(&obj)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("--btf {} is not BTF", obj.display())), "{stderr}");
    assert!(!stderr.contains("booted"), "{stderr}");
}
