//! `uprobe.perf_pmu.*`: a uprobe created through perf_event_open on the `uprobe` PMU
//! (`config1` = path, `config2` = file offset; perf_event_open(2)), counting on `hello`.
//!
//! Not for uprobes defined through tracefs (`tracefs.rs`).

use crate::elf;
use crate::perf::{self, Attr};
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::workload_problems;
use crate::scenario::support::perf::{count_run, open};
use crate::scenario::support::verdict::count;
use crate::scenario::support::workload;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::path::Path;
use std::time::Instant;

/// A uprobe on `hello_greet` through the uprobe PMU, counting on `hello N`: N.
// The perf_uprobe PMU came with perf_kprobe, 4.17.
pub const HELLO: Scenario = Meta::new("uprobe.perf_pmu.hello", "4.17")
    .summary("perf_event_open on the uprobe PMU (config1 = /bin/hello, config2 = hello_greet's offset): counts N")
    .requires(&[Req::Pmu("uprobe"), Req::Program(workload::HELLO)])
    .params(&[("count", "10")])
    .run(hello);

fn hello(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let offset = elf::function_offset(Path::new(workload::HELLO), "hello_greet")?;
    let ty = perf::pmu_type("uprobe")?;
    let attach = Instant::now();
    let w = workload::start_hello(n)?;
    let pid = w.pid();
    let mut attr = Attr::counter(ty, 0);
    attr.config2 = offset;
    let ev = open(attr, pid, Some(workload::HELLO), &format!("uprobe PMU {}:{offset:#x}", workload::HELLO))?;
    let (a, readings) = count_run(ctx, w, attach, &[&ev])?;
    let mut r = a.verdict(
        ctx.id(),
        vec![
            count("hello, world! lines printed", n, workload::greetings(&a.done.stdout)),
            count("uprobe hits of hello_greet counted", n, readings[0].value),
        ],
        workload_problems(&a.done),
    );
    r.detail = serde_json::json!({ "pmu_type": ty, "file_offset": offset, "pid": pid });
    Ok(r)
}
