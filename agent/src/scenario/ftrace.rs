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
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !listed.contains(w))
            .map(|w| format!("{w} not listed"))
            .collect();
        let found = wanted.len() - missing.len();
        let mut r = verdict(
            self.id(),
            vec![count("required tracers listed", wanted.len() as u64, found as u64)],
            missing,
        );
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
        let hits = parsed
            .entries
            .iter()
            .filter(|e| e.pid == pid && (e.body.starts_with(&prefix) || e.body == sym))
            .count() as u64;
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
