//! ftrace tracer scenarios on the global instance: available tracers; the function tracer with
//! function and pid filters, alone and with `func_stack_trace` + `sym-offset` stacks; the
//! function_graph tracer with `set_graph_function` (one call per line, nested calls with
//! durations, and the `funcgraph-retval` option); and the seeds' `echo irq > current_tracer`.

use super::common::{release_and_disarm, trace_problems, workload_problems, Armed};
use super::{count, ms, openat, verdict, Ctx, Req, Scenario};
use crate::excerpt;
use crate::tracefs::graph::{self, Kind};
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::{ScenarioResult, Status};
use std::fs::File;
use std::time::Instant;

pub const ALL: [&'static dyn Scenario; 7] = [
    &TracersAvailable,
    &FunctionOpenat,
    &FunctionStackTrace,
    &FunctionGraphOpenat,
    &FunctionGraphNested,
    &FunctionGraphRetval,
    &IrqTracer,
];

/// `available_tracers` lists nop, function and function_graph.
pub struct TracersAvailable;

impl Scenario for TracersAvailable {
    fn id(&self) -> &'static str {
        "ftrace.tracers.available"
    }

    fn summary(&self) -> &'static str {
        "available_tracers lists nop, function and function_graph"
    }

    fn since(&self) -> &'static str {
        // function_graph, the newest of the three, came in 2.6.29.
        "2.6.29"
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

/// A gated openat-loop with the function or function_graph tracer armed on it: what every
/// tracer scenario here does between choosing its options and reading `trace`.
///
/// Start `openat-loop N PATH`, let `setup` write filters and options, set the workload's pid,
/// switch to `tracer`, release the workload and stop recording (tracing_on 0, through an fd
/// opened before, so the stop adds no openat of the agent's own; a tracer change would empty
/// the buffer).
fn run_tracer(
    ctx: &mut Ctx,
    n: u64,
    path: &str,
    tracer: &str,
    setup: impl FnOnce(&mut Ctx) -> Result<()>,
) -> Result<Armed> {
    let attach = Instant::now();
    let w = openat::start(n, path)?;
    setup(ctx)?;
    ctx.tfs.write("set_ftrace_pid", &w.pid().to_string())?;
    let on: File = ctx.tfs.open_write("tracing_on")?;
    ctx.tfs.write("current_tracer", tracer)?;
    release_and_disarm(ctx, w, attach, |ctx| Ok(ctx.tfs.write_fd(&on, "tracing_on", "0")?))
}

/// The function tracer, filtered to the openat function and the workload's pid, records exactly
/// one entry per openat call.
pub struct FunctionOpenat;

impl Scenario for FunctionOpenat {
    fn id(&self) -> &'static str {
        "ftrace.function.openat"
    }

    fn summary(&self) -> &'static str {
        "function tracer with set_ftrace_filter on the openat function and set_ftrace_pid: N entries"
    }

    fn since(&self) -> &'static str {
        // set_ftrace_pid came in 2.6.30.
        "2.6.30"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
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
        let (n, path, sym) = openat::prepare(ctx)?;
        openat::fit_buffer(ctx, n, 128)?;
        let t = run_tracer(ctx, n, &path, "function", |ctx| Ok(ctx.tfs.write("set_ftrace_filter", sym)?))?;
        let text = ctx.tfs.read("trace")?;
        let parsed = trace::parse(&text);
        let prefix = format!("{sym} <-");
        let hits =
            parsed.entries.iter().filter(|e| e.pid == t.pid && (e.body.starts_with(&prefix) || e.body == sym)).count()
                as u64;
        let problems = trace_problems(&t.done, parsed.lost);
        let calls = openat::summary(&t.done.stdout).map(|s| s.calls).unwrap_or(0);
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, calls),
                count(format!("function entries of {sym} for the workload pid"), n, hits),
                count("trace entries in total", n, parsed.entries.len() as u64),
            ],
            problems,
        );
        t.timings(&mut r);
        r.detail = serde_json::json!({ "symbol": sym, "pid": t.pid, "path": path });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}

/// The seeds' function trace: function tracer on the openat function with `func_stack_trace`
/// and `sym-offset` set. Each of the N entries names its caller with an offset and is followed
/// by a `<stack trace>` whose frames, past the ftrace trampoline the unwinder starts in, all
/// read `symbol+0xoff/0xsize`, from the traced function down to the syscall entry
/// (`do_syscall_64`).
pub struct FunctionStackTrace;

impl Scenario for FunctionStackTrace {
    fn id(&self) -> &'static str {
        "ftrace.function.stacktrace"
    }

    fn summary(&self) -> &'static str {
        "function tracer + func_stack_trace + sym-offset on the openat function: N entries, N stacks with \
         symbol+offset frames reaching do_syscall_64"
    }

    fn since(&self) -> &'static str {
        // The func_stack_trace option of the function tracer came in 2.6.30.
        "2.6.30"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_20
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::Tracer("function"),
            Req::File("set_ftrace_filter"),
            Req::File("set_ftrace_pid"),
            Req::File("options/func_stack_trace"),
            Req::File("options/sym-offset"),
            Req::Program(openat::OPENAT_LOOP),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let (n, path, sym) = openat::prepare(ctx)?;
        openat::fit_buffer(ctx, n, 1024)?;
        let t = run_tracer(ctx, n, &path, "function", |ctx| {
            ctx.tfs.write("set_ftrace_filter", sym)?;
            ctx.tfs.set_option("func_stack_trace", true)?;
            ctx.tfs.set_option("sym-offset", true)?;
            Ok(())
        })?;
        let text = ctx.tfs.read("trace")?;
        let parsed = trace::parse(&text);
        // With sym-offset: `do_sys_openat2+0x4/0x140 <-__x64_sys_openat+0x55/0x80`.
        let entries: Vec<&trace::Entry> = parsed
            .entries
            .iter()
            .filter(|e| e.pid == t.pid && e.body != "<stack trace>")
            .filter(|e| trace::frame_symbol(e.body.split(" <-").next().unwrap_or("")).0 == sym)
            .collect();
        let with_offsets = entries
            .iter()
            .filter(|e| {
                let (own, caller) = e.body.split_once(" <-").unwrap_or((e.body, ""));
                trace::frame_symbol(own).1 && trace::frame_symbol(caller).1
            })
            .count() as u64;
        let stacks: Vec<trace::Stack> = trace::stacks(&text).into_iter().filter(|s| s.pid == t.pid).collect();
        let symbolized = past_trampoline;
        let all_offsets = stacks
            .iter()
            .filter(|s| {
                let f = symbolized(s);
                !f.is_empty() && f.iter().all(|f| trace::frame_symbol(f).1)
            })
            .count() as u64;
        let start_at_sym =
            stacks.iter().filter(|s| symbolized(s).first().map(|f| trace::frame_symbol(f).0) == Some(sym)).count()
                as u64;
        let reach_entry =
            stacks.iter().filter(|s| s.frames.iter().any(|f| trace::frame_symbol(f).0 == "do_syscall_64")).count()
                as u64;
        let problems = trace_problems(&t.done, parsed.lost);
        let calls = openat::summary(&t.done.stdout).map(|s| s.calls).unwrap_or(0);
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, calls),
                count(format!("function entries of {sym} for the workload pid"), n, entries.len() as u64),
                count("entries naming function and caller as symbol+0xoff/0xsize", n, with_offsets),
                count("stack traces for the workload pid", n, stacks.len() as u64),
                count("stacks whose frames past the ftrace trampoline all read symbol+0xoff/0xsize", n, all_offsets),
                count(format!("stacks whose first frame past the trampoline is {sym}"), n, start_at_sym),
                count("stacks reaching do_syscall_64", n, reach_entry),
            ],
            problems,
        );
        t.timings(&mut r);
        let first: Vec<&str> = stacks.first().map(|s| s.frames.clone()).unwrap_or_default();
        r.detail = serde_json::json!({ "symbol": sym, "pid": t.pid, "first_stack": first });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 16)))
    }
}

/// The frames of a function-tracer stack past the ftrace trampoline the unwinder starts in,
/// printed `[FTRACE TRAMPOLINE]` (6.12) or as a bare address (6.1).
fn past_trampoline<'a>(s: &trace::Stack<'a>) -> Vec<&'a str> {
    s.frames.iter().copied().skip_while(|f| *f == "[FTRACE TRAMPOLINE]" || f.starts_with("0x")).collect()
}

/// The function_graph tracer with `set_graph_function` and `set_ftrace_filter` on the openat
/// function, the workload's pid and `max_graph_depth` 1 records exactly one call line per
/// openat call, each with a parsed duration.
pub struct FunctionGraphOpenat;

impl Scenario for FunctionGraphOpenat {
    fn id(&self) -> &'static str {
        "ftrace.function_graph.openat"
    }

    fn summary(&self) -> &'static str {
        "function_graph with set_graph_function on the openat function, max_graph_depth 1: N call lines, \
         each with a duration"
    }

    fn since(&self) -> &'static str {
        // max_graph_depth came in 3.15.
        "3.15"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
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
        let (n, path, sym) = openat::prepare(ctx)?;
        openat::fit_buffer(ctx, n, 96)?;
        let t = run_tracer(ctx, n, &path, "function_graph", |ctx| graph_only(ctx, sym))?;
        let text = ctx.tfs.read("trace")?;
        let lines = graph::parse(&text);
        let mine = calls_of(&lines, t.pid, sym);
        let timed = mine.iter().filter(|l| l.duration_us.is_some_and(|d| d > 0.0)).count() as u64;
        let durations: Vec<f64> = mine.iter().filter_map(|l| l.duration_us).collect();
        let summary = openat::summary(&t.done.stdout).unwrap_or_default();
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, summary.calls),
                count(format!("function_graph calls of {sym} for the workload pid"), n, mine.len() as u64),
                count("calls with a parsed duration > 0", n, timed),
                count("function_graph call lines in total", n, lines.len() as u64),
            ],
            workload_problems(&t.done),
        );
        t.timings(&mut r);
        r.detail = serde_json::json!({
            "symbol": sym,
            "pid": t.pid,
            "path": path,
            "duration_us": stats(&durations),
        });
        Ok(r.with_excerpt(&excerpt::head(&text, 16)))
    }
}

/// function_graph set up for `sym` alone: one line per call, each with its task and pid.
fn graph_only(ctx: &mut Ctx, sym: &str) -> Result<()> {
    ctx.tfs.write("set_graph_function", sym)?;
    // Patch only this function: without it the tracer hooks all ~40k, seconds under TCG.
    ctx.tfs.write("set_ftrace_filter", sym)?;
    // Depth 1: the function itself and none of its callees, so each call is one line.
    ctx.tfs.write("max_graph_depth", "1")?;
    // Print TASK/PID on each line so the count can be checked against the pid.
    ctx.tfs.set_option("funcgraph-proc", true)?;
    Ok(())
}

/// The one-line calls of `sym` by `pid` in a function_graph trace.
fn calls_of<'l, 'a>(lines: &'l [graph::Line<'a>], pid: i32, sym: &str) -> Vec<&'l graph::Line<'a>> {
    lines.iter().filter(|l| l.pid == Some(pid) && l.kind == Kind::Leaf(sym)).collect()
}

/// min / median / max of durations, for the detail.
fn stats(v: &[f64]) -> serde_json::Value {
    let mut s: Vec<f64> = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match (s.first(), s.get(s.len() / 2), s.last()) {
        (Some(min), Some(median), Some(max)) => serde_json::json!({ "min": min, "median": median, "max": max }),
        _ => serde_json::Value::Null,
    }
}

/// Callees of the openat function that may be traced under it; which exist (and are not
/// inlined) differs by kernel, so the scenario takes those in available_filter_functions.
const CHILDREN: &[&str] = &["getname", "getname_flags", "build_open_flags", "do_filp_open"];

/// function_graph with `set_graph_function` on the openat function and `set_ftrace_filter` on it
/// and its traceable callees, with `funcgraph-tail`: N calls, each an open line, at least one
/// timed child and a timed close naming the function, children's time within the parent's.
pub struct FunctionGraphNested;

impl Scenario for FunctionGraphNested {
    fn id(&self) -> &'static str {
        "ftrace.function_graph.nested"
    }

    fn summary(&self) -> &'static str {
        "function_graph on the openat function and its callees: N nested calls, timed children within \
         the timed parent"
    }

    fn since(&self) -> &'static str {
        // The funcgraph-tail option came in 3.19.
        "3.19"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_20
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::Tracer("function_graph"),
            Req::File("set_graph_function"),
            Req::File("set_ftrace_pid"),
            Req::File("options/funcgraph-tail"),
            Req::Program(openat::OPENAT_LOOP),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let (n, path, sym) = openat::prepare(ctx)?;
        let children: Vec<&str> = CHILDREN.iter().copied().filter(|c| openat::traceable(ctx, c)).collect();
        anyhow::ensure!(!children.is_empty(), "none of {CHILDREN:?} in available_filter_functions");
        openat::fit_buffer(ctx, n, 512)?;
        let t = run_tracer(ctx, n, &path, "function_graph", |ctx| {
            ctx.tfs.write("set_graph_function", sym)?;
            // One write: words split over writes on one fd would run together.
            let filter: Vec<&str> = std::iter::once(sym).chain(children.iter().copied()).collect();
            ctx.tfs.write("set_ftrace_filter", &filter.join(" "))?;
            ctx.tfs.set_option("funcgraph-proc", true)?;
            ctx.tfs.set_option("funcgraph-tail", true)?;
            Ok(())
        })?;
        let text = ctx.tfs.read("trace")?;
        let lines: Vec<graph::Line> = graph::parse(&text).into_iter().filter(|l| l.pid == Some(t.pid)).collect();
        let calls = nested_calls(&lines, sym);
        let complete = calls.iter().filter(|c| c.duration_us.is_some()).count() as u64;
        let with_child = calls.iter().filter(|c| !c.children.is_empty()).count() as u64;
        let children_timed = calls
            .iter()
            .filter(|c| !c.children.is_empty() && c.children.iter().all(|(_, d)| d.is_some_and(|d| d > 0.0)))
            .count() as u64;
        let within = calls
            .iter()
            .filter(|c| {
                let kids: f64 = c.children.iter().filter_map(|(_, d)| *d).sum();
                c.duration_us.is_some_and(|p| kids <= p)
            })
            .count() as u64;
        let seen: std::collections::BTreeSet<&str> =
            calls.iter().flat_map(|c| c.children.iter().map(|(name, _)| *name)).collect();
        let summary = openat::summary(&t.done.stdout).unwrap_or_default();
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, summary.calls),
                count(format!("{sym}() {{ opens for the workload pid"), n, calls.len() as u64),
                count(format!("calls closed by a timed `}} /* {sym} */`"), n, complete),
                count("calls with at least one traced child", n, with_child),
                count("calls whose children all have a duration > 0", n, children_timed),
                count("calls whose children's time is within the parent's", n, within),
            ],
            workload_problems(&t.done),
        );
        t.timings(&mut r);
        let parents: Vec<f64> = calls.iter().filter_map(|c| c.duration_us).collect();
        r.detail = serde_json::json!({
            "symbol": sym,
            "filter_children": children,
            "children_seen": seen,
            "pid": t.pid,
            "parent_us": stats(&parents),
        });
        Ok(r.with_excerpt(&excerpt::head(&text, 24)))
    }
}

/// One call of the graph function with its direct children, from its open to its close.
struct Call<'a> {
    duration_us: Option<f64>,
    children: Vec<(&'a str, Option<f64>)>,
}

/// Group lines into calls of `sym`: an open at depth 0, leaves at depth 1, a close naming `sym`.
fn nested_calls<'a>(lines: &[graph::Line<'a>], sym: &str) -> Vec<Call<'a>> {
    let mut out: Vec<Call> = Vec::new();
    let mut open = false;
    for l in lines {
        match &l.kind {
            Kind::Open(name) if *name == sym && l.depth == 0 => {
                out.push(Call { duration_us: None, children: Vec::new() });
                open = true;
            }
            Kind::Leaf(name) | Kind::Open(name) if open && l.depth == 1 => {
                if let Some(c) = out.last_mut() {
                    c.children.push((name, l.duration_us));
                }
            }
            Kind::Close(Some(name)) if open && *name == sym && l.depth == 0 => {
                if let Some(c) = out.last_mut() {
                    c.duration_us = l.duration_us;
                }
                open = false;
            }
            _ => {}
        }
    }
    out
}

/// function_graph with the `funcgraph-retval` option: each of the N calls of the openat function
/// prints the fd the workload got (`do_sys_openat2(); /* = 0x3 */`).
pub struct FunctionGraphRetval;

impl Scenario for FunctionGraphRetval {
    fn id(&self) -> &'static str {
        "ftrace.function_graph.retval"
    }

    fn summary(&self) -> &'static str {
        "function_graph with funcgraph-retval on the openat function: N calls, each printing the returned fd"
    }

    fn since(&self) -> &'static str {
        // "function_graph: Support recording and printing the return value of function", 6.5.
        "6.5"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_20
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::Tracer("function_graph"),
            Req::TraceOption { name: "funcgraph-retval", config: "CONFIG_FUNCTION_GRAPH_RETVAL", since: "6.5" },
            Req::File("set_graph_function"),
            Req::File("max_graph_depth"),
            Req::Program(openat::OPENAT_LOOP),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let (n, path, sym) = openat::prepare(ctx)?;
        openat::fit_buffer(ctx, n, 128)?;
        let t = run_tracer(ctx, n, &path, "function_graph", |ctx| {
            graph_only(ctx, sym)?;
            ctx.tfs.set_option("funcgraph-retval", true)?;
            Ok(())
        })?;
        let text = ctx.tfs.read("trace")?;
        let summary = openat::summary(&t.done.stdout).unwrap_or_default();
        let lines = graph::parse(&text);
        let mine = calls_of(&lines, t.pid, sym);
        let with_retval = mine.iter().filter(|l| l.retval.is_some()).count() as u64;
        let fd_ok = mine.iter().filter(|l| l.retval.and_then(retval_number) == Some(summary.fd)).count() as u64;
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, summary.calls),
                count(format!("function_graph calls of {sym} for the workload pid"), n, mine.len() as u64),
                count("calls printing a return value", n, with_retval),
                count(format!("calls returning the workload's fd {}", summary.fd), n, fd_ok),
            ],
            workload_problems(&t.done),
        );
        t.timings(&mut r);
        r.detail = serde_json::json!({ "symbol": sym, "pid": t.pid, "fd": summary.fd });
        Ok(r.with_excerpt(&excerpt::head(&text, 16)))
    }
}

/// `0x3`, `3`, `-2` → the number (hex unless it is an error code, per funcgraph-retval-hex).
fn retval_number(s: &str) -> Option<i64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|v| v as i64),
        None => s.parse().ok(),
    }
}

/// The seeds' `echo irq > current_tracer`: there is no tracer named `irq` (interrupt-off
/// latency is `irqsoff`, CONFIG_IRQSOFF_TRACER), so the kernel must refuse the write with EINVAL
/// and keep `nop`. The seed's command fails on every kernel; this records exactly how.
pub struct IrqTracer;

impl Scenario for IrqTracer {
    fn id(&self) -> &'static str {
        "ftrace.tracer.irq_refused"
    }

    fn summary(&self) -> &'static str {
        "the seeds' `echo irq > current_tracer`: refused with EINVAL (no such tracer), current_tracer stays nop"
    }

    fn since(&self) -> &'static str {
        // current_tracer and its EINVAL for unknown names date from ftrace's merge, 2.6.27.
        "2.6.27"
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::File("current_tracer")]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let tracers = ctx.tfs.read("available_tracers")?;
        let listed = tracers.split_whitespace().any(|t| t == "irq");
        let attach = Instant::now();
        let outcome = ctx.tfs.write("current_tracer", "irq");
        let attach_ms = ms(attach);
        let current = ctx.tfs.read("current_tracer")?.trim().to_string();
        let errno = outcome.as_ref().err().map(|e| e.errno);
        let mut problems = Vec::new();
        if listed {
            problems.push("available_tracers lists a tracer named irq".to_string());
        }
        match errno {
            Some(libc::EINVAL) => {}
            Some(e) => problems.push(format!("write refused with {}, expected EINVAL", crate::sys::errno_text(e))),
            None => problems.push("kernel accepted `irq` as current_tracer".to_string()),
        }
        if current != "nop" {
            problems.push(format!("current_tracer is {current:?} after the write, expected nop"));
        }
        let mut r = verdict(self.id(), Vec::new(), problems);
        r.errno = errno;
        r.timings.attach_ms = attach_ms;
        let irqsoff = tracers.split_whitespace().any(|t| t == "irqsoff");
        r.detail = serde_json::json!({
            "available_tracers": tracers.split_whitespace().collect::<Vec<_>>(),
            "irqsoff_available": irqsoff,
        });
        if r.status == Status::Pass {
            r.reason = format!(
                "refused: {} (no tracer named irq; interrupt latency tracing is irqsoff, {})",
                crate::sys::errno_text(libc::EINVAL),
                if irqsoff { "available here" } else { "not built here: CONFIG_IRQSOFF_TRACER" }
            );
        }
        Ok(r.with_excerpt(&tracers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_calls_group_children_under_their_parent() {
        let text = "\
 0)  openat--80    |               |  do_sys_openat2() {
 0)  openat--80    |   1.500 us    |    getname();
 0)  openat--80    |   3.456 us    |    do_filp_open();
 0)  openat--80    | + 12.345 us   |  } /* do_sys_openat2 */
 0)  openat--80    |               |  do_sys_openat2() {
 0)  openat--80    |   2.000 us    |    do_filp_open();
";
        let lines = graph::parse(text);
        let calls = nested_calls(&lines, "do_sys_openat2");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].duration_us, Some(12.345));
        assert_eq!(calls[0].children, vec![("getname", Some(1.5)), ("do_filp_open", Some(3.456))]);
        assert_eq!(calls[1].duration_us, None);
    }

    #[test]
    fn retvals_read_hex_and_decimal() {
        assert_eq!(retval_number("0x3"), Some(3));
        assert_eq!(retval_number("-2"), Some(-2));
        assert_eq!(retval_number("x"), None);
    }
}
