//! Boots the real Debian 6.1 kernel under QEMU (these tests download it on first use) and checks
//! the walking skeleton end to end, through the library and through the `kmatrix` binary.

use crate::common;
use common::kmatrix;

use kmatrix::guest::Guest;

#[tokio::test(flavor = "multi_thread")]
async fn vm_boot_debian_6_1_agent_reports_tracefs_and_kprobe_events() {
    let p = common::prepare("debian-6.1", Vec::new()).await;
    let g = p.start(&p.options("test", Vec::new())).await;
    // The release the guest reports is the one the package is named for.
    let release = &g.caps.kernel.release;
    assert_eq!(release, &p.kernel.release);
    assert_eq!(p.kernel.origin.package.as_deref(), Some(format!("linux-image-{release}").as_str()));
    assert!(release.starts_with("6.1."), "{release}");
    assert_eq!(g.caps.mounted.tracefs.as_deref(), Some("/sys/kernel/tracing"));
    let tracefs = &g.caps.tracefs;
    assert!(tracefs.kprobe_events, "kprobe_events missing from tracefs");
    assert!(tracefs.available_tracers.iter().any(|t| t == "function_graph"), "{:?}", tracefs.available_tracers);
    assert!(tracefs.event_count > 1000, "only {} events", tracefs.event_count);
    assert!(g.caps.btf.vmlinux);
    assert!(g.caps.bpf.syscall);
    assert!(tracefs.has_probe_syntax("r[maxactive]"), "{:?}", tracefs.probe_syntaxes);
    // Attach types probed in the guest: 6.1 attaches kprobes and fentry, but is built without
    // CONFIG_FPROBE, so it has no kprobe_multi links.
    let attach = &g.caps.bpf.attach_types;
    assert!(attach.iter().any(|t| t == "fentry") && attach.iter().any(|t| t == "kprobe"), "{attach:?}");
    assert!(!attach.iter().any(|t| t == "kprobe_multi"), "{attach:?}");
    g.shutdown().await.expect("clean power-off");
}

#[test]
fn vm_boot_cli_prints_record_as_json() {
    let out = kmatrix().args(["boot", "--kernel", "debian-6.1", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["kernel"], "debian-6.1");
    assert_eq!(v["caps"]["tracefs_mount"], "/sys/kernel/tracing");
    // The record's sections stay flat in its JSON: the keys older hosts and files know.
    assert_eq!(v["caps"]["bpf_syscall"], true);
    assert!(v["caps"]["bpf_attach_types"].is_array() && v["caps"]["channel"].is_string(), "{}", v["caps"]);
    assert!(v["caps"].get("tracefs").is_none() && v["caps"].get("bpf").is_none(), "{}", v["caps"]);
    assert_eq!(v["config"]["KPROBE_EVENTS"], "y");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kmatrix: accelerator"), "{stderr}");
}

#[test]
fn vm_boot_guest_panic_is_an_infrastructure_error_with_console_tail() {
    // No such init: the kernel falls back to mounting a root it does not have and panics.
    let out = kmatrix()
        .args(["boot", "--kernel", "debian-6.1", "--append", "rdinit=/kmatrix-missing-init", "--boot-timeout", "60"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Kernel panic - not syncing"), "{stderr}");
    assert!(stderr.contains("console tail"), "{stderr}");
}

#[test]
fn unknown_kernel_id_lists_known_ids() {
    let out = kmatrix().args(["boot", "--kernel", "debian-9.9"]).output().unwrap();
    common::assert_bad_input(&out, &["debian-9.9", "debian-6.1"]);
}

#[test]
fn a_path_that_is_not_a_kernel_is_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("not-a-kernel.bin");
    std::fs::write(&f, b"definitely not a kernel image").unwrap();
    let out = kmatrix().args(["boot", "--kernel"]).arg(&f).output().unwrap();
    common::assert_bad_input(&out, &["not-a-kernel.bin"]);
}

#[test]
fn run_with_a_path_that_is_not_a_kernel_is_refused_before_anything_boots() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("passwd-like");
    std::fs::write(&f, b"root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let out = kmatrix()
        .args(["run", "--scenarios", "ftrace.tracers.available", "--out"])
        .arg(d.path())
        .arg("--kernel")
        .arg(&f)
        .output()
        .unwrap();
    common::assert_bad_input(&out, &["passwd-like", "neither a bzImage"]);
}

#[test]
fn run_refuses_kernel_and_kernels_together_and_bad_timeouts() {
    let out = kmatrix().args(["run", "--kernel", "debian-6.1", "--kernels", "debian-5.10"]).output().unwrap();
    common::assert_bad_input(&out, &["both --kernel debian-6.1 and --kernels debian-5.10"]);
    for (flag, v) in [("--vm-timeout", "0"), ("--scenario-timeout", "nan"), ("--boot-timeout", "-1")] {
        let out = kmatrix().args(["run".to_string(), format!("{flag}={v}")]).output().unwrap();
        common::assert_bad_input(&out, &[flag]);
    }
}

#[test]
fn missing_qemu_says_how_to_install_it() {
    let d = tempfile::tempdir().unwrap();
    let out = kmatrix()
        .args(["boot", "--kernel", "debian-6.1", "--accel", "tcg"])
        .env("KMATRIX_QEMU", d.path().join("no-qemu-here"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("apt-get install qemu-system-x86"), "{stderr}");
}

fn qemu_never_outlives(signal: i32) {
    let mut child = kmatrix().args(["boot", "--kernel", "debian-6.1", "--accel", "tcg"]).spawn().unwrap();
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let qemu = loop {
        let q = common::qemu_children(pid);
        if !q.is_empty() {
            break q;
        }
        assert!(std::time::Instant::now() < deadline, "no QEMU appeared");
        assert!(child.try_wait().unwrap().is_none(), "kmatrix exited before starting QEMU");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid as i32, signal) };
    let _ = child.wait();
    let gone_by = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for q in qemu {
        while std::path::Path::new(&format!("/proc/{q}")).exists()
            && !std::fs::read_to_string(format!("/proc/{q}/stat")).unwrap_or_default().contains(") Z ")
        {
            assert!(std::time::Instant::now() < gone_by, "QEMU {q} outlived kmatrix (signal {signal})");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[test]
fn vm_qemu_dies_with_the_harness_on_sigkill() {
    qemu_never_outlives(libc::SIGKILL);
}

#[test]
fn vm_qemu_dies_with_the_harness_on_ctrl_c() {
    qemu_never_outlives(libc::SIGINT);
}

#[test]
fn vm_exec_runs_a_dynamic_host_program_in_the_guest_and_keeps_its_exit_code() {
    let out = kmatrix().args(["exec", "--kernel", "debian-6.1", "--", "/bin/cat", "/proc/version"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The guest's kernel, not the host's.
    assert!(stdout.starts_with("Linux version 6.1."), "{stdout}");
    let out = kmatrix().args(["exec", "--kernel", "debian-6.1", "--", "/bin/false"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// tracefs files whose content is the tracing state a scenario could leave behind.
const STATE_FILES: &[&str] = &[
    "current_tracer",
    "tracing_on",
    "kprobe_events",
    "uprobe_events",
    "dynamic_events",
    "set_event",
    "set_ftrace_filter",
    "set_ftrace_notrace",
    "set_graph_function",
    "set_ftrace_pid",
    "set_event_pid",
    "trace_options",
    "events/enable",
    "events/syscalls/sys_enter_openat/filter",
    "events/syscalls/sys_enter_openat/trigger",
];

/// The host's `cat` and `ls`, run in the guest through the shared host root.
async fn tracefs_state(g: &mut Guest) -> String {
    let mut state = String::new();
    for f in STATE_FILES {
        let req = kmatrix_proto::ExecRequest {
            argv: vec!["/bin/cat".into(), format!("/sys/kernel/tracing/{f}")],
            root: g.share.clone(),
            ..Default::default()
        };
        let out = g.exec(req, std::time::Duration::from_secs(30)).await.unwrap();
        state.push_str(&format!("== {f} (exit {:?})\n{}{}", out.exit_code, out.stdout, out.stderr));
    }
    let req = kmatrix_proto::ExecRequest {
        argv: vec!["/bin/ls".into(), "/sys/kernel/tracing/instances".into()],
        root: g.share.clone(),
        ..Default::default()
    };
    let out = g.exec(req, std::time::Duration::from_secs(30)).await.unwrap();
    state.push_str(&format!("== instances/\n{}", out.stdout));
    state
}

#[tokio::test(flavor = "multi_thread")]
async fn vm_scenarios_leave_tracefs_as_they_found_it() {
    let p = common::prepare_shared("debian-6.1").await;
    let mut opts = p.options("hygiene", Vec::new());
    opts.share = Some(kmatrix::vm::share::SharePlan::nine_p("the hygiene test starts from a snapshot", Vec::new()));
    let mut g = p.start(&opts).await;
    let baseline = tracefs_state(&mut g).await;
    assert!(baseline.contains("== current_tracer (exit Some(0))\nnop\n"), "{baseline}");
    // Scenarios that set tracers, filters, pid filters, probes, triggers and instances.
    for s in [
        "ftrace.function.openat",
        "ftrace.function_graph.openat",
        "ftrace.event.sys_enter_openat",
        "ftrace.hist.sys_enter_openat",
        "ftrace.instance.marker",
        "kprobe.tracefs.openat",
        "kprobe.eprobe.sys_enter_openat",
        "uprobe.tracefs.hello",
    ] {
        let req = kmatrix_proto::RunRequest { scenario: s.into(), ..Default::default() };
        let r = g.run(req, std::time::Duration::from_secs(120)).await.unwrap();
        assert_ne!(r.status, kmatrix_proto::Status::Error, "{s}: {}", r.reason);
        let after = tracefs_state(&mut g).await;
        assert_eq!(after, baseline, "{s} left tracing state behind");
    }
    g.shutdown().await.unwrap();
}
