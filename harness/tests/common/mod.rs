//! What the integration tests that compile BPF objects share: the workspace root, the fixture
//! sources (tests/fixtures/bpf, see its README) and compiling a source as agent/build.rs does.

// Each test binary uses a different part of this module.
#![allow(dead_code, reason = "each test binary uses a different part of this module")]

pub mod action;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A BPF C source of tests/fixtures/bpf.
pub fn fixture(name: &str) -> PathBuf {
    root().join("harness/tests/fixtures/bpf").join(name)
}

/// The agent's own CO-RE object source (`task_struct` reads through `state` or `__state`).
pub fn core_source() -> PathBuf {
    root().join("tracer-ebpf/src/core.bpf.c")
}

/// Compile a BPF C source as agent/build.rs does (see tests/fixtures/bpf/README.md) into
/// `dir/<name>.o`.
pub fn build(src: &Path, dir: &Path) -> PathBuf {
    let name = src.file_name().unwrap().to_string_lossy().replace(".c", ".o");
    let out = dir.join(name);
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let o = Command::new(&clang)
        .args(["-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86", "-Wall", "-I"])
        .arg(root().join("tracer-ebpf/include"))
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("{clang}: {e}; apt-get install clang libbpf-dev"));
    assert!(o.status.success(), "{clang} failed on {}: {}", src.display(), String::from_utf8_lossy(&o.stderr));
    out
}

/// `count_openat.bpf.c` compiled into `dir`, and a copy of it as `dir/name` cut to its first
/// `1/parts` of bytes (an ELF whose sections run past its end): the object and the copy.
pub fn cut_object(dir: &Path, parts: usize, name: &str) -> (Vec<u8>, PathBuf) {
    let good = std::fs::read(build(&fixture("count_openat.bpf.c"), dir)).unwrap();
    let cut = dir.join(name);
    std::fs::write(&cut, &good[..good.len() / parts]).unwrap();
    (good, cut)
}

/// A kernel ready to boot, with the session (cache, QEMU, accelerator) that boots it.
pub struct Prepared {
    pub session: kmatrix::session::Session,
    pub kernel: kmatrix::kernel::PreparedKernel,
    pub image: kmatrix::image::Image,
}

/// Prepare `kernel` (a matrix id) with `extra` files in its image, in a session on the default
/// cache with the accelerator chosen as `kmatrix run` chooses it.
pub async fn prepare(kernel: &str, extra: Vec<kmatrix::image::ExtraFile>) -> Prepared {
    prepare_with(kernel, extra, Default::default()).await
}

/// [`prepare`] with the modules that mount the host's root in the image (set `share` in the
/// guest options to share it).
pub async fn prepare_shared(kernel: &str) -> Prepared {
    prepare_with(kernel, Vec::new(), kmatrix::image::ImageOptions { share: true, ..Default::default() }).await
}

async fn prepare_with(
    kernel: &str,
    extra: Vec<kmatrix::image::ExtraFile>,
    io: kmatrix::image::ImageOptions,
) -> Prepared {
    let session = kmatrix::session::Session::open(kmatrix::vm::AccelChoice::Auto).await.expect("open a session");
    eprintln!("test: {}", session.accel.describe());
    let (kernel, image) = session
        .prepare(kernel, &Default::default(), io, &extra)
        .await
        .unwrap_or_else(|e| panic!("prepare {kernel}: {e:#}"));
    Prepared { session, kernel, image }
}

impl Prepared {
    /// Guest options for the VM tests: a generous boot timeout, the console log under the
    /// target's temporary directory, `append` on the kernel command line, no snapshots.
    pub fn options(&self, tag: &str, append: Vec<String>) -> kmatrix::guest::GuestOptions {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kmatrix-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let settings = kmatrix::settings::GuestSettings {
            boot_timeout: std::time::Duration::from_secs(120),
            append,
            snapshot: kmatrix::settings::SnapshotMode::Off,
            ..Default::default()
        };
        let log = dir.join(format!("{}-{tag}-{}.console.log", self.kernel.id, std::process::id()));
        self.session.guest_options(&self.kernel, &settings, log)
    }

    /// Start a guest (under TCG again if KVM fails, as every surface does).
    pub async fn start(&self, opts: &kmatrix::guest::GuestOptions) -> kmatrix::guest::Guest {
        self.session
            .start_guest(&self.kernel, &self.image, opts)
            .await
            .unwrap_or_else(|e| panic!("boot {} to Hello: {e}", self.kernel.id))
    }
}

/// The kmatrix binary under test, as the integration tests run it: with the host's own QEMU
/// (`KMATRIX_QEMU` unset; `vm_accel` sets a fake one on its own commands) and the target's
/// temporary directory as its cwd, so that default outputs (`target/kmatrix/...`) land there
/// and not in the source tree.
pub fn kmatrix() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmatrix"));
    c.env_remove("KMATRIX_QEMU").current_dir(env!("CARGO_TARGET_TMPDIR"));
    c
}

/// Checks that kmatrix refused what it was given as bad input: exit 2 (nothing ran), and a
/// message on stderr that names every one of `names`. Returns that message.
pub fn assert_bad_input(out: &std::process::Output, names: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for name in names {
        assert!(stderr.contains(name), "stderr does not name {name:?}: {stderr}");
    }
    stderr
}

/// The results a `kmatrix ... --json` run printed on stdout, one JSON line each.
pub fn json_results(stdout: &[u8]) -> Vec<kmatrix_proto::ScenarioResult> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a result ({e}): {l}")))
        .collect()
}

/// A terminal a person would use, driven through tmux (`send-keys`, then `capture-pane`): for
/// the tests of `kmatrix shell` and `kmatrix rerun --shell`.
pub struct Tmux {
    pub session: String,
}

impl Tmux {
    /// A detached session of `cols`×`rows` running `cmd` (a shell command line), named after
    /// `tag` and this test process.
    pub fn start(tag: &str, cols: u16, rows: u16, cmd: &str) -> Tmux {
        let session = format!("kmatrix-{tag}-{}", std::process::id());
        let st = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session, "-x", &cols.to_string(), "-y", &rows.to_string()])
            .arg(cmd)
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .status()
            .expect("tmux (apt-get install tmux; scripts/setup.sh installs it)");
        assert!(st.success());
        Tmux { session }
    }

    pub fn send(&self, keys: &[&str]) {
        let st = Command::new("tmux").args(["send-keys", "-t", &self.session]).args(keys).status().unwrap();
        assert!(st.success());
    }

    /// The screen and the last 200 lines above it, wrapped lines joined.
    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-J", "-S", "-200", "-t", &self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Wait until the screen shows `text` (at least `count` times), up to `secs`.
    pub fn wait_for(&self, text: &str, count: usize, secs: u64) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if s.matches(text).count() >= count {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "{text:?} ×{count} not on the screen after {secs} s:\n{s}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.session]).status();
    }
}

/// QEMU processes (either architecture) whose parent is `pid`, from /proc (what a test checks
/// is gone after a run).
pub fn qemu_children(pid: u32) -> Vec<u32> {
    let table = proc_table();
    table.iter().filter(|(_, p)| p.ppid == pid && p.comm.starts_with("qemu-system-")).map(|(pid, _)| *pid).collect()
}

/// The programs kmatrix starts and must not leave behind, by their comm (15 characters at most):
/// QEMU of either architecture (the guests and the accelerator probe), virtiofsd (the host
/// root's share), and its helpers: `flock` (the cache lock), `gpgv` (Release signatures),
/// `depmod` (the guest's module indexes).
pub const STARTED: &[&str] = &["qemu-system-x86", "qemu-system-aar", "virtiofsd", "flock", "gpgv", "depmod"];

/// One process as /proc/PID/stat shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub ppid: u32,
    pub comm: String,
    /// Field 22, in clock ticks since boot: with the pid, who the process is (pids are reused).
    pub start: u64,
    pub zombie: bool,
}

/// Every process now, by pid.
pub fn proc_table() -> std::collections::BTreeMap<u32, Proc> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `pid (comm) state ppid ...`: comm may hold spaces, so split after its parenthesis.
        let (Some(open), Some((head, rest))) = (stat.find('('), stat.rsplit_once(") ")) else { continue };
        let comm = head.get(open + 1..).unwrap_or("").to_string();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // After the comm: state (field 3), ppid (4), ... starttime (22).
        out.insert(pid, Proc { ppid: num(1) as u32, comm, start: num(19), zombie: f.first() == Some(&"Z") });
    }
    out
}

/// What a fault test watches: every process of [`STARTED`] that ever ran below `root` (at any
/// depth: kmatrix under `unshare` and a shell, QEMU under kmatrix), seen by calling
/// [`Watch::look`] while the run goes on. After the run, [`Watch::left`] is what outlived it.
#[derive(Debug, Default)]
pub struct Watch {
    root: u32,
    /// Only processes whose command line holds this (a test's own guests, where other tests of
    /// the same process start guests too).
    marker: Option<String>,
    /// pid → (comm, start time) of every started process seen.
    seen: std::collections::BTreeMap<u32, (String, u64)>,
}

impl Watch {
    pub fn new(root: u32) -> Watch {
        Watch { root, marker: None, seen: Default::default() }
    }

    /// A watch of the processes below `root` whose command line holds `marker`.
    pub fn marked(root: u32, marker: &str) -> Watch {
        Watch { root, marker: Some(marker.to_string()), seen: Default::default() }
    }

    /// Record the started processes below the root now.
    pub fn look(&mut self) {
        let table = proc_table();
        let mut below = vec![self.root];
        let mut i = 0;
        while i < below.len() {
            let parent = below[i];
            below.extend(table.iter().filter(|(_, p)| p.ppid == parent).map(|(pid, _)| *pid));
            i += 1;
        }
        for pid in &below[1..] {
            let p = &table[pid];
            let marked = self.marker.as_ref().is_none_or(|m| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(m.as_str()))
            });
            if STARTED.contains(&p.comm.as_str()) && !p.zombie && marked {
                self.seen.entry(*pid).or_insert((p.comm.clone(), p.start));
            }
        }
    }

    /// The QEMUs seen so far (either architecture).
    pub fn qemus(&self) -> Vec<u32> {
        self.seen.iter().filter(|(_, (c, _))| c.starts_with("qemu-system-")).map(|(p, _)| *p).collect()
    }

    /// Every started process seen so far, as `pid comm`.
    pub fn seen(&self) -> Vec<String> {
        self.seen.iter().map(|(p, (c, _))| format!("{p} {c}")).collect()
    }

    /// The processes seen that are still alive (the same pid and start time, not a zombie).
    pub fn left(&self) -> Vec<String> {
        let table = proc_table();
        self.seen
            .iter()
            .filter(|(pid, (_, start))| table.get(pid).is_some_and(|p| p.start == *start && !p.zombie))
            .map(|(p, (c, _))| format!("{p} {c}"))
            .collect()
    }

    /// Half a second after the run ended (kmatrix kills what it started as it exits), assert
    /// that nothing it started is left, and say how many were watched.
    pub fn assert_none_left(&self) {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let left = self.left();
        eprintln!(
            "processes kmatrix started: {} ({:?}); left after the run: {}",
            self.seen.len(),
            self.seen(),
            left.len()
        );
        assert!(left.is_empty(), "outlived kmatrix: {left:?}");
    }
}

/// The run directories (`run-<stamp>`) kmatrix wrote under `out`, oldest first.
pub fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("run-"))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Run `cmd` to its end as [`Command::output`] does, while a thread [`Watch`]es every process it
/// starts (looking every 50 ms); after it, assert that none outlived it. For every test that
/// runs kmatrix through a fault (a hang, a panic, a KVM failure, a split scheduler): 0 orphans
/// is part of each one's verdict, not a column nobody reads.
pub fn output_leaving_nothing(cmd: &mut Command) -> std::process::Output {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, mut watch) = (done.clone(), Watch::new(child.id()));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                watch.look();
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            watch
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, Ordering::Relaxed);
    let watch = watcher.join().unwrap();
    watch.assert_none_left();
    out
}

/// Who runs the tests and what `/dev/kvm` does for them, for the output of tests whose host
/// differs between machines (root or an ordinary user; no `/dev/kvm`, one that does not open,
/// one that opens), so a log says which host kind was proven.
pub fn host_kind() -> String {
    // SAFETY: geteuid(2) has no failure mode and touches no memory.
    let uid = unsafe { libc::geteuid() };
    let who = if uid == 0 { "root".to_string() } else { format!("an ordinary user (uid {uid})") };
    let kvm = match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => "/dev/kvm opens".to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no /dev/kvm".to_string(),
        Err(e) => format!("/dev/kvm does not open ({e})"),
    };
    format!("host kind: {who}, {kvm}")
}

/// What `/dev/kvm` is in a [`in_namespace`] command's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKvm {
    /// No `/dev/kvm` at all (a container, a cloud VM without nested virtualisation).
    Absent,
    /// A node that opens (`/dev/null` bound there): behind it the fake QEMU
    /// (`fixtures/qemu/fake-qemu`) plays the host's KVM, so a KVM that opens and then fails is
    /// simulated whole on any host, whatever its own `/dev/kvm` does.
    Opens,
}

/// `program` run in a new user and mount namespace (`unshare --user --map-root-user --mount`:
/// no root needed, the caller's files stay the caller's) whose `/dev` is a fresh tmpfs holding the
/// usual nodes, and `kvm` as asked. The returned directory keeps the real `/dev` reachable inside;
/// hold it until the command ended. The program is `exec`ed: the child's pid is its own.
pub fn in_namespace(kvm: NsKvm, program: &Path) -> (Command, tempfile::TempDir) {
    let old = tempfile::tempdir().unwrap();
    let kvm_line = match kvm {
        NsKvm::Absent => "test ! -e /dev/kvm",
        NsKvm::Opens => "touch /dev/kvm; mount --bind \"$OLD/null\" /dev/kvm",
    };
    let script = format!(
        r#"set -e
mount --rbind /dev "$OLD"
mount -t tmpfs -o mode=0755,nosuid tmpfs /dev
for n in null zero full random urandom tty; do touch /dev/$n; mount --bind "$OLD/$n" /dev/$n; done
mkdir /dev/pts /dev/shm
mount --rbind "$OLD/pts" /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
ln -s pts/ptmx /dev/ptmx
ln -s /proc/self/fd /dev/fd
{kvm_line}
exec "$0" "$@""#
    );
    let mut c = Command::new("unshare");
    c.args(["--user", "--map-root-user", "--mount", "--propagation", "private", "/bin/sh", "-c", &script])
        .arg(program)
        .env("OLD", old.path())
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    (c, old)
}

/// The marker of a test binary run again inside a namespace by [`inside_namespace`].
const IN_NAMESPACE: &str = "KMATRIX_TEST_IN_NAMESPACE";

/// For a test whose body must run in a namespace of [`in_namespace`] (its `/dev/kvm` as `kvm`):
/// in the test process, run this test binary's test `name` of `module` (the caller's
/// `module_path!()`) again inside one, check that it passed, and return false; in the binary run
/// inside, return true (run the body).
pub fn inside_namespace(kvm: NsKvm, module: &str, name: &str) -> bool {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return true;
    }
    // libtest names a test by its path below the crate: `vm_accel::vm_accel_…`.
    let name = &match module.split_once("::") {
        Some((_, below)) => format!("{below}::{name}"),
        None => name.to_string(),
    };
    eprintln!("{}; {name} runs in a user and mount namespace whose /dev/kvm is {kvm:?}", host_kind());
    let (mut c, _old) = in_namespace(kvm, &std::env::current_exe().unwrap());
    let out = c.args(["--exact", name, "--nocapture", "--test-threads", "1"]).env(IN_NAMESPACE, "1").output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "{name} failed in the namespace");
    assert!(stdout.contains("test result: ok. 1 passed"), "{name} did not run in the namespace");
    false
}
