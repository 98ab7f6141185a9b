//! Debian version ordering (`[epoch:]upstream[-revision]`), as dpkg compares them.
//!
//! Used to pick the newest build of a kernel line from a Packages index and to sort builds for
//! bisecting. Not a general version parser: it only orders strings the way dpkg does.

use std::cmp::Ordering;

/// Compare two Debian version strings the way `dpkg --compare-versions` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb).then_with(|| compare_part(ua, ub)).then_with(|| compare_part(ra, rb))
}

/// Split into (epoch, upstream, revision). A missing epoch is 0, a missing revision is "".
fn split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(u64::MAX), r),
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

/// The weight of a non-digit character: `~` sorts before everything, even the end of the string;
/// letters sort before other characters.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, compared character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ca = a.get(i).copied().filter(|c| !c.is_ascii_digit());
            let cb = b.get(j).copied().filter(|c| !c.is_ascii_digit());
            let (oa, ob) = (order(ca), order(cb));
            if oa != ob {
                return oa.cmp(&ob);
            }
            if ca.is_some() {
                i += 1;
            }
            if cb.is_some() {
                j += 1;
            }
        }
        // Digit run, compared numerically without overflow: skip leading zeros, then length.
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let si = i;
        let sj = j;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (da, db) = (&a[si..i], &b[sj..j]);
        let c = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}

/// The upstream part of a Debian version: `6.12.57` for `1:6.12.57-1~bpo12+1`.
pub fn upstream(v: &str) -> &str {
    split(v).1
}

/// True when `upstream(version)` is `line` or starts with `line.` (`6.1` matches `6.1.176`, not
/// `6.12.5`).
pub fn in_line(version: &str, line: &str) -> bool {
    let u = upstream(version);
    u == line || u.strip_prefix(line).is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn orders_like_dpkg() {
        // (a, b, expected) — cases checked with `dpkg --compare-versions`.
        let cases = [
            ("6.1.176-1", "6.1.170-3", Greater),
            ("6.12.95-1~bpo12+1", "6.12.95-1", Less),
            ("6.12.94-1~bpo12+1", "6.12.90-2~bpo12+1", Greater),
            ("7.3.4-1~bpo13+1", "7.2.13-1", Greater),
            ("1:1.0", "2.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0", "1.0+b1", Less),
            ("1.0a", "1.0", Greater),
            ("1.0-1", "1.0-1", Equal),
            ("1.00", "1.0", Equal),
            ("5.10.223-1", "5.10.218-1", Greater),
            ("6.12.107-1", "6.12.95-1", Greater),
            ("1.0-1", "1.0", Greater),
            ("a", "+", Less),
            ("99999999999999999999999", "1", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn lines() {
        for (version, line, want) in [
            ("6.1.176-1", "6.1", true),
            ("6.12.5-1", "6.1", false),
            ("6.12.95-1~bpo12+1", "6.12", true),
            ("7.3.4-1~bpo13+1", "7.3", true),
            ("7.3.4-1~bpo13+1", "7", true),
        ] {
            assert_eq!(in_line(version, line), want, "{version} in line {line}");
        }
        assert_eq!(upstream("1:6.12.57-1~bpo12+1"), "6.12.57");
    }
}
