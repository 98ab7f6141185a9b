//! The scheduler: kernels in parallel (up to `jobs`), each kernel's scenarios in order in one VM.
//! Kernels start heaviest first, by what their scenarios took last time on this machine
//! (`history`), so the run does not end waiting for a heavy kernel that started last. When every
//! kernel has started and a job slot idles, the kernel with the most expected work left is split:
//! a second VM of it, restored from the same snapshot, takes its scenarios from the back of its
//! queue (`queue`); a kernel's results still come out in plan order, each exactly once.
//!
//! A scenario that times out, panics the guest or kills the agent becomes `error` with the console
//! tail and its cause, the VM is discarded, and the kernel's remaining scenarios continue in a
//! fresh VM. A scenario that fails or errs runs once more (`retries`), its first attempt kept in
//! the retry's result (the verdicts call a pass then `flaky`), unless an expectation names that
//! failure with its cause (`expected`: a retry would only repeat it). A kernel
//! that cannot be prepared or booted gives `error` for each of its scenarios, with the reason,
//! so nothing is silently skipped. Events flow to one consumer (the caller), which judges, writes
//! and renders them; this module decides nothing about verdicts.

use super::guests::Guests;
use super::history;
use super::machine::{self, Fit, Machine, Needs};
use super::queue::Queue;
use crate::cache::sanitize;
use crate::image::{self, Image};
use crate::kernel::PreparedKernel;
use crate::session::SessionError;
use crate::vm::VmError;
use kmatrix_proto::KernelBuild;
use kmatrix_proto::{Cause, RunRequest, ScenarioResult, Status};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Mutex, OwnedSemaphorePermit, Semaphore};

mod worker;

/// One scenario to run, with its parameters.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The scenario id.
    pub scenario: String,
    /// Every parameter it runs with (the catalogue's defaults already merged in).
    pub params: BTreeMap<String, String>,
    /// What it needs of the guest machine (the catalogue's requirements): with
    /// [`SchedulerConfig::fit`], it runs in a guest that has it.
    pub needs: Needs,
}

/// One kernel's share of a run: the label its results carry (a matrix id, so expectations and
/// reports find them), the spec that is booted (the same id, or the exact build a rerun asks
/// for, `debian:6.1.176-1`), and its scenarios in order.
#[derive(Debug, Clone)]
pub struct KernelPlan {
    /// What its results and events name the kernel by.
    pub label: String,
    /// What is prepared and booted.
    pub spec: String,
    /// Run in this order, in as few guests as they allow.
    pub scenarios: Vec<Planned>,
}

/// What the scheduler needs to boot guests.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How guests boot (the session, fetch options, the guests' settings, the scenario timeout).
    pub guests: Guests,
    /// Bound on one kernel's whole run (all its VMs).
    pub vm_timeout: Duration,
    /// Kernels run at once (0 counts as 1).
    pub jobs: usize,
    /// Every guest shares the host root (read-only), so every image carries the share's
    /// modules (the channel's come from the settings).
    pub host_root: bool,
    /// Where console logs go.
    pub log_dir: PathBuf,
    /// Files added to every kernel's image (a user's BPF object for `run --bpf-object`).
    pub extra: Vec<image::ExtraFile>,
    /// Run a scenario that fails or errs once more (0 or 1): a pass then makes it `flaky`, and
    /// the result keeps the first attempt in `previous`.
    pub retries: u32,
    /// Known results (`kernels/expectations.toml`): a failure an expectation names, with its
    /// cause, is not run again, as it would only fail the same way (the verdicts still judge
    /// it; this only spares the retry).
    pub expected: Option<Arc<super::verdict::Expectations>>,
    /// Some scenario compiles against the kernel's headers (BCC): fetch each kernel's
    /// `linux-headers` packages and offer them with the host root.
    pub kernel_headers: bool,
    /// Which dimensions of the guests' machine (`guests.settings`) a cell may get changed to
    /// meet its scenario's [`Needs`]: those the user did not fix (`machine::place`).
    pub fit: Fit,
}

/// What happens, in order, per kernel.
#[derive(Debug)]
pub enum RunEvent {
    /// The kernel's turn came: it is being fetched, verified and given its image.
    Preparing {
        /// The kernel's label in the plan.
        kernel: String,
    },
    /// A guest of the kernel reached `Hello`.
    Booted {
        /// The kernel's label in the plan.
        kernel: String,
        /// Its `uname -r`.
        release: String,
        /// From QEMU's start to `Hello`.
        hello_after: Duration,
        /// Which guest of the kernel this is, from 1 (a fresh one follows a broken one).
        boot: usize,
    },
    /// A scenario's result, not yet judged; every planned scenario gets exactly one.
    Result {
        /// The kernel's label in the plan.
        kernel: String,
        /// Its `uname -r`; empty when the kernel could not be prepared.
        release: String,
        /// What the agent (or, for a guest that broke, the host) reported.
        result: Box<ScenarioResult>,
        /// Host-side time from the request to the answer (both attempts when retried).
        wall: Duration,
    },
    /// Something a person should know that is not a result.
    Note {
        /// The kernel's label in the plan.
        kernel: String,
        /// The note, one line.
        text: String,
    },
    /// The kernel is finished: every result of it was sent.
    Done {
        /// The kernel's label in the plan.
        kernel: String,
        /// From the start of its preparation to its last guest's end.
        wall: Duration,
        /// Starting guests, summed over its boots (failed ones included).
        boot_time: Duration,
        /// Waiting for scenario answers, summed.
        scenario_time: Duration,
    },
}

/// A helper VM is worth its restore only for at least this much expected work left (seconds,
/// by `history`); a restore under TCG costs 0.05-0.3 s, a cold boot (no snapshots) more.
const SPLIT_MIN_S: f64 = 1.0;

/// One kernel of the run: its plan, and the state its VMs share.
struct KernelRun {
    label: String,
    spec: String,
    /// In run order: the cells of the run's own machine first, then those of the fitted one.
    scenarios: Vec<Planned>,
    /// The machine each scenario runs in (`machine::place`).
    machines: Vec<Machine>,
    /// Expected seconds of each scenario (`history`), to choose the kernel to split.
    estimate: Vec<f64>,
    started: Instant,
    /// Boots so far, over all of this kernel's VMs (console log names, `Booted`).
    boots: AtomicUsize,
    state: Mutex<KernelState>,
}

struct KernelState {
    queue: Queue<RunEvent>,
    /// Set once a VM of this kernel booted: what a helper VM needs (its snapshot exists then).
    ready: Option<Arc<Ready>>,
    boot_time: Duration,
    scenario_time: Duration,
    /// Host-side seconds per scenario (a retried one: both attempts), for `history`.
    walls: Vec<(String, f64)>,
    /// `Done` was sent.
    done: bool,
}

/// A prepared kernel, as every VM of it boots it.
struct Ready {
    k: PreparedKernel,
    img: Image,
    build: KernelBuild,
    kernel_headers: Option<Result<String, NoHeaders>>,
    /// The kernel's `lib/modules/<release>` with its indexes, for guests that share the host
    /// root (`None`: no share, or the kernel has no modules).
    module_tree: Option<String>,
    deadline: Instant,
    /// The last boot's time to Hello: what a helper costs before its first scenario.
    hello: std::sync::Mutex<Duration>,
}

/// What every task of the run shares.
struct Shared {
    cfg: SchedulerConfig,
    tx: mpsc::Sender<RunEvent>,
    /// Bumped when a kernel becomes splittable or finishes: the splitter looks again.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn changed(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Run every kernel's plan, heaviest first; events go to `tx`. Returns when every kernel is done.
pub async fn run(cfg: SchedulerConfig, mut plan: Vec<KernelPlan>, tx: mpsc::Sender<RunEvent>) {
    let sem = Arc::new(Semaphore::new(cfg.jobs.max(1)));
    let times = history::load(&cfg.guests.session.cache);
    let weight =
        |kp: &KernelPlan| history::estimate(&times, &kp.label, kp.scenarios.iter().map(|p| p.scenario.as_str()));
    // Stable: kernels never seen keep the order they were given in.
    plan.sort_by(|a, b| weight(b).total_cmp(&weight(a)));
    let base = Machine::of(&cfg.guests.settings);
    let kernels: Vec<Arc<KernelRun>> = plan
        .into_iter()
        .map(|mut kp| {
            let needs: Vec<Needs> = kp.scenarios.iter().map(|p| p.needs).collect();
            let mut placed: Vec<(Machine, Planned)> =
                machine::place(base, cfg.fit, &needs).into_iter().zip(kp.scenarios).collect();
            // Stable: each machine's cells keep their plan order, and a guest changes machine
            // at most once per kind (the run's own first).
            placed.sort_by_key(|(m, _)| *m != base);
            let machines = placed.iter().map(|(m, _)| *m).collect();
            kp.scenarios = placed.into_iter().map(|(_, p)| p).collect();
            let estimate = kp
                .scenarios
                .iter()
                .map(|p| history::estimate(&times, &kp.label, std::iter::once(p.scenario.as_str())))
                .collect();
            Arc::new(KernelRun {
                state: Mutex::new(KernelState {
                    queue: Queue::new(kp.scenarios.len()),
                    ready: None,
                    boot_time: Duration::ZERO,
                    scenario_time: Duration::ZERO,
                    walls: Vec::new(),
                    done: false,
                }),
                label: kp.label,
                spec: kp.spec,
                scenarios: kp.scenarios,
                machines,
                estimate,
                started: Instant::now(),
                boots: AtomicUsize::new(0),
            })
        })
        .collect();
    let (changed, mut seen) = watch::channel(0u64);
    let shared = Arc::new(Shared { cfg, tx, changed });
    let mut tasks = Vec::new();
    for kr in &kernels {
        // Permits are taken here, in order: a spawned task's first poll order is not the
        // spawn order, and the order is the point.
        let Ok(permit) = sem.clone().acquire_owned().await else { break };
        let (shared, kr) = (shared.clone(), kr.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            run_kernel(&shared, &kr).await;
        }));
    }
    // Every kernel has started: a job slot that idles from now on helps the kernel with the
    // most expected work left.
    loop {
        seen.borrow_and_update();
        let Ok(permit) = sem.clone().acquire_owned().await else { break };
        let mut all_done = true;
        let mut best: Option<(f64, &Arc<KernelRun>)> = None;
        for kr in &kernels {
            let st = kr.state.lock().await;
            all_done &= st.done;
            if let Some(left) = splittable(kr, &st) {
                if best.is_none_or(|(b, _)| left > b) {
                    best = Some((left, kr));
                }
            }
        }
        if all_done {
            break;
        }
        if let Some((_, kr)) = best {
            if let Some(task) = help(&shared, kr, permit).await {
                tasks.push(task);
                continue;
            }
        } else {
            drop(permit);
        }
        // Nothing to split now: wait until a kernel boots or finishes (a permit coming free
        // comes with one of those).
        if seen.changed().await.is_err() {
            break;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Expected seconds left in `kr`'s queue when a helper VM would pay off there.
fn splittable(kr: &KernelRun, st: &KernelState) -> Option<f64> {
    let ready = st.ready.as_ref()?;
    if st.done || st.queue.workers() == 0 || st.queue.waiting_len() < 2 {
        return None;
    }
    let left: f64 = st.queue.waiting().map(|i| kr.estimate[i]).sum();
    let hello = ready.hello.lock().map(|h| h.as_secs_f64()).unwrap_or(0.0);
    (left >= SPLIT_MIN_S.max(3.0 * hello)).then_some(left)
}

/// Start a helper VM on `kr` holding `permit`; `None` when there is nothing left to split.
async fn help(
    shared: &Arc<Shared>,
    kr: &Arc<KernelRun>,
    permit: OwnedSemaphorePermit,
) -> Option<tokio::task::JoinHandle<()>> {
    let ready = {
        let mut st = kr.state.lock().await;
        let ready = st.ready.clone()?;
        if !st.queue.add_worker() {
            return None;
        }
        ready
    };
    let _ = shared
        .tx
        .send(RunEvent::Note {
            kernel: kr.label.clone(),
            text: format!("a job slot is free: a second VM takes scenarios from the back of {}'s queue", kr.label),
        })
        .await;
    let (shared, kr) = (shared.clone(), kr.clone());
    Some(tokio::spawn(async move {
        let _permit = permit;
        worker::worker(&shared, &kr, &ready, true).await;
    }))
}

async fn prepare(cfg: &SchedulerConfig, kernel: &str) -> Result<(PreparedKernel, Image), SessionError> {
    cfg.guests
        .session
        .prepare(kernel, &cfg.guests.fetch, cfg.guests.settings.image_options(cfg.host_root), &cfg.extra)
        .await
}

/// The kernel's headers as a host path, or why there are none (said by the scenarios that need
/// them: `unsupported` with this reason, judged like any other).
async fn headers(cfg: &SchedulerConfig, k: &PreparedKernel) -> Result<String, NoHeaders> {
    let (k, cache, fetch) = (k.clone(), cfg.guests.session.cache.clone(), cfg.guests.fetch.clone());
    tokio::task::spawn_blocking(move || crate::kernel::headers(&k, &cache, &fetch))
        .await
        .map_err(|e| NoHeaders::Panicked(e.to_string()))?
        .map(|h| h.dir.display().to_string())
        .map_err(|e| NoHeaders::Provider(crate::error_chain(&e)))
}

/// Why a guest gets no kernel headers; its text is the reason the scenarios needing them give.
#[derive(Debug, Clone, thiserror::Error)]
enum NoHeaders {
    #[error("fetching the kernel headers panicked: {0}")]
    Panicked(String),
    /// The kernel provider's error, its whole chain on one line.
    #[error("{0}")]
    Provider(String),
}

/// `error` results for plan indices `rest`, with `reason`.
fn all_error(
    kr: &KernelRun,
    reason: &str,
    cause: Cause,
    build: Option<&PreparedKernel>,
    rest: &[usize],
) -> Vec<(usize, ScenarioResult)> {
    rest.iter()
        .map(|&i| {
            let p = &kr.scenarios[i];
            let mut r = ScenarioResult::new(&p.scenario, Status::Error, reason.to_string());
            r.cause = Some(cause);
            r.kernel = kr.label.clone();
            r.params = p.params.clone();
            r.build = build.map(PreparedKernel::build);
            (i, r)
        })
        .collect()
}

/// The kernel's first VM: prepare, then run its queue (helpers join once it booted).
async fn run_kernel(shared: &Arc<Shared>, kr: &Arc<KernelRun>) {
    let cfg = &shared.cfg;
    let _ = shared.tx.send(RunEvent::Preparing { kernel: kr.label.clone() }).await;
    let (k, img) = match prepare(cfg, &kr.spec).await {
        Ok(x) => x,
        Err(e) => {
            let mut st = kr.state.lock().await;
            let rest = st.queue.take_all();
            for (i, r) in all_error(kr, &crate::error_chain(&e), Cause::Infrastructure, None, &rest) {
                finish(shared, kr, &mut st, i, r, Duration::ZERO, "").await;
            }
            st.queue.take(false);
            finalize(shared, kr, &mut st).await;
            return;
        }
    };
    let kernel_headers = match cfg.kernel_headers {
        true => Some(headers(cfg, &k).await),
        false => None,
    };
    let module_tree = match cfg.host_root {
        true => crate::guest::module_tree(&k, &cfg.guests.session.cache).await,
        false => None,
    };
    let ready = Arc::new(Ready {
        build: k.build(),
        k,
        img,
        kernel_headers,
        module_tree,
        deadline: kr.started + cfg.vm_timeout,
        hello: std::sync::Mutex::new(Duration::ZERO),
    });
    worker::worker(shared, kr, &ready, false).await;
}

/// One scenario's result is in: out in plan order (held while an earlier one still runs).
async fn finish(
    shared: &Shared,
    kr: &KernelRun,
    st: &mut KernelState,
    i: usize,
    r: ScenarioResult,
    wall: Duration,
    release: &str,
) {
    if !wall.is_zero() {
        st.walls.push((r.scenario.clone(), wall.as_secs_f64()));
    }
    let ev = RunEvent::Result { kernel: kr.label.clone(), release: release.to_string(), result: Box::new(r), wall };
    match st.queue.finish(i, ev) {
        Ok(out) => {
            for ev in out {
                let _ = shared.tx.send(ev).await;
            }
        }
        Err((i, _)) => {
            // A bug of this module, said rather than hidden: the result is dropped, not doubled.
            let text =
                format!("scheduler: a second result for {} (plan index {i}) was dropped", kr.scenarios[i].scenario);
            let _ = shared.tx.send(RunEvent::Note { kernel: kr.label.clone(), text }).await;
        }
    }
}

/// The last VM of the kernel left: record its times and say `Done`.
async fn finalize(shared: &Shared, kr: &KernelRun, st: &mut KernelState) {
    if st.done || st.queue.workers() > 0 {
        return;
    }
    st.done = true;
    if !st.walls.is_empty() {
        let cache = shared.cfg.guests.session.cache.clone();
        let (label, walls) = (kr.label.clone(), std::mem::take(&mut st.walls));
        let _ = tokio::task::spawn_blocking(move || history::record(&cache, &label, &walls)).await;
    }
    let _ = shared
        .tx
        .send(RunEvent::Done {
            kernel: kr.label.clone(),
            wall: kr.started.elapsed(),
            boot_time: st.boot_time,
            scenario_time: st.scenario_time,
        })
        .await;
    shared.changed();
}
