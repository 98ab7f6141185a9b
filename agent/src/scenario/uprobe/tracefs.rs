//! `uprobe.tracefs.*`: uprobes defined through `uprobe_events`
//! (Documentation/trace/uprobetracer.rst) on the `hello` workload: an entry probe on
//! `hello_greet` and a return probe on `hello_add` reading `$retval`.
//!
//! `hello N` calls hello_greet N times and hello_add(i, i + 1) for i in 0..N, so the return
//! values are exactly 1, 3, 5, ..., 2N-1 in order. Not for the perf PMU (`perf_pmu.rs`).

use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::trace_problems;
use crate::scenario::support::probe_events::UPROBE_EVENTS;
use crate::scenario::support::probe_events::{entries_of, run_probe, GROUP};
use crate::scenario::support::verdict::count;
use crate::scenario::support::workload;
use crate::{elf, excerpt};
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;
use std::path::Path;
use std::time::Instant;

/// `p:kmatrix/hello_greet /bin/hello:<offset>`: N entries and N `uprobe_profile` hits.
// uprobe_events came in 3.5.
pub const HELLO: Scenario = Meta::new("uprobe.tracefs.hello", "3.5")
    .summary("p: uprobe on hello_greet (file offset from hello's ELF symbols): N entries, N uprobe_profile hits")
    .requires(&[UPROBE_EVENTS, Req::Program(workload::HELLO)])
    .params(&[("count", "10")])
    .run(|ctx| hello_probe(ctx, false));

/// `r:kmatrix/hello_add_ret /bin/hello:<offset> ret=$retval:s32`: N entries returning 1, 3, 5,
/// ... in order.
// uretprobes in uprobe_events came in 3.10.
pub const HELLO_RETVAL: Scenario = Meta::new("uprobe.tracefs.hello_retval", "3.10")
    .summary("r: uretprobe on hello_add with $retval: N entries returning 1, 3, 5, ... in order")
    .requires(&[UPROBE_EVENTS, Req::Program(workload::HELLO)])
    .params(&[("count", "10")])
    .run(|ctx| hello_probe(ctx, true));

/// An entry probe on hello_greet, or with `ret` a return probe on hello_add, for `hello N`.
fn hello_probe(ctx: &mut Ctx, ret: bool) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let func = if ret { "hello_add" } else { "hello_greet" };
    let offset = elf::function_offset(Path::new(workload::HELLO), func)?;
    let event = if ret { format!("{func}_ret") } else { func.to_string() };
    let binary = workload::HELLO;
    let definition = if ret {
        format!("r:{GROUP}/{event} {binary}:{offset:#x} ret=$retval:s32")
    } else {
        format!("p:{GROUP}/{event} {binary}:{offset:#x}")
    };
    let attach = Instant::now();
    let w = workload::start_hello(n)?;
    let ev = format!("{GROUP}/{event}");
    let a = run_probe(ctx, w, attach, "uprobe_events", &definition, &ev)?;

    let text = ctx.tfs.read("trace")?;
    let profile_text = ctx.tfs.read("uprobe_profile")?;
    let parsed = crate::tracefs::trace::parse(&text);
    let mine = entries_of(&parsed, a.pid, &event);
    let hits =
        uprobe_hits(&profile_text, GROUP, &event).with_context(|| format!("{ev} missing from uprobe_profile"))?;
    let mut counts = vec![
        count("hello, world! lines printed", n, workload::greetings(&a.done.stdout)),
        count(format!("{ev} entries for the workload pid"), n, mine.len() as u64),
        count("trace entries in total", n, parsed.entries.len() as u64),
        count("uprobe_profile hits", n, hits),
    ];
    if ret {
        let expected: Vec<String> = (0..n).map(|i| (2 * i + 1).to_string()).collect();
        let seen: Vec<&str> = mine.iter().filter_map(|e| e.arg("ret")).collect();
        let matching = seen.iter().zip(&expected).filter(|(a, b)| **a == b.as_str()).count();
        counts.push(count("return values 1, 3, 5, ... in order", n, matching as u64));
    }
    let mut r = a.verdict(ctx.id(), counts, trace_problems(&a.done, parsed.lost));
    r.detail = serde_json::json!({
        "definition": definition,
        "file_offset": offset,
        "pid": a.pid,
        "uprobe_profile": profile_text.trim(),
    });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}

/// Hits of `group/event` in `uprobe_profile`, whose lines read `  <file> <event> <hits>`.
fn uprobe_hits(text: &str, group: &str, event: &str) -> Option<u64> {
    let full = format!("{group}/{event}");
    text.lines().find_map(|l| {
        let t: Vec<&str> = l.split_whitespace().collect();
        match t.as_slice() {
            [_, name, hits] if *name == event || *name == full => hits.parse().ok(),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uprobe_profile_lines() {
        let text = "  /bin/hello hello_greet                                         10\n";
        assert_eq!(uprobe_hits(text, "kmatrix", "hello_greet"), Some(10));
        assert_eq!(uprobe_hits(text, "kmatrix", "hello_add_ret"), None);
    }
}
