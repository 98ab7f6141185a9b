//! `tool.gdb.*`: the notes' gdb session on `hello` (`b main`, `info frame`, `p message`,
//! `disas main`) with the host's gdb (Debian's gdb), built on ptrace(2) and breakpoints in the
//! guest's kernel.

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::host_tool::{step, Tool, Workdir};
use crate::scenario::support::verdict::{count, verdict};
use crate::scenario::support::workload::HELLO_DYN;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

pub const GDB: Tool = Tool::asking("gdb", "/usr/bin/gdb", "gdb", &["--version"]);

/// The notes' gdb session on hello, in batch mode: a breakpoint on hello_greet stops the program
/// exactly N times (`Breakpoint 1, hello_greet (message=...)`), `p message` prints the greeting,
/// `info frame` describes the frame, the program then exits normally, and `disas main` shows the
/// call to hello_greet.
// ptrace breakpoints are as old as Linux; PTRACE_GETREGSET-era gdb needs 2.6.33.
pub const HELLO: Scenario = Meta::new("tool.gdb.hello", "2.6.33")
    .summary("gdb -batch on hello-dyn N: break hello_greet stops N times, p message, info frame, exits normally, disas main calls hello_greet")
    .requires(&[Req::Program(HELLO_DYN), GDB.req()])
    .params(&[("count", "3"), ("program", HELLO_DYN)])
    .run(hello);

fn hello(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    anyhow::ensure!(n <= 50, "parameter count={n}: at most 50 breakpoint stops");
    let dir = Workdir::new()?;
    let prog = dir.copy_program(ctx, HELLO_DYN)?;
    let ns = n.to_string();
    let mut argv = vec!["/usr/bin/gdb", "-batch", "-nx", "-ex", "break hello_greet", "-ex", "run", "-ex", "p message"];
    argv.extend_from_slice(&["-ex", "info frame"]);
    for _ in 0..n {
        argv.extend_from_slice(&["-ex", "continue"]);
    }
    argv.extend_from_slice(&["-ex", "disas main", "--args", &prog, &ns]);
    let out = step!(dir.step(ctx, &GDB, &argv, "gdb -batch failed"));
    let text = &out.stdout;
    let stops = text.lines().filter(|l| l.starts_with("Breakpoint 1, hello_greet")).count() as u64;
    let printed = text.lines().filter(|l| l.starts_with("$1 = ") && l.contains("hello, world!")).count() as u64;
    let exited = u64::from(text.contains("exited normally"));
    let frame = u64::from(text.contains("Stack level 0, frame at"));
    let calls = u64::from(text.lines().any(|l| l.contains("call") && l.contains("<hello_greet>")));
    let mut r = verdict(
        ctx.id(),
        vec![
            count("stops at the hello_greet breakpoint", n, stops),
            count("p message printing the greeting", 1, printed),
            count("info frame describing frame 0", 1, frame),
            count("program exited normally", 1, exited),
            count("disas main showing the call to hello_greet", 1, calls),
        ],
        Vec::new(),
    );
    r.detail = GDB.detail(serde_json::json!({}));
    Ok(r.with_excerpt(&excerpt::head(text, 30)))
}
