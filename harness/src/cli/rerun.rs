//! `kmatrix rerun`: the cells of a results file run again exactly as they ran — the same kernel
//! build (package version and `.deb` hash, not just the line), the same scenario parameters, the
//! same accelerator — into a new run directory; or, with `--shell`, one cell run with its tracefs
//! state kept and a shell opened on it. What to run is decided in `run::rerun`; this file is the
//! glue to the kernel provider, the matrix run and the shell.

use super::{open_session, seconds, start_shared, tag_kernel, GuestArgs, MachineArgs, MirrorArgs};
use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use crate::kernel::{self, FetchOptions, KernelSpec};
use crate::run::matrix::MatrixRun;
use crate::run::rerun::{self, Selection};
use crate::run::results;
use crate::settings::Channel;
use crate::settings::SnapshotMode;
use crate::vm::AccelChoice;
use anyhow::{Context, Result};
use clap::Args;
use kmatrix_proto::{RunRequest, ScenarioResult};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `kmatrix rerun`: which cells of which results file, or `--shell` on one.
#[derive(Debug, Args)]
pub struct RerunArgs {
    /// A run directory or its results.jsonl (this machine's, a CI shard's, a merged one).
    pub run: PathBuf,
    /// Only the cells that failed (status fail, error or flaky).
    #[arg(long)]
    pub failed: bool,
    /// Only the cells of this kernel: the id the results name (`debian-6.1`, globs work) or a
    /// build (`debian:6.1.176-1`).
    #[arg(long, short = 'k')]
    pub kernel: Option<String>,
    /// Only these scenarios (globs, comma-separated).
    #[arg(long, short = 's')]
    pub scenario: Option<String>,
    /// Run one cell with the scenario's tracefs state kept (probes registered, tracer and events
    /// on, the trace buffer full) and open a shell in that guest; `exit` powers it off.
    #[arg(long)]
    pub shell: bool,
    /// Accelerator for every cell (default: the one each result ran under).
    #[arg(long)]
    pub accel: Option<AccelChoice>,
    /// Where kernels come from: the mirror and whether an unsigned Release is accepted.
    #[command(flatten)]
    pub fetch: MirrorArgs,
    /// Where the new run directory goes.
    #[arg(long, default_value = "target/kmatrix")]
    pub out: PathBuf,
    /// Expectations file (default: kernels/expectations.toml).
    #[arg(long)]
    pub expectations: Option<PathBuf>,
    /// Seconds one scenario may take before it is an error.
    #[arg(long, default_value_t = crate::settings::SCENARIO_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    pub scenario_timeout: f64,
    /// Seconds from QEMU start to the agent's Hello before the boot counts as failed.
    #[arg(long, default_value_t = crate::settings::BOOT_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    pub boot_timeout: f64,
    /// Guest CPUs for every cell (default: what each result recorded; one for results that
    /// recorded none).
    #[arg(long, value_parser = super::machine::cpus)]
    pub cpus: Option<u32>,
    /// Guest memory for every cell, as `--memory` of `run` (default: what each result recorded).
    #[arg(long, value_parser = super::machine::memory_mb)]
    pub memory: Option<u32>,
    /// Start guests from a snapshot taken at the agent's Hello: on (default) or off.
    #[arg(long, value_enum)]
    pub snapshot: Option<SnapshotMode>,
    /// Print results as JSON lines on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// With --shell: the shell and its arguments (default: $SHELL, else /bin/bash).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, requires = "shell")]
    pub argv: Vec<String>,
}

impl RerunArgs {
    /// The guest options of `run` and `shell`, for this rerun's kernel `spec` under `accel`, in
    /// the machine its results `recorded` (CPUs, MiB, disk MiB) unless `--cpus`/`--memory` say otherwise.
    fn guest(&self, accel: AccelChoice, spec: &str, recorded: (u32, u32, Option<u64>)) -> GuestArgs {
        GuestArgs {
            kernel: Some(spec.to_string()),
            modules: None,
            config: None,
            accel,
            boot_timeout: self.boot_timeout,
            machine: MachineArgs {
                cpus: Some(self.cpus.unwrap_or(recorded.0)),
                memory: self.memory.unwrap_or(recorded.1),
                disk: recorded.2.map(|mb| mb << 20),
                net: Default::default(),
            },
            fetch: self.fetch.clone(),
            out: self.out.clone(),
            append: Vec::new(),
            channel: Channel::Virtio,
            snapshot: self.snapshot,
            share: Default::default(),
        }
    }
}

pub(crate) async fn rerun_cmd(a: RerunArgs) -> Result<i32> {
    let file = crate::run::results::file_in(&a.run);
    let results = super::report::read_results(&a.run)?;
    let sel = Selection { failed: a.failed, kernel: a.kernel.clone(), scenario: a.scenario.clone() };
    let cells = rerun::select(&results, &sel, &file.display().to_string()).exit_code(exit::BAD_INPUT)?;
    let lock = kernel::KernelsDir::try_locate(None).ok().and_then(|kd| kd.lock().ok());
    let groups = rerun::plan(&cells, lock.as_ref(), a.accel).exit_code(exit::BAD_INPUT)?;
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let cat = crate::catalogue::load(&cache).context("cannot list the agent's catalogue").exit_code(exit::INFRA)?;
    let mut infos: Vec<kmatrix_proto::ScenarioInfo> = Vec::new();
    for r in &cells {
        // The user's command: what it ran is in the cell's own parameters.
        let user = match crate::user_command::is_user(&r.scenario) {
            true => Some(crate::user_command::info_of(r).exit_code(exit::BAD_INPUT)?),
            false => None,
        };
        let Some(info) = user.as_ref().or_else(|| cat.iter().find(|s| s.id == r.scenario)) else {
            return Err(anyhow::anyhow!(
                "{} {}: this kmatrix's catalogue has no scenario {} (the results come from another kmatrix version?)",
                r.kernel,
                r.scenario,
                r.scenario
            ))
            .exit_code(exit::BAD_INPUT);
        };
        if !infos.iter().any(|i| i.id == info.id) {
            infos.push(info.clone());
        }
    }
    // Every build first: one that is gone or differs stops the rerun before anything boots.
    for r in &cells {
        let spec = rerun::boot_spec(r, lock.as_ref()).exit_code(exit::BAD_INPUT)?;
        verify_build(&a, &cache, r, &spec).await?;
    }
    if a.shell {
        let [cell] = cells.as_slice() else {
            let list: Vec<String> = cells.iter().map(|r| format!("{} {}", r.kernel, r.scenario)).collect();
            return Err(anyhow::anyhow!(
                "--shell opens one cell, and {} match: {}; narrow them with --kernel and --scenario",
                cells.len(),
                list.join(", ")
            ))
            .exit_code(exit::BAD_INPUT);
        };
        return shell_at_failure(&a, cell, lock.as_ref()).await;
    }
    let expectations = super::run::load_expectations(a.expectations.as_deref())?;
    let run_dir = results::run_dir(&a.out);
    eprintln!("kmatrix: rerunning {} cells of {}", cells.len(), file.display());
    let mut worst = exit::OK;
    let mut now: Vec<ScenarioResult> = Vec::new();
    for g in groups {
        let session = Arc::new(open_session(g.accel).await?);
        let labels: Vec<String> = g.plan.iter().map(|k| k.label.clone()).collect();
        let scenarios: Vec<kmatrix_proto::ScenarioInfo> = infos
            .iter()
            .filter(|i| g.plan.iter().any(|k| k.scenarios.iter().any(|p| p.scenario == i.id)))
            .cloned()
            .collect();
        let mut guest = a.guest(g.accel, "", g.machine);
        guest.kernel = None;
        // A local kernel's modules and config, as its result recorded them (the spec is a path).
        let local = cells.iter().filter_map(|r| r.build.as_ref()).find(|b| b.modules.is_some() || b.config.is_some());
        guest.modules = local.and_then(|b| b.modules.as_ref().map(PathBuf::from));
        guest.config = local.and_then(|b| b.config.as_ref().map(PathBuf::from));
        // A rerun shows what the cell does now: a retry would hide a flake it reproduces
        // (MatrixRun::new's default, no retries), one guest at a time per CPU, no extra files.
        let mut mr = MatrixRun::new(
            super::run::guests(session, &guest, a.scenario_timeout),
            &run_dir,
            labels,
            scenarios,
            expectations.clone(),
        );
        mr.cells = Some(g.plan);
        // Each cell in the machine its result recorded (the group's), as it ran then.
        mr.sched.fit = crate::run::machine::Fit::NONE;
        let (code, outcome) = super::run::launch(mr, a.json, false).await?;
        worst = worst.max(code);
        now.extend(outcome.results);
    }
    let mut text = String::new();
    for r in &cells {
        let after = now.iter().find(|n| n.kernel == r.kernel && n.scenario == r.scenario);
        let after = after.map_or_else(|| "no result (interrupted)".to_string(), |n| n.status.to_string());
        text.push_str(&format!("{} {}: was {}, now {after}\n", r.kernel, r.scenario, r.status));
    }
    if a.json {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    Ok(worst)
}

/// Prepare (download, verify, extract) the build `r` ran on, as `spec`, and check it is the
/// same build: a build the mirror no longer has is an infrastructure error naming it and
/// `--mirror`; one whose package differs from what the result recorded is refused.
async fn verify_build(a: &RerunArgs, cache: &Cache, r: &ScenarioResult, spec: &str) -> Result<()> {
    let recorded = r.build.clone().unwrap_or_default();
    let parsed: KernelSpec = spec.parse().map_err(tag_kernel)?;
    let fetch = FetchOptions {
        modules: recorded.modules.as_ref().map(PathBuf::from),
        config: recorded.config.as_ref().map(PathBuf::from),
        ..a.fetch.fetch_options()
    };
    let c = cache.clone();
    let k = tokio::task::spawn_blocking(move || kernel::prepare(&parsed, &c, &fetch))
        .await
        .context("kernel preparation task died")?;
    let k = match k {
        Ok(k) => k,
        Err(e) if e.is_gone() => {
            return Err(anyhow::Error::new(e).context(format!(
                "kernel build {} ({}), which {} {} ran on, is not on the mirror; pass --mirror with an archive \
                 snapshot mirror that still has it",
                recorded.spec,
                recorded.package.as_deref().unwrap_or(&recorded.release),
                r.kernel,
                r.scenario
            )))
            .exit_code(exit::INFRA)
        }
        Err(e) => return Err(tag_kernel(e)).with_context(|| format!("cannot prepare kernel build {spec}")),
    };
    if let (Some(want), Some(got)) = (&recorded.sha256, &k.sha256) {
        if want != got {
            let what = if k.origin.package.is_some() { "its package" } else { "the file" };
            return Err(anyhow::anyhow!(
                "{} {}: kernel build {} is not the one the result ran on: {what} has sha256 {got}, the result \
                 recorded {want}",
                r.kernel,
                r.scenario,
                recorded.spec
            ))
            .exit_code(exit::BAD_INPUT);
        }
    }
    Ok(())
}

/// `--shell`: boot the cell's build with the host root shared, run the scenario with its
/// parameters keeping tracefs as the scenario leaves it, say what it gave, and open a shell.
async fn shell_at_failure(a: &RerunArgs, r: &ScenarioResult, lock: Option<&kernel::Lock>) -> Result<i32> {
    // The shell is checked on the host before anything boots.
    let argv = if a.argv.is_empty() { super::shell::default_shell() } else { a.argv.clone() };
    let (shell, _) = crate::exec::request(&argv, &[], 24.0 * 3600.0, &[]).exit_code(exit::BAD_INPUT)?;
    let spec = rerun::boot_spec(r, lock).exit_code(exit::BAD_INPUT)?;
    let accel = match a.accel {
        Some(x) => x,
        None => rerun::accel_of(r).exit_code(exit::BAD_INPUT)?,
    };
    let session = Arc::new(open_session(accel).await?);
    let ga = a.guest(accel, &spec, rerun::machine_of(r));
    let (p, mut g) = start_shared(&session, &ga, &spec, "rerun-shell", Vec::new(), false).await?;
    let timeout = Duration::from_secs_f64(a.scenario_timeout);
    let now = if crate::user_command::is_user(&r.scenario) {
        crate::user_command::run(&mut g, &r.scenario, &r.params, &r.kernel, &p.kernel.release, timeout).await
    } else {
        let req = RunRequest {
            scenario: r.scenario.clone(),
            params: r.params.clone(),
            root: g.share.clone(),
            keep_state: true,
            ..Default::default()
        };
        g.run(req, timeout).await
    };
    let now = now.with_context(|| format!("running {} on {spec} failed", r.scenario)).exit_code(exit::INFRA)?;
    eprintln!(
        "kmatrix: {} {} on {spec}: was {}, now {}{}",
        r.kernel,
        r.scenario,
        r.status,
        now.status,
        if now.reason.is_empty() { String::new() } else { format!(": {}", now.reason) }
    );
    for c in &now.counts {
        eprintln!("kmatrix:   {}: expected {}, observed {}", c.what, c.expected, c.observed);
    }
    eprintln!(
        "kmatrix: tracefs (/sys/kernel/tracing) is as {} left it: probes, tracer, events, filters and the trace \
         buffer kept",
        r.scenario
    );
    super::shell::interactive(g, shell, &p.kernel).await
}
