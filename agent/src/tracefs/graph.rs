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
//! number. Banners (`------`, `=> `) and comments are not lines.

#[derive(Debug, Clone, PartialEq)]
pub enum Kind<'a> {
    /// `name() {`: a call with children; its duration is on the matching close.
    Open(&'a str),
    /// `name();`: a call without traced children, with its duration.
    Leaf(&'a str),
    /// `}` or `} /* name */` (funcgraph-tail): the end of an open call, with its duration.
    Close(Option<&'a str>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub cpu: u32,
    /// From the TASK-PID column (funcgraph-proc); None without it.
    pub pid: Option<i32>,
    /// Microseconds, when the line has a duration.
    pub duration_us: Option<f64>,
    /// Depth of the call: indentation after the last `|`, two spaces a level (0 = outermost).
    pub depth: usize,
    pub kind: Kind<'a>,
    /// `/* = 0x3 */` after a leaf or close (funcgraph-retval), as printed.
    pub retval: Option<&'a str>,
}

/// Every call line of `text`, in order.
pub fn parse(text: &str) -> Vec<Line<'_>> {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).filter_map(parse_line).collect()
}

pub fn parse_line(line: &str) -> Option<Line<'_>> {
    let mut cols: Vec<&str> = line.split('|').collect();
    if cols.len() < 2 {
        return None;
    }
    let call_col = cols.pop()?;
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
    let (body, retval) = match body.split_once("/* = ") {
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
    Some(Line { cpu, pid, duration_us, depth, kind, retval })
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

    #[test]
    fn without_funcgraph_proc_there_is_no_pid() {
        let l = parse_line(" 0)   0.850 us    |  do_sys_openat2();").unwrap();
        assert_eq!((l.cpu, l.pid, l.duration_us), (0, None, Some(0.85)));
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
