//! Looking kernel symbols up in `/proc/kallsyms`, for requirements and symbol choices.
//!
//! The file has ~150k lines and is generated line by line by the kernel (slow under TCG), so
//! each answer is remembered for the boot and a lookup stops at the first match. Only text
//! symbols (`t`/`T`) count: those are what kprobes attach to. Not for listing all symbols.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::Mutex;

const KALLSYMS: &str = "/proc/kallsyms";

static CACHE: Mutex<BTreeMap<String, bool>> = Mutex::new(BTreeMap::new());

/// Whether `name` is a text symbol of the running kernel (or of a loaded module).
pub fn has(name: &str) -> Result<bool> {
    if let Some(known) = CACHE.lock().ok().and_then(|c| c.get(name).copied()) {
        return Ok(known);
    }
    let file = std::fs::File::open(KALLSYMS).with_context(|| format!("open({KALLSYMS}) failed"))?;
    let found = BufReader::with_capacity(256 * 1024, file).lines().map_while(Result::ok).any(|l| is_text(&l, name));
    if let Ok(mut c) = CACHE.lock() {
        c.insert(name.to_string(), found);
    }
    Ok(found)
}

/// The first of `names` that is a text symbol.
pub fn first_of<'a>(names: &[&'a str]) -> Result<Option<&'a str>> {
    for n in names {
        if has(n)? {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// Evidence for an absent symbol, with the symbols that share its prefix (a renamed function
/// shows up there: `do_sys_open` next to `do_sys_openat2`).
pub fn evidence(name: &str) -> String {
    let prefix: String = name.chars().take(name.len().min(8)).collect();
    let near: Vec<String> = std::fs::File::open(KALLSYMS)
        .map(|f| {
            BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.split_whitespace().nth(2).map(String::from))
                .filter(|s| s.starts_with(&prefix))
                .take(8)
                .collect()
        })
        .unwrap_or_default();
    format!("{KALLSYMS} has no text symbol {name}; symbols starting with {prefix:?}: {}", near.join(" "))
}

/// `ffffffff81360ed0 T do_sys_open` (optionally `\t[module]`) names `name` as text.
fn is_text(line: &str, name: &str) -> bool {
    let mut it = line.split_whitespace();
    let kind = it.nth(1).unwrap_or("");
    (kind == "t" || kind == "T") && it.next() == Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_symbols_with_the_exact_name_match() {
        assert!(is_text("ffffffff81360ed0 T do_sys_open", "do_sys_open"));
        assert!(is_text("ffffffffc0001000 t virtio_dev_match\t[virtio]", "virtio_dev_match"));
        assert!(!is_text("ffffffff81360a00 t do_sys_openat2", "do_sys_open"));
        assert!(!is_text("ffffffff82000000 D do_sys_open", "do_sys_open"));
    }
}
