//! Bounded pieces of raw kernel output for results: the first or last lines of a file.
//!
//! Results carry evidence, not whole files; the byte bound itself is applied by
//! `ScenarioResult::with_excerpt`.

/// The first `n` lines of `text`.
pub fn head(text: &str, n: usize) -> String {
    let mut out: Vec<&str> = text.lines().take(n).collect();
    if text.lines().nth(n).is_some() {
        out.push("...");
    }
    out.join("\n")
}

/// The first `n` lines of `text` that are not `#` comments (trace headers).
pub fn head_entries(text: &str, n: usize) -> String {
    let entries = text.lines().filter(|l| !l.starts_with('#'));
    head(&entries.collect::<Vec<_>>().join("\n"), n)
}

/// The last `n` lines of `text` (where a verifier log says why), saying how many were cut.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let kept = lines[start..].join("\n");
    if start == 0 {
        kept
    } else {
        format!("[{start} lines before]\n{kept}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_marks_a_cut() {
        assert_eq!(head("a\nb\nc", 2), "a\nb\n...");
        assert_eq!(head("a\nb", 2), "a\nb");
        assert_eq!(head_entries("# x\na\n#y\nb", 5), "a\nb");
    }

    #[test]
    fn tail_keeps_the_end_and_says_what_it_cut() {
        assert_eq!(tail("a\nb\nc", 2), "[1 lines before]\nb\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
