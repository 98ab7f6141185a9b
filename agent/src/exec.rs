//! Running a user's program for `HostMsg::Exec`: in the guest's own root or in the host's root
//! (`share.rs`), with the caller's environment and cwd, stdin from nothing, a pipe or a terminal,
//! output streamed to the host as it comes, and the whole process group ended at the timeout.
//!
//! The program is its own session leader (`setsid`), so everything it starts is in its process
//! group: when it exits, what it left holding the output pipes gets a short grace and is then
//! killed with the group, instead of keeping the agent (and the host) waiting. Not here: the
//! scenarios' own workloads (`process.rs`), which need start gates and exact counts.

use crate::channel::{Channel, Line};
use crate::process::kill_group;
use crate::{share, sys};
use anyhow::{Context, Result};
use kmatrix_proto::{ExecOutcome, ExecRequest, GuestMsg, HostMsg, StdinMode};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Default timeout when the host sends 0.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Output kept for `ExecDone` per stream (streamed output is not bounded by this).
const MAX_KEPT: usize = 1 << 20;
/// How long what a program left behind may hold its output open after it exited.
const GRACE: Duration = Duration::from_millis(500);

/// Run `req`, streaming to `ch` when asked. Requests that arrive meanwhile (`Input`, `Winsize`,
/// `Signal`) are applied; anything else gets an `Error`, since one program runs at a time.
/// Without a channel (a scenario running a host tool), nothing is streamed and no request can
/// arrive: the program runs to its end or its timeout.
pub fn run(mut ch: Option<&mut Channel>, req: &ExecRequest) -> Result<ExecOutcome> {
    let arrived = Instant::now();
    let timeout = match req.timeout_ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(ms),
    };
    let Some((prog, args)) = req.argv.split_first() else {
        anyhow::bail!("exec: empty argv");
    };
    let shared = match &req.root {
        Some(s) => Some(share::ensure(s)?),
        None => None,
    };
    let root = req.root.as_ref().map(|_| share::HOST_ROOT);
    let cwd = req.cwd.clone().unwrap_or_else(|| "/tmp".into());
    // The cwd as the agent sees it (before chroot): inside the host root when there is one.
    let outer_cwd = match root {
        Some(r) => format!("{r}{cwd}"),
        None => cwd.clone(),
    };
    if root.is_some() {
        // Host paths under /tmp and /run the request names, shown at their host paths.
        crate::host_paths::prepare(&cwd, &req.argv)?;
    } else if !std::path::Path::new(&outer_cwd).is_dir() {
        anyhow::bail!("cwd {cwd} does not exist in the guest");
    }
    let mut cmd = Command::new(prog);
    cmd.args(args).env_clear().envs(req.env.iter().map(|(k, v)| (k, v))).current_dir(&outer_cwd);
    let tty = req.stdin == StdinMode::Tty;
    let mut master: Option<File> = None;
    if tty {
        let (m, s) = openpty(req.winsize)?;
        cmd.stdin(Stdio::from(s.try_clone().context("dup(pty) failed")?));
        cmd.stdout(Stdio::from(s.try_clone().context("dup(pty) failed")?));
        cmd.stderr(Stdio::from(s));
        master = Some(File::from(m));
    } else {
        cmd.stdin(if req.stdin == StdinMode::Pipe { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let root_c = root.map(sys::cstring).transpose()?;
    // SAFETY: only async-signal-safe calls (setsid, ioctl, chroot) between fork and exec, on
    // values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if tty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(r) = &root_c {
                if libc::chroot(r.as_ptr()) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let setup_ms = started.duration_since(arrived).as_millis() as u64;
    let mut child = cmd.spawn().with_context(|| {
        format!("spawn({}) failed{}", req.argv.join(" "), root.map(|_| " in the host root").unwrap_or(""))
    })?;
    drop(cmd);
    let pgid = child.id() as i32;
    let mut stdin = child.stdin.take().map(|s| File::from(OwnedFd::from(s)));
    // Output sources: (fd number for the host, file).
    let mut sources: Vec<(u8, File)> = Vec::new();
    if let Some(m) = &master {
        sources.push((1, m.try_clone().context("dup(pty master) failed")?));
        stdin = Some(m.try_clone().context("dup(pty master) failed")?);
    }
    if let Some(o) = child.stdout.take() {
        sources.push((1, File::from(OwnedFd::from(o))));
    }
    if let Some(e) = child.stderr.take() {
        sources.push((2, File::from(OwnedFd::from(e))));
    }
    for (_, f) in &sources {
        set_nonblocking(f.as_raw_fd());
    }
    let mut kept: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut status = None;
    let mut exited_at: Option<Instant> = None;
    let mut timed_out = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Output first: read whatever is there from every source.
        let mut pfds: Vec<libc::pollfd> =
            sources.iter().map(|(_, f)| libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
        if !pfds.is_empty() {
            // SAFETY: a valid array of pollfds and its length.
            unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 20) };
        }
        let mut closed = Vec::new();
        for (i, (fd, f)) in sources.iter_mut().enumerate() {
            if pfds[i].revents == 0 {
                continue;
            }
            match f.read(&mut buf) {
                Ok(0) => closed.push(i),
                Ok(n) => {
                    let k = &mut kept[usize::from(*fd - 1)];
                    let room = MAX_KEPT.saturating_sub(k.len());
                    k.extend_from_slice(&buf[..n.min(room)]);
                    if let (true, Some(ch)) = (req.stream || tty, ch.as_deref_mut()) {
                        ch.send(&GuestMsg::ExecOutput { fd: *fd, data: buf[..n].to_vec() })?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {
                }
                // EIO on a pty master: the terminal's last holder closed it.
                Err(_) => closed.push(i),
            }
        }
        for i in closed.into_iter().rev() {
            sources.remove(i);
        }
        // Requests from the host while the program runs.
        let wait_ms = if sources.is_empty() { 20 } else { 0 };
        let line = match ch.as_deref_mut() {
            Some(ch) => ch.poll_recv(wait_ms)?,
            None => {
                if sources.is_empty() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                None
            }
        };
        if let Some(line) = line {
            match line {
                Line::Eof => {
                    kill_group(pgid, libc::SIGKILL);
                }
                Line::TooLong(_) => {}
                Line::Text(t) => match serde_json::from_slice::<HostMsg>(&t) {
                    Ok(HostMsg::Input { data }) => match stdin.as_mut() {
                        Some(w) if !data.is_empty() => {
                            let _ = w.write_all(&data);
                        }
                        Some(_) if !tty => stdin = None,
                        _ => {}
                    },
                    Ok(HostMsg::Winsize { rows, cols }) => {
                        if let Some(m) = &master {
                            set_winsize(m.as_raw_fd(), rows, cols);
                        }
                    }
                    Ok(HostMsg::Signal { signal }) => kill_group(pgid, signal),
                    Ok(other) => reply(&mut ch, format!("a program is running; request ignored: {}", kind(&other)))?,
                    Err(e) => reply(&mut ch, format!("malformed request ({e})"))?,
                },
            }
        }
        if status.is_none() {
            if let Some(st) = child.try_wait().context("waitpid failed")? {
                status = Some(st);
                exited_at = Some(Instant::now());
            } else if started.elapsed() >= timeout {
                timed_out = true;
                kill_group(pgid, libc::SIGKILL);
                status = Some(child.wait().context("waitpid after kill failed")?);
                exited_at = Some(Instant::now());
            }
        }
        if let Some(t) = exited_at {
            // The program is gone; its group may still hold the pipes. A terminal's master never
            // reads EOF while we hold a slave-side copy, so with a terminal the end is the exit.
            if sources.is_empty() || tty && t.elapsed() >= Duration::from_millis(50) {
                break;
            }
            if t.elapsed() >= GRACE {
                kill_group(pgid, libc::SIGKILL);
                break;
            }
        }
    }
    kill_group(pgid, libc::SIGKILL);
    let status = status.context("no exit status")?;
    let mut stderr = String::from_utf8_lossy(&kept[1]).into_owned();
    if timed_out {
        stderr.push_str(&format!("\nkmatrix-agent: killed after {} ms timeout", timeout.as_millis()));
    }
    Ok(ExecOutcome {
        exit_code: status.code(),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&kept[0]).into_owned(),
        stderr,
        wall_ms: started.elapsed().as_millis() as u64,
        timed_out,
        share: shared,
        clock_offset_ms: None,
        setup_ms: Some(setup_ms),
    })
}

fn reply(ch: &mut Option<&mut Channel>, message: String) -> Result<()> {
    match ch.as_deref_mut() {
        Some(ch) => ch.send(&GuestMsg::Error { message }),
        None => Ok(()),
    }
}

fn kind(m: &HostMsg) -> &'static str {
    match m {
        HostMsg::Run(_) => "run",
        HostMsg::Exec(_) => "exec",
        HostMsg::Shutdown => "shutdown",
        HostMsg::Warm => "warm",
        HostMsg::Input { .. } => "input",
        HostMsg::Winsize { .. } => "winsize",
        HostMsg::Signal { .. } => "signal",
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

fn set_winsize(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

/// A pseudo-terminal pair (master, slave) of the given size.
fn openpty(size: Option<(u16, u16)>) -> Result<(OwnedFd, OwnedFd)> {
    let (mut m, mut s) = (-1, -1);
    let ws = size.map(|(rows, cols)| libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 });
    let wsp = ws.as_ref().map_or(std::ptr::null(), |w| w as *const libc::winsize);
    // SAFETY: openpty writes two descriptors; name and termios are null, winsize valid or null.
    let rc = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), wsp) };
    if rc != 0 {
        anyhow::bail!("openpty failed: {} (is devpts mounted at /dev/pts?)", sys::errno_text(sys::errno()));
    }
    // SAFETY: both descriptors were just returned by openpty and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) })
}
