//! Running the comparison: one command at a time (never two on a 2-core machine), each timed
//! from spawn to exit, its whole process group killed at the timeout, its output checked with
//! [`check_output`]. The order interleaves the tools run by run so a change of host load hits
//! them all alike. Not a process supervisor for anything else.

use super::install::{self, BenchDir, PeerError};
use super::prepare;
use super::{check_output, tail_lines, Attempt, Cell, HostInfo, Mode, Peer, Report, Tool, TASK};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What to compare.
#[derive(Debug, Clone)]
pub struct Options {
    /// The peers to compare with kmatrix.
    pub peers: Vec<Peer>,
    /// Kernel ids, taken from kmatrix's cache (fetched first when missing).
    pub kernels: Vec<String>,
    /// Timed runs per (tool, kernel, mode).
    pub runs: u32,
    /// Per run: a run still going after this is killed and counted as failed.
    pub timeout: Duration,
    /// The kmatrix binary to run `exec` with (this one).
    pub kmatrix: PathBuf,
    /// How missing kernels are fetched.
    pub fetch: crate::kernel::FetchOptions,
    /// Skip the out-of-the-box attempts.
    pub skip_out_of_the_box: bool,
}

/// One command of the comparison: what it is, and how to start it.
#[derive(Debug, Clone)]
pub struct Job {
    /// Who runs the task.
    pub tool: Tool,
    /// How.
    pub mode: Mode,
    /// The program spawned.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set over the inherited environment (HOME, TMPDIR, PATH for peers).
    pub env: Vec<(String, String)>,
    /// The folder it runs in.
    pub cwd: PathBuf,
}

impl Job {
    /// The program and its arguments, as a person would type them (environment left out).
    pub fn command_line(&self) -> Vec<String> {
        std::iter::once(self.program.display().to_string()).chain(self.args.iter().cloned()).collect()
    }
}

/// Run `job` once and judge it against `release`.
pub async fn run_once(job: &Job, release: &str, timeout: Duration) -> Attempt {
    let mut cmd = tokio::process::Command::new(&job.program);
    cmd.args(&job.args)
        .current_dir(&job.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (k, v) in &job.env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Attempt {
                seconds: 0.0,
                exit_code: None,
                failure: Some(format!("cannot run {}: {e}", job.program.display())),
                tail: Vec::new(),
            }
        }
    };
    // Output is read as it comes, so a run killed at the timeout still leaves its evidence.
    let out = collect(child.stdout.take());
    let err = collect(child.stderr.take());
    let pgid = child.id();
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    let seconds = started.elapsed().as_secs_f64();
    // The tool's QEMU and helpers are in its process group: none of them outlives the run.
    if let Some(pid) = pgid {
        // SAFETY: kill(2) with a negative pid signals the process group we created for this
        // child (process_group(0)); it touches no memory of ours.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
    if waited.is_err() {
        let _ = child.wait().await;
    }
    // The group is gone, so the pipes reach EOF; a grandchild that left the group could keep
    // one open: do not wait for it long.
    let text = async { format!("{}\n{}", out.await.unwrap_or_default(), err.await.unwrap_or_default()) };
    let text = tokio::time::timeout(Duration::from_secs(5), text).await.unwrap_or_default();
    let mut tail = tail_lines(&text, 4);
    let (exit_code, failure) = match waited {
        Err(_) => (None, Some(format!("still running after {} s: killed", timeout.as_secs()))),
        Ok(Err(e)) => (None, Some(format!("cannot wait for it: {e}"))),
        Ok(Ok(status)) => (
            status.code(),
            match (status.code(), check_output(&text, release)) {
                (Some(0), Ok(())) => None,
                (Some(0), Err(why)) => Some(why.to_string()),
                (Some(c), Ok(())) => Some(format!("right output, but exit {c}")),
                (Some(_), Err(why)) => Some(why.to_string()),
                (None, _) => Some(format!("ended by {status}")),
            },
        ),
    };
    // The first error line often says more than the last lines (a panic, then QEMU's
    // teardown): keep it in front.
    if failure.is_some() {
        if let Some(e) = first_error(&text).filter(|e| !tail.contains(e)) {
            tail.insert(0, e);
        }
    }
    Attempt { seconds, exit_code, failure, tail }
}

/// Everything `pipe` yields until EOF, as text.
fn collect<R: tokio::io::AsyncRead + Unpin + Send + 'static>(pipe: Option<R>) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            use tokio::io::AsyncReadExt;
            let _ = p.read_to_end(&mut buf).await;
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The first line that reads like an error: a kernel panic, a QEMU or tool error.
fn first_error(text: &str) -> Option<String> {
    const MARKS: &[&str] = &["Kernel panic", "error", "Error", "failed", "Failed", "not found", "Cannot", "cannot"];
    text.lines().map(str::trim).find(|l| MARKS.iter().any(|m| l.contains(m))).map(str::to_string)
}

fn host_info() -> HostInfo {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    HostInfo {
        cpu,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        load_start: load(),
        load_end: String::new(),
        date,
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The jobs of one kernel: kmatrix cold and from a snapshot, each peer's README command and its
/// minimum. Makes what the peers need in the bench directory.
fn jobs_for(
    dir: &BenchDir,
    k: &crate::kernel::PreparedKernel,
    peers: &[Peer],
    kmatrix: &std::path::Path,
    cache_root: &std::path::Path,
) -> Result<Vec<(Job, Vec<String>)>, PeerError> {
    let peer_env = vec![
        ("HOME".to_string(), dir.home().display().to_string()),
        ("TMPDIR".to_string(), dir.tmp().display().to_string()),
        ("PATH".to_string(), dir.path_env()),
        // vmtest is a Rust binary: its error, not a backtrace, is the evidence.
        ("RUST_BACKTRACE".to_string(), "0".to_string()),
    ];
    let mut jobs = Vec::new();
    for mode in [Mode::Cold, Mode::Snapshot] {
        let snap = if mode == Mode::Cold { "off" } else { "on" };
        let args = [
            "exec",
            "--accel",
            "tcg",
            "--snapshot",
            snap,
            "--kernel",
            &k.id,
            "--out",
            &dir.root.join("kmatrix-out").display().to_string(),
            "--",
            "sh",
            "-c",
            TASK,
        ];
        jobs.push((
            Job {
                tool: Tool::Kmatrix,
                mode,
                program: kmatrix.to_path_buf(),
                args: args.iter().map(|s| s.to_string()).collect(),
                env: vec![("KMATRIX_CACHE".into(), cache_root.display().to_string())],
                cwd: dir.root.clone(),
            },
            Vec::new(),
        ));
    }
    for &peer in peers {
        let (readme, minimum, needs) = match peer {
            Peer::Vmtest => {
                let wrapper = prepare::tcg_wrapper(dir)?;
                let initrd = prepare::vmtest_initramfs(dir, k)?;
                let cfg = prepare::vmtest_config(dir, k, &wrapper, &initrd)?;
                let readme = vec!["-k".to_string(), k.boot.bzimage.display().to_string(), TASK.to_string()];
                let minimum = vec!["-c".to_string(), cfg.display().to_string()];
                (readme, minimum, prepare::VMTEST_NEEDS)
            }
            Peer::VirtmeNg => {
                let image = prepare::module_tree(dir, k)?;
                let readme = vec!["-r".to_string(), k.boot.bzimage.display().to_string(), "-e".into(), TASK.into()];
                let minimum = vec![
                    "--disable-kvm".to_string(),
                    "--append".into(),
                    prepare::TIMER_WORD.into(),
                    "-r".into(),
                    image.display().to_string(),
                    "-e".into(),
                    TASK.into(),
                ];
                (readme, minimum, prepare::VIRTME_NG_NEEDS)
            }
        };
        let program = match peer {
            Peer::Vmtest => dir.vmtest(),
            Peer::VirtmeNg => dir.vng(),
        };
        let job = |mode, args| Job {
            tool: peer.into(),
            mode,
            program: program.clone(),
            args,
            env: peer_env.clone(),
            cwd: dir.root.clone(),
        };
        jobs.push((job(Mode::OutOfTheBox, readme), Vec::new()));
        jobs.push((job(Mode::Minimum, minimum), needs.iter().map(|s| s.to_string()).collect()));
    }
    Ok(jobs)
}

/// Install, prepare, run everything, one command at a time.
pub async fn bench(opts: &Options, cache: &crate::cache::Cache, progress: &dyn Fn(&str)) -> Result<Report, PeerError> {
    let dir = BenchDir::open(cache)?;
    // Kernels first: a wrong kernel id fails before anything is installed.
    let mut kernels = Vec::new();
    for id in &opts.kernels {
        let (kid, cache, fetch) = (id.clone(), cache.clone(), opts.fetch.clone());
        kernels.push(tokio::task::spawn_blocking(move || prepare::kernel(&kid, &cache, &fetch)).await.map_err(
            |e| PeerError::Io {
                what: "kernel preparation died for",
                path: PathBuf::from(id),
                source: std::io::Error::other(e.to_string()),
            },
        )??);
    }
    let mut versions = vec![("kmatrix".to_string(), env!("CARGO_PKG_VERSION").to_string())];
    for &peer in &opts.peers {
        let v = install::ensure(peer, &dir, progress)?;
        install::check_host(peer, &dir)?;
        versions.push((peer.name().to_string(), v));
    }
    let mut host = host_info();
    let mut cells: Vec<Cell> = Vec::new();
    for k in kernels {
        let jobs = {
            let (d, k, peers, exe, root) =
                (dir.clone(), k.clone(), opts.peers.clone(), opts.kmatrix.clone(), cache.root().to_path_buf());
            tokio::task::spawn_blocking(move || jobs_for(&d, &k, &peers, &exe, &root)).await.map_err(|e| {
                PeerError::Io {
                    what: "preparing the peers died for",
                    path: dir.root.clone(),
                    source: std::io::Error::other(e.to_string()),
                }
            })??
        };
        let first = cells.len();
        for (job, needs) in &jobs {
            cells.push(Cell {
                tool: job.tool,
                kernel: k.id.clone(),
                release: k.release.clone(),
                mode: job.mode,
                needs: needs.clone(),
                command: job.command_line(),
                attempts: Vec::new(),
            });
        }
        // Untimed: builds kmatrix's image and takes its snapshot, as any first use does.
        if let Some((warm, _)) = jobs.iter().find(|(j, _)| j.tool == Tool::Kmatrix && j.mode == Mode::Snapshot) {
            progress(&format!("{}: kmatrix warm-up (image, snapshot; not timed)", k.id));
            let a = run_once(warm, &k.release, opts.timeout).await;
            if !a.ok() {
                progress(&format!("{}: kmatrix warm-up failed: {}", k.id, super::describe_failure(&a)));
            }
        }
        if !opts.skip_out_of_the_box {
            for (i, (job, _)) in jobs.iter().enumerate().filter(|(_, (j, _))| j.mode == Mode::OutOfTheBox) {
                let a = run_once(job, &k.release, opts.timeout).await;
                progress(&format!("{} {} out of the box: {}", k.id, job.tool.name(), verdict(&a)));
                cells[first + i].attempts.push(a);
            }
        }
        for run in 0..opts.runs {
            for (i, (job, _)) in jobs.iter().enumerate().filter(|(_, (j, _))| j.mode != Mode::OutOfTheBox) {
                let a = run_once(job, &k.release, opts.timeout).await;
                progress(&format!(
                    "{} {} {} run {}/{}: {}",
                    k.id,
                    job.tool.name(),
                    job.mode.name(),
                    run + 1,
                    opts.runs,
                    verdict(&a)
                ));
                cells[first + i].attempts.push(a);
            }
        }
    }
    if opts.skip_out_of_the_box {
        cells.retain(|c| c.mode != Mode::OutOfTheBox);
    }
    host.load_end = load();
    Ok(Report { runs: opts.runs, accel: "tcg".into(), host, bench_dir: dir.root.clone(), versions, cells })
}

fn verdict(a: &Attempt) -> String {
    if a.ok() {
        format!("ok, {:.2} s", a.seconds)
    } else {
        format!("FAILED ({})", super::describe_failure(a))
    }
}
