//! Probe kinds that only `dynamic_events` accepts: event probes (`e:`, on top of a tracepoint)
//! and fprobes (`f:`, function entry through ftrace), each on the openat path of the workload.
//!
//! Requirements name the README syntax line, so a kernel without the kind reports `unsupported`
//! with the README's list as evidence rather than a failed write.

use super::common::{entries_of, run_probe, trace_problems};
use super::{count, openat, verdict, Ctx, Req, Scenario};
use crate::excerpt;
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

pub const ALL: [&'static dyn Scenario; 2] = [&Eprobe, &Fprobe];

const GROUP: &str = "kmatrix";

/// `e:kmatrix/openat_e syscalls.sys_enter_openat dfd=$dfd:s32 ptr=$filename:x64
/// path=+0($filename):ustring`: one entry per openat call, each with AT_FDCWD, the pointer the
/// workload passed and the path behind it.
///
/// The fetch-arg syntax is right (`$filename:ustring` and `+0($filename):ustring` read the same):
/// on Debian 6.1 (6.1.170) the eprobe code reads a `const char *` field (FILTER_PTR_STRING) as
/// `*(char *)addr`, one byte of the pointer (`ptr=0x7b` for 0x7ffe97af1f7b), so every path is
/// `(fault)` and the scenario fails on the pointer and path counts; 6.12 reads the pointer.
pub struct Eprobe;

impl Scenario for Eprobe {
    fn id(&self) -> &'static str {
        "kprobe.eprobe.sys_enter_openat"
    }

    fn summary(&self) -> &'static str {
        "e: on syscalls.sys_enter_openat reading dfd, the filename pointer and the string behind it: N entries, \
         each with AT_FDCWD, the workload's pointer and path"
    }

    fn since(&self) -> &'static str {
        // "tracing: Add a probe that attaches to trace events", 5.15.
        "5.15"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::File("dynamic_events"),
            Req::Syntax("e["),
            Req::Event("syscalls/sys_enter_openat"),
            Req::Program(openat::OPENAT_LOOP),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let def = format!(
            "e:{GROUP}/openat_e syscalls.sys_enter_openat dfd=$dfd:s32 ptr=$filename:x64 path=+0($filename):ustring"
        );
        let path = openat::target_path(ctx)?;
        let args = |s: &openat::Summary| {
            vec![("dfd", libc::AT_FDCWD.to_string()), ("ptr", format!("{:#x}", s.ptr)), ("path", path.clone())]
        };
        run_dynamic(ctx, self.id(), "openat_e", &def, &args)
    }
}

/// `f:kmatrix/openat_f <sym>`: one entry per openat call.
pub struct Fprobe;

impl Scenario for Fprobe {
    fn id(&self) -> &'static str {
        "kprobe.fprobe.openat"
    }

    fn summary(&self) -> &'static str {
        "f: (fprobe event) on the openat function, filtered to openat-loop N: N entries"
    }

    fn since(&self) -> &'static str {
        // "tracing/probes: Add fprobe events for tracing function entry and exit", 6.4.
        "6.4"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::File("dynamic_events"), Req::Syntax("f["), Req::Program(openat::OPENAT_LOOP)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let sym = openat::symbol(ctx)?;
        let def = format!("f:{GROUP}/openat_f {sym}");
        run_dynamic(ctx, self.id(), "openat_f", &def, &|_| Vec::new())
    }
}

/// When an eprobe read `ptr` as the sign-extended low byte of the real pointer, say so: that is
/// the eprobe FILTER_PTR_STRING bug (`*(char *)addr` instead of the pointer), not the syntax.
fn one_byte_pointer(seen: Option<&str>, real: u64) -> Option<String> {
    let seen = u64::from_str_radix(seen?.trim_start_matches("0x"), 16).ok()?;
    let byte = real as u8 as i8 as i64 as u64;
    (real != 0 && seen != real && seen == byte).then(|| {
        format!(
            "$filename read as {seen:#x}, the sign-extended low byte of the pointer {real:#x}: the kernel's \
             eprobe reads a `const char *` field as one char, so no string behind it can be fetched"
        )
    })
}

/// Expected `key=value` arguments of every entry, from the workload's summary.
type Args<'a> = dyn Fn(&openat::Summary) -> Vec<(&'static str, String)> + 'a;

/// Define `def` in dynamic_events, filter it to the workload's pid, run `openat-loop N`, and
/// expect N entries, each with every `key=value` of `args`.
fn run_dynamic(ctx: &mut Ctx, id: &str, event: &str, def: &str, args: &Args) -> Result<ScenarioResult> {
    let n = ctx.declared_count()?;
    let path = openat::target_path(ctx)?;
    openat::fit_buffer(ctx, n, 160)?;
    let attach = Instant::now();
    let w = openat::start(n, &path)?;
    let ev = format!("{GROUP}/{event}");
    let a = run_probe(ctx, w, attach, "dynamic_events", def, &ev)?;
    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let mine = entries_of(&parsed, a.pid, event);
    let summary = openat::summary(&a.done.stdout).unwrap_or_default();
    let mut counts = vec![
        count("openat calls made by the workload", n, summary.calls),
        count(format!("{ev} entries for the workload pid"), n, mine.len() as u64),
        count("trace entries in total", n, parsed.entries.len() as u64),
    ];
    for (key, want) in args(&summary) {
        let matching = mine.iter().filter(|e| e.arg(key) == Some(want.as_str())).count();
        counts.push(count(format!("{ev} entries with {key}={want}"), n, matching as u64));
    }
    let mut problems: Vec<String> =
        one_byte_pointer(mine.first().and_then(|e| e.arg("ptr")), summary.ptr).into_iter().collect();
    problems.extend(trace_problems(&a.done, parsed.lost));
    let mut r = verdict(id, counts, problems);
    a.timings(&mut r);
    r.detail = serde_json::json!({ "definition": def, "pid": a.pid });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_pointers_are_recognised() {
        // Debian 6.1: ptr=0xffffffffffffff9e for the pointer 0x7ffd12352f9e; 0x7b for ...7b.
        assert!(one_byte_pointer(Some("0xffffffffffffff9e"), 0x7ffd12352f9e).is_some());
        assert!(one_byte_pointer(Some("0x7b"), 0x7ffe97af1f7b).is_some());
        assert!(one_byte_pointer(Some("0x7ffe97af1f7b"), 0x7ffe97af1f7b).is_none());
        assert!(one_byte_pointer(None, 0x7ffe97af1f7b).is_none());
    }
}
