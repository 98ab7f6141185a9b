//! The matrix as cargo tests: every (kernel, scenario) pair is a libtest-mimic trial named
//! `<kernel>::<scenario>`, so `cargo test`, `-- --list`, filters, `--exact` and
//! `cargo nextest run` (each trial in its own process, `--partition`) all work.
//!
//! A user's crate declares its matrix in a few lines, in a test target with `harness = false`:
//!
//! ```ignore
//! fn main() {
//!     kmatrix::testing::MatrixTest::new()
//!         .kernels(&["debian-6.1", "debian-6.12"])
//!         .scenarios("kprobe.*,bpf.fentry.*")
//!         .main()
//! }
//! ```
//!
//! The trials selected are known before any runs (libtest's filter rules, applied here), so each
//! kernel boots once for all of its selected scenarios: the first trial of a kernel to start runs
//! the batch, the others wait for it. A trial passes when the judged status is pass, xfail, or
//! unsupported below the scenario's `since`; `expected.toml` pins exact statuses where the
//! default matrix must come out a given way (fprobe unsupported on 6.1, pass on 6.12, ...).
//!
//! Kernels: `KMATRIX_TEST_KERNELS=debian-6.1,debian-6.12` overrides the kernels (default: the
//! builder's list, else all of kernels/matrix.toml).

#![warn(missing_docs)]

use crate::cache::Cache;
use crate::run::guests::Guests;
use crate::run::matrix::{self, MatrixRun};
use crate::run::verdict::{Expectation, Expectations, Role};
use crate::session::Session;
use crate::settings::{self, GuestSettings};
pub use kmatrix_proto::Status;
use kmatrix_proto::{ScenarioInfo, ScenarioResult};
use libtest_mimic::{Arguments, Failed, Trial};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

type KernelResults = Result<BTreeMap<String, ScenarioResult>, KernelRunError>;

/// Why a kernel has no results: every trial of the kernel fails with it, so it is kept once (the
/// causes behind `Arc`s) and shared.
#[derive(Debug, Clone, thiserror::Error)]
enum KernelRunError {
    /// The tokio runtime did not start.
    #[error("{0}")]
    Runtime(Arc<std::io::Error>),
    /// A trial panicked while it held the shared session.
    #[error("poisoned lock: another task failed inside")]
    Poisoned,
    /// The kernel's output directory could not be made.
    #[error("{}: {error}", path.display())]
    OutDir { path: std::path::PathBuf, error: Arc<std::io::Error> },
    /// The run could not write its results.
    #[error("{0}")]
    Run(Arc<crate::run::results::ResultsError>),
}

struct Shared {
    cache: Cache,
    catalogue: Vec<ScenarioInfo>,
    selected: BTreeMap<String, Vec<String>>,
    results: BTreeMap<String, OnceLock<KernelResults>>,
    expectations: Expectations,
    /// Opened by the first kernel to run, shared by all: a KVM failure in one switches them all.
    session: Mutex<Option<Arc<Session>>>,
}

impl Shared {
    fn results_of(&self, kernel: &str) -> &KernelResults {
        self.results[kernel].get_or_init(|| self.run_kernel(kernel))
    }

    fn run_kernel(&self, kernel: &str) -> KernelResults {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| KernelRunError::Runtime(Arc::new(e)))?;
        let session = {
            let mut known = self.session.lock().map_err(|_| KernelRunError::Poisoned)?;
            match &*known {
                Some(s) => s.clone(),
                None => {
                    let qemu = crate::vm::qemu_binary();
                    let s = Arc::new(rt.block_on(Session::with(self.cache.clone(), qemu, Default::default())));
                    eprintln!("matrix: {}", s.accel.describe());
                    *known = Some(s.clone());
                    s
                }
            }
        };
        rt.block_on(async {
            let wanted = &self.selected[kernel];
            let scenarios: Vec<ScenarioInfo> =
                self.catalogue.iter().filter(|s| wanted.contains(&s.id)).cloned().collect();
            let dir = out_dir().join(kernel);
            std::fs::create_dir_all(&dir)
                .map_err(|e| KernelRunError::OutDir { path: dir.clone(), error: Arc::new(e) })?;
            // Under nextest each trial is a process of its own (the CI's partitions): each keeps
            // a results file of its own, beside the others, for `report merge` to join.
            let results_path = match std::env::var_os("NEXTEST_RUN_ID") {
                Some(_) => dir.join(format!("results-{}.jsonl", std::process::id())),
                None => dir.join("results.jsonl"),
            };
            let _ = std::fs::remove_file(&results_path);
            let guests = Guests {
                session,
                fetch: Default::default(),
                settings: GuestSettings::default(),
                scenario_timeout: settings::SCENARIO_TIMEOUT,
            };
            let mut run = MatrixRun::new(guests, &dir, vec![kernel.to_string()], scenarios, self.expectations.clone());
            // One guest at a time, no retries (a trial is one attempt; nextest's own retries, the
            // ci profile, cover flakes), results in this trial's own file.
            run.sched.jobs = 1;
            run.results_path = results_path;
            let outcome = matrix::execute(run, |_| {}).await.map_err(|e| KernelRunError::Run(Arc::new(e)))?;
            Ok(outcome.results.into_iter().map(|r| (r.scenario.clone(), r)).collect())
        })
    }
}

/// Where trials write results and console logs: `$KMATRIX_TEST_OUT`, else `kmatrix-matrix/`
/// beside the test binary's profile directory (`target/debug/kmatrix-matrix`).
fn out_dir() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("KMATRIX_TEST_OUT").filter(|p| !p.is_empty()) {
        return p.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(|deps| deps.parent()).map(|profile| profile.join("kmatrix-matrix")))
        .unwrap_or_else(|| std::env::temp_dir().join("kmatrix-matrix"))
}

/// libtest's selection rules: substring filters (or exact names), `--skip`, `--ignored`.
fn is_selected(args: &Arguments, name: &str) -> bool {
    if args.ignored {
        return false; // no matrix trial is ignored
    }
    let matches = |f: &str| if args.exact { name == f } else { name.contains(f) };
    if let Some(f) = &args.filter {
        if !matches(f) {
            return false;
        }
    }
    !args.skip.iter().any(|s| matches(s))
}

fn describe(r: &ScenarioResult) -> String {
    let counts: Vec<String> =
        r.counts.iter().map(|c| format!("{}: expected {}, observed {}", c.what, c.expected, c.observed)).collect();
    let mut s = format!("{} on {}: {} — {}", r.scenario, r.kernel, r.status, r.explanation());
    if let Some(e) = &r.evidence {
        s.push_str(&format!("\nevidence: {e}"));
    }
    if let Some(e) = r.errno {
        s.push_str(&format!("\nerrno: {e}"));
    }
    if !counts.is_empty() {
        s.push_str(&format!("\ncounts: {}", counts.join("; ")));
    }
    if !r.excerpt.is_empty() {
        s.push_str(&format!("\n--- excerpt ---\n{}", r.excerpt));
    }
    s
}

/// Whether an expected status names a scenario of the catalogue and a kernel that is either run
/// here or in kernels/matrix.toml (a narrowed run, KMATRIX_TEST_KERNELS, leaves some out).
fn shared_ids_contain(kernels: &[String], matrix: &[String], cat: &[ScenarioInfo], k: &str, s: &str) -> bool {
    cat.iter().any(|x| x.id == s) && kernels.iter().chain(matrix).any(|x| x == k)
}

/// A matrix of trials to run as a test binary's `main`.
#[derive(Debug, Default, Clone)]
pub struct MatrixTest {
    kernels: Option<Vec<String>>,
    scenarios: Option<String>,
    expected: Vec<Expectation>,
    expected_toml: Vec<String>,
}

impl MatrixTest {
    /// A matrix test of every kernel and scenario, until narrowed by the builder's methods.
    pub fn new() -> Self {
        Self::default()
    }

    /// Kernel ids, specs or groups of the matrix (`default`, `arm64`, `all`; default: every
    /// kernel of kernels/matrix.toml).
    pub fn kernels(mut self, ids: &[&str]) -> Self {
        self.kernels = Some(ids.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Scenario globs, comma-separated (default: the whole catalogue).
    pub fn scenarios(mut self, globs: &str) -> Self {
        self.scenarios = Some(globs.to_string());
        self
    }

    /// Pin the status the agent must report for one (kernel, scenario) pair (`pass`, `fail`,
    /// `unsupported`), with why.
    pub fn expect(mut self, kernel: &str, scenario: &str, status: Status, why: &str) -> Self {
        self.expected.push(Expectation {
            kernel: kernel.into(),
            scenario: scenario.into(),
            status,
            reason: why.into(),
            cause: None,
            errno: None,
            counts: Vec::new(),
        });
        self
    }

    /// Pins from a TOML text in the schema of kernels/expectations.toml (`[[expect]]` tables:
    /// kernel, scenario, status, reason, and optionally the cause or errno the result must show).
    pub fn expected_toml(mut self, text: &str) -> Self {
        self.expected_toml.push(text.to_string());
        self
    }

    /// Parse the test binary's arguments, run the selected trials, exit.
    pub fn main(self) -> ! {
        let args = Arguments::from_args();
        let this = self;
        type Setup = (Cache, Vec<ScenarioInfo>, Vec<String>, Expectations, Expectations);
        let setup = || -> anyhow::Result<Setup> {
            let cache = Cache::from_env()?;
            // `selftest.*` (scenarios that break the guest on purpose) only when named.
            let globs = this.scenarios.clone().unwrap_or_else(|| "*".into());
            let catalogue = crate::catalogue::select(&crate::catalogue::load(&cache)?, &globs);
            anyhow::ensure!(!catalogue.is_empty(), "scenario globs {globs:?} match nothing");
            let kernels = match std::env::var("KMATRIX_TEST_KERNELS") {
                Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_string()).collect(),
                _ => match &this.kernels {
                    Some(k) => k.clone(),
                    None => crate::kernel::matrix_ids()?,
                },
            };
            // Groups of the matrix (`default`, `arm64`, `all`) stand for their kernels.
            let kernels = crate::kernel::expand_names(&kernels)?;
            let mut expected = Expectations { entries: this.expected.clone() };
            for t in &this.expected_toml {
                expected.entries.extend(Expectations::parse(t, "the test's expected statuses", Role::Pins)?.entries);
            }
            let (text, name) = crate::kernel::KernelsDir::try_locate(None)?.expectations()?;
            let expectations = Expectations::parse(&text, &name, Role::Verdicts)?;
            Ok((cache, catalogue, kernels, expected, expectations))
        };
        let (cache, catalogue, kernels, expected, expectations) = match setup() {
            Ok(x) => x,
            Err(e) => {
                eprintln!("matrix: cannot set up: {e:#}");
                std::process::exit(101);
            }
        };
        let mut selected: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut names = Vec::new();
        // Each kernel's trials are the lane its matrix entry names (the wide fleet's: core).
        let lanes =
            crate::kernel::default_lanes(&kernels).unwrap_or_else(|_| vec![crate::catalogue::Lane::All; kernels.len()]);
        for (k, lane) in kernels.iter().zip(lanes) {
            for s in catalogue.iter().filter(|s| lane.has(s)) {
                let name = format!("{k}::{}", s.id);
                if !args.list && is_selected(&args, &name) {
                    selected.entry(k.clone()).or_default().push(s.id.clone());
                }
                names.push((k.clone(), s.id.clone(), name));
            }
        }
        // expected.toml must not rot: every entry names a real kernel and scenario.
        let matrix = crate::kernel::matrix_ids().unwrap_or_default();
        for e in &expected.entries {
            if !shared_ids_contain(&kernels, &matrix, &catalogue, &e.kernel, &e.scenario) {
                eprintln!("matrix: an expected status names {}::{}, which is not in the matrix", e.kernel, e.scenario);
                std::process::exit(101);
            }
        }
        let exact: BTreeMap<(String, String), Expectation> =
            expected.entries.into_iter().map(|e| ((e.kernel.clone(), e.scenario.clone()), e)).collect();
        let shared = Arc::new(Shared {
            cache,
            catalogue,
            results: selected.keys().map(|k| (k.clone(), OnceLock::new())).collect(),
            selected,
            expectations,
            session: Mutex::new(None),
        });
        let trials: Vec<Trial> = names
            .into_iter()
            .map(|(kernel, scenario, name)| {
                let shared = shared.clone();
                let want = exact.get(&(kernel.clone(), scenario.clone())).cloned();
                Trial::test(name, move || {
                    let results =
                        shared.results_of(&kernel).as_ref().map_err(|e| Failed::from(format!("{kernel}: {e}")))?;
                    let r = results
                        .get(&scenario)
                        .ok_or_else(|| Failed::from(format!("{kernel}: no result for {scenario}")))?;
                    if let Some(want) = want {
                        // A pin is on what the guest saw; the verdict must still be acceptable.
                        let saw = r.agent_status.unwrap_or(r.status);
                        if saw != want.status {
                            return Err(format!(
                                "the agent must report exactly {} ({}), it reported {saw}\n{}",
                                want.status,
                                want.reason,
                                describe(r)
                            )
                            .into());
                        }
                        if let Err(why) = want.cause_matches(r) {
                            return Err(format!("{} ({}): {why}\n{}", want.status, want.reason, describe(r)).into());
                        }
                    }
                    if r.verdict.as_deref().is_some_and(|v| v.starts_with(crate::run::verdict::STALE)) {
                        return Err(format!("fix or remove the expectation\n{}", describe(r)).into());
                    }
                    match r.status {
                        Status::Pass | Status::Xfail | Status::Unsupported | Status::Flaky => Ok(()),
                        Status::Fail | Status::Error => Err(describe(r).into()),
                    }
                })
            })
            .collect();
        libtest_mimic::run(&args, trials).exit();
    }
}
