//! The guest is an ordinary machine (issue 29), on the real Debian 6.1 under QEMU: the CPUs and
//! memory asked for (`--cpus`, `--memory`) and a per-CPU scenario that needs two; the host's
//! wall-clock time after restoring a snapshot whose clock was set back; `lo` up; the kernel's
//! `/lib/modules/<release>` with its indexes and headers where tools look; a scratch disk with
//! block-layer requests counted exactly; and `exec --output-dir` with each kernel's output
//! unprefixed. Each check is one a guest without the feature fails.

use crate::common;
use common::kmatrix;

use kmatrix_proto::Status;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

/// A scratch directory the guest can see (the guest's /tmp is its own, not the host's).
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// `kmatrix exec --kernel debian-6.1 FLAGS -- /bin/sh -c SCRIPT`, from a directory the guest sees.
fn sh_on_6_1(flags: &[&str], script: &str) -> Output {
    kmatrix()
        .args(["exec", "--kernel", "debian-6.1"])
        .args(flags)
        .args(["--", "/bin/sh", "-c", script])
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn machine_flags_refuse_bad_sizes_and_a_used_output_dir_by_name() {
    for (flag, value) in
        [("--cpus", "0"), ("--cpus", "256"), ("--memory", "64M"), ("--memory", "lots"), ("--disk", "0")]
    {
        let out = kmatrix().args(["exec", flag, value, "--", "/bin/true"]).output().unwrap();
        common::assert_bad_input(&out, &[flag, value]);
        let out = kmatrix().args(["run", "--kernels", "debian-6.1", flag, value]).output().unwrap();
        common::assert_bad_input(&out, &[flag, value]);
    }
    let used = scratch();
    std::fs::write(used.path().join("earlier"), "x").unwrap();
    let out = kmatrix()
        .args(["exec", "--output-dir"])
        .arg(used.path())
        .args(["--", "/bin/true"])
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap();
    common::assert_bad_input(&out, &["--output-dir", "not empty"]);
}

/// `--net user`: a program in the guest reaches a server on the host's loopback at 10.0.2.2,
/// through QEMU's user-mode network, on a kernel whose virtio-net is a module (6.1) and one
/// where it is built in (6.12), from a snapshot; the server sees the guest's token and the guest
/// its answer. Without the flag the same connection fails and the server sees nothing.
#[test]
fn vm_machine_net_user_reaches_a_server_on_the_hosts_loopback() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // One connection at most, within `wait`: the token it sent, answered with `pong:<token>`.
    let serve = |wait: std::time::Duration| {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match listener.accept() {
                Ok((mut c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
                    let mut buf = [0u8; 64];
                    let n = c.read(&mut buf).unwrap_or(0);
                    let got = String::from_utf8_lossy(&buf[..n]).trim().to_string();
                    let _ = c.write_all(format!("pong:{got}\n").as_bytes());
                    return Some(got);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(_) => return None,
            }
        }
    };
    let client = |kernel: &str, net: &[&str], token: &str| {
        kmatrix()
            .args(["exec", "--kernel", kernel])
            .args(net)
            .args(["--", "/bin/sh", "-c", &format!("echo {token} | /bin/busybox nc 10.0.2.2 {port}")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    for kernel in ["debian-6.1", "debian-6.12"] {
        let token = format!("{kernel}-{}", std::process::id());
        let child = client(kernel, &["--net", "user"], &token);
        let got = serve(std::time::Duration::from_secs(180));
        let out = child.wait_with_output().unwrap();
        assert_eq!(got.as_deref(), Some(token.as_str()), "{kernel}: {}", text(&out.stderr));
        assert!(out.status.success(), "{kernel}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), format!("pong:{token}"), "{kernel}");
    }
    // No network without the flag: the connection fails in the guest, nothing arrives.
    let out = client("debian-6.1", &[], "nothing").wait_with_output().unwrap();
    assert!(!out.status.success(), "connected without --net: {}", text(&out.stdout));
    assert_eq!(serve(std::time::Duration::from_millis(100)), None);
}

#[test]
fn vm_machine_cpus_and_memory_reach_the_guest() {
    let _one_at_a_time = serial();
    let script = "cat /sys/devices/system/cpu/online; grep MemTotal /proc/meminfo";
    let out = sh_on_6_1(&["--cpus", "2", "--memory", "768M"], script);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_eq!(stdout.lines().next(), Some("0-1"), "{stdout}");
    let kb: u64 = stdout.lines().nth(1).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap();
    // MemTotal is RAM less what the kernel reserved: between 600 and 768 MiB of a 768 MiB guest.
    assert!((600 * 1024..=768 * 1024).contains(&kb), "MemTotal {kb} kB of a 768 MiB guest");
    let out = sh_on_6_1(&["--cpus", "1"], script);
    assert_eq!(text(&out.stdout).lines().next(), Some("0"), "{}", text(&out.stderr));
}

/// `kmatrix run` of `scenarios` on debian-6.1 with `flags`, its results.
fn run_on_6_1(scenarios: &str, flags: &[&str]) -> (Output, Vec<kmatrix_proto::ScenarioResult>) {
    let out_dir = scratch();
    let out = kmatrix()
        .args(["run", "--kernels", "debian-6.1", "--scenarios", scenarios, "--json", "--retries", "0", "--out"])
        .arg(out_dir.path())
        .args(flags)
        .output()
        .unwrap();
    let rs = common::json_results(&out.stdout);
    // Nothing a run made for its guests (a scratch disk) outlives it.
    let left: Vec<String> = walk(out_dir.path()).into_iter().filter(|p| p.ends_with(".img")).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    (out, rs)
}

fn walk(dir: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            all.extend(walk(&p));
        } else {
            all.push(p.display().to_string());
        }
    }
    all
}

#[test]
fn vm_machine_percpu_openat_is_counted_per_cpu_exactly_and_needs_two() {
    let _one_at_a_time = serial();
    let id = "ftrace.percpu.sys_enter_openat";
    let (out, rs) = run_on_6_1(id, &["--cpus", "2"]);
    let stderr = text(&out.stderr);
    let [r] = rs.as_slice() else { panic!("{stderr}") };
    assert_eq!(r.status, Status::Pass, "{}: {:?}\n{stderr}", r.reason, r.counts);
    assert_eq!((r.cpus, r.memory_mb), (Some(2), Some(512)));
    for cpu in 0..2 {
        let c = r
            .counts
            .iter()
            .find(|c| c.what == format!("per_cpu/cpu{cpu}/trace entries of the workload pinned to cpu{cpu}"));
        assert_eq!(c.map(|c| (c.expected, c.observed)), Some((100, 100)), "{:?}", r.counts);
    }
    // On one CPU there is no second buffer: unsupported, with the kernel's word for it, and
    // the host agrees it is the machine, not the kernel.
    let (out, rs) = run_on_6_1(id, &["--cpus", "1"]);
    let [r] = rs.as_slice() else { panic!("{}", text(&out.stderr)) };
    assert_eq!(r.status, Status::Unsupported, "{}: {:?}", r.reason, r.verdict);
    assert_eq!(r.evidence.as_deref(), Some("/sys/devices/system/cpu/online: 0"));
    assert_eq!(r.cpus, Some(1));
    assert_eq!(out.status.code(), Some(0), "an unmet machine requirement is not a failure");
}

#[test]
fn vm_machine_scratch_disk_counts_direct_io_requests_exactly() {
    let _one_at_a_time = serial();
    let id = "ftrace.event.block_rq_direct_io";
    let (out, rs) = run_on_6_1(id, &["--disk", "64M"]);
    let stderr = text(&out.stderr);
    let [r] = rs.as_slice() else { panic!("{stderr}") };
    assert_eq!(r.status, Status::Pass, "{}: {:?}\n{stderr}", r.reason, r.counts);
    assert_eq!(r.disk_mb, Some(64));
    for what in ["block_rq_issue write requests of 8 sectors", "block_rq_complete read requests of 8 sectors"] {
        let c = r.counts.iter().find(|c| c.what == what).unwrap_or_else(|| panic!("{what}: {:?}", r.counts));
        assert_eq!((c.expected, c.observed), (32, 32));
    }
    // Without --disk the run gives the block scenarios a guest with a disk of its own choosing;
    // the BPF histogram holds exactly the workload's 32 writes and 32 reads.
    let (out, rs) = run_on_6_1(&format!("{id},bpf.block.rq_latency"), &[]);
    assert_eq!(rs.len(), 2, "{}", text(&out.stderr));
    for r in &rs {
        assert_eq!(r.status, Status::Pass, "{}: {}: {:?}", r.scenario, r.reason, r.counts);
        assert_eq!((r.cpus, r.disk_mb), (Some(1), Some(64)), "{}", r.scenario);
    }
    let r = rs.iter().find(|r| r.scenario == "bpf.block.rq_latency").unwrap();
    let c = r.counts.iter().find(|c| c.what == "latencies in the histogram (block_complete)");
    assert_eq!(c.map(|c| (c.expected, c.observed)), Some((64, 64)), "{:?}", r.counts);
}

/// A plain `kmatrix run` (no `--cpus`, no `--disk`) places each cell in a guest that meets its
/// scenario's machine needs: the per-CPU ones in a 2-CPU guest, the rest in the default 1-CPU
/// one; an explicit `--cpus 1` wins (unsupported, `vm_machine_percpu_openat_...`). Before, both
/// per-CPU scenarios were `unsupported` in a plain run.
#[test]
fn vm_machine_a_plain_run_gives_each_scenario_the_machine_it_needs() {
    let _one_at_a_time = serial();
    let ids = "ftrace.percpu.sys_enter_openat,bpf.percpu_array.openat,ftrace.event.sys_enter_openat";
    let (out, rs) = run_on_6_1(ids, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(rs.len(), 3, "{stderr}");
    let by = |id: &str| rs.iter().find(|r| r.scenario == id).unwrap_or_else(|| panic!("no {id}: {stderr}"));
    for id in ["ftrace.percpu.sys_enter_openat", "bpf.percpu_array.openat"] {
        let r = by(id);
        assert_eq!(r.status, Status::Pass, "{id}: {}: {:?}\n{stderr}", r.reason, r.counts);
        assert_eq!((r.cpus, r.disk_mb), (Some(2), None), "{id}");
    }
    let r = by("ftrace.event.sys_enter_openat");
    assert_eq!((r.status, r.cpus, r.disk_mb), (Status::Pass, Some(1), None), "{}", r.reason);
    // The BPF per-CPU values: exactly N0 = 100 on cpu0 and N1 = 37 on cpu1.
    let r = by("bpf.percpu_array.openat");
    for (what, n) in [("km_percpu[0] on cpu0", 100), ("km_percpu[0] on cpu1", 37)] {
        let c = r.counts.iter().find(|c| c.what == what).unwrap_or_else(|| panic!("{what}: {:?}", r.counts));
        assert_eq!((c.expected, c.observed), (n, n), "{what}");
    }
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn vm_machine_clock_is_the_hosts_after_restoring_a_snapshot_taken_ten_minutes_behind() {
    let _one_at_a_time = serial();
    // A QEMU whose guests boot with their RTC ten minutes behind: the snapshot taken at Hello
    // holds a clock as old as a snapshot taken ten minutes ago would.
    let d = scratch();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let base = Command::new("date").args(["-u", "-d", &format!("@{}", now - 600), "+%Y-%m-%dT%H:%M:%S"]).output();
    let base = text(&base.unwrap().stdout).trim().to_string();
    let qemu = d.path().join("qemu-behind");
    let real = which("qemu-system-x86_64");
    std::fs::write(&qemu, format!("#!/bin/sh\nexec {} \"$@\" -rtc base={base}\n", real.display())).unwrap();
    std::fs::set_permissions(&qemu, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = snapshots();
    let exec = || {
        let out = kmatrix()
            .env("KMATRIX_QEMU", &qemu)
            .args([
                "exec",
                "--kernel",
                "debian-6.1",
                "--accel",
                "tcg",
                "--snapshot",
                "on",
                "-v",
                "--",
                "/bin/date",
                "+%s",
            ])
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .output()
            .unwrap();
        let host = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        (out, host)
    };
    let first = exec();
    let (out, host) = exec();
    for s in snapshots().difference(&before) {
        let _ = std::fs::remove_dir_all(s);
    }
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("restored from snapshot"), "the second exec restores: {stderr}");
    let guest: f64 = text(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{}\n{stderr}", text(&out.stdout)));
    // `date +%s` ran before the host read its clock, within the exec's own few seconds.
    assert!((host - guest).abs() < 1.0 + exec_secs(&stderr), "guest {guest} host {host}\n{stderr}");
    // The agent saw the clock ten minutes (and the restore's seconds) behind, and said so.
    let offset = clock_offset(&stderr).unwrap_or_else(|| panic!("no clock line: {stderr}"));
    assert!((-700.0..=-590.0).contains(&offset), "offset {offset} s\n{stderr}\n{}", text(&first.0.stderr));
}

/// The `kmatrix: <k>: guest clock was S s off` line of `exec -v`.
fn clock_offset(stderr: &str) -> Option<f64> {
    let l = stderr.lines().find(|l| l.contains("guest clock was"))?;
    l.split("guest clock was ").nth(1)?.split_whitespace().next()?.parse().ok()
}

/// How long the program ran in the guest, as `exec -v` says it (`ran in N ms`), in seconds.
fn exec_secs(stderr: &str) -> f64 {
    stderr
        .lines()
        .find_map(|l| l.split("ran in ").nth(1)?.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ms| ms / 1000.0)
}

fn snapshots() -> std::collections::BTreeSet<std::path::PathBuf> {
    let cache = std::env::var_os("KMATRIX_CACHE").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(".cache"));
        base.join("kmatrix")
    });
    std::fs::read_dir(cache.join("snapshots")).into_iter().flatten().flatten().map(|e| e.path()).collect()
}

fn which(name: &str) -> std::path::PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not in PATH"))
}

#[test]
fn vm_machine_loopback_is_up_for_a_program_that_serves_and_connects() {
    let _one_at_a_time = serial();
    let py = "import socket\n\
              s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n\
              c = socket.create_connection(s.getsockname(), timeout=5)\n\
              a, _ = s.accept(); c.sendall(b'ping'); print(a.recv(4).decode())\n";
    let out = kmatrix()
        .args(["exec", "--kernel", "debian-6.1", "--", "/usr/bin/python3", "-c", py])
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout).trim(), "ping", "{}", text(&out.stderr));
    assert!(out.status.success());
}

#[test]
fn vm_machine_lib_modules_has_the_kernels_indexes_and_headers() {
    let _one_at_a_time = serial();
    // modinfo by name reads modules.dep.bin & co, which only depmod writes.
    let script = "r=$(uname -r); modinfo -F name 9p; modinfo -F depends 9p; \
                  test -e /lib/modules/$r/modules.alias.bin && echo aliases; \
                  test -e /lib/modules/$r/build/include/linux/kconfig.h && echo build; \
                  echo \"bpftrace=$BPFTRACE_KERNEL_SOURCE\"";
    let out = sh_on_6_1(&["--kernel-headers"], script);
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("9p"), "{stdout}\n{}", text(&out.stderr));
    assert_eq!(lines.next(), Some("9pnet,fscache,netfs"), "{stdout}");
    assert_eq!(lines.next(), Some("aliases"), "{stdout}");
    assert_eq!(lines.next(), Some("build"), "{stdout}");
    assert!(lines.next().is_some_and(|l| l.starts_with("bpftrace=/") && l.contains("headers")), "{stdout}");
}

#[test]
fn vm_machine_runqlat_bt_gives_a_histogram_on_6_1_with_headers() {
    let _one_at_a_time = serial();
    let tool = Path::new("/usr/sbin/runqlat.bt");
    if !tool.is_file() {
        eprintln!("skipped: the host has no bpftrace tools (Debian's bpftrace)");
        return;
    }
    let out = kmatrix()
        .args(["exec", "--kernel", "debian-6.1", "--kernel-headers", "--timeout", "900", "--"])
        .args(["/usr/bin/bpftrace", "-c", "/bin/sleep 1"])
        .arg(tool)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("@usecs:") && stdout.contains("|@"), "no histogram:\n{stdout}\n{stderr}");
}

#[test]
fn vm_exec_output_dir_keeps_each_kernels_output_unprefixed_and_one_kernel_is_byte_exact() {
    let _one_at_a_time = serial();
    // Bytes a parser cares about: no newline at the end, a tab, a CR, a non-UTF-8 byte.
    let script = "printf 'first\\tline\\r\\n{\"Action\":\"pass\"}\\n\\377tail'; printf 'to stderr' >&2; exit 3";
    let host = Command::new("/bin/sh").args(["-c", script]).output().unwrap();
    let d = scratch();
    let dir = d.path().join("out");
    let out = kmatrix()
        .args(["exec", "--kernels", "debian-6.1,debian-6.12", "--output-dir"])
        .arg(&dir)
        .args(["--", "/bin/sh", "-c", script])
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    for k in ["debian-6.1", "debian-6.12"] {
        let read = |f: &str| std::fs::read(dir.join(k).join(f)).unwrap_or_else(|e| panic!("{k}/{f}: {e}"));
        assert_eq!(read("stdout"), host.stdout, "{k}");
        assert_eq!(read("stderr"), host.stderr, "{k}");
        assert_eq!(read("status"), b"3\n", "{k}");
    }
    // With one kernel the terminal gets the program's own bytes.
    let out = sh_on_6_1(&[], script);
    assert_eq!(out.stdout, host.stdout);
    assert_eq!(out.status.code(), Some(3));
}

/// The clock test removes the snapshots it made; run alone, it can never remove one another
/// test of this binary is committing or restoring (seen: "snapshot … vanished after commit").
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}
