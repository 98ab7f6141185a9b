//! `bpf.uprobe.*`: a BPF uprobe program on the `hello` workload's `hello_greet`, reading its
//! message argument from user memory.
//!
//! `hello N` calls hello_greet("hello, world!\n") N times and hello_add(i, i + 1) for i in
//! 0..N, so an entry probe sees N messages and a return probe (`uretprobe.rs`, which shares the
//! run here) the values 1, 3, 5, ... in order.

use crate::bpf;
use crate::bpf::event::MAX_EVENTS;
use crate::elf;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::bpf::{event_counts, guarded, run_program, Hook, Payload, UPROBE_SINCE};
use crate::scenario::support::gated::workload_problems;
use crate::scenario::support::verdict::count;
use crate::scenario::support::workload::{self, GREETING};
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::path::Path;

pub const HELLO: Scenario = Meta::new("bpf.uprobe.hello", UPROBE_SINCE)
    .summary("BPF uprobe on hello_greet: N hits, each reading the message argument from user memory")
    .requires(&[Req::Program(workload::HELLO)])
    .params(&[("count", "10")])
    .run(|ctx| hello_probe(ctx, false));

/// An entry probe on hello_greet, or with `ret` a return probe on hello_add, for `hello N`.
pub fn hello_probe(ctx: &mut Ctx, ret: bool) -> Result<ScenarioResult> {
    let id = ctx.id();
    guarded(id, || {
        let n = ctx.declared_count()?;
        let (func, program) =
            if ret { ("hello_add", "uretprobe_hello_add") } else { ("hello_greet", "uprobe_hello_greet") };
        let offset = elf::function_offset(Path::new(workload::HELLO), func)?;
        let w = workload::start_hello(n)?;
        let pid = w.pid() as u32;
        let hook = Hook::UProbe { path: workload::HELLO, offset, pid };
        let p = run_program(ctx, bpf::PROBES, pid, program, &hook, w)?;

        let mut c = vec![count("hello, world! lines printed", n, workload::greetings(&p.done.stdout))];
        let payload = Payload { name: (!ret).then_some(GREETING), aux: None };
        c.push(count(format!("{program} hits of the workload"), n, p.counts.hits));
        c.extend(event_counts(n, pid, &p.events, &payload));
        if ret {
            let in_order = p.events.iter().enumerate().filter(|(i, e)| e.aux == 2 * *i as i64 + 1).count() as u64;
            c.push(count("return values 1, 3, 5, ... in order", n.min(MAX_EVENTS), in_order));
        }
        let fields = serde_json::json!({ "file_offset": offset, "hits_filtered_out": p.counts.others });
        Ok(p.result(id, c, workload_problems(&p.done), fields))
    })
}
