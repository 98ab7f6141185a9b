//! The workload of the scenarios that take one (a `workload` parameter): one of the agent's own
//! (`openat-loop:N`, `hello:N`, whose counts are exact), or a user's host command (`kmatrix run
//! --workload 'CMD ARGS'`, sent as `workload_cmd`, a JSON argv the host resolved) run in the
//! shared host root; which pids are the workload's (its process tree, followed through
//! `sched_process_fork` recorded in the same trace); and the check on what a probe saw of it.
//!
//! A user's command promises no count: the check is `expect_runs` when given, else "at least
//! once". Not for the scenarios whose workload is fixed (`support::openat_loop`,
//! `support::workload`), which check exact counts against the workload's own account.

use super::gated::{release_and_disarm, trace_problems, Armed, Enables};
use super::openat_loop::{self, OPENAT_LOOP};
use super::verdict::{count, verdict};
use super::workload::HELLO;
use crate::excerpt;
use crate::process::{self, Running};
use crate::scenario::meta::Ctx;
use crate::tracefs::trace;
use anyhow::{bail, Context, Result};
use kmatrix_proto::tracefs::trace::Trace;
use kmatrix_proto::{Count, ScenarioResult};
use std::collections::BTreeSet;
use std::time::Instant;

/// The environment of a user's host command (a plain root shell's).
pub const HOST_ENV: &[(&str, &str)] =
    &[("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), ("HOME", "/root"), ("LANG", "C.UTF-8")];

/// Where a host command runs: `workload_cwd` (the caller's directory, seen through the shared
/// root), else the guest's `/tmp`.
pub fn host_cwd(params: &std::collections::BTreeMap<String, String>) -> String {
    params.get("workload_cwd").map(|c| c.trim()).filter(|c| c.starts_with('/')).unwrap_or("/tmp").to_string()
}

/// The fork tracepoint that ties a workload's children to it.
pub const FORK_EVENT: &str = "sched/sched_process_fork";

/// A built-in workload spec (`openat-loop:N`, `hello:N`) as argv, with N.
pub fn builtin(spec: &str, openat_path: &str) -> Result<(Vec<String>, u64)> {
    let (name, n) = spec.split_once(':').unwrap_or((spec, "1"));
    let n: u64 = n.trim().parse().with_context(|| format!("workload={spec:?}: count is not a number"))?;
    anyhow::ensure!((1..=1_000_000).contains(&n), "workload={spec:?}: count out of range 1..=1000000");
    let argv = match name.trim() {
        "openat-loop" => vec![OPENAT_LOOP.into(), n.to_string(), openat_path.into()],
        "hello" => vec![HELLO.into(), n.to_string()],
        _ => bail!("workload={spec:?}: unknown workload (openat-loop:N, hello:N, or a host command through `kmatrix run --workload`)"),
    };
    Ok((argv, n))
}

/// What runs while a probe is armed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserWorkload {
    /// One of the agent's: `openat` is whether it is `openat-loop` (N calls on the openat path).
    Builtin { argv: Vec<String>, n: u64, openat: bool },
    /// The user's host command, run in the shared host root in `cwd` (the caller's directory,
    /// `workload_cwd`; `/tmp` when the host sent none).
    Host { argv: Vec<String>, cwd: String },
}

impl UserWorkload {
    /// From the `workload_cmd` parameter (a host command) or else `workload` (a built-in).
    pub fn from_params(ctx: &Ctx) -> Result<UserWorkload> {
        let param = |k: &str| ctx.params.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if let Some(j) = param("workload_cmd") {
            let argv: Vec<String> =
                serde_json::from_str(&j).with_context(|| format!("workload_cmd={j:?} is not a JSON argv"))?;
            anyhow::ensure!(!argv.is_empty(), "workload_cmd is an empty argv");
            return Ok(UserWorkload::Host { argv, cwd: host_cwd(ctx.params) });
        }
        let default = ctx.meta.params.iter().find(|(k, _)| *k == "workload").map_or("openat-loop:100", |(_, v)| *v);
        let spec = param("workload").unwrap_or_else(|| default.to_string());
        let (argv, n) = builtin(&spec, &openat_loop::target_path(ctx)?)?;
        Ok(UserWorkload::Builtin { openat: argv[0] == OPENAT_LOOP, argv, n })
    }

    /// The command line, for the result.
    pub fn describe(&self) -> String {
        match self {
            UserWorkload::Builtin { argv, .. } | UserWorkload::Host { argv, .. } => argv.join(" "),
        }
    }

    /// Start it, held at its start gate until [`Running::release`]; a host command first
    /// mounts the host root the host offered.
    pub fn start(&self) -> Result<Running> {
        match self {
            UserWorkload::Builtin { argv, .. } => process::spawn(argv, true),
            UserWorkload::Host { argv, cwd } => {
                crate::share::mount_offered().map_err(|e| anyhow::anyhow!("workload_cmd needs the host root: {e}"))?;
                crate::host_paths::prepare(cwd, argv)?;
                process::spawn_gated_in_root(argv, crate::share::HOST_ROOT, cwd, HOST_ENV)
            }
        }
    }

    /// What the probe must see: `expect_runs` when given; else N for `openat-loop` on a probe of
    /// its own call (`own_call`), where the count is exact; else `None`, at least once.
    pub fn expected(&self, ctx: &Ctx, own_call: bool) -> Result<Option<u64>> {
        if let Some(v) = ctx.params.get("expect_runs").map(|v| v.trim()).filter(|v| !v.is_empty()) {
            return Ok(Some(v.parse().with_context(|| format!("expect_runs={v:?} is not a number"))?));
        }
        Ok(match self {
            UserWorkload::Builtin { n, openat: true, .. } if own_call => Some(*n),
            _ => None,
        })
    }
}

/// A scenario's `event` (`system/name`, defined or not) armed for the workload, with
/// [`FORK_EVENT`] beside it to follow the workload's children.
pub struct Observed {
    /// The workload's run.
    pub armed: Armed,
    /// The `trace` file afterwards.
    pub text: String,
    /// The workload's process tree ([`tree`]).
    pub pids: BTreeSet<i32>,
    /// Entries of `event` from those processes.
    pub seen: u64,
    /// Events the ring buffer lost (`[LOST N EVENTS]` in the trace).
    pub lost: u64,
}

/// Start `w` gated, enable `event` and [`FORK_EVENT`] (opened before the release, so the
/// disarm adds no syscall of the agent's), release it, wait, disable them, and count the
/// entries of `event` of the workload's processes: every entry that is not a fork's, as the
/// two are the only events on. `attach` is when arming began (the event's definition).
pub fn observe(ctx: &mut Ctx, w: &UserWorkload, attach: Instant, event: &str) -> Result<Observed> {
    let running = w.start()?;
    let mut enables = Enables::default();
    enables.open(ctx, event)?;
    enables.open(ctx, FORK_EVENT)?;
    enables.set(ctx, true)?;
    let armed = release_and_disarm(ctx, running, attach, |ctx| enables.set(ctx, false))?;
    let text = ctx.tfs.read("trace")?;
    let parsed = trace::parse(&text);
    let pids = tree(&parsed, armed.pid);
    let seen =
        parsed.entries.iter().filter(|e| pids.contains(&e.pid) && !e.body.starts_with("sched_process_fork: ")).count()
            as u64;
    let lost = parsed.lost;
    Ok(Observed { armed, text, pids, seen, lost })
}

impl Observed {
    /// The verdict: `what` seen as [`hits`] expects, more `counts`, and the run's problems
    /// (a bad end of the workload, lost events); `detail` gets the workload and its pids.
    pub fn verdict(
        &self,
        ctx: &Ctx,
        w: &UserWorkload,
        what: &str,
        expected: Option<u64>,
        more: Vec<Count>,
        mut detail: serde_json::Value,
    ) -> ScenarioResult {
        let mut counts = vec![hits(what, expected, self.seen)];
        counts.extend(more);
        let mut r = verdict(ctx.id(), counts, trace_problems(&self.armed.done, self.lost));
        self.armed.timings(&mut r);
        detail["workload"] = w.describe().into();
        if let UserWorkload::Host { .. } = w {
            detail["share"] = crate::share::mount_offered().ok().into();
        }
        detail["pids"] = serde_json::json!(self.pids);
        detail["hits"] = self.seen.into();
        r.detail = detail;
        r.with_excerpt(&excerpt::head_entries(&self.text, 10))
    }
}

/// The workload's process tree: `root` and every process a `sched_process_fork` entry in
/// `parsed` shows one of them forking (in trace order, so grandchildren follow their parents).
pub fn tree(parsed: &Trace, root: i32) -> BTreeSet<i32> {
    let mut pids = BTreeSet::from([root]);
    for e in &parsed.entries {
        if !e.body.starts_with("sched_process_fork: ") {
            continue;
        }
        let parent = e.field("pid").and_then(|p| p.parse::<i32>().ok());
        let child = e.field("child_pid").and_then(|p| p.parse::<i32>().ok());
        if let (Some(parent), Some(child)) = (parent, child) {
            if pids.contains(&parent) {
                pids.insert(child);
            }
        }
    }
    pids
}

/// The check on `seen` hits of `what`: exactly `expected`, or at least once without one.
pub fn hits(what: &str, expected: Option<u64>, seen: u64) -> Count {
    match expected {
        Some(n) => count(what, n, seen),
        None => count(format!("{what} (at least once)"), 1, seen.min(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmatrix_proto::tracefs::trace;

    /// `sh -c 'cat x; ls'` as `trace` printed it on 6.1 with sched_process_fork on: the shell
    /// (pid 90) forks 91 and 92, 91 forks 93; 77 is someone else's fork.
    const FORKS: &str = "\
              sh-90      [000] .....   10.000001: sched_process_fork: comm=sh pid=90 child_comm=sh child_pid=91
              sh-91      [000] .....   10.000002: sched_process_fork: comm=sh pid=91 child_comm=sh child_pid=93
         kworker-77      [000] .....   10.000003: sched_process_fork: comm=kworker pid=77 child_comm=kworker child_pid=78
              sh-90      [000] .....   10.000004: sched_process_fork: comm=sh pid=90 child_comm=sh child_pid=92
";

    #[test]
    fn the_tree_follows_forks_from_the_root_only() {
        let parsed = trace::parse(FORKS);
        assert_eq!(tree(&parsed, 90), BTreeSet::from([90, 91, 92, 93]));
        assert_eq!(tree(&parsed, 91), BTreeSet::from([91, 93]));
        assert_eq!(tree(&parsed, 5), BTreeSet::from([5]));
    }

    #[test]
    fn at_least_once_fails_on_zero_and_exact_on_any_difference() {
        assert_eq!(hits("h", None, 0).observed, 0);
        assert_eq!(hits("h", None, 7).observed, 1);
        assert_eq!(hits("h", None, 7).expected, 1);
        let c = hits("h", Some(3), 4);
        assert_ne!(c.expected, c.observed);
    }

    #[test]
    fn builtin_specs_are_checked() {
        assert_eq!(builtin("hello:3", "/p").unwrap(), (vec![HELLO.to_string(), "3".into()], 3));
        assert_eq!(builtin("openat-loop:5", "/p").unwrap().0, vec![OPENAT_LOOP, "5", "/p"]);
        assert!(builtin("sleep:1", "/p").is_err());
        assert!(builtin("hello:x", "/p").is_err());
        assert!(builtin("hello:0", "/p").is_err());
    }
}
