//! Parsing the `trace` file: one entry per line, `TASK-PID [CPU] FLAGS TIMESTAMP: BODY`.
//!
//! Scenarios count entries by pid and body, so a parse that guesses would turn into a wrong
//! count: lines that do not parse are kept apart (`unparsed`) rather than dropped silently, and
//! `CPU:N [LOST M EVENTS]` markers are summed into `lost`.

/// One trace entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub task: &'a str,
    pub pid: i32,
    pub cpu: u32,
    pub timestamp: f64,
    /// Everything after `TIMESTAMP: ` (`openat: (do_sys_openat2+0x0/0x...) ...`,
    /// `sys_openat(dfd: ...)`, `do_sys_openat2 <-__x64_sys_openat`).
    pub body: &'a str,
}

impl Entry<'_> {
    /// For a probe entry (`name: (place) a=1 b="x y"`), the value of argument `key`, with the
    /// quotes of a string argument removed.
    pub fn arg(&self, key: &str) -> Option<&str> {
        probe_arg(self.body, key)
    }
}

#[derive(Debug, Default)]
pub struct Trace<'a> {
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

fn parse_entry(line: &str) -> Option<Entry<'_>> {
    // The CPU column is the first ` [digits]`; task names may hold spaces and dashes but the
    // kernel prints the CPU right after TASK-PID (and the optional `(TGID)` column).
    let mut search = 0;
    let (cpu_start, cpu_end) = loop {
        let at = search + line[search..].find(" [")?;
        let inner_start = at + 2;
        let close = inner_start + line[inner_start..].find(']')?;
        let inner = &line[inner_start..close];
        if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
            break (at, close);
        }
        search = inner_start;
    };
    let cpu: u32 = line[cpu_start + 2..cpu_end].parse().ok()?;
    let mut head = line[..cpu_start].trim();
    if head.ends_with(')') {
        // record-tgid: `task-pid (  tgid)`.
        head = head[..head.rfind('(')?].trim_end();
    }
    let (task, pid) = head.rsplit_once('-')?;
    let pid: i32 = pid.parse().ok()?;
    let rest = &line[cpu_end + 1..];
    // The timestamp is the first whitespace-separated token that is `<float>:`.
    let mut offset = 0;
    for token in rest.split_inclusive(char::is_whitespace) {
        let t = token.trim_end();
        offset += token.len();
        if let Some(num) = t.strip_suffix(':') {
            if let Ok(timestamp) = num.parse::<f64>() {
                let body = rest[offset..].trim_start();
                return Some(Entry { task: task.trim(), pid, cpu, timestamp, body });
            }
        }
    }
    None
}

/// The value of `key=` in a probe entry's body.
fn probe_arg<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!(" {key}=");
    let start = body.find(&needle)? + needle.len();
    let rest = &body[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        return Some(&quoted[..quoted.find('"')?]);
    }
    Some(rest.split_whitespace().next().unwrap_or(""))
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
}
