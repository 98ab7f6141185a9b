//! `kprobe.debugfs.*`: what debugfs says about the kprobes a scenario registered — the notes'
//! "Active kprobes \[k\] and kretprobes \[r\] show up in /sys/kernel/debug/kprobes/list"
//! (Documentation/trace/kprobes.rst, "The kprobes debugfs interface").
//!
//! Not for defining probes (`tracefs.rs`) or the blacklist (`blacklist.rs`).

use crate::mounts::DEBUGFS;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::openat_loop;
use crate::scenario::support::probe_events::GROUP;
use crate::scenario::support::verdict::{count, verdict};
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;

/// One line of `kprobes/list`: `ffffffff812f1230  k  do_sys_openat2+0x0    [FTRACE]`.
#[derive(Debug, PartialEq)]
struct Listed {
    kind: String,
    place: String,
    flags: Vec<String>,
}

fn parse_list(text: &str) -> Vec<Listed> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (_addr, kind, place) = (w.next()?, w.next()?, w.next()?);
            // `[DISABLED][FTRACE]`: the flags follow each other without spaces.
            let rest: String = w.collect();
            let flags = rest.split(['[', ']']).filter(|f| !f.is_empty()).map(str::to_string).collect();
            Some(Listed { kind: kind.to_string(), place: place.to_string(), flags })
        })
        .collect()
}

/// Define `p:` and `r:` on the openat function in kprobe_events: `kprobes/list` shows one `k`
/// and one `r` line at `<function>+0x0`, `[DISABLED]` until their events are enabled, then
/// without it, both `[FTRACE]` (kprobes on an ftrace site, CONFIG_KPROBES_ON_FTRACE); removed
/// from kprobe_events, neither is listed.
// debugfs kprobes/list and its [DISABLED] flag date from 2.6.30 ([FTRACE] from 3.4).
pub const LIST: Scenario = Meta::new("kprobe.debugfs.list", "3.4")
    .summary(
        "kprobes/list shows the p: and r: probes on the openat function as k and r at +0x0: [DISABLED] then \
         enabled, [FTRACE] both times, gone once removed",
    )
    .requires(&[
        Req::Tracefs,
        Req::File("kprobe_events"),
        Req::Debugfs("kprobes/list"),
        Req::Config { option: "CONFIG_KPROBES_ON_FTRACE", tracefs: "kprobe_events" },
    ])
    .run(list);

fn list(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let sym = openat_loop::symbol(ctx)?;
    let path = format!("{DEBUGFS}/kprobes/list");
    let read = || -> Result<Vec<Listed>> {
        let text = std::fs::read_to_string(&path).with_context(|| format!("read({path}) failed"))?;
        Ok(parse_list(&text).into_iter().filter(|l| l.place == format!("{sym}+0x0")).collect())
    };
    let before = read()?;
    ctx.tfs.write("kprobe_events", &format!("p:{GROUP}/list_entry {sym}"))?;
    ctx.tfs.write("kprobe_events", &format!("r:{GROUP}/list_return {sym}"))?;
    let defined = read()?;
    for e in ["list_entry", "list_return"] {
        ctx.tfs.write(&format!("events/{GROUP}/{e}/enable"), "1")?;
    }
    let enabled_text = std::fs::read_to_string(&path).with_context(|| format!("read({path}) failed"))?;
    let enabled = read()?;
    ctx.tfs.write(&format!("events/{GROUP}/enable"), "0")?;
    ctx.tfs.truncate("kprobe_events")?;
    let removed = read()?;

    let has = |v: &[Listed], kind: &str, flag: &str, with: bool| {
        v.iter().filter(|l| l.kind == kind && l.flags.iter().any(|f| f == flag) == with).count() as u64
    };
    let mut r = verdict(
        ctx.id(),
        vec![
            count(format!("lines for {sym}+0x0 before defining"), 0, before.len() as u64),
            count("k lines once defined, [DISABLED]", 1, has(&defined, "k", "DISABLED", true)),
            count("r lines once defined, [DISABLED]", 1, has(&defined, "r", "DISABLED", true)),
            count("lines once defined", 2, defined.len() as u64),
            count("k lines once enabled, not [DISABLED]", 1, has(&enabled, "k", "DISABLED", false)),
            count("r lines once enabled, not [DISABLED]", 1, has(&enabled, "r", "DISABLED", false)),
            count(
                "enabled lines with [FTRACE]",
                2,
                enabled.iter().filter(|l| l.flags.iter().any(|f| f == "FTRACE")).count() as u64,
            ),
            count("lines once removed", 0, removed.len() as u64),
        ],
        Vec::new(),
    );
    r.detail = serde_json::json!({
        "symbol": sym,
        "defined": defined.iter().map(|l| format!("{} {} {:?}", l.kind, l.place, l.flags)).collect::<Vec<_>>(),
        "enabled": enabled.iter().map(|l| format!("{} {} {:?}", l.kind, l.place, l.flags)).collect::<Vec<_>>(),
    });
    Ok(r.with_excerpt(&enabled_text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_with_flags() {
        let text = "ffffffff812f1230  k  do_sys_openat2+0x0    [DISABLED][FTRACE]\n\
                    ffffffff812f1230  r  do_sys_openat2+0x0    [FTRACE]\n\
                    ffffffff81000000  k  other+0x4\n";
        let l = parse_list(text);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].flags, ["DISABLED", "FTRACE"]);
        assert_eq!(l[1], Listed { kind: "r".into(), place: "do_sys_openat2+0x0".into(), flags: vec!["FTRACE".into()] });
        assert!(l[2].flags.is_empty());
    }
}
