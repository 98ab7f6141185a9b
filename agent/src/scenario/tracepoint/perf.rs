//! `tracepoint.perf.*`: a tracepoint counted through perf_event_open (PERF_TYPE_TRACEPOINT,
//! config = the event's id from tracefs; perf_event_open(2)).
//!
//! Not for tracepoints read through tracefs (`ftrace/event.rs`) or BPF (`bpf/tracepoint.rs`).

use crate::perf::{self, Attr};
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::openat_loop;
use crate::scenario::support::perf::{count_openat, open};
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;

/// `syscalls/sys_enter_openat` counted on openat-loop N: N.
// Syscall tracepoints, 2.6.33 (tracepoint perf events are older).
pub const SYS_ENTER_OPENAT: Scenario = Meta::new("tracepoint.perf.sys_enter_openat", "2.6.33")
    .summary("perf_event_open(PERF_TYPE_TRACEPOINT, id of syscalls/sys_enter_openat) on openat-loop N: counts N")
    .requires(&[Req::Tracefs, Req::Event("syscalls/sys_enter_openat"), Req::Pmu("tracepoint")])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(sys_enter_openat);

fn sys_enter_openat(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let id_text = ctx.tfs.read("events/syscalls/sys_enter_openat/id")?;
    let id: u64 = id_text.trim().parse().with_context(|| format!("events/.../id holds {id_text:?}"))?;
    let (mut r, pid, _) = count_openat(ctx, "sys_enter_openat counted".into(), |pid| {
        open(Attr::counter(perf::TYPE_TRACEPOINT, id), pid, None, &format!("tracepoint {id}"))
    })?;
    r.detail = serde_json::json!({ "tracepoint_id": id, "pid": pid });
    Ok(r)
}
