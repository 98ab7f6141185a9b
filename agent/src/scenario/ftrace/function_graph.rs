//! `ftrace.function_graph.*`: the function_graph tracer with `set_graph_function` on the openat
//! function: one call per line with its duration, nested calls with timed children, and the
//! `funcgraph-retval` option (Documentation/trace/ftrace.rst, "function graph tracer").
//!
//! Not for the plain function tracer (`function.rs`).

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::workload_problems;
use crate::scenario::support::openat_loop;
use crate::scenario::support::tracer::run_tracer;
use crate::scenario::support::tracer::GRAPH_TRACER;
use crate::scenario::support::verdict::count;
use crate::tracefs::graph::{self, Kind};
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

/// The function_graph tracer with `set_graph_function` and `set_ftrace_filter` on the openat
/// function, the workload's pid and `max_graph_depth` 1 records exactly one call line per
/// openat call, each with a parsed duration.
// max_graph_depth came in 3.15.
pub const OPENAT: Scenario = Meta::new("ftrace.function_graph.openat", "3.15")
    .summary(
        "function_graph with set_graph_function on the openat function, max_graph_depth 1: N call lines, \
        each with a duration",
    )
    .requires(&[GRAPH_TRACER, Req::File("max_graph_depth")])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(openat);

fn openat(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path, sym) = openat_loop::prepare(ctx)?;
    openat_loop::fit_buffer(ctx, n, 96)?;
    let t = run_tracer(ctx, n, &path, "function_graph", |ctx| graph_only(ctx, sym))?;
    let text = ctx.tfs.read("trace")?;
    let lines = graph::parse(&text);
    let mine = calls_of(&lines, t.pid, sym);
    let timed = mine.iter().filter(|l| l.duration_us.is_some_and(|d| d > 0.0)).count() as u64;
    let durations: Vec<f64> = mine.iter().filter_map(|l| l.duration_us).collect();
    let mut problems = workload_problems(&t.done);
    let (_, mut counts) = t.openat_counts(
        n,
        &mut problems,
        format!("function_graph calls of {sym} for the workload pid"),
        mine.len() as u64,
    );
    counts.extend([
        count("calls with a parsed duration > 0", n, timed),
        count("function_graph call lines in total", n, lines.len() as u64),
    ]);
    let mut r = t.verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({
        "symbol": sym,
        "pid": t.pid,
        "path": path,
        "duration_us": stats(&durations),
    });
    Ok(r.with_excerpt(&excerpt::head(&text, 16)).with_capture(CAPTURE, &text))
}

/// function_graph set up for `sym` alone: one line per call, each with its task and pid.
pub(super) fn graph_only(ctx: &mut Ctx, sym: &str) -> Result<()> {
    ctx.tfs.write("set_graph_function", sym)?;
    // Patch only this function: without it the tracer hooks all ~40k, seconds under TCG.
    ctx.tfs.write("set_ftrace_filter", sym)?;
    // Depth 1: the function itself and none of its callees, so each call is one line.
    ctx.tfs.write("max_graph_depth", "1")?;
    // Print TASK/PID on each line so the count can be checked against the pid.
    ctx.tfs.set_option("funcgraph-proc", true)?;
    abstime(ctx)
}

/// The kernel's own timestamps on every line (`funcgraph-abstime`), so the capture's calls sit
/// at their real times in the artifact; a kernel without the option prints none (the artifact
/// then lays calls out by their durations and says so).
fn abstime(ctx: &mut Ctx) -> Result<()> {
    if ctx.tfs.exists("options/funcgraph-abstime") {
        ctx.tfs.set_option("funcgraph-abstime", true)?;
    }
    Ok(())
}

/// What a function_graph capture is, for its artifact.
const CAPTURE: &str = "ftrace function_graph trace (funcgraph-proc, funcgraph-abstime)";

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
// The funcgraph-tail option came in 3.19.
pub const NESTED: Scenario = Meta::new("ftrace.function_graph.nested", "3.19")
    .summary(
        "function_graph on the openat function and its callees: N nested calls, timed children within \
        the timed parent",
    )
    .requires(&[GRAPH_TRACER, Req::File("options/funcgraph-tail")])
    .on_openat_loop(openat_loop::PARAMS_20)
    .run(nested);

fn nested(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path, sym) = openat_loop::prepare(ctx)?;
    let children: Vec<&str> = CHILDREN.iter().copied().filter(|c| openat_loop::traceable(ctx, c)).collect();
    anyhow::ensure!(!children.is_empty(), "none of {CHILDREN:?} in available_filter_functions");
    openat_loop::fit_buffer(ctx, n, 512)?;
    let t = run_tracer(ctx, n, &path, "function_graph", |ctx| {
        ctx.tfs.write("set_graph_function", sym)?;
        // One write: words split over writes on one fd would run together.
        let filter: Vec<&str> = std::iter::once(sym).chain(children.iter().copied()).collect();
        ctx.tfs.write("set_ftrace_filter", &filter.join(" "))?;
        ctx.tfs.set_option("funcgraph-proc", true)?;
        ctx.tfs.set_option("funcgraph-tail", true)?;
        abstime(ctx)
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
    let mut problems = workload_problems(&t.done);
    let (_, mut counts) =
        t.openat_counts(n, &mut problems, format!("{sym}() {{ opens for the workload pid"), calls.len() as u64);
    counts.extend([
        count(format!("calls closed by a timed `}} /* {sym} */`"), n, complete),
        count("calls with at least one traced child", n, with_child),
        count("calls whose children all have a duration > 0", n, children_timed),
        count("calls whose children's time is within the parent's", n, within),
    ]);
    let mut r = t.verdict(ctx.id(), counts, problems);
    let parents: Vec<f64> = calls.iter().filter_map(|c| c.duration_us).collect();
    r.detail = serde_json::json!({
        "symbol": sym,
        "filter_children": children,
        "children_seen": seen,
        "pid": t.pid,
        "parent_us": stats(&parents),
    });
    Ok(r.with_excerpt(&excerpt::head(&text, 24)).with_capture(CAPTURE, &text))
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
            // A child that calls traced functions itself (getname → getname_flags on 5.4) opens
            // at depth 1 and is timed by its own close.
            Kind::Close(Some(name)) if open && l.depth == 1 => {
                if let Some(child) =
                    out.last_mut().and_then(|c| c.children.iter_mut().rev().find(|(n, d)| n == name && d.is_none()))
                {
                    child.1 = l.duration_us;
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
// "function_graph: Support recording and printing the return value of function", 6.5.
pub const RETVAL: Scenario = Meta::new("ftrace.function_graph.retval", "6.5")
    .summary("function_graph with funcgraph-retval on the openat function: N calls, each printing the returned fd")
    .requires(&[
        Req::Tracefs,
        Req::Tracer("function_graph"),
        Req::TraceOption { name: "funcgraph-retval", config: "CONFIG_FUNCTION_GRAPH_RETVAL", since: "6.5" },
        Req::File("set_graph_function"),
        Req::File("max_graph_depth"),
    ])
    .on_openat_loop(openat_loop::PARAMS_20)
    .run(retval);

fn retval(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path, sym) = openat_loop::prepare(ctx)?;
    openat_loop::fit_buffer(ctx, n, 128)?;
    let t = run_tracer(ctx, n, &path, "function_graph", |ctx| {
        graph_only(ctx, sym)?;
        ctx.tfs.set_option("funcgraph-retval", true)?;
        Ok(())
    })?;
    let text = ctx.tfs.read("trace")?;
    let mut problems = workload_problems(&t.done);
    let summary = openat_loop::account(&t.done, &mut problems);
    let lines = graph::parse(&text);
    let mine = calls_of(&lines, t.pid, sym);
    let with_retval = mine.iter().filter(|l| l.retval.is_some()).count() as u64;
    let fd_ok = mine.iter().filter(|l| l.retval.and_then(retval_number) == Some(summary.fd)).count() as u64;
    let mut counts = openat_loop::counts(
        n,
        &summary,
        format!("function_graph calls of {sym} for the workload pid"),
        mine.len() as u64,
    );
    counts.extend([
        count("calls printing a return value", n, with_retval),
        count(format!("calls returning the workload's fd {}", summary.fd), n, fd_ok),
    ]);
    let mut r = t.verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({ "symbol": sym, "pid": t.pid, "fd": summary.fd });
    Ok(r.with_excerpt(&excerpt::head(&text, 16)))
}

/// `0x3`, `3`, `-2` → the number (hex unless it is an error code, per funcgraph-retval-hex).
fn retval_number(s: &str) -> Option<i64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|v| v as i64),
        None => s.parse().ok(),
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

    /// Ubuntu 5.4's excerpt (getname calls the traced getname_flags): the nested child is timed
    /// by its close.
    #[test]
    fn a_child_with_children_of_its_own_is_timed_by_its_close() {
        let text = "   12.183569 |   0)  openat--132   |               |  do_sys_open() {
   12.183617 |   0)  openat--132   |               |    getname() {
   12.183628 |   0)  openat--132   | + 48.500 us   |      getname_flags();
   12.183688 |   0)  openat--132   | + 71.494 us   |    } /* getname */
   12.183709 |   0)  openat--132   | ! 120.645 us  |    do_filp_open();
   12.183840 |   0)  openat--132   | ! 289.332 us  |  } /* do_sys_open */
";
        let calls = nested_calls(&graph::parse(text), "do_sys_open");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].children, vec![("getname", Some(71.494)), ("do_filp_open", Some(120.645))]);
        assert_eq!(calls[0].duration_us, Some(289.332));
    }

    #[test]
    fn retvals_read_hex_and_decimal() {
        assert_eq!(retval_number("0x3"), Some(3));
        assert_eq!(retval_number("-2"), Some(-2));
        assert_eq!(retval_number("x"), None);
    }
}
