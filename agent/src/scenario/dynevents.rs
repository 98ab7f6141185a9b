//! Probe kinds that only `dynamic_events` accepts: event probes (`e:`, on top of a tracepoint)
//! and fprobes (`f:`, function entry through ftrace), each on the openat path of the workload.
//!
//! Requirements name the README syntax line, so a kernel without the kind reports `unsupported`
//! with the README's list as evidence rather than a failed write.

use super::{count, ms, openat, verdict, Ctx, Req, Scenario};
use crate::excerpt;
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

pub const ALL: [&'static dyn Scenario; 2] = [&Eprobe, &Fprobe];

const GROUP: &str = "kmatrix";

/// `e:kmatrix/openat_e syscalls.sys_enter_openat dfd=$dfd:s32 path=+0($filename):ustring`: one
/// entry per openat call, each with AT_FDCWD and the workload's path. (Debian 6.1 reads
/// `$filename` wrongly: the count and `dfd` match, the path is `(fault)`.)
pub struct Eprobe;

impl Scenario for Eprobe {
    fn id(&self) -> &'static str {
        "kprobe.eprobe.sys_enter_openat"
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::File("dynamic_events"),
            Req::ProbeSyntax("e["),
            Req::Event("syscalls/sys_enter_openat"),
            Req::Program(openat::OPENAT_LOOP),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let def = format!("e:{GROUP}/openat_e syscalls.sys_enter_openat dfd=$dfd:s32 path=+0($filename):ustring");
        let path = openat::target_path(ctx)?;
        let args = [("dfd", libc::AT_FDCWD.to_string()), ("path", path)];
        run_dynamic(ctx, self.id(), "openat_e", &def, &args)
    }
}

/// `f:kmatrix/openat_f <sym>`: one entry per openat call.
pub struct Fprobe;

impl Scenario for Fprobe {
    fn id(&self) -> &'static str {
        "kprobe.fprobe.openat"
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::File("dynamic_events"), Req::ProbeSyntax("f["), Req::Program(openat::OPENAT_LOOP)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let sym = openat::symbol(ctx)?;
        let def = format!("f:{GROUP}/openat_f {sym}");
        run_dynamic(ctx, self.id(), "openat_f", &def, &[])
    }
}

/// Define `def` in dynamic_events, filter it to the workload's pid, run `openat-loop N`, and
/// expect N entries, each with every `key=value` of `args`.
fn run_dynamic(ctx: &mut Ctx, id: &str, event: &str, def: &str, args: &[(&str, String)]) -> Result<ScenarioResult> {
    let n = ctx.count(100)?;
    let path = openat::target_path(ctx)?;
    openat::fit_buffer(ctx, n, 160)?;
    let attach = Instant::now();
    let mut w = openat::start(n, &path)?;
    let pid = w.pid();
    ctx.tfs.write("dynamic_events", def)?;
    let ev = format!("{GROUP}/{event}");
    ctx.tfs.set_filter(&ev, &format!("common_pid == {pid}"))?;
    let enable_rel = format!("events/{ev}/enable");
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
    let mine: Vec<_> =
        parsed.entries.iter().filter(|e| e.pid == pid && e.body.starts_with(&format!("{event}: "))).collect();
    let summary = openat::summary(&done.stdout).unwrap_or_default();
    let mut counts = vec![
        count("openat calls made by the workload", n, summary.calls),
        count(format!("{ev} entries for the workload pid"), n, mine.len() as u64),
        count("trace entries in total", n, parsed.entries.len() as u64),
    ];
    for (key, want) in args {
        let matching = mine.iter().filter(|e| e.arg(key) == Some(want.as_str())).count();
        counts.push(count(format!("{ev} entries with {key}={want}"), n, matching as u64));
    }
    let mut problems = Vec::new();
    if !done.success() {
        problems.push(format!("workload ended with {}: {}", done.describe(), done.stderr));
    }
    if parsed.lost > 0 {
        problems.push(format!("{} events lost", parsed.lost));
    }
    let mut r = verdict(id, counts, problems);
    r.timings.attach_ms = attach_ms;
    r.timings.run_ms = run_ms;
    r.detail = serde_json::json!({ "definition": def, "pid": pid });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}
