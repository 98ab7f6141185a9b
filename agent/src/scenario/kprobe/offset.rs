//! `kprobe.offset.*`: a kprobe at an offset into a function (`SYM+offs`,
//! Documentation/trace/kprobetrace.rst), which the kernel only takes on an instruction boundary.
//!
//! Probes at the function's start are `tracefs.rs`.

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::support::gated::{pid_filter, run_with_events, workload_problems};
use crate::scenario::support::openat_loop;
use crate::scenario::support::probe_events::KPROBE_EVENTS;
use crate::scenario::support::probe_events::{profile_of, GROUP};
use crate::scenario::support::verdict::count;
use crate::tracefs::trace;
use anyhow::{bail, Result};
use kmatrix_proto::{ScenarioResult, Status};
use std::time::Instant;

const MAX_OFFSET: u64 = 32;

/// A kprobe at `<sym>+<offset>`: offsets from 1 up are tried until the kernel accepts one (it
/// refuses offsets that are not instruction boundaries, or fall inside the ftrace call, with
/// EILSEQ); the first accepted is the start of the second instruction that can be probed, in
/// the prologue every call runs. N hits, each at that offset.
pub const OPENAT: Scenario = Meta::new("kprobe.offset.openat", "2.6.33")
    .summary("p: at <openat function>+<first accepted offset>, non-boundary offsets refused: N hits at that offset")
    .requires(&[KPROBE_EVENTS])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(openat);

fn openat(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path, sym) = openat_loop::prepare(ctx)?;
    let event = "openat_off";
    openat_loop::fit_buffer(ctx, n, 128)?;
    let attach = Instant::now();
    let w = openat_loop::start(n, &path)?;
    let mut refused: Vec<(u64, String)> = Vec::new();
    let mut accepted = None;
    for off in 1..=MAX_OFFSET {
        match ctx.tfs.write("kprobe_events", &format!("p:{GROUP}/{event} {sym}+{off}")) {
            Ok(()) => {
                accepted = Some(off);
                break;
            }
            Err(e) => refused.push((off, crate::sys::errno_name(e.errno))),
        }
    }
    let Some(off) = accepted else {
        bail!("the kernel refused every offset 1..={MAX_OFFSET} of {sym}: {refused:?}");
    };
    let ev = format!("{GROUP}/{event}");
    let filter = pid_filter(w.pid());
    let a = run_with_events(ctx, w, attach, &[(&ev, filter)])?;
    let pid = a.pid;
    let text = ctx.tfs.read("trace")?;
    let (_, prof) = profile_of(ctx, GROUP, event)?;
    let parsed = trace::parse(&text);
    // `openat_off: (do_sys_openat2+0x9/0x140)`.
    let place = format!("{event}: ({sym}+{off:#x}/");
    let at_offset = parsed.entries.iter().filter(|e| e.pid == pid && e.body.starts_with(&place)).count() as u64;
    let mut problems = workload_problems(&a.done);
    let summary = openat_loop::account(&a.done, &mut problems);
    let odd: Vec<&(u64, String)> = refused.iter().filter(|(_, e)| e != "EILSEQ" && e != "EINVAL").collect();
    if !odd.is_empty() {
        problems.push(format!("offsets refused with an errno other than EILSEQ/EINVAL: {odd:?}"));
    }
    let mut counts = openat_loop::counts(n, &summary, format!("{ev} entries at {sym}+{off:#x}"), at_offset);
    counts.extend([count("kprobe_profile hits", n, prof.hits), count("kprobe_profile misses", 0, prof.misses)]);
    let mut r = a.verdict(ctx.id(), counts, problems);
    if r.status == Status::Pass {
        r.reason = format!("probed {sym}+{off:#x}; refused before it: {refused:?}");
    }
    r.detail = serde_json::json!({ "symbol": sym, "offset": off, "refused": refused, "pid": pid });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}
