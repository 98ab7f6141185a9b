//! One VM of a kernel's run after another: boot (or restore) a guest, take scenarios from the
//! kernel's queue, run each (a retry for one that failed or erred), and turn a guest that broke
//! into `error` results with the console tail. The scheduler (`super`) decides which kernels run
//! and when a second VM helps; this is what one VM does.

use super::*;

/// A scenario this VM took and has not finished: its plan index, and when it is a retry, the
/// failed first attempt and its wall time.
struct Taken {
    i: usize,
    first: Option<ScenarioResult>,
    first_wall: Duration,
}

/// The next scenario for this VM: its own pending one, or one from the queue. `None` also
/// means this worker has left the queue (and, when it was the last, the kernel is `Done`).
async fn take(shared: &Shared, kr: &KernelRun, pending: &mut Option<Taken>, from_back: bool) -> Option<Taken> {
    if let Some(t) = pending.take() {
        return Some(t);
    }
    let mut st = kr.state.lock().await;
    match st.queue.take(from_back) {
        Some(i) => Some(Taken { i, first: None, first_wall: Duration::ZERO }),
        None => {
            finalize(shared, kr, &mut st).await;
            None
        }
    }
}

/// One VM after another for `kr` until its queue is empty: the kernel's first VM takes from the
/// front, a helper (`from_back`) from the back.
pub(super) async fn worker(shared: &Shared, kr: &KernelRun, ready: &Arc<Ready>, from_back: bool) {
    let cfg = &shared.cfg;
    let kernel = kr.label.as_str();
    let k = &ready.k;
    let mut pending: Option<Taken> = None;
    loop {
        let Some(first_taken) = take(shared, kr, &mut pending, from_back).await else { return };
        // This guest's machine is the one its first scenario was placed in; a scenario of
        // another machine ends the guest and starts one of that machine.
        let machine = kr.machines[first_taken.i];
        pending = Some(first_taken);
        let boots = kr.boots.fetch_add(1, Ordering::SeqCst) + 1;
        let log = cfg.log_dir.join(format!("{}-boot{boots}.console.log", sanitize(kernel)));
        let mut opts = cfg.guests.options_in(k, log.clone(), machine);
        // Scenarios that run the host's tools get the host root (read-only), as `--share` says;
        // a share that cannot be had fails like a boot.
        let plan = match cfg.host_root {
            true => cfg.guests.share_plan(kernel, k.boot.config.as_deref()).map(Some).map_err(VmError::Share),
            false => Ok(None),
        };
        let t0 = Instant::now();
        let started = match plan {
            Ok(share) => {
                opts.share = share;
                cfg.guests.session.start_guest(k, &ready.img, &opts).await
            }
            Err(e) => Err(e),
        };
        let mut st = kr.state.lock().await;
        st.boot_time += t0.elapsed();
        let mut guest = match started {
            Ok(g) => g,
            Err(e) => {
                let t = pending.take().expect("a VM boots only for a scenario");
                if from_back && t.first.is_none() && st.queue.give_back(t.i) {
                    // Another VM of this kernel is still running and takes it.
                    drop(st);
                    let text = format!("a helper VM did not boot (console log {}): {e}", log.display());
                    let _ = shared.tx.send(RunEvent::Note { kernel: kernel.into(), text }).await;
                    return;
                }
                let reason = format!("boot failed (console log {}): {e}", log.display());
                let accel = cfg.guests.session.accel.current().as_str();
                let mut rest = st.queue.take_all();
                rest.push(t.i);
                rest.sort_unstable();
                let mut first = t.first;
                for (i, mut r) in all_error(kr, &reason, cause_of(&e), Some(k), &rest) {
                    r.accel = accel.to_string();
                    // Each cell's own machine: the ones of the other machine never booted either.
                    let m = kr.machines[i];
                    (r.cpus, r.memory_mb, r.disk_mb) =
                        (Some(m.cpus), Some(opts.settings.memory_mb), m.disk_bytes.map(|b| b >> 20));
                    if i == t.i {
                        // The retry of the scenario that broke the last guest could not boot.
                        r.previous = first.take().map(Box::new);
                    }
                    finish(shared, kr, &mut st, i, r, Duration::ZERO, &k.release).await;
                }
                drop(st);
                continue;
            }
        };
        if st.ready.is_none() {
            st.ready = Some(ready.clone());
            shared.changed();
        }
        drop(st);
        if let Ok(mut h) = ready.hello.lock() {
            *h = guest.hello_after;
        }
        if let Some(share) = guest.share.as_mut() {
            share.modules = ready.module_tree.clone();
        }
        if let (Some(h), Some(share)) = (&ready.kernel_headers, guest.share.as_mut()) {
            match h {
                Ok(dir) => share.headers = Some(dir.clone()),
                Err(why) => share.headers_missing = Some(why.to_string()),
            }
        }
        let _ = shared
            .tx
            .send(RunEvent::Booted {
                kernel: kernel.into(),
                release: k.release.clone(),
                hello_after: guest.hello_after,
                boot: boots,
            })
            .await;
        let mut broken = false;
        let mut switch = false;
        while let Some(Taken { i, first, first_wall }) = take(shared, kr, &mut pending, from_back).await {
            if kr.machines[i] != machine {
                pending = Some(Taken { i, first, first_wall });
                switch = true;
                break;
            }
            let p = &kr.scenarios[i];
            let left = ready.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let reason =
                    format!("per-VM timeout of {:.0} s reached before this scenario ran", cfg.vm_timeout.as_secs_f64());
                let mut st = kr.state.lock().await;
                let mut rest = st.queue.take_all();
                rest.push(i);
                rest.sort_unstable();
                let mut first = first;
                for (j, mut r) in all_error(kr, &reason, Cause::Timeout, Some(k), &rest) {
                    if j == i {
                        r.previous = first.take().map(Box::new);
                    }
                    finish(shared, kr, &mut st, j, r, Duration::ZERO, &k.release).await;
                }
                broken = true;
                break;
            }
            let t1 = Instant::now();
            let timeout = cfg.guests.scenario_timeout.min(left);
            let outcome = if crate::user_command::is_user(&p.scenario) {
                // The user's command: an exec of it in the shared host root, judged on the host.
                crate::user_command::run(&mut guest, &p.scenario, &p.params, kernel, &k.release, timeout).await
            } else {
                let req = RunRequest {
                    scenario: p.scenario.clone(),
                    params: p.params.clone(),
                    root: guest.share.clone(),
                    keep_state: false,
                    host_time_ns: None,
                };
                guest.run(req, timeout).await
            };
            let wall = t1.elapsed() + first_wall;
            kr.state.lock().await.scenario_time += t1.elapsed();
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
                    pending = Some(Taken { i, first, first_wall });
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
            (r.cpus, r.memory_mb, r.disk_mb) =
                (Some(opts.settings.cpus), Some(opts.settings.memory_mb), opts.settings.disk_bytes.map(|b| b >> 20));
            // What a rerun needs to replay this cell exactly: the build and the parameters.
            r.build = Some(ready.build.clone());
            r.params = p.params.clone();
            if let Some(first) = first {
                r.previous = Some(Box::new(first));
            } else if matches!(r.status, Status::Fail | Status::Error) && cfg.retries > 0
                // A failure an expectation names as it is: a retry would only repeat it.
                && !cfg.expected.as_ref().is_some_and(|x| x.names(&r))
            {
                // Once more, in this guest or (when it broke) a fresh one; the first attempt
                // goes into the retry's result.
                let _ = shared
                    .tx
                    .send(RunEvent::Note {
                        kernel: kernel.into(),
                        text: format!("{} gave {}: retrying it once", r.scenario, r.status),
                    })
                    .await;
                pending = Some(Taken { i, first: Some(r), first_wall: wall });
                if broken {
                    break;
                }
                continue;
            }
            let mut st = kr.state.lock().await;
            finish(shared, kr, &mut st, i, r, wall, &k.release).await;
            drop(st);
            if broken {
                break;
            }
        }
        // The queue ran dry for this VM (`take` gave `None`: this worker has left it), unless
        // the VM broke with work left or the next scenario needs another machine.
        let left_queue = !broken && !switch;
        if broken || guest.restored {
            // A restored guest is a private copy-on-write copy of a snapshot and nothing in it
            // is kept: its kernel's power-off path (paid once per cargo-nextest trial) changes
            // no result, every scenario already has one.
            guest.kill().await;
        } else if let Err(e) = guest.shutdown().await {
            // Every scenario already has its result; a guest that will not power off is worth a
            // note, it changes no verdict.
            let _ = shared
                .tx
                .send(RunEvent::Note { kernel: kernel.into(), text: format!("guest did not power off cleanly: {e}") })
                .await;
        }
        if left_queue {
            return;
        }
    }
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
pub(super) fn cause_of(e: &VmError) -> Cause {
    match e {
        VmError::Timeout { .. } => Cause::Timeout,
        VmError::Panic { .. } => Cause::KernelOops,
        e if e.is_accelerator() => Cause::Accelerator,
        _ => Cause::Infrastructure,
    }
}
