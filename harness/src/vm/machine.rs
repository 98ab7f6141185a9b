//! One running guest: spawns QEMU, watches its console, accepts the guest channel, and makes
//! sure QEMU dies with its run.
//!
//! QEMU is started with `PR_SET_PDEATHSIG(SIGKILL)` and `kill_on_drop`, so it never outlives the
//! harness: not on Ctrl-C, not on a panic, not on a timeout. Every wait here has a deadline; on
//! a deadline or a guest panic the error carries the console tail as evidence.
//!
//! Not here: what the messages mean (the caller's protocol logic) and the command line
//! (`qemu.rs`).

use super::channel::{decode, Frame, LineDecoder};
use super::console::{ConsoleState, Distress, SharedConsole};
use super::error::VmError;
use super::qemu::{Accel, QemuConfig};
use kmatrix_proto::{GuestMsg, HostMsg, MAX_LINE};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixListener;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Where a VM's files go.
#[derive(Debug, Clone)]
pub struct VmFiles {
    /// The console log (every byte the guest printed on ttyS0).
    pub console_log: PathBuf,
}

/// A line that came from the guest channel, or the reason the channel ended.
#[derive(Debug)]
enum ChanEvent {
    Line(&'static str, String),
    Closed(&'static str, String),
}

/// A running QEMU guest: its process, console, guest channel and monitor. Killed on drop.
pub struct Vm {
    child: Child,
    accel: Accel,
    console: SharedConsole,
    events: mpsc::Receiver<ChanEvent>,
    writers: Vec<(&'static str, OwnedWriteHalf)>,
    monitor: Option<OwnedWriteHalf>,
    monitor_out: Arc<Mutex<String>>,
    active: Option<&'static str>,
    started: Instant,
    /// The first console byte must come within this long of `connected` (a KVM proof boot).
    first_output: Option<Duration>,
    /// When QEMU had connected its channels: its own start-up is over and the guest runs.
    connected: Instant,
    _sockets: tempfile::TempDir,
    /// Where every byte the guest printed on its console is written.
    pub console_log: PathBuf,
}

/// How often [`Vm::hmp_wait`] asks its question again.
const HMP_POLL: Duration = Duration::from_millis(5);

/// How long QEMU gets to connect to the channel sockets (it does so before the guest starts).
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

impl Vm {
    /// Spawn QEMU for `cfg` (its channel socket fields are filled in here) and wait until it has
    /// connected to the channel sockets.
    pub async fn start(mut cfg: QemuConfig, files: VmFiles, virtio: bool) -> Result<Vm, VmError> {
        if !is_executable(&cfg.qemu) {
            return Err(VmError::QemuMissing { path: cfg.qemu.clone() });
        }
        let sockets = tempfile::Builder::new()
            .prefix("kmatrix-vm-")
            .tempdir()
            .map_err(|source| VmError::ChannelSetup { dir: std::env::temp_dir(), source })?;
        let setup = |source| VmError::ChannelSetup { dir: sockets.path().to_path_buf(), source };
        let serial_path = sockets.path().join("serial.sock");
        let serial_l = UnixListener::bind(&serial_path).map_err(setup)?;
        cfg.serial_channel = Some(serial_path);
        let virtio_l = if virtio {
            let p = sockets.path().join("virtio.sock");
            let l = UnixListener::bind(&p).map_err(setup)?;
            cfg.virtio_channel = Some(p);
            Some(l)
        } else {
            cfg.virtio_channel = None;
            None
        };

        let monitor_path = sockets.path().join("hmp.sock");
        let monitor_l = UnixListener::bind(&monitor_path).map_err(setup)?;
        cfg.monitor = Some(monitor_path);

        let log = std::fs::File::create(&files.console_log)
            .map_err(|source| VmError::ConsoleLog { path: files.console_log.clone(), source })?;
        let mut cmd = Command::new(&cfg.qemu);
        cmd.args(cfg.args()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        die_with_parent(&mut cmd);
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|source| VmError::Spawn { path: cfg.qemu.clone(), source })?;

        let console: SharedConsole = Arc::new(Mutex::new(ConsoleState::default()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump_console(out, console.clone(), Some(log)));
        }
        if let Some(err) = child.stderr.take() {
            // QEMU's own complaints go into the same tail, marked, so errors show them.
            tokio::spawn(pump_stderr(err, console.clone()));
        }

        let (tx, events) = mpsc::channel(256);
        let mut writers = Vec::new();
        let mut monitor = None;
        let monitor_out: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
        let mut listeners = vec![("hmp", monitor_l), ("ttyS1", serial_l)];
        if let Some(l) = virtio_l {
            listeners.push(("virtio", l));
        }
        for (name, l) in listeners {
            let accepted = tokio::select! {
                r = tokio::time::timeout(CONNECT_DEADLINE, l.accept()) => r,
                st = child.wait() => {
                    let status = st.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    // Give the stderr pump a moment to collect QEMU's last words.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let waiting_for = format!("QEMU to connect the {name} channel");
                    return Err(exited(cfg.accel, &console, status, &waiting_for));
                }
            };
            let (stream, _) = match accepted {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(setup(e)),
                Err(_) => {
                    return Err(VmError::Timeout {
                        secs: CONNECT_DEADLINE.as_secs_f64(),
                        waiting_for: format!("QEMU to connect the {name} channel"),
                        console: tail(&console),
                    })
                }
            };
            let (r, w) = stream.into_split();
            if name == "hmp" {
                // The monitor's answers are kept (bounded) for `hmp_wait`; reading them also
                // keeps QEMU from blocking on a full socket.
                let out = monitor_out.clone();
                tokio::spawn(async move {
                    let mut r = r;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = r.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if let Ok(mut o) = out.lock() {
                            o.push_str(&String::from_utf8_lossy(&buf[..n]));
                            if o.len() > 256 * 1024 {
                                let cut = o.len() - 128 * 1024;
                                let cut = (cut..o.len()).find(|i| o.is_char_boundary(*i)).unwrap_or(o.len());
                                o.drain(..cut);
                            }
                        }
                    }
                });
                monitor = Some(w);
                continue;
            }
            tokio::spawn(pump_channel(name, r, tx.clone()));
            writers.push((name, w));
        }
        Ok(Vm {
            child,
            accel: cfg.accel,
            console,
            events,
            writers,
            monitor,
            monitor_out,
            active: None,
            started,
            first_output: cfg.first_output.filter(|_| cfg.accel == Accel::Kvm && !cfg.incoming),
            connected: Instant::now(),
            _sockets: sockets,
            console_log: files.console_log,
        })
    }

    /// Time since QEMU was spawned.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The last console lines (with QEMU's stderr marked `[qemu]`), for error reports.
    pub fn console_tail(&self) -> String {
        tail(&self.console)
    }

    /// The distress lines (panic, oops, warnings, stalls) seen on the console so far.
    pub fn distress(&self) -> Vec<Distress> {
        self.console.lock().map(|c| c.distress().to_vec()).unwrap_or_default()
    }

    /// The channel the guest answered on (`ttyS1` or `virtio`), once it has.
    pub fn channel(&self) -> Option<&'static str> {
        self.active
    }

    /// Wait for the next message from the guest, up to `timeout`. Fails early when QEMU exits or
    /// the console shows a kernel panic.
    pub async fn recv(&mut self, timeout: Duration, waiting_for: &str) -> Result<GuestMsg, VmError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut panic_check = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ChanEvent::Line(name, line)) => {
                        if self.active.is_none() {
                            self.active = Some(name);
                        }
                        return decode(&line).map_err(|e| VmError::Channel {
                            detail: format!("unparsable message on {name} ({e}): {}", kmatrix_proto::bounded(&line, 300)),
                            console: self.console_tail(),
                        });
                    }
                    Some(ChanEvent::Closed(name, why)) => {
                        if self.active == Some(name) || self.writers.len() == 1 {
                            return Err(self.died_or(waiting_for, VmError::Channel { detail: format!("{name} closed: {why}"), console: String::new() }).await);
                        }
                    }
                    None => return Err(self.died_or(waiting_for, VmError::Channel { detail: "all channels closed".into(), console: String::new() }).await),
                },
                st = self.child.wait() => {
                    let status = st.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Err(self.exit_error(status, waiting_for));
                }
                _ = panic_check.tick() => {
                    if let Some(e) = self.accel_error(waiting_for).await {
                        return Err(e);
                    }
                    if let Some(e) = self.silent(waiting_for).await {
                        return Err(e);
                    }
                    if let Some(p) = self.console.lock().ok().and_then(|c| c.panicked().cloned()) {
                        // The guest reboots (and QEMU exits) right after a panic; let the tail fill.
                        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
                        return Err(VmError::Panic { line: p.line, waiting_for: waiting_for.into(), console: self.console_tail() });
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(VmError::Timeout { secs: timeout.as_secs_f64(), waiting_for: waiting_for.into(), console: self.console_tail() });
                }
            }
        }
    }

    /// Wait for `Hello`; returns the capability record. Log lines before it are skipped.
    pub async fn hello(&mut self, timeout: Duration) -> Result<kmatrix_proto::Capabilities, VmError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left, "the agent's Hello").await? {
                GuestMsg::Hello { proto, caps } => {
                    if proto != kmatrix_proto::PROTO_VERSION {
                        return Err(VmError::ProtoMismatch { got: proto, want: kmatrix_proto::PROTO_VERSION });
                    }
                    return Ok(*caps);
                }
                GuestMsg::Error { message } => {
                    return Err(VmError::Channel {
                        detail: format!("agent failed before Hello: {message}"),
                        console: self.console_tail(),
                    })
                }
                _ => continue,
            }
        }
    }

    /// Send one message on the channel the guest answered on.
    pub async fn send(&mut self, msg: &HostMsg) -> Result<(), VmError> {
        let mut line = serde_json::to_string(msg)
            .map_err(|e| VmError::Channel { detail: e.to_string(), console: String::new() })?;
        line.push('\n');
        let active = self.active;
        let console = self.console_tail();
        let w =
            self.writers.iter_mut().find(|(n, _)| Some(*n) == active).map(|(_, w)| w).ok_or_else(|| {
                VmError::Channel { detail: "no channel has spoken yet".into(), console: console.clone() }
            })?;
        w.write_all(line.as_bytes()).await.map_err(|e| VmError::Channel { detail: format!("write: {e}"), console })
    }

    /// Ask the agent to power off and wait for QEMU to exit; kill it past `timeout`.
    pub async fn shutdown(mut self, timeout: Duration) -> Result<(), VmError> {
        let sent = self.send(&HostMsg::Shutdown).await;
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(st)) if st.success() => sent,
            Ok(Ok(st)) => Err(self.exit_error(st.to_string(), "a clean power-off")),
            Ok(Err(e)) => Err(VmError::Channel { detail: format!("wait for QEMU: {e}"), console: self.console_tail() }),
            Err(_) => {
                let console = self.console_tail();
                self.kill().await;
                Err(VmError::Timeout {
                    secs: timeout.as_secs_f64(),
                    waiting_for: "the guest to power off".into(),
                    console,
                })
            }
        }
    }

    /// Send a human-monitor command and wait until its output contains one of `until` (e.g.
    /// `info migrate` until `completed` or `failed`), asking again once QEMU has answered (its
    /// next `(qemu)` prompt), at most every `HMP_POLL`. Returns the index of the pattern seen
    /// and the output. The answer is looked at every millisecond or so: a snapshot restore waits
    /// here for `VM status: running`, and a fixed 50 ms sleep was half of its time.
    pub async fn hmp_wait(&mut self, cmd: &str, until: &[&str], timeout: Duration) -> Result<(usize, String), VmError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mark = self.monitor_out.lock().map(|o| o.len()).unwrap_or(0);
            self.hmp(cmd).await?;
            let asked = Instant::now();
            let seen = loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let seen = self
                    .monitor_out
                    .lock()
                    .map(|o| o.get(mark.min(o.len())..).unwrap_or("").to_string())
                    .unwrap_or_default();
                // The echoed command comes first, then the answer, then the next prompt.
                let answered = seen.trim_end().ends_with("(qemu)");
                if until.iter().any(|u| seen.contains(u)) || (answered && asked.elapsed() >= HMP_POLL) {
                    break seen;
                }
                if asked.elapsed() >= HMP_POLL * 10 || Instant::now() >= deadline {
                    break seen;
                }
            };
            if let Some(i) = until.iter().position(|u| seen.contains(u)) {
                return Ok((i, seen));
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(self.exit_error(st.to_string(), &format!("monitor command {cmd:?}")));
            }
            if Instant::now() >= deadline {
                return Err(VmError::Timeout {
                    secs: timeout.as_secs_f64(),
                    waiting_for: format!("{until:?} from monitor command {cmd:?} (last output: {})", seen.trim()),
                    console: self.console_tail(),
                });
            }
        }
    }

    /// Send one human-monitor command.
    pub async fn hmp(&mut self, cmd: &str) -> Result<(), VmError> {
        let console = self.console_tail();
        let m = self
            .monitor
            .as_mut()
            .ok_or_else(|| VmError::Channel { detail: "no monitor".into(), console: console.clone() })?;
        m.write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(|e| VmError::Channel { detail: format!("monitor write: {e}"), console })
    }

    /// The guest channel to use when the agent will not say Hello (a restored snapshot).
    pub fn set_active(&mut self, name: &str) {
        self.active = self.writers.iter().map(|(n, _)| *n).find(|n| *n == name);
    }

    /// Ask the guest kernel for a task dump (sysrq-t through the emulated keyboard) and give it
    /// `wait` to reach the console. Evidence for a hang, collected before the VM is killed.
    pub async fn task_dump(&mut self, wait: Duration) {
        if let Some(m) = self.monitor.as_mut() {
            if m.write_all(b"sendkey alt-sysrq-t\n").await.is_ok() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Kill QEMU now.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    async fn died_or(&mut self, waiting_for: &str, otherwise: VmError) -> VmError {
        // A closed channel usually means QEMU is going away: prefer its exit status, and a panic.
        if let Ok(Ok(st)) = tokio::time::timeout(Duration::from_secs(3), self.child.wait()).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return self.exit_error(st.to_string(), waiting_for);
        }
        match otherwise {
            VmError::Channel { detail, .. } => VmError::Channel { detail, console: self.console_tail() },
            e => e,
        }
    }

    fn exit_error(&self, status: String, waiting_for: &str) -> VmError {
        exited(self.accel, &self.console, status, waiting_for)
    }

    /// A KVM proof boot whose console stayed empty past its deadline (the guest has not spoken on
    /// the channel either): KVM runs nothing here, whatever QEMU says (on some hosts, nothing).
    /// QEMU is killed and the accelerator error names the wait.
    async fn silent(&mut self, waiting_for: &str) -> Option<VmError> {
        let within = self.first_output?;
        // From QEMU's channels connected, not its spawn: a loaded host may take seconds to start
        // QEMU itself, which says nothing about KVM.
        if self.active.is_some() || self.connected.elapsed() < within {
            return None;
        }
        if self.console.lock().ok()?.bytes > 0 {
            self.first_output = None;
            return None;
        }
        self.kill().await;
        let c = self.console.lock().ok()?;
        Some(VmError::Accelerator {
            accel: self.accel.as_str(),
            evidence: format!(
                "no console output within {:.1} s of QEMU starting the guest under KVM (a kernel under a working KVM prints in milliseconds)",
                within.as_secs_f64()
            ),
            waiting_for: waiting_for.into(),
            qemu_stderr: c.qemu_stderr(),
            console: c.tail(),
        })
    }

    /// When the first console byte came, counted from QEMU's start (none yet: `None`).
    pub fn first_output_after(&self) -> Option<Duration> {
        let first = self.console.lock().ok()?.first_byte?;
        Some(first.saturating_duration_since(self.started))
    }

    /// When QEMU said on stderr that KVM failed: give it a moment to finish its report (the
    /// register dump and `Code=` line follow), kill it (it pauses the guest rather than exiting)
    /// and return the accelerator error with its words as evidence.
    async fn accel_error(&mut self, waiting_for: &str) -> Option<VmError> {
        if self.accel != Accel::Kvm {
            return None;
        }
        self.console.lock().ok()?.accel_failed()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.kill().await;
        let c = self.console.lock().ok()?;
        Some(VmError::Accelerator {
            accel: self.accel.as_str(),
            evidence: c.accel_failed().unwrap_or_default().to_string(),
            waiting_for: waiting_for.into(),
            qemu_stderr: c.qemu_stderr(),
            console: c.tail(),
        })
    }
}

/// QEMU has exited while we waited for `waiting_for`: a guest panic when the console shows one;
/// under KVM, an accelerator failure when QEMU said so on stderr or died by a signal (an abort
/// in its KVM code); otherwise a plain exit.
fn exited(accel: Accel, console: &SharedConsole, status: String, waiting_for: &str) -> VmError {
    let Ok(c) = console.lock() else {
        return VmError::Exited { status, waiting_for: waiting_for.into(), console: String::new() };
    };
    if let Some(p) = c.panicked() {
        return VmError::Panic { line: p.line.clone(), waiting_for: waiting_for.into(), console: c.tail() };
    }
    // Under KVM, QEMU gone before the guest printed a byte is KVM's doing (an abort in QEMU's KVM
    // code, a VM that could not be created); if not, the redo under TCG fails the same way and
    // reports it as what it is.
    if accel == Accel::Kvm && (c.accel_failed().is_some() || c.bytes == 0) {
        let evidence = c.accel_failed().map(str::to_string).unwrap_or_else(|| format!("QEMU {status}"));
        return VmError::Accelerator {
            accel: accel.as_str(),
            evidence,
            waiting_for: waiting_for.into(),
            qemu_stderr: c.qemu_stderr(),
            console: c.tail(),
        };
    }
    VmError::Exited { status, waiting_for: waiting_for.into(), console: c.tail() }
}

/// QEMU gets SIGKILL when the thread that spawned it dies (`PR_SET_PDEATHSIG`): no QEMU outlives
/// kmatrix, not on Ctrl-C, not on a panic, not on SIGKILL.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn tail(c: &SharedConsole) -> String {
    c.lock().map(|c| c.tail()).unwrap_or_default()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    if p.components().count() == 1 {
        // A bare name: look it up in PATH.
        return std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|d| is_executable(&d.join(p))))
            .unwrap_or(false);
    }
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

async fn pump_console(mut out: tokio::process::ChildStdout, console: SharedConsole, mut log: Option<std::fs::File>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match out.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(f) = log.as_mut() {
                    if f.write_all(&buf[..n]).is_err() {
                        log = None;
                    }
                }
                if let Ok(mut c) = console.lock() {
                    c.feed(&buf[..n]);
                }
            }
        }
    }
    if let Some(mut f) = log {
        let _ = f.flush();
    }
}

async fn pump_stderr(err: tokio::process::ChildStderr, console: SharedConsole) {
    let mut lines = BufReader::new(err).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        if let Ok(mut c) = console.lock() {
            c.feed_qemu(&l);
        }
    }
}

async fn pump_channel(name: &'static str, mut r: tokio::net::unix::OwnedReadHalf, tx: mpsc::Sender<ChanEvent>) {
    // Bounded: a line longer than MAX_LINE is hostile or broken, not buffered forever.
    let mut decoder = LineDecoder::new(MAX_LINE);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut frames = Vec::new();
    loop {
        let why = match r.read(&mut chunk).await {
            Ok(0) => {
                frames.extend(decoder.finish());
                "end of stream".to_string()
            }
            Ok(n) => {
                decoder.push(&chunk[..n], &mut frames);
                String::new()
            }
            Err(e) => e.to_string(),
        };
        for f in frames.drain(..) {
            let ev = match f {
                Frame::Line(line) => ChanEvent::Line(name, line),
                Frame::TooLong { max } => ChanEvent::Closed(name, format!("line longer than {max} bytes")),
            };
            let closed = matches!(ev, ChanEvent::Closed(..));
            if tx.send(ev).await.is_err() || closed {
                return;
            }
        }
        if !why.is_empty() {
            let _ = tx.send(ChanEvent::Closed(name, why)).await;
            return;
        }
    }
}
