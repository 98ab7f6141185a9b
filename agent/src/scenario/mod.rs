//! The scenario framework: the [`Scenario`] trait, requirements, the catalogue, and the runner
//! that wraps every scenario in a tracefs reset before and after.
//!
//! A scenario exercises one tracing path against a known workload and reports exact counts. It
//! returns `Ok(result)` with `pass` or `fail`; an `Err` whose chain holds a
//! [`Refused`](crate::tracefs::Refused) (the kernel said no to a tracing request) becomes `fail`
//! with that errno, any other `Err` becomes `error` (infrastructure). Requirements are checked
//! before running, so a missing feature is `unsupported` with its evidence rather than a failure.

mod bpf;
mod bpf_attach;
mod bpf_core;
mod bpf_multi;
mod bpf_object;
mod bpf_output;
mod bpf_user;
mod common;
mod dynevents;
mod events;
mod formats;
mod ftrace;
mod kprobe;
mod marker;
mod openat;
mod perf_event;
mod sched;
mod selftest;
mod uprobe;
mod workload;

use crate::mounts::{DEBUGFS, TRACEFS};
use crate::sys;
use crate::tracefs::{Refused, Tracefs};
use crate::{kallsyms, kconfig};
use anyhow::{Context, Result};
use kmatrix_proto::{Capabilities, Count, ScenarioInfo, ScenarioResult, Status};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// What a scenario needs from the guest; checked against the capability record and the files.
#[derive(Debug, Clone, Copy)]
pub enum Req {
    /// tracefs mounted.
    Tracefs,
    /// A tracer listed in `available_tracers`.
    Tracer(&'static str),
    /// A tracefs file (`kprobe_events`, `set_ftrace_pid`, ...).
    File(&'static str),
    /// An event directory under `events/` (`syscalls/sys_enter_openat`).
    Event(&'static str),
    /// A debugfs file (`kprobes/blacklist`).
    Debugfs(&'static str),
    /// A program in the image (`/bin/openat-loop`).
    Program(&'static str),
    /// A probe syntax in the tracefs README whose text starts with this (`e[`, `f[`).
    Syntax(&'static str),
    /// A tracer option file `options/<name>`, built only with `config`, first in upstream `since`;
    /// when absent, the reason tells a kernel that predates the option from one built without it.
    TraceOption { name: &'static str, config: &'static str, since: &'static str },
    /// A kernel config option: read from the kernel's config when the guest has it, else
    /// inferred from a tracefs file that the kernel creates exactly when the option is set.
    Config { option: &'static str, tracefs: &'static str },
    /// A perf PMU under `/sys/bus/event_source/devices` (`kprobe`, `uprobe`).
    Pmu(&'static str),
    /// A symbol in `/proc/kallsyms`.
    Symbol(&'static str),
}

impl Req {
    /// The requirement as text, for the catalogue (`ScenarioInfo::requires`).
    pub fn describe(&self) -> String {
        match *self {
            Req::Tracefs => "tracefs mounted".to_string(),
            Req::Tracer(t) => format!("tracer {t}"),
            Req::File(f) => format!("tracefs file {f}"),
            Req::Event(e) => format!("event {e}"),
            Req::Debugfs(f) => format!("debugfs file {f}"),
            Req::Program(p) => format!("program {p}"),
            Req::Syntax(s) => format!("probe syntax {s} in tracefs README"),
            Req::TraceOption { name, config, since } => format!("tracefs options/{name} ({config}, since {since})"),
            Req::Config { option, tracefs } => format!("config {option} (else tracefs {tracefs})"),
            Req::Pmu(p) => format!("perf PMU {p}"),
            Req::Symbol(s) => format!("symbol {s} in /proc/kallsyms"),
        }
    }

    /// None when met; else the missing requirement and the evidence.
    fn missing(&self, caps: &Capabilities) -> Option<(String, String)> {
        let tracefs = Path::new(TRACEFS);
        match *self {
            Req::Tracefs => caps.tracefs_mount.is_none().then(|| {
                let outcome = caps
                    .mounts
                    .iter()
                    .find(|m| m.fstype == "tracefs")
                    .map_or("not attempted".to_string(), |m| m.outcome.clone());
                ("tracefs not mounted".into(), format!("mount(tracefs): {outcome}"))
            }),
            Req::Tracer(t) => (!caps.available_tracers.iter().any(|x| x == t)).then(|| {
                (
                    format!("tracer {t} not available"),
                    format!("available_tracers: {}", caps.available_tracers.join(" ")),
                )
            }),
            Req::File(f) => (!tracefs.join(f).exists())
                .then(|| (format!("tracefs file {f} absent"), format!("{} does not exist", tracefs.join(f).display()))),
            Req::Event(e) => (!tracefs.join("events").join(e).is_dir())
                .then(|| (format!("event {e} absent"), format!("{}/events/{e} does not exist", TRACEFS))),
            Req::Debugfs(f) => (!Path::new(DEBUGFS).join(f).exists()).then(|| {
                (
                    format!("debugfs file {f} absent"),
                    format!("{DEBUGFS}/{f} does not exist (debugfs mounted: {})", caps.debugfs_mounted),
                )
            }),
            Req::Program(p) => (!Path::new(p).exists())
                .then(|| (format!("program {p} not in the image"), format!("{p} does not exist"))),
            Req::Syntax(prefix) => (!caps.has_probe_syntax(prefix)).then(|| {
                let kinds: Vec<&str> = caps.probe_syntaxes.iter().map(|s| s.text.as_str()).collect();
                (
                    format!("no `{prefix}` syntax in tracefs README"),
                    format!("README probe syntaxes: {}", kinds.join(" | ")),
                )
            }),
            Req::TraceOption { name, config, since } => {
                (!tracefs.join("options").join(name).exists()).then(|| option_absent(caps, name, config, since))
            }
            Req::Config { option, tracefs: file } => config_missing(caps, option, file),
            Req::Pmu(p) => (!caps.perf_pmus.contains_key(p)).then(|| {
                let pmus: Vec<&str> = caps.perf_pmus.keys().map(String::as_str).collect();
                (format!("perf PMU {p} absent"), format!("/sys/bus/event_source/devices: {}", pmus.join(" ")))
            }),
            Req::Symbol(s) => match kallsyms::has(s) {
                Ok(true) => None,
                Ok(false) => Some((format!("symbol {s} not in /proc/kallsyms"), kallsyms::evidence(s))),
                Err(e) => Some((format!("symbol {s} could not be looked up"), format!("{e:#}"))),
            },
        }
    }
}

/// Why `options/<name>` is absent: the config says so when the guest has it; else the kernel
/// version tells a kernel older than the option from one built without it.
fn option_absent(caps: &Capabilities, name: &str, config: &str, since: &str) -> (String, String) {
    let listed = std::fs::read_dir(Path::new(TRACEFS).join("options"))
        .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect::<Vec<_>>())
        .unwrap_or_default();
    let file = format!("options/{name}");
    if let Some(kconfig::Config { source, options }) = kconfig::get(caps) {
        return match options.get(config).map(String::as_str) {
            Some("n") => (format!("{config} is not set"), format!("{file} absent; {source}: # {config} is not set")),
            Some(v) => (format!("{file} absent although {config}={v}"), format!("{source}: {config}={v}")),
            None => (
                format!("{file} absent: this kernel's config has no {config} (added in {since})"),
                format!("{source} does not mention {config}"),
            ),
        };
    }
    let evidence = format!("{file} absent (options/: {}); no kernel config in the guest", listed.join(" "));
    match (kversion(&caps.release), kversion(since)) {
        (Some(k), Some(s)) if k < s => (format!("{file} absent: kernel {} predates {since}", caps.release), evidence),
        _ => (
            format!(
                "{config} is not set: {file} absent on {} (>= {since}), and tracefs creates it exactly with {config}",
                caps.release
            ),
            evidence,
        ),
    }
}

/// None when `option` is set; else why not, from the config or from the tracefs evidence.
fn config_missing(caps: &Capabilities, option: &str, file: &str) -> Option<(String, String)> {
    if let Some(kconfig::Config { source, options }) = kconfig::get(caps) {
        return match options.get(option).map(String::as_str) {
            Some("y") | Some("m") => None,
            Some("n") => Some((format!("{option} is not set"), format!("{source}: # {option} is not set"))),
            Some(v) => Some((format!("{option} is not set"), format!("{source}: {option}={v}"))),
            None => {
                Some((format!("{option} not in this kernel's config"), format!("{source} does not mention {option}")))
            }
        };
    }
    (!Path::new(TRACEFS).join(file).exists()).then(|| {
        (
            format!("{option} is not set (tracefs has no {file})"),
            format!(
                "{TRACEFS}/{file} does not exist, and the kernel creates it exactly when {option}=y; \
                 no kernel config in the guest"
            ),
        )
    })
}

/// `major.minor` of a kernel release (`6.1.0-47-amd64`) or a `since` (`5.15`).
pub fn kversion(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// What a scenario gets to work with.
pub struct Ctx<'a> {
    pub params: &'a BTreeMap<String, String>,
    pub tfs: Tracefs,
    /// The scenario's declared parameter defaults ([`Scenario::params`]).
    pub defaults: &'static [(&'static str, &'static str)],
}

impl Ctx<'_> {
    /// A numeric parameter, `default` when absent; a malformed value is an error naming it.
    pub fn param_u64(&self, key: &str, default: u64) -> Result<u64> {
        match self.params.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().with_context(|| format!("parameter {key}={v:?} is not a number")),
        }
    }

    /// The `count` parameter, bounded so a typo cannot fill the guest's memory.
    pub fn count(&self, default: u64) -> Result<u64> {
        let n = self.param_u64("count", default)?;
        anyhow::ensure!((1..=1_000_000).contains(&n), "parameter count={n} out of range 1..=1000000");
        Ok(n)
    }

    /// The `count` parameter with the default the scenario declares in [`Scenario::params`], so
    /// the catalogue and the run agree on it.
    pub fn declared_count(&self) -> Result<u64> {
        let default = self
            .defaults
            .iter()
            .find(|(k, _)| *k == "count")
            .and_then(|(_, v)| v.parse().ok())
            .context("the scenario declares no numeric count default")?;
        self.count(default)
    }

    pub fn timeout(&self) -> Result<std::time::Duration> {
        Ok(std::time::Duration::from_millis(self.param_u64("timeout_ms", 60_000)?))
    }
}

pub trait Scenario: Sync {
    /// `family.path.target`, e.g. `kprobe.tracefs.openat`.
    fn id(&self) -> &'static str;
    /// One line: what the scenario exercises and what it counts.
    fn summary(&self) -> &'static str;
    /// The first upstream kernel version with everything the path needs (`"5.15"`); the host
    /// judges `unsupported` at or above it as `fail` unless an expectation names it.
    fn since(&self) -> &'static str;
    /// The first upstream version without the path (a removed tracepoint), if any.
    fn until(&self) -> Option<&'static str> {
        None
    }
    /// Parameters and their defaults (`count` = `100`), as the catalogue lists them.
    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
    fn requirements(&self) -> Vec<Req>;
    /// Run on a clean tracefs; the runner resets it again afterwards.
    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult>;
}

/// Every scenario the agent knows, in catalogue order.
pub fn catalogue() -> Vec<&'static dyn Scenario> {
    let mut all: Vec<&'static dyn Scenario> = Vec::new();
    // First, so that when a test selects them with others, the others run after the breakage
    // (in a fresh VM); never selected by `*`.
    all.extend(selftest::ALL);
    all.extend(ftrace::ALL);
    all.extend(marker::ALL);
    all.extend(events::ALL);
    all.extend(sched::ALL);
    all.extend(formats::ALL);
    all.extend(kprobe::ALL);
    all.extend(dynevents::ALL);
    all.extend(uprobe::ALL);
    all.extend(perf_event::ALL);
    all.extend(bpf::ALL);
    all
}

/// The catalogue as the host lists and judges it (`kmatrix-agent --catalogue`).
pub fn info() -> Vec<ScenarioInfo> {
    catalogue()
        .iter()
        .map(|s| ScenarioInfo {
            id: s.id().to_string(),
            summary: s.summary().to_string(),
            since: s.since().to_string(),
            until: s.until().map(String::from),
            requires: s.requirements().iter().map(Req::describe).collect(),
            params: s.params().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        })
        .collect()
}

/// Ids of the catalogue, for the capability record.
pub fn ids() -> Vec<String> {
    catalogue().iter().map(|s| s.id().to_string()).collect()
}

/// Run one scenario by id with requirement checks and tracefs hygiene around it.
pub fn run_one(id: &str, params: &BTreeMap<String, String>, caps: &Capabilities) -> ScenarioResult {
    let Some(scenario) = catalogue().into_iter().find(|s| s.id() == id) else {
        return ScenarioResult::new(
            id,
            Status::Error,
            format!("unknown scenario {id:?}: not in this agent's catalogue"),
        );
    };
    for req in scenario.requirements() {
        if let Some((reason, evidence)) = req.missing(caps) {
            let mut r = ScenarioResult::new(id, Status::Unsupported, reason);
            r.evidence = Some(evidence);
            return r;
        }
    }
    let mut ctx = Ctx { params, tfs: Tracefs::new(TRACEFS), defaults: scenario.params() };
    if let Err(e) = ctx.tfs.reset() {
        return from_error(id, e.context("tracefs reset before the scenario failed"));
    }
    let mut result = match scenario.run(&mut ctx) {
        Ok(r) => r,
        Err(e) => from_error(id, e),
    };
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

/// Milliseconds since `t`, for timings.
pub fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

pub fn count(what: impl Into<String>, expected: u64, observed: u64) -> Count {
    Count { what: what.into(), expected, observed }
}

/// `unsupported` found while running (a refusal that shows the kernel lacks the path, such as
/// ENOENT for a hardware counter without a PMU), with its evidence and errno.
pub fn unsupported(
    id: &str,
    reason: impl Into<String>,
    evidence: impl Into<String>,
    errno: Option<i32>,
) -> ScenarioResult {
    let mut r = ScenarioResult::new(id, Status::Unsupported, reason);
    r.evidence = Some(evidence.into());
    r.errno = errno;
    r
}

/// `pass` when every count matches and `problems` is empty, else `fail` naming each difference.
pub fn verdict(id: &str, counts: Vec<Count>, problems: Vec<String>) -> ScenarioResult {
    let mut why: Vec<String> = counts
        .iter()
        .filter(|c| c.expected != c.observed)
        .map(|c| format!("{}: expected {}, observed {}", c.what, c.expected, c.observed))
        .collect();
    why.extend(problems);
    let mut r = if why.is_empty() {
        ScenarioResult::new(id, Status::Pass, "")
    } else {
        ScenarioResult::new(id, Status::Fail, why.join("; "))
    };
    r.counts = counts;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_fails_on_any_count_mismatch_and_names_it() {
        let ok = verdict("x", vec![count("hits", 3, 3)], vec![]);
        assert_eq!(ok.status, Status::Pass);
        let bad = verdict("x", vec![count("hits", 3, 3), count("misses", 0, 2)], vec![]);
        assert_eq!(bad.status, Status::Fail);
        assert_eq!(bad.reason, "misses: expected 0, observed 2");
        let problem = verdict("x", vec![], vec!["workload ended with exit 1".into()]);
        assert_eq!(problem.status, Status::Fail);
    }

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
    fn missing_requirements_name_the_evidence() {
        let caps = Capabilities { available_tracers: vec!["nop".into()], ..Default::default() };
        let (reason, evidence) = Req::Tracer("function").missing(&caps).unwrap();
        assert_eq!(reason, "tracer function not available");
        assert_eq!(evidence, "available_tracers: nop");
        assert!(Req::Tracer("nop").missing(&caps).is_none());
        assert!(Req::Tracefs.missing(&caps).is_some());
        let (reason, _) = Req::Syntax("f[").missing(&caps).unwrap();
        assert_eq!(reason, "no `f[` syntax in tracefs README");
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
}
