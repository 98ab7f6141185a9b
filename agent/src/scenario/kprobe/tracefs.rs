//! `kprobe.tracefs.*`: entry and return probes on the openat path defined through
//! `kprobe_events` (Documentation/trace/kprobetrace.rst), counted in `trace` and in
//! `kprobe_profile`, each entry carrying the workload's argument or return value.
//!
//! The run is shared with `kprobe.maxactive.*` (`maxactive.rs`), which only adds `r<N>:`.

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::support::gated::trace_problems;
use crate::scenario::support::openat_loop;
use crate::scenario::support::probe_events::KPROBE_EVENTS;
use crate::scenario::support::probe_events::{entries_of, profile_of, run_probe, GROUP};
use crate::scenario::support::verdict::count;
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

/// `p:kmatrix/openat <sym> dfd=%di:s32 path=+0(%si):ustring`, filtered to the workload's pid:
/// exactly N entries in `trace` whose path matches the workload's, and N hits, 0 misses in
/// `kprobe_profile`.
// kprobe_events with memory fetch args and $retval: 2.6.33; the `ustring` type is used
// when the README has it (5.5) and `string` before.
pub const OPENAT: Scenario = Meta::new("kprobe.tracefs.openat", "2.6.33")
    .summary(
        "p: on the openat function with fetch args (filename as a user string): N hits in \
        kprobe_profile, 0 misses, every entry with the workload's path",
    )
    .requires(&[KPROBE_EVENTS])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(|ctx| openat_probe(ctx, false, None));

/// `r:kmatrix/openat_ret <sym> ret=$retval:s64`: N entries returning the workload's fd.
// kprobe_events with $retval: 2.6.33.
pub const OPENAT_RETVAL: Scenario = Meta::new("kprobe.tracefs.openat_retval", "2.6.33")
    .summary(
        "r: on the openat function with $retval: N hits, 0 misses, every entry returning \
        the workload's fd",
    )
    .requires(&[KPROBE_EVENTS])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(|ctx| openat_probe(ctx, true, None));

/// An entry probe, or with `ret` a return probe (`r<maxactive>:` with `maxactive`, which the
/// kernel must echo back in `kprobe_events`), on the openat function for `openat-loop N`.
pub fn openat_probe(ctx: &mut Ctx, ret: bool, maxactive: Option<u32>) -> Result<ScenarioResult> {
    let (n, path, sym) = openat_loop::prepare(ctx)?;
    let event = match (ret, maxactive) {
        (false, _) => "openat",
        (true, None) => "openat_ret",
        (true, Some(_)) => "openat_rmax",
    };
    let kind = match maxactive {
        Some(m) => format!("r{m}"),
        None => "r".to_string(),
    };
    let definition = if ret {
        format!("{kind}:{GROUP}/{event} {sym} ret=$retval:s64")
    } else {
        // `ustring` reads user memory; kernels before it only have `string`.
        let readme = ctx.tfs.read("README").unwrap_or_default();
        let string = if readme.contains("ustring") { "ustring" } else { "string" };
        // The first two arguments' registers on this architecture (%di/%si, %x0/%x1).
        let [r0, r1, ..] = crate::arch::ARG_REGS;
        format!("p:{GROUP}/{event} {sym} dfd={r0}:s32 path=+0({r1}):{string}")
    };
    openat_loop::fit_buffer(ctx, n, 160)?;
    let attach = Instant::now();
    let w = openat_loop::start(n, &path)?;
    let ev = format!("{GROUP}/{event}");
    // Disarmed through the fd opened before: the profile counts every hit, the agent's too.
    let a = run_probe(ctx, w, attach, "kprobe_events", &definition, &ev)?;

    let text = ctx.tfs.read("trace")?;
    let (profile_text, prof) = profile_of(ctx, GROUP, event)?;
    let events_text = ctx.tfs.read("kprobe_events")?;
    let parsed = trace::parse(&text);
    let mut problems = trace_problems(&a.done, parsed.lost);
    let summary = openat_loop::account(&a.done, &mut problems);
    let mine = entries_of(&parsed, a.pid, event);
    // Each entry must carry the workload's argument: the path it opened, or the fd it got.
    let (arg, want) = if ret { ("ret", summary.fd.to_string()) } else { ("path", path.clone()) };
    let matching = mine.iter().filter(|e| e.arg(arg) == Some(want.as_str())).count() as u64;

    if let Some(m) = maxactive {
        let echoed = format!("r{m}:{GROUP}/{event} ");
        if !events_text.lines().any(|l| l.starts_with(&echoed)) {
            problems.push(format!("kprobe_events does not echo {echoed:?}: {:?}", events_text.trim()));
        }
    }
    let mut counts = openat_loop::counts(n, &summary, format!("{ev} entries for the workload pid"), mine.len() as u64);
    counts.extend([
        count(format!("{ev} entries with {arg}={want}"), n, matching),
        count("trace entries in total", n, parsed.entries.len() as u64),
        count("kprobe_profile hits", n, prof.hits),
        count("kprobe_profile misses", 0, prof.misses),
    ]);
    let mut r = a.verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({
        "symbol": sym,
        "definition": definition,
        "kprobe_events": events_text.trim(),
        "pid": a.pid,
        "kprobe_profile": profile_text.trim(),
    });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}
