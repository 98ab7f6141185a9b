//! `kmatrix shell`: an interactive shell in a guest — the host's own shell over the shared host
//! root, on a pseudo-terminal in the guest, with this terminal in raw mode (vmm-sys-util) so that
//! keys, Ctrl-C included, go to the guest's foreground program. The window size follows the
//! host's (SIGWINCH). `exit N` ends the shell, powers the guest off and returns N.

use super::{open_session, start_shared, GuestArgs};
use crate::exit::{self, ExitContext};
use anyhow::{Context, Result};
use clap::Args;
use kmatrix_proto::{GuestMsg, HostMsg, StdinMode};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vmm_sys_util::terminal::Terminal;

/// `kmatrix shell`: the guest, the writable directories and the shell to run.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// A host directory the guest may write (repeatable); the rest of the host is read-only.
    #[arg(long, value_name = "DIR")]
    pub rw: Vec<PathBuf>,
    /// Fetch the kernel's own headers and offer them as `BCC_KERNEL_SOURCE` (see `exec`).
    #[arg(long)]
    pub kernel_headers: bool,
    /// The kernel and how to boot it (flattened: `--kernel`, `--accel`, `--memory`, ...).
    #[command(flatten)]
    pub guest: GuestArgs,
    /// The shell (default: $SHELL, else /bin/bash) and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub argv: Vec<String>,
}

/// Puts the terminal back however the shell ends.
struct RawMode;

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let lock = stdin.lock();
        lock.set_raw_mode().ok().map(|_| RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = std::io::stdin().lock().set_canon_mode();
    }
}

/// The host terminal's size (rows, cols), if stdout is one.
fn winsize() -> Option<(u16, u16)> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into a valid, owned struct.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

pub(crate) async fn shell_cmd(a: ShellArgs) -> Result<i32> {
    let argv = if a.argv.is_empty() { default_shell() } else { a.argv.clone() };
    let (req, rw) = crate::exec::request(&argv, &[], 24.0 * 3600.0, &a.rw).exit_code(exit::BAD_INPUT)?;
    let session = Arc::new(open_session(a.guest.accel).await?);
    let (p, g) = start_shared(&session, &a.guest, a.guest.kernel(), "shell", rw, a.kernel_headers).await?;
    interactive(g, req, &p.kernel).await
}

/// The shell's default command line: `$SHELL`, else /bin/bash.
pub(crate) fn default_shell() -> Vec<String> {
    vec![std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/bash".into())]
}

/// Run `req` (a host program, checked by `exec::request`) on a terminal in the booted guest `g`
/// of `kernel`, this terminal raw, until it exits; then power the guest off and return its exit
/// code. `kmatrix shell` and `kmatrix rerun --shell` both end here.
pub(crate) async fn interactive(
    mut g: crate::guest::Guest,
    mut req: kmatrix_proto::ExecRequest,
    kernel: &crate::kernel::PreparedKernel,
) -> Result<i32> {
    req.root = g.share.clone();
    req.env = crate::exec::guest_env(std::mem::take(&mut req.env), &kernel.id, &kernel.release);
    crate::exec::headers_env(&g, &mut req.env);
    // The host root is read-only: keep the shell's history in the guest's /tmp.
    req.env.retain(|(k, _)| k != "HISTFILE");
    req.env.push(("HISTFILE".into(), "/tmp/.kmatrix_shell_history".into()));
    req.stdin = StdinMode::Tty;
    req.winsize = winsize().or(Some((24, 80)));
    eprintln!(
        "kmatrix: shell on {} ({}, {}); `exit` powers the guest off\r",
        kernel.id,
        kernel.release,
        g.accel.as_str()
    );
    g.send(&HostMsg::Exec(req)).await.exit_code(exit::INFRA)?;
    let raw = RawMode::enter();
    // Keys: a thread reads the terminal (blocking reads) and hands the bytes over.
    let (tx, mut keys) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    std::thread::spawn(move || {
        use std::io::Read;
        use std::os::fd::FromRawFd;
        // fd 0 read directly, not through std's `Stdin`: its lock, held across a blocking read,
        // would keep `RawMode::drop` from restoring the terminal.
        // SAFETY: fd 0 stays open for the life of the process; ManuallyDrop never closes it.
        let mut tty = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
        let mut buf = [0u8; 1024];
        loop {
            match tty.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(Vec::new());
                    return;
                }
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .context("cannot watch the terminal's size")?;
    let mut stdin_open = true;
    let out = loop {
        tokio::select! {
            msg = g.recv(Duration::from_secs(24 * 3600), "the shell to end") => {
                match msg.exit_code(exit::INFRA)? {
                    GuestMsg::ExecOutput { data, .. } => {
                        let mut o = std::io::stdout().lock();
                        let _ = o.write_all(&data);
                        let _ = o.flush();
                    }
                    GuestMsg::ExecDone(o) => break o,
                    GuestMsg::Error { message } => {
                        drop(raw);
                        return Err(anyhow::anyhow!("the agent could not start the shell: {message}")).exit_code(exit::INFRA);
                    }
                    _ => {}
                }
            }
            k = keys.recv(), if stdin_open => {
                match k {
                    Some(data) if !data.is_empty() => g.send(&HostMsg::Input { data }).await.exit_code(exit::INFRA)?,
                    // The host's stdin ended: the guest shell sees end of input (Ctrl-D).
                    _ => {
                        stdin_open = false;
                        g.send(&HostMsg::Input { data: vec![4] }).await.exit_code(exit::INFRA)?;
                    }
                }
            }
            _ = winch.recv() => {
                if let Some((rows, cols)) = winsize() {
                    g.send(&HostMsg::Winsize { rows, cols }).await.exit_code(exit::INFRA)?;
                }
            }
        }
    };
    drop(raw);
    let _ = g.shutdown().await;
    Ok(super::exec::code_of(&out))
}
