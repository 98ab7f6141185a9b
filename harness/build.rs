//! Builds what goes into the guest image and embeds it in the harness:
//! the static agent (a nested cargo build with `+crt-static`, in its own target directory so it
//! neither shares flags nor locks with this build) and the C workloads (`gcc -static -g -pg`),
//! plus the few dynamically linked variants the host's tools need ([`DYNAMIC`]), which the guest
//! runs only inside the shared host root, where their libraries are.
//! A missing compiler or header is a build error that names the Debian package to install.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Dynamically linked workloads: (name in /bin, source, extra flags). `hello-dyn` is `hello` as
/// the seeds build it (`gcc -g -pg`, PIE, libc from the host) for uftrace, which preloads its
/// libmcount, with USDT probes (`<sys/sdt.h>`, Debian's systemtap-sdt-dev) for bpftrace and BCC.
const DYNAMIC: &[(&str, &str, &[&str])] = &[("hello-dyn", "hello.c", &["-DKMATRIX_SDT"])];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("harness/ sits in the workspace").to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for p in ["agent", "proto", "images/workloads", "tracer-ebpf", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=KMATRIX_AGENT_PROFILE");
    println!("cargo:rerun-if-env-changed=KMATRIX_AGENT_BIN");

    // KMATRIX_AGENT_BIN: use an agent built elsewhere (packaging, or a known-good build).
    let agent = match env::var_os("KMATRIX_AGENT_BIN").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => build_agent(&root),
    };
    // The guest gets the agent without its debug info (15 MB of the 22); the full binary stays in
    // target/agent for symbolising a crash, and its build id matches the stripped copy's.
    let agent = strip_debug(&agent, &out.join("kmatrix-agent"));
    let mut assets = String::new();
    writeln!(assets, "/// The static agent, `/init` in the guest.").unwrap();
    writeln!(assets, "pub const AGENT: &[u8] = include_bytes!({:?});", agent.display().to_string()).unwrap();
    writeln!(assets, "/// Guest workloads: (name in /bin, static executable).").unwrap();
    writeln!(assets, "pub const WORKLOADS: &[(&str, &[u8])] = &[").unwrap();
    for (name, path) in build_workloads(&root, &out) {
        writeln!(assets, "    ({name:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
    }
    writeln!(assets, "];").unwrap();
    std::fs::write(out.join("assets.rs"), assets).expect("write assets.rs");
}

fn build_agent(root: &Path) -> PathBuf {
    let target_dir = match env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("agent"),
        None => root.join("target").join("agent"),
    };
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = env::var("KMATRIX_AGENT_PROFILE").unwrap_or_else(|_| "release".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "-p", "kmatrix-agent", "--target", AGENT_TRIPLE, "--profile", &profile])
        .arg("--target-dir")
        .arg(&target_dir)
        // The agent is PID 1 in a guest without libc: link it static-pie.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    // Build scripts see the outer build's profile settings; the nested build must not inherit them.
    for (k, _) in env::vars() {
        if k.starts_with("CARGO_PROFILE_") || k.starts_with("CARGO_CFG_") || k == "TARGET" || k == "HOST" {
            cmd.env_remove(k);
        }
    }
    let status = cmd.status().expect("run cargo to build the agent");
    if !status.success() {
        panic!("building the agent (kmatrix-agent, static) failed: {status}");
    }
    let dir = if profile == "dev" { "debug".to_string() } else { profile };
    let bin = target_dir.join(AGENT_TRIPLE).join(dir).join("kmatrix-agent");
    assert!(bin.exists(), "agent binary missing at {}", bin.display());
    bin
}

/// `objcopy --strip-debug src dst` (binutils): symbols and unwind tables stay, DWARF goes.
fn strip_debug(src: &Path, dst: &Path) -> PathBuf {
    let objcopy = env::var("KMATRIX_OBJCOPY").unwrap_or_else(|_| "objcopy".into());
    let out = Command::new(&objcopy).arg("--strip-debug").arg(src).arg(dst).output().unwrap_or_else(|e| {
        panic!("cannot run {objcopy} to strip the agent's debug info ({e}); install it: apt-get install binutils")
    });
    if !out.status.success() {
        panic!("{objcopy} --strip-debug {} failed: {}", src.display(), String::from_utf8_lossy(&out.stderr));
    }
    dst.to_path_buf()
}

fn build_workloads(root: &Path, out: &Path) -> Vec<(String, PathBuf)> {
    let src = root.join("images").join("workloads");
    let dst = out.join("workloads");
    std::fs::create_dir_all(&dst).expect("create workloads dir");
    let mut sources: Vec<PathBuf> = match std::fs::read_dir(&src) {
        Ok(rd) => {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "c")).collect()
        }
        Err(_) => Vec::new(),
    };
    sources.sort();
    let cc = env::var("KMATRIX_CC").unwrap_or_else(|_| "gcc".into());
    let mut built = Vec::new();
    for s in sources {
        let stem = s.file_stem().and_then(|x| x.to_str()).expect("utf-8 workload name").to_string();
        let name = stem.replace('_', "-");
        let bin = dst.join(&name);
        // -pg and -g as the seeds build `hello`; static because the guest has no libc;
        // no PIE so symbol addresses in the ELF are the file offsets uprobes need to compute.
        let status = Command::new(&cc)
            .args(["-static", "-g", "-pg", "-O1", "-fno-inline", "-Wall", "-o"])
            .arg(&bin)
            .arg(&s)
            .status();
        match status {
            Ok(st) if st.success() => {}
            Ok(st) => panic!("compiling workload {} failed: {st}", s.display()),
            Err(e) => {
                panic!("cannot run {cc} to build guest workloads ({e}); install it: apt-get install gcc libc6-dev")
            }
        }
        built.push((name, bin));
    }
    for (name, source, flags) in DYNAMIC {
        let bin = dst.join(name);
        let output = Command::new(&cc)
            .args(["-g", "-pg", "-O1", "-fno-inline", "-Wall"])
            .args(*flags)
            .arg("-o")
            .arg(&bin)
            .arg(src.join(source))
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {cc} to build guest workloads ({e}); install it: apt-get install gcc")
            });
        if !output.status.success() {
            let err = String::from_utf8_lossy(&output.stderr);
            let hint = if err.contains("sys/sdt.h") { " (install systemtap-sdt-dev)" } else { "" };
            panic!("compiling workload {name} from {source} failed{hint}: {}\n{err}", output.status);
        }
        built.push((name.to_string(), bin));
    }
    built
}
