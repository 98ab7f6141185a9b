//! ftrace tracer scenarios on the global instance: available tracers, and the function and
//! function_graph tracers with function and pid filters on the openat workload.

use super::{count, ms, openat, verdict, Ctx, Req, Scenario};
use crate::excerpt;
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

pub const ALL: [&'static dyn Scenario; 3] = [&TracersAvailable, &FunctionOpenat, &FunctionGraphOpenat];

/// `available_tracers` lists nop, function and function_graph.
pub struct TracersAvailable;

impl Scenario for TracersAvailable {
    fn id(&self) -> &'static str {
        "ftrace.tracers.available"
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::File("available_tracers")]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let text = ctx.tfs.read("available_tracers")?;
        let listed: Vec<&str> = text.split_whitespace().collect();
        let wanted = ["nop", "function", "function_graph"];
        let missing: Vec<String> =
            wanted.iter().filter(|w| !listed.contains(w)).map(|w| format!("{w} not listed")).collect();
        let found = wanted.len() - missing.len();
        let mut r =
            verdict(self.id(), vec![count("required tracers listed", wanted.len() as u64, found as u64)], missing);
        r.detail = serde_json::json!({ "available_tracers": listed });
        Ok(r.with_excerpt(&text))
    }
}

/// The function tracer, filtered to the openat function and the workload's pid, records exactly
/// one entry per openat call.
pub struct FunctionOpenat;

impl Scenario for FunctionOpenat {
    fn id(&self) -> &'static str {
        "ftrace.function.openat"
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::Tracer("function"),
            Req::File("set_ftrace_filter"),
            Req::File("set_ftrace_pid"),
            Req::Program(openat::OPENAT_LOOP),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.count(100)?;
        let path = openat::target_path(ctx)?;
        let sym = openat::symbol(ctx)?;
        openat::fit_buffer(ctx, n, 128)?;
        let attach = Instant::now();
        let mut w = openat::start(n, &path)?;
        let pid = w.pid();
        let tfs = &ctx.tfs;
        tfs.write("set_ftrace_filter", sym)?;
        tfs.write("set_ftrace_pid", &pid.to_string())?;
        // Opened now: later writes must not add openat calls of the agent's own.
        let on = tfs.open_write("tracing_on")?;
        tfs.write("current_tracer", "function")?;
        let attach_ms = ms(attach);
        let run = Instant::now();
        w.release()?;
        let done = w.finish(ctx.timeout()?)?;
        // Stop recording without switching tracer: a tracer change empties the buffer.
        tfs.write_fd(&on, "tracing_on", "0")?;
        let run_ms = ms(run);
        let text = tfs.read("trace")?;
        let parsed = trace::parse(&text);
        let prefix = format!("{sym} <-");
        let hits =
            parsed.entries.iter().filter(|e| e.pid == pid && (e.body.starts_with(&prefix) || e.body == sym)).count()
                as u64;
        let mut problems = Vec::new();
        if !done.success() {
            problems.push(format!("workload ended with {}: {}", done.describe(), done.stderr));
        }
        if parsed.lost > 0 {
            problems.push(format!("{} events lost", parsed.lost));
        }
        let calls = openat::summary(&done.stdout).map(|s| s.calls).unwrap_or(0);
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, calls),
                count(format!("function entries of {sym} for the workload pid"), n, hits),
                count("trace entries in total", n, parsed.entries.len() as u64),
            ],
            problems,
        );
        r.timings.attach_ms = attach_ms;
        r.timings.run_ms = run_ms;
        r.detail = serde_json::json!({ "symbol": sym, "pid": pid, "path": path });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}

/// The function_graph tracer with `set_graph_function` and `set_ftrace_filter` on the openat
/// function, the workload's pid and `max_graph_depth` 1 records exactly one call line per
/// openat call.
pub struct FunctionGraphOpenat;

impl Scenario for FunctionGraphOpenat {
    fn id(&self) -> &'static str {
        "ftrace.function_graph.openat"
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::Tracer("function_graph"),
            Req::File("set_graph_function"),
            Req::File("set_ftrace_pid"),
            Req::File("max_graph_depth"),
            Req::Program(openat::OPENAT_LOOP),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.count(100)?;
        let path = openat::target_path(ctx)?;
        let sym = openat::symbol(ctx)?;
        openat::fit_buffer(ctx, n, 96)?;
        let attach = Instant::now();
        let mut w = openat::start(n, &path)?;
        let pid = w.pid();
        ctx.tfs.write("set_graph_function", sym)?;
        // Patch only this function: without it the tracer hooks all ~38k, seconds under TCG.
        ctx.tfs.write("set_ftrace_filter", sym)?;
        ctx.tfs.write("set_ftrace_pid", &pid.to_string())?;
        // Depth 1: the function itself and none of its callees, so each call is one line.
        ctx.tfs.write("max_graph_depth", "1")?;
        // Print TASK/PID on each line so the count can be checked against the pid.
        ctx.tfs.set_option("funcgraph-proc", true)?;
        let on = ctx.tfs.open_write("tracing_on")?;
        ctx.tfs.write("current_tracer", "function_graph")?;
        let attach_ms = ms(attach);
        let run = Instant::now();
        w.release()?;
        let done = w.finish(ctx.timeout()?)?;
        ctx.tfs.write_fd(&on, "tracing_on", "0")?;
        let run_ms = ms(run);
        let text = ctx.tfs.read("trace")?;
        let calls: Vec<(Option<i32>, &str)> =
            text.lines().filter(|l| !l.starts_with('#')).filter_map(graph_call).collect();
        let leaf = format!("{sym}();");
        let open = format!("{sym}() {{");
        let hits = calls.iter().filter(|(p, f)| *p == Some(pid) && (*f == leaf || *f == open)).count() as u64;
        let mut problems = Vec::new();
        if !done.success() {
            problems.push(format!("workload ended with {}: {}", done.describe(), done.stderr));
        }
        let summary = openat::summary(&done.stdout).unwrap_or_default();
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, summary.calls),
                count(format!("function_graph calls of {sym} for the workload pid"), n, hits),
                count("function_graph call lines in total", n, calls.len() as u64),
            ],
            problems,
        );
        r.timings.attach_ms = attach_ms;
        r.timings.run_ms = run_ms;
        r.detail = serde_json::json!({ "symbol": sym, "pid": pid, "path": path });
        Ok(r.with_excerpt(&excerpt::head(&text, 16)))
    }
}

/// A function_graph line ` 0)  openat--80    |   5.123 us    |  do_sys_openat2();` as
/// (pid, call text); None for lines that are not calls (context-switch banners, `}` lines).
fn graph_call(line: &str) -> Option<(Option<i32>, &str)> {
    let mut cols = line.split('|');
    let proc_col = cols.next()?;
    let call = cols.next_back()?.trim();
    if !(call.ends_with(';') || call.ends_with('{')) {
        return None;
    }
    let pid = proc_col.split_whitespace().last().and_then(|t| t.rsplit_once('-')).and_then(|(_, p)| p.parse().ok());
    Some((pid, call))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_lines_give_pid_and_call() {
        let l = " 0)  openat--80    |   5.123 us    |  do_sys_openat2();";
        assert_eq!(graph_call(l), Some((Some(80), "do_sys_openat2();")));
        assert_eq!(graph_call(" 0)  openat--80    |   + 12.1 us   |  }"), None);
        assert_eq!(graph_call(" ------------------------------------------"), None);
    }
}
