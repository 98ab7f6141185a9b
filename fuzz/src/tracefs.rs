//! Targets for the tracefs parsers (`kmatrix_proto::tracefs`, `kmatrix_proto::ftrace`): the
//! text a guest kernel prints in `trace`, an event's `format`, `kprobe_profile`, `hist`, the
//! README and `per_cpu/*/stats`, read by the agent and, for trace lines and function_graph, by
//! the host too (a result's excerpt). Each takes bytes as the agent reads a file: lossy UTF-8.
//! What they return on good input is their unit tests' business, not these.

use kmatrix_proto::ftrace::{graph, parse_entry};
use kmatrix_proto::tracefs::{format, hist, profile, readme, stats, trace};

/// Keys the scenarios look up, plus one from the input so that a key the input names is found.
fn keys(text: &str) -> Vec<&str> {
    let mut k = vec!["dfd", "path", "ptr", "flags", "pid", "prev_comm", "irq", ""];
    k.extend(text.split(['=', ' ', ':']).nth(1));
    k
}

/// A `trace` file: entries, `[LOST N EVENTS]` markers, stacks and their frames, and every
/// lookup a scenario makes of an entry.
pub fn trace_lines(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let t = trace::parse(&text);
    let keys = keys(&text);
    for e in t.entries.iter().take(64) {
        for k in &keys {
            let _ = (e.arg(k), e.field(k));
        }
    }
    for s in trace::stacks(&text) {
        for f in s.frames {
            let _ = trace::frame_symbol(f);
        }
    }
    for line in text.lines().take(64) {
        let _ = parse_entry(line);
    }
}

/// function_graph output, whole and line by line.
pub fn function_graph(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = graph::parse(&text);
    let _ = lines.iter().filter_map(|l| l.duration_us).sum::<f64>();
    for line in text.lines().take(64) {
        let _ = graph::parse_line(line);
    }
}

/// An event's `format` file, then the lookups the format scenarios make.
pub fn event_format(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match format::parse(&text) {
        Ok(f) => {
            let _ = (f.field("filename"), f.own_fields().count());
            let _ = serde_json::to_string(&f);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `kprobe_profile` / `uprobe_profile`.
pub fn kprobe_profile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = profile::parse(&text);
    let _ = profile::find(&lines, "kmatrix", "openat");
    if let Some(l) = lines.first() {
        let (g, e) = l.name.split_once('/').unwrap_or(("", &l.name));
        let _ = profile::find(&lines, g, e);
    }
}

/// An event's `hist` file, and the hitcount lookup of the hist scenario.
pub fn hist_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let h = hist::parse(&text);
    for v in [0, 1, 123, -1, i64::MAX, i64::MIN] {
        let _ = h.hitcount("common_pid", v);
    }
}

/// The tracefs README's probe syntax lines.
pub fn readme_syntaxes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let s = readme::probe_syntaxes(&text);
    let _ = s.iter().any(|s| s.text.starts_with("e["));
}

/// `per_cpu/cpu<N>/stats`; `lost()` adds three counters the kernel printed.
pub fn buffer_stats(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(s) = stats::parse(&text) {
        let _ = s.lost();
    }
}
