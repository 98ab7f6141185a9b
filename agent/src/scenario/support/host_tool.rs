//! Running the host's own tools (perf, trace-cmd, uftrace, bpftool, bpftrace, BCC) in the guest
//! for `tool.*` scenarios: through the host root the host shares into the guest (`share.rs`), as
//! the agent runs a user's program for `kmatrix exec` (`exec.rs`), without streaming.
//!
//! - [`Tool`] (`host_program`): a tool, the program that runs it on the host's distribution,
//!   its package there (the requirement `Req::HostProgram`, which has already mounted the share
//!   and checked that the tool runs when a scenario does) and its version, asked once per boot
//!   and recorded in every result (`detail.tool_version`, `detail.tool_program`);
//! - [`Workdir`]: a fresh directory in the guest's `/tmp` (the view shares it, at the same path)
//!   where the tool runs and writes its files, with copies of the image's workloads, which the
//!   view cannot see at `/bin` (that is the host's);
//! - [`failed`]: a tool that did not do its job, with its own words as the evidence.
//!
//! Not here: judging what a tool printed (each tool's scenario file) and folding stacks
//! (`support::stacks`).

use super::openat_loop::{self, OPENAT_LOOP};
use super::verdict::{count, unsupported};
use crate::host_program::{run_in, ENV};
pub use crate::host_program::{Packages, Tool};
use crate::process::{self, Running};
use crate::scenario::meta::{Ctx, Meta};
use crate::scenario::req::Req;
use crate::{excerpt, share};
use anyhow::{Context, Result};
use kmatrix_proto::{Count, ExecOutcome, ScenarioResult, Status};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// A step of a tool scenario: its value, or (inner `Err`) the result that ends the scenario
/// because the tool failed; the outer `Err` is the agent's own trouble (infrastructure).
pub type Step<T> = Result<std::result::Result<T, ScenarioResult>>;

/// The value of a [`Step`]; a finished result (the tool failed) is returned from the scenario
/// function, or passed on from a function that is itself a [`Step`] ([`Ended`]); the agent's
/// own trouble goes up with `?`.
macro_rules! step {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(r) => return Ok($crate::scenario::support::host_tool::Ended::ended(r)),
        }
    };
}
pub(crate) use step;

/// What a function returns when a tool failed and the scenario's result is already made: the
/// result itself from a scenario function, the inner `Err` of a [`Step`] from a step.
pub trait Ended {
    /// `r` as this function's value.
    fn ended(r: ScenarioResult) -> Self;
}

impl Ended for ScenarioResult {
    fn ended(r: ScenarioResult) -> Self {
        r
    }
}

impl<T> Ended for std::result::Result<T, ScenarioResult> {
    fn ended(r: ScenarioResult) -> Self {
        Err(r)
    }
}

/// A tool's run as a [`Step`]: its outcome when it ended well (see [`ExecOutcome::success`]); else the scenario
/// ends `fail` with `reason`, and the tool's output is the evidence.
pub fn checked(ctx: &Ctx, tool: &Tool, out: ExecOutcome, reason: impl Into<String>) -> Step<ExecOutcome> {
    Ok(if out.success() { Ok(out) } else { Err(failed(ctx, tool, Status::Fail, reason, &out)) })
}

/// The `syscalls:sys_enter_openat` event the tools list, count and record.
pub const SYS_ENTER_OPENAT: Req = Req::All(&[Req::Tracefs, Req::Event("syscalls/sys_enter_openat")]);
/// That event on the `openat-loop` workload the tool starts ([`Workdir::openat_loop`]).
pub const SYS_ENTER_OPENAT_LOOP: Req = Req::All(&[SYS_ENTER_OPENAT, Req::Program(OPENAT_LOOP)]);

/// The entry of a tool scenario in which the tool counts `syscalls:sys_enter_openat` of the
/// `openat-loop N` it runs ([`Workdir::for_openat_loop`]): [`SYS_ENTER_OPENAT_LOOP`], then the
/// tool's requirement `tool` ([`Tool::req`]), and N (`count`) 100 unless the run says otherwise.
pub const fn sys_enter_openat_loop(id: &'static str, since: &'static str, summary: &'static str, tool: Req) -> Meta {
    Meta::new(id, since)
        .summary(summary)
        .requires(&[SYS_ENTER_OPENAT_LOOP])
        .requires_last(tool)
        .params(&[("count", "100")])
}

/// tracefs' `syscalls` events whose names start with `prefix` (`sys_enter_open`), each written
/// `<tool_prefix>syscalls:<name>` as the tool that lists them writes it (`tracepoint:` for
/// bpftrace, nothing for tplist): the set a tool's listing must equal.
pub fn syscall_events(prefix: &str, tool_prefix: &str) -> Result<BTreeSet<String>> {
    let dir = format!("{}/events/syscalls", crate::mounts::TRACEFS);
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("read_dir({dir}) failed"))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .map(|n| format!("{tool_prefix}syscalls:{n}"))
        .collect())
}

/// The non-empty lines a tool printed, trimmed, as a set (a listing).
pub fn listed(stdout: &str) -> BTreeSet<String> {
    stdout.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

/// A tool's listing of tracefs' `syscalls` events whose names start with `prefix` (its stdout,
/// [`listed`]; each written `<tool_prefix>syscalls:<name>`) against tracefs' own
/// ([`syscall_events`]): what the tool listed, and the count `what` of tracefs' events it listed
/// (all of them); a listing that differs is a problem naming what only `tool` and only tracefs
/// have.
pub fn syscall_listing(
    stdout: &str,
    prefix: &str,
    tool_prefix: &str,
    tool: &str,
    what: &str,
    problems: &mut Vec<String>,
) -> Result<(BTreeSet<String>, Count)> {
    let listed = listed(stdout);
    let tracefs = syscall_events(prefix, tool_prefix)?;
    if listed != tracefs {
        problems.push(format!(
            "only {tool}: {:?}; only tracefs: {:?}",
            listed.difference(&tracefs).collect::<Vec<_>>(),
            tracefs.difference(&listed).collect::<Vec<_>>()
        ));
    }
    let listed_of_tracefs = count(what, tracefs.len() as u64, listed.intersection(&tracefs).count() as u64);
    Ok((listed, listed_of_tracefs))
}

/// The summary line of `openat-loop` run by a tool, from what the tool passed on of its stdout;
/// an unreadable one is a problem (and zero counts, which the verdict shows).
pub fn openat_summary(stdout: &str, problems: &mut Vec<String>) -> openat_loop::Summary {
    openat_loop::summary(stdout).unwrap_or_else(|e| {
        problems.push(format!("{e:#}"));
        Default::default()
    })
}

/// How long one tool command may take in most scenarios.
pub const MINUTE: Duration = Duration::from_secs(60);

/// Where every tool scenario works (in the guest's own `/tmp`), emptied before and after.
const WORK: &str = "/tmp/kmatrix-tool";

impl Tool {
    /// The requirement: the tool in the shared host root, and running (`host_program`).
    pub const fn req(&'static self) -> Req {
        Req::HostProgram(self)
    }

    /// `detail` of a result: the tool's version, the program that ran (on Ubuntu, perf's real
    /// binary under /usr/lib/linux-tools/ABI/), how the host root was shared (virtio-fs or
    /// 9p, and why), and the scenario's own fields.
    pub fn detail(&self, fields: serde_json::Value) -> serde_json::Value {
        let share = crate::share::mount_offered().ok();
        let mut d = serde_json::json!({
            "tool": self.name,
            "tool_version": self.version(),
            "tool_program": self.program(),
            "share": share,
        });
        if let (Some(d), serde_json::Value::Object(f)) = (d.as_object_mut(), fields) {
            d.extend(f);
        }
        d
    }
}

/// Run `argv` (host paths) in the host root with cwd `/tmp` (the guest's own, writable), up to
/// `timeout`.
pub fn run(argv: &[&str], timeout: Duration) -> Result<ExecOutcome> {
    run_in(argv, "/tmp", timeout)
}

/// One line for a result's evidence: how the tool ended.
pub use crate::host_program::ended;

/// The problem of a run that did not end well, for a verdict: its end and stderr's tail.
pub fn problem(what: &str, out: &ExecOutcome) -> Option<String> {
    (!out.success()).then(|| format!("{what}: {}: {}", ended(out), excerpt::tail(out.stderr.trim(), 5)))
}

/// A tool that could not do its job on this kernel: `status` (`fail` where it should work,
/// `unsupported` where the kernel lacks something, said in `reason`), the tool's own words as
/// evidence and its output as excerpt.
pub fn failed(ctx: &Ctx, tool: &Tool, status: Status, reason: impl Into<String>, out: &ExecOutcome) -> ScenarioResult {
    let evidence = format!("{}: {}", ended(out), excerpt::tail(out.stderr.trim(), 20));
    let mut r = match status {
        Status::Unsupported => unsupported(ctx.id(), reason, evidence, None),
        _ => {
            let mut r = ScenarioResult::new(ctx.id(), status, reason);
            r.evidence = Some(evidence);
            r
        }
    };
    r.detail = tool.detail(serde_json::json!({}));
    r.with_excerpt(&format!("{}\n{}", excerpt::tail(&out.stdout, 20), excerpt::tail(&out.stderr, 20)))
}

/// Wait until `ready` holds (the tool has set tracefs up), polling every 10 ms up to `timeout`;
/// `Ok(false)` when the tool exited first or the time ran out.
pub fn wait_ready(tool: &mut Running, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<bool> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(true);
        }
        if tool.has_exited()? || std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The processes of process group `pgid` besides its leader (a tool's helpers: trace-cmd's
/// per-CPU recorders), from /proc.
pub fn group_helpers(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&pid| pid != pgid && stat_field(pid, 2).as_deref() == Some(&pgid.to_string()))
        .collect()
}

/// Field `i` (0-based) after the comm of `/proc/<pid>/stat` (`pid (comm) state ppid pgrp ...`:
/// 0 is the state, 2 the process group); the comm may hold spaces, so split after its `)`.
fn stat_field(pid: i32, i: usize) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(i).map(str::to_string))
}

/// Whether process `pid` holds a file whose path contains `name` open and sleeps (state `S`):
/// a recorder that opened its per-CPU `trace_pipe_raw` and waits for data.
pub fn waits_on(pid: i32, name: &str) -> bool {
    let holds = std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().contains(name)))
    });
    holds && stat_field(pid, 0).as_deref() == Some("S")
}

/// A fresh working directory in the guest's `/tmp`, at the same path inside the host root's view;
/// removed again when dropped, so a scenario's files (perf.data, trace.dat) do not fill the
/// guest's memory.
pub struct Workdir {
    dir: String,
}

impl Workdir {
    pub fn new() -> Result<Workdir> {
        if Path::new(WORK).exists() {
            std::fs::remove_dir_all(WORK).with_context(|| format!("rm -r {WORK} failed"))?;
        }
        std::fs::create_dir_all(WORK).with_context(|| format!("mkdir({WORK}) failed"))?;
        Ok(Workdir { dir: WORK.to_string() })
    }

    /// The path of `name` in the directory (the same for the agent and the tool).
    pub fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// Copy a program of the image (`/bin/hello`) into the directory, where a tool running in the
    /// host root can start it; returns its path.
    pub fn copy(&self, image_path: &str) -> Result<String> {
        let name = Path::new(image_path).file_name().and_then(|n| n.to_str()).context("program without a name")?;
        let to = self.path(name);
        std::fs::copy(image_path, &to).with_context(|| format!("cp {image_path} {to} failed"))?;
        Ok(to)
    }

    /// Copy the program of the `program` parameter, `default` when absent (a program of the
    /// image: `/bin/hello-dyn`), into the directory; returns its path there.
    pub fn copy_program(&self, ctx: &Ctx, default: &str) -> Result<String> {
        let program = ctx.params.get("program").map(String::as_str).unwrap_or(default);
        anyhow::ensure!(
            program.starts_with("/bin/"),
            "parameter program={program:?}: a program of the image, /bin/..."
        );
        self.copy(program)
    }

    /// `openat-loop N <file>` as a tool starts it: a copy of the workload in the directory and
    /// an empty `target` file there for it to open.
    pub fn openat_loop(&self, n: u64) -> Result<[String; 3]> {
        Ok([self.copy(OPENAT_LOOP)?, n.to_string(), self.touch("target")?])
    }

    /// A fresh directory for a tool run on the image's program `image_path` N times, N the
    /// scenario's declared count: N, the directory and the program's copy there ([`Workdir::copy`]).
    pub fn with_copy(ctx: &Ctx, image_path: &str) -> Result<(u64, Workdir, String)> {
        let n = ctx.declared_count()?;
        let dir = Workdir::new()?;
        let prog = dir.copy(image_path)?;
        Ok((n, dir, prog))
    }

    /// A fresh directory for a tool run on `openat-loop N`, N the scenario's declared count: N,
    /// the directory, and the command line ([`Workdir::openat_loop`]).
    pub fn for_openat_loop(ctx: &Ctx) -> Result<(u64, Workdir, [String; 3])> {
        let n = ctx.declared_count()?;
        let dir = Workdir::new()?;
        let argv = dir.openat_loop(n)?;
        Ok((n, dir, argv))
    }

    /// Create an empty file in the directory (the file a workload opens); returns its path.
    pub fn touch(&self, name: &str) -> Result<String> {
        let to = self.path(name);
        std::fs::write(&to, b"").with_context(|| format!("create({to}) failed"))?;
        Ok(to)
    }

    /// Read a file the tool wrote.
    pub fn read(&self, name: &str) -> Result<String> {
        let p = self.path(name);
        let bytes = std::fs::read(&p).with_context(|| format!("read({p}) failed"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Run `argv` with this directory as cwd, up to `timeout`.
    pub fn run(&self, argv: &[&str], timeout: Duration) -> Result<ExecOutcome> {
        run_in(argv, &self.dir, timeout)
    }

    /// [`Workdir::run`] up to a [`MINUTE`] as a [`Step`]: a tool that does not end well (see
    /// [`ExecOutcome::success`]) ends the scenario `fail` with `reason` and the tool's output as evidence.
    pub fn step(&self, ctx: &Ctx, tool: &Tool, argv: &[&str], reason: &str) -> Step<ExecOutcome> {
        checked(ctx, tool, self.run(argv, MINUTE)?, reason)
    }

    /// [`Workdir::step`] with stdout into the file `file` ([`Workdir::run_to_file`]).
    pub fn step_to_file(&self, ctx: &Ctx, tool: &Tool, argv: &[&str], file: &str, reason: &str) -> Step<ExecOutcome> {
        checked(ctx, tool, self.run_to_file(argv, file, MINUTE)?, reason)
    }

    /// Run `argv` with stdout into the file `out` of this directory (`/bin/sh -c 'exec argv >
    /// out'`), for outputs larger than what a run keeps (1 MiB): `perf script`, `bpftool btf dump`.
    pub fn run_to_file(&self, argv: &[&str], out: &str, timeout: Duration) -> Result<ExecOutcome> {
        let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let script = format!("exec {} > {}", quoted.join(" "), shell_quote(&self.path(out)));
        run_in(&["/bin/sh", "-c", &script], &self.dir, timeout)
    }

    /// Start `argv` in this directory beside the agent (a recorder stopped with a signal), in
    /// its own process group; [`Running::finish`] collects its output.
    pub fn start(&self, argv: &[&str]) -> Result<Running> {
        let root = share::offered().context("the host root is not shared into this guest")?;
        share::ensure(&root)?;
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        process::spawn_in_root(&argv, share::HOST_ROOT, &self.dir, ENV)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `s` as one word for `/bin/sh`.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("/usr/bin/perf"), "/usr/bin/perf");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
