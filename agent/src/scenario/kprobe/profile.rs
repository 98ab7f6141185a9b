//! `kprobe.profile.*`: what `kprobe_profile` counts besides hits: the misses of a return probe
//! that had no instance free (Documentation/trace/kprobetrace.rst, "Event Profiling").
//!
//! Hits alone are checked by every tracefs kprobe scenario (`tracefs.rs`).

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::{release_and_disarm, workload_problems};
use crate::scenario::support::probe_events::KPROBE_EVENTS;
use crate::scenario::support::probe_events::{profile_of, GROUP};
use crate::scenario::support::verdict::count;
use crate::scenario::support::workload;
use crate::tracefs::trace;
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

/// The syscall pause-crowd blocks in: pause(2), or on arm64 (no pause) the ppoll glibc's
/// pause() makes.
const PAUSE_SYSCALL: &str = if cfg!(target_arch = "aarch64") { "ppoll" } else { "pause" };

/// A return probe with `maxactive` 1 on the pause syscall while K processes sleep in it at
/// once (`pause-crowd K`): the first entry takes the only return instance, the other K-1 find
/// none. `kprobe_profile` shows exactly 1 hit and K-1 misses, and `trace` the one return.
// r<maxactive>: 4.12; the miss column of kprobe_profile is as old as kprobe_events.
pub const MISSED: Scenario = Meta::new("kprobe.profile.missed", "4.12")
    .summary("r1: on the pause syscall with K tasks inside at once: kprobe_profile counts 1 hit and K-1 misses")
    .requires(&[KPROBE_EVENTS, Req::Syntax("r[maxactive]"), Req::Program(workload::PAUSE_CROWD)])
    .params(&[("count", "4")])
    .run(missed);

fn missed(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let k = ctx.declared_count()?;
    anyhow::ensure!((2..=64).contains(&k), "count={k}: pause-crowd takes 2..=64 children");
    let syms = crate::arch::syscall_symbols(PAUSE_SYSCALL);
    let syms: Vec<&str> = syms.iter().map(String::as_str).collect();
    let sym = crate::kallsyms::first_of(&syms)?.with_context(|| format!("none of {syms:?} in /proc/kallsyms"))?;
    let event = "pause_r1";
    let definition = format!("r1:{GROUP}/{event} {sym}");
    let attach = Instant::now();
    let w = crate::process::spawn(&[workload::PAUSE_CROWD.to_string(), k.to_string()], true)?;
    ctx.tfs.write("kprobe_events", &definition)?;
    let enable_rel = format!("events/{GROUP}/{event}/enable");
    ctx.tfs.write(&enable_rel, "1")?;
    let a = release_and_disarm(ctx, w, attach, |ctx| Ok(ctx.tfs.write(&enable_rel, "0")?))?;
    let text = ctx.tfs.read("trace")?;
    let (profile_text, prof) = profile_of(ctx, GROUP, event)?;
    let s = workload::summary(&a.done.stdout, "pause-crowd")?;
    let parsed = trace::parse(&text);
    let returns = parsed.entries.iter().filter(|e| e.body.starts_with(&format!("{event}: "))).count() as u64;
    let problems = workload_problems(&a.done);
    let mut r = a.verdict(
        ctx.id(),
        vec![
            count("children blocked in pause at once", k, workload::num(&s, "paused")? as u64),
            count("kprobe_profile hits (returns with an instance)", 1, prof.hits),
            count("kprobe_profile misses (entries without an instance)", k - 1, prof.misses),
            count(format!("{event} entries in trace"), 1, returns),
        ],
        problems,
    );
    r.detail = serde_json::json!({ "symbol": sym, "definition": definition, "kprobe_profile": profile_text.trim() });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}
