//! Watches the guest console (ttyS0 on QEMU's stdout): copies it to a log file, keeps a bounded
//! tail for error reports, and recognises the kernel's distress lines (panic, oops, BUG, WARN,
//! soft lockup, RCU stall) so that a dying guest is reported as such, with the line that said so.
//!
//! Results never come from here: the channel carries those. This is evidence for `error`.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Lines kept for error reports.
pub const TAIL_LINES: usize = 60;
/// Longest console line kept (a guest can print anything; the tail stays bounded).
const MAX_LINE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistressKind {
    Panic,
    Oops,
    Bug,
    Warn,
    SoftLockup,
    RcuStall,
    HungTask,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distress {
    pub kind: DistressKind,
    pub line: String,
}

/// Classify one console line.
pub fn classify(line: &str) -> Option<DistressKind> {
    // Strip the printk timestamp, if any.
    let l = match line.trim_start().strip_prefix('[') {
        Some(rest) => rest.split_once(']').map(|x| x.1).unwrap_or(rest).trim_start(),
        None => line.trim_start(),
    };
    if l.starts_with("Kernel panic - not syncing") {
        Some(DistressKind::Panic)
    } else if l.starts_with("Oops:") || l.contains("general protection fault") {
        Some(DistressKind::Oops)
    } else if l.contains("BUG: soft lockup") {
        Some(DistressKind::SoftLockup)
    } else if l.starts_with("BUG:") || l.starts_with("kernel BUG at") {
        Some(DistressKind::Bug)
    } else if l.starts_with("WARNING:") || l.starts_with("------------[ cut here ]") {
        Some(DistressKind::Warn)
    } else if l.contains("rcu_sched self-detected stall")
        || l.contains("rcu_preempt detected stall")
        || l.contains("detected stalls on CPUs/tasks")
    {
        Some(DistressKind::RcuStall)
    } else if l.starts_with("INFO: task ") && l.contains("blocked for more than") {
        Some(DistressKind::HungTask)
    } else {
        None
    }
}

/// Shared state the console task fills and the runner reads.
#[derive(Debug, Default)]
pub struct ConsoleState {
    tail: VecDeque<String>,
    distress: Vec<Distress>,
    partial: Vec<u8>,
    pub bytes: u64,
}

impl ConsoleState {
    /// Feed raw console bytes; complete lines are classified and kept in the tail.
    pub fn feed(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        for &b in data {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.partial).trim_end_matches('\r').to_string();
                self.partial.clear();
                self.push_line(line);
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(b);
            }
        }
    }

    fn push_line(&mut self, line: String) {
        if let Some(kind) = classify(&line) {
            if self.distress.len() < 32 {
                self.distress.push(Distress { kind, line: line.clone() });
            }
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// The last lines, the unfinished one included.
    pub fn tail(&self) -> String {
        let mut s: Vec<String> = self.tail.iter().cloned().collect();
        if !self.partial.is_empty() {
            s.push(String::from_utf8_lossy(&self.partial).to_string());
        }
        s.join("\n")
    }

    pub fn distress(&self) -> &[Distress] {
        &self.distress
    }

    pub fn panicked(&self) -> Option<&Distress> {
        self.distress.iter().find(|d| d.kind == DistressKind::Panic)
    }
}

pub type SharedConsole = Arc<Mutex<ConsoleState>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_distress_lines_from_real_consoles() {
        let cases = [
            (
                "[    2.345678] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
                Some(DistressKind::Panic),
            ),
            ("[   12.000001] BUG: kernel NULL pointer dereference, address: 0000000000000000", Some(DistressKind::Bug)),
            ("[   30.1] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [a:1]", Some(DistressKind::SoftLockup)),
            ("[   30.1] BUG: soft lockup - CPU#0 stuck for 22s! [a:1]", Some(DistressKind::SoftLockup)),
            ("[    5.0] Oops: 0002 [#1] PREEMPT SMP NOPTI", Some(DistressKind::Oops)),
            ("[    5.0] WARNING: CPU: 0 PID: 1 at kernel/trace/trace.c:100 f+0x1/0x2", Some(DistressKind::Warn)),
            ("[   60.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", Some(DistressKind::RcuStall)),
            ("[  1.0] Run /init as init process", None),
            ("kmatrix-agent: hello sent after 12 ms", None),
        ];
        for (line, want) in cases {
            assert_eq!(classify(line), want, "{line}");
        }
    }

    #[test]
    fn tail_is_bounded_and_keeps_partial_line() {
        let mut c = ConsoleState::default();
        for i in 0..(TAIL_LINES + 10) {
            c.feed(format!("line {i}\r\n").as_bytes());
        }
        c.feed(b"Kernel panic - not syncing: x\nunfinished");
        let t = c.tail();
        assert!(!t.contains("line 0\n"));
        assert!(t.ends_with("Kernel panic - not syncing: x\nunfinished"));
        assert_eq!(c.panicked().unwrap().line, "Kernel panic - not syncing: x");
        assert_eq!(t.lines().count(), TAIL_LINES + 1);
    }
}
