//! The kernel's traceable functions (`available_filter_functions`), scanned once per boot.
//!
//! Generating that file costs the kernel ~180 ms under TCG on 6.1 (a kallsyms lookup for each of
//! ~38k records), so the agent scans it once, for the capability record's line count and for the
//! few symbols scenarios choose between ([`WATCHED`]), instead of once per use. Only those are
//! remembered: keeping every name costs another ~200 ms of allocation and hashing under TCG.
//! The capability record's count comes from `dyn_ftrace_total_info` instead ([`total`]), a
//! counter the kernel prints without walking the records, so `Hello` does not pay the scan.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::OnceLock;

/// Symbols scenarios may attach to; add a name here before asking [`FilterFunctions::contains`].
pub const WATCHED: &[&str] = &[
    "do_sys_openat2",
    "do_sys_open",
    "do_filp_open",
    "getname_flags",
    "getname",
    "build_open_flags",
    "__x64_sys_openat",
    "__arm64_sys_openat",
    // The seeds' set_ftrace_filter list (open, read, write, close) and the close path's names.
    "ksys_read",
    "ksys_write",
    // Before 4.17 (no ksys_*): the syscall functions themselves.
    "SyS_read",
    "SyS_write",
    "file_close_fd",
    "close_fd",
    "__close_fd",
];

pub struct FilterFunctions {
    /// Lines of the file, as the capability record reports them (names repeat across modules).
    pub lines: usize,
    present: Vec<&'static str>,
}

impl FilterFunctions {
    /// Whether `name` (one of [`WATCHED`]) is traceable.
    pub fn contains(&self, name: &str) -> bool {
        debug_assert!(WATCHED.contains(&name), "{name} is not in WATCHED");
        self.present.contains(&name)
    }
}

/// The functions of the tracefs mounted at `root` (none when absent), cached for the boot.
pub fn get(root: &Path) -> &'static FilterFunctions {
    static CACHE: OnceLock<FilterFunctions> = OnceLock::new();
    CACHE.get_or_init(|| match std::fs::File::open(root.join("available_filter_functions")) {
        Ok(file) => scan(BufReader::with_capacity(256 * 1024, file)),
        Err(_) => FilterFunctions { lines: 0, present: Vec::new() },
    })
}

/// How many functions dynamic ftrace manages: the first number of `dyn_ftrace_total_info`
/// (`41522 pages:163 groups: 14`), or the line count of `available_filter_functions` when that
/// file is absent or unreadable. The counter counts records, which can exceed the listed lines
/// by the few records without a symbol (weak functions overridden at link time), so the two
/// sources agree to within a fraction of a percent, not exactly.
pub fn total(root: &Path) -> usize {
    std::fs::read_to_string(root.join("dyn_ftrace_total_info"))
        .ok()
        .and_then(|text| parse_total(&text))
        .unwrap_or_else(|| get(root).lines)
}

fn parse_total(text: &str) -> Option<usize> {
    text.split_whitespace().next()?.parse().ok()
}

fn scan(mut src: impl BufRead) -> FilterFunctions {
    let mut out = FilterFunctions { lines: 0, present: Vec::new() };
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        match src.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        out.lines += 1;
        // `name` or `name [module]`: the name is the first word.
        let name = line.split(|b| b.is_ascii_whitespace()).next().unwrap_or(&[]);
        if let Some(w) = WATCHED.iter().find(|w| w.as_bytes() == name) {
            if !out.present.contains(w) {
                out.present.push(w);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_finds_watched_names() {
        let text = "do_one_initcall\ndo_sys_openat2\nvirtio_dev_match [virtio]\ndo_sys_openat2\n";
        let f = scan(text.as_bytes());
        assert_eq!(f.lines, 4);
        assert!(f.contains("do_sys_openat2"));
        assert!(!f.contains("do_sys_open"));
    }

    #[test]
    fn total_reads_the_first_number() {
        // Debian 6.1's dyn_ftrace_total_info; 5.10 prints the same shape.
        assert_eq!(parse_total("41522 pages:163 groups: 14\n"), Some(41522));
        assert_eq!(parse_total(""), None);
        assert_eq!(parse_total("x pages"), None);
    }
}
