//! `kmatrix report compat`: the compatibility table of one run — one row per scenario, one
//! column per kernel in version order (4.15 → 7.x, whatever the distribution), each cell its
//! judged status and why, and per scenario the first kernel where it works beside the `since`
//! the catalogue declares. A scenario that works below its `since` is a finding (the `since` is
//! wrong, or a backport), named in its row.
//!
//! Not a verdict: the cells are the run's judged statuses as they are; this only lays them out.

use kmatrix_proto::{KernelVersion, ScenarioResult, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Compat {
    /// The kernels, in version order.
    pub kernels: Vec<Column>,
    /// One per scenario, in the order the run first reported each.
    pub rows: Vec<Row>,
}

/// One kernel of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Column {
    /// Its id in the run (`ubuntu-5.4`, `debian-6.12-arm64`).
    pub kernel: String,
    /// The release the guest reported (`5.4.0-216-generic`), when the results carry it.
    pub release: Option<String>,
    /// The upstream version the columns are ordered by (from the release, else the id).
    pub version: Option<String>,
}

/// One scenario across the kernels.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// The scenario id.
    pub scenario: String,
    /// The catalogue's `since` (empty: none declared).
    pub since: String,
    /// One per column; `None` where the run has no result for the pair.
    pub cells: Vec<Option<Cell>>,
    /// The first kernel, in version order, where it passed.
    pub first_pass: Option<String>,
    /// What in this row contradicts the catalogue, if anything.
    pub finding: Option<String>,
}

/// One (kernel, scenario) result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cell {
    /// The judged status.
    pub status: Status,
    /// Why, in a line: the reason's first clause (nothing for a pass).
    pub why: String,
}

/// The version a column is ordered by: its release, else the id's `a.b` (`ubuntu-5.4`).
fn version_of(kernel: &str, release: Option<&str>) -> Option<KernelVersion> {
    release.and_then(KernelVersion::parse).or_else(|| kernel.split('-').find_map(KernelVersion::parse))
}

/// The first clause of a reason, bounded, on one line.
fn short(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or("");
    let clause = line.split(['(', ';']).next().unwrap_or(line).trim().trim_end_matches([':', ',']);
    let mut s: String = clause.chars().take(80).collect();
    if clause.chars().count() > 80 {
        s.push('…');
    }
    s
}

/// The table of `results`, with each scenario's `since` from `since` (scenario id → version).
pub fn build(results: &[ScenarioResult], since: &BTreeMap<String, String>) -> Compat {
    let mut columns: Vec<(Option<KernelVersion>, Column)> = Vec::new();
    let mut scenarios: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(String, String), &ScenarioResult> = BTreeMap::new();
    for r in results {
        if !columns.iter().any(|(_, c)| c.kernel == r.kernel) {
            let release = r.build.as_ref().map(|b| b.release.clone()).filter(|s| !s.is_empty());
            let v = version_of(&r.kernel, release.as_deref());
            columns.push((v, Column { kernel: r.kernel.clone(), release, version: v.map(|v| v.to_string()) }));
        }
        if !scenarios.contains(&r.scenario) {
            scenarios.push(r.scenario.clone());
        }
        // The last result of a pair wins (a merged file's later shard, a rerun appended).
        cells.insert((r.kernel.clone(), r.scenario.clone()), r);
    }
    // Version order; a kernel whose version is unknown goes last; ties by id (Debian before
    // Ubuntu at the same line, amd64 before arm64).
    columns.sort_by(|(va, a), (vb, b)| (va.is_none(), va, &a.kernel).cmp(&(vb.is_none(), vb, &b.kernel)));
    let rows = scenarios
        .into_iter()
        .map(|s| {
            let row: Vec<Option<Cell>> = columns
                .iter()
                .map(|(_, c)| {
                    cells.get(&(c.kernel.clone(), s.clone())).map(|r| Cell {
                        status: r.status,
                        why: if r.status == Status::Pass { String::new() } else { short(&r.explanation()) },
                    })
                })
                .collect();
            let first = columns
                .iter()
                .zip(&row)
                .find(|(_, cell)| cell.as_ref().is_some_and(|c| matches!(c.status, Status::Pass | Status::Flaky)));
            let declared = since.get(&s).cloned().unwrap_or_default();
            let finding = match (first, KernelVersion::parse(&declared)) {
                (Some(((Some(v), c), _)), Some(d)) if (v.major, v.minor) < (d.major, d.minor) => {
                    Some(format!("passes on {} ({v}), below its since {declared}", c.kernel))
                }
                _ => None,
            };
            let first_pass = first.map(|((_, c), _)| c.kernel.clone());
            Row { scenario: s, since: declared, cells: row, first_pass, finding }
        })
        .collect();
    Compat { kernels: columns.into_iter().map(|(_, c)| c).collect(), rows }
}

/// A cell as a table shows it: the status, and why for anything but a pass.
fn cell_text(c: &Option<Cell>) -> String {
    match c {
        None => "—".into(),
        Some(c) if c.why.is_empty() => c.status.as_str().into(),
        Some(c) => format!("{}: {}", c.status.as_str(), c.why),
    }
}

/// Markdown: a header naming the columns' releases, the table, and the findings under it.
pub fn markdown(t: &Compat) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = String::from(
        "# Compatibility\n\nWritten by `kmatrix report compat`, not by hand: `kmatrix run --kernels all --out DIR`, then \
         `kmatrix report compat DIR/run-<stamp> -o docs/compat.md`. One column per kernel in version order, each \
         cell the run's judged status and why; `first pass` is the first kernel where the scenario passed.\n\n",
    );
    let heads: Vec<String> = t
        .kernels
        .iter()
        .map(|k| match &k.release {
            Some(r) => format!("{}<br>`{}`", k.kernel, r),
            None => k.kernel.clone(),
        })
        .collect();
    let _ = writeln!(out, "| scenario | since | first pass | {} |", heads.join(" | "));
    let _ = writeln!(out, "|---|---|---|{}", "---|".repeat(t.kernels.len()));
    for r in &t.rows {
        let cells: Vec<String> = r.cells.iter().map(|c| esc(&cell_text(c))).collect();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            r.scenario,
            if r.since.is_empty() { "—" } else { &r.since },
            r.first_pass.as_deref().unwrap_or("—"),
            cells.join(" | ")
        );
    }
    let findings: Vec<&Row> = t.rows.iter().filter(|r| r.finding.is_some()).collect();
    let _ = writeln!(out);
    if findings.is_empty() {
        let _ = writeln!(out, "No scenario passes below its `since`.");
    } else {
        let _ = writeln!(out, "Findings (a scenario that passes below its `since`):");
        let _ = writeln!(out);
        for r in findings {
            let _ = writeln!(out, "- `{}`: {}", r.scenario, r.finding.as_deref().unwrap_or(""));
        }
    }
    let mut per: Vec<String> = Vec::new();
    for (i, k) in t.kernels.iter().enumerate() {
        let mut n: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &t.rows {
            if let Some(Some(c)) = r.cells.get(i) {
                *n.entry(c.status.as_str()).or_default() += 1;
            }
        }
        let parts: Vec<String> = n.iter().map(|(s, c)| format!("{c} {s}")).collect();
        per.push(format!("- {}: {}", k.kernel, parts.join(", ")));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Per kernel:");
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", per.join("\n"));
    out
}

/// A single HTML page holding the same table.
pub fn html(t: &Compat) -> String {
    // Quotes too: a cell's text is also its title attribute.
    let esc = super::html_escape;
    let mut out = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>kmatrix compatibility</title>\n<style>\
         body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}\
         .pass,.flaky{background:#dfd}.fail,.error{background:#fcc}.unsupported{background:#eee}.xfail{background:#ffd}\
         </style></head><body>\n<table>\n<tr><th>scenario</th><th>since</th><th>first pass</th>",
    );
    for k in &t.kernels {
        let _ =
            write!(out, "<th>{}<br><small>{}</small></th>", esc(&k.kernel), esc(k.release.as_deref().unwrap_or("")));
    }
    out.push_str("</tr>\n");
    for r in &t.rows {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td>",
            esc(&r.scenario),
            esc(&r.since),
            esc(r.first_pass.as_deref().unwrap_or(""))
        );
        for c in &r.cells {
            let class = c.as_ref().map(|c| c.status.as_str()).unwrap_or("");
            let _ = write!(out, "<td class=\"{class}\" title=\"{}\">{}</td>", esc(&cell_text(c)), class);
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(kernel: &str, release: &str, scenario: &str, status: Status, reason: &str) -> ScenarioResult {
        let mut r = ScenarioResult::new(scenario, status, reason).on_kernel(kernel);
        r.build = Some(kmatrix_proto::KernelBuild { release: release.into(), ..Default::default() });
        r
    }

    #[test]
    fn columns_go_in_version_order_and_rows_name_the_first_pass() {
        let results = vec![
            res("debian-6.1", "6.1.0-50-amd64", "bpf.ringbuf.openat", Status::Pass, "ok"),
            res(
                "ubuntu-5.4",
                "5.4.0-216-generic",
                "bpf.ringbuf.openat",
                Status::Unsupported,
                "BPF map type ringbuf refused (EINVAL); added in 5.8",
            ),
            res("debian-5.10", "5.10.0-32-amd64", "bpf.ringbuf.openat", Status::Pass, "ok"),
            res(
                "ubuntu-4.15",
                "4.15.0-213-generic",
                "bpf.ringbuf.openat",
                Status::Unsupported,
                "BPF map type ringbuf refused",
            ),
            res("ubuntu-4.15", "4.15.0-213-generic", "kprobe.tracefs.openat", Status::Pass, "ok"),
            // A scenario that passes below its since: a finding.
            res("ubuntu-5.4", "5.4.0-216-generic", "kprobe.eprobe.x", Status::Pass, "ok"),
            res("debian-5.10", "5.10.0-32-amd64", "kprobe.eprobe.x", Status::Unsupported, "no e: in README"),
        ];
        let since: BTreeMap<String, String> =
            [("bpf.ringbuf.openat", "5.8"), ("kprobe.tracefs.openat", "4.1"), ("kprobe.eprobe.x", "5.15")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        let t = build(&results, &since);
        let ids: Vec<&str> = t.kernels.iter().map(|k| k.kernel.as_str()).collect();
        assert_eq!(ids, ["ubuntu-4.15", "ubuntu-5.4", "debian-5.10", "debian-6.1"]);
        let row = |s: &str| t.rows.iter().find(|r| r.scenario == s).unwrap();
        assert_eq!(row("bpf.ringbuf.openat").first_pass.as_deref(), Some("debian-5.10"));
        assert_eq!(row("bpf.ringbuf.openat").finding, None);
        assert_eq!(row("bpf.ringbuf.openat").cells[1].as_ref().unwrap().why, "BPF map type ringbuf refused");
        // kprobe.tracefs.openat ran on one kernel only: the others are empty cells.
        assert_eq!(row("kprobe.tracefs.openat").cells.iter().filter(|c| c.is_none()).count(), 3);
        assert_eq!(
            row("kprobe.eprobe.x").finding.as_deref(),
            Some("passes on ubuntu-5.4 (5.4.0), below its since 5.15")
        );
        let md = markdown(&t);
        assert!(
            md.contains("\n| scenario | since | first pass | ubuntu-4.15<br>`4.15.0-213-generic` | ubuntu-5.4"),
            "{md}"
        );
        assert!(md.contains("| `bpf.ringbuf.openat` | 5.8 | debian-5.10 | unsupported: BPF map type ringbuf refused | unsupported: BPF map type ringbuf refused | pass | pass |"), "{md}");
        assert!(md.contains("- `kprobe.eprobe.x`: passes on ubuntu-5.4 (5.4.0), below its since 5.15"), "{md}");
        assert!(md.contains("- ubuntu-4.15: 1 pass, 1 unsupported"), "{md}");
        let page = html(&t);
        assert_eq!(page.matches("<tr>").count(), 1 + 3, "{page}");
    }

    #[test]
    fn a_kernel_without_a_release_is_ordered_by_its_id() {
        let mut r = ScenarioResult::new("s", Status::Pass, "ok").on_kernel("ubuntu-7.0");
        r.build = None;
        let t = build(&[res("debian-7.3", "7.3.0-1-amd64", "s", Status::Pass, "ok"), r], &BTreeMap::new());
        let ids: Vec<&str> = t.kernels.iter().map(|k| k.kernel.as_str()).collect();
        assert_eq!(ids, ["ubuntu-7.0", "debian-7.3"]);
        assert_eq!(t.kernels[0].version.as_deref(), Some("7.0.0"));
    }
}
