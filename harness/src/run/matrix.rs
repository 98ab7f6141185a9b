//! A matrix run from start to end: schedule (kernel × scenario), judge each result as it arrives,
//! append it to `results.jsonl`, and hand it to the caller for display. Used by `kmatrix run`,
//! `kmatrix bench matrix` and the libtest-mimic harness alike.

use super::guests::Guests;
use super::results::{self, ResultsError, ResultsWriter};
use super::scheduler::{self, KernelPlan, Planned, RunEvent, SchedulerConfig};
use super::verdict::{self, Expectations, Judgement};
use kmatrix_proto::{ScenarioInfo, ScenarioResult};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::sync::mpsc;

/// Everything one matrix run needs: what to run, against what, and where results go.
pub struct MatrixRun {
    /// How the scheduler boots guests and spreads kernels over them.
    pub sched: SchedulerConfig,
    /// Kernel specs to run (as `kmatrix kernels` names them); ignored when `cells` is set.
    pub kernels: Vec<String>,
    /// Scenarios to run on every kernel, with the catalogue's metadata (since, until, requires,
    /// default parameters) that judging needs.
    pub scenarios: Vec<ScenarioInfo>,
    /// Parameters for every scenario, over the catalogue's defaults.
    pub params: BTreeMap<String, String>,
    /// Known per-kernel outcomes from `expectations.toml`, checked against each result.
    pub expectations: Expectations,
    /// The `results.jsonl` each judged result is appended to; its folder gets the artifacts.
    pub results_path: PathBuf,
    /// Exactly these cells instead of `kernels` × `scenarios` with `params` (`kmatrix rerun`:
    /// each kernel's exact build, each scenario with its own recorded parameters).
    pub cells: Option<Vec<KernelPlan>>,
}

impl MatrixRun {
    /// `kernels` × `scenarios` in `run_dir` (results, console logs and artifacts), guests as
    /// `guests` say, the rest as a run without flags has it: one guest at a time per CPU, the
    /// default VM timeout, no retries, no extra files, no parameters over the catalogue's, the
    /// host root and kernel headers offered when some scenario needs them, each cell in a
    /// guest whose machine meets its scenario's needs (`sched.fit`). Change any field
    /// after; `kmatrix run`, `kmatrix rerun` and the test harness start from here.
    pub fn new(
        guests: Guests,
        run_dir: &Path,
        kernels: Vec<String>,
        scenarios: Vec<ScenarioInfo>,
        expectations: Expectations,
    ) -> MatrixRun {
        let sched = SchedulerConfig {
            guests,
            vm_timeout: crate::settings::VM_TIMEOUT,
            jobs: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1),
            host_root: scenarios.iter().any(|s| s.host_root),
            log_dir: run_dir.to_path_buf(),
            extra: Vec::new(),
            retries: 0,
            expected: None,
            kernel_headers: scenarios.iter().any(|s| s.kernel_headers),
            fit: super::machine::Fit::ALL,
        };
        MatrixRun {
            sched,
            kernels,
            scenarios,
            params: BTreeMap::new(),
            expectations,
            results_path: run_dir.join(results::FILE_NAME),
            cells: None,
        }
    }

    /// The folder of `results_path`: where the artifacts go.
    pub fn run_dir(&self) -> &Path {
        self.results_path.parent().unwrap_or(Path::new("."))
    }

    /// What the scheduler runs, kernel by kernel: `cells` when set, else each of `kernels` with
    /// every scenario, `params` over each scenario's defaults.
    pub fn plan(&self) -> Vec<KernelPlan> {
        match &self.cells {
            Some(cells) => cells.clone(),
            None => self
                .kernels
                .iter()
                .map(|k| {
                    let scenarios = self.scenarios.iter().map(|s| planned(s, &self.params)).collect();
                    KernelPlan { label: k.clone(), spec: k.clone(), scenarios }
                })
                .collect(),
        }
    }

    /// The kernels' labels in plan order: the report's columns.
    pub fn labels(&self) -> Vec<String> {
        match &self.cells {
            Some(cells) => cells.iter().map(|k| k.label.clone()).collect(),
            None => self.kernels.clone(),
        }
    }

    /// How many (kernel, scenario) cells the run has.
    pub fn cell_count(&self) -> usize {
        match &self.cells {
            Some(c) => c.iter().map(|k| k.scenarios.len()).sum(),
            None => self.scenarios.len() * self.kernels.len(),
        }
    }
}

/// `s` as a run plans it: its id, with `params` over the scenario's own defaults. A user's
/// command (`user.*`) keeps its own: the run's `--param`s are the scenarios'.
pub fn planned(s: &ScenarioInfo, params: &BTreeMap<String, String>) -> Planned {
    let mut merged = s.params.clone();
    if !crate::user_command::is_user(&s.id) {
        merged.extend(params.clone());
    }
    Planned { scenario: s.id.clone(), params: merged, needs: super::machine::Needs::of(&s.requires) }
}

/// Per-kernel time split.
#[derive(Debug, Clone, Serialize)]
pub struct KernelTime {
    /// The kernel's label in the plan.
    pub kernel: String,
    /// Seconds from the start of the kernel's preparation to its last guest's end.
    pub wall_s: f64,
    /// Seconds spent starting guests, summed over its boots.
    pub boot_s: f64,
    /// Seconds spent waiting for scenario answers, summed.
    pub scenarios_s: f64,
    /// Guests that reached `Hello` (a fresh one follows each scenario that broke its guest).
    pub boots: usize,
    /// Seconds from QEMU's start to the agent's `Hello`, one per boot.
    pub hello_s: Vec<f64>,
    /// Host-side seconds of each scenario, request to answer, in plan order (the order results
    /// come out in, whether one VM ran them or several).
    pub scenario_walls: Vec<(String, f64)>,
}

impl KernelTime {
    fn new(kernel: &str) -> Self {
        KernelTime {
            kernel: kernel.to_string(),
            wall_s: 0.0,
            boot_s: 0.0,
            scenarios_s: 0.0,
            boots: 0,
            hello_s: Vec::new(),
            scenario_walls: Vec::new(),
        }
    }
}

/// What a finished (or stopped) matrix run returns besides `results.jsonl`.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// Every judged result, in the order they arrived.
    pub results: Vec<ScenarioResult>,
    /// Expectations that no longer apply: (kernel, scenario, what was expected, what happened).
    pub stale: Vec<String>,
    /// Time split of each kernel that finished, in the order they finished.
    pub kernels: Vec<KernelTime>,
    /// Seconds from the run's start to its last event.
    pub wall_s: f64,
    /// Seconds spent making the results' artifacts (traces, flame graphs).
    pub artifacts_s: f64,
}

impl Outcome {
    /// No results (a run stopped before it ended; what it wrote is in results.jsonl).
    pub fn empty() -> Outcome {
        Outcome { results: Vec::new(), stale: Vec::new(), kernels: Vec::new(), wall_s: 0.0, artifacts_s: 0.0 }
    }
}

/// What the caller sees while the run goes.
pub enum Progress<'a> {
    /// A kernel (by label) is being fetched, verified and given its image.
    Preparing(&'a str),
    /// A guest reached `Hello`.
    Booted {
        /// The kernel's label in the plan.
        kernel: &'a str,
        /// Its `uname -r`.
        release: &'a str,
        /// Seconds from QEMU's start to `Hello`.
        hello_s: f64,
    },
    /// A result, already judged and appended to `results.jsonl`.
    Result(&'a ScenarioResult, &'a Judgement),
    /// Something to tell the user that is not a result (an artifact not written, a retry).
    Note {
        /// The kernel the note is about.
        kernel: &'a str,
        /// The note, one line.
        text: &'a str,
    },
    /// A kernel has no more scenarios to run; its time split.
    KernelDone(&'a KernelTime),
}

/// Runs the matrix to its end: schedules it, judges each result, writes its artifacts, appends
/// it to `results.jsonl` and hands it to `on`. Fails only when `results.jsonl` cannot be
/// opened or written; a kernel or scenario that fails is a result.
pub async fn execute(run: MatrixRun, mut on: impl FnMut(Progress)) -> Result<Outcome, ResultsError> {
    let started = Instant::now();
    let mut writer = ResultsWriter::open(&run.results_path)?;
    let since: BTreeMap<String, (String, Option<String>)> =
        run.scenarios.iter().map(|s| (s.id.clone(), (s.since.clone(), s.until.clone()))).collect();
    let requires: BTreeMap<String, Vec<String>> =
        run.scenarios.iter().map(|s| (s.id.clone(), s.requires.clone())).collect();
    let plan = run.plan();
    let (tx, mut rx) = mpsc::channel(64);
    let mut cfg = run.sched.clone();
    cfg.expected = Some(std::sync::Arc::new(run.expectations.clone()));
    let sched = tokio::spawn(scheduler::run(cfg, plan, tx));
    let mut results = Vec::new();
    let mut stale = Vec::new();
    let mut times: BTreeMap<String, KernelTime> = BTreeMap::new();
    let mut done = Vec::new();
    let mut artifacts_s = 0.0;
    while let Some(ev) = rx.recv().await {
        match ev {
            RunEvent::Preparing { kernel } => on(Progress::Preparing(&kernel)),
            RunEvent::Booted { kernel, release, hello_after, .. } => {
                let t = times.entry(kernel.clone()).or_insert_with(|| KernelTime::new(&kernel));
                t.boots += 1;
                t.hello_s.push(hello_after.as_secs_f64());
                on(Progress::Booted { kernel: &kernel, release: &release, hello_s: hello_after.as_secs_f64() });
            }
            RunEvent::Result { kernel, release, mut result, wall } => {
                if !wall.is_zero() {
                    let t = times.entry(kernel.clone()).or_insert_with(|| KernelTime::new(&kernel));
                    t.scenario_walls.push((result.scenario.clone(), wall.as_secs_f64()));
                }
                let (since_v, until_v) = since.get(&result.scenario).cloned().unwrap_or_default();
                let machine =
                    verdict::machine_unmet(requires.get(&result.scenario).map_or(&[][..], Vec::as_slice), &result);
                let j = verdict::judge_on(
                    &mut result,
                    &release,
                    Some(&since_v),
                    until_v.as_deref(),
                    machine,
                    &run.expectations,
                );
                if let Judgement::Stale { expected } = &j {
                    stale.push(format!(
                        "{} {}: expectations.toml expects {expected}, the run gave {}",
                        result.kernel, result.scenario, result.status
                    ));
                }
                // Trace data a person can open, next to results.jsonl; a failure to write one
                // is said, it changes no verdict.
                let t = Instant::now();
                match crate::report::artifacts::write(run.run_dir(), &mut result) {
                    Ok(()) => {}
                    Err(e) => {
                        let text = format!("{} {}: no artifacts: {e}", result.kernel, result.scenario);
                        on(Progress::Note { kernel: &result.kernel, text: &text });
                    }
                }
                artifacts_s += t.elapsed().as_secs_f64();
                writer.append(&result)?;
                on(Progress::Result(&result, &j));
                results.push(*result);
            }
            RunEvent::Note { kernel, text } => on(Progress::Note { kernel: &kernel, text: &text }),
            RunEvent::Done { kernel, wall, boot_time, scenario_time } => {
                let mut t = times.remove(&kernel).unwrap_or_else(|| KernelTime::new(&kernel));
                t.wall_s = wall.as_secs_f64();
                t.boot_s = boot_time.as_secs_f64();
                t.scenarios_s = scenario_time.as_secs_f64();
                on(Progress::KernelDone(&t));
                done.push(t);
            }
        }
    }
    let _ = sched.await;
    Ok(Outcome { results, stale, kernels: done, wall_s: started.elapsed().as_secs_f64(), artifacts_s })
}
