//! Bringing tracefs back to its boot state between scenarios, and checking that it got there.
//!
//! Every scenario starts from: tracer `nop`, tracing on, no event enabled, no dynamic probe, no
//! function or pid filter, the options and buffer size it changed restored, its event triggers
//! and instances removed, and an empty buffer. Leftover state is a bug, so [`Tracefs::leftovers`] looks for it after the
//! reset instead of trusting that every write worked.

use super::Tracefs;
use anyhow::{bail, Result};

/// List files cleared by opening them with `O_TRUNC`; each is skipped when the kernel lacks it.
/// Events are disabled before the probe lists, which refuse (`EBUSY`) while a probe is enabled.
const LISTS: &[&str] = &[
    "set_event",
    "set_ftrace_filter",
    "set_ftrace_notrace",
    "set_graph_function",
    "set_graph_notrace",
    "set_ftrace_pid",
    "set_ftrace_notrace_pid",
    "set_event_pid",
    "set_event_notrace_pid",
    "kprobe_events",
    "uprobe_events",
    "dynamic_events",
];

impl Tracefs {
    /// Undo everything; every step is attempted, and the error lists the ones that failed.
    pub fn reset(&mut self) -> Result<()> {
        let mut failed: Vec<String> = Vec::new();
        let note = |failed: &mut Vec<String>, r: Result<(), super::Refused>| {
            if let Err(e) = r {
                failed.push(e.to_string());
            }
        };
        note(&mut failed, self.write("tracing_on", "0"));
        if self.exists("current_tracer") {
            note(&mut failed, self.write("current_tracer", "nop"));
        }
        let touched = std::mem::take(&mut self.touched);
        // Triggers first: a hist trigger keeps its event soft-enabled until it is removed.
        for (rel, trigger) in touched.triggers.iter().rev() {
            note(&mut failed, self.write(rel, &format!("!{trigger}")));
            if !self.check_after_reset.contains(rel) {
                self.check_after_reset.push(rel.clone());
            }
        }
        note(&mut failed, self.write("events/enable", "0"));
        for rel in &touched.filters {
            // The event may be gone with its probe; only an existing filter needs clearing.
            if self.exists(rel) {
                note(&mut failed, self.write(rel, "0"));
            }
        }
        for rel in LISTS {
            if self.exists(rel) {
                note(&mut failed, self.truncate(rel));
            }
        }
        if self.exists("max_graph_depth") {
            note(&mut failed, self.write("max_graph_depth", "0"));
        }
        for (name, value) in &touched.options {
            note(&mut failed, self.write(&format!("options/{name}"), value));
        }
        for name in &touched.instances {
            let rel = format!("instances/{name}");
            if let Err(e) = std::fs::remove_dir(self.path(&rel)) {
                failed.push(format!("rmdir({rel}) failed: {e}"));
            }
        }
        if let Some(kb) = &touched.buffer_size_kb {
            note(&mut failed, self.write("buffer_size_kb", kb));
        }
        if let Some(clock) = &touched.trace_clock {
            note(&mut failed, self.write("trace_clock", clock));
        }
        note(&mut failed, self.truncate("trace"));
        note(&mut failed, self.write("tracing_on", "1"));
        if !failed.is_empty() {
            bail!("tracefs reset incomplete: {}", failed.join("; "));
        }
        Ok(())
    }

    /// What is not in the boot state; empty when clean.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut expect = |rel: &str, ok: &dyn Fn(&str) -> bool| {
            if !self.exists(rel) {
                return;
            }
            match self.read(rel) {
                Ok(text) if ok(text.trim()) => {}
                Ok(text) => out.push(format!("{rel}: {:?}", crate::excerpt::head(&text, 3))),
                Err(e) => out.push(e.to_string()),
            }
        };
        let empty = |t: &str| t.is_empty();
        let comments_only = |t: &str| t.lines().all(|l| l.trim().is_empty() || l.starts_with('#'));
        expect("current_tracer", &|t| t == "nop");
        expect("tracing_on", &|t| t == "1");
        expect("set_event", &empty);
        expect("kprobe_events", &empty);
        expect("uprobe_events", &empty);
        expect("dynamic_events", &empty);
        expect("set_ftrace_filter", &comments_only);
        expect("set_ftrace_notrace", &comments_only);
        expect("set_graph_function", &comments_only);
        expect("set_ftrace_pid", &|t| t.is_empty() || t == "no pid");
        expect("set_event_pid", &empty);
        expect("max_graph_depth", &|t| t == "0");
        expect("trace", &comments_only);
        for rel in &self.check_after_reset {
            expect(rel, &comments_only);
        }
        out
    }
}
