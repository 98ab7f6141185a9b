//! The scheduler: kernels in parallel (up to `jobs`), each kernel's scenarios in order in one VM.
//! Kernels start heaviest first, by what their scenarios took last time on this machine
//! (`history`), so the run does not end waiting for a heavy kernel that started last.
//!
//! A scenario that times out, panics the guest or kills the agent becomes `error` with the console
//! tail and its cause, the VM is discarded, and the kernel's remaining scenarios continue in a
//! fresh VM. A scenario that fails or errs runs once more (`retries`), its first attempt kept in
//! the retry's result (the verdicts call a pass then `flaky`). A kernel
//! that cannot be prepared or booted gives `error` for each of its scenarios, with the reason,
//! so nothing is silently skipped. Events flow to one consumer (the caller), which judges, writes
//! and renders them; this module decides nothing about verdicts.

use super::guests::GuestSettings;
use super::history;
use crate::image::{self, Image, ImageOptions};
use crate::kernel::PreparedKernel;
use crate::session::SessionError;
use crate::vm::VmError;
use kmatrix_proto::{Cause, RunRequest, ScenarioResult, Status};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// One scenario to run, with its parameters.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The scenario id.
    pub scenario: String,
    /// Every parameter it runs with (the catalogue's defaults already merged in).
    pub params: BTreeMap<String, String>,
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
    /// How guests boot (the session, fetch options, memory, timeouts, snapshots).
    pub guests: GuestSettings,
    /// Bound on one kernel's whole run (all its VMs).
    pub vm_timeout: Duration,
    /// Kernels run at once (0 counts as 1).
    pub jobs: usize,
    /// What every kernel's image carries: the channel it answers on, the host-root share.
    pub image: ImageOptions,
    /// Where console logs go.
    pub log_dir: PathBuf,
    /// Files added to every kernel's image (a user's BPF object for `run --bpf-object`).
    pub extra: Vec<image::ExtraFile>,
    /// Run a scenario that fails or errs once more (0 or 1): a pass then makes it `flaky`, and
    /// the result keeps the first attempt in `previous`.
    pub retries: u32,
    /// Some scenario compiles against the kernel's headers (BCC): fetch each kernel's
    /// `linux-headers` packages and offer them with the host root.
    pub kernel_headers: bool,
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

/// Run every kernel's plan, heaviest first; events go to `tx`. Returns when every kernel is done.
pub async fn run(cfg: SchedulerConfig, mut plan: Vec<KernelPlan>, tx: mpsc::Sender<RunEvent>) {
    let sem = Arc::new(Semaphore::new(cfg.jobs.max(1)));
    let times = history::load(&cfg.guests.session.cache);
    let weight =
        |kp: &KernelPlan| history::estimate(&times, &kp.label, kp.scenarios.iter().map(|p| p.scenario.as_str()));
    // Stable: kernels never seen keep the order they were given in.
    plan.sort_by(|a, b| weight(b).total_cmp(&weight(a)));
    let cfg = Arc::new(cfg);
    let mut tasks = Vec::new();
    for kp in plan {
        // Permits are taken here, in order: a spawned task's first poll order is not the
        // spawn order, and the order is the point.
        let Ok(permit) = sem.clone().acquire_owned().await else { break };
        let cfg = cfg.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            run_kernel(&cfg, &kp.label, &kp.spec, kp.scenarios, &tx).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn prepare(cfg: &SchedulerConfig, kernel: &str) -> Result<(PreparedKernel, Image), SessionError> {
    cfg.guests.session.prepare(kernel, &cfg.guests.fetch, cfg.image, &cfg.extra).await
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

async fn run_kernel(
    cfg: &SchedulerConfig,
    kernel: &str,
    spec: &str,
    scenarios: Vec<Planned>,
    tx: &mpsc::Sender<RunEvent>,
) {
    let started = Instant::now();
    let _ = tx.send(RunEvent::Preparing { kernel: kernel.to_string() }).await;
    let emit_all_error = |reason: String, cause: Cause, build: Option<&PreparedKernel>, rest: &[Planned]| {
        rest.iter()
            .map(|p| {
                let mut r = ScenarioResult::new(&p.scenario, Status::Error, reason.clone());
                r.cause = Some(cause);
                r.kernel = kernel.to_string();
                r.params = p.params.clone();
                r.build = build.map(PreparedKernel::build);
                let release = build.map(|k| k.release.clone()).unwrap_or_default();
                RunEvent::Result { kernel: kernel.to_string(), release, result: Box::new(r), wall: Duration::ZERO }
            })
            .collect::<Vec<_>>()
    };
    let (k, img) = match prepare(cfg, spec).await {
        Ok(x) => x,
        Err(e) => {
            for ev in emit_all_error(crate::error_chain(&e), Cause::Infrastructure, None, &scenarios) {
                let _ = tx.send(ev).await;
            }
            let _ = tx
                .send(RunEvent::Done {
                    kernel: kernel.into(),
                    wall: started.elapsed(),
                    boot_time: Duration::ZERO,
                    scenario_time: Duration::ZERO,
                })
                .await;
            return;
        }
    };
    let build = k.build();
    let kernel_headers = match cfg.kernel_headers {
        true => Some(headers(cfg, &k).await),
        false => None,
    };
    let deadline = started + cfg.vm_timeout;
    let (mut boot_time, mut scenario_time) = (Duration::ZERO, Duration::ZERO);
    let mut next = 0;
    let mut boots = 0;
    // The failed first attempt of the scenario at `next`, while its retry is pending.
    let mut first_attempt: Option<ScenarioResult> = None;
    // Host-side seconds per scenario (a retried one: both attempts), for `history`.
    let mut walls: Vec<(String, f64)> = Vec::new();
    let mut first_wall = Duration::ZERO;
    while next < scenarios.len() {
        boots += 1;
        let log = cfg.log_dir.join(format!("{}-boot{boots}.console.log", sanitize(kernel)));
        let mut opts = cfg.guests.options(log.clone());
        opts.virtio = cfg.image.virtio_channel;
        if cfg.image.share {
            // Scenarios that run the host's tools get the host root (read-only), as `--share` says.
            match cfg.guests.share_plan(kernel, k.config.as_deref()) {
                Ok(plan) => opts.share = Some(plan),
                Err(e) => {
                    let reason = format!("cannot share the host root with {kernel}: {e}");
                    for ev in emit_all_error(reason, Cause::Infrastructure, Some(&k), &scenarios[next..]) {
                        let _ = tx.send(ev).await;
                    }
                    break;
                }
            }
        }
        let t0 = Instant::now();
        let mut guest = match cfg.guests.session.start_guest(&k, &img, &opts).await {
            Ok(g) => g,
            Err(e) => {
                boot_time += t0.elapsed();
                let reason = format!("boot failed (console log {}): {e}", log.display());
                let accel = cfg.guests.session.accel.current().as_str();
                for mut ev in emit_all_error(reason, cause_of(&e), Some(&k), &scenarios[next..]) {
                    if let RunEvent::Result { result, .. } = &mut ev {
                        result.accel = accel.to_string();
                        // The retry of the scenario that broke the last guest could not boot.
                        result.previous = first_attempt.take().map(Box::new);
                    }
                    let _ = tx.send(ev).await;
                }
                break;
            }
        };
        boot_time += t0.elapsed();
        if let (Some(h), Some(share)) = (&kernel_headers, guest.share.as_mut()) {
            match h {
                Ok(dir) => share.headers = Some(dir.clone()),
                Err(why) => share.headers_missing = Some(why.to_string()),
            }
        }
        let _ = tx
            .send(RunEvent::Booted {
                kernel: kernel.into(),
                release: k.release.clone(),
                hello_after: guest.hello_after,
                boot: boots,
            })
            .await;
        let mut broken = false;
        while next < scenarios.len() {
            let p = &scenarios[next];
            next += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let reason =
                    format!("per-VM timeout of {:.0} s reached before this scenario ran", cfg.vm_timeout.as_secs_f64());
                for mut ev in emit_all_error(reason, Cause::Timeout, Some(&k), &scenarios[next - 1..]) {
                    if let RunEvent::Result { result, .. } = &mut ev {
                        result.previous = first_attempt.take().map(Box::new);
                    }
                    let _ = tx.send(ev).await;
                }
                next = scenarios.len();
                broken = true;
                break;
            }
            let t1 = Instant::now();
            let req = RunRequest {
                scenario: p.scenario.clone(),
                params: p.params.clone(),
                root: guest.share.clone(),
                keep_state: false,
            };
            let outcome = guest.run(req, cfg.guests.scenario_timeout.min(left)).await;
            let wall = t1.elapsed() + std::mem::take(&mut first_wall);
            scenario_time += t1.elapsed();
            let mut r = match outcome {
                Ok(mut r) => {
                    // The agent could not do its part (a clean-up that failed, a workload that
                    // would not start): the machinery, not the kernel's tracing.
                    if r.status == Status::Error && r.cause.is_none() {
                        r.cause = Some(Cause::Infrastructure);
                    }
                    r
                }
                Err(e) if e.is_accelerator() && cfg.guests.session.accel.fall_back(&e) => {
                    // KVM failed under this scenario, not the scenario: redo it in a TCG guest.
                    next -= 1;
                    broken = true;
                    break;
                }
                Err(e) => {
                    broken = true;
                    let mut r = infra_result(&p.scenario, &e, &log);
                    if matches!(e, VmError::Timeout { .. }) {
                        // A hang: ask the kernel what every task is doing before the VM goes.
                        guest.task_dump(Duration::from_secs(2)).await;
                        r = r.with_excerpt(&guest.console_tail());
                        r.reason.push_str("; sysrq-t task dump in the excerpt and console log");
                    }
                    r
                }
            };
            r.kernel = kernel.to_string();
            r.accel = guest.accel.as_str().to_string();
            // What a rerun needs to replay this cell exactly: the build and the parameters.
            r.build = Some(build.clone());
            r.params = p.params.clone();
            if let Some(first) = first_attempt.take() {
                r.previous = Some(Box::new(first));
            } else if matches!(r.status, Status::Fail | Status::Error) && cfg.retries > 0 {
                // Once more, in this guest or (when it broke) a fresh one; the first attempt
                // goes into the retry's result.
                let _ = tx
                    .send(RunEvent::Note {
                        kernel: kernel.into(),
                        text: format!("{} gave {}: retrying it once", r.scenario, r.status),
                    })
                    .await;
                first_attempt = Some(r);
                first_wall = wall;
                next -= 1;
                if broken {
                    break;
                }
                continue;
            }
            walls.push((r.scenario.clone(), wall.as_secs_f64()));
            let _ = tx
                .send(RunEvent::Result { kernel: kernel.into(), release: k.release.clone(), result: Box::new(r), wall })
                .await;
            if broken {
                break;
            }
        }
        if broken || guest.restored {
            // A restored guest is a private copy-on-write copy of a snapshot and nothing in it
            // is kept: its kernel's power-off path (paid once per cargo-nextest trial) changes
            // no result, every scenario already has one.
            guest.kill().await;
        } else if let Err(e) = guest.shutdown().await {
            // Every scenario already has its result; a guest that will not power off is worth a
            // note, it changes no verdict.
            let _ = tx
                .send(RunEvent::Note { kernel: kernel.into(), text: format!("guest did not power off cleanly: {e}") })
                .await;
        }
    }
    if !walls.is_empty() {
        let cache = cfg.guests.session.cache.clone();
        let label = kernel.to_string();
        let _ = tokio::task::spawn_blocking(move || history::record(&cache, &label, &walls)).await;
    }
    let _ = tx.send(RunEvent::Done { kernel: kernel.into(), wall: started.elapsed(), boot_time, scenario_time }).await;
}

/// A scenario that broke the guest: `error`, with the console tail as its excerpt.
fn infra_result(scenario: &str, e: &VmError, log: &std::path::Path) -> ScenarioResult {
    let head = match e {
        VmError::Timeout { secs, .. } => format!("scenario timed out after {secs:.1} s"),
        VmError::Panic { line, .. } => format!("guest kernel panicked: {line}"),
        VmError::Exited { status, .. } => format!("QEMU exited ({status}) during the scenario"),
        other => other.to_string().lines().next().unwrap_or("").to_string(),
    };
    let mut r = ScenarioResult::new(scenario, Status::Error, format!("{head} (console log {})", log.display()));
    r.cause = Some(cause_of(e));
    r = r.with_excerpt(e.console().unwrap_or(""));
    r
}

/// What broke, from how the guest failed.
fn cause_of(e: &VmError) -> Cause {
    match e {
        VmError::Timeout { .. } => Cause::Timeout,
        VmError::Panic { .. } => Cause::KernelOops,
        e if e.is_accelerator() => Cause::Accelerator,
        _ => Cause::Infrastructure,
    }
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}
