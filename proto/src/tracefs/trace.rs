//! Parsing the `trace` file: one entry per line, `TASK-PID [CPU] FLAGS TIMESTAMP: BODY`.
//!
//! Scenarios count entries by pid and body, so a parse that guesses would turn into a wrong
//! count: lines that do not parse are kept apart (`unparsed`) rather than dropped silently, and
//! `CPU:N [LOST M EVENTS]` markers are summed into `lost`.

// The entry line itself is parsed by the one parser host and agent share.
use crate::ftrace::parse_entry;
pub use crate::ftrace::Entry;

/// A `<stack trace>` entry (func_stack_trace, stacktrace option) and its ` => frame` lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack<'a> {
    /// The pid of the entry that printed `<stack trace>`.
    pub pid: i32,
    /// The frames, innermost first, as printed (`do_sys_openat2+0x5/0x140`).
    pub frames: Vec<&'a str>,
}

/// Every stack trace in `text`, each attributed to the entry that printed `<stack trace>`.
pub fn stacks(text: &str) -> Vec<Stack<'_>> {
    let mut out: Vec<Stack> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        if let Some(frame) = line.trim_start().strip_prefix("=> ") {
            if open {
                if let Some(s) = out.last_mut() {
                    s.frames.push(frame.trim());
                }
            }
            continue;
        }
        open = false;
        if let Some(e) = parse_entry(line) {
            if e.body == "<stack trace>" {
                out.push(Stack { pid: e.pid, frames: Vec::new() });
                open = true;
            }
        }
    }
    out
}

/// `do_sys_openat2+0x5/0x140` → (`do_sys_openat2`, true); `do_sys_openat2` → (name, false).
pub fn frame_symbol(frame: &str) -> (&str, bool) {
    match frame.split_once('+') {
        Some((name, off)) => {
            let sized = off.split_once('/').is_some_and(|(a, b)| a.starts_with("0x") && b.starts_with("0x"));
            (name, sized)
        }
        None => (frame.split_whitespace().next().unwrap_or(frame), false),
    }
}

/// A parsed `trace` file.
#[derive(Debug, Default)]
pub struct Trace<'a> {
    /// Every entry line, in file order.
    pub entries: Vec<Entry<'a>>,
    /// Sum of `[LOST N EVENTS]` markers.
    pub lost: u64,
    /// Non-comment lines that are not entries.
    pub unparsed: Vec<&'a str>,
}

/// Parse the text of a `trace` file.
pub fn parse(text: &str) -> Trace<'_> {
    let mut out = Trace::default();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(n) = lost_marker(trimmed) {
            out.lost += n;
        } else if let Some(e) = parse_entry(line) {
            out.entries.push(e);
        } else {
            out.unparsed.push(line);
        }
    }
    out
}

/// `CPU:0 [LOST 123 EVENTS]`.
fn lost_marker(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("CPU:")?;
    let (_, rest) = rest.split_once("[LOST ")?;
    rest.strip_suffix(" EVENTS]")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines in the shape of a Debian 6.1 guest's `trace`.
    const SAMPLE: &str = "\
# tracer: nop
#
# entries-in-buffer/entries-written: 3/3   #P:1
#
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
     openat-loop-75      [000] .....     3.216307: openat: (do_sys_openat2+0x0/0x140) dfd=-100 path=\"/tmp/a b\"
 <...>-12 (     12) [001] d..1.   10.5: sys_openat(dfd: ffffff9c, filename: 7ffd, flags: 0, mode: 0)
 openat-loop-75 [000] ..... 3.3: do_sys_openat2 <-__x64_sys_openat
CPU:1 [LOST 7 EVENTS]
garbage line
";

    #[test]
    fn parses_entries_lost_markers_and_keeps_unparsed() {
        let t = parse(SAMPLE);
        assert_eq!(t.entries.len(), 3);
        let e = &t.entries[0];
        assert_eq!((e.task, e.pid, e.cpu), ("openat-loop", 75, 0));
        assert!(e.body.starts_with("openat: (do_sys_openat2"));
        assert_eq!(e.arg("dfd"), Some("-100"));
        assert_eq!(e.arg("path"), Some("/tmp/a b"));
        assert_eq!(e.arg("missing"), None);
        assert_eq!((t.entries[1].task, t.entries[1].pid), ("<...>", 12));
        assert!(t.entries[1].body.starts_with("sys_openat("));
        assert_eq!(t.entries[2].body, "do_sys_openat2 <-__x64_sys_openat");
        assert_eq!(t.lost, 7);
        assert_eq!(t.unparsed, vec!["garbage line"]);
    }

    #[test]
    fn key_value_fields_include_the_first_pair() {
        let line = "  yield-loop-90 [000] d..2.  5.1: sched_switch: prev_comm=yield-loop prev_pid=90 \
                    prev_prio=120 prev_state=R ==> next_comm=yield-loop next_pid=91 next_prio=120";
        let t = parse(line);
        let e = &t.entries[0];
        assert_eq!(e.field("prev_comm"), Some("yield-loop"));
        assert_eq!(e.field("prev_pid"), Some("90"));
        assert_eq!(e.field("next_pid"), Some("91"));
        assert_eq!(e.field("pid"), None);
    }

    #[test]
    fn stack_traces_follow_their_entry() {
        let text = "\
 openat-loop-80 [000] ..... 3.1: do_sys_openat2+0x4/0x140 <-__x64_sys_openat+0x55/0x80
 openat-loop-80 [000] ..... 3.2: <stack trace>
 => do_sys_openat2+0x5/0x140
 => __x64_sys_openat+0x55/0x80
 => do_syscall_64+0x58/0xc0
 openat-loop-80 [000] ..... 3.3: do_sys_openat2+0x4/0x140 <-__x64_sys_openat+0x55/0x80
";
        let s = stacks(text);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].pid, 80);
        assert_eq!(s[0].frames.len(), 3);
        assert_eq!(frame_symbol(s[0].frames[2]), ("do_syscall_64", true));
        assert_eq!(frame_symbol("do_syscall_64"), ("do_syscall_64", false));
    }

    #[test]
    fn parses_real_function_stacks() {
        let text = include_str!("fixtures/stack-6.12.txt");
        let s = stacks(text);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].frames[0], "[FTRACE TRAMPOLINE]");
        assert_eq!(s[0].frames.len(), 5);
        assert_eq!(frame_symbol(s[0].frames[1]), ("do_sys_openat2", true));
        // The excerpt ends right after the third `<stack trace>` line.
        assert!(s[2].frames.is_empty());
        let t = parse(text);
        assert_eq!(t.entries.len(), 6);
        assert!(t.unparsed.len() >= 10, "frame lines are not entries");
    }

    #[test]
    fn parses_real_irq_handler_events() {
        let t = parse(include_str!("fixtures/irq-6.1.txt"));
        assert_eq!(t.entries.len(), 10);
        assert!(t.entries.iter().all(|e| e.field("irq") == Some("4")));
        assert_eq!(t.entries[0].field("name"), Some("ttyS0"));
        assert_eq!(t.entries[3].field("ret"), Some("unhandled"));
    }
}
