//! Parsing an event's `hist` file (hist triggers): per key, the hitcount, and the totals.
//!
//! ```text
//! { common_pid:        123 } hitcount:        100
//!
//! Totals:
//!     Hits: 140
//!     Entries: 3
//!     Dropped: 0
//! ```

/// A `hist` file: its entries and totals.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Hist {
    /// (key text inside the braces, hitcount), in file order.
    pub entries: Vec<(String, u64)>,
    /// `Totals: Hits:`.
    pub hits: Option<u64>,
    /// `Totals: Dropped:`.
    pub dropped: Option<u64>,
}

impl Hist {
    /// The hitcount of the entry whose single key `name` has the numeric value `value`.
    pub fn hitcount(&self, name: &str, value: i64) -> Option<u64> {
        self.entries.iter().find_map(|(key, hits)| {
            let (k, v) = key.split_once(':')?;
            (k.trim() == name && v.trim().parse::<i64>().ok()? == value).then_some(*hits)
        })
    }
}

/// Parse the text of a `hist` file; lines that are neither entries nor totals are skipped.
pub fn parse(text: &str) -> Hist {
    let mut h = Hist::default();
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix('{') {
            let Some((key, tail)) = rest.split_once('}') else {
                continue;
            };
            let hits = tail.trim().strip_prefix("hitcount:").and_then(|n| n.split_whitespace().next()?.parse().ok());
            if let Some(hits) = hits {
                h.entries.push((key.trim().to_string(), hits));
            }
        } else if let Some(n) = t.strip_prefix("Hits:") {
            h.hits = n.trim().parse().ok();
        } else if let Some(n) = t.strip_prefix("Dropped:") {
            h.dropped = n.trim().parse().ok();
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_hitcounts_and_totals() {
        let text = "# event histogram\n#\n# trigger info: hist:keys=common_pid:vals=hitcount:sort=hitcount:size=2048 [active]\n#\n\n\
                    { common_pid:         88 } hitcount:          2\n{ common_pid:        123 } hitcount:        100\n\n\
                    Totals:\n    Hits: 102\n    Entries: 2\n    Dropped: 0\n";
        let h = parse(text);
        assert_eq!(h.entries.len(), 2);
        assert_eq!(h.hitcount("common_pid", 123), Some(100));
        assert_eq!(h.hitcount("common_pid", 7), None);
        assert_eq!((h.hits, h.dropped), (Some(102), Some(0)));
    }

    #[test]
    fn parses_a_real_hist_file() {
        let h = parse(include_str!("fixtures/hist-6.12.txt"));
        assert_eq!(h.hitcount("common_pid", 142), Some(100));
        assert_eq!(h.hitcount("common_pid", 1), Some(1));
        assert_eq!((h.hits, h.dropped), (Some(101), Some(0)));
    }
}
