//! `ftrace.function.*`: the function tracer on the openat function, filtered with
//! `set_ftrace_filter` and `set_ftrace_pid`, alone and with the `func_stack_trace` and
//! `sym-offset` options (Documentation/trace/ftrace.rst, "function" and "trace_options"), and
//! the seeds' filter of four functions built with `>>` appends.
//!
//! Not for function_graph (`function_graph.rs`).

use crate::arch;
use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::trace_problems;
use crate::scenario::support::openat_loop;
use crate::scenario::support::tracer::run_tracer;
use crate::scenario::support::tracer::FUNCTION_TRACER;
use crate::scenario::support::verdict::count;
use crate::tracefs::trace;
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;

/// The function tracer, filtered to the openat function and the workload's pid, records exactly
/// one entry per openat call.
// set_ftrace_pid came in 2.6.30.
pub const OPENAT: Scenario = Meta::new("ftrace.function.openat", "2.6.30")
    .summary("function tracer with set_ftrace_filter on the openat function and set_ftrace_pid: N entries")
    .requires(&[FUNCTION_TRACER])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(openat);

fn openat(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path, sym) = openat_loop::prepare(ctx)?;
    openat_loop::fit_buffer(ctx, n, 128)?;
    let t = run_tracer(ctx, n, &path, "function", |ctx| Ok(ctx.tfs.write("set_ftrace_filter", sym)?))?;
    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let prefix = format!("{sym} <-");
    let hits =
        parsed.entries.iter().filter(|e| e.pid == t.pid && (e.body.starts_with(&prefix) || e.body == sym)).count()
            as u64;
    let mut problems = trace_problems(&t.done, parsed.lost);
    let (_, mut counts) =
        t.openat_counts(n, &mut problems, format!("function entries of {sym} for the workload pid"), hits);
    counts.push(count("trace entries in total", n, parsed.entries.len() as u64));
    let mut r = t.verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({ "symbol": sym, "pid": t.pid, "path": path });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}

/// func_stack_trace and sym-offset on: a stack after each entry, every symbol as
/// `symbol+0xoff/0xsize`.
fn stack_options(ctx: &mut Ctx) -> Result<()> {
    ctx.tfs.set_option("func_stack_trace", true)?;
    Ok(ctx.tfs.set_option("sym-offset", true)?)
}

/// What the two stack-trace scenarios need besides the openat workload: the function tracer and
/// its stack and offset options.
const STACK_REQS: &[Req] = &[FUNCTION_TRACER, Req::File("options/func_stack_trace"), Req::File("options/sym-offset")];

/// The function tracer on the openat function with `func_stack_trace` and `sym-offset` set (the
/// stack trace example of Documentation/trace/ftrace.rst, "func_stack_trace"). Each of the N
/// entries names its caller with an offset and is followed by a `<stack trace>` whose frames,
/// past the ftrace trampoline the unwinder starts in, all read `symbol+0xoff/0xsize`, from the
/// traced function down to the syscall entry (`do_syscall_64`).
// The func_stack_trace option of the function tracer came in 2.6.30.
pub const STACKTRACE: Scenario = Meta::new("ftrace.function.stacktrace", "2.6.30")
    .summary(
        "function tracer + func_stack_trace + sym-offset on the openat function: N entries, N stacks with \
        symbol+offset frames reaching the syscall entry (do_syscall_64, do_el0_svc on arm64)",
    )
    .requires(STACK_REQS)
    .on_openat_loop(openat_loop::PARAMS_20)
    .run(stacktrace);

fn stacktrace(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path, sym) = openat_loop::prepare(ctx)?;
    openat_loop::fit_buffer(ctx, n, 1024)?;
    let t = run_tracer(ctx, n, &path, "function", |ctx| {
        ctx.tfs.write("set_ftrace_filter", sym)?;
        stack_options(ctx)
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
    let all_offsets = stacks
        .iter()
        .filter(|s| {
            let f = past_trampoline(s);
            !f.is_empty() && f.iter().all(|f| trace::frame_symbol(f).1)
        })
        .count() as u64;
    let start_at_sym =
        stacks.iter().filter(|s| past_trampoline(s).first().map(|f| trace::frame_symbol(f).0) == Some(sym)).count()
            as u64;
    let reach_entry =
        stacks.iter().filter(|s| s.frames.iter().any(|f| trace::frame_symbol(f).0 == arch::SYSCALL_ENTRY)).count()
            as u64;
    let mut problems = trace_problems(&t.done, parsed.lost);
    let (_, mut counts) = t.openat_counts(
        n,
        &mut problems,
        format!("function entries of {sym} for the workload pid"),
        entries.len() as u64,
    );
    counts.extend([
        count("entries naming function and caller as symbol+0xoff/0xsize", n, with_offsets),
        count("stack traces for the workload pid", n, stacks.len() as u64),
        count("stacks whose frames past the ftrace trampoline all read symbol+0xoff/0xsize", n, all_offsets),
        count(format!("stacks whose first frame past the trampoline is {sym}"), n, start_at_sym),
        count(format!("stacks reaching {}", arch::SYSCALL_ENTRY), n, reach_entry),
    ]);
    let mut r = t.verdict(ctx.id(), counts, problems);
    let first: Vec<&str> = stacks.first().map(|s| s.frames.clone()).unwrap_or_default();
    r.detail = serde_json::json!({ "symbol": sym, "pid": t.pid, "first_stack": first });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 16)))
}

/// The close path of close(2): `file_close_fd` from 6.8 (close_fd stays for other callers),
/// `close_fd` from 5.11, `__close_fd` before.
const CLOSE_PATH: [&str; 3] = ["file_close_fd", "close_fd", "__close_fd"];

/// read(2) and write(2) below their entry: `ksys_read`/`ksys_write` from 4.17; before, the
/// syscall functions themselves (`SyS_read`, as 4.15's available_filter_functions lists them).
const READ_PATH: [&str; 2] = ["ksys_read", "SyS_read"];
const WRITE_PATH: [&str; 2] = ["ksys_write", "SyS_write"];

/// The seeds' "kernel함수 trace" script: `echo do_sys_openat2 > set_ftrace_filter`, then `echo
/// ksys_read >>`, `ksys_write >>`, `close_fd >>` (with the names this kernel has: the openat
/// function, and close(2)'s path), `func_stack_trace` and `sym-offset` on, the function tracer
/// on `openat-loop N`. The filter lists exactly the four; the workload's entries are exactly
/// what it does once released: N opens, N + 1 closes (its fds and the start gate), 1 write (its
/// summary line), no read (it was blocked in the gate's read before tracing began), each entry
/// with its stack.
// set_ftrace_filter appends and func_stack_trace date from 2.6.30.
pub const FILTER_APPENDS: Scenario = Meta::new("ftrace.function.filter_appends", "2.6.30")
    .summary(
        "set_ftrace_filter built with > and >> (open, ksys_read, ksys_write, close path) + func_stack_trace on          openat-loop N: exactly N opens, N+1 closes, 1 write, 0 reads, a stack each",
    )
    .requires(STACK_REQS)
    .on_openat_loop(openat_loop::PARAMS_20)
    .run(filter_appends);

fn filter_appends(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path, open) = openat_loop::prepare(ctx)?;
    let pick = |names: &[&'static str]| -> Result<&'static str> {
        names
            .iter()
            .copied()
            .find(|f| openat_loop::traceable(ctx, f))
            .with_context(|| format!("none of {names:?} in available_filter_functions"))
    };
    let (close, read, write) = (pick(&CLOSE_PATH)?, pick(&READ_PATH)?, pick(&WRITE_PATH)?);
    let functions = [open, read, write, close];
    openat_loop::fit_buffer(ctx, n, 2048)?;
    let mut listed = String::new();
    let t = run_tracer(ctx, n, &path, "function", |ctx| {
        // `>` then `>>`: truncate, then one write each to a file opened for appending.
        ctx.tfs.truncate("set_ftrace_filter")?;
        for f in functions {
            ctx.tfs.write("set_ftrace_filter", f)?;
        }
        listed = ctx.tfs.read("set_ftrace_filter")?;
        stack_options(ctx)
    })?;
    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let hits = |f: &str| {
        parsed
            .entries
            .iter()
            .filter(|e| e.pid == t.pid && e.body != "<stack trace>")
            .filter(|e| trace::frame_symbol(e.body.split(" <-").next().unwrap_or("")).0 == f)
            .count() as u64
    };
    let entries = parsed.entries.iter().filter(|e| e.pid == t.pid && e.body != "<stack trace>").count() as u64;
    let stacks = trace::stacks(&text).into_iter().filter(|s| s.pid == t.pid).count() as u64;
    let in_filter: std::collections::BTreeSet<&str> =
        listed.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split_whitespace().next()).collect();
    let mut problems = trace_problems(&t.done, parsed.lost);
    let summary = openat_loop::account(&t.done, &mut problems);
    let mut counts = openat_loop::made(n, &summary);
    counts.extend([
        count(
            "functions listed in set_ftrace_filter (the four written)",
            4,
            functions.iter().filter(|f| in_filter.contains(*f)).count() as u64,
        ),
        count("set_ftrace_filter lines", 4, in_filter.len() as u64),
        count(format!("{open} entries of the workload"), n, hits(open)),
        count(format!("{close} entries of the workload (its fds and the gate)"), n + 1, hits(close)),
        count(format!("{write} entries of the workload (its summary line)"), 1, hits(write)),
        count(format!("{read} entries of the workload"), 0, hits(read)),
        count("entries of the workload in total", 2 * n + 2, entries),
        count("stack traces of the workload (one per entry)", entries, stacks),
    ]);
    let mut r = t.verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({ "functions": functions, "set_ftrace_filter": in_filter, "pid": t.pid });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 16)))
}

/// The frames of a function-tracer stack past the ftrace trampoline the unwinder starts in,
/// printed `[FTRACE TRAMPOLINE]` (6.12) or as a bare address (6.1).
fn past_trampoline<'a>(s: &trace::Stack<'a>) -> Vec<&'a str> {
    // x86 prints the trampoline as `[FTRACE TRAMPOLINE]` or a bare address; arm64 as the
    // `ftrace_caller` entry code.
    let trampoline =
        |f: &str| f == "[FTRACE TRAMPOLINE]" || f.starts_with("0x") || trace::frame_symbol(f).0 == "ftrace_caller";
    s.frames.iter().copied().skip_while(|f| trampoline(f)).collect()
}
