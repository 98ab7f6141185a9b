//! Soak: 50 consecutive runs of one cheap scenario (`ftrace.format.sys_enter_openat`) on the real
//! Debian 6.1, each through the library's run entry point (`run::matrix::execute`, what `kmatrix
//! run` calls) in this process, from a snapshot once the first run made one. After each run it
//! counts what a leak would grow: this process's open fds, its child processes (QEMU,
//! virtiofsd, probes), files left in its own temporary directory, and its resident memory. Fds,
//! children and temp files must come back to their level after the warm-up exactly; memory may
//! move within [`RSS_TOLERANCE_KB`]. Figures: docs/reliability.md.
//!
//! The failing case: `KMATRIX_SOAK_INJECT=fd` (or `child`, `mem`) makes each run leak an open
//! file (a sleeping child, 200 KB) on purpose, and the test fails naming the run and the level.

use kmatrix::cache::Cache;
use kmatrix::run::guests::Guests;
use kmatrix::run::matrix::{self, MatrixRun};
use kmatrix::run::scheduler::SchedulerConfig;
use kmatrix::run::verdict::Expectations;
use kmatrix::session::Session;
use kmatrix::settings::{self, GuestSettings, SnapshotMode};
use kmatrix_proto::Status;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const RUNS: usize = 50;
/// Runs before the baseline: the first makes the snapshot, and the allocator's arenas and
/// tokio's worker threads reach their working size.
const WARM_UP: usize = 5;
/// Resident memory may grow this much from the end of the warm-up to the last run. A leak of
/// one result (a few KB) or one VM's channel buffers (a 1 MiB line bound) per run would add
/// 0.2–50 MiB over 45 runs; allocator noise (glibc keeps freed pages of its arenas, one arena
/// per thread that ran a VM) measured 0.45 MiB over the 45 runs here. 4 MiB catches a leak of
/// 90 KB or more per run.
const RSS_TOLERANCE_KB: i64 = 4 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Level {
    fds: usize,
    children: usize,
    temp_files: usize,
    rss_kb: i64,
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Processes whose parent is this one.
fn children() -> usize {
    let me = std::process::id();
    let Ok(d) = std::fs::read_dir("/proc") else { return 0 };
    d.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|p| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { return false };
            // pid (comm) state ppid ...
            stat.rsplit_once(") ").and_then(|x| x.1.split_whitespace().nth(1)?.parse::<u32>().ok()) == Some(me)
        })
        .count()
}

fn files_under(dir: &Path) -> usize {
    let Ok(d) = std::fs::read_dir(dir) else { return 0 };
    d.flatten().map(|e| if e.path().is_dir() { 1 + files_under(&e.path()) } else { 1 }).sum()
}

fn rss_kb() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn level(tmp: &Path) -> Level {
    Level { fds: fds(), children: children(), temp_files: files_under(tmp), rss_kb: rss_kb() }
}

/// `KMATRIX_SOAK_INJECT`: leak on purpose, to see the checks fail.
fn inject_leak(kept: &mut Vec<Box<dyn std::any::Any>>) {
    match std::env::var("KMATRIX_SOAK_INJECT").as_deref() {
        Ok("fd") => kept.push(Box::new(std::fs::File::open("/dev/null").unwrap())),
        Ok("child") => kept.push(Box::new(std::process::Command::new("sleep").arg("60").spawn().unwrap())),
        Ok("mem") => kept.push(Box::new(vec![1u8; 200 << 10])),
        _ => {}
    }
}

#[test]
fn vm_soak_fifty_runs_leak_no_fd_process_temp_file_or_memory() {
    // This process's own temporary directory, so other builds on the machine do not count;
    // set before any thread exists.
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("TMPDIR", tmp.path());
    let out = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cache = Cache::from_env().unwrap();
    let catalogue =
        kmatrix::catalogue::select(&kmatrix::catalogue::load(&cache).unwrap(), "ftrace.format.sys_enter_openat");
    assert_eq!(catalogue.len(), 1);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let session = Arc::new(rt.block_on(Session::with(cache.clone(), kmatrix::vm::qemu_binary(), Default::default())));
    let mut levels: Vec<Level> = Vec::new();
    let mut took = Vec::new();
    let mut leaked = Vec::new();
    for i in 0..RUNS {
        let dir = out.path().join(format!("run-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let sched = SchedulerConfig {
            guests: Guests {
                session: session.clone(),
                fetch: Default::default(),
                settings: GuestSettings { snapshot: SnapshotMode::On, ..Default::default() },
                scenario_timeout: settings::SCENARIO_TIMEOUT,
            },
            vm_timeout: settings::VM_TIMEOUT,
            jobs: 1,
            host_root: false,
            log_dir: dir.clone(),
            extra: Vec::new(),
            retries: 0,
            expected: None,
            kernel_headers: false,
            fit: kmatrix::run::machine::Fit::ALL,
        };
        let run = MatrixRun {
            sched,
            kernels: vec!["debian-6.1".into()],
            scenarios: catalogue.clone(),
            params: BTreeMap::new(),
            expectations: Expectations::default(),
            results_path: dir.join("results.jsonl"),
            cells: None,
        };
        let t = Instant::now();
        let outcome = rt.block_on(matrix::execute(run, |_| {})).unwrap();
        took.push(t.elapsed().as_secs_f64());
        assert_eq!(outcome.results.len(), 1, "run {i}");
        let r = &outcome.results[0];
        assert_eq!(r.status, Status::Pass, "run {i}: {r:?}");
        drop(outcome);
        // The run's own files are results, kept on purpose: drop them before counting.
        std::fs::remove_dir_all(&dir).unwrap();
        inject_leak(&mut leaked);
        let now = level(tmp.path());
        if i >= WARM_UP {
            let base = levels[WARM_UP - 1];
            assert_eq!(
                (now.fds, now.children, now.temp_files),
                (base.fds, base.children, base.temp_files),
                "run {i}: fds, children, temp files grew from {base:?} to {now:?}"
            );
        }
        levels.push(now);
    }
    let base = levels[WARM_UP - 1];
    let last = levels[RUNS - 1];
    let max_rss = levels[WARM_UP..].iter().map(|l| l.rss_kb).max().unwrap_or(0);
    let mut sorted = took.clone();
    sorted.sort_by(f64::total_cmp);
    eprintln!(
        "soak: {RUNS} runs, {:.2}/{:.2}/{:.2} s min/median/max per run; after warm-up (run {WARM_UP}) {base:?}, \
         at the end {last:?}, max RSS after warm-up {max_rss} kB",
        sorted[0],
        sorted[RUNS / 2],
        sorted[RUNS - 1]
    );
    drop(leaked);
    assert_eq!(last.children, 0, "no child process outlives its run: {last:?}");
    assert!(
        last.rss_kb - base.rss_kb <= RSS_TOLERANCE_KB,
        "resident memory grew {} kB over {} runs (tolerance {RSS_TOLERANCE_KB} kB): {base:?} -> {last:?}",
        last.rss_kb - base.rss_kb,
        RUNS - WARM_UP
    );
}
