//! Compiles the BPF programs of `tracer-ebpf/src/*.bpf.c` into objects in OUT_DIR, which the
//! agent embeds (`bpf::objects`).
//!
//! `clang -target bpf -g -O2 -D__TARGET_ARCH_<x86|arm64>` (the agent's target) against libbpf's headers and our hand-written
//! `tracer-ebpf/include/vmlinux.h` (why by hand: see that file). `-g` gives the objects BTF and
//! BTF.ext, which carry the CO-RE relocations aya resolves against each kernel's BTF at load.
//! Rust BPF (aya-ebpf) would need bpf-linker on LLVM 22, which cannot be installed here, hence C.
//! A missing clang or libbpf header is a build error naming the Debian packages to install.
//! `CLANG` overrides the compiler.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL: &str = "apt-get install clang libbpf-dev";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let tracer = manifest.parent().expect("agent/ sits in the workspace").join("tracer-ebpf");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed={}", tracer.display());
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    match Command::new(&clang).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => fail(&format!("`{clang} --version` failed ({}); {INSTALL}", o.status)),
        Err(e) => fail(&format!("clang not found ({clang}: {e}): the BPF programs need it; {INSTALL}")),
    }
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        fail(&format!("libbpf headers not found (/usr/include/bpf/bpf_helpers.h); {INSTALL}"));
    }

    // The BPF objects read registers by the guest's layout: the agent's target architecture.
    let arch_flag = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "-D__TARGET_ARCH_arm64",
        _ => "-D__TARGET_ARCH_x86",
    };
    let src = tracer.join("src");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| fail(&format!("read_dir({}) failed: {e}", src.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();
    for source in &sources {
        let stem = source.file_name().and_then(|n| n.to_str()).unwrap_or_default().trim_end_matches(".c");
        let object = out.join(format!("{stem}.o"));
        let output = Command::new(&clang)
            .args(["-target", "bpf", "-g", "-O2", arch_flag, "-Wall", "-Werror"])
            .arg("-I")
            .arg(tracer.join("include"))
            .arg("-c")
            .arg(source)
            .arg("-o")
            .arg(&object)
            .output()
            .unwrap_or_else(|e| fail(&format!("running {clang} failed: {e}; {INSTALL}")));
        if !output.status.success() {
            fail(&format!(
                "{clang} -target bpf failed on {}:\n{}",
                source.display(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    panic!("{msg}");
}
