//! What the integration tests that compile BPF objects share: the workspace root, the fixture
//! sources (tests/fixtures/bpf, see its README) and compiling a source as agent/build.rs does.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A BPF C source of tests/fixtures/bpf.
pub fn fixture(name: &str) -> PathBuf {
    root().join("harness/tests/fixtures/bpf").join(name)
}

/// The agent's own CO-RE object source (`task_struct` reads through `state` or `__state`).
pub fn core_source() -> PathBuf {
    root().join("tracer-ebpf/src/core.bpf.c")
}

/// Compile a BPF C source as agent/build.rs does (see tests/fixtures/bpf/README.md) into
/// `dir/<name>.o`.
pub fn build(src: &Path, dir: &Path) -> PathBuf {
    let name = src.file_name().unwrap().to_string_lossy().replace(".c", ".o");
    let out = dir.join(name);
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let o = Command::new(&clang)
        .args(["-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86", "-Wall", "-I"])
        .arg(root().join("tracer-ebpf/include"))
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("{clang}: {e}; apt-get install clang libbpf-dev"));
    assert!(o.status.success(), "{clang} failed on {}: {}", src.display(), String::from_utf8_lossy(&o.stderr));
    out
}

/// Guest options for the VM tests: `kernel`, auto accelerator, generous boot timeout, logs under
/// the target's temporary directory, `append` on the kernel command line.
pub fn guest_args(kernel: &str, append: Vec<String>) -> kmatrix::cli::GuestArgs {
    kmatrix::cli::GuestArgs {
        kernel: kernel.into(),
        modules: None,
        config: None,
        accel: kmatrix::vm::AccelChoice::Auto,
        boot_timeout: 120.0,
        memory: 512,
        mirror: None,
        out: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kmatrix-logs"),
        append,
        channel: "virtio".into(),
        snapshot: None,
    }
}
