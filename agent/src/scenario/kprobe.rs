//! kprobe scenarios through tracefs `kprobe_events`: entry and return probes on the openat path
//! counted in `trace` and `kprobe_profile`, and the refusal of a blacklisted symbol.

use super::{count, ms, openat, verdict, Ctx, Req, Scenario};
use crate::excerpt;
use crate::mounts::DEBUGFS;
use crate::tracefs::{profile, trace};
use anyhow::{bail, Context, Result};
use kmatrix_proto::{ScenarioResult, Status};
use std::time::Instant;

pub const ALL: [&'static dyn Scenario; 3] = [&OpenatProbe { ret: false }, &OpenatProbe { ret: true }, &Blacklisted];

const GROUP: &str = "kmatrix";

/// `p:kmatrix/openat <sym> dfd=%di:s32 path=+0(%si):ustring` (or `r:kmatrix/openat_ret <sym>
/// ret=$retval:s64`), filtered to the workload's pid: exactly N entries in `trace` whose path
/// (or return value) matches the workload's, and N hits, 0 misses in `kprobe_profile`.
pub struct OpenatProbe {
    ret: bool,
}

impl OpenatProbe {
    fn event(&self) -> &'static str {
        if self.ret {
            "openat_ret"
        } else {
            "openat"
        }
    }
}

impl Scenario for OpenatProbe {
    fn id(&self) -> &'static str {
        if self.ret {
            "kprobe.tracefs.openat_retval"
        } else {
            "kprobe.tracefs.openat"
        }
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::File("kprobe_events"), Req::File("kprobe_profile"), Req::Program(openat::OPENAT_LOOP)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.count(100)?;
        let path = openat::target_path(ctx)?;
        let sym = openat::symbol(ctx)?;
        let event = self.event();
        let definition = if self.ret {
            format!("r:{GROUP}/{event} {sym} ret=$retval:s64")
        } else {
            // `ustring` reads user memory; kernels before it only have `string`.
            let readme = ctx.tfs.read("README").unwrap_or_default();
            let string = if readme.contains("ustring") { "ustring" } else { "string" };
            format!("p:{GROUP}/{event} {sym} dfd=%di:s32 path=+0(%si):{string}")
        };
        openat::fit_buffer(ctx, n, 160)?;
        let attach = Instant::now();
        let mut w = openat::start(n, &path)?;
        let pid = w.pid();
        ctx.tfs.write("kprobe_events", &definition)?;
        let ev = format!("{GROUP}/{event}");
        ctx.tfs.set_filter(&ev, &format!("common_pid == {pid}"))?;
        let enable_rel = format!("events/{ev}/enable");
        let enable = ctx.tfs.open_write(&enable_rel)?;
        ctx.tfs.write_fd(&enable, &enable_rel, "1")?;
        let attach_ms = ms(attach);
        let run = Instant::now();
        w.release()?;
        let done = w.finish(ctx.timeout()?)?;
        // Disarm through the fd opened before: the profile counts every hit, the agent's too.
        ctx.tfs.write_fd(&enable, &enable_rel, "0")?;
        let run_ms = ms(run);

        let text = ctx.tfs.read("trace")?;
        let profile_text = ctx.tfs.read("kprobe_profile")?;
        let parsed = trace::parse(&text);
        let summary = openat::summary(&done.stdout).unwrap_or_default();
        let mine: Vec<&trace::Entry> =
            parsed.entries.iter().filter(|e| e.pid == pid && e.body.starts_with(&format!("{event}: "))).collect();
        // Each entry must carry the workload's argument: the path it opened, or the fd it got.
        let (arg, want) = if self.ret { ("ret", summary.fd.to_string()) } else { ("path", path.clone()) };
        let matching = mine.iter().filter(|e| e.arg(arg) == Some(want.as_str())).count() as u64;
        let lines = profile::parse(&profile_text);
        let prof = profile::find(&lines, GROUP, event).with_context(|| format!("{ev} missing from kprobe_profile"))?;

        let mut problems = Vec::new();
        if !done.success() {
            problems.push(format!("workload ended with {}: {}", done.describe(), done.stderr));
        }
        if parsed.lost > 0 {
            problems.push(format!("{} events lost", parsed.lost));
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
        r.timings.attach_ms = attach_ms;
        r.timings.run_ms = run_ms;
        r.detail = serde_json::json!({
            "symbol": sym,
            "definition": definition,
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
