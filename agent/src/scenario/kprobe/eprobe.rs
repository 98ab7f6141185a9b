//! `kprobe.eprobe.*`: event probes (`e:`, Documentation/trace/eprobetrace.rst), defined through
//! `dynamic_events` on top of a tracepoint and fetching its fields.
//!
//! Requirements name the README syntax line, so a kernel without the kind reports
//! `unsupported` with the README's list as evidence rather than a failed write. The run is
//! shared with fprobes (`fprobe.rs`): one definition in `dynamic_events`, N entries.
//!
//! Two scenarios on the same tracepoint, so one kernel bug does not hide what works:
//! `sys_enter_openat_numeric` checks the eprobe itself (created, fires N times, integer fields
//! read right) and passes on every kernel with eprobes; `sys_enter_openat` fetches the string
//! behind the `const char *filename` field, which kernels without upstream 206b25c09080
//! ("tracing: eprobe: read the complete FILTER_PTR_STRING pointer", v7.2-rc1, in 6.12.97 and
//! Debian's 6.12) cannot do: they read one byte of the pointer.

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::trace_problems;
use crate::scenario::support::openat_loop;
use crate::scenario::support::probe_events::{entries_of, run_probe, GROUP};
use crate::scenario::support::verdict::count;
use crate::tracefs::trace;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

/// `e:kmatrix/openat_e syscalls.sys_enter_openat dfd=$dfd:s32 ptr=$filename:x64
/// path=+0($filename):ustring`: one entry per openat call, each with AT_FDCWD, the pointer the
/// workload passed and the path behind it.
///
/// The fetch-arg syntax is right (`$filename:ustring` and `+0($filename):ustring` read the same):
/// on Debian 6.1 (6.1.176) `get_event_field()` in kernel/trace/trace_eprobe.c reads a
/// `const char *` field (FILTER_PTR_STRING) as `*(char *)addr`, one byte of the pointer
/// (`ptr=0x7b` for 0x7ffe97af1f7b), so every path is `(fault)` and the scenario fails on the
/// pointer and path counts. Fixed upstream by 206b25c09080 ("tracing: eprobe: read the complete
/// FILTER_PTR_STRING pointer", `val = *(unsigned long *)addr`), backported to 6.12.97: Debian's
/// 6.12.107 source has it, its 6.1.176 source does not (both diffed from Debian's
/// linux-source packages).
/// What both eprobe scenarios on sys_enter_openat need besides the workload.
const EPROBE_OPENAT: &[Req] =
    &[Req::Tracefs, Req::File("dynamic_events"), Req::Syntax("e["), Req::Event("syscalls/sys_enter_openat")];

// "tracing: Add a probe that attaches to trace events", 5.15.
pub const SYS_ENTER_OPENAT: Scenario = Meta::new("kprobe.eprobe.sys_enter_openat", "5.15")
    .summary(
        "e: on syscalls.sys_enter_openat reading dfd, the filename pointer and the string behind it: N entries, \
        each with AT_FDCWD, the workload's pointer and path",
    )
    .requires(EPROBE_OPENAT)
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(sys_enter_openat);

fn sys_enter_openat(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let def = format!(
        "e:{GROUP}/openat_e syscalls.sys_enter_openat dfd=$dfd:s32 ptr=$filename:x64 path=+0($filename):ustring"
    );
    let path = openat_loop::target_path(ctx)?;
    let args = |s: &openat_loop::Summary| {
        vec![("dfd", libc::AT_FDCWD.to_string()), ("ptr", format!("{:#x}", s.ptr)), ("path", path.clone())]
    };
    run_dynamic(ctx, "openat_e", &def, &args)
}

/// The flags `openat-loop` passes (`O_RDONLY | O_CLOEXEC`); `--param flags=0x0` makes the
/// numeric scenario fail, the check's failing case.
const OPENAT_FLAGS: &str = "0x80000";

/// `e:kmatrix/openat_en syscalls.sys_enter_openat dfd=$dfd:s32 flags=$flags:x32 mode=$mode:u32`:
/// what works on every kernel with eprobes, 6.1 included. The syscall's integer fields are
/// `size:8 signed:0` in its `format` (whole registers), so each is read whole and cast to its C
/// type's 32 bits (the upper half of an `int` argument's register is not the program's).
// "tracing: Add a probe that attaches to trace events", 5.15.
pub const SYS_ENTER_OPENAT_NUMERIC: Scenario = Meta::new("kprobe.eprobe.sys_enter_openat_numeric", "5.15")
    .summary(
        "e: on syscalls.sys_enter_openat reading its integer fields: N entries, each with AT_FDCWD, \
        O_RDONLY|O_CLOEXEC and mode 0 (no string fetch, so 6.1's one-byte pointer bug cannot touch it)",
    )
    .requires(EPROBE_OPENAT)
    .on_openat_loop(&[("count", "100"), ("path", openat_loop::DEFAULT_PATH), ("flags", OPENAT_FLAGS)])
    .run(sys_enter_openat_numeric);

fn sys_enter_openat_numeric(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let def = format!("e:{GROUP}/openat_en syscalls.sys_enter_openat dfd=$dfd:s32 flags=$flags:x32 mode=$mode:u32");
    let flags = ctx.params.get("flags").map_or(OPENAT_FLAGS, String::as_str).trim().to_owned();
    let args = move |_: &openat_loop::Summary| {
        vec![("dfd", libc::AT_FDCWD.to_string()), ("flags", flags.clone()), ("mode", "0".to_owned())]
    };
    run_dynamic(ctx, "openat_en", &def, &args)
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
pub type Args<'a> = dyn Fn(&openat_loop::Summary) -> Vec<(&'static str, String)> + 'a;

/// Define `def` in dynamic_events, filter it to the workload's pid, run `openat-loop N`, and
/// expect N entries, each with every `key=value` of `args`.
pub fn run_dynamic(ctx: &mut Ctx, event: &str, def: &str, args: &Args) -> Result<ScenarioResult> {
    let (n, path) = openat_loop::declared(ctx)?;
    openat_loop::fit_buffer(ctx, n, 160)?;
    let attach = Instant::now();
    let w = openat_loop::start(n, &path)?;
    let ev = format!("{GROUP}/{event}");
    let a = run_probe(ctx, w, attach, "dynamic_events", def, &ev)?;
    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let mine = entries_of(&parsed, a.pid, event);
    let mut problems = trace_problems(&a.done, parsed.lost);
    let (summary, mut counts) =
        a.openat_counts(n, &mut problems, format!("{ev} entries for the workload pid"), mine.len() as u64);
    counts.push(count("trace entries in total", n, parsed.entries.len() as u64));
    for (key, want) in args(&summary) {
        let matching = mine.iter().filter(|e| e.arg(key) == Some(want.as_str())).count();
        counts.push(count(format!("{ev} entries with {key}={want}"), n, matching as u64));
    }
    problems.splice(0..0, one_byte_pointer(mine.first().and_then(|e| e.arg("ptr")), summary.ptr));
    let mut r = a.verdict(ctx.id(), counts, problems);
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

    #[test]
    fn the_numeric_scenario_expects_the_workloads_flags() {
        // openat_loop.c: syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0).
        assert_eq!(OPENAT_FLAGS, format!("{:#x}", libc::O_RDONLY | libc::O_CLOEXEC));
    }
}
