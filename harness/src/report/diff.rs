//! Differences between two runs, cell by cell: a status that changed, a cell only one run has.

use kmatrix_proto::{ScenarioResult, Status};
use serde::Serialize;
use std::collections::BTreeMap;

/// A (kernel, scenario) cell whose status differs between two runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellChange {
    /// The cell's kernel label.
    pub kernel: String,
    /// The cell's scenario id.
    pub scenario: String,
    /// Its status in the older run; `None` when that run lacks the cell.
    pub before: Option<Status>,
    /// Its status in the newer run; `None` when that run lacks the cell.
    pub after: Option<Status>,
    /// The newer run's reason (or the older one's when the cell disappeared).
    pub reason: String,
}

/// The cells whose status differs from the older run `a` to the newer `b` (a cell only one run
/// has included), sorted by kernel then scenario. A cell listed twice in a run counts as its last.
pub fn diff(a: &[ScenarioResult], b: &[ScenarioResult]) -> Vec<CellChange> {
    let key = |r: &ScenarioResult| (r.kernel.clone(), r.scenario.clone());
    let ma: BTreeMap<_, _> = a.iter().map(|r| (key(r), r)).collect();
    let mb: BTreeMap<_, _> = b.iter().map(|r| (key(r), r)).collect();
    let mut keys: Vec<_> = ma.keys().chain(mb.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (ma.get(&k), mb.get(&k));
            let (before, after) = (x.map(|r| r.status), y.map(|r| r.status));
            (before != after).then(|| CellChange {
                kernel: k.0.clone(),
                scenario: k.1.clone(),
                before,
                after,
                reason: y.or(x).map(|r| r.explanation()).unwrap_or_default(),
            })
        })
        .collect()
}

/// One aligned line per change (kernel, scenario, before -> after, first line of the reason),
/// then the count.
pub fn render(changes: &[CellChange]) -> String {
    let s = |o: Option<Status>| o.map(|s| s.as_str()).unwrap_or("(absent)");
    let mut out = String::new();
    for c in changes {
        out.push_str(&format!(
            "{:14} {:40} {:>11} -> {:<11} {}\n",
            c.kernel,
            c.scenario,
            s(c.before),
            s(c.after),
            c.reason.lines().next().unwrap_or("")
        ));
    }
    out.push_str(&format!("{} cells changed\n", changes.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(k: &str, s: &str, st: Status) -> ScenarioResult {
        ScenarioResult::new(s, st, format!("{st}")).on_kernel(k)
    }

    #[test]
    fn changed_new_and_gone_cells_are_listed_unchanged_ones_not() {
        let a = vec![r("k1", "s1", Status::Pass), r("k1", "s2", Status::Pass), r("k1", "gone", Status::Fail)];
        let b = vec![r("k1", "s1", Status::Pass), r("k1", "s2", Status::Fail), r("k2", "new", Status::Unsupported)];
        let d = diff(&a, &b);
        assert_eq!(d.len(), 3);
        assert_eq!((d[0].scenario.as_str(), d[0].before, d[0].after), ("gone", Some(Status::Fail), None));
        assert_eq!((d[1].scenario.as_str(), d[1].before, d[1].after), ("s2", Some(Status::Pass), Some(Status::Fail)));
        assert_eq!((d[2].kernel.as_str(), d[2].before, d[2].after), ("k2", None, Some(Status::Unsupported)));
        assert!(render(&d).ends_with("3 cells changed\n"));
    }
}
