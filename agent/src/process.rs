//! Running programs in the guest: gated workloads for scenarios, and `Exec` requests.
//!
//! A gated workload gets the read end of a pipe as fd 3, and `KMATRIX_GATE=3` in its environment
//! to say so, and blocks reading it before doing any work (see `images/workloads/`), so the agent
//! can attach probes and set pid filters with the child's pid first and then release it; counts
//! then include exactly the workload's calls. Without the variable a workload never reads fd 3:
//! a tool that runs it (perf, uftrace, bpftrace) may leave its own descriptor there.
//!
//! A host tool of a `tool.*` scenario that must run beside the agent (`trace-cmd record -P`,
//! stopped with SIGINT) starts with [`spawn_in_root`]: chrooted into the shared host root, in
//! its own session, so a timeout or an abandoned run ends its whole process group.
//! Output is collected by reader threads from the start, so a chatty child never blocks on a full
//! pipe, and every wait has a deadline after which the child is killed.

use anyhow::{Context, Result};
use kmatrix_proto::ExecOutcome;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most output kept per stream; the rest is drained and counted.
const MAX_OUTPUT: usize = 1024 * 1024;
/// The fd a gated workload reads its start byte from.
const GATE_FD: libc::c_int = 3;
/// The variable that tells a workload its gate is open (`images/workloads/workload.h`).
const GATE_ENV: &str = "KMATRIX_GATE";

/// How a child ended: its outcome in the shape an `Exec` reports it (one owner of exit code,
/// signal, output and timeout, with [`ExecOutcome::success`] and [`ExecOutcome::describe`],
/// reached through `Deref`), and the exact wall time, which scenarios compare with nanosecond
/// counters (`perf.software`) where the outcome's `wall_ms` is whole milliseconds.
#[derive(Debug)]
pub struct Finished {
    pub outcome: ExecOutcome,
    pub wall: Duration,
}

impl std::ops::Deref for Finished {
    type Target = ExecOutcome;

    fn deref(&self) -> &ExecOutcome {
        &self.outcome
    }
}

/// A running child with its output readers.
pub struct Running {
    child: Child,
    name: String,
    started: Instant,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
    gate: Option<File>,
    /// The child leads its own process group (a host tool), ended as a whole.
    group: bool,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait until a gated workload is blocked reading its gate (`/proc/<pid>/syscall` reads
    /// `<read's nr> 0x3 ...`: read(2) on fd 3), so that its switch-out for the gate happens before
    /// anything the caller attaches next starts counting.
    pub fn wait_at_gate(&self, timeout: Duration) -> Result<()> {
        let path = format!("/proc/{}/syscall", self.pid());
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&path).with_context(|| format!("read({path}) failed"))?;
            // read(2) is syscall 0 on x86_64, 63 in the generic table arm64 uses.
            if text.starts_with(&format!("{} 0x3 ", libc::SYS_read)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{} (pid {}) not blocked at its start gate after {timeout:?}: {path} reads {:?}",
                    self.name,
                    self.pid(),
                    text.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Wait until the child has exited and is off its CPU for good, without reaping it: its
    /// /proc entry (counters such as `voluntary_ctxt_switches`) then holds final values.
    /// `/proc/<pid>/syscall` reads `running` until the dead task has made its last switch
    /// (the kernel waits for it to be inactive before answering).
    pub fn wait_exited(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let pid = self.pid();
        loop {
            // SAFETY: siginfo_t is plain data; waitid fills it and WNOWAIT leaves the child
            // waitable, so `finish` still reaps it.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: `info` is a valid siginfo_t for the duration of the call.
            let rc = unsafe {
                libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT | libc::WNOHANG)
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error()).with_context(|| format!("waitid({pid}) failed"));
            }
            // SAFETY: after a successful waitid, si_pid is the field it sets (0 if none exited).
            if unsafe { info.si_pid() } == pid {
                let path = format!("/proc/{pid}/syscall");
                let off_cpu = std::fs::read_to_string(&path).map(|t| t.trim() != "running").unwrap_or(true);
                if off_cpu {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                anyhow::bail!("{} (pid {pid}) did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// voluntary + nonvoluntary context switches of the child, from `/proc/<pid>/status`.
    pub fn context_switches(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let text = std::fs::read_to_string(&path).with_context(|| format!("read({path}) failed"))?;
        let field = |name: &str| -> Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("{path} has no numeric {name}"))
        };
        Ok(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
    }

    /// Let a gated workload start (writes its start byte and closes the gate).
    pub fn release(&mut self) -> Result<()> {
        let Some(mut gate) = self.gate.take() else {
            return Ok(());
        };
        gate.write_all(b"g").with_context(|| format!("write(start gate of {}) failed", self.name))
    }

    /// Wait for the child to end, killing it at `timeout`; collects its output.
    pub fn finish(mut self, timeout: Duration) -> Result<Finished> {
        // Closing an unreleased gate makes a gated workload exit without doing its work.
        self.gate.take();
        let deadline = self.started + timeout;
        let mut timed_out = false;
        let status: ExitStatus = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(e).with_context(|| format!("waitpid({}) failed", self.name)),
            }
            if Instant::now() >= deadline {
                timed_out = true;
                self.kill();
                break self.child.wait().with_context(|| format!("waitpid({}) after kill failed", self.name))?;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if self.group {
            // What the tool left in its group (per-CPU recorders) must not outlive it.
            kill_group(self.pid(), libc::SIGKILL);
        }
        let wall = self.started.elapsed();
        let join = |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        let outcome = ExecOutcome {
            exit_code: status.code(),
            signal: status.signal(),
            stdout: join(self.out.take()),
            stderr: join(self.err.take()),
            wall_ms: wall.as_millis() as u64,
            timed_out,
            share: None,
            clock_offset_ms: None,
            setup_ms: None,
        };
        Ok(Finished { outcome, wall })
    }
}

impl Running {
    /// Send `signal` to the child (to its whole group when it leads one), as a user's Ctrl-C
    /// (SIGINT) stops `trace-cmd record`.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let pid = self.pid();
        let target = if self.group { -pid } else { pid };
        // SAFETY: kill(2) on our own child (or its group); a child already gone gives ESRCH.
        if unsafe { libc::kill(target, signal) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("kill({target}, {signal}) failed"));
        }
        Ok(())
    }

    /// Whether the child has ended (it is reaped; [`Running::finish`] still reports how).
    pub fn has_exited(&mut self) -> Result<bool> {
        Ok(self.child.try_wait().with_context(|| format!("waitpid({}) failed", self.name))?.is_some())
    }

    fn kill(&mut self) {
        if self.group {
            kill_group(self.pid(), libc::SIGKILL);
        }
        let _ = self.child.kill();
    }
}

impl Drop for Running {
    /// A child abandoned on an error path is killed and reaped, never left for PID 1 to trip on.
    fn drop(&mut self) {
        self.gate.take();
        if let Ok(None) = self.child.try_wait() {
            self.kill();
            let _ = self.child.wait();
        }
    }
}

/// In a forked child before exec: the start gate's read end `rfd` becomes fd 3 and survives the
/// exec. Only async-signal-safe calls (fcntl, dup2).
fn gate_onto_fd3(rfd: libc::c_int) -> std::io::Result<()> {
    // SAFETY: fcntl/dup2 on descriptors the child owns; no memory is touched.
    let rc = unsafe {
        if rfd == GATE_FD {
            // dup2 onto itself keeps FD_CLOEXEC; clear it so the gate survives exec.
            libc::fcntl(rfd, libc::F_SETFD, 0)
        } else {
            libc::dup2(rfd, GATE_FD)
        }
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Signal a process group this agent created (its programs are session leaders); a group
/// already gone gives ESRCH, which is fine.
pub fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) on a process group this module created; a group already gone gives ESRCH.
        unsafe { libc::kill(-pgid, signal) };
    }
}

/// Start a host program for a `tool.*` scenario: `argv` (host paths) chrooted into `root` (the
/// mounted host root), in `cwd` (a path inside it), with exactly `env`, stdin from /dev/null and
/// its output captured, as the leader of its own session and process group.
pub fn spawn_in_root(argv: &[String], root: &str, cwd: &str, env: &[(&str, &str)]) -> Result<Running> {
    let Some((prog, args)) = argv.split_first() else {
        anyhow::bail!("spawn: empty argv");
    };
    let outer_cwd = format!("{root}{cwd}");
    let root_c = crate::sys::cstring(root)?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(&outer_cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (setsid, chroot) between fork and exec, on a string
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::chroot(root_c.as_ptr()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("spawn({}) in {root} failed", argv.join(" ")))?;
    let out = child.stdout.take().and_then(|s| reader(s, "stdout"));
    let err = child.stderr.take().and_then(|s| reader(s, "stderr"));
    Ok(Running { child, name: prog.clone(), started: Instant::now(), out, err, gate: None, group: true })
}

/// A user's host command as a gated workload (`run --bpf-object --workload 'CMD'`): run in the
/// host root like [`spawn_in_root`], held at the start gate by a shell that `exec`s the command
/// once released, so probes attach to its pid (the shell's, which becomes the command's) first.
pub fn spawn_gated_in_root(argv: &[String], root: &str, cwd: &str, env: &[(&str, &str)]) -> Result<Running> {
    anyhow::ensure!(!argv.is_empty(), "spawn: empty argv");
    let mut wrapped: Vec<String> =
        vec!["/bin/sh".into(), "-c".into(), "read -r _ <&3; exec \"$@\"".into(), "kmatrix-gate".into()];
    wrapped.extend(argv.iter().cloned());
    let (r, w) = pipe().context("pipe() for the start gate")?;
    let rfd = r.as_raw_fd();
    let root_c = crate::sys::cstring(root)?;
    let mut cmd = Command::new(&wrapped[0]);
    cmd.args(&wrapped[1..])
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(format!("{root}{cwd}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (dup2, fcntl, setsid, chroot) between fork and exec,
    // on values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            gate_onto_fd3(rfd)?;
            if libc::setsid() < 0 || libc::chroot(root_c.as_ptr()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("spawn({}) in {root} failed", argv.join(" ")))?;
    drop(r);
    let out = child.stdout.take().and_then(|s| reader(s, "stdout"));
    let err = child.stderr.take().and_then(|s| reader(s, "stderr"));
    Ok(Running {
        child,
        name: argv[0].clone(),
        started: Instant::now(),
        out,
        err,
        gate: Some(File::from(w)),
        group: true,
    })
}

/// Start `argv` with stdin from /dev/null, stdout and stderr captured, in `/tmp` (so stray
/// files such as gmon.out from `-pg` builds land there). With `gated`, fd 3 is the start gate.
pub fn spawn(argv: &[String], gated: bool) -> Result<Running> {
    let Some((prog, args)) = argv.split_first() else {
        anyhow::bail!("spawn: empty argv");
    };
    let mut cmd = Command::new(prog);
    cmd.args(args).current_dir("/tmp").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut gate_write = None;
    let mut gate_read: Option<OwnedFd> = None;
    if gated {
        let (r, w) = pipe().with_context(|| format!("pipe() for the start gate of {prog}"))?;
        let rfd = r.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only calls dup2/fcntl,
        // which are async-signal-safe; `rfd` stays open in the child until exec.
        unsafe {
            cmd.pre_exec(move || gate_onto_fd3(rfd));
        }
        gate_write = Some(File::from(w));
        gate_read = Some(r);
        cmd.env(GATE_ENV, GATE_FD.to_string());
    }
    let mut child = cmd.spawn().with_context(|| format!("spawn({}) failed", argv.join(" ")))?;
    // The parent's copy of the read end must go, or the child never sees EOF on a dropped gate.
    drop(gate_read);
    let out = child.stdout.take().and_then(|s| reader(s, "stdout"));
    let err = child.stderr.take().and_then(|s| reader(s, "stderr"));
    Ok(Running { child, name: prog.clone(), started: Instant::now(), out, err, gate: gate_write, group: false })
}

/// A thread that keeps the first [`MAX_OUTPUT`] bytes of `src`; None if no thread could start.
fn reader<R: Read + Send + 'static>(mut src: R, what: &'static str) -> Option<JoinHandle<String>> {
    std::thread::Builder::new()
        .name(format!("child-{what}"))
        .spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            let mut dropped = 0usize;
            while let Ok(n) = src.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                dropped += n.saturating_sub(room);
            }
            let mut text = String::from_utf8_lossy(&kept).into_owned();
            if dropped > 0 {
                text.push_str(&format!("\n[... {dropped} bytes of {what} dropped]"));
            }
            text
        })
        .ok()
}

/// A close-on-exec pipe as (read, write).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
