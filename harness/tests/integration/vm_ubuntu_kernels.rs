//! Ubuntu's kernels from Ubuntu's archive (mirror: `KMATRIX_UBUNTU_MIRROR`, else the one the
//! host's debootstrap scripts name), fetched along the chain of trust, extracted and booted for
//! real: 4.15 (gzip payload, a PVH note that is Xen's alone, no BTF: booted as a bzImage) and 5.4
//! (LZ4 legacy payload, PVH, BTF), the same scenarios on both with exact statuses: the BPF
//! paths a kernel has pass (4.15's maps are created without BTF, as libbpf does: the vendored
//! aya's patch), the ones it lacks are `unsupported` naming the missing piece, never `fail`.
//! The whole core lane of every Ubuntu line is in the default matrix (`tests/matrix.rs`), with
//! its pinned statuses in `tests/expected.toml`.

use crate::common;

use kmatrix_proto::Status;

/// The scenarios and what each line must give: the tracefs, perf and CO-RE paths, with the
/// BTF-less 4.15 saying so rather than failing.
const EXPECTED: &[(&str, &str, Status)] = &[
    ("ubuntu-4.15", "ftrace.function.openat", Status::Pass),
    // Read in 128 KiB calls, 4.15's function_graph lines are the calls made; in 1 KiB calls
    // some come twice (kernels/expectations.toml: xfail, with the counts it explains).
    ("ubuntu-4.15", "ftrace.function_graph.openat", Status::Pass),
    ("ubuntu-4.15", "ftrace.trace.small_reads", Status::Xfail),
    ("ubuntu-4.15", "ftrace.event.sys_enter_openat", Status::Pass),
    ("ubuntu-4.15", "kprobe.tracefs.openat", Status::Pass),
    ("ubuntu-4.15", "tracepoint.perf.sys_enter_openat", Status::Pass),
    ("ubuntu-4.15", "bpf.core.task_struct", Status::Unsupported),
    ("ubuntu-4.15", "bpf.kprobe.openat", Status::Pass),
    ("ubuntu-4.15", "bpf.raw_tracepoint.sys_enter", Status::Unsupported),
    ("ubuntu-4.15", "bpf.ringbuf.openat", Status::Unsupported),
    ("ubuntu-4.15", "bpf.fentry.openat", Status::Unsupported),
    ("ubuntu-4.15", "bpf.trace_printk.openat", Status::Unsupported),
    ("ubuntu-5.4", "ftrace.function.openat", Status::Pass),
    ("ubuntu-5.4", "ftrace.function_graph.openat", Status::Pass),
    ("ubuntu-5.4", "ftrace.trace.small_reads", Status::Pass),
    ("ubuntu-5.4", "ftrace.event.sys_enter_openat", Status::Pass),
    ("ubuntu-5.4", "kprobe.tracefs.openat", Status::Pass),
    ("ubuntu-5.4", "tracepoint.perf.sys_enter_openat", Status::Pass),
    ("ubuntu-5.4", "bpf.core.task_struct", Status::Pass),
    ("ubuntu-5.4", "bpf.kprobe.openat", Status::Pass),
    ("ubuntu-5.4", "bpf.raw_tracepoint.sys_enter", Status::Pass),
    ("ubuntu-5.4", "bpf.ringbuf.openat", Status::Unsupported),
    ("ubuntu-5.4", "bpf.fentry.openat", Status::Unsupported),
    ("ubuntu-5.4", "bpf.trace_printk.openat", Status::Unsupported),
];

#[test]
fn vm_ubuntu_kernels_4_15_and_5_4_boot_and_trace_with_exact_statuses() {
    let d = tempfile::tempdir().unwrap();
    let scenarios = "ftrace.function.openat,ftrace.function_graph.openat,ftrace.trace.small_reads,ftrace.event.sys_enter_openat,kprobe.tracefs.openat,\
                     tracepoint.perf.sys_enter_openat,bpf.core.task_struct,bpf.kprobe.openat,\
                     bpf.raw_tracepoint.sys_enter,bpf.ringbuf.openat,bpf.fentry.openat,bpf.trace_printk.openat";
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
    assert!(no_btf.reason.contains("no kernel BTF (CONFIG_DEBUG_INFO_BTF is not set)"), "{no_btf:?}");
    // The evidence: the missing file, and the package's config that has no such option (5.2).
    let evidence = no_btf.evidence.as_deref().unwrap_or_default();
    assert!(
        evidence.contains("/sys/kernel/btf/vmlinux does not exist")
            && evidence.contains("/boot/config-4.15.0-")
            && evidence.contains("no CONFIG_DEBUG_INFO_BTF line"),
        "{no_btf:?}"
    );
    // Each missing piece by name: the map type, the program type, the event, the BTF.
    for (kernel, scenario, why) in [
        ("ubuntu-4.15", "bpf.ringbuf.openat", "BPF map type ringbuf refused"),
        ("ubuntu-5.4", "bpf.ringbuf.openat", "BPF map type ringbuf refused"),
        ("ubuntu-4.15", "bpf.raw_tracepoint.sys_enter", "BPF program type raw_tracepoint refused"),
        ("ubuntu-4.15", "bpf.fentry.openat", "no kernel BTF"),
        ("ubuntu-5.4", "bpf.fentry.openat", "BPF program type tracing refused"),
        ("ubuntu-4.15", "bpf.trace_printk.openat", "event bpf_trace/bpf_trace_printk"),
        ("ubuntu-5.4", "bpf.trace_printk.openat", "event bpf_trace/bpf_trace_printk"),
    ] {
        let r = rs.iter().find(|r| r.kernel == kernel && r.scenario == scenario).unwrap();
        assert!(r.reason.contains(why), "{kernel}::{scenario}: {r:?}");
    }
    // What the provider made of each build: 4.15 without BTF or a usable PVH note (its bzImage
    // boots), 5.4 with both (its vmlinux came out of the LZ4 payload).
    for (id, btf, pvh) in [("ubuntu-4.15", false, false), ("ubuntu-5.4", true, true)] {
        let out = common::kmatrix().args(["kernels", "info", id, "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((info["btf_file"].as_bool(), info["pvh"].as_bool()), (Some(btf), Some(pvh)), "{id}: {info}");
    }
}
