//! How long each (kernel, scenario) took the last time it ran on this machine, kept in the
//! cache (`host/scenario-times.json`) so that the scheduler can start the kernel with the most
//! work first: with 2 jobs and kernels of unequal weight, the heaviest one started last is what
//! the whole run waits for.
//!
//! A hint, never a result: a missing or unreadable file orders the plan as given, and an update
//! lost to another process writing at the same time costs one run a worse order.

use crate::cache::{self, Cache};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Seconds per scenario, per kernel label.
pub type Times = BTreeMap<String, BTreeMap<String, f64>>;

/// What a scenario never seen before is assumed to cost (a typical one under TCG).
pub const UNKNOWN_S: f64 = 1.0;

fn path(cache: &Cache) -> Option<PathBuf> {
    cache.dir("host").ok().map(|d| d.join("scenario-times.json"))
}

/// The times recorded so far (empty when there are none or the file is unreadable).
pub fn load(cache: &Cache) -> Times {
    path(cache).and_then(|p| std::fs::read(p).ok()).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Record one kernel's scenario times (seconds), replacing what it had for those scenarios.
pub fn record(cache: &Cache, kernel: &str, times: &[(String, f64)]) {
    let Some(p) = path(cache) else { return };
    let Ok(_lock) = cache.lock("scenario-times") else { return };
    let mut all = load(cache);
    let k = all.entry(kernel.to_string()).or_default();
    for (s, secs) in times {
        k.insert(s.clone(), *secs);
    }
    if let Ok(bytes) = serde_json::to_vec(&all) {
        let _ = cache::write_atomic(&p, &bytes);
    }
}

/// The expected seconds of running `scenarios` on `kernel`.
pub fn estimate<'a>(times: &Times, kernel: &str, scenarios: impl Iterator<Item = &'a str>) -> f64 {
    let k = times.get(kernel);
    scenarios.map(|s| k.and_then(|k| k.get(s)).copied().unwrap_or(UNKNOWN_S)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_merge_and_estimates_use_them() {
        let (_dir, cache) = crate::cache::temp_cache();
        assert!(load(&cache).is_empty());
        record(&cache, "debian-6.1", &[("a".into(), 3.0), ("b".into(), 0.5)]);
        record(&cache, "debian-6.1", &[("b".into(), 2.0)]);
        let t = load(&cache);
        assert_eq!(estimate(&t, "debian-6.1", ["a", "b"].into_iter()), 5.0);
        assert_eq!(estimate(&t, "debian-6.1", ["a", "new"].into_iter()), 3.0 + UNKNOWN_S);
        assert_eq!(estimate(&t, "debian-6.12", ["a"].into_iter()), UNKNOWN_S);
        std::fs::write(path(&cache).unwrap(), b"not json").unwrap();
        assert!(load(&cache).is_empty(), "a damaged file is no history, not an error");
    }
}
