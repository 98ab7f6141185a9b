//! Bisecting a kernel line's builds (`kmatrix bisect`): a binary search over every build of a
//! line the mirror offers, oldest to newest, for the first build where a predicate turns bad — a
//! scenario of the catalogue (good = pass) or a host command run in the guest over the shared
//! host root (exit 0 good, 125 skip, 1-127 bad, as `git bisect run`). Every build is prepared as
//! any kernel is (downloaded, verified along the chain of trust, in the same cache) and booted
//! for real; one that cannot be prepared or does not boot is skipped with the reason. Then the
//! changelog entries (Debian's or Ubuntu's) between the last good and the first bad build.
//!
//! Not here: listing builds (`kernel::available`), rendering (`cli/bisect.rs`).

#![warn(missing_docs)]

use crate::cache::sanitize;
use crate::guest::Guest;
use crate::kernel::{changelog, AvailableKernel};
use crate::run::guests::Guests;
use crate::session::SessionError;
use kmatrix_proto::{ExecRequest, RunRequest, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a build is, for the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The predicate holds: the change came later.
    Good,
    /// The predicate fails: the change came here or earlier.
    Bad,
    /// The build could not be judged (not prepared, did not boot, exit 125); the search goes
    /// around it.
    Skip,
}

impl Verdict {
    /// `good`, `bad` or `skip`, as printed and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
            Verdict::Skip => "skip",
        }
    }
}

/// Why a bisection stopped without an answer.
#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    /// The good end tested bad or the bad end good: the range holds no change to find.
    #[error("the {role} build {spec} is not {role}: it tested {got} ({reason})")]
    Endpoint {
        /// `good` or `bad`: which end the user named.
        role: &'static str,
        /// The build's spec (`debian:<version>`).
        spec: String,
        /// What it tested instead (`good`, `bad`).
        got: &'static str,
        /// The step's reason (the scenario's, the command's exit code).
        reason: String,
    },
    /// An end was skipped (could not be prepared, did not boot, exit 125).
    #[error("the {role} build {spec} could not be tested: {reason}")]
    Untestable {
        /// `good` or `bad`: which end the user named.
        role: &'static str,
        /// The build's spec (`debian:<version>`).
        spec: String,
        /// Why it was skipped.
        reason: String,
    },
    /// Going on would mislead: a build failed its integrity check, or the command ended in a
    /// way `git bisect run` does not accept (a signal, an exit above 127, the timeout).
    #[error("bisect stopped at {spec}: {reason}")]
    Aborted {
        /// The build's spec (`debian:<version>`).
        spec: String,
        /// What happened, with where the output is.
        reason: String,
    },
    /// A command's output could not be saved next to the logs.
    #[error("cannot write {path}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A binary search over builds `0..n` (oldest first) between a good and a bad one.
#[derive(Debug, Clone)]
pub struct Search {
    state: Vec<Option<Verdict>>,
}

impl Search {
    /// `n` builds, none tested yet.
    pub fn new(n: usize) -> Search {
        Search { state: vec![None; n] }
    }

    /// Build `i` tested `v` (an index out of range is ignored).
    pub fn record(&mut self, i: usize, v: Verdict) {
        if let Some(s) = self.state.get_mut(i) {
            *s = Some(v);
        }
    }

    /// What build `i` tested; `None` when not tested (or out of range).
    pub fn verdict(&self, i: usize) -> Option<Verdict> {
        self.state.get(i).copied().flatten()
    }

    /// (last good, first bad after it), once there are both.
    pub fn bounds(&self) -> Option<(usize, usize)> {
        let lo = self.state.iter().rposition(|s| *s == Some(Verdict::Good))?;
        let hi = (lo + 1..self.state.len()).find(|&i| self.state[i] == Some(Verdict::Bad))?;
        Some((lo, hi))
    }

    /// Builds between the bounds not tested yet.
    pub fn untested(&self) -> Vec<usize> {
        match self.bounds() {
            Some((lo, hi)) => (lo + 1..hi).filter(|&i| self.state[i].is_none()).collect(),
            None => Vec::new(),
        }
    }

    /// The next build to test: of the untested ones between the bounds, the one nearest the
    /// middle (skipped builds move the choice aside, as git bisect does); `None` when done.
    pub fn next(&self) -> Option<usize> {
        let (lo, hi) = self.bounds()?;
        let mid = (lo + hi) / 2;
        self.untested().into_iter().min_by_key(|&i| (i.abs_diff(mid), i))
    }

    /// The skipped builds between the bounds: when there are any, the first bad build is one of
    /// them or the upper bound.
    pub fn skipped_between(&self) -> Vec<usize> {
        match self.bounds() {
            Some((lo, hi)) => (lo + 1..hi).filter(|&i| self.state[i] == Some(Verdict::Skip)).collect(),
            None => Vec::new(),
        }
    }

    /// Tests still needed at most: log2 of the untested range, rounded up.
    pub fn steps_left(&self) -> usize {
        let n = self.untested().len();
        (usize::BITS - n.leading_zeros()) as usize
    }
}

/// What decides good and bad.
#[derive(Debug, Clone)]
pub enum Predicate {
    /// A scenario of the catalogue with its parameters: pass is good; fail and unsupported are
    /// bad; an infrastructure error skips the build.
    Scenario {
        /// The scenario id.
        id: String,
        /// Its parameters, over the catalogue's defaults.
        params: BTreeMap<String, String>,
        /// The scenario runs a host tool, so the guest gets the host root.
        host_root: bool,
    },
    /// A host program run in the guest over the shared host root, checked on the host already:
    /// exit 0 good, 125 skip, 1-127 bad; anything else (a signal, > 127, the timeout) stops the
    /// bisect, as `git bisect run` does.
    Command {
        /// The program, its arguments and environment (boxed: a request is much larger than the
        /// scenario variant).
        req: Box<ExecRequest>,
        /// How long the command may run in one guest.
        timeout: Duration,
    },
}

impl Predicate {
    /// What "good" means, in words (`scenario kprobe.basic passes`, `` `make check` exits 0 ``).
    pub fn describe(&self) -> String {
        match self {
            Predicate::Scenario { id, .. } => format!("scenario {id} passes"),
            Predicate::Command { req, .. } => format!("`{}` exits 0", req.argv.join(" ")),
        }
    }

    fn host_root(&self) -> bool {
        match self {
            Predicate::Scenario { host_root, .. } => *host_root,
            Predicate::Command { .. } => true,
        }
    }
}

/// One tested build.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// 1, 2, ...: the order builds were tested in.
    pub n: usize,
    /// `debian:<version>`.
    pub build: String,
    /// The package version, the spec without its `debian:`.
    pub version: String,
    /// What the build tested.
    pub verdict: Verdict,
    /// Why: the scenario's reason, the command's exit code, why it was skipped.
    pub reason: String,
    /// Wall time of the step, and its parts: prepare (fetch, verify, extract, image), boot (to
    /// Hello), run (the predicate).
    pub secs: f64,
    /// Seconds preparing: fetch, verify, extract, image.
    pub prepare_s: f64,
    /// Seconds starting the guest: a cold boot or a snapshot restore, to `Hello`.
    pub boot_s: f64,
    /// Seconds running the predicate.
    pub run_s: f64,
    /// The guest was restored from a snapshot rather than booted cold.
    pub restored: bool,
    /// The console log, and for a command its output.
    pub logs: Vec<PathBuf>,
}

/// How to boot and where logs go.
#[derive(Debug, Clone)]
pub struct Bisector {
    /// How guests boot, as `kmatrix run` boots them.
    pub guests: Guests,
    /// The folder console logs and command outputs are written to.
    pub out: PathBuf,
    /// What decides good and bad.
    pub predicate: Predicate,
}

/// The outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The kernel line bisected (`6.12`).
    pub line: String,
    /// What good meant ([`Predicate::describe`]).
    pub predicate: String,
    /// Every build of the range, oldest first.
    pub builds: Vec<AvailableKernel>,
    /// Every tested build, in the order tested (the two ends first).
    pub steps: Vec<Step>,
    /// The newest build that tested good.
    pub last_good: AvailableKernel,
    /// The first build after it that tested bad.
    pub first_bad: AvailableKernel,
    /// Skipped builds between the two: the first bad build may be any of these (or first_bad).
    pub could_also_be: Vec<AvailableKernel>,
    /// The changelog entries of the builds after the last good one up to the first bad
    /// one, newest first, as the first bad build's package ships them.
    pub changelog: Vec<changelog::Entry>,
    /// Why there is no changelog, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changelog_error: Option<String>,
    /// Seconds the whole bisection took.
    pub wall_s: f64,
}

impl Bisector {
    /// Prepare, boot and judge build `b` as step `n`.
    pub async fn test(&self, n: usize, b: &AvailableKernel) -> Result<Step, BisectError> {
        let t0 = Instant::now();
        let mut step = Step {
            n,
            build: b.spec.clone(),
            version: b.version.clone(),
            verdict: Verdict::Skip,
            reason: String::new(),
            secs: 0.0,
            prepare_s: 0.0,
            boot_s: 0.0,
            run_s: 0.0,
            restored: false,
            logs: Vec::new(),
        };
        let image = self.guests.settings.image_options(self.predicate.host_root());
        let prepared = self.guests.session.prepare(&b.spec, &self.guests.fetch, image, &[]).await;
        step.prepare_s = t0.elapsed().as_secs_f64();
        let (k, img) = match prepared {
            Ok(x) => x,
            Err(SessionError::Kernel { source, .. }) if source.is_integrity() => {
                return Err(BisectError::Aborted { spec: b.spec.clone(), reason: crate::error_chain(&*source) });
            }
            Err(e) => {
                step.reason = format!("cannot prepare it: {}", crate::error_chain(&e));
                step.secs = t0.elapsed().as_secs_f64();
                return Ok(step);
            }
        };
        let tag = format!("step{n}-{}", sanitize(&b.version));
        let log = self.out.join(format!("{tag}.console.log"));
        step.logs.push(log.clone());
        let mut opts = self.guests.options(&k, log.clone());
        if self.predicate.host_root() {
            match self.guests.share_plan(&k.id, k.boot.config.as_deref()) {
                Ok(plan) => opts.share = Some(plan),
                Err(e) => {
                    step.reason = format!("cannot share the host root: {e}");
                    return Ok(step);
                }
            }
        }
        let t1 = Instant::now();
        let started = self.guests.session.start_guest(&k, &img, &opts).await;
        step.boot_s = t1.elapsed().as_secs_f64();
        let mut g = match started {
            Ok(g) => g,
            Err(e) => {
                let first = e.to_string().lines().next().unwrap_or("").to_string();
                step.reason = format!("did not boot: {first} (console log {})", log.display());
                step.secs = t0.elapsed().as_secs_f64();
                return Ok(step);
            }
        };
        step.restored = g.restored;
        let t2 = Instant::now();
        let judged = self.judge(&mut g, b, &k.release, &tag, &mut step).await;
        step.run_s = t2.elapsed().as_secs_f64();
        match &judged {
            Ok(true) => {
                let _ = g.shutdown().await;
            }
            _ => g.kill().await,
        }
        judged?;
        step.secs = t0.elapsed().as_secs_f64();
        Ok(step)
    }

    /// Run the predicate in `g`; `Ok(false)` when the guest is broken and must be killed.
    async fn judge(
        &self,
        g: &mut Guest,
        b: &AvailableKernel,
        release: &str,
        tag: &str,
        step: &mut Step,
    ) -> Result<bool, BisectError> {
        match &self.predicate {
            Predicate::Scenario { id, params, .. } => {
                let req = RunRequest {
                    scenario: id.clone(),
                    params: params.clone(),
                    root: g.share.clone(),
                    keep_state: false,
                    host_time_ns: None,
                };
                match g.run(req, self.guests.scenario_timeout).await {
                    Ok(r) => {
                        step.verdict = match r.status {
                            Status::Pass | Status::Flaky => Verdict::Good,
                            Status::Fail | Status::Unsupported => Verdict::Bad,
                            Status::Error | Status::Xfail => Verdict::Skip,
                        };
                        step.reason = format!(
                            "{}{}",
                            r.status,
                            if r.reason.is_empty() { String::new() } else { format!(": {}", r.reason) }
                        );
                        Ok(true)
                    }
                    Err(e) => {
                        let first = e.to_string().lines().next().unwrap_or("").to_string();
                        step.reason = format!("the guest broke during {id}: {first}");
                        Ok(false)
                    }
                }
            }
            Predicate::Command { req, timeout } => {
                let mut req = req.as_ref().clone();
                req.root = g.share.clone();
                req.stream = false;
                req.env = crate::exec::guest_env(std::mem::take(&mut req.env), &b.spec, release);
                let out = g.exec(req, *timeout + Duration::from_secs(30)).await.map_err(|e| BisectError::Aborted {
                    spec: b.spec.clone(),
                    reason: format!("the command did not finish: {}", e.to_string().lines().next().unwrap_or("")),
                })?;
                let path = self.out.join(format!("{tag}.output"));
                let text = format!("--- stdout\n{}--- stderr\n{}", out.stdout, out.stderr);
                std::fs::write(&path, text).map_err(|source| BisectError::Write { path: path.clone(), source })?;
                step.logs.push(path.clone());
                match (out.exit_code, out.signal, out.timed_out) {
                    (Some(0), _, false) => step.verdict = Verdict::Good,
                    (Some(125), _, false) => step.verdict = Verdict::Skip,
                    (Some(c), _, false) if (1..=127).contains(&c) => step.verdict = Verdict::Bad,
                    (code, signal, timed_out) => {
                        let how = match (code, signal) {
                            _ if timed_out => "it timed out".to_string(),
                            (Some(c), _) => format!("exit {c}"),
                            (None, Some(s)) => format!("signal {s}"),
                            _ => "no exit status".to_string(),
                        };
                        return Err(BisectError::Aborted {
                            spec: b.spec.clone(),
                            reason: format!(
                                "the command ended with {how}, which is neither good (0), skip (125) nor bad (1-127); output in {}",
                                path.display()
                            ),
                        });
                    }
                }
                step.reason = format!("exit {}", out.exit_code.unwrap_or(-1));
                Ok(true)
            }
        }
    }
}

/// Bisect `builds` (oldest first) between `good` and `bad` (indexes): both ends are tested first
/// (a good end that is bad, or the other way round, is an error naming it), then the search.
/// `on_step` sees each step as it ends, with the search after it.
pub async fn bisect(
    b: &Bisector,
    line: &str,
    builds: Vec<AvailableKernel>,
    good: usize,
    bad: usize,
    mut on_step: impl FnMut(&Step, &Search),
) -> Result<Report, BisectError> {
    let started = Instant::now();
    let mut search = Search::new(builds.len());
    let mut steps: Vec<Step> = Vec::new();
    for (i, role, want) in [(good, "good", Verdict::Good), (bad, "bad", Verdict::Bad)] {
        let s = b.test(steps.len() + 1, &builds[i]).await?;
        search.record(i, s.verdict);
        on_step(&s, &search);
        let (verdict, reason) = (s.verdict, s.reason.clone());
        steps.push(s);
        if verdict == Verdict::Skip {
            return Err(BisectError::Untestable { role, spec: builds[i].spec.clone(), reason });
        }
        if verdict != want {
            return Err(BisectError::Endpoint { role, spec: builds[i].spec.clone(), got: verdict.as_str(), reason });
        }
    }
    while let Some(i) = search.next() {
        let s = b.test(steps.len() + 1, &builds[i]).await?;
        search.record(i, s.verdict);
        on_step(&s, &search);
        steps.push(s);
    }
    // Both ends were tested as they should be, so there are bounds.
    let (lo, hi) = search.bounds().unwrap_or((good, bad));
    let (last_good, first_bad) = (builds[lo].clone(), builds[hi].clone());
    let could_also_be = search.skipped_between().into_iter().map(|i| builds[i].clone()).collect();
    let (changelog, changelog_error) = match between(b, &last_good, &first_bad).await {
        Ok(c) => (c, None),
        Err(e) => (Vec::new(), Some(crate::error_chain(&e))),
    };
    Ok(Report {
        line: line.to_string(),
        predicate: b.predicate.describe(),
        builds,
        steps,
        last_good,
        first_bad,
        could_also_be,
        changelog,
        changelog_error,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// The changelog entries between two builds, from the first bad build's package.
async fn between(
    b: &Bisector,
    good: &AvailableKernel,
    bad: &AvailableKernel,
) -> Result<Vec<changelog::Entry>, ChangelogError> {
    let (spec, cache, fetch) = (bad.spec.clone(), b.guests.session.cache.clone(), b.guests.fetch.clone());
    let (gv, bv) = (good.version.clone(), bad.version.clone());
    tokio::task::spawn_blocking(move || {
        let parsed = spec.parse()?;
        let k = crate::kernel::prepare(&parsed, &cache, &fetch)?;
        let text = changelog::changelog(&k, &cache, &fetch)?;
        let all = changelog::parse(&text);
        Ok(changelog::between(&all, &gv, &bv).into_iter().cloned().collect())
    })
    .await
    .map_err(ChangelogError::Task)?
}

/// Why a bisect report has no changelog (the search's answer stands without it).
#[derive(Debug, thiserror::Error)]
enum ChangelogError {
    /// The first bad build or its changelog could not be fetched.
    #[error(transparent)]
    Kernel(#[from] crate::kernel::KernelError),
    /// The blocking task panicked or was cancelled.
    #[error("changelog task died: {0}")]
    Task(tokio::task::JoinError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the search over `n` builds whose truth is `bad_from` (first bad index), with `skip`
    /// builds skipped; returns the order builds were tested in.
    fn drive(n: usize, bad_from: usize, skip: &[usize]) -> (Vec<usize>, Search) {
        let mut s = Search::new(n);
        let truth = |i: usize| {
            if skip.contains(&i) {
                Verdict::Skip
            } else if i >= bad_from {
                Verdict::Bad
            } else {
                Verdict::Good
            }
        };
        let mut order = vec![0, n - 1];
        s.record(0, truth(0));
        s.record(n - 1, truth(n - 1));
        while let Some(i) = s.next() {
            assert!(!order.contains(&i), "{i} tested twice");
            order.push(i);
            s.record(i, truth(i));
        }
        (order, s)
    }

    #[test]
    fn finds_the_first_bad_build_in_log2_steps() {
        for n in 2..40 {
            for bad_from in 1..n {
                let (order, s) = drive(n, bad_from, &[]);
                assert_eq!(s.bounds(), Some((bad_from - 1, bad_from)), "n={n} bad_from={bad_from}");
                let log2 = (usize::BITS - (n - 2).leading_zeros()) as usize;
                assert!(order.len() - 2 <= log2, "n={n}: {} steps for {log2}", order.len() - 2);
            }
        }
        // 14 builds, first bad at 6: ends, then 6, 3, 4, 5 (nearest the middle each time).
        assert_eq!(drive(14, 6, &[]).0, [0, 13, 6, 3, 4, 5]);
    }

    #[test]
    fn skipped_builds_move_the_choice_aside_and_are_reported_when_they_hide_the_answer() {
        // 4 is skipped: 5 is tested instead, and 4 does not stand between 5 and 6.
        let (order, s) = drive(14, 6, &[4]);
        assert_eq!(order, [0, 13, 6, 3, 4, 5]);
        assert_eq!((s.bounds(), s.skipped_between()), (Some((5, 6)), vec![]));
        // 5 is skipped and is the last good one's neighbour: the first bad is 5 or 6.
        let (_, s) = drive(14, 6, &[5]);
        assert_eq!((s.bounds(), s.skipped_between()), (Some((4, 6)), vec![5]));
        assert_eq!(s.next(), None);
    }

    #[test]
    fn steps_left_is_log2_of_the_untested_range() {
        let mut s = Search::new(14);
        s.record(0, Verdict::Good);
        s.record(13, Verdict::Bad);
        assert_eq!(s.untested().len(), 12);
        assert_eq!(s.steps_left(), 4);
        s.record(6, Verdict::Bad);
        assert_eq!(s.steps_left(), 3);
        assert_eq!(Search::new(3).next(), None, "no bounds yet");
    }
}
