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
    // The guest gets the agent without its debug info and symbol table (5.3 MB → 4.5 MB; nothing
    // in the guest reads its own symbols); the full binary stays in target/agent for
    // symbolising a crash, and its build id matches the stripped copy's.
    let agent = strip(&agent, &out.join("kmatrix-agent"));
    let mut assets = String::new();
    writeln!(assets, "/// The static agent, `/init` in the guest.").unwrap();
    writeln!(assets, "pub const AGENT: &[u8] = include_bytes!({:?});", agent.display().to_string()).unwrap();
    let (workloads, aliases) = build_workloads(&root, &out);
    writeln!(assets, "/// Guest workloads: (name in /bin, executable).").unwrap();
    writeln!(assets, "pub const WORKLOADS: &[(&str, &[u8])] = &[").unwrap();
    for (name, path) in workloads {
        writeln!(assets, "    ({name:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
    }
    writeln!(assets, "];").unwrap();
    writeln!(assets, "/// Workloads of the multi-call `/bin/hello`: (name in /bin, symlink target).").unwrap();
    writeln!(assets, "pub const WORKLOAD_ALIASES: &[(&str, &str)] = &[").unwrap();
    for (name, target) in aliases {
        writeln!(assets, "    ({name:?}, {target:?}),").unwrap();
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

/// `objcopy --strip-all src dst` (binutils): unwind tables and the build id stay, DWARF and
/// symbols go.
fn strip(src: &Path, dst: &Path) -> PathBuf {
    let objcopy = env::var("KMATRIX_OBJCOPY").unwrap_or_else(|_| "objcopy".into());
    let out = Command::new(&objcopy).arg("--strip-all").arg(src).arg(dst).output().unwrap_or_else(|e| {
        panic!("cannot run {objcopy} to strip the agent's debug info ({e}); install it: apt-get install binutils")
    });
    if !out.status.success() {
        panic!("{objcopy} --strip-all {} failed: {}", src.display(), String::from_utf8_lossy(&out.stderr));
    }
    dst.to_path_buf()
}

/// Files to embed (name in /bin, path), then symlinks (name in /bin, target).
type Workloads = (Vec<(String, PathBuf)>, Vec<(String, String)>);

/// The static workloads as one multi-call program, `/bin/hello`, the others (`/bin/openat-loop`,
/// ...) symlinks to it: each static glibc program is ~0.77 MB of which the workload's own code
/// is a few KB, so six copies were 4.7 MB of a 10.5 MB image. hello.c owns `main` (its symbols
/// must stay as the seeds' `hello` has them: perf scenarios look for samples in `main` calling
/// `hello_greet`, uprobes for `hello_greet`); every other source is compiled with its `main`
/// renamed `<stem>_main`, and `main` hands over to it when `argv[0]`'s basename is that
/// workload's name (a generated `dispatch.c`). Returned: the real files, then (alias, target).
fn build_workloads(root: &Path, out: &Path) -> Workloads {
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
    // -pg and -g as the seeds build `hello`; static because the guest has no libc;
    // no PIE so symbol addresses in the ELF are the file offsets uprobes need to compute.
    const FLAGS: &[&str] = &["-static", "-g", "-pg", "-O1", "-fno-inline", "-Wall"];
    let compile = |args: &[&str], what: &str, out_file: &Path| {
        let output = Command::new(&cc).args(FLAGS).args(args).arg("-o").arg(out_file).output().unwrap_or_else(|e| {
            panic!("cannot run {cc} to build guest workloads ({e}); install it: apt-get install gcc libc6-dev")
        });
        if !output.status.success() {
            panic!("compiling workload {what} failed: {}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
        }
    };
    let mut objects = Vec::new();
    let mut others = Vec::new();
    let mut has_hello = false;
    for s in &sources {
        let stem = s.file_stem().and_then(|x| x.to_str()).expect("utf-8 workload name").to_string();
        let obj = dst.join(format!("{stem}.o"));
        let source = s.to_str().expect("utf-8 workload path");
        if stem == "hello" {
            has_hello = true;
            compile(&["-c", "-DKMATRIX_MULTICALL", source], source, &obj);
        } else {
            compile(&["-c", &format!("-Dmain={stem}_main"), source], source, &obj);
            others.push(stem);
        }
        objects.push(obj);
    }
    if !has_hello {
        return (Vec::new(), Vec::new());
    }
    let mut dispatch = String::from(
        "/* Generated by harness/build.rs: which workload of the multi-call /bin/hello argv[0] names. */\n\
         #include <string.h>\n",
    );
    for stem in &others {
        writeln!(dispatch, "int {stem}_main(int argc, char **argv);").unwrap();
    }
    dispatch.push_str(
        "int kmatrix_dispatch(int argc, char **argv, int *rc)\n{\n\
         \tconst char *name = argc > 0 && argv[0] ? argv[0] : \"\";\n\
         \tconst char *slash = strrchr(name, '/');\n\n\
         \tif (slash)\n\t\tname = slash + 1;\n",
    );
    for stem in &others {
        let name = stem.replace('_', "-");
        writeln!(
            dispatch,
            "\tif (!strcmp(name, \"{name}\")) {{\n\t\t*rc = {stem}_main(argc, argv);\n\t\treturn 1;\n\t}}"
        )
        .unwrap();
    }
    dispatch.push_str("\treturn 0;\n}\n");
    let dispatch_c = dst.join("dispatch.c");
    std::fs::write(&dispatch_c, dispatch).expect("write dispatch.c");
    let dispatch_o = dst.join("dispatch.o");
    compile(&["-c", dispatch_c.to_str().expect("utf-8 OUT_DIR")], "dispatch.c", &dispatch_o);
    objects.push(dispatch_o);
    let hello = dst.join("hello");
    let objs: Vec<&str> = objects.iter().map(|o| o.to_str().expect("utf-8 OUT_DIR")).collect();
    compile(&objs, "hello (multi-call)", &hello);
    let mut built = vec![("hello".to_string(), hello)];
    let aliases = others.iter().map(|s| (s.replace('_', "-"), "hello".to_string())).collect();
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
    (built, aliases)
}
