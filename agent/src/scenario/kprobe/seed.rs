//! `kprobe.seed.*`: the textbook kprobe on `do_sys_open` as people write it, `p:function
//! do_sys_open` with the default group `kprobes` enabled as a whole (syntax and group:
//! Documentation/trace/kprobetrace.rst, whose own example also probes do_sys_open).
//!
//! Not for kprobes on the function openat really runs today (`tracefs.rs`).

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::gated::{pid_filter, release_and_disarm, workload_problems, Enables};
use crate::scenario::support::openat_loop;
use crate::scenario::support::probe_events::KPROBE_EVENTS;
use crate::scenario::support::probe_events::{profile_of, GROUP};
use crate::scenario::support::verdict::{count, unsupported};
use crate::tracefs::trace;
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

/// `p:function do_sys_open` (event `kprobes/function`), enabled with `events/kprobes/enable`,
/// filtered to openat-loop N: N hits expected, openat reaching do_sys_open. A control probe on
/// the openat syscall wrapper shows the calls were made: when it counts N and do_sys_open 0,
/// openat does not call do_sys_open out of line on this kernel (since 5.6 do_sys_open is a
/// wrapper the compiler inlines into the syscall; the symbol stays for other callers), so the
/// path the probe relies on is gone: `unsupported`, with both counts as evidence, and `until`
/// 5.6. Kernels without the symbol are `unsupported` too, with /proc/kallsyms as evidence.
pub const DO_SYS_OPEN: Scenario = Meta::new("kprobe.seed.do_sys_open", "2.6.33")
    .summary(
        "the seeds' `p:function do_sys_open` + events/kprobes/enable, filtered to openat-loop N: N hits (a \
        control probe on the openat syscall tells an inlined do_sys_open from a missing call)",
    )
    // "fs: implement openat2(2)" (5.6) moved the body to do_sys_openat2.
    .until("5.6")
    .requires(&[KPROBE_EVENTS, Req::Symbol("do_sys_open")])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(do_sys_open);

fn do_sys_open(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, path) = openat_loop::declared(ctx)?;
    let definition = "p:function do_sys_open";
    let wrappers = crate::arch::syscall_symbols("openat");
    let wrappers: Vec<&str> = wrappers.iter().map(String::as_str).collect();
    let wrapper =
        crate::kallsyms::first_of(&wrappers)?.with_context(|| format!("none of {wrappers:?} in /proc/kallsyms"))?;
    let control = format!("p:{GROUP}/openat_control {wrapper}");
    openat_loop::fit_buffer(ctx, n, 256)?;
    let attach = Instant::now();
    let w = openat_loop::start(n, &path)?;
    let pid = w.pid();
    ctx.tfs.write("kprobe_events", definition)?;
    ctx.tfs.write("kprobe_events", &control)?;
    let filter = pid_filter(pid);
    ctx.tfs.set_filter("kprobes/function", &filter)?;
    ctx.tfs.set_filter(&format!("{GROUP}/openat_control"), &filter)?;
    // The whole default `kprobes` group is enabled, the control probe its own event.
    let mut enables = Enables::default();
    enables.open_file(ctx, "events/kprobes/enable")?;
    enables.open(ctx, &format!("{GROUP}/openat_control"))?;
    enables.set(ctx, true)?;
    let a = release_and_disarm(ctx, w, attach, |ctx| enables.set(ctx, false))?;
    let text = ctx.tfs.read("trace")?;
    let (profile_text, prof) = profile_of(ctx, "kprobes", "function")?;
    let parsed = trace::parse(&text);
    let mine =
        |prefix: &str| parsed.entries.iter().filter(|e| e.pid == pid && e.body.starts_with(prefix)).count() as u64;
    // At +0x0, or +0x4 past an endbr64 where the kernel moves a probe on an IBT build.
    let hits = mine("function: (do_sys_open+");
    // Any symbol: the kernel names the probed address by the alias it prefers, which is not
    // always the one written (4.15 probes `sys_openat` and prints `SyS_openat+0x0`).
    let through_wrapper = mine("openat_control: (");
    let mut problems = workload_problems(&a.done);
    let summary = openat_loop::account(&a.done, &mut problems);
    if hits == 0 && through_wrapper == n && a.done.success() {
        // Since 5.6 do_sys_open is a two-line wrapper around do_sys_openat2 that the compiler
        // inlines into the openat syscall; the out-of-line copy only serves other callers.
        let mut r = unsupported(
            ctx.id(),
            format!("do_sys_open is not on the openat path: {wrapper} ran {n} times, do_sys_open 0"),
            format!(
                "kprobe_profile: {}; the symbol is in /proc/kallsyms, but openat reaches do_sys_openat2 \
                 without calling it out of line (inlined since 5.6)",
                profile_text.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
            None,
        );
        a.timings(&mut r);
        r.counts = vec![
            count(format!("control probe {wrapper} entries for the workload pid"), n, through_wrapper),
            count("kprobes/function entries at do_sys_open for the workload pid", n, hits),
        ];
        return Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)));
    }
    let mut counts = openat_loop::counts(
        n,
        &summary,
        format!("control probe {wrapper} entries for the workload pid"),
        through_wrapper,
    );
    counts.extend([
        count("kprobes/function entries at do_sys_open for the workload pid", n, hits),
        count("kprobe_profile misses of kprobes/function", 0, prof.misses),
    ]);
    let mut r = a.verdict(ctx.id(), counts, problems);
    r.detail = serde_json::json!({
        "definition": definition,
        "control": control,
        "pid": pid,
        "kprobe_profile": profile_text.trim(),
    });
    Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
}
