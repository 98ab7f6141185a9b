//! A tracing tool the host lacks, for real, on a real Debian kernel: kmatrix runs in a user and
//! mount namespace (`unshare --user --map-root-user --mount`: no root needed) whose `/usr/bin`
//! is an overlay of the host's with `trace-cmd` removed, so the host root the guest sees has no
//! trace-cmd. Its tool scenario must be `unsupported` naming the package that provides it on
//! this host's distribution (os-release), with the host's verdict saying the host lacks it —
//! not `fail` — while strace beside it, present, still passes.

use std::process::Command;

/// `<Distribution>'s trace-cmd` as kmatrix names it for this host.
fn package() -> String {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let ubuntu = os.lines().any(|l| {
        (l.starts_with("ID=") || l.starts_with("ID_LIKE="))
            && l.split_once('=').is_some_and(|(_, v)| v.trim_matches('"').split_whitespace().any(|w| w == "ubuntu"))
    });
    format!("{}'s trace-cmd", if ubuntu { "Ubuntu" } else { "Debian" })
}

#[test]
fn vm_a_tool_missing_from_the_host_is_unsupported_naming_its_package() {
    assert!(std::path::Path::new("/usr/bin/trace-cmd").exists(), "the host has no trace-cmd to hide: scripts/setup.sh");
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for sub in ["up", "work", "out"] {
        std::fs::create_dir(d.path().join(sub)).unwrap();
    }
    let script = r#"set -e
d="$1"; shift
mount -t overlay overlay -o "lowerdir=/usr/bin,upperdir=$d/up,workdir=$d/work,userxattr" /usr/bin
rm /usr/bin/trace-cmd
test ! -e /usr/bin/trace-cmd
exec "$@""#;
    let mut c = Command::new("unshare");
    c.args(["--user", "--map-root-user", "--mount", "--", "/bin/sh", "-c", script, "sh"])
        .arg(d.path())
        .arg(env!("CARGO_BIN_EXE_kmatrix"))
        .args(["run", "--json", "--retries", "0", "--kernels", "debian-6.1"])
        .args(["--scenarios", "tool.trace-cmd.record_pid,tool.strace.openat", "--out"])
        .arg(d.path().join("out"))
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env_remove("KMATRIX_QEMU");
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let results: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |id: &str| {
        results.iter().find(|r| r["scenario"] == id).unwrap_or_else(|| panic!("no {id} in {results:?}\n{stderr}"))
    };
    let missing = of("tool.trace-cmd.record_pid");
    let pkg = package();
    assert_eq!(missing["status"], "unsupported", "{missing}");
    assert_eq!(missing["host_lacks"], pkg.as_str(), "{missing}");
    assert_eq!(
        missing["reason"],
        format!("host program /usr/bin/trace-cmd missing: install {pkg} on the host").as_str(),
        "{missing}"
    );
    assert_eq!(
        missing["verdict"],
        format!("unsupported stands: the host lacks {pkg}, not the kernel").as_str(),
        "{missing}"
    );
    assert_eq!(of("tool.strace.openat")["status"], "pass", "{stderr}");
    // Nothing failed: exit 0.
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
