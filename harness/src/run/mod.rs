//! Runs: which (kernel, scenario) pairs to run, running them, judging the results, and writing
//! them down as they arrive.

#![warn(missing_docs)]

pub mod guests;
pub mod history;
pub mod machine;
pub mod matrix;
pub mod queue;
pub mod rerun;
pub mod results;
pub mod scheduler;
pub mod verdict;

/// Whether `id` matches any of the comma-separated glob `patterns` (`*` any run, `?` one char).
pub fn matches_any(patterns: &str, id: &str) -> bool {
    patterns.split(',').map(str::trim).filter(|p| !p.is_empty()).any(|p| glob(p.as_bytes(), id.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with single backtrack point.
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::matches_any;

    #[test]
    fn globs_select_scenarios() {
        for (patterns, id, want) in [
            ("kprobe.*", "kprobe.tracefs.openat", true),
            ("kprobe.*", "ftrace.function.openat", false),
            ("ftrace.*,*.openat", "kprobe.tracefs.openat", true),
            ("*", "x", true),
            ("k?robe.tracefs.*", "kprobe.tracefs.openat", true),
            ("kprobe.tracefs", "kprobe.tracefs.openat", false),
            ("", "x", false),
        ] {
            assert_eq!(matches_any(patterns, id), want, "{patterns:?} on {id}");
        }
    }
}
