//! `bpf.kprobe_multi.*`: one kprobe_multi link (BPF_TRACE_KPROBE_MULTI, 5.18) on
//! do_sys_openat2 (cookie 1) and a second function on the openat path (cookie 2).
//!
//! Each call of the workload passes both targets in that order, so the program sees 2N hits,
//! alternating cookies 1 and 2, and reads the target's own arguments for each: the file name
//! for do_sys_openat2. Before loading the real program the kernel is asked whether it makes the
//! link at all (`multi::supported`); a refusal with EINVAL, EOPNOTSUPP or E2BIG is
//! `unsupported`, citing the errno and the release that added the link type. The run is shared
//! with `bpf.uprobe_multi` (`uprobe_multi.rs`); the links themselves are `crate::bpf::multi`.

use crate::bpf::event::{KmEvent, MAX_EVENTS};
use crate::bpf::multi::{self, Kind, MultiObject, Targets};
use crate::bpf::{self, Rejected};
use crate::scenario::meta::{Ctx, Scenario};
use crate::scenario::support::bpf::{
    events_excerpt, guarded, openat_meta, openat_summary, rejected, release, OpenatWorkload,
};
use crate::scenario::support::gated::workload_problems;
use crate::scenario::support::openat_loop;
use crate::scenario::support::verdict::{count, ms, verdict};
use crate::scenario::support::workload::HELLO;
use crate::{elf, process, sys};
use anyhow::Result;
use kmatrix_proto::{ScenarioResult, Status};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Instant;

pub const OPENAT: Scenario = openat_meta("bpf.kprobe_multi.openat", Kind::Kprobe.since())
    .summary("BPF kprobe_multi link on do_sys_openat2 + do_filp_open with cookies: 2N hits, per-target payload")
    .run(|ctx| run_multi(ctx, Kind::Kprobe));

/// Errnos with which a kernel says it does not know a link type (ENOTSUPP is 524, kernel-only).
const NOT_KNOWN: [i32; 4] = [libc::EINVAL, libc::EOPNOTSUPP, libc::E2BIG, 524];

/// `unsupported` citing the refusal, for a kernel that does not know the link type, and the
/// capability record's attach types. Kernels from 5.18 built without CONFIG_FPROBE (Debian 6.1)
/// know the attach type but answer EOPNOTSUPP; `register_fprobe` in /proc/kallsyms tells the
/// two apart.
fn link_unsupported(id: &str, kind: Kind, rej: &Rejected) -> ScenarioResult {
    let release = sys::uname().map(|u| u.release).unwrap_or_default();
    let name = kind.attach_type_name();
    let history = format!("{name} added in {} (kernel {release}); {}", kind.since(), record(kind));
    let (reason, evidence) = match (kind, rej.errno) {
        (Kind::Kprobe, Some(libc::EOPNOTSUPP)) => match crate::kallsyms::has("register_fprobe") {
            Ok(false) => (
                format!("{name} links need CONFIG_FPROBE, which this kernel is built without"),
                format!("{rej}; register_fprobe not in /proc/kallsyms; {history}"),
            ),
            _ => (format!("{name} links refused"), format!("{rej}; {history}")),
        },
        _ => (format!("{name} links refused"), format!("{rej}; {history}")),
    };
    let mut r = ScenarioResult::new(id, Status::Unsupported, reason);
    r.errno = rej.errno;
    r.evidence = Some(evidence);
    r
}

/// What the capability record says: the attach types probed at boot, and how the probe of this
/// link type went (`attach types probed: kprobe ... (no kprobe_multi: BPF_LINK_CREATE(...) ...)`).
fn record(kind: Kind) -> String {
    let name = match kind {
        Kind::Kprobe => "kprobe_multi",
        Kind::Uprobe => "uprobe_multi",
    };
    let types = bpf::attach_types();
    let listed = if types.is_empty() { "none".to_string() } else { types.join(" ") };
    let this = match bpf::attach_probe(name).map(|p| p.outcome) {
        Some(Ok(())) => format!("{name} attached"),
        Some(Err(why)) => format!("no {name}: {why}"),
        None => format!("no {name}"),
    };
    format!("attach types probed: {listed} ({this})")
}

/// Expected count of cookie `c` (1 or 2) among the first `recorded` of alternating hits.
fn alternating(recorded: u64, c: u64) -> u64 {
    if c == 1 {
        recorded.div_ceil(2)
    } else {
        recorded / 2
    }
}

/// A `kind` link on its two targets for the workload (see the module's doc).
pub fn run_multi(ctx: &mut Ctx, kind: Kind) -> Result<ScenarioResult> {
    let id = ctx.id();
    guarded(id, || {
        // The workload, and what each of its calls passes.
        let (n, running, path, sym, offsets);
        match kind {
            Kind::Kprobe => {
                let w = OpenatWorkload::start(ctx)?;
                (n, path, sym, offsets) = (w.n, w.path, w.sym, Vec::new());
                running = w.running;
            }
            Kind::Uprobe => {
                n = ctx.declared_count()?;
                offsets = vec![
                    elf::function_offset(Path::new(HELLO), "hello_greet")?,
                    elf::function_offset(Path::new(HELLO), "hello_add")?,
                ];
                (path, sym) = (String::new(), "");
                running = process::spawn(&[HELLO.to_string(), n.to_string()], true)?;
            }
        }
        let pid = running.pid() as u32;
        // The second target runs once per openat too: do_filp_open, unless the kernel does not
        // let it be traced (7.x), then the syscall wrapper.
        let [wrapper, _] = crate::arch::syscall_symbols("openat");
        let second_sym =
            if crate::tracefs::functions::get(std::path::Path::new(crate::mounts::TRACEFS)).contains("do_filp_open") {
                "do_filp_open"
            } else {
                wrapper.as_str()
            };
        let symbols = [sym, second_sym];
        let targets = match kind {
            Kind::Kprobe => Targets::Kernel { symbols: &symbols },
            Kind::Uprobe => Targets::User { path: HELLO, offsets: &offsets, pid },
        };
        if let Err(rej) = multi::supported(&targets) {
            return Ok(match rej.errno {
                Some(e) if NOT_KNOWN.contains(&e) => link_unsupported(id, kind, &rej),
                _ => rejected(id, &rej, Status::Fail),
            });
        }

        let program = match kind {
            Kind::Kprobe => "kprobe_multi_openat",
            Kind::Uprobe => "uprobe_multi_hello",
        };
        let t = Instant::now();
        let obj = MultiObject::new(bpf::MULTI, pid)?;
        let prog = obj.load(program, kind)?;
        let load_ms = ms(t);
        let link = multi::link(prog.as_fd(), &targets, &[1, 2])?;
        let attach_ms = ms(t);
        let (done, run_ms) = release(running, ctx)?;
        let counts = obj.counts()?;
        let events = obj.events(counts.hits)?;
        let t = Instant::now();
        drop(link);
        drop(prog);
        let detach_ms = ms(t);

        let recorded = (2 * n).min(MAX_EVENTS);
        let mine: Vec<&KmEvent> = events.iter().filter(|e| e.pid == pid && e.tgid == pid).collect();
        let first: Vec<&&KmEvent> = mine.iter().filter(|e| e.cookie == 1).collect();
        let second: Vec<&&KmEvent> = mine.iter().filter(|e| e.cookie == 2).collect();
        let (first_ok, second_ok, first_what, second_what) = match kind {
            Kind::Kprobe => (
                first.iter().filter(|e| e.name() == path).count(),
                second.len(),
                format!("cookie 1 ({sym}) events with filename {path:?}"),
                format!("cookie 2 ({second_sym}) events"),
            ),
            Kind::Uprobe => (
                first.iter().filter(|e| e.name() == "hello, world!\n").count(),
                second.iter().enumerate().filter(|(i, e)| e.aux == 2 * *i as i64 + 1).count(),
                "cookie 1 (hello_greet) events with the message".to_string(),
                "cookie 2 (hello_add) events with a + b = 1, 3, 5, ... in order".to_string(),
            ),
        };
        let mut c = Vec::new();
        let mut problems = workload_problems(&done);
        if kind == Kind::Kprobe {
            let summary;
            (summary, problems) = openat_summary(&done);
            c.extend(openat_loop::made(n, &summary));
        }
        c.extend([
            count(format!("{program} hits of the workload (2 per call)"), 2 * n, counts.hits),
            count(format!("events recorded with pid {pid}"), recorded, mine.len() as u64),
            count(first_what, alternating(recorded, 1), first_ok as u64),
            count(second_what, alternating(recorded, 2), second_ok as u64),
        ]);
        let mut r = verdict(id, c, problems);
        r.timings.attach_ms = attach_ms;
        r.timings.run_ms = run_ms;
        r.timings.detach_ms = detach_ms;
        r.detail = serde_json::json!({
            "object": bpf::MULTI.name,
            "program": program,
            "attach_type": kind.attach_type_name(),
            "targets": match kind {
                Kind::Kprobe => serde_json::json!(symbols),
                Kind::Uprobe => serde_json::json!({"path": HELLO, "offsets": offsets}),
            },
            "cookies": [1, 2],
            "pid": pid,
            "verifier_load_ms": load_ms,
            "hits_filtered_out": counts.others,
        });
        Ok(r.with_excerpt(&events_excerpt(&events, 6)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternating_cookies_split_odd_counts_towards_the_first() {
        assert_eq!((alternating(200, 1), alternating(200, 2)), (100, 100));
        assert_eq!((alternating(1023, 1), alternating(1023, 2)), (512, 511));
    }
}
