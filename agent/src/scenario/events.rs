//! Tracepoint scenarios through tracefs `events/`: enable an event with a pid filter and count
//! what the workload produced.

use super::{count, ms, openat, verdict, Ctx, Req, Scenario};
use crate::excerpt;
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

pub const ALL: [&'static dyn Scenario; 1] = [&SysEnterOpenat];

const EVENT: &str = "syscalls/sys_enter_openat";

/// `events/syscalls/sys_enter_openat` with `common_pid == <workload>` sees exactly N entries.
pub struct SysEnterOpenat;

impl Scenario for SysEnterOpenat {
    fn id(&self) -> &'static str {
        "ftrace.event.sys_enter_openat"
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::Event(EVENT), Req::Program(openat::OPENAT_LOOP)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.count(100)?;
        let path = openat::target_path(ctx)?;
        openat::fit_buffer(ctx, n, 128)?;
        let attach = Instant::now();
        let mut w = openat::start(n, &path)?;
        let pid = w.pid();
        let filter = format!("common_pid == {pid}");
        ctx.tfs.set_filter(EVENT, &filter)?;
        let enable_rel = format!("events/{EVENT}/enable");
        let enable = ctx.tfs.open_write(&enable_rel)?;
        ctx.tfs.write_fd(&enable, &enable_rel, "1")?;
        let attach_ms = ms(attach);
        let run = Instant::now();
        w.release()?;
        let done = w.finish(ctx.timeout()?)?;
        ctx.tfs.write_fd(&enable, &enable_rel, "0")?;
        let run_ms = ms(run);
        let text = ctx.tfs.read("trace")?;
        let parsed = trace::parse(&text);
        let hits = parsed.entries.iter().filter(|e| e.pid == pid && e.body.starts_with("sys_openat(")).count() as u64;
        let mut problems = Vec::new();
        if !done.success() {
            problems.push(format!("workload ended with {}: {}", done.describe(), done.stderr));
        }
        if parsed.lost > 0 {
            problems.push(format!("{} events lost", parsed.lost));
        }
        let calls = openat::summary(&done.stdout).map(|s| s.calls).unwrap_or(0);
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, calls),
                count("sys_enter_openat entries for the workload pid", n, hits),
                count("trace entries in total", n, parsed.entries.len() as u64),
            ],
            problems,
        );
        r.timings.attach_ms = attach_ms;
        r.timings.run_ms = run_ms;
        r.detail = serde_json::json!({ "pid": pid, "filter": filter, "path": path });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}
