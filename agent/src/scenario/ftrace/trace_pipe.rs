//! `ftrace.trace_pipe.*`: reading the buffer through `trace_pipe`, which consumes what it
//! returns (Documentation/trace/ftrace.rst, "trace_pipe"), so `trace` is empty afterwards.
//!
//! The events' own scenario is `event.rs`; this file reads the same through the pipe.

use super::event;
use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::markers::{markers_in, order_problem, write_declared};
use crate::scenario::support::openat_loop;
use crate::scenario::support::verdict::{count, ms, verdict};
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

/// Markers read through `trace_pipe` are consumed: all `n` come out of the pipe, in order, and
/// `trace` is empty afterwards.
pub const MARKER: Scenario = Meta::new("ftrace.trace_pipe.marker", "2.6.27")
    .summary("N trace_marker strings read through trace_pipe: all N, in order, consumed from trace")
    .requires(&[Req::Tracefs, Req::File("trace_pipe")])
    .writes_markers()
    .run(marker);

fn marker(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, nonce, run) = write_declared(ctx, "trace_marker")?;
    let piped = ctx.tfs.drain_pipe("trace_pipe")?;
    let run_ms = ms(run);
    let (seen, _) = markers_in(&piped, &nonce);
    let left = trace::parse(&ctx.tfs.read("trace")?).entries.len() as u64;
    let mut r = verdict(
        ctx.id(),
        vec![
            count("markers read from trace_pipe", n, seen.len() as u64),
            count("entries left in trace after reading the pipe", 0, left),
        ],
        order_problem(&seen, n),
    );
    r.timings.run_ms = run_ms;
    r.detail = serde_json::json!({ "nonce": nonce });
    Ok(r.with_excerpt(&excerpt::head(&piped, 5)))
}

/// `ftrace.event.sys_enter_openat` read through `trace_pipe`: N entries, consumed.
// Syscall tracepoints (CONFIG_FTRACE_SYSCALLS) came in 2.6.33.
pub const SYS_ENTER_OPENAT: Scenario = Meta::new("ftrace.trace_pipe.sys_enter_openat", "2.6.33")
    .summary("syscalls/sys_enter_openat with a common_pid filter read through trace_pipe: N entries, consumed")
    .requires(&[Req::Tracefs, Req::Event(event::OPENAT), openat_loop::IN_IMAGE, Req::File("trace_pipe")])
    .params(openat_loop::PARAMS_100)
    .run(|ctx| event::sys_enter_openat_read(ctx, true));
