//! `kmatrix run`: the matrix (kernels × scenarios, or a user's BPF object), judged, streamed to
//! results.jsonl and rendered as a table.

use super::{open_session, seconds, tag_kernel, GuestArgs};
use crate::cache::Cache;
use crate::catalogue::Lane;
use crate::exit::{self, ExitContext};
use crate::kernel::{self, KernelSpec};
use crate::report as render;
use crate::run::guests::Guests;
use crate::run::matrix::{self, MatrixRun, Outcome, Progress};
use crate::run::results;
use crate::session::Session;
use crate::settings::SnapshotMode;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `kmatrix run`: the kernels, the scenarios (or a BPF object), the limits, the output.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Kernels, comma-separated: ids, specs, or groups of the matrix (`all`: every kernel,
    /// `default`, `x86_64`, `arm64`: every kernel of that architecture). Default: the default
    /// matrix (the kernels not marked `default = false`).
    #[arg(long, value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// Scenario globs, comma-separated (`kprobe.*,ftrace.function.*`); default: all.
    #[arg(long, short = 's', default_value = "*")]
    pub scenarios: String,
    /// Which scenarios: `core` (the kernel's own tracing interfaces, run by the agent: every
    /// scenario that does not need the host's root), `tools` (the real tools of the host, run
    /// in guests that share its root: `tool.*`), or `all` (both, one table), on every kernel.
    /// Without it, each kernel runs the lane its matrix entry names (`lane`, default `all`: the
    /// wide fleet's kernels run `core` unless asked). Combined with `--scenarios`: a scenario
    /// must match both.
    #[arg(long, value_enum)]
    pub lane: Option<Lane>,
    /// Kernels booted at once (default: the number of host cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Scenario parameter for every scenario, `key=value` (repeatable), e.g. `count=1000`.
    #[arg(long = "param", short = 'p')]
    pub params: Vec<String>,
    /// Seconds one scenario may take before it is an error.
    #[arg(long, default_value_t = crate::settings::SCENARIO_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    pub scenario_timeout: f64,
    /// Seconds one kernel's whole run may take.
    #[arg(long, default_value_t = crate::settings::VM_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    pub vm_timeout: f64,
    /// Expectations file (default: kernels/expectations.toml).
    #[arg(long)]
    pub expectations: Option<PathBuf>,
    /// Run a scenario that fails or errs once more (0 or 1); a pass then is `flaky`, with both
    /// attempts in the result.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=1))]
    pub retries: u32,
    /// Print results as JSON lines on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// A user's BPF object to run instead of scenarios (flattened: `--bpf-object`, ...).
    #[command(flatten)]
    pub bpf: Box<BpfObjectArgs>,
    /// The user's own commands as judged cells (flattened: `--command`, `--command-file`, `--name`).
    #[command(flatten)]
    pub user: Box<UserCommandArgs>,
    /// The kernel and how to boot it (flattened: `--kernel`, `--accel`, `--memory`, ...).
    #[command(flatten)]
    pub guest: GuestArgs,
}

/// `kmatrix run --bpf-object`: a user's object through the agent's `bpf.object.load` scenario.
#[derive(Debug, Args, Clone, Default)]
pub struct BpfObjectArgs {
    /// A BPF object to load, verify, attach and fire on each kernel (runs only the
    /// `bpf.object.load` scenario, with the object at `/user/<file name>` in the guest).
    #[arg(long, value_name = "PATH")]
    pub bpf_object: Option<PathBuf>,
    /// The program of --bpf-object (default: its only program).
    #[arg(long, requires = "bpf_object")]
    pub program: Option<String>,
    /// Where to attach it: kprobe:SYM, kretprobe:SYM, ksyscall:NAME (a kprobe on the kernel's
    /// symbol for syscall NAME), tracepoint:CAT/NAME, raw_tracepoint:NAME, tp_btf:NAME, fentry:FN,
    /// fexit:FN, uprobe:PATH:SYMBOL, perf_event:cpu-clock. Without it, a program whose libbpf
    /// section names its target (`ksyscall/openat`, `tp/syscalls/sys_enter_openat`) is attached
    /// there, as libbpf's auto-attach does; any other is only loaded (verified).
    #[arg(long, requires = "bpf_object", value_name = "KIND:TARGET")]
    pub attach: Option<String>,
    /// What runs while the program (or, without --bpf-object, the probe of every selected
    /// scenario that takes a workload, such as `kprobe.tracefs.any` and `ftrace.event.any`) is
    /// attached: `openat-loop:N`, `hello:N`, or any host command line (`'rm -f /var/tmp/x'`),
    /// run in the guest through the shared host root.
    #[arg(long)]
    pub workload: Option<String>,
    /// How many times the program or probe must fire during the workload (the program's runs,
    /// counted by the kernel's BPF statistics; a probe's entries). Default: the workload's N
    /// where the count is exact (a built-in workload on its own call), else at least once.
    #[arg(long, requires = "workload")]
    pub expect_runs: Option<u64>,
    /// An external BTF (BTFHub's, or `scripts/btf-from-headers.sh`'s) for kernels built without
    /// BTF: the agent relocates CO-RE objects (--bpf-object's, and the bpf.core.* scenarios')
    /// against it where the kernel has no /sys/kernel/btf/vmlinux. Kernels with BTF keep theirs.
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
}

/// `kmatrix run --command`: the user's own commands, each a judged cell on every kernel.
#[derive(Debug, Args, Clone, Default)]
pub struct UserCommandArgs {
    /// A host command line to run on each kernel as the cell `user.<name>` (repeatable): run in
    /// the guest through the shared host root, in this directory, with this environment, as
    /// `kmatrix exec` runs it. Exit 0 is pass, 4 or 77 unsupported (skip), anything else fail,
    /// its timeout (--scenario-timeout) an error. Words and quotes are split as a shell splits
    /// them, with no expansion (`--command "sh -c 'make check'"` for a shell). Alone, it runs
    /// only the commands; with --scenarios, those scenarios too.
    #[arg(long = "command", value_name = "'CMD ARGS'")]
    pub commands: Vec<String>,
    /// A file of commands, one per line (blank lines and `#` comments skipped), run as
    /// --command runs each, after the --command ones.
    #[arg(long, value_name = "FILE")]
    pub command_file: Option<PathBuf>,
    /// The name of the command's cell, `user.<name>` (repeatable: the n-th names the n-th
    /// command). Default: `command`; several unnamed commands are `command-1`, `command-2`...
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
}

/// `--workload` (and `--expect-runs`) without `--bpf-object`: the parameters the selected
/// scenarios that take a workload get, and whether the host root must be shared (a host
/// command). Selecting no such scenario is bad input naming those that take one.
fn scenario_workload(
    b: &BpfObjectArgs,
    selected: &[kmatrix_proto::ScenarioInfo],
    catalogue: &[kmatrix_proto::ScenarioInfo],
) -> Result<(std::collections::BTreeMap<String, String>, bool)> {
    let Some(spec) = &b.workload else { return Ok(Default::default()) };
    if !selected.iter().any(|s| s.params.contains_key("workload")) {
        let takers: Vec<&str> =
            catalogue.iter().filter(|s| s.params.contains_key("workload")).map(|s| s.id.as_str()).collect();
        return Err(anyhow::anyhow!(
            "--workload {spec:?}: none of the selected scenarios takes a workload; these do: {}",
            takers.join(", ")
        ))
        .exit_code(exit::BAD_INPUT);
    }
    let w = crate::bpf_object::workload(spec).exit_code(exit::BAD_INPUT)?;
    let mut params = w.params(spec);
    if let Some(n) = b.expect_runs {
        params.insert("expect_runs".to_string(), n.to_string());
    }
    Ok((params, w.needs_host_root()))
}

pub(crate) fn parse_params(raw: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    let mut m = std::collections::BTreeMap::new();
    for p in raw {
        let Some((k, v)) = p.split_once('=') else {
            return Err(anyhow::anyhow!("--param {p:?} is not key=value")).exit_code(exit::BAD_INPUT);
        };
        m.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(m)
}

/// The expectations a run judges by: `--expectations FILE` when given (a file that cannot be read
/// is bad input, named), else the ones that come with the matrix in use
/// ([`kernel::KernelsDir::expectations`]).
pub(crate) fn load_expectations(path: Option<&std::path::Path>) -> Result<crate::run::verdict::Expectations> {
    use crate::run::verdict::{Expectations, Role};
    let (text, name) = match path {
        Some(p) => (
            std::fs::read_to_string(p)
                .with_context(|| format!("--expectations {}: cannot read it", p.display()))
                .exit_code(exit::BAD_INPUT)?,
            p.display().to_string(),
        ),
        None => kernel::KernelsDir::try_locate(None).and_then(|d| d.expectations()).map_err(tag_kernel)?,
    };
    Expectations::parse(&text, &name, Role::Verdicts).exit_code(exit::BAD_INPUT)
}

/// Select scenarios by globs; a pattern that matches nothing is bad input, named.
pub fn select_scenarios(cat: &[kmatrix_proto::ScenarioInfo], globs: &str) -> Result<Vec<kmatrix_proto::ScenarioInfo>> {
    for pat in globs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !cat.iter().any(|s| crate::run::matches_any(pat, &s.id)) {
            let ids: Vec<&str> = cat.iter().map(|s| s.id.as_str()).collect();
            return Err(anyhow::anyhow!("--scenarios {pat:?} matches no scenario; known: {}", ids.join(", ")))
                .exit_code(exit::BAD_INPUT);
        }
    }
    Ok(crate::catalogue::select(cat, globs))
}

pub(crate) async fn run(a: RunArgs) -> Result<i32> {
    run_inner(a).await.map(|(code, _)| code)
}

pub(crate) async fn run_inner(a: RunArgs) -> Result<(i32, Outcome)> {
    // The user's commands and object are checked before anything else: a typo should not cost
    // a boot per kernel.
    let commands = user_commands(&a)?;
    let user = match &a.bpf.bpf_object {
        Some(path) => {
            if a.scenarios != "*" {
                return Err(anyhow::anyhow!(
                    "--bpf-object runs only {}; it does not go with --scenarios {:?}",
                    crate::bpf_object::SCENARIO,
                    a.scenarios
                ))
                .exit_code(exit::BAD_INPUT);
            }
            Some(plan_bpf_object(&a.bpf, path)?)
        }
        None => None,
    };
    let external_btf = match &a.bpf.btf {
        Some(path) => Some(crate::image::ExtraFile {
            path: kmatrix_proto::EXTERNAL_BTF.to_string(),
            mode: 0o644,
            data: crate::btf::external::read(path).exit_code(exit::BAD_INPUT)?,
        }),
        None => None,
    };
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let cat = crate::catalogue::load(&cache).context("cannot list the agent's catalogue").exit_code(exit::INFRA)?;
    // Commands alone run alone: the catalogue's scenarios come with them only when named.
    let mut scenarios = match (&user, commands.is_empty() || a.scenarios != "*") {
        (None, false) => Vec::new(),
        _ => select_scenarios(&cat, user.as_ref().map_or(a.scenarios.as_str(), |_| crate::bpf_object::SCENARIO))?,
    };
    if let (None, Some(lane), false) = (&user, a.lane, scenarios.is_empty()) {
        scenarios.retain(|s| lane.has(s));
        if scenarios.is_empty() {
            return Err(anyhow::anyhow!(
                "--scenarios {:?} selects no scenario of the {} lane",
                a.scenarios,
                lane.name()
            ))
            .exit_code(exit::BAD_INPUT);
        }
    }
    let (workload_params, workload_host_root) = match &user {
        Some(_) => (Default::default(), false),
        None => scenario_workload(&a.bpf, &scenarios, &cat)?,
    };
    let named = a.guest.kernels_or(&a.kernels)?;
    let named = kernel::expand_names(&named).map_err(tag_kernel).exit_code(exit::BAD_INPUT)?;
    // Said whether or not kernels were named: the expectations come from the same place.
    let kd = kernel::KernelsDir::try_locate(None).map_err(tag_kernel)?;
    eprintln!("kmatrix: kernels from {}", kd.describe());
    let kernels = if named.is_empty() {
        kernel::default_ids().context("cannot read the kernel matrix").exit_code(exit::BAD_INPUT)?
    } else {
        named
    };
    for k in &kernels {
        match k.parse::<KernelSpec>().with_context(|| format!("bad kernel {k:?}")).exit_code(exit::BAD_INPUT)? {
            KernelSpec::Matrix(id) => {
                let known = kernel::matrix_ids().unwrap_or_default();
                if !known.contains(&id) {
                    return Err(anyhow::anyhow!("unknown kernel id {id:?}; known ids: {}", known.join(", ")))
                        .exit_code(exit::BAD_INPUT);
                }
            }
            // A file of the user's is looked at before anything boots: a path that is not a
            // kernel is bad input naming it, not an `error` cell per scenario.
            spec @ KernelSpec::Local { .. } => {
                let fetch = a.guest.fetch_options();
                let c = cache.clone();
                tokio::task::spawn_blocking(move || kernel::prepare(&spec, &c, &fetch))
                    .await
                    .context("kernel preparation task died")?
                    .map_err(tag_kernel)
                    .with_context(|| format!("cannot use kernel {k:?}"))?;
            }
            KernelSpec::Debian(_) | KernelSpec::Ubuntu(_) => {}
        }
    }
    let catalogue_only = scenarios.clone();
    scenarios.extend(commands.iter().map(|c| c.info()));
    // A forced virtio-fs without the daemon is the user's setup to fix, before anything boots.
    let host_root =
        scenarios.iter().any(|s| s.host_root) || user.as_ref().is_some_and(|p| p.host_root) || workload_host_root;
    if host_root && a.guest.share == crate::vm::share::ShareMode::Virtiofs {
        crate::vm::virtiofs::find().map_err(|e| anyhow::anyhow!("--share virtiofs: {e}")).exit_code(exit::BAD_INPUT)?;
    }
    let mut params = parse_params(&a.params)?;
    if let Some(plan) = &user {
        params.extend(plan.params.clone());
    }
    params.extend(workload_params);
    // Without --lane, each kernel runs the lane its matrix entry names (the wide fleet's: core).
    let cells = match (&user, a.lane, catalogue_only.is_empty()) {
        (None, None, false) => lane_cells(&kernels, &catalogue_only, &params, &commands)?,
        _ => None,
    };
    let expectations = load_expectations(a.expectations.as_deref())?;
    let session = Arc::new(open_session(a.guest.accel).await?);
    let run_dir = results::run_dir(&a.guest.out);
    let mut mr =
        MatrixRun::new(guests(session, &a.guest, a.scenario_timeout), &run_dir, kernels, scenarios, expectations);
    mr.params = params;
    mr.cells = cells;
    mr.sched.host_root = host_root;
    mr.sched.vm_timeout = Duration::from_secs_f64(a.vm_timeout);
    mr.sched.extra = user.iter().map(|p| p.file.clone()).collect();
    mr.sched.extra.extend(external_btf);
    mr.sched.retries = a.retries;
    // A machine flag given fixes that dimension for every cell; the others are fitted.
    mr.sched.fit = a.guest.machine.fit();
    if let Some(j) = a.jobs {
        mr.sched.jobs = j.max(1);
    }
    launch(mr, a.json, user.is_some()).await
}

/// Each kernel's cells when some kernel's matrix entry names a lane (`lane = "core"`): that
/// lane's share of `scenarios`, with `params` over each scenario's defaults, then the user's
/// `commands`. `None` when every
/// kernel runs every lane (the plain kernels × scenarios). A kernel left with no scenario is
/// dropped, and said; none left at all is bad input.
fn lane_cells(
    kernels: &[String],
    scenarios: &[kmatrix_proto::ScenarioInfo],
    params: &std::collections::BTreeMap<String, String>,
    commands: &[crate::user_command::UserCommand],
) -> Result<Option<Vec<crate::run::scheduler::KernelPlan>>> {
    use crate::run::scheduler::{KernelPlan, Planned};
    let lanes = kernel::default_lanes(kernels).context("cannot read the kernel matrix").exit_code(exit::BAD_INPUT)?;
    if lanes.iter().all(|l| *l == Lane::All) {
        return Ok(None);
    }
    let mut plans = Vec::new();
    for (k, lane) in kernels.iter().zip(lanes) {
        let mut planned: Vec<Planned> =
            scenarios.iter().filter(|s| lane.has(s)).map(|s| matrix::planned(s, params)).collect();
        // The user's commands run on every kernel, whatever its lane.
        planned.extend(commands.iter().map(|c| matrix::planned(&c.info(), params)));
        if planned.is_empty() {
            eprintln!(
                "kmatrix: {k} runs its matrix lane ({}), where --scenarios selects nothing; --lane all runs every lane",
                lane.name()
            );
            continue;
        }
        plans.push(KernelPlan { label: k.clone(), spec: k.clone(), scenarios: planned });
    }
    if plans.is_empty() {
        return Err(anyhow::anyhow!(
            "--scenarios selects no scenario of the lanes these kernels run; --lane all runs every lane"
        ))
        .exit_code(exit::BAD_INPUT);
    }
    Ok(Some(plans))
}

/// The guests of a matrix run as `guest`'s flags give them, from a snapshot unless
/// `--snapshot off`, each scenario given `scenario_timeout` seconds.
pub(crate) fn guests(session: Arc<Session>, guest: &GuestArgs, scenario_timeout: f64) -> Guests {
    Guests {
        session,
        fetch: guest.fetch_options(),
        settings: guest.settings(SnapshotMode::Auto),
        scenario_timeout: Duration::from_secs_f64(scenario_timeout),
    }
}

/// Runs `mr` and shows it: run directory, progress, Ctrl-C, table and summary line; with
/// `json` each result as a JSON line on stdout and the rest on stderr, with `bpf_steps` the
/// steps of `run --bpf-object` under the table. `kmatrix run` and `kmatrix rerun` both end here.
pub(crate) async fn launch(mr: MatrixRun, json: bool, bpf_steps: bool) -> Result<(i32, Outcome)> {
    use std::io::IsTerminal;
    let run_dir = mr.run_dir().to_path_buf();
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))
        .exit_code(exit::INFRA)?;
    if let Some(b) = mr.sched.guests.settings.disk_bytes {
        super::machine::check_disk_room(&run_dir, b)?;
    }
    // Held while the run lasts: `kmatrix gc` leaves a running run's directory alone.
    let _in_use = crate::gc::hold_run_dir(&run_dir).exit_code(exit::INFRA)?;
    let results_path = mr.results_path.clone();
    let kernels = mr.labels();
    let cell_count = mr.cell_count();
    eprintln!(
        "kmatrix: {cell_count} cells ({} scenarios × {} kernels), {} at once; results stream to {}",
        mr.scenarios.len(),
        kernels.len(),
        mr.sched.jobs,
        results_path.display()
    );
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let per_kernel = cell_count / kernels.len().max(1);
    let progress = render::progress::RunProgress::new(&kernels, per_kernel, color && !json);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let execute = matrix::execute(mr, |p| {
        if let Progress::Result(r, _) = &p {
            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if json {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            }
        }
        progress.event(&p, color);
    });
    // Ctrl-C or a TERM: every result so far is already in results.jsonl; say so and where, and
    // leave (the guests' QEMUs die with kmatrix).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    let outcome = tokio::select! {
        o = execute => o.exit_code(exit::INFRA)?,
        _ = tokio::signal::ctrl_c() => return Ok((interrupted("SIGINT", &done, &results_path, &progress), Outcome::empty())),
        _ = term.recv() => return Ok((interrupted("SIGTERM", &done, &results_path, &progress), Outcome::empty())),
    };
    progress.finish();
    let table = render::table::render(&outcome.results, &kernels, color && !json);
    let summary = render::table::Summary::of(&outcome.results);
    let summary_path = run_dir.join("summary.json");
    let _ = std::fs::write(&summary_path, serde_json::to_vec_pretty(&outcome).unwrap_or_default());
    let mut text = format!("\n{table}\n");
    if bpf_steps {
        text.push_str(&crate::bpf_object::render_steps(&outcome.results));
    }
    for s in &outcome.stale {
        text.push_str(&format!("stale expectation: {s}\n"));
    }
    let artifacts: usize = outcome.results.iter().map(|r| r.artifacts.len()).sum();
    if artifacts > 0 {
        text.push_str(&format!(
                "{artifacts} artifacts (traces, flame graphs) under {} in {:.2} s; `kmatrix trace {} <kernel>::<scenario>` lists a cell's\n",
                run_dir.join("artifacts").display(),
                outcome.artifacts_s,
                run_dir.display()
            ));
    }
    text.push_str(&format!("{} in {:.1} s; results: {}\n", summary.line(), outcome.wall_s, results_path.display()));
    if json {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    Ok((exit_code(&summary), outcome))
}

/// A run's exit code: infrastructure errors first, then test failures.
pub(crate) fn exit_code(summary: &render::table::Summary) -> i32 {
    if summary.error > 0 {
        exit::INFRA
    } else if summary.fail > 0 {
        exit::TEST_FAILED
    } else {
        exit::OK
    }
}

/// The user's commands of `run --command`/`--command-file`/`--name`, checked (programs found,
/// names distinct); bad input, named, otherwise.
fn user_commands(a: &RunArgs) -> Result<Vec<crate::user_command::UserCommand>> {
    let u = &a.user;
    if u.commands.is_empty() && u.command_file.is_none() {
        if !u.names.is_empty() {
            return Err(anyhow::anyhow!("--name names a --command, and none is given")).exit_code(exit::BAD_INPUT);
        }
        return Ok(Vec::new());
    }
    if a.bpf.bpf_object.is_some() {
        return Err(anyhow::anyhow!("--command and --bpf-object are two runs: give one of them"))
            .exit_code(exit::BAD_INPUT);
    }
    let cmds =
        crate::user_command::plan(&u.commands, u.command_file.as_deref(), &u.names).exit_code(exit::BAD_INPUT)?;
    for c in &cmds {
        eprintln!("kmatrix: {}: {} in {}", c.id, c.line, c.cwd.display());
    }
    Ok(cmds)
}

/// Read and check a user's object for `run --bpf-object`, and plan its scenario.
pub(crate) fn plan_bpf_object(b: &BpfObjectArgs, path: &std::path::Path) -> Result<crate::bpf_object::Plan> {
    use crate::bpf_object;
    let obj = bpf_object::open(path).exit_code(exit::BAD_INPUT)?;
    let req = bpf_object::Request {
        program: b.program.clone(),
        attach: b.attach.clone(),
        workload: b.workload.clone(),
        expect_runs: b.expect_runs,
    };
    let plan = bpf_object::plan(&obj, &req).exit_code(exit::BAD_INPUT)?;
    eprintln!(
        "kmatrix: {}: program {} at {} in the guest{}",
        path.display(),
        plan.program,
        plan.file.path,
        plan.params.get("expect_runs").map(|n| format!(", expecting {n} runs")).unwrap_or_default()
    );
    Ok(plan)
}

/// The closing line of a run stopped by a signal; the exit code a shell would give it.
fn interrupted(
    signal: &str,
    done: &std::sync::atomic::AtomicUsize,
    results: &std::path::Path,
    progress: &render::progress::RunProgress,
) -> i32 {
    progress.finish();
    eprintln!(
        "kmatrix: run interrupted by {signal}: {} results kept in {}",
        done.load(std::sync::atomic::Ordering::Relaxed),
        results.display()
    );
    if signal == "SIGINT" {
        130
    } else {
        143
    }
}
