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

/// The kind of kernel trouble a console line announces (see [`classify`] for the texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistressKind {
    /// `Kernel panic - not syncing`: the guest is gone.
    Panic,
    /// `Oops:` or a general protection fault.
    Oops,
    /// `BUG:` or `kernel BUG at` (other than a soft lockup).
    Bug,
    /// `WARNING:` or the `cut here` line that opens a warning.
    Warn,
    /// `BUG: soft lockup`: a CPU stuck in the kernel.
    SoftLockup,
    /// An RCU stall report.
    RcuStall,
    /// `INFO: task ... blocked for more than`: the hung-task detector.
    HungTask,
}

/// A console line that announced kernel trouble, kept as evidence for the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distress {
    /// What it announced.
    pub kind: DistressKind,
    /// The console line (at most 1024 characters).
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

/// QEMU's own words (its stderr) that mean the accelerator, not the guest, failed: KVM could not
/// run or emulate an instruction (QEMU then *pauses* the guest rather than exiting, so waiting for
/// the guest is pointless), or QEMU's KVM setup asserted or aborted.
///
/// Sources: QEMU 7.2 `accel/kvm/kvm-all.c` ("KVM internal error. Suberror: %d", "kvm run
/// failed %s", "KVM: entry failed, hardware error 0x%x", "emulation failure"),
/// `target/i386/kvm/kvm.c` (`kvm_buf_set_msrs` assertion after "error: failed to set MSR").
pub fn accel_failure(qemu_line: &str) -> bool {
    const PATTERNS: &[&str] = &[
        "KVM internal error",
        "kvm run failed",
        "KVM: entry failed",
        "emulation failure",
        "failed to set MSR",
        "kvm_buf_set_msrs",
        "Assertion `",
        "could not access KVM kernel module",
        "failed to initialize kvm",
        "failed to initialize KVM",
        "KVM_CREATE_VM",
    ];
    PATTERNS.iter().any(|p| qemu_line.contains(p))
}

/// Lines of QEMU's stderr kept as evidence.
const QEMU_LINES: usize = 24;

/// Shared state the console task fills and the runner reads.
#[derive(Debug, Default)]
pub struct ConsoleState {
    tail: VecDeque<String>,
    distress: Vec<Distress>,
    partial: Vec<u8>,
    /// Console bytes received so far; 0 after boot means the guest never ran (a broken KVM).
    pub bytes: u64,
    /// When the first console byte came.
    pub first_byte: Option<std::time::Instant>,
    /// QEMU's stderr, bounded.
    qemu: VecDeque<String>,
    /// The first QEMU line that said the accelerator failed.
    accel: Option<String>,
}

impl ConsoleState {
    /// Feed raw console bytes; complete lines are classified and kept in the tail.
    pub fn feed(&mut self, data: &[u8]) {
        if self.first_byte.is_none() && !data.is_empty() {
            self.first_byte = Some(std::time::Instant::now());
        }
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

    /// Every distress line seen since the guest started, in order.
    pub fn distress(&self) -> &[Distress] {
        &self.distress
    }

    /// The first panic line, if the kernel panicked.
    pub fn panicked(&self) -> Option<&Distress> {
        self.distress.iter().find(|d| d.kind == DistressKind::Panic)
    }

    /// One line of QEMU's stderr: kept apart from the guest's console (and in its tail, marked
    /// `[qemu]`, so an error report shows both in order).
    pub fn feed_qemu(&mut self, line: &str) {
        let line: String = line.chars().take(MAX_LINE).collect();
        if self.accel.is_none() && accel_failure(&line) {
            self.accel = Some(line.clone());
        }
        if self.qemu.len() == QEMU_LINES {
            self.qemu.pop_front();
        }
        self.qemu.push_back(line.clone());
        self.push_line(format!("[qemu] {line}"));
    }

    /// The QEMU line that said the accelerator failed, if one did.
    pub fn accel_failed(&self) -> Option<&str> {
        self.accel.as_deref()
    }

    /// What QEMU wrote on stderr (the last lines).
    pub fn qemu_stderr(&self) -> String {
        self.qemu.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// The console state shared by the task that reads the console and the guest's owner.
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

    /// QEMU's stderr as captured on the two broken-KVM host kinds (an Intel host with nested KVM
    /// that cannot emulate the kernel's first `lock cmpxchg16b`; an AMD host where `-cpu host`
    /// makes QEMU assert), and lines that are not accelerator failures.
    #[test]
    fn recognises_accelerator_failures_in_qemu_stderr() {
        let broken = [
            "KVM internal error. Suberror: 1",
            "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69",
            "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.",
            "error: kvm run failed Bad address",
            "KVM: entry failed, hardware error 0x80000021",
        ];
        for l in broken {
            assert!(accel_failure(l), "{l}");
        }
        let fine = [
            "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.80000001H:ECX.svm [bit 2]",
            "qemu-system-x86_64: terminating on signal 15 from pid 1234",
            "extra data[0]: 0x0000000000000001",
        ];
        for l in fine {
            assert!(!accel_failure(l), "{l}");
        }
        let mut c = ConsoleState::default();
        c.feed_qemu("qemu-system-x86_64: warning: something");
        assert_eq!(c.accel_failed(), None);
        c.feed_qemu("KVM internal error. Suberror: 1");
        c.feed_qemu("extra data[0]: 0x0000000000000001");
        assert_eq!(c.accel_failed(), Some("KVM internal error. Suberror: 1"));
        assert!(c.qemu_stderr().ends_with("extra data[0]: 0x0000000000000001"));
        assert!(c.tail().contains("[qemu] KVM internal error"));
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
