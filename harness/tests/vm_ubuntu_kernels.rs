//! Ubuntu's kernels from Ubuntu's archive (mirror: `KMATRIX_UBUNTU_MIRROR`, else the one the
//! host's debootstrap scripts name), fetched along the chain of trust, extracted and booted for
//! real: 4.15 (gzip payload, a PVH note that is Xen's alone, no BTF: booted as a bzImage) and 5.4
//! (LZ4 legacy payload, PVH, BTF), the same scenarios on both with exact statuses.

mod common;

use kmatrix_proto::Status;

/// The scenarios and what each line must give: the tracefs, perf and CO-RE paths, with the
/// BTF-less 4.15 saying so rather than failing.
const EXPECTED: &[(&str, &str, Status)] = &[
    ("ubuntu-4.15", "ftrace.function.openat", Status::Pass),
    ("ubuntu-4.15", "ftrace.event.sys_enter_openat", Status::Pass),
    ("ubuntu-4.15", "kprobe.tracefs.openat", Status::Pass),
    ("ubuntu-4.15", "tracepoint.perf.sys_enter_openat", Status::Pass),
    ("ubuntu-4.15", "bpf.core.task_struct", Status::Unsupported),
    ("ubuntu-5.4", "ftrace.function.openat", Status::Pass),
    ("ubuntu-5.4", "ftrace.event.sys_enter_openat", Status::Pass),
    ("ubuntu-5.4", "kprobe.tracefs.openat", Status::Pass),
    ("ubuntu-5.4", "tracepoint.perf.sys_enter_openat", Status::Pass),
    ("ubuntu-5.4", "bpf.core.task_struct", Status::Pass),
];

#[test]
fn vm_ubuntu_kernels_4_15_and_5_4_boot_and_trace_with_exact_statuses() {
    let d = tempfile::tempdir().unwrap();
    let scenarios = "ftrace.function.openat,ftrace.event.sys_enter_openat,kprobe.tracefs.openat,\
                     tracepoint.perf.sys_enter_openat,bpf.core.task_struct";
    let out = common::kmatrix()
        .args(["run", "--kernels", "ubuntu-4.15,ubuntu-5.4", "-s", scenarios, "--json", "--out"])
        .arg(d.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rs = common::json_results(&out.stdout);
    let mut got: Vec<(&str, &str, Status)> =
        rs.iter().map(|r| (r.kernel.as_str(), r.scenario.as_str(), r.status)).collect();
    got.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut want = EXPECTED.to_vec();
    want.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    assert_eq!(got, want, "{stderr}");
    let no_btf = rs.iter().find(|r| r.kernel == "ubuntu-4.15" && r.scenario == "bpf.core.task_struct").unwrap();
    assert!(no_btf.reason.contains("kernel BTF absent"), "{no_btf:?}");
    // What the provider made of each build: 4.15 without BTF or a usable PVH note (its bzImage
    // boots), 5.4 with both (its vmlinux came out of the LZ4 payload).
    for (id, btf, pvh) in [("ubuntu-4.15", false, false), ("ubuntu-5.4", true, true)] {
        let out = common::kmatrix().args(["kernels", "info", id, "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((info["btf_file"].as_bool(), info["pvh"].as_bool()), (Some(btf), Some(pvh)), "{id}: {info}");
    }
}
