//! kmatrix's fuzz targets: one function per parser of outside input, fed arbitrary bytes. Each
//! must return (an `Err` is fine) without a panic, a hang or an allocation out of proportion to
//! its input, whatever the bytes.
//!
//! `fuzz_targets/<name>.rs` hands each function to libFuzzer (`cargo +nightly fuzz run <name>`,
//! see README.md); the `replay` tests run every corpus under `corpus/<name>/` with deterministic
//! mutations on stable, as part of `cargo test --workspace`. What it is not: a place for checks of
//! what the parsers return on good input; their unit tests hold those.
//!
//! The tracefs parsers the agent uses live in `kmatrix_proto::tracefs` (and `ftrace::graph`), so
//! their targets are here too ([`tracefs`]).

pub mod mutate;
#[cfg(test)]
mod replay;
pub mod tracefs;

use std::io::Read;
use std::path::Path;

use kmatrix::bpf_object::ObjectError;
use kmatrix::btf::ext::BtfExt;
use kmatrix::btf::BtfTable;
use kmatrix::kernel::compress::{decompress_all, decompress_first_stream, Compression};
use kmatrix::kernel::config::{KernelConfig, TRACING_OPTIONS};
use kmatrix::kernel::index::{self, Signature, SuiteIndex};
use kmatrix::kernel::{bzimage, deb, modules, version, Lock, Matrix};
use kmatrix::run::verdict::{Expectations, Role};
use kmatrix::vm::channel::{decode, Frame, LineDecoder};
use kmatrix::vm::console::ConsoleState;

/// One fuzz target: its name (the cargo-fuzz binary and the corpus directory) and its function.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, as `fuzz_targets/` and `corpus/` name them.
pub const TARGETS: &[Target] = &[
    Target { name: "channel", run: channel },
    Target { name: "console", run: console },
    Target { name: "release", run: release },
    Target { name: "packages", run: packages },
    Target { name: "deb", run: deb },
    Target { name: "compress", run: compress },
    Target { name: "kernel_image", run: kernel_image },
    Target { name: "config", run: config },
    Target { name: "matrix", run: matrix },
    Target { name: "lock", run: lock },
    Target { name: "expectations", run: expectations },
    Target { name: "elf", run: elf },
    Target { name: "btf", run: btf },
    Target { name: "btf_ext", run: btf_ext },
    Target { name: "bpf_object", run: bpf_object },
    Target { name: "results", run: results },
    Target { name: "trace", run: tracefs::trace_lines },
    Target { name: "function_graph", run: tracefs::function_graph },
    Target { name: "format", run: tracefs::event_format },
    Target { name: "kprobe_profile", run: tracefs::kprobe_profile },
    Target { name: "hist", run: tracefs::hist_file },
    Target { name: "readme", run: tracefs::readme_syntaxes },
    Target { name: "stats", run: tracefs::buffer_stats },
];

/// Output limit for the decompressing targets: far above what a few KB of input can honestly
/// expand to, far below what would hurt.
const LIMIT: usize = 64 << 20;

/// The guest channel, host side: bytes in chunks (sizes drawn from the first byte) through the
/// line decoder with a small bound (so over-long lines happen), each line decoded into a message
/// and written back out.
pub fn channel(data: &[u8]) {
    let Some((&seed, data)) = data.split_first() else { return };
    let max = 64 + usize::from(seed) * 64;
    let mut decoder = LineDecoder::new(max);
    let mut frames = Vec::new();
    let mut rest = data;
    let mut step = u32::from(seed) | 1;
    while !rest.is_empty() {
        step = step.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = (1 + (step >> 16) as usize % 700).min(rest.len());
        decoder.push(&rest[..n], &mut frames);
        assert!(decoder.pending() <= max, "the decoder holds {} bytes, over its bound {max}", decoder.pending());
        rest = &rest[n..];
    }
    frames.extend(decoder.finish());
    for f in frames {
        if let Frame::Line(line) = f {
            // The bound is on raw bytes; each invalid UTF-8 byte becomes U+FFFD (3 bytes).
            assert!(line.len() <= 3 * max, "a line of {} bytes passed the bound {max}", line.len());
            if let Ok(msg) = decode(&line) {
                let _ = serde_json::to_string(&msg);
            }
        }
    }
}

/// The console watcher: the guest's console bytes, then the same bytes as QEMU's stderr lines.
pub fn console(data: &[u8]) {
    let mut c = ConsoleState::default();
    c.feed(data);
    for line in String::from_utf8_lossy(data).lines() {
        c.feed_qemu(line);
    }
    let _ = (c.tail(), c.distress().len(), c.panicked(), c.accel_failed(), c.qemu_stderr());
}

/// A Release file, clear-signed or not.
pub fn release(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = index::parse_release(&text, "fuzz");
    if let Some(inner) = index::strip_clearsign(&text) {
        let _ = index::parse_release(&inner, "fuzz");
    }
}

/// A Packages index: filtered to kernel stanzas, parsed, and every question the provider asks
/// of it (newest build of each line, builds in order, a version, the 7.x split packages).
pub fn packages(data: &[u8]) {
    let Ok(text) = index::filter_packages(data, "fuzz") else { return };
    let packages = index::parse_packages(&text);
    let versions: Vec<String> = packages.iter().take(4).map(|p| p.version.clone()).collect();
    let idx = SuiteIndex { suite: "fuzz".into(), arch: Default::default(), signature: Signature::Good, packages };
    for line in ["5.10", "6.1", "6.12", "7.3"] {
        let _ = index::builds_of_line(&idx, line, "amd64");
        let _ = index::pick_line(&idx, line, "amd64");
    }
    let all = [idx];
    for v in &versions {
        let _ = index::pick_version(&all, v, "amd64");
        let _ = index::pick_version(&all, version::upstream(v), "amd64");
    }
    let mut sorted = versions;
    sorted.sort_by(|a, b| version::compare(a, b));
}

/// A `.deb`: the ar container, the data tar (xz, zstd, gzip or plain) and every file in it,
/// read as the kernel store reads them.
pub fn deb(data: &[u8]) {
    let _ = deb::read_files(data, "fuzz.deb", |path, size, r| {
        let _ = modules::is_module(path);
        let _ = deb::read_file(r, size, LIMIT as u64);
        Ok(())
    });
}

/// A compressed stream (the first byte picks the format): the bzImage payload path (first
/// stream, bounded) and the module path (whole buffer, bounded).
pub fn compress(data: &[u8]) {
    let Some((&which, data)) = data.split_first() else { return };
    let kind = [Compression::Xz, Compression::Zstd, Compression::Gzip, Compression::None][usize::from(which % 4)];
    let _ = Compression::from_magic(data);
    if let Ok(out) = decompress_first_stream(kind, data, LIMIT) {
        assert!(out.len() <= LIMIT);
    }
    if let Ok(out) = decompress_all(kind, data, LIMIT) {
        assert!(out.len() <= LIMIT);
    }
    if let Ok(mut r) = kind.reader(data) {
        let mut out = Vec::new();
        let _ = r.by_ref().take(LIMIT as u64).read_to_end(&mut out);
    }
}

/// A local kernel file (`--kernel PATH`) or module: bzImage header and payload, x86-64 ELF with
/// its PVH note and `.BTF`, the version banner, a module's `.modinfo`; the same bytes as
/// `modules.dep` and `modules.builtin` text.
pub fn kernel_image(data: &[u8]) {
    if let Ok(bz) = bzimage::parse_bzimage(data) {
        let _ = bz.release();
        if let Ok(elf) = bzimage::vmlinux_of(data, &bz) {
            let _ = bzimage::parse_elf(&elf);
        }
    }
    let _ = bzimage::parse_elf(data);
    let _ = bzimage::banner_release(data);
    let _ = modules::modinfo_depends(data);
    let text = String::from_utf8_lossy(data);
    let _ = modules::parse_modules_dep(&text);
    let _ = modules::parse_builtin(&text);
}

/// A kernel `.config`.
pub fn config(data: &[u8]) {
    let c = KernelConfig::parse(&String::from_utf8_lossy(data));
    for o in TRACING_OPTIONS {
        let _ = (c.get(o), c.is_enabled(o), c.is_explicitly_unset(o));
    }
}

/// `kernels/matrix.toml`.
pub fn matrix(data: &[u8]) {
    if let Ok(m) = Matrix::parse(&String::from_utf8_lossy(data), "fuzz") {
        let _ = (m.suites(), m.ids());
    }
}

/// `kernels/kernels.lock`: a lock that parses is written back and reads back the same.
pub fn lock(data: &[u8]) {
    let Ok(l) = Lock::parse(&String::from_utf8_lossy(data), "fuzz") else { return };
    let text = l.render().expect("a lock that parsed renders");
    let again = Lock::parse(&text, "fuzz").expect("a rendered lock parses");
    assert_eq!(again, l, "the lock changed on its way through render and parse");
}

/// `kernels/expectations.toml` and a test suite's pins (one schema, two roles).
pub fn expectations(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for role in [Role::Verdicts, Role::Pins] {
        if let Ok(e) = Expectations::parse(&text, "fuzz", role) {
            for x in &e.entries {
                let _ = e.find(&x.kernel, &x.scenario);
            }
        }
    }
}

/// The harness's ELF reader: header, every section, a section by name, notes.
pub fn elf(data: &[u8]) {
    let _ = kmatrix::elf::machine(data);
    let Ok(e) = kmatrix::elf::Elf::parse(data) else { return };
    let _ = e.machine();
    if let Ok(sections) = e.sections() {
        for s in sections {
            if let Some(r) = s.range {
                assert_eq!(&data[r], s.data);
            }
        }
    }
    let _ = e.section(".BTF");
    let _ = e.notes();
}

/// A BTF blob (an object's `.BTF`, a kernel's `vmlinux.btf`) and the lookups core-check makes.
pub fn btf(data: &[u8]) {
    let Ok(t) = BtfTable::parse(data) else { return };
    for id in 0..t.types.len().min(512) as u32 {
        let root = t.skip_mods(id);
        if let Some(ty) = t.ty(root) {
            let name = t.name(ty.name_off);
            let _ = kmatrix::btf::flavourless(&name);
            let _ = t.member(root, "state", 0);
        }
    }
}

/// A `.BTF.ext` with the `.BTF` it names strings in: the first two bytes say how long the
/// `.BTF` part is.
pub fn btf_ext(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let n = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
    let (btf, ext) = data[2..].split_at(n);
    let table = BtfTable::parse(btf).unwrap_or_default();
    if let Ok(e) = BtfExt::parse(ext, &table) {
        for r in e.core_records() {
            assert!(table.has_string(r.access_off), "a CO-RE record with a bad access string passed");
        }
    }
}

/// A user's BPF object (`core-check`, `run --bpf-object`): checked by the harness, parsed by
/// aya-obj, then the object side of core-check. A panic inside aya-obj comes back as
/// `ObjectError::AyaPanic` (the harness contains them); with `KMATRIX_FUZZ_AYA_PANICS=1` in the
/// environment such an input is a crash instead, to collect the ones the harness could name
/// before aya sees them.
pub fn bpf_object(data: &[u8]) {
    match kmatrix::bpf_object::parse(Path::new("fuzz.bpf.o"), data.to_vec()) {
        Ok(obj) => {
            let _ = kmatrix::core_check::object_info(&obj);
        }
        Err(ObjectError::AyaPanic { message, .. }) if aya_panics_are_crashes() => {
            panic!("aya-obj panicked on an object the harness let through: {message}")
        }
        Err(_) => {}
    }
}

fn aya_panics_are_crashes() -> bool {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("KMATRIX_FUZZ_AYA_PANICS").is_some_and(|v| v == "1"))
}

/// A `results.jsonl`, and the reports rendered from what it holds.
pub fn results(data: &[u8]) {
    let Ok(rs) = kmatrix::run::results::read_from(data, Path::new("fuzz/results.jsonl")) else { return };
    let mut kernels: Vec<String> = rs.iter().map(|r| r.kernel.clone()).collect();
    kernels.sort();
    kernels.dedup();
    let _ = kmatrix::report::table::render(&rs, &kernels, false);
    let _ = kmatrix::report::junit::render(&rs);
    let _ = kmatrix::report::html::render(&rs, &kernels, "fuzz", "fuzz/results.jsonl", "");
    let _ = kmatrix::report::diff::diff(&rs, &rs[rs.len() / 2..]);
}
