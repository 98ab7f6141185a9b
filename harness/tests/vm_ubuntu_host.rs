//! kmatrix on an Ubuntu host, for real: in the Ubuntu 24.04 root `scripts/ubuntu-root.sh` builds
//! from Ubuntu's archive (cached under `<kmatrix cache>/hosts/ubuntu-noble`, Ubuntu's own
//! packages installed there by `scripts/setup.sh`), this tree's kmatrix boots Debian 6.1 and
//! runs the host's tools in it as Ubuntu installs them: perf is the real binary under
//! `/usr/lib/linux-tools/<abi>/` (not linux-tools-common's wrapper, which refuses the guest's
//! kernel) and the result records it; bpftool likewise; trace-cmd and strace are Ubuntu's. Then,
//! with `/usr/lib/linux-tools` hidden (a tmpfs over it in the root's mount namespace), only the
//! wrapper is left: perf's scenario is `unsupported`, naming Ubuntu's linux-tools-generic, with
//! the wrapper's own words.
//!
//! The root's cold build (bootstrap and packages, ~9 min here) is more than a test should pay,
//! so this test runs when the root is in the cache and says it did not run otherwise (CI builds
//! the root in the background first: `scripts/ubuntu-root.sh build`). Entering the root needs
//! root (mounts, pivot_root); as an ordinary user the test says so and does not run either.
//! Warm: one boot restored from the root's snapshot, an incremental build in the root's own
//! target directory.

use std::path::Path;
use std::process::Command;

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ubuntu-root.sh")
}

/// The results (JSON lines) the command in the root printed between `== name` and the next
/// `==` line.
fn section(stdout: &str, name: &str) -> Vec<serde_json::Value> {
    let start = format!("== {name}");
    stdout
        .lines()
        .skip_while(|l| *l != start)
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn of<'a>(results: &'a [serde_json::Value], id: &str, all: &str) -> &'a serde_json::Value {
    results.iter().find(|r| r["scenario"] == id).unwrap_or_else(|| panic!("no {id}:\n{all}"))
}

/// Say on the terminal that the test did not run and why: written to the process's stderr
/// itself, which libtest does not capture (it captures `eprintln!`, and shows a passing test's
/// captured output to nobody), so `cargo test` prints it beside the test's `ok`.
fn not_run(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "vm_ubuntu_host: NOT RUN: {why}");
}

#[test]
fn vm_ubuntu_host_runs_ubuntus_real_perf_and_names_its_package_when_missing() {
    // The effective uid (the third field of /proc/self/status's Uid: line).
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root_user = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !root_user {
        not_run("entering the Ubuntu root needs root (mounts, pivot_root); run as root to check the Ubuntu host");
        return;
    }
    let path = Command::new(script()).arg("path").output().unwrap();
    if !path.status.success() {
        not_run(&format!(
            "no Ubuntu root in the cache ({}); build it with scripts/ubuntu-root.sh build (~9 min)",
            String::from_utf8_lossy(&path.stderr).trim()
        ));
        return;
    }
    let scenarios =
        "tool.perf.list,tool.perf.stat_openat,tool.bpftool.prog_show,tool.trace-cmd.record_pid,tool.strace.openat";
    let run = format!(
        "kmatrix() {{ cargo run -q --release -p kmatrix -- run --json --retries 0 --kernels debian-6.1 \"$@\"; }}; \
         export CARGO_TARGET_DIR=/var/tmp/kmatrix-target/root KMATRIX_SETUP_ARM64=0; \
         ./scripts/setup.sh >/dev/null 2>&1 || {{ echo 'setup.sh failed' >&2; exit 1; }}; \
         echo '== ubuntu'; kmatrix --scenarios {scenarios}; \
         echo '== no linux-tools'; mount -t tmpfs none /usr/lib/linux-tools && kmatrix --scenarios tool.perf.list; \
         echo '== end'"
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(script()).args(["run", "--tree"]).arg(&repo).args(["--", &run]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");

    let ubuntu = section(&stdout, "ubuntu");
    for id in scenarios.split(',') {
        let r = of(&ubuntu, id, &all);
        assert_eq!(r["status"], "pass", "{id} on the Ubuntu host: {r}");
    }
    // perf and bpftool ran as Ubuntu's real binaries, and the results say which.
    for (id, tool) in [("tool.perf.stat_openat", "perf"), ("tool.bpftool.prog_show", "bpftool")] {
        let program = of(&ubuntu, id, &all)["detail"]["tool_program"].as_str().unwrap_or_default().to_string();
        assert!(
            program.starts_with("/usr/lib/linux-tools/") && program.ends_with(&format!("-generic/{tool}")),
            "{id}: {program}"
        );
    }
    let stat = of(&ubuntu, "tool.perf.stat_openat", &all);
    assert_eq!(stat["counts"][0]["expected"], stat["counts"][0]["observed"], "{stat}");

    let hidden = section(&stdout, "no linux-tools");
    let r = of(&hidden, "tool.perf.list", &all);
    assert_eq!(r["status"], "unsupported", "{r}");
    assert_eq!(r["host_lacks"], "Ubuntu's linux-tools-generic", "{r}");
    let reason = r["reason"].as_str().unwrap_or_default();
    // The wrapper's own words: it has no perf for the guest's kernel.
    assert!(
        reason.starts_with("host program /usr/bin/perf does not run (`/usr/bin/perf version`: exit 2")
            && reason.contains("not found for kernel")
            && reason.ends_with("install Ubuntu's linux-tools-generic on the host"),
        "{r}"
    );
}
