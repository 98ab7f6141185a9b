//! `kmatrix gc` end to end, on a cache of its own: another process holds one kernel entry (as a
//! running kmatrix does, a shared lock on its use lock) and one run directory; with a budget of
//! nothing, everything else goes and those two stay, and `kernels gc` leaves the held kernel too.

use crate::common;

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

fn kmatrix(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kmatrix")).env("KMATRIX_CACHE", cache).args(args).output().unwrap()
}

/// Another process holding a lock, killed (and reaped) when dropped.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Hold `lock` with a shared flock in another process (flock(1) keeps it, not the sleep it runs),
/// and wait until it does.
fn hold(lock: &Path) -> Holder {
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let holder = Holder(Command::new("flock").args(["-s", "-o"]).arg(lock).args(["sleep", "60"]).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    // flock -n fails at once (exit 1) while the other process holds the lock.
    while Command::new("flock").args(["-n", "-x"]).arg(lock).arg("true").status().unwrap().success() {
        assert!(Instant::now() < deadline, "flock(1) never took {}", lock.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    holder
}

fn entry(dir: &Path, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("data"), vec![1u8; size]).unwrap();
}

#[test]
fn gc_keeps_what_another_process_holds_and_removes_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let runs = d.path().join("runs");
    let held_kernel = cache.join("kernels/linux-image-held_1");
    let free_kernel = cache.join("kernels/linux-image-free_1");
    let image = cache.join("images/abcd.cpio");
    let held_run = runs.join("run-1");
    let free_run = runs.join("run-2");
    for p in [&held_kernel, &free_kernel, &held_run, &free_run] {
        entry(p, 100_000);
    }
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    std::fs::write(&image, vec![2u8; 100_000]).unwrap();
    let holders =
        vec![hold(&cache.join("locks/use-kernel-linux-image-held_1.lock")), hold(&held_run.join(".in-use.lock"))];

    // A dry run names what would go and removes nothing.
    let o = kmatrix(&cache, &["gc", "--max-size", "0", "--runs", runs.to_str().unwrap(), "--dry-run"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains(&format!("would remove {}", free_kernel.display())), "{text}");
    assert!(free_kernel.exists() && image.exists() && free_run.exists());

    let o = kmatrix(&cache, &["gc", "--max-size", "0", "--runs", runs.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(held_kernel.exists() && held_run.exists(), "{r:#}");
    assert!(!free_kernel.exists() && !image.exists() && !free_run.exists(), "{r:#}");
    let mut removed: Vec<&str> = r["removed"].as_array().unwrap().iter().map(|x| x["kind"].as_str().unwrap()).collect();
    removed.sort();
    assert_eq!(removed, ["image", "kernel", "run"]);
    let in_use: Vec<&str> = r["in_use"].as_array().unwrap().iter().map(|x| x["path"].as_str().unwrap()).collect();
    assert_eq!(in_use.len(), 2, "{r:#}");
    assert!(r["after"].as_u64().unwrap() > 0, "the held entries are still counted");

    // `kernels gc` (kernels the lock does not name) leaves the held one too.
    let o = kmatrix(&cache, &["kernels", "gc"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(held_kernel.exists());

    // Once its holder is gone, it goes.
    drop(holders);
    let o = kmatrix(&cache, &["gc", "--max-size", "0", "--runs", runs.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!held_kernel.exists() && !held_run.exists(), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn a_bad_size_is_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let o = kmatrix(d.path(), &["gc", "--max-size", "lots"]);
    common::assert_bad_input(&o, &["read size \"lots\""]);
}

/// A cache directory this user cannot write (another user's, or a read-only one) is one line
/// naming it, exit 3, before anything is fetched or booted. Run in a user namespace without a
/// mapping, where even root is refused a directory without write permission, so the check holds
/// as root and as an ordinary user.
#[test]
fn an_unwritable_cache_directory_is_named_in_one_line() {
    eprintln!("{}", common::host_kind());
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let out = Command::new("unshare")
        .args(["--user", env!("CARGO_BIN_EXE_kmatrix"), "kernels", "fetch", "debian-6.1"])
        .env("KMATRIX_CACHE", &cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("the cache directory {} is not writable", cache.display())), "{stderr}");
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}
