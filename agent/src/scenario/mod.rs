//! The scenario catalogue and the runner that wraps every scenario in requirement checks and a
//! tracefs reset before and after.
//!
//! Layout: `meta` says what a scenario is ([`meta::Meta`] and one function), `req` what it may
//! require; one folder per id family (`ftrace/`, `kprobe/`, `uprobe/`, `tracepoint/`, `perf/`,
//! `bpf/`, and `selftest`), each a registry (`mod.rs`) over files named after the id's path
//! (`kprobe/eprobe.rs` holds `kprobe.eprobe.*`); `support/` holds what several families share
//! and imports none of them. This module imports the families; nothing in `scenario/` imports it.

mod bpf;
mod ftrace;
mod kprobe;
mod meta;
mod perf;
mod req;
mod selftest;
mod support;
mod tool;
mod tracepoint;
mod uprobe;

use crate::mounts::TRACEFS;
use crate::sys;
use crate::tracefs::{Refused, Tracefs};
use kmatrix_proto::{Capabilities, ScenarioInfo, ScenarioResult, Status};
use meta::{Ctx, Scenario};
use req::Req;
use std::collections::BTreeMap;
use std::time::Instant;
use support::verdict::ms;

/// The families in catalogue order, which is the order the host runs a selection in. The
/// `selftest` family comes first, so that when a test selects it with others, the others run
/// after the breakage (in a fresh VM); `*` never selects it. kprobe and uprobe list their
/// tracefs scenarios before their perf PMU ones, as the catalogue always has.
const CATALOGUE: [&[Scenario]; 10] = [
    selftest::ALL,
    ftrace::ALL,
    kprobe::TRACEFS,
    uprobe::TRACEFS,
    kprobe::PERF_PMU,
    uprobe::PERF_PMU,
    tracepoint::ALL,
    perf::ALL,
    bpf::ALL,
    tool::ALL,
];

/// Every scenario the agent knows, in catalogue order.
fn catalogue() -> impl Iterator<Item = &'static Scenario> {
    CATALOGUE.into_iter().flatten()
}

/// The catalogue as the host lists and judges it (`kmatrix-agent --catalogue`).
pub fn info() -> Vec<ScenarioInfo> {
    catalogue()
        .map(|s| {
            let reqs = s.meta.requirements();
            ScenarioInfo {
                id: s.meta.id.to_string(),
                summary: s.meta.summary.to_string(),
                since: s.meta.since.to_string(),
                until: s.meta.until.map(String::from),
                requires: reqs.iter().map(|r| r.describe()).collect(),
                params: s.meta.params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                host_root: reqs.iter().any(|r| matches!(r, Req::HostProgram(_))),
                kernel_headers: reqs.iter().any(|r| matches!(r, Req::KernelHeaders)),
            }
        })
        .collect()
}

/// Ids of the catalogue, for the capability record.
pub fn ids() -> Vec<String> {
    catalogue().map(|s| s.meta.id.to_string()).collect()
}

/// Run one scenario by id with requirement checks and tracefs hygiene around it; with `keep`,
/// tracefs is left as the scenario left it (for a shell on that state) instead of reset after.
pub fn run_one(id: &str, params: &BTreeMap<String, String>, caps: &Capabilities, keep: bool) -> ScenarioResult {
    let Some(scenario) = catalogue().find(|s| s.meta.id == id) else {
        return ScenarioResult::new(
            id,
            Status::Error,
            format!("unknown scenario {id:?}: not in this agent's catalogue"),
        );
    };
    // Host programs first: in a guest of another architecture than the host's, that they cannot
    // run is the reason, whatever else (an x86-only workload) is missing too.
    let mut reqs = scenario.meta.requirements();
    reqs.sort_by_key(|r| !matches!(r, Req::HostProgram(_)));
    for req in reqs {
        if let Some((reason, evidence)) = req.missing(caps) {
            let mut r = ScenarioResult::new(id, Status::Unsupported, reason);
            r.evidence = Some(evidence);
            r.host_lacks = req.host_lacks();
            return r;
        }
    }
    let mut ctx = Ctx { params, tfs: Tracefs::new(TRACEFS), meta: &scenario.meta, caps };
    if let Err(e) = ctx.tfs.reset() {
        return from_error(id, e.context("tracefs reset before the scenario failed"));
    }
    let started = Instant::now();
    let mut result = match (scenario.run)(&mut ctx) {
        Ok(r) => r,
        Err(e) => from_error(id, e),
    };
    let t = &mut result.timings;
    if t.attach_ms == 0.0 && t.run_ms == 0.0 {
        // A scenario without timings of its own (a host tool attaches, runs and detaches inside
        // its own process) reports its whole run.
        t.run_ms = ms(started);
    }
    if keep {
        return result;
    }
    let detach = Instant::now();
    let reset = ctx.tfs.reset();
    let leftovers = ctx.tfs.leftovers();
    result.timings.detach_ms += ms(detach);
    if let Err(e) = reset {
        demote(&mut result, format!("{e:#}"));
    } else if !leftovers.is_empty() {
        demote(&mut result, format!("tracefs not clean after reset: {}", leftovers.join("; ")));
    }
    result
}

/// A clean-up failure makes a scenario an infrastructure `error`, keeping its own reason.
fn demote(result: &mut ScenarioResult, why: String) {
    result.reason = if result.reason.is_empty() { why } else { format!("{}; then {why}", result.reason) };
    result.status = Status::Error;
}

/// `fail` with errno for a refused tracing request, `error` for anything else.
fn from_error(id: &str, e: anyhow::Error) -> ScenarioResult {
    let refused = e.chain().find_map(|c| c.downcast_ref::<Refused>());
    let (status, errno) = match refused {
        Some(r) => (Status::Fail, Some(r.errno)),
        None => (Status::Error, sys::chain_errno(&e)),
    };
    let mut r = ScenarioResult::new(id, status, format!("{e:#}"));
    r.errno = errno;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_writes_fail_with_errno_other_errors_are_infrastructure() {
        let refused =
            anyhow::Error::new(Refused { call: "write(\"p:x\" > kprobe_events)".into(), errno: libc::EINVAL })
                .context("define probe");
        let r = from_error("k", refused);
        assert_eq!((r.status, r.errno), (Status::Fail, Some(libc::EINVAL)));
        let r = from_error("k", anyhow::anyhow!("spawn(/bin/x) failed"));
        assert_eq!((r.status, r.errno), (Status::Error, None));
    }

    #[test]
    fn catalogue_ids_are_unique_and_well_formed() {
        let ids = ids();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "duplicate scenario id");
        // `selftest.*` are the harness's own fault injections (hang, panic), not tracing paths.
        for id in ids.iter().filter(|id| !id.starts_with("selftest.")) {
            assert!(id.split('.').count() >= 3, "{id} is not family.path.target");
        }
    }

    #[test]
    fn a_workload_requirement_is_listed_and_checked_after_the_scenarios_own() {
        // The catalogue's text and the order `run_one` checks in (the first missing one is the
        // reason) both come from `Meta::requirements`.
        let s = catalogue().find(|s| s.meta.id == "kprobe.fprobe.openat").expect("kprobe.fprobe.openat listed");
        let listed: Vec<String> = s.meta.requirements().into_iter().map(Req::describe).collect();
        assert_eq!(
            listed,
            [
                "tracefs mounted",
                "tracefs file dynamic_events",
                "probe syntax f[ in tracefs README",
                "program /bin/openat-loop"
            ]
        );
        let info = info().into_iter().find(|i| i.id == "kprobe.fprobe.openat").expect("in info()");
        assert_eq!(info.requires, listed);
        let params: Vec<(&str, &str)> = info.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(params, [("count", "100"), ("path", "/tmp/kmatrix-openat")]);
    }

    #[test]
    #[should_panic(expected = "a scenario entry takes one requires_last")]
    fn a_second_requires_last_is_refused_not_silently_replacing_the_first() {
        // In a `const` (every catalogue entry) this assertion stops the build instead.
        let _ = meta::Meta::new("x.y.z", "1.0").on_openat_loop(&[]).requires_last(Req::Tracefs);
    }

    /// docs/seeds.md names, for each sequence of the seed notes, the scenarios that run it:
    /// every id it names must be one the catalogue has (a renamed or removed scenario leaves a
    /// row claiming what nothing runs). Patterns (`uprobe.*`) are not ids.
    #[test]
    fn every_scenario_docs_seeds_names_exists() {
        let doc = include_str!("../../../docs/seeds.md");
        let known = ids();
        let families = ["selftest.", "ftrace.", "kprobe.", "uprobe.", "tracepoint.", "perf.", "bpf.", "tool."];
        let named: Vec<&str> = doc
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|t| families.iter().any(|f| t.starts_with(f)) && !t.contains('*') && !t.contains(' '))
            .collect();
        assert!(named.len() > 60, "{} ids named", named.len());
        let unknown: Vec<&&str> = named.iter().filter(|t| !known.iter().any(|k| k == *t)).collect();
        assert!(unknown.is_empty(), "docs/seeds.md names scenarios the catalogue lacks: {unknown:?}");
    }

    #[test]
    fn every_scenario_sits_in_its_id_family() {
        let families = [
            ("selftest", selftest::ALL),
            ("ftrace", ftrace::ALL),
            ("kprobe", kprobe::TRACEFS),
            ("kprobe", kprobe::PERF_PMU),
            ("uprobe", uprobe::TRACEFS),
            ("uprobe", uprobe::PERF_PMU),
            ("tracepoint", tracepoint::ALL),
            ("perf", perf::ALL),
            ("bpf", bpf::ALL),
            ("tool", tool::ALL),
        ];
        for (family, scenarios) in families {
            for s in scenarios {
                assert_eq!(s.meta.id.split('.').next(), Some(family), "{} listed under {family}", s.meta.id);
            }
        }
    }
}
