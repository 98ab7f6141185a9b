//! `tool.trace-cmd.*`: the host's `trace-cmd` (Debian's trace-cmd) recording ftrace data in the
//! guest and `trace-cmd report` reading it back, as the seed notes' `trace-cmd record -p
//! function -P <pid>` / `trace-cmd record -p function ./hello` and trace-cmd-record(1) `-e`.
//!
//! With `-P`, the workload is the agent's own gated `openat-loop`, released once trace-cmd has
//! written its pid filter and enabled tracing (read back from tracefs); trace-cmd 3.x stops by
//! itself when the process exits (it waits on a pidfd), older ones at a Ctrl-C, which the agent
//! sends (SIGINT) when trace-cmd is still recording after [`STOP_WAIT`]. A SIGINT while 3.x
//! is already stopping loses the recording, so the agent never sends one early. With `-F`,
//! trace-cmd starts the workload itself. trace-cmd changes options and the buffer size; they are remembered first, so the
//! reset restores them.

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::host_tool::{self, step, Step, Tool, Workdir, MINUTE};
use crate::scenario::support::openat_loop::{self, Summary, OPENAT_LOOP};
use crate::scenario::support::tracer::FUNCTION_TRACER;
use crate::scenario::support::verdict::{count, verdict};
use anyhow::{bail, Result};
use kmatrix_proto::{ScenarioResult, Status};
use std::time::Duration;

/// `trace-cmd --version` prints its version and the usage, and exits 255 (3.1.6).
pub const TRACE_CMD: Tool =
    Tool { version_exit: 255, ..Tool::asking("trace-cmd", "/usr/bin/trace-cmd", "trace-cmd", &["--version"]) };
const REQ: Req = TRACE_CMD.req();
const OPENAT_EVENT: &str = "syscalls/sys_enter_openat";
/// How long trace-cmd may take to stop by itself once the `-P` process has exited.
const STOP_WAIT: Duration = Duration::from_secs(20);

/// One entry of `trace-cmd report`: `openat-loop-88 [000] 2.865478: function: do_sys_openat2`.
#[derive(Debug, PartialEq)]
struct Entry {
    comm: String,
    pid: i32,
    event: String,
    body: String,
}

fn parse_report(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let open = l.find(" [")?;
            let (task, rest) = (l[..open].trim(), &l[open + 2..]);
            let (cpu, rest) = rest.split_once(']')?;
            if cpu.is_empty() || !cpu.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (comm, pid) = task.rsplit_once('-')?;
            let pid = pid.parse().ok()?;
            let (_time, rest) = rest.trim_start().split_once(": ")?;
            let (event, body) = rest.split_once(':')?;
            Some(Entry { comm: comm.to_string(), pid, event: event.trim().to_string(), body: body.trim().to_string() })
        })
        .collect()
}

/// What one recording of `openat-loop N` gave: its pid and account, what went wrong around it,
/// and the report.
struct Recorded {
    pid: i32,
    summary: Summary,
    problems: Vec<String>,
    entries: Vec<Entry>,
    report: String,
    /// With `-P`: whether trace-cmd stopped by itself when the process exited (else SIGINT).
    stopped_itself: Option<bool>,
}

impl Recorded {
    /// The verdict on `counts` and the recording's problems, its detail the scenario's `fields`
    /// with the workload's pid, the report's size and how trace-cmd stopped, its excerpt the
    /// report's head.
    fn verdict(self, ctx: &Ctx, counts: Vec<kmatrix_proto::Count>, fields: serde_json::Value) -> ScenarioResult {
        let mut r = verdict(ctx.id(), counts, self.problems);
        let mut detail = serde_json::json!({
            "pid": self.pid,
            "entries": self.entries.len(),
            "stopped_itself": self.stopped_itself,
        });
        if let (Some(d), serde_json::Value::Object(f)) = (detail.as_object_mut(), fields) {
            d.extend(f);
        }
        r.detail = TRACE_CMD.detail(detail);
        r.with_excerpt(&excerpt::head(&self.report, 12))
    }
}

/// `trace-cmd report -i trace.dat` in `dir`, or the failed result.
fn report(ctx: &Ctx, dir: &Workdir) -> Step<(Vec<Entry>, String)> {
    let out = step!(dir.step(
        ctx,
        &TRACE_CMD,
        &["/usr/bin/trace-cmd", "report", "-i", "trace.dat"],
        "trace-cmd report failed"
    ));
    Ok(Ok((parse_report(&out.stdout), out.stdout)))
}

/// `trace-cmd record <args> -P <pid> -o trace.dat` on the agent's gated `openat-loop N PATH`:
/// released once `ready(pid)` reads true in tracefs, stopped with SIGINT once the workload ended.
fn record_pid(
    ctx: &mut Ctx,
    dir: &Workdir,
    n: u64,
    path: &str,
    args: &[&str],
    ready: impl Fn(&Ctx, i32) -> bool,
) -> Step<Recorded> {
    ctx.tfs.remember_settings()?;
    let mut w = openat_loop::start(n, path)?;
    let pid = w.pid();
    w.wait_at_gate(Duration::from_secs(10))?;
    let pid_s = pid.to_string();
    let mut argv = vec!["/usr/bin/trace-cmd", "record"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["-P", &pid_s, "-o", "trace.dat"]);
    let mut tc = dir.start(&argv)?;
    let leader = tc.pid();
    // Ready when tracefs is set up for the pid and trace-cmd's recorders (one process per CPU,
    // in its process group) hold their trace_pipe_raw open and wait on it: released earlier, a
    // short workload's data is lost now and then (trace-cmd 3.1.6, see the module docs).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let recording = || {
        let helpers = host_tool::group_helpers(leader);
        helpers.iter().filter(|&&p| host_tool::waits_on(p, "trace_pipe_raw")).count() >= cpus
    };
    let set_up = || ready(ctx, pid) && recording();
    if !host_tool::wait_ready(&mut tc, MINUTE, set_up)? {
        let _ = tc.signal(libc::SIGINT);
        let out = tc.finish(Duration::from_secs(10))?.outcome;
        let why =
            format!("trace-cmd record -P {pid} did not set up tracing for the workload ({})", host_tool::ended(&out));
        return Ok(Err(host_tool::failed(ctx, &TRACE_CMD, Status::Fail, why, &out)));
    }
    w.release()?;
    let done = w.finish(ctx.timeout()?)?;
    let stopped_itself = host_tool::wait_ready(&mut tc, STOP_WAIT, || false).is_ok() && tc.has_exited()?;
    if !stopped_itself {
        tc.signal(libc::SIGINT)?;
    }
    step!(host_tool::checked(ctx, &TRACE_CMD, tc.finish(MINUTE)?.outcome, "trace-cmd record failed"));
    let (entries, report) = match report(ctx, dir)? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    let mut problems = crate::scenario::support::gated::workload_problems(&done);
    let summary = openat_loop::account(&done, &mut problems);
    Ok(Ok(Recorded { pid, summary, problems, entries, report, stopped_itself: Some(stopped_itself) }))
}

/// `trace-cmd record <args> -F <copy of openat-loop> N PATH -o trace.dat`: trace-cmd starts the
/// workload; its pid is the one the report names `openat-loop`.
fn record_cmd(ctx: &mut Ctx, dir: &Workdir, n: u64, args: &[&str]) -> Step<Recorded> {
    ctx.tfs.remember_settings()?;
    let [prog, ns, file] = dir.openat_loop(n)?;
    let mut argv = vec!["/usr/bin/trace-cmd", "record"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["-o", "trace.dat", "-F", &prog, &ns, &file]);
    let rec = step!(dir.step(ctx, &TRACE_CMD, &argv, "trace-cmd record -F failed"));
    let (entries, report) = match report(ctx, dir)? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    let mut problems = Vec::new();
    let summary = host_tool::openat_summary(&rec.stdout, &mut problems);
    let pids: std::collections::BTreeSet<i32> =
        entries.iter().filter(|e| e.comm == "openat-loop").map(|e| e.pid).collect();
    if pids.len() > 1 {
        problems.push(format!("the report names {} openat-loop pids: {pids:?}", pids.len()));
    }
    let pid = pids.iter().next().copied().unwrap_or(0);
    Ok(Ok(Recorded { pid, summary, problems, entries, report, stopped_itself: None }))
}

/// The seeds' `trace-cmd record -p function -P <pid>`, with `-l` on the openat function, on the
/// agent's gated `openat-loop N`: `trace-cmd report` lists exactly N calls, all of that pid.
// trace-cmd drives set_ftrace_pid, 2.6.30.
pub const RECORD_PID: Scenario = Meta::new("tool.trace-cmd.record_pid", "2.6.30")
    .summary(
        "trace-cmd record -p function -l <openat function> -P <pid> on openat-loop N: report lists N calls of \
         that pid, no other entry",
    )
    .requires(&[FUNCTION_TRACER, Req::Program(OPENAT_LOOP), REQ])
    .params(&[("count", "100"), ("path", "/tmp/kmatrix-openat"), ("function", "")])
    .run(function_pid);

fn function_pid(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path, openat) = openat_loop::prepare(ctx)?;
    // `function`: another function to record instead (one the workload does not call N times
    // makes the count fail).
    let sym = ctx.params.get("function").filter(|f| !f.is_empty()).cloned().unwrap_or_else(|| openat.to_string());
    let sym = sym.as_str();
    let dir = Workdir::new()?;
    let ready = |ctx: &Ctx, pid: i32| {
        let read = |f: &str| ctx.tfs.read(f).map(|t| t.trim().to_string()).unwrap_or_default();
        read("current_tracer") == "function"
            && read("set_ftrace_pid").lines().any(|l| l.trim() == pid.to_string())
            && read("tracing_on") == "1"
    };
    match record_pid(ctx, &dir, n, &path, &["-p", "function", "-l", sym], ready)? {
        Ok(rec) => Ok(function_verdict(ctx, n, sym, rec)),
        Err(r) => Ok(r),
    }
}

/// The seeds' `trace-cmd record -p function ./hello`, filtered as trace-cmd-record(1) `-F` does
/// and with `-l` on the openat function, on `openat-loop N`: N calls, all of the workload.
// trace-cmd drives set_ftrace_pid, 2.6.30.
pub const RECORD_CMD: Scenario = Meta::new("tool.trace-cmd.record_cmd", "2.6.30")
    .summary(
        "trace-cmd record -p function -l <openat function> -F openat-loop N: report lists N calls, all of the workload",
    )
    .requires(&[FUNCTION_TRACER, Req::Program(OPENAT_LOOP), REQ])
    .params(&[("count", "100")])
    .run(function_cmd);

fn function_cmd(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let sym = openat_loop::symbol(ctx)?;
    let dir = Workdir::new()?;
    match record_cmd(ctx, &dir, n, &["-p", "function", "-l", sym])? {
        Ok(rec) => Ok(function_verdict(ctx, n, sym, rec)),
        Err(r) => Ok(r),
    }
}

fn function_verdict(ctx: &Ctx, n: u64, sym: &str, rec: Recorded) -> ScenarioResult {
    let mine = rec.entries.iter().filter(|e| e.pid == rec.pid && e.event == "function" && e.body == sym).count();
    let mut counts =
        openat_loop::counts(n, &rec.summary, format!("{sym} calls of the workload pid in the report"), mine as u64);
    counts.push(count(
        "report entries of other pids",
        0,
        rec.entries.iter().filter(|e| e.pid != rec.pid).count() as u64,
    ));
    rec.verdict(ctx, counts, serde_json::json!({ "symbol": sym }))
}

/// trace-cmd-record(1) `-e syscalls:sys_enter_openat` on `openat-loop N`: exactly N events of
/// the workload, each with its filename pointer. `mode=P` (default) records the agent's gated
/// workload with `-P <pid>`; `mode=F` lets trace-cmd start it with `-F`, which trace-cmd 3.1.6
/// loses now and then (its recorders start after a fast child has run; see docs/seeds.md).
// trace-cmd drives set_event_pid, 4.4.
pub const SYS_ENTER_OPENAT: Scenario = Meta::new("tool.trace-cmd.sys_enter_openat", "4.4")
    .summary("trace-cmd record -e syscalls:sys_enter_openat -P <pid> on openat-loop N: report lists N events with the workload's filename pointer")
    .requires(&[Req::Tracefs, Req::Event(OPENAT_EVENT), Req::File("set_event_pid"), Req::Program(OPENAT_LOOP), REQ])
    .params(&[("count", "100"), ("path", "/tmp/kmatrix-openat"), ("mode", "P")])
    .run(sys_enter_openat);

fn sys_enter_openat(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let mode = ctx.params.get("mode").map(String::as_str).unwrap_or("P").to_string();
    let dir = Workdir::new()?;
    let args = ["-e", "syscalls:sys_enter_openat"];
    let rec = match mode.as_str() {
        "P" => {
            let path = openat_loop::target_path(ctx)?;
            let ready = |ctx: &Ctx, pid: i32| {
                let read = |f: &str| ctx.tfs.read(f).map(|t| t.trim().to_string()).unwrap_or_default();
                read(&format!("events/{OPENAT_EVENT}/enable")) == "1"
                    && read("set_event_pid").lines().any(|l| l.trim() == pid.to_string())
                    && read("tracing_on") == "1"
            };
            record_pid(ctx, &dir, n, &path, &args, ready)?
        }
        "F" => record_cmd(ctx, &dir, n, &args)?,
        other => bail!("parameter mode={other:?}: P (the agent's workload, -P) or F (trace-cmd starts it)"),
    };
    let rec = match rec {
        Ok(rec) => rec,
        Err(r) => return Ok(r),
    };
    let events: Vec<&Entry> =
        rec.entries.iter().filter(|e| e.pid == rec.pid && e.event == "sys_enter_openat").collect();
    let ptr = format!("filename: {:#x}", rec.summary.ptr);
    let with_ptr = events.iter().filter(|e| e.body.contains(&ptr)).count() as u64;
    let mut counts =
        openat_loop::counts(n, &rec.summary, "sys_enter_openat events of the workload pid", events.len() as u64);
    counts.push(count(format!("events with the workload's {ptr}"), n, with_ptr));
    // Other tasks' events are not judged: the kernel drops an exiting pid from set_event_pid,
    // so trace-cmd's own openat calls while it stops are recorded too.
    Ok(rec.verdict(ctx, counts, serde_json::json!({ "mode": mode })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `trace-cmd report` of trace-cmd 3.1.6 on Debian 6.1 (heads of two recordings).
    const REPORT: &str = "cpus=1
     openat-loop-88    [000]     2.865478: function:             do_sys_openat2
     openat-loop-100   [000]     5.451047: sys_enter_openat:     dfd: 0xffffff9c, filename: 0x7fff60bc69d2, flags: 0x00080000, mode: 0x00000000
  kworker/0:1-HP-12    [000]     5.9: function: do_sys_openat2
";

    #[test]
    fn report_entries() {
        let e = parse_report(REPORT);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            Entry { comm: "openat-loop".into(), pid: 88, event: "function".into(), body: "do_sys_openat2".into() }
        );
        assert_eq!(e[1].event, "sys_enter_openat");
        assert!(e[1].body.contains("filename: 0x7fff60bc69d2"));
        assert_eq!((e[2].comm.as_str(), e[2].pid), ("kworker/0:1-HP", 12));
    }
}
