//! `kmatrix bisect` over the real builds of Debian's 6.12 line, a real boot per step: the
//! predicate is a host command that compares the guest's `uname -r` with 6.12.86 (and skips
//! 6.12.74), so the answer is known from the list of builds alone: the last good build is the
//! newest before 6.12.86, the first bad the oldest from it. Every step's verdict is checked
//! against the predicate, the number of steps against log2, and the changelog against the two
//! builds. Then a --good build that is not good is refused, naming it. The same over Ubuntu's
//! 4.15 ABI builds (`--distro ubuntu`): four builds, the predicate the guest's ABI number.

use crate::common;

use kmatrix::kernel::version;
use std::path::PathBuf;

const THRESHOLD: &str = "6.12.86";
const SKIPPED: &str = "6.12.74";

/// The predicate, as a script on the host (not under /tmp: the guest's /tmp is its own).
fn predicate() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bisect-predicate.sh");
    let script = format!(
        "#!/bin/sh\n# good below {THRESHOLD}; {SKIPPED} cannot be judged\nv=$(uname -r | cut -d+ -f1)\necho \"$KMATRIX_GUEST runs $(uname -r)\"\n[ \"$v\" = {SKIPPED} ] && exit 125\ndpkg --compare-versions \"$v\" lt {THRESHOLD}\n"
    );
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

/// What the predicate says of a package version.
fn truth(v: &str) -> &'static str {
    let up = version::upstream(v);
    if up == SKIPPED {
        "skip"
    } else if version::compare(up, THRESHOLD).is_lt() {
        "good"
    } else {
        "bad"
    }
}

/// `kmatrix bisect ARGS`, its step logs in the target's temporary directory.
fn kmatrix(args: &[&str]) -> std::process::Output {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bisect-out");
    common::kmatrix().arg("bisect").arg("--out").arg(out).args(args).output().unwrap()
}

#[test]
fn vm_bisect_finds_the_first_bad_build_of_6_12_and_its_changelog() {
    let listed = common::kmatrix().args(["kernels", "available", "--line", "6.12", "--json"]).output().unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let builds: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let mut versions: Vec<String> = builds.iter().map(|b| b["version"].as_str().unwrap().to_string()).collect();
    versions.sort_by(|a, b| version::compare(a, b));
    versions.dedup();
    let want_good = versions.iter().rfind(|v| truth(v) == "good").unwrap().clone();
    let want_bad = versions.iter().find(|v| truth(v) == "bad").unwrap().clone();
    assert!(truth(&versions[0]) == "good" && truth(&versions[versions.len() - 1]) == "bad", "{versions:?}");

    let script = predicate();
    let out = kmatrix(&["--line", "6.12", "--json", "--", script.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(r["builds"].as_array().unwrap().len(), versions.len());
    assert_eq!(r["last_good"]["version"], want_good.as_str(), "{stderr}");
    assert_eq!(r["first_bad"]["version"], want_bad.as_str(), "{stderr}");
    assert_eq!(r["could_also_be"].as_array().unwrap().len(), 0);
    // Every step booted its build and judged it as the predicate says; the ends came first.
    let steps = r["steps"].as_array().unwrap();
    for s in steps {
        let v = s["version"].as_str().unwrap();
        assert_eq!(s["verdict"], truth(v), "step {s}");
        assert!(s["boot_s"].as_f64().unwrap() > 0.0 && s["secs"].as_f64().unwrap() > 0.0, "{s}");
        assert_eq!(s["build"], format!("debian:{v}"));
    }
    assert_eq!(steps[0]["version"], versions[0].as_str());
    assert_eq!(steps[1]["version"], versions[versions.len() - 1].as_str());
    let skips = steps.iter().filter(|s| s["verdict"] == "skip").count();
    let log2 = (usize::BITS - (versions.len() - 2).leading_zeros()) as usize;
    assert!(steps.len() <= 2 + log2 + skips, "{} steps for {} builds", steps.len(), versions.len());
    // A progress line per step.
    assert_eq!(stderr.matches("kmatrix: step ").count(), steps.len(), "{stderr}");
    // The changelog between them, newest first: the entries of the first bad build down to
    // (not including) the last good one.
    let log = r["changelog"].as_array().unwrap();
    assert!(!log.is_empty(), "no changelog: {}", r["changelog_error"]);
    let bad_up = version::upstream(&want_bad).to_string();
    assert!(log.iter().any(|e| e["version"].as_str().unwrap().starts_with(&format!("{bad_up}-"))), "{log:?}");
    for e in log {
        let text = e["text"].as_str().unwrap();
        assert!(text.starts_with(&format!("{} ({})", e["source"].as_str().unwrap(), e["version"].as_str().unwrap())));
        assert!(!text.contains(&format!("linux ({want_good})")), "the last good build's own entry is not between");
    }
}

#[test]
fn vm_bisect_refuses_a_good_build_that_is_bad() {
    let script = predicate();
    let out = kmatrix(&["--good", "6.12.86-1~bpo12+1", "--bad", "6.12.117-1", "--", script.to_str().unwrap()]);
    common::assert_bad_input(&out, &["the good build debian:6.12.86-1~bpo12+1 is not good: it tested bad (exit 1)"]);
    // Bad input never boots: a build the line does not have, the wrong order, no predicate.
    let out = kmatrix(&["--good", "6.12.99-1", "--bad", "6.12.117-1", "--", "true"]);
    common::assert_bad_input(&out, &["--good 6.12.99-1: the mirror has no such build of 6.12"]);
    let out = kmatrix(&["--good", "6.12.117-1", "--bad", "6.12.86-1~bpo12+1", "--", "true"]);
    common::assert_bad_input(&out, &["is not older than the bad build"]);
    let out = kmatrix(&["--line", "6.12"]);
    common::assert_bad_input(&out, &["bisect needs a predicate"]);
}

/// `--distro ubuntu`: Ubuntu's 4.15 ABI builds 210 to 213, each booted, the predicate "the
/// guest's `uname -r` ABI is below 212" (a host script run in the guest). The answer is known
/// from the ABI numbers: 211 last good, 212 first bad; the changelog between them is exactly
/// 212's own entry (the two builds are adjacent), Ubuntu's, naming its Launchpad tracker.
#[test]
fn vm_bisect_over_ubuntu_abi_builds_finds_the_first_bad_one_and_its_changelog() {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bisect-ubuntu-predicate.sh");
    let script =
        "#!/bin/sh\nabi=$(uname -r | cut -d- -f2)\necho \"$KMATRIX_GUEST runs $(uname -r)\"\n[ \"$abi\" -lt 212 ]\n";
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = kmatrix(&[
        "--distro",
        "ubuntu",
        "--line",
        "4.15",
        "--good",
        "4.15.0-210",
        "--bad",
        "ubuntu:4.15.0-213",
        "--json",
        "--",
        p.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let steps: Vec<(&str, &str)> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["build"].as_str().unwrap(), s["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("ubuntu:4.15.0-210", "good"),
            ("ubuntu:4.15.0-213", "bad"),
            ("ubuntu:4.15.0-211", "good"),
            ("ubuntu:4.15.0-212", "bad")
        ]
    );
    assert_eq!(
        (r["last_good"]["version"].as_str(), r["first_bad"]["version"].as_str()),
        (Some("4.15.0-211.222"), Some("4.15.0-212.223"))
    );
    assert_eq!(r["first_bad"]["package"], "linux-image-unsigned-4.15.0-212-generic");
    let log = r["changelog"].as_array().unwrap_or_else(|| panic!("no changelog: {}", r["changelog_error"]));
    let versions: Vec<&str> = log.iter().map(|e| e["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["4.15.0-212.223"], "{log:?}");
    let text = log[0]["text"].as_str().unwrap();
    assert!(text.starts_with("linux (4.15.0-212.223) bionic;") && text.contains("(LP: #"), "{text}");
}
