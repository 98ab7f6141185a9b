//! Running a gated `openat-loop` under the function or function_graph tracer: what every tracer
//! scenario of `ftrace/` does between choosing its filters and options and reading `trace`.
//!
//! Not for events (`gated::run_with_events`), which leave the tracer at `nop`.

use super::gated::{release_and_disarm, Armed};
use super::openat_loop;
use crate::scenario::meta::Ctx;
use crate::scenario::req::Req;
use anyhow::Result;
use std::fs::File;
use std::time::Instant;

/// The function tracer with its function and pid filters.
pub const FUNCTION_TRACER: Req =
    Req::All(&[Req::Tracefs, Req::Tracer("function"), Req::File("set_ftrace_filter"), Req::File("set_ftrace_pid")]);

/// The function_graph tracer with its graph function and pid filters.
pub const GRAPH_TRACER: Req = Req::All(&[
    Req::Tracefs,
    Req::Tracer("function_graph"),
    Req::File("set_graph_function"),
    Req::File("set_ftrace_pid"),
]);

/// Start `openat-loop N PATH`, let `setup` write filters and options, set the workload's pid,
/// switch to `tracer`, release the workload and stop recording (tracing_on 0, through an fd
/// opened before, so the stop adds no openat of the agent's own; a tracer change would empty
/// the buffer).
pub fn run_tracer(
    ctx: &mut Ctx,
    n: u64,
    path: &str,
    tracer: &str,
    setup: impl FnOnce(&mut Ctx) -> Result<()>,
) -> Result<Armed> {
    let attach = Instant::now();
    let w = openat_loop::start(n, path)?;
    setup(ctx)?;
    ctx.tfs.write("set_ftrace_pid", &w.pid().to_string())?;
    let on: File = ctx.tfs.open_write("tracing_on")?;
    ctx.tfs.write("current_tracer", tracer)?;
    release_and_disarm(ctx, w, attach, |ctx| Ok(ctx.tfs.write_fd(&on, "tracing_on", "0")?))
}
