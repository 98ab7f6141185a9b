//! Parsing `kprobe_profile` (and `uprobe_profile`): per probe, hits and misses.
//!
//! The kernel prints `  <event> <hits> <misses>`; newer kernels may print `<group>/<event>`, so
//! lookups accept either.

/// One probe's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileLine {
    /// The event, with or without its group.
    pub name: String,
    /// Times the probe fired.
    pub hits: u64,
    /// Times it could not record (kretprobe maxactive exhausted, recursion).
    pub misses: u64,
}

/// Every well-formed line; others are ignored (the file has no header).
pub fn parse(text: &str) -> Vec<ProfileLine> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let name = it.next()?.to_string();
            let hits = it.next()?.parse().ok()?;
            let misses = it.next()?.parse().ok()?;
            Some(ProfileLine { name, hits, misses })
        })
        .collect()
}

/// The line for `group/event`, printed either with or without the group.
pub fn find<'a>(lines: &'a [ProfileLine], group: &str, event: &str) -> Option<&'a ProfileLine> {
    let full = format!("{group}/{event}");
    lines.iter().find(|l| l.name == event || l.name == full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hits_and_misses() {
        let text =
            "  openat                                                  100               0\n  kmatrix/openat_ret 5 2\n";
        let lines = parse(text);
        assert_eq!(lines.len(), 2);
        assert_eq!(find(&lines, "kmatrix", "openat").map(|l| l.hits), Some(100));
        let ret = find(&lines, "kmatrix", "openat_ret").cloned();
        assert_eq!(ret, Some(ProfileLine { name: "kmatrix/openat_ret".into(), hits: 5, misses: 2 }));
        assert!(find(&lines, "kmatrix", "other").is_none());
    }
}
