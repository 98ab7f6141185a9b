//! uprobe scenarios through tracefs `uprobe_events` on the `hello` workload: an entry probe on
//! `hello_greet` and a return probe on `hello_add` reading `$retval`.
//!
//! `hello N` calls hello_greet N times and hello_add(i, i + 1) for i in 0..N, so the return
//! values are exactly 1, 3, 5, ..., 2N-1 in order.

use super::common::{entries_of, run_probe, trace_problems};
use super::workload::{self, HELLO};
use super::{count, verdict, Ctx, Req, Scenario};
use crate::{elf, excerpt};
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;
use std::path::Path;
use std::time::Instant;

pub const ALL: [&'static dyn Scenario; 2] = [&HelloProbe { ret: false }, &HelloProbe { ret: true }];

const GROUP: &str = "kmatrix";

pub struct HelloProbe {
    ret: bool,
}

impl HelloProbe {
    fn function(&self) -> &'static str {
        if self.ret {
            "hello_add"
        } else {
            "hello_greet"
        }
    }
}

impl Scenario for HelloProbe {
    fn id(&self) -> &'static str {
        if self.ret {
            "uprobe.tracefs.hello_retval"
        } else {
            "uprobe.tracefs.hello"
        }
    }

    fn summary(&self) -> &'static str {
        if self.ret {
            "r: uretprobe on hello_add with $retval: N entries returning 1, 3, 5, ... in order"
        } else {
            "p: uprobe on hello_greet (file offset from hello's ELF symbols): N entries, N uprobe_profile hits"
        }
    }

    fn since(&self) -> &'static str {
        if self.ret {
            // uretprobes in uprobe_events came in 3.10.
            "3.10"
        } else {
            // uprobe_events came in 3.5.
            "3.5"
        }
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "10")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::File("uprobe_events"), Req::File("uprobe_profile"), Req::Program(HELLO)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let func = self.function();
        let offset = elf::function_offset(Path::new(HELLO), func)?;
        let event = if self.ret { format!("{func}_ret") } else { func.to_string() };
        let definition = if self.ret {
            format!("r:{GROUP}/{event} {HELLO}:{offset:#x} ret=$retval:s32")
        } else {
            format!("p:{GROUP}/{event} {HELLO}:{offset:#x}")
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
        if self.ret {
            let expected: Vec<String> = (0..n).map(|i| (2 * i + 1).to_string()).collect();
            let seen: Vec<&str> = mine.iter().filter_map(|e| e.arg("ret")).collect();
            let matching = seen.iter().zip(&expected).filter(|(a, b)| **a == b.as_str()).count();
            counts.push(count("return values 1, 3, 5, ... in order", n, matching as u64));
        }
        let mut r = verdict(self.id(), counts, trace_problems(&a.done, parsed.lost));
        a.timings(&mut r);
        r.detail = serde_json::json!({
            "definition": definition,
            "file_offset": offset,
            "pid": a.pid,
            "uprobe_profile": profile_text.trim(),
        });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
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
