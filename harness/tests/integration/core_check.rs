//! `kmatrix core-check` against real kernels' BTF (from the kernel cache; nothing boots): the
//! agent's own CO-RE object (tracer-ebpf `core.bpf.c`) relocates on 5.10 through `state` and on
//! 6.1 through `__state`, the other flavour guarded; an object reading a field no kernel has
//! fails on every kernel with the field named; bad files are bad input naming the file.
//! `vm_bpf_object.rs` checks that the in-guest load agrees.

use crate::common;

use common::{build, core_source, cut_object, fixture};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn core_check(object: &Path, kernels: &str, json: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmatrix"));
    c.args(["core-check"]).arg(object).args(["--kernels", kernels]);
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

fn report(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// The relocation of `program` on `kernel` with this kind and spec: (status, detail).
fn reloc<'a>(r: &'a Value, kernel: &str, program: &str, kind: &str, spec: &str) -> (&'a str, &'a str) {
    let k = r["kernels"].as_array().unwrap().iter().find(|k| k["kernel"] == kernel).unwrap();
    let p = k["programs"].as_array().unwrap().iter().find(|p| p["program"] == program).unwrap();
    let x = p["relocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == kind && x["spec"] == spec)
        .unwrap_or_else(|| panic!("no {kind} {spec} for {program} on {kernel}: {p:#}"));
    (x["status"].as_str().unwrap(), x["detail"].as_str().unwrap())
}

#[test]
fn core_object_reads_state_on_5_10_and_dunder_state_on_6_1() {
    let d = tempfile::tempdir().unwrap();
    let obj = build(&core_source(), d.path());
    let o = core_check(&obj, "debian-5.10,debian-6.1", true);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&o);
    assert_eq!(r["programs"], serde_json::json!(["core_task"]));
    for k in r["kernels"].as_array().unwrap() {
        assert_eq!(k["ok"], true, "{k:#}");
        assert_eq!(k["programs"][0]["ok"], true, "{k:#}");
    }
    // (kernel, kind, spec, status, detail starts with)
    let expected = [
        ("debian-5.10", "field_exists", "task_struct.__state", "applied", "absent"),
        (
            "debian-5.10",
            "field_byte_offset",
            "task_struct.__state",
            "guarded",
            "struct task_struct has no field `__state`",
        ),
        ("debian-5.10", "field_byte_offset", "task_struct___old.state", "applied", "offset 16"),
        ("debian-6.1", "field_exists", "task_struct.__state", "applied", "present"),
        ("debian-6.1", "field_byte_offset", "task_struct.__state", "applied", "offset 24"),
        (
            "debian-6.1",
            "field_byte_offset",
            "task_struct___old.state",
            "guarded",
            "struct task_struct has no field `state`",
        ),
    ];
    for (kernel, kind, spec, status, detail) in expected {
        let (s, d) = reloc(&r, kernel, "core_task", kind, spec);
        assert_eq!((s, d.starts_with(detail)), (status, true), "{kernel} {kind} {spec}: {s} {d}");
    }
    for kernel in ["debian-5.10", "debian-6.1"] {
        for field in ["pid", "tgid", "real_parent", "comm"] {
            let (s, d) = reloc(&r, kernel, "core_task", "field_byte_offset", &format!("task_struct.{field}"));
            assert_eq!(s, "applied", "{kernel} task_struct.{field}: {d}");
        }
    }
    // task_struct moved between the two: the offsets differ, which is what CO-RE is for.
    let pid = |k| reloc(&r, k, "core_task", "field_byte_offset", "task_struct.pid").1.to_string();
    assert_ne!(pid("debian-5.10"), pid("debian-6.1"));
}

#[test]
fn a_field_no_kernel_has_fails_on_every_kernel_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let obj = build(&fixture("bogus_field.bpf.c"), d.path());
    let o = core_check(&obj, "default", true);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&o);
    let kernels = r["kernels"].as_array().unwrap();
    assert!(kernels.len() >= 2);
    for k in kernels {
        let kernel = k["kernel"].as_str().unwrap();
        assert_eq!(k["ok"], false);
        if k["btf"].is_null() {
            // A kernel without BTF (Ubuntu's 4.15) resolves nothing, and says why.
            assert!(k["error"].as_str().unwrap_or("").contains("has no BTF"), "{k:#}");
            continue;
        }
        let (s, d) = reloc(&r, kernel, "read_bogus", "field_byte_offset", "task_struct___bogus.kmatrix_no_such_field");
        assert_eq!(s, "failed", "{kernel}: {d}");
        assert!(d.contains("struct task_struct has no field `kmatrix_no_such_field`"), "{kernel}: {d}");
    }
    // The text report names it too.
    let o = core_check(&obj, "debian-6.1", false);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("FAILED") && text.contains("task_struct___bogus.kmatrix_no_such_field"), "{text}");
}

/// A CO-RE object relocates on every kernel of the default matrix that has BTF; on the one
/// without (Ubuntu's 4.15, in the default matrix) it cannot — as libbpf could not load it there
/// without an external BTF — and the report says why instead of failing opaquely.
#[test]
fn a_portable_object_passes_on_the_default_matrix_and_a_btf_less_kernel_says_why_not() {
    let d = tempfile::tempdir().unwrap();
    let obj = build(&fixture("count_openat.bpf.c"), d.path());
    let o = core_check(&obj, "default", true);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&o);
    let kernels = r["kernels"].as_array().unwrap();
    assert!(kernels.len() >= 9, "{r:#}");
    for k in kernels {
        let kernel = k["kernel"].as_str().unwrap();
        if kernel == "ubuntu-4.15" {
            assert_eq!((k["ok"].as_bool(), k["btf"].is_null()), (Some(false), true), "{k:#}");
        } else {
            assert_eq!(k["ok"], true, "{k:#}");
            assert_eq!(reloc(&r, kernel, "count_openat", "field_byte_offset", "task_struct.tgid").0, "applied");
        }
    }
    let o = core_check(&obj, "debian-5.10,debian-6.1,debian-6.12", false);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("applied  field_byte_offset  task_struct.tgid"), "{text}");
    assert!(text.contains(" 0 with failures"), "{text}");
    let o = core_check(&obj, "ubuntu-4.15", false);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("kernel ubuntu-4.15 has no BTF: CO-RE relocations cannot be resolved"), "{text}");
}

/// libbpf 1.x section names aya-obj does not read as written (`ksyscall/`, `kretsyscall/`,
/// `usdt`, `kprobe.multi/`, `uprobe.multi/`, `fmod_ret/`, `raw_tp.w/`) relocate like any other:
/// every program's read of `task_struct.tgid` lands on the offset a plain `SEC("kprobe")`
/// object (count_openat) gets on the same kernels, each program under libbpf's name for its
/// section.
#[test]
fn libbpf_section_names_relocate_like_plain_kprobes() {
    let d = tempfile::tempdir().unwrap();
    let obj = build(&fixture("libbpf_sections.bpf.c"), d.path());
    let plain = build(&fixture("count_openat.bpf.c"), d.path());
    let kernels = "debian-5.10,debian-6.1";
    let o = core_check(&obj, kernels, true);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&o);
    let w = report(&core_check(&plain, kernels, true));
    let kinds = [
        ("s_fmod_ret", "fmod_ret"),
        ("s_kprobe_multi", "kprobe.multi"),
        ("s_kretsyscall", "kretsyscall"),
        ("s_ksyscall", "ksyscall"),
        ("s_raw_tp", "raw_tracepoint"),
        ("s_raw_tp_w", "raw_tp.w"),
        ("s_tp", "tracepoint"),
        ("s_uprobe_multi", "uprobe.multi"),
        ("s_usdt", "usdt"),
    ];
    assert_eq!(r["programs"], serde_json::json!(kinds.iter().map(|(p, _)| *p).collect::<Vec<_>>()));
    for kernel in kernels.split(',') {
        let (ws, witness) = reloc(&w, kernel, "count_openat", "field_byte_offset", "task_struct.tgid");
        assert_eq!(ws, "applied");
        let k = r["kernels"].as_array().unwrap().iter().find(|k| k["kernel"] == kernel).unwrap();
        for (program, kind) in kinds {
            let p = k["programs"].as_array().unwrap().iter().find(|p| p["program"] == program).unwrap();
            assert_eq!((p["kind"].as_str(), p["ok"].as_bool()), (Some(kind), Some(true)), "{kernel}: {p:#}");
            assert_eq!(p["relocations"].as_array().map(Vec::len), Some(1), "{kernel}: {p:#}");
            let (s, detail) = reloc(&r, kernel, program, "field_byte_offset", "task_struct.tgid");
            assert_eq!((s, detail), ("applied", witness), "{kernel} {program}");
        }
    }
}

/// `--btf FILE`: Ubuntu's 4.15 has no BTF; a BTF made by `kmatrix btf from-headers` from
/// another 4.15 build's headers relocates the agent's CO-RE object there (its `state` flavour,
/// `__state` guarded), and the report says the BTF is external. Kernels with BTF keep their
/// own. A file that is not BTF is bad input naming it.
#[test]
fn an_external_btf_relocates_on_a_btf_less_kernel_and_bad_ones_are_named() {
    let d = tempfile::tempdir().unwrap();
    let obj = build(&core_source(), d.path());
    let btf = d.path().join("k.btf");
    let made = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .args(["btf", "from-headers", "--kernel", "ubuntu:4.15.0-212", "-o"])
        .arg(&btf)
        .output()
        .unwrap();
    assert_eq!(made.status.code(), Some(0), "{}", String::from_utf8_lossy(&made.stderr));
    let o = core_check(&obj, "ubuntu-4.15", true);
    assert_eq!(o.status.code(), Some(1));
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmatrix"));
    c.args(["core-check", "--json", "--kernels", "ubuntu-4.15,debian-6.1", "--btf"]).arg(&btf).arg(&obj);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&o);
    let k = |id: &str| r["kernels"].as_array().unwrap().iter().find(|k| k["kernel"] == id).unwrap().clone();
    assert_eq!(
        (k("ubuntu-4.15")["btf"].as_str(), k("ubuntu-4.15")["external_btf"].as_bool()),
        (btf.to_str(), Some(true))
    );
    assert_eq!(k("debian-6.1")["external_btf"], Value::Null, "{:#}", k("debian-6.1"));
    assert_eq!(reloc(&r, "ubuntu-4.15", "core_task", "field_byte_offset", "task_struct___old.state").0, "applied");
    assert_eq!(reloc(&r, "ubuntu-4.15", "core_task", "field_byte_offset", "task_struct.__state").0, "guarded");
    assert_eq!(
        reloc(&r, "ubuntu-4.15", "core_task", "field_byte_offset", "trace_event_raw_sys_enter.id").1,
        "offset 8"
    );
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmatrix"));
    c.args(["core-check", "--kernels", "ubuntu-4.15", "--btf"]).arg(&obj).arg(&obj);
    let o = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("--btf {} is not BTF", obj.display())), "{stderr}");
}

/// `good` with the length of its `.BTF.ext` CO-RE part 4 bytes short: its last record ends
/// outside the part.
fn short_core_part(good: &[u8]) -> Vec<u8> {
    let elf = kmatrix::elf::Elf::parse(good).unwrap();
    let ext = elf.section(".BTF.ext").unwrap().unwrap().range.unwrap();
    let mut b = good.to_vec();
    let at = ext.start + 28; // core_relo_len
    let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    b[at..at + 4].copy_from_slice(&(len - 4).to_le_bytes());
    b
}

#[test]
fn bad_objects_are_bad_input_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let (good, truncated) = cut_object(d.path(), 2, "truncated.bpf.o");
    let text = d.path().join("text.bpf.o");
    std::fs::write(&text, "not an object\n").unwrap();
    let missing = d.path().join("missing.bpf.o");
    // The CO-RE part of .BTF.ext 4 bytes short: aya-obj 0.3 panics on it (exit 101); the
    // harness's own reader names it first. fuzz/corpus/bpf_object/short-core-part.bpf.o is this.
    let short = d.path().join("short.bpf.o");
    std::fs::write(&short, short_core_part(&good)).unwrap();
    for (path, why) in [
        (&truncated, "is not a BPF object"),
        (&text, "is not an ELF file"),
        (&missing, "cannot read"),
        (&short, "its .BTF.ext is malformed: read the CO-RE record at offset"),
    ] {
        let o = core_check(path, "debian-6.1", false);
        common::assert_bad_input(&o, &[&path.display().to_string(), why]);
    }
    // A sound object on a kernel id the matrix lacks: the id is named.
    let whole = d.path().join("whole.bpf.o");
    std::fs::write(&whole, &good).unwrap();
    let o = core_check(&whole, "no-such-kernel", false);
    common::assert_bad_input(&o, &["no-such-kernel"]);
}
