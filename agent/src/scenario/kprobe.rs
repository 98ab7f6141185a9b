//! kprobe scenarios through tracefs `kprobe_events`: entry and return probes on the openat path
//! counted in `trace` and `kprobe_profile`, return probes with an explicit `maxactive`, missed
//! return probes counted in `kprobe_profile`, a probe at an offset into the function, the
//! seeds' `p:function do_sys_open`, and the refusal of a blacklisted symbol.

use super::common::{
    entries_of, pid_filter, release_and_disarm, run_probe, run_with_events, trace_problems, workload_problems, Enables,
};
use super::{count, ms, openat, verdict, workload, Ctx, Req, Scenario};
use crate::excerpt;
use crate::mounts::DEBUGFS;
use crate::tracefs::{profile, trace};
use anyhow::{bail, Context, Result};
use kmatrix_proto::{ScenarioResult, Status};
use std::time::Instant;

pub const ALL: [&'static dyn Scenario; 7] = [
    &OpenatProbe { ret: false, maxactive: None },
    &OpenatProbe { ret: true, maxactive: None },
    &OpenatProbe { ret: true, maxactive: Some(16) },
    &Missed,
    &Offset,
    &SeedDoSysOpen,
    &Blacklisted,
];

const GROUP: &str = "kmatrix";

/// `kprobe_profile` as read, and its line for `group/event`.
fn profile_of(ctx: &Ctx, group: &str, event: &str) -> Result<(String, profile::ProfileLine)> {
    let text = ctx.tfs.read("kprobe_profile")?;
    let lines = profile::parse(&text);
    let line = profile::find(&lines, group, event)
        .cloned()
        .with_context(|| format!("{group}/{event} missing from kprobe_profile"))?;
    Ok((text, line))
}

/// `p:kmatrix/openat <sym> dfd=%di:s32 path=+0(%si):ustring` (or `r:kmatrix/openat_ret <sym>
/// ret=$retval:s64`), filtered to the workload's pid: exactly N entries in `trace` whose path
/// (or return value) matches the workload's, and N hits, 0 misses in `kprobe_profile`.
/// With `maxactive`, `r<N>:` and the kernel echoes the N back in `kprobe_events`.
pub struct OpenatProbe {
    ret: bool,
    maxactive: Option<u32>,
}

impl OpenatProbe {
    fn event(&self) -> &'static str {
        match (self.ret, self.maxactive) {
            (false, _) => "openat",
            (true, None) => "openat_ret",
            (true, Some(_)) => "openat_rmax",
        }
    }
}

impl Scenario for OpenatProbe {
    fn id(&self) -> &'static str {
        match (self.ret, self.maxactive) {
            (false, _) => "kprobe.tracefs.openat",
            (true, None) => "kprobe.tracefs.openat_retval",
            (true, Some(_)) => "kprobe.maxactive.openat",
        }
    }

    fn summary(&self) -> &'static str {
        match (self.ret, self.maxactive) {
            (false, _) => {
                "p: on the openat function with fetch args (filename as a user string): N hits in \
                           kprobe_profile, 0 misses, every entry with the workload's path"
            }
            (true, None) => {
                "r: on the openat function with $retval: N hits, 0 misses, every entry returning \
                             the workload's fd"
            }
            (true, Some(_)) => {
                "r16: (maxactive) on the openat function: accepted and echoed in kprobe_events, \
                                N hits, 0 misses, every entry returning the workload's fd"
            }
        }
    }

    fn since(&self) -> &'static str {
        match (self.ret, self.maxactive) {
            // kprobe_events with memory fetch args and $retval: 2.6.33; the `ustring` type is
            // used when the README has it (5.5) and `string` before.
            (_, None) => "2.6.33",
            // "tracing/kprobes: expose maxactive for kretprobe in kprobe_events", 4.12.
            (_, Some(_)) => "4.12",
        }
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
    }

    fn requirements(&self) -> Vec<Req> {
        let mut r = vec![Req::Tracefs, Req::File("kprobe_events"), Req::File("kprobe_profile")];
        if self.maxactive.is_some() {
            r.push(Req::Syntax("r[maxactive]"));
        }
        r.push(Req::Program(openat::OPENAT_LOOP));
        r
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let (n, path, sym) = openat::prepare(ctx)?;
        let event = self.event();
        let kind = match self.maxactive {
            Some(m) => format!("r{m}"),
            None => "r".to_string(),
        };
        let definition = if self.ret {
            format!("{kind}:{GROUP}/{event} {sym} ret=$retval:s64")
        } else {
            // `ustring` reads user memory; kernels before it only have `string`.
            let readme = ctx.tfs.read("README").unwrap_or_default();
            let string = if readme.contains("ustring") { "ustring" } else { "string" };
            format!("p:{GROUP}/{event} {sym} dfd=%di:s32 path=+0(%si):{string}")
        };
        openat::fit_buffer(ctx, n, 160)?;
        let attach = Instant::now();
        let w = openat::start(n, &path)?;
        let ev = format!("{GROUP}/{event}");
        // Disarmed through the fd opened before: the profile counts every hit, the agent's too.
        let a = run_probe(ctx, w, attach, "kprobe_events", &definition, &ev)?;

        let text = ctx.tfs.read("trace")?;
        let (profile_text, prof) = profile_of(ctx, GROUP, event)?;
        let events_text = ctx.tfs.read("kprobe_events")?;
        let parsed = trace::parse(&text);
        let summary = openat::summary(&a.done.stdout).unwrap_or_default();
        let mine = entries_of(&parsed, a.pid, event);
        // Each entry must carry the workload's argument: the path it opened, or the fd it got.
        let (arg, want) = if self.ret { ("ret", summary.fd.to_string()) } else { ("path", path.clone()) };
        let matching = mine.iter().filter(|e| e.arg(arg) == Some(want.as_str())).count() as u64;

        let mut problems = trace_problems(&a.done, parsed.lost);
        if let Some(m) = self.maxactive {
            let echoed = format!("r{m}:{GROUP}/{event} ");
            if !events_text.lines().any(|l| l.starts_with(&echoed)) {
                problems.push(format!("kprobe_events does not echo {echoed:?}: {:?}", events_text.trim()));
            }
        }
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, summary.calls),
                count("openat calls that succeeded", n, summary.ok),
                count(format!("{ev} entries for the workload pid"), n, mine.len() as u64),
                count(format!("{ev} entries with {arg}={want}"), n, matching),
                count("trace entries in total", n, parsed.entries.len() as u64),
                count("kprobe_profile hits", n, prof.hits),
                count("kprobe_profile misses", 0, prof.misses),
            ],
            problems,
        );
        a.timings(&mut r);
        r.detail = serde_json::json!({
            "symbol": sym,
            "definition": definition,
            "kprobe_events": events_text.trim(),
            "pid": a.pid,
            "kprobe_profile": profile_text.trim(),
        });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}

/// A return probe with `maxactive` 1 on the pause syscall while K processes sleep in it at
/// once (`pause-crowd K`): the first entry takes the only return instance, the other K-1 find
/// none. `kprobe_profile` shows exactly 1 hit and K-1 misses, and `trace` the one return.
pub struct Missed;

const PAUSE_SYMS: &[&str] = &["__x64_sys_pause", "sys_pause"];

impl Scenario for Missed {
    fn id(&self) -> &'static str {
        "kprobe.profile.missed"
    }

    fn summary(&self) -> &'static str {
        "r1: on the pause syscall with K tasks inside at once: kprobe_profile counts 1 hit and K-1 misses"
    }

    fn since(&self) -> &'static str {
        // r<maxactive>: 4.12; the miss column of kprobe_profile is as old as kprobe_events.
        "4.12"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "4")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::File("kprobe_events"),
            Req::File("kprobe_profile"),
            Req::Syntax("r[maxactive]"),
            Req::Program(workload::PAUSE_CROWD),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let k = ctx.declared_count()?;
        anyhow::ensure!((2..=64).contains(&k), "count={k}: pause-crowd takes 2..=64 children");
        let sym = crate::kallsyms::first_of(PAUSE_SYMS)?
            .with_context(|| format!("none of {PAUSE_SYMS:?} in /proc/kallsyms"))?;
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
        let mut r = verdict(
            self.id(),
            vec![
                count("children blocked in pause at once", k, workload::num(&s, "paused")? as u64),
                count("kprobe_profile hits (returns with an instance)", 1, prof.hits),
                count("kprobe_profile misses (entries without an instance)", k - 1, prof.misses),
                count(format!("{event} entries in trace"), 1, returns),
            ],
            problems,
        );
        a.timings(&mut r);
        r.detail =
            serde_json::json!({ "symbol": sym, "definition": definition, "kprobe_profile": profile_text.trim() });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}

/// A kprobe at `<sym>+<offset>`: offsets from 1 up are tried until the kernel accepts one (it
/// refuses offsets that are not instruction boundaries, or fall inside the ftrace call, with
/// EILSEQ); the first accepted is the start of the second instruction that can be probed, in
/// the prologue every call runs. N hits, each at that offset.
pub struct Offset;

const MAX_OFFSET: u64 = 32;

impl Scenario for Offset {
    fn id(&self) -> &'static str {
        "kprobe.offset.openat"
    }

    fn summary(&self) -> &'static str {
        "p: at <openat function>+<first accepted offset>, non-boundary offsets refused: N hits at that offset"
    }

    fn since(&self) -> &'static str {
        "2.6.33"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::File("kprobe_events"), Req::File("kprobe_profile"), Req::Program(openat::OPENAT_LOOP)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let (n, path, sym) = openat::prepare(ctx)?;
        let event = "openat_off";
        openat::fit_buffer(ctx, n, 128)?;
        let attach = Instant::now();
        let w = openat::start(n, &path)?;
        let mut refused: Vec<(u64, String)> = Vec::new();
        let mut accepted = None;
        for off in 1..=MAX_OFFSET {
            match ctx.tfs.write("kprobe_events", &format!("p:{GROUP}/{event} {sym}+{off}")) {
                Ok(()) => {
                    accepted = Some(off);
                    break;
                }
                Err(e) => refused.push((off, crate::sys::errno_name(e.errno))),
            }
        }
        let Some(off) = accepted else {
            bail!("the kernel refused every offset 1..={MAX_OFFSET} of {sym}: {refused:?}");
        };
        let ev = format!("{GROUP}/{event}");
        let filter = pid_filter(w.pid());
        let a = run_with_events(ctx, w, attach, &[(&ev, filter)])?;
        let pid = a.pid;
        let text = ctx.tfs.read("trace")?;
        let (_, prof) = profile_of(ctx, GROUP, event)?;
        let parsed = trace::parse(&text);
        // `openat_off: (do_sys_openat2+0x9/0x140)`.
        let place = format!("{event}: ({sym}+{off:#x}/");
        let at_offset = parsed.entries.iter().filter(|e| e.pid == pid && e.body.starts_with(&place)).count() as u64;
        let summary = openat::summary(&a.done.stdout).unwrap_or_default();
        let mut problems = workload_problems(&a.done);
        let odd: Vec<&(u64, String)> = refused.iter().filter(|(_, e)| e != "EILSEQ" && e != "EINVAL").collect();
        if !odd.is_empty() {
            problems.push(format!("offsets refused with an errno other than EILSEQ/EINVAL: {odd:?}"));
        }
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, summary.calls),
                count(format!("{ev} entries at {sym}+{off:#x}"), n, at_offset),
                count("kprobe_profile hits", n, prof.hits),
                count("kprobe_profile misses", 0, prof.misses),
            ],
            problems,
        );
        a.timings(&mut r);
        if r.status == Status::Pass {
            r.reason = format!("probed {sym}+{off:#x}; refused before it: {refused:?}");
        }
        r.detail = serde_json::json!({ "symbol": sym, "offset": off, "refused": refused, "pid": pid });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}

/// The seeds' kprobe, as written there: `p:function do_sys_open` (event `kprobes/function`),
/// enabled with `events/kprobes/enable`, filtered to openat-loop N: N hits expected, openat
/// reaching do_sys_open. A control probe on the openat syscall wrapper shows the calls were
/// made: when it counts N and do_sys_open 0, openat does not call do_sys_open out of line on
/// this kernel (since 5.6 do_sys_open is a wrapper the compiler inlines into the syscall; the
/// symbol stays for other callers), so the path the seed relies on is gone: `unsupported`, with
/// both counts as evidence, and `until` 5.6. Kernels without the symbol are `unsupported` too,
/// with /proc/kallsyms as evidence.
pub struct SeedDoSysOpen;

const OPENAT_WRAPPERS: &[&str] = &["__x64_sys_openat", "sys_openat"];

impl Scenario for SeedDoSysOpen {
    fn id(&self) -> &'static str {
        "kprobe.seed.do_sys_open"
    }

    fn until(&self) -> Option<&'static str> {
        // "fs: implement openat2(2)" (5.6) moved the body to do_sys_openat2.
        Some("5.6")
    }

    fn summary(&self) -> &'static str {
        "the seeds' `p:function do_sys_open` + events/kprobes/enable, filtered to openat-loop N: N hits (a \
         control probe on the openat syscall tells an inlined do_sys_open from a missing call)"
    }

    fn since(&self) -> &'static str {
        "2.6.33"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::File("kprobe_events"),
            Req::File("kprobe_profile"),
            Req::Symbol("do_sys_open"),
            Req::Program(openat::OPENAT_LOOP),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let path = openat::target_path(ctx)?;
        let definition = "p:function do_sys_open";
        let wrapper = crate::kallsyms::first_of(OPENAT_WRAPPERS)?
            .with_context(|| format!("none of {OPENAT_WRAPPERS:?} in /proc/kallsyms"))?;
        let control = format!("p:{GROUP}/openat_control {wrapper}");
        openat::fit_buffer(ctx, n, 256)?;
        let attach = Instant::now();
        let w = openat::start(n, &path)?;
        let pid = w.pid();
        ctx.tfs.write("kprobe_events", definition)?;
        ctx.tfs.write("kprobe_events", &control)?;
        let filter = pid_filter(pid);
        ctx.tfs.set_filter("kprobes/function", &filter)?;
        ctx.tfs.set_filter(&format!("{GROUP}/openat_control"), &filter)?;
        // The seed enables the whole `kprobes` group, the control probe its own event.
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
        let through_wrapper = mine(&format!("openat_control: ({wrapper}+"));
        let summary = openat::summary(&a.done.stdout).unwrap_or_default();
        let problems = workload_problems(&a.done);
        if hits == 0 && through_wrapper == n && a.done.success() {
            // Since 5.6 do_sys_open is a two-line wrapper around do_sys_openat2 that the compiler
            // inlines into the openat syscall; the out-of-line copy only serves other callers.
            let mut r = super::unsupported(
                self.id(),
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
        let mut r = verdict(
            self.id(),
            vec![
                count("openat calls made by the workload", n, summary.calls),
                count(format!("control probe {wrapper} entries for the workload pid"), n, through_wrapper),
                count("kprobes/function entries at do_sys_open for the workload pid", n, hits),
                count("kprobe_profile misses of kprobes/function", 0, prof.misses),
            ],
            problems,
        );
        a.timings(&mut r);
        r.detail = serde_json::json!({
            "definition": definition,
            "control": control,
            "pid": pid,
            "kprobe_profile": profile_text.trim(),
        });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 10)))
    }
}

/// A kprobe on a symbol in the kprobe blacklist is refused with EINVAL and leaves no event.
pub struct Blacklisted;

/// Preferred victims: blacklisted on every kernel (they run inside kprobe handling itself).
const PREFERRED: &[&str] = &["kprobe_int3_handler", "exc_int3", "do_int3", "notify_die"];

impl Scenario for Blacklisted {
    fn id(&self) -> &'static str {
        "kprobe.blacklist.refused"
    }

    fn summary(&self) -> &'static str {
        "p: on a symbol of the kprobe blacklist: refused with EINVAL, no event left"
    }

    fn since(&self) -> &'static str {
        // debugfs kprobes/blacklist came in 3.16.
        "3.16"
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::File("kprobe_events"), Req::Debugfs("kprobes/blacklist")]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let path = format!("{DEBUGFS}/kprobes/blacklist");
        let blacklist = std::fs::read_to_string(&path).with_context(|| format!("read({path}) failed"))?;
        let listed: Vec<&str> = blacklist.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").context("read(/proc/kallsyms) failed")?;
        let is_function = |s: &str| {
            kallsyms.lines().any(|l| {
                let mut it = l.split_whitespace();
                let kind = it.nth(1).unwrap_or("");
                (kind == "T" || kind == "t") && it.next() == Some(s) && it.next().is_none()
            })
        };
        let Some(sym) =
            PREFERRED.iter().copied().chain(listed.iter().copied()).find(|s| listed.contains(s) && is_function(s))
        else {
            bail!("no blacklisted symbol found in /proc/kallsyms ({} entries)", listed.len());
        };
        let definition = format!("p:{GROUP}/blacklisted {sym}");
        let attach = Instant::now();
        let outcome = ctx.tfs.write("kprobe_events", &definition);
        let attach_ms = ms(attach);
        let left = ctx.tfs.read("kprobe_events")?;
        let error_log =
            if ctx.tfs.exists("error_log") { ctx.tfs.read("error_log").unwrap_or_default() } else { String::new() };
        let left_lines = left.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        let errno = outcome.as_ref().err().map(|e| e.errno);
        let mut problems = Vec::new();
        match errno {
            Some(libc::EINVAL) => {}
            Some(e) => problems.push(format!("write refused with {}, expected EINVAL", crate::sys::errno_text(e))),
            None => problems.push(format!("kernel accepted {definition:?}")),
        }
        let mut r =
            verdict(self.id(), vec![count("kprobe_events lines after the refused write", 0, left_lines)], problems);
        r.errno = errno;
        r.timings.attach_ms = attach_ms;
        r.detail = serde_json::json!({
            "symbol": sym,
            "definition": definition,
            "blacklist_entries": listed.len(),
        });
        if r.status == Status::Pass {
            r.reason = format!("refused: {}", crate::sys::errno_text(libc::EINVAL));
        }
        Ok(r.with_excerpt(&excerpt::head(&error_log, 20)))
    }
}
