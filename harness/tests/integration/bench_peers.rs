//! `kmatrix bench peers` on bad input, end to end through the binary, on a cache of its own: each
//! refusal exits 2 naming the input, before anything is installed or booted. The bench itself
//! installs software and takes minutes, so it is run by hand (docs/performance.md), not here.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

fn kmatrix(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kmatrix")).env("KMATRIX_CACHE", cache).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_names_the_peers_and_the_options() {
    let d = tempfile::tempdir().unwrap();
    let o = kmatrix(d.path(), &["bench", "peers", "--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for word in ["vmtest", "virtme-ng", "--runs", "--kernels", "--peers", "--json", "[default: 5]"] {
        assert!(out.contains(word), "--help lacks {word}:\n{out}");
    }
}

#[test]
fn zero_runs_and_unknown_peers_are_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    let o = kmatrix(d.path(), &["bench", "peers", "--runs", "0"]);
    common::assert_bad_input(&o, &["invalid value '0' for '--runs <RUNS>'"]);
    let o = kmatrix(d.path(), &["bench", "peers", "--peers", "vmtest,qemu-run"]);
    common::assert_bad_input(&o, &["unknown peer \"qemu-run\": expected one of vmtest, virtme-ng"]);
    // Nothing was installed for either.
    assert!(!d.path().join("bench/vmtest").exists());
}

#[test]
fn an_unknown_kernel_fails_before_any_peer_is_installed() {
    let d = tempfile::tempdir().unwrap();
    let o = kmatrix(d.path(), &["bench", "peers", "--kernels", "debian-9.9", "--runs", "1"]);
    common::assert_bad_input(&o, &["debian-9.9"]);
    assert!(!d.path().join("bench/vmtest").exists());
    assert!(!d.path().join("bench/virtme-ng").exists());
}
