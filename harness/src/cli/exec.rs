//! `kmatrix exec`: a host program run inside guests through the shared host root, with the
//! caller's environment, cwd and stdin, its output streamed live, and its exit status. Usable as
//! a cargo runner (`CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="kmatrix exec --"`). Several
//! kernels run in parallel: output lines are prefixed with the kernel, kept per kernel in the
//! output directory (`--output-dir`: unprefixed, with the exit status; `exec_output.rs`), and
//! one summary line per kernel closes the run.

use super::exec_output::{KernelOutput, Layout};
use super::{open_session_saying, seconds, start_shared, tag_kernel, GuestArgs};
use crate::exit::{self, ExitContext};
use crate::guest::Guest;
use crate::kernel;
use crate::run::results;
use anyhow::{Context, Result};
use clap::Args;
use kmatrix_proto::{ExecOutcome, ExecRequest, HostMsg, StdinMode};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `kmatrix exec`: the program, the kernels, what the guest may write, how long it may run.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Kernels to run on, comma-separated: ids, specs, or groups of the matrix (`all`, `default`,
    /// `x86_64`, `arm64`). Default: --kernel.
    #[arg(long, value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// Seconds the program may run; it is killed (with everything it started) after that.
    #[arg(long, default_value_t = 600.0, value_parser = seconds)]
    pub timeout: f64,
    /// A host directory the guest may write (repeatable); the rest of the host is read-only.
    #[arg(long, value_name = "DIR")]
    pub rw: Vec<PathBuf>,
    /// Set a variable in the guest program's environment (repeatable), `NAME=VALUE`.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Fetch each kernel's own headers (Debian's `linux-headers` packages, merged; cached) and
    /// offer them to the program as `BCC_KERNEL_SOURCE`, for BCC tools and anything that
    /// compiles against the running kernel.
    #[arg(long)]
    pub kernel_headers: bool,
    /// Keep each kernel's stdout, stderr and exit status, unprefixed, in `DIR/<kernel>/stdout`,
    /// `stderr` and `status`, for a parser to read (`go test -json`, TAP). DIR is created; one
    /// that exists must be empty.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Say on stderr, per kernel, how the host root was shared (virtio-fs or 9p, why, and the
    /// first mount's time) and how the guest started (one kernel; several always say it).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// The kernel and how to boot it (flattened: `--kernel`, `--accel`, `--memory`, ...).
    #[command(flatten)]
    pub guest: GuestArgs,
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    pub argv: Vec<String>,
}

/// The exit code for a program's end: its own code, 128 + signal, or infrastructure.
pub(crate) fn code_of(out: &ExecOutcome) -> i32 {
    match (out.exit_code, out.signal) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => exit::INFRA,
    }
}

pub(crate) async fn exec_cmd(a: ExecArgs) -> Result<i32> {
    let (base, rw) = crate::exec::request(&a.argv, &a.env, a.timeout, &a.rw).exit_code(exit::BAD_INPUT)?;
    let mut kernels = a.guest.kernels_or(&a.kernels)?;
    if kernels.is_empty() {
        kernels.push(a.guest.kernel().to_string());
    }
    let kernels = kernel::expand_names(&kernels).map_err(tag_kernel).exit_code(exit::BAD_INPUT)?;
    // stdin: a pipe or file is read up front and handed to every kernel's program; a terminal is
    // not read (use `kmatrix shell` for that).
    let stdin_bytes = if std::io::stdin().is_terminal() {
        None
    } else {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).context("cannot read stdin")?;
        Some(b)
    };
    let single = kernels.len() == 1;
    let layout = match &a.output_dir {
        Some(d) => Some(Layout::PerKernel(super::exec_output::prepare_dir(d)?)),
        None if single => None,
        None => {
            let out_dir = results::stamped_dir(&a.guest.out, "exec");
            std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
            Some(Layout::Flat(out_dir))
        }
    };
    let session = Arc::new(open_session_saying(a.guest.accel, !single || a.verbose).await?);
    let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut tasks = Vec::new();
    for k in kernels.clone() {
        let (session, sem, guest_args, mut req, rw, layout) =
            (session.clone(), sem.clone(), a.guest.clone(), base.clone(), rw.clone(), layout.clone());
        let stdin_bytes = stdin_bytes.clone();
        let timeout = a.timeout;
        let headers = a.kernel_headers;
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let mut ga = guest_args;
            ga.kernel = Some(k.clone());
            let (p, mut g) = start_shared(&session, &ga, &k, "exec", rw, headers).await?;
            req.root = g.share.clone();
            req.env = crate::exec::guest_env(std::mem::take(&mut req.env), &k, &p.kernel.release);
            crate::exec::headers_env(&g, &mut req.env);
            if stdin_bytes.is_some() {
                req.stdin = StdinMode::Pipe;
            }
            let started = g.boot_path.clone();
            let out = run_one(&mut g, req, stdin_bytes, timeout, single, &k, layout.as_ref()).await;
            let accel = g.accel.as_str();
            let _ = g.shutdown().await;
            let out = out?;
            Ok::<_, anyhow::Error>((k, p.kernel.release.clone(), accel, started, out))
        }));
    }
    let mut ends = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        match t.await.context("an exec task died")? {
            Ok((k, release, accel, started, out)) => {
                if !single || a.verbose {
                    eprintln!("kmatrix: {k}: booted {started}");
                    eprintln!("kmatrix: {k}: {}", out.share.as_deref().unwrap_or("host root not mounted"));
                    if let Some(ms) = out.clock_offset_ms {
                        eprintln!(
                            "kmatrix: {k}: guest clock was {:.3} s off the host's before it was set; ran in {} ms",
                            ms / 1000.0,
                            out.wall_ms
                        );
                    }
                }
                if !single {
                    eprintln!(
                        "== {k} ({release}, {accel}): {} in {} ms{}",
                        match (out.exit_code, out.signal) {
                            (Some(c), _) => format!("exit {c}"),
                            (None, Some(s)) => format!("signal {s}"),
                            _ => "no status".into(),
                        },
                        out.wall_ms,
                        if out.timed_out { " (timed out)" } else { "" }
                    );
                }
                ends.push(out);
            }
            Err(e) => failures.push(e),
        }
    }
    if let Some(e) = failures.into_iter().next() {
        return Err(e);
    }
    match &layout {
        Some(Layout::PerKernel(d)) | Some(Layout::Flat(d)) if !single || a.output_dir.is_some() => {
            eprintln!("kmatrix: output of each kernel in {}", d.display())
        }
        _ => {}
    }
    Ok(worst_code(&ends))
}

/// Run `req` in `g`: feed stdin, stream output (raw for one kernel, line-prefixed for several),
/// keep it per kernel as `layout` says.
async fn run_one(
    g: &mut Guest,
    req: ExecRequest,
    stdin: Option<Vec<u8>>,
    timeout: f64,
    single: bool,
    kernel: &str,
    layout: Option<&Layout>,
) -> Result<ExecOutcome> {
    let mut files = layout.map(|l| KernelOutput::create(l, kernel)).transpose()?;
    let out = run_streaming(g, req, stdin, timeout, single, kernel, files.as_mut()).await?;
    if let Some(f) = &files {
        f.finish(&out)?;
    }
    Ok(out)
}

/// [`run_one`]'s request and output, each chunk also into `files`.
async fn run_streaming(
    g: &mut Guest,
    req: ExecRequest,
    stdin: Option<Vec<u8>>,
    timeout: f64,
    single: bool,
    kernel: &str,
    mut files: Option<&mut KernelOutput>,
) -> Result<ExecOutcome> {
    let mut lines = Prefixed::new(kernel);
    let out = {
        let mut on_output = |fd: u8, data: &[u8]| {
            if let Some(f) = files.as_mut() {
                f.write(fd, data);
            }
            if single {
                write_fd(fd, data);
                return;
            }
            for (fd, text) in lines.push(fd, data) {
                write_fd(fd, &text);
            }
        };
        exchange(g, req, stdin, timeout, kernel, &mut on_output).await
    };
    // A last line without its newline is still the program's output (and says which kernel).
    for (fd, text) in lines.finish() {
        write_fd(fd, &text);
    }
    out
}

fn write_fd(fd: u8, data: &[u8]) {
    let _ = if fd == 2 { std::io::stderr().write_all(data) } else { std::io::stdout().write_all(data) };
}

/// Send `req` (and stdin, when piped) and read the output into `on_output` to the finish.
async fn exchange(
    g: &mut Guest,
    req: ExecRequest,
    stdin: Option<Vec<u8>>,
    timeout: f64,
    kernel: &str,
    on_output: &mut impl FnMut(u8, &[u8]),
) -> Result<ExecOutcome> {
    let piped = req.stdin == StdinMode::Pipe;
    let wait = Duration::from_secs_f64(timeout + 30.0);
    if piped {
        // Send the request, then stdin and its end, then read to the finish.
        g.send(&HostMsg::Exec(req)).await.exit_code(exit::INFRA)?;
        for chunk in stdin.unwrap_or_default().chunks(32 * 1024) {
            g.send(&HostMsg::Input { data: chunk.to_vec() }).await.exit_code(exit::INFRA)?;
        }
        g.send(&HostMsg::Input { data: Vec::new() }).await.exit_code(exit::INFRA)?;
        loop {
            match g.recv(wait, "an exec to finish").await.exit_code(exit::INFRA)? {
                kmatrix_proto::GuestMsg::ExecOutput { fd, data } => on_output(fd, &data),
                kmatrix_proto::GuestMsg::ExecDone(o) => return Ok(o),
                kmatrix_proto::GuestMsg::Error { message } => {
                    return Err(anyhow::anyhow!("{kernel}: the agent could not run it: {message}"))
                        .exit_code(exit::INFRA)
                }
                _ => {}
            }
        }
    }
    g.exec_streaming(req, wait, on_output).await.map_err(|e| anyhow::anyhow!("{kernel}: {e}")).exit_code(exit::INFRA)
}

/// A program's output as several kernels print it on one terminal: whole lines, each prefixed
/// with `[kernel] `, stdout and stderr apart; at the end, what is left of a last line without
/// its newline, prefixed and given one (so it is neither lost nor joined to another kernel's).
struct Prefixed {
    prefix: Vec<u8>,
    partial: [Vec<u8>; 2],
}

impl Prefixed {
    fn new(kernel: &str) -> Prefixed {
        Prefixed { prefix: format!("[{kernel}] ").into_bytes(), partial: [Vec::new(), Vec::new()] }
    }

    /// `data` of fd 1 or 2: the lines it completes, as (fd, prefixed line).
    fn push(&mut self, fd: u8, data: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let fd = fd.clamp(1, 2);
        let buf = &mut self.partial[usize::from(fd - 1)];
        buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(n) = buf.iter().position(|&b| b == b'\n') {
            let mut text = self.prefix.clone();
            text.extend(buf.drain(..=n));
            out.push((fd, text));
        }
        out
    }

    /// The unfinished last line of each fd, prefixed, with a newline.
    fn finish(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        for (i, buf) in self.partial.iter_mut().enumerate() {
            if !buf.is_empty() {
                let mut text = self.prefix.clone();
                text.append(buf);
                text.push(b'\n');
                out.push((i as u8 + 1, text));
            }
        }
        out
    }
}

/// How bad a kernel's end is, for the exit code of a run over several: ended with 0, with
/// another exit code, killed by a signal, with no status or timed out — then the larger code.
fn severity(out: &ExecOutcome) -> (u8, i32) {
    let class = match (out.timed_out, out.exit_code, out.signal) {
        (true, ..) | (false, None, None) => 3,
        (false, None, Some(_)) => 2,
        (false, Some(0), _) => 0,
        (false, Some(_), _) => 1,
    };
    (class, code_of(out))
}

/// The exit code of a run over several kernels: the worst kernel's ([`severity`]), whatever
/// order the kernels finished in.
fn worst_code<'a>(outs: impl IntoIterator<Item = &'a ExecOutcome>) -> i32 {
    outs.into_iter().max_by_key(|o| severity(o)).map_or(exit::OK, code_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_line_without_newline_is_printed_with_its_prefix() {
        let mut p = Prefixed::new("debian-6.1");
        assert_eq!(p.push(1, b"one\ntw"), [(1, b"[debian-6.1] one\n".to_vec())]);
        assert!(p.push(2, b"err").is_empty());
        assert_eq!(p.push(1, b"o\nthree"), [(1, b"[debian-6.1] two\n".to_vec())]);
        // The old loop printed complete lines only: "three" and "err" were dropped.
        assert_eq!(p.finish(), [(1, b"[debian-6.1] three\n".to_vec()), (2, b"[debian-6.1] err\n".to_vec())]);
        assert!(p.finish().is_empty());
    }

    #[test]
    fn several_kernels_exit_with_the_worst_code_not_the_first() {
        let end = |exit_code, signal, timed_out| ExecOutcome { exit_code, signal, timed_out, ..Default::default() };
        let (ok, failed, two, killed) = (
            end(Some(0), None, false),
            end(Some(1), None, false),
            end(Some(2), None, false),
            end(None, Some(9), false),
        );
        let timed_out = end(None, Some(9), true);
        assert_eq!(worst_code([&ok, &ok]), 0);
        // The first non-zero was taken: 1 here, though the second kernel's program was killed.
        assert_eq!(worst_code([&failed, &killed]), 137);
        assert_eq!(worst_code([&killed, &failed]), 137);
        assert_eq!(worst_code([&failed, &two, &ok]), 2);
        assert_eq!(worst_code([&killed, &timed_out, &failed]), 137);
        assert_eq!(severity(&timed_out).0, 3);
        assert_eq!(worst_code([&ok, &end(None, None, false)]), exit::INFRA);
        assert_eq!(worst_code(std::iter::empty()), exit::OK);
    }
}
