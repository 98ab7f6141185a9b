//! The host root over virtio-fs, on real Debian kernels with the real Rust virtiofsd: a program
//! sees a file the host just wrote, cannot write the root (EROFS), writes a `--rw` directory, and
//! the outcome names virtio-fs; without virtiofsd `auto` falls back to 9p and says why, a forced
//! `--share virtiofs` is an error naming virtiofsd; `run --share` gives the tool scenarios the
//! share asked for, named in each result; no virtiofsd outlives a SIGKILLed kmatrix.
//! These need virtiofsd (`scripts/setup.sh` builds it); without one they fail, naming it.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory the guest can see (the guest's /tmp is its own, not the host's).
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn kmatrix() -> Command {
    let mut c = common::kmatrix();
    c.env_remove("KMATRIX_VIRTIOFSD");
    c
}

/// A program on `kernel` over a forced virtio-fs share, reading a host file with fresh content,
/// writing the `--rw` dir, then trying the read-only root.
fn sees_host_files_and_writes_only_where_allowed(kernel: &str) {
    let d = scratch();
    let token = format!("token-{}-{}", std::process::id(), kernel);
    let input = d.path().join("input");
    std::fs::write(&input, &token).unwrap();
    let rw = scratch();
    let written = rw.path().join("from-guest");
    let script = format!(
        "cat {input} && echo written > {written} && touch /kmatrix-virtiofs-probe",
        input = input.display(),
        written = written.display()
    );
    let out = kmatrix()
        .args(["exec", "-v", "--share", "virtiofs", "--snapshot", "off", "--kernel", kernel, "--rw"])
        .arg(rw.path())
        .args(["--", "/bin/sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.trim(), token, "{stderr}");
    assert_eq!(std::fs::read_to_string(&written).unwrap_or_default(), "written\n", "{stderr}");
    assert!(stderr.contains("touch: cannot touch '/kmatrix-virtiofs-probe': Read-only file system"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("kmatrix: {kernel}: host root over virtiofs (kmatrix-root)")), "{stderr}");
    assert!(stderr.contains("virtiofs because asked for (--share virtiofs)"), "{stderr}");
    assert!(!std::path::Path::new("/kmatrix-virtiofs-probe").exists());
}

#[test]
fn vm_share_virtiofs_on_6_1() {
    sees_host_files_and_writes_only_where_allowed("debian-6.1");
}

#[test]
fn vm_share_virtiofs_on_6_12() {
    sees_host_files_and_writes_only_where_allowed("debian-6.12");
}

#[test]
fn vm_share_auto_is_virtiofs_for_a_cold_boot_and_9p_without_virtiofsd() {
    let run = |virtiofsd: Option<&str>| {
        let mut c = kmatrix();
        c.args(["exec", "-v", "--snapshot", "off", "--kernel", "debian-6.1", "--", "/bin/true"]);
        if let Some(v) = virtiofsd {
            c.env("KMATRIX_VIRTIOFSD", v);
        }
        let out = c.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run(None);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("host root over virtiofs") && stderr.contains("virtiofs because cold boot"), "{stderr}");
    let (code, stderr) = run(Some("/nonexistent/virtiofsd"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("host root over 9p"), "{stderr}");
    assert!(
        stderr.contains("9p because no virtio-fs: virtiofsd not found (looked at /nonexistent/virtiofsd)"),
        "{stderr}"
    );
}

#[test]
fn vm_share_forced_virtiofs_without_virtiofsd_is_an_error_naming_it() {
    let out = kmatrix()
        .args(["exec", "--share", "virtiofs", "--kernel", "debian-6.1", "--", "/bin/true"])
        .env("KMATRIX_VIRTIOFSD", "/nonexistent/virtiofsd")
        .output()
        .unwrap();
    common::assert_bad_input(&out, &["--share virtiofs: virtiofsd not found", "cargo install virtiofsd"]);
}

/// `kmatrix run --share MODE` of a tool scenario on 6.1: its result's `detail.share`.
fn run_share(mode: &str, virtiofsd: Option<&str>) -> (Option<i32>, Vec<String>, String) {
    let d = scratch();
    let mut c = kmatrix();
    c.args(["run", "--json", "--retries", "0", "--kernels", "debian-6.1", "--scenarios", "tool.strace.openat"])
        .args(["--share", mode, "--out"])
        .arg(d.path());
    if let Some(v) = virtiofsd {
        c.env("KMATRIX_VIRTIOFSD", v);
    }
    let out = c.output().unwrap();
    let shares = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| format!("{} {}", r["status"], r["detail"]["share"]))
        .collect();
    (out.status.code(), shares, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn vm_share_run_honours_share_for_tool_scenarios() {
    for (mode, fs) in [("virtiofs", "virtiofs"), ("9p", "9p")] {
        let (code, shares, stderr) = run_share(mode, None);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(shares.len(), 1, "{stderr}");
        let want = format!("host root over {fs} (kmatrix-root)");
        assert!(shares[0].starts_with("\"pass\"") && shares[0].contains(&want), "{mode}: {shares:?}");
        assert!(shares[0].contains(&format!("asked for (--share {mode})")), "{mode}: {shares:?}");
    }
    // Forced virtio-fs without the daemon: bad input, before anything boots.
    let (code, shares, stderr) = run_share("virtiofs", Some("/nonexistent/virtiofsd"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(shares.is_empty() && stderr.contains("--share virtiofs: virtiofsd not found"), "{stderr}");
}

/// Children of `pid` whose command name starts with `comm`, from /proc.
fn children(pid: u32, comm: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        let ppid: u32 = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == pid && head.split_once(" (").is_some_and(|(_, c)| c.starts_with(comm)) {
            out.push(child);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false)
}

#[test]
fn vm_share_no_virtiofsd_outlives_a_sigkilled_kmatrix() {
    let mut child = kmatrix()
        .args(["exec", "--share", "virtiofs", "--kernel", "debian-6.1", "--", "/bin/sleep", "600"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(180);
    // Both the daemon and QEMU are up: the guest is booting or running the program.
    let (daemons, qemus) = loop {
        let (d, q) = (children(pid, "virtiofsd"), children(pid, "qemu-system"));
        if !d.is_empty() && !q.is_empty() {
            break (d, q);
        }
        assert!(Instant::now() < deadline, "no virtiofsd and QEMU appeared");
        assert!(child.try_wait().unwrap().is_none(), "kmatrix exited before starting its guest");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = child.wait();
    let gone_by = Instant::now() + Duration::from_secs(5);
    for p in daemons.iter().chain(&qemus) {
        while alive(*p) {
            assert!(Instant::now() < gone_by, "{p} outlived kmatrix (virtiofsd {daemons:?}, QEMU {qemus:?})");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
