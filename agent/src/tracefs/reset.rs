//! Bringing tracefs back to its boot state between scenarios, and checking that it got there.
//!
//! Every scenario starts from: tracer `nop`, tracing on, no event enabled, no dynamic probe, no
//! function or pid filter, the options and buffer size it changed restored, its event triggers
//! and instances removed, and an empty buffer. Leftover state is a bug, so [`Tracefs::leftovers`] looks for it after the
//! reset instead of trusting that every write worked.

use super::Tracefs;
use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, Ordering};

/// Tracefs is known to be in its boot state: a reset succeeded, the check after it found nothing
/// left over, and nothing has run since. A reset then has nothing to undo — it would write what
/// the last one wrote — so [`Tracefs::reset`] skips it; on Debian 5.10 under TCG every reset costs
/// tens of milliseconds of `synchronize_rcu` (clearing the pid lists and the ring buffer), twice
/// per scenario without this. Cleared by every reset (the scenario about to run changes tracefs)
/// and by [`state_unknown`] (the agent runs a program of the host's, which may write tracefs).
static KNOWN_CLEAN: AtomicBool = AtomicBool::new(false);

/// Something the agent does not track may have changed tracefs: the next reset is a full one.
pub fn state_unknown() {
    KNOWN_CLEAN.store(false, Ordering::SeqCst);
}

/// List files cleared by opening them with `O_TRUNC`; each is skipped when the kernel lacks it
/// or when it reads as empty already (see [`is_clear`]). Events are disabled before the probe
/// lists, which refuse (`EBUSY`) while a probe is enabled.
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
        let clean = KNOWN_CLEAN.swap(false, Ordering::SeqCst);
        if clean && self.touched.is_empty() {
            self.verified_reset.set(true);
            return Ok(());
        }
        self.verified_reset.set(false);
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
            // Truncating an empty list is not free: on Debian 5.10 every `O_TRUNC` of
            // `set_graph_notrace` swaps in a new hash and waits for `synchronize_rcu_tasks_rude`
            // (~95 ms under TCG, measured), and the pid lists wait for RCU too. What reads as
            // empty is left alone; a list that cannot be read is cleared all the same.
            match self.read(rel) {
                Ok(text) if is_clear(&text) => {}
                Ok(_) => note(&mut failed, self.truncate(rel)),
                Err(_) if !self.exists(rel) => {}
                Err(_) => note(&mut failed, self.truncate(rel)),
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
        // Only now: the writes above went through this handle and would have cleared it.
        self.verified_reset.set(true);
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
        expect("set_graph_notrace", &comments_only);
        expect("set_ftrace_pid", &|t| t.is_empty() || t == "no pid");
        expect("set_ftrace_notrace_pid", &|t| t.is_empty() || t == "no pid");
        expect("set_event_pid", &empty);
        expect("set_event_notrace_pid", &empty);
        expect("max_graph_depth", &|t| t == "0");
        expect("trace", &comments_only);
        for rel in &self.check_after_reset {
            expect(rel, &comments_only);
        }
        // Right after a reset that worked (nothing written through this handle since) and found
        // clean: the next reset may be skipped until something runs.
        if out.is_empty() && self.verified_reset.get() {
            KNOWN_CLEAN.store(true, Ordering::SeqCst);
        }
        out
    }
}

/// A list file's text when it holds nothing: empty, or only the kernel's comment lines
/// (`#### all functions enabled ####`) or the pid lists' `no pid`. Anything else is an entry.
fn is_clear(text: &str) -> bool {
    text.lines().map(str::trim).all(|l| l.is_empty() || l.starts_with('#') || l == "no pid")
}

#[cfg(test)]
mod tests {
    use super::is_clear;

    #[test]
    fn only_comments_and_no_pid_read_as_clear() {
        assert!(is_clear(""));
        assert!(is_clear("#### all functions enabled ####\n"));
        assert!(is_clear("#### no functions disabled ####\n"));
        assert!(is_clear("no pid\n"));
        assert!(!is_clear("p:kprobes/kmx do_sys_openat2\n"), "a probe is an entry");
        assert!(!is_clear("do_sys_openat2\n"), "a filtered function is an entry");
        assert!(!is_clear("1\n"), "a pid is an entry");
        assert!(!is_clear("#### all functions enabled ####\ndo_sys_openat2:traceon:unlimited\n"));
    }
}
