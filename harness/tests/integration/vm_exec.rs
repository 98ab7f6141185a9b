//! `kmatrix exec` through the shared host root, on real Debian kernels: a real crate's `cargo test`
//! with kmatrix as the cargo runner on two kernels; a Go package's `go test -json -exec` per
//! kernel; scripts, the caller's env, cwd and stdin; exit
//! codes and signals; a program that never exits and leaves children holding its pipes; and the
//! bad inputs (no such program, a script without its interpreter, a bad --rw) refused by name.

use crate::common;
use common::kmatrix;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory for a test.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

#[test]
fn vm_exec_is_a_cargo_runner_for_a_real_crate_on_two_kernels() {
    let demo = common::root().join("examples/runner-demo");
    let target = scratch();
    let runner = format!("{} exec --kernels debian-6.1,debian-6.12 --", env!("CARGO_BIN_EXE_kmatrix"));
    let run = |token: Option<&str>| {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.args(["test", "--offline", "--manifest-path"])
            .arg(demo.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target.path())
            .env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER", &runner)
            .env_remove("KMATRIX_DEMO_TOKEN");
        if let Some(t) = token {
            c.env("KMATRIX_DEMO_TOKEN", t);
        }
        c.output().unwrap()
    };
    let out = run(Some("passed-through"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for k in ["debian-6.1", "debian-6.12"] {
        for t in ["tracefs_lists_the_function_tracer", "runs_in_the_guest_with_the_callers_environment_and_cwd"] {
            assert!(stdout.contains(&format!("[{k}] test {t} ... ok")), "{k} {t}:\n{stdout}\n{stderr}");
        }
        assert!(stderr.contains(&format!("== {k} (")), "{stderr}");
    }
    // The same suite without the caller's variable fails in the guest: the check can fail.
    let out = run(None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("[debian-6.1] test runs_in_the_guest_with_the_callers_environment_and_cwd ... FAILED"),
        "{stdout}"
    );
}

/// A Go package's own tests, as a Go project runs them across kernels: `go test -json -exec
/// "kmatrix exec --kernel K --"` once per kernel (the loop the README documents), each
/// invocation's output the program's own, so `go test -json`'s events parse. The tests read the
/// guest's kernel release and its tracefs: run on the host they fail.
#[test]
fn vm_exec_runs_a_go_test_suite_per_kernel_with_json_events() {
    let dir = scratch();
    std::fs::write(dir.path().join("go.mod"), "module kmatrix.test/demo\n\ngo 1.19\n").unwrap();
    std::fs::write(
        dir.path().join("demo_test.go"),
        r#"package demo

import (
	"os"
	"strings"
	"testing"
)

func TestRunsInTheGuestKernel(t *testing.T) {
	rel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	want := os.Getenv("KMATRIX_KERNEL_RELEASE")
	if want == "" || strings.TrimSpace(string(rel)) != want {
		t.Fatalf("running on %q, kmatrix says %q", strings.TrimSpace(string(rel)), want)
	}
	t.Logf("kernel %s", want)
}

func TestTracefsListsTheFunctionTracer(t *testing.T) {
	b, err := os.ReadFile("/sys/kernel/tracing/available_tracers")
	if err != nil || !strings.Contains(string(b), "function") {
		t.Fatalf("no function tracer: %q %v", b, err)
	}
}
"#,
    )
    .unwrap();
    let go = |exec: Option<&str>| {
        let mut c = Command::new("go");
        c.args(["test", "-json", "-count=1"]);
        if let Some(e) = exec {
            c.args(["-exec", e]);
        }
        c.arg("./...")
            .current_dir(dir.path())
            .env("GOCACHE", dir.path().join("gocache"))
            .env("GOPATH", dir.path().join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env_remove("KMATRIX_KERNEL_RELEASE")
            .output()
            .expect("go (Debian and Ubuntu: apt-get install golang-go; scripts/setup.sh installs it)")
    };
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim().to_string();
    for (k, release_prefix) in [("debian-6.1", "6.1.0-"), ("debian-6.12", "6.12.")] {
        let out = go(Some(&format!("{} exec --kernel {k} --", env!("CARGO_BIN_EXE_kmatrix"))));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{k}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        // Every line is one of go test's JSON events: nothing of kmatrix's in the program's output.
        let events: Vec<serde_json::Value> =
            stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{k}: {e}: {l}"))).collect();
        let passed: Vec<&str> =
            events.iter().filter(|e| e["Action"] == "pass").filter_map(|e| e["Test"].as_str()).collect();
        assert_eq!(passed, ["TestRunsInTheGuestKernel", "TestTracefsListsTheFunctionTracer"], "{k}: {stdout}");
        let said = events.iter().filter_map(|e| e["Output"].as_str()).find(|o| o.contains("kernel ")).unwrap_or("");
        assert!(said.contains(&format!("kernel {release_prefix}")) && !said.contains(&host_release), "{k}: {said}");
    }
    // On the host the same suite fails: the checks can fail.
    let out = go(None);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""Action":"fail""#));
}

#[test]
fn vm_exec_runs_scripts_with_env_cwd_stdin_and_exit_codes() {
    let d = scratch();
    let script = d.path().join("check.sh");
    std::fs::write(
        &script,
        "#!/bin/bash\nset -e\necho \"cwd=$(pwd) foo=$FOO guest=$KMATRIX_GUEST\"\nread line\necho \"stdin=$line\"\n\
         test -e /sys/kernel/tracing/trace\necho oops >&2\nexit 42\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut child = kmatrix()
        .args(["exec", "--kernel", "debian-6.1", "--env", "FOO=bar", "--"])
        .arg(&script)
        .current_dir(d.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"from the host\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(42), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("cwd={} foo=bar guest=debian-6.1", d.path().display())), "{stdout}");
    assert!(stdout.contains("stdin=from the host"), "{stdout}");
    assert!(stderr.contains("oops"), "{stderr}");
    // A signal is 128 + its number, as a shell reports it.
    let (out, _) = sh_on_6_1(&[], "kill -TERM $$");
    assert_eq!(out.status.code(), Some(128 + 15), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn vm_exec_kills_a_program_at_its_timeout_with_what_it_left_behind() {
    let (out, took) = sh_on_6_1(&["--timeout", "3"], "echo started; (sleep 600 &); sleep 600");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + 9), "{stdout}\n{stderr}");
    assert!(stdout.contains("started"), "output so far is kept: {stdout}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // A program that exits while a child it left holds its output: the grace ends it.
    let (out, took) = sh_on_6_1(&["--timeout", "60"], "(sleep 600 &); echo parent-done");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("parent-done"));
    assert!(took < Duration::from_secs(20), "a grandchild held the pipes: {took:?}");
}

/// `kmatrix exec --kernel debian-6.1 FLAGS -- /bin/sh -c SCRIPT`: its output and how long it took.
fn sh_on_6_1(flags: &[&str], script: &str) -> (Output, Duration) {
    let t = Instant::now();
    let out =
        kmatrix().args(["exec", "--kernel", "debian-6.1"]).args(flags).args(["--", "/bin/sh", "-c", script]).output();
    (out.unwrap(), t.elapsed())
}

#[test]
fn exec_refuses_missing_programs_interpreters_and_dirs_by_name() {
    let d = tempfile::tempdir().unwrap();
    let out = kmatrix().args(["exec", "--", "kmatrix-no-such-program"]).output().unwrap();
    common::assert_bad_input(&out, &["kmatrix-no-such-program"]);
    let script = d.path().join("needs-lua.sh");
    std::fs::write(&script, "#!/opt/kmatrix-absent/lua\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = kmatrix().args(["exec", "--"]).arg(&script).output().unwrap();
    common::assert_bad_input(&out, &["/opt/kmatrix-absent/lua"]);
    let out = kmatrix().args(["exec", "--rw", "/kmatrix/no/such/dir", "--", "/bin/true"]).output().unwrap();
    common::assert_bad_input(&out, &["/kmatrix/no/such/dir"]);
    // /proc, /sys and /dev are the guest's own: a host directory there cannot be shown.
    let out = kmatrix().args(["exec", "--", "/bin/true"]).current_dir("/proc/self").output().unwrap();
    common::assert_bad_input(&out, &["the current directory /proc/", "/proc there is the guest's own"]);
    let out = kmatrix().args(["exec", "--rw", "/sys/kernel", "--", "/bin/true"]).output().unwrap();
    common::assert_bad_input(&out, &["--rw /sys/kernel", "/sys there is the guest's own"]);
    // A current directory removed under the caller is named, not guessed.
    let gone = d.path().join("removed-cwd");
    std::fs::create_dir(&gone).unwrap();
    let out = Command::new("sh")
        .args(["-c", "cd \"$1\" && rmdir \"$1\" && exec \"$2\" exec -- /bin/true", "sh"])
        .arg(&gone)
        .arg(env!("CARGO_BIN_EXE_kmatrix"))
        .output()
        .unwrap();
    common::assert_bad_input(&out, &["the current directory", &gone.display().to_string()]);
}

/// Work that lives under the host's `/tmp` (a scratch clone, a CI checkout): the program, its cwd
/// and the files it reads stay at their host paths in the guest, though the guest's `/tmp` is
/// its own scratch space (writable, and nothing written there reaches the host), from a cold
/// boot and from a snapshot. An argument naming another directory under `/tmp` is shown too.
#[test]
fn vm_exec_runs_a_program_under_the_hosts_tmp_at_its_host_path() {
    let d = tempfile::tempdir_in("/tmp").unwrap();
    let other = tempfile::tempdir_in("/tmp").unwrap();
    let work = d.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let token = format!("beside-the-program-{}", std::process::id());
    std::fs::write(work.join("data.txt"), format!("{token}\n")).unwrap();
    std::fs::write(other.path().join("named.txt"), "named-by-argument\n").unwrap();
    let script = work.join("show.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"pwd=$(pwd)\"\ncat data.txt\ncat \"$1\"\n\
         echo guest > /tmp/kmatrix-guest-scratch.$$ && rm /tmp/kmatrix-guest-scratch.$$ && echo scratch-writable\n\
         touch new-file 2>/dev/null || echo host-dir-read-only\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let named = other.path().join("named.txt");
    let want = format!("pwd={}\n{token}\nnamed-by-argument\nscratch-writable\nhost-dir-read-only\n", work.display());
    for snapshot in ["off", "on"] {
        let out = kmatrix()
            .args(["exec", "--kernel", "debian-6.1", "--snapshot", snapshot, "--", "./show.sh"])
            .arg(&named)
            .current_dir(&work)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "snapshot {snapshot}: {stdout}\n{stderr}");
        assert_eq!(stdout, want, "snapshot {snapshot}: {stderr}");
    }
    assert!(!work.join("new-file").exists());
}

#[test]
fn vm_exec_writes_only_where_allowed() {
    // Under the host's /tmp: the --rw share mounts on the host's directory shown there.
    let d = tempfile::tempdir_in("/tmp").unwrap();
    let file = d.path().join("written-by-guest");
    let out = kmatrix()
        .args(["exec", "--kernel", "debian-6.1", "--rw"])
        .arg(d.path())
        .args(["--", "/bin/sh", "-c"])
        .arg(format!("echo from-guest > {} && touch /kmatrix-host-root-probe", file.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The --rw directory took the write; the rest of the host root is read-only.
    assert_eq!(std::fs::read_to_string(&file).unwrap_or_default(), "from-guest\n", "{stderr}");
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert!(!std::path::Path::new("/kmatrix-host-root-probe").exists());
}

/// BCC compiles its programs against the running kernel's headers, which no Debian kernel
/// carries (`CONFIG_IKHEADERS` is off): with `--kernel-headers` the guest program gets Debian's
/// `linux-headers` of that exact build as `BCC_KERNEL_SOURCE` and `funccount` compiles and
/// attaches; without it the same command cannot find headers.
#[test]
fn vm_exec_kernel_headers_let_bcc_compile() {
    let script = "echo BCC=${BCC_KERNEL_SOURCE:-none}; test -f \"$BCC_KERNEL_SOURCE/include/linux/kconfig.h\" && echo kconfig; funccount-bpfcc -d 1 do_sys_openat2 2>&1";
    let run = |headers: bool| {
        let mut c = kmatrix();
        c.args(["exec", "--kernel", "debian-6.1"]);
        if headers {
            c.arg("--kernel-headers");
        }
        let out = c.args(["--", "sh", "-c", script]).stdin(Stdio::null()).output().unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (stdout, stderr) = run(true);
    assert!(stdout.contains("BCC=/") && stdout.contains("6.1.0-") && stdout.contains("kconfig"), "{stdout}{stderr}");
    assert!(stdout.contains("Tracing 1 functions") && !stdout.contains("Failed to compile"), "{stdout}{stderr}");
    let (stdout, stderr) = run(false);
    assert!(stdout.contains("BCC=none"), "{stdout}{stderr}");
    assert!(stdout.contains("Unable to find kernel headers"), "{stdout}{stderr}");
}
