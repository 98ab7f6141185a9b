//! The text ftrace prints that host and agent both read: an entry line of `trace`
//! (`TASK-PID [CPU] FLAGS TIMESTAMP: BODY`) and a line of the function_graph tracer. The agent
//! counts with them; the host turns a result's excerpt into a Chrome trace with them. One parser
//! for both sides, like [`crate::KernelVersion`]: pure string parsing, no I/O (the agent's
//! `tracefs` module owns the files themselves and everything else about them).

/// One trace entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    /// The task's name (`openat-loop`; `<...>` when the kernel no longer knew it).
    pub task: &'a str,
    /// The task's pid (a thread id).
    pub pid: i32,
    /// The CPU it ran on.
    pub cpu: u32,
    /// Seconds, as the trace clock printed them.
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

    /// For an event printed as `key=value` pairs (`prev_comm=x prev_pid=1 ...`, `irq=4 ret=handled`),
    /// the value of `key`, the first pair included.
    pub fn field(&self, key: &str) -> Option<&str> {
        let needle = format!("{key}=");
        let start = if self.body.starts_with(&needle) { 0 } else { self.body.find(&format!(" {needle}"))? + 1 };
        self.body[start + needle.len()..].split_whitespace().next()
    }
}

/// One entry line of `trace`, `None` when the line is not one (a comment, a `=> frame` line, a
/// lost-events marker).
pub fn parse_entry(line: &str) -> Option<Entry<'_>> {
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

pub mod graph {
    //! Parsing `function_graph` output with `funcgraph-proc` (and optionally `funcgraph-tail` and
    //! `funcgraph-retval`): one [`Line`] per call, leaf or close, with its duration.
    //!
    //! ```text
    //!  0)  openat--80    |               |  do_sys_openat2() {
    //!  0)  openat--80    |   3.456 us    |    do_filp_open();
    //!  0)  openat--80    | + 12.345 us   |  } /* do_sys_openat2 */
    //!  0)  openat--80    |   5.120 us    |  do_sys_openat2(); /* = 0x3 */
    //! ```
    //! The duration column may carry a latency marker (`+`, `!`, `#`, `*`, `@`, `$`) before the
    //! number. With `funcgraph-abstime` each line starts with the kernel's timestamp in seconds
    //! (` 3250.912539 |   0)  openat--80 | ...`): of the call's entry on an open or a leaf, of
    //! its return on a close. Banners (`------`, `=> `) and comments are not lines.

    #[derive(Debug, Clone, PartialEq)]
    /// What a function_graph line is.
    pub enum Kind<'a> {
        /// `name() {`: a call with children; its duration is on the matching close.
        Open(&'a str),
        /// `name();`: a call without traced children, with its duration.
        Leaf(&'a str),
        /// `}` or `} /* name */` (funcgraph-tail): the end of an open call, with its duration.
        Close(Option<&'a str>),
    }

    #[derive(Debug, Clone, PartialEq)]
    /// One call line of a function_graph trace.
    pub struct Line<'a> {
        /// The CPU column.
        pub cpu: u32,
        /// From the TASK-PID column (funcgraph-proc); None without it.
        pub pid: Option<i32>,
        /// Microseconds, when the line has a duration.
        pub duration_us: Option<f64>,
        /// Depth of the call: indentation after the last `|`, two spaces a level (0 = outermost).
        pub depth: usize,
        /// Open, leaf or close.
        pub kind: Kind<'a>,
        /// `/* = 0x3 */` after a leaf or close (funcgraph-retval), as printed; `/* ret=0x3 */`
        /// on the kernels that print the arguments too (Ubuntu's 7.0).
        pub retval: Option<&'a str>,
        /// The timestamp column of `funcgraph-abstime`, in seconds: the entry of an open or a
        /// leaf, the return of a close.
        pub abstime: Option<f64>,
    }

    /// Every call line of `text`, in order.
    pub fn parse(text: &str) -> Vec<Line<'_>> {
        text.lines().filter(|l| !l.trim_start().starts_with('#')).filter_map(parse_line).collect()
    }

    /// One line, `None` when it is not a call line (a banner, a comment).
    pub fn parse_line(line: &str) -> Option<Line<'_>> {
        let mut cols: Vec<&str> = line.split('|').collect();
        if cols.len() < 2 {
            return None;
        }
        let call_col = cols.pop()?;
        // funcgraph-abstime: a leading `SECONDS.MICROS |` column before the CPU's.
        let abstime = match cols.first().map(|c| c.trim()) {
            Some(t) if !t.contains(')') && t.contains('.') => {
                let v: f64 = t.parse().ok()?;
                cols.remove(0);
                Some(v)
            }
            _ => None,
        };
        let cpu_col = cols.first()?;
        let cpu: u32 = cpu_col.trim().split(')').next()?.trim().parse().ok()?;
        let after_cpu = cpu_col.split_once(')').map_or("", |(_, rest)| rest);
        // ` 0)  TASK-PID  | DURATION |` with funcgraph-proc, ` 0) DURATION |` without.
        let (pid, duration_us) = if cols.len() >= 2 {
            let pid = after_cpu.trim().rsplit_once('-').and_then(|(_, p)| p.parse().ok());
            (pid, cols.last().and_then(|d| duration(d)))
        } else {
            (None, duration(after_cpu))
        };
        let call = call_col.trim_end();
        let body = call.trim_start();
        let depth = (call.len() - body.len()).saturating_sub(2) / 2;
        let (body, retval) = match body.split_once("/* = ").or_else(|| body.split_once("/* ret=")) {
            Some((b, r)) => (b.trim_end(), r.strip_suffix("*/").map(str::trim)),
            None => (body, None),
        };
        let kind = if let Some(name) = body.strip_suffix("() {") {
            Kind::Open(name)
        } else if let Some(name) = body.strip_suffix("();") {
            Kind::Leaf(name)
        } else if body == "}" {
            Kind::Close(None)
        } else if let Some(rest) = body.strip_prefix("} /* ") {
            Kind::Close(Some(rest.strip_suffix("*/")?.trim()))
        } else {
            return None;
        };
        Some(Line { cpu, pid, duration_us, depth, kind, retval, abstime })
    }

    /// `   3.456 us   `, `+ 12.345 us`, `! 123.4 us` → microseconds.
    fn duration(col: &str) -> Option<f64> {
        let t = col.trim().trim_start_matches(['+', '!', '#', '*', '@', '$']).trim();
        let (num, unit) = t.split_once(char::is_whitespace)?;
        let v: f64 = num.parse().ok()?;
        match unit.trim() {
            "us" => Some(v),
            "ms" => Some(v * 1000.0),
            "s" => Some(v * 1_000_000.0),
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        // In the shape of a Debian 6.1 guest's function_graph trace with funcgraph-proc and
        // funcgraph-tail, set_graph_function=do_sys_openat2.
        const SAMPLE: &str = "\
    # tracer: function_graph
    #
    # CPU  TASK/PID         DURATION                  FUNCTION CALLS
    # |     |    |           |   |                     |   |   |   |
     0)  openat--80    |               |  do_sys_openat2() {
     0)  openat--80    |   3.456 us    |    do_filp_open();
     0)  openat--80    | + 12.345 us   |  } /* do_sys_openat2 */
     ------------------------------------------
     0)  openat--80    |   5.120 us    |  do_sys_openat2(); /* = 0x3 */
     0)  openat--80    |   1.000 us    |  }
    ";

        #[test]
        fn parses_opens_leaves_closes_durations_and_retvals() {
            let lines = parse(SAMPLE);
            assert_eq!(lines.len(), 5);
            assert_eq!(lines[0].kind, Kind::Open("do_sys_openat2"));
            assert_eq!((lines[0].pid, lines[0].duration_us, lines[0].depth), (Some(80), None, 0));
            assert_eq!(lines[1].kind, Kind::Leaf("do_filp_open"));
            assert_eq!((lines[1].duration_us, lines[1].depth), (Some(3.456), 1));
            assert_eq!(lines[2].kind, Kind::Close(Some("do_sys_openat2")));
            assert_eq!(lines[2].duration_us, Some(12.345));
            assert_eq!(lines[3].kind, Kind::Leaf("do_sys_openat2"));
            assert_eq!(lines[3].retval, Some("0x3"));
            assert_eq!(lines[4].kind, Kind::Close(None));
        }

        /// A line of ftrace.function_graph.retval on Ubuntu's 7.0.0-44-generic.
        #[test]
        fn retvals_as_newer_kernels_print_them() {
            let l = parse_line("   31.607960 |   0)   openat--89   | ! 490.708 us  |  do_sys_openat2(); /* ret=0x3 */")
                .unwrap();
            assert_eq!((l.kind, l.retval, l.pid), (Kind::Leaf("do_sys_openat2"), Some("0x3"), Some(89)));
        }

        #[test]
        fn without_funcgraph_proc_there_is_no_pid() {
            let l = parse_line(" 0)   0.850 us    |  do_sys_openat2();").unwrap();
            assert_eq!((l.cpu, l.pid, l.duration_us), (0, None, Some(0.85)));
        }

        /// funcgraph-abstime puts the kernel's timestamp in a column of its own before the CPU's.
        #[test]
        fn parses_the_timestamps_of_funcgraph_abstime() {
            let lines = parse(include_str!("fixtures/graph-abstime-6.1.txt"));
            assert_eq!(lines.len(), 80, "20 calls: open, two leaves, close");
            assert!(lines.iter().all(|l| l.abstime.is_some() && l.pid == Some(83) && l.cpu == 0));
            assert_eq!((lines[0].kind.clone(), lines[0].abstime), (Kind::Open("do_sys_openat2"), Some(14.039421)));
            assert_eq!((lines[1].kind.clone(), lines[1].duration_us), (Kind::Leaf("getname"), Some(48.090)));
            assert_eq!(
                (lines[3].kind.clone(), lines[3].abstime),
                (Kind::Close(Some("do_sys_openat2")), Some(14.039665))
            );
            assert_eq!(parse(SAMPLE).iter().filter(|l| l.abstime.is_some()).count(), 0);
        }

        #[test]
        fn parses_a_real_nested_graph() {
            let lines = parse(include_str!("fixtures/graph-nested-6.1.txt"));
            let count = |k: fn(&Kind) -> bool| lines.iter().filter(|l| k(&l.kind)).count();
            assert_eq!(count(|k| matches!(k, Kind::Open("do_sys_openat2"))), 5);
            assert_eq!(count(|k| matches!(k, Kind::Leaf(_))), 10);
            assert_eq!(count(|k| matches!(k, Kind::Close(Some("do_sys_openat2")))), 5);
            assert!(lines.iter().all(|l| l.pid == Some(89) && l.cpu == 0));
            assert_eq!(lines[3].duration_us, Some(185.627));
            assert_eq!((lines[1].depth, lines[1].duration_us), (1, Some(36.094)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_lines_parse_into_task_pid_cpu_timestamp_and_body() {
        let e = parse_entry("     openat-loop-75      [000] .....     3.216307: openat: (do_sys_openat2+0x0/0x140) dfd=-100 path=\"/tmp/a b\"").unwrap();
        assert_eq!((e.task, e.pid, e.cpu, e.timestamp), ("openat-loop", 75, 0, 3.216307));
        assert_eq!(e.arg("path"), Some("/tmp/a b"));
        assert_eq!(e.arg("dfd"), Some("-100"));
        let e = parse_entry(" <...>-12 (     12) [001] d..1.   10.5: sys_openat(dfd: ffffff9c)").unwrap();
        assert_eq!((e.task, e.pid, e.cpu), ("<...>", 12, 1));
        assert_eq!(parse_entry(" => do_sys_openat2+0x5/0x140"), None);
        assert_eq!(parse_entry("CPU:1 [LOST 7 EVENTS]"), None);
    }
}
