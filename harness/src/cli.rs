//! The `kmatrix` command line: argument parsing and the glue from each subcommand to the library.
//! Rendering lives in `report/`, work in the library modules; this file only wires them.

use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use crate::guest::GuestOptions;
use crate::image;
use crate::kernel::{self, FetchOptions, KernelSpec, PreparedKernel};
use crate::report;
use crate::session::Session;
use crate::vm::AccelChoice;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "kmatrix",
    version,
    about = "Boot real kernels under QEMU and check every tracing path against known workloads"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot one kernel and print the agent's capability record.
    Boot(BootArgs),
    /// Measure things (boot time, ...).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Kernels: list, fetch, inspect.
    #[command(subcommand)]
    Kernels(KernelsCommand),
    /// Run scenarios across kernels (default: the whole catalogue on the default matrix).
    Run(RunArgs),
    /// The scenario catalogue.
    #[command(subcommand)]
    Scenarios(ScenariosCommand),
    /// Render, diff or merge result files (a run directory or its results.jsonl).
    Report(ReportArgs),
    /// CI integration.
    #[command(subcommand)]
    Ci(CiCommand),
    /// Run a host program inside guests (usable as a cargo runner); exits with its status.
    Exec(ExecArgs),
    /// A BPF object's CO-RE relocations against each kernel's BTF, without booting; exit 1 if a
    /// program would not relocate on some kernel.
    CoreCheck(CoreCheckArgs),
}

#[derive(Debug, Args)]
pub struct CoreCheckArgs {
    /// The BPF object (clang -target bpf -g: CO-RE needs its BTF).
    pub object: PathBuf,
    /// Kernels: `all` (every kernel of kernels/matrix.toml) or comma-separated ids or specs.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub kernels: Vec<String>,
    /// Debian mirror for kernels not in the cache yet.
    #[arg(long, env = "KMATRIX_MIRROR")]
    pub mirror: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
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
    /// Where to attach it: kprobe:SYM, kretprobe:SYM, tracepoint:CAT/NAME, raw_tracepoint:NAME,
    /// tp_btf:NAME, fentry:FN, fexit:FN, uprobe:PATH:SYMBOL, perf_event:cpu-clock. Without it
    /// the program is only loaded (verified).
    #[arg(long, requires = "bpf_object", value_name = "KIND:TARGET")]
    pub attach: Option<String>,
    /// What runs while it is attached: openat-loop:N or hello:N.
    #[arg(long, requires = "bpf_object")]
    pub workload: Option<String>,
    /// How many times the program must run during the workload, counted by the kernel's BPF
    /// statistics (default: the workload's N, exact for a hook on the workload's own call).
    #[arg(long, requires = "bpf_object")]
    pub expect_runs: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Kernels to run on, comma-separated (default: --kernel).
    #[arg(long, value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// Seconds the program may run.
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub guest: GuestArgs,
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    pub argv: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Print the GitHub Actions workflow for the matrix (one job per kernel, then a merge).
    Github,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub cmd: Option<ReportCommand>,
    /// Run directory or results.jsonl to render.
    pub run: Option<PathBuf>,
    /// table, json, junit or html.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "junit", "html"])]
    pub format: String,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Cells that changed between two runs.
    Diff {
        before: PathBuf,
        after: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Join result files (e.g. CI shards) into one results.jsonl.
    Merge {
        inputs: Vec<PathBuf>,
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScenariosCommand {
    /// List every scenario with its `since` and requirements.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Kernels (comma-separated ids or specs); default: every kernel of kernels/matrix.toml.
    #[arg(long, value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// Scenario globs, comma-separated (`kprobe.*,ftrace.function.*`); default: all.
    #[arg(long, short = 's', default_value = "*")]
    pub scenarios: String,
    /// Kernels booted at once (default: the number of host cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Scenario parameter for every scenario, `key=value` (repeatable), e.g. `count=1000`.
    #[arg(long = "param", short = 'p')]
    pub params: Vec<String>,
    /// Seconds one scenario may take before it is an error.
    #[arg(long, default_value_t = crate::session::SCENARIO_TIMEOUT.as_secs_f64())]
    pub scenario_timeout: f64,
    /// Seconds one kernel's whole run may take.
    #[arg(long, default_value_t = crate::session::VM_TIMEOUT.as_secs_f64())]
    pub vm_timeout: f64,
    /// Expectations file (default: kernels/expectations.toml).
    #[arg(long)]
    pub expectations: Option<PathBuf>,
    /// Print results as JSON lines on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub bpf: Box<BpfObjectArgs>,
    #[command(flatten)]
    pub guest: GuestArgs,
}

/// Options shared by everything that boots a guest.
#[derive(Debug, Args, Clone)]
pub struct GuestArgs {
    /// Kernel: a matrix id (debian-6.1), `debian:<package-version>`, or a path to a bzImage/vmlinux.
    #[arg(long, short = 'k', default_value = "debian-6.1")]
    pub kernel: String,
    /// Modules directory for a local kernel (lib/modules/<release>).
    #[arg(long)]
    pub modules: Option<PathBuf>,
    /// Config file for a local kernel.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Accelerator: auto (KVM when it works), kvm, tcg.
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    /// Seconds from QEMU start to the agent's Hello before the boot counts as failed.
    #[arg(long, default_value_t = crate::session::BOOT_TIMEOUT.as_secs_f64())]
    pub boot_timeout: f64,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = crate::session::MEMORY_MB)]
    pub memory: u32,
    /// Debian mirror (default: KMATRIX_MIRROR, else the host's apt configuration).
    #[arg(long, env = "KMATRIX_MIRROR")]
    pub mirror: Option<String>,
    /// Where console logs go.
    #[arg(long, default_value = "target/kmatrix")]
    pub out: PathBuf,
    /// Extra kernel command line words (repeatable).
    #[arg(long)]
    pub append: Vec<String>,
    /// Guest channel: virtio (virtio-serial, falls back to serial when the kernel lacks the
    /// driver) or serial (the 8250 UART, no modules to load).
    #[arg(long, default_value = "virtio", value_parser = ["virtio", "serial"])]
    pub channel: String,
    /// Start guests from a snapshot taken at the agent's Hello (taken on first use): on or off.
    /// Default: on for run and exec, off for boot and bench boot (they measure cold boots).
    #[arg(long, value_parser = ["on", "off"])]
    pub snapshot: Option<String>,
}

impl GuestArgs {
    /// Whether to use snapshots, given this command's default.
    pub fn snapshots(&self, default: bool) -> bool {
        match self.snapshot.as_deref() {
            Some("on") => true,
            Some("off") => false,
            _ => default && crate::vm::snapshot::enabled(),
        }
    }
}

#[derive(Debug, Args)]
pub struct BootArgs {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Print the record as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Run the whole default matrix and report wall time split into boot, scenarios and idle.
    Matrix(RunArgs),
    /// Boot a kernel N times; min / median / max seconds from QEMU start to the agent's Hello.
    Boot {
        #[command(flatten)]
        guest: GuestArgs,
        #[arg(long, default_value_t = 5)]
        runs: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KernelsCommand {
    /// Fetch (download, verify, extract) kernels into the cache.
    Fetch {
        /// Kernel ids or specs; default: the whole matrix.
        ids: Vec<String>,
        #[arg(long, env = "KMATRIX_MIRROR")]
        mirror: Option<String>,
    },
    /// The kernels of kernels/matrix.toml with what the lock pins.
    List {
        #[arg(long)]
        json: bool,
    },
    /// What a kernel can do, read from its package before booting it.
    Info {
        id: String,
        #[arg(long, env = "KMATRIX_MIRROR")]
        mirror: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every build of a kernel line the mirror has (for bisecting): `--line 6.12`.
    Available {
        #[arg(long)]
        line: String,
        #[arg(long, env = "KMATRIX_MIRROR")]
        mirror: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Re-resolve every matrix kernel on the mirror and rewrite kernels/kernels.lock.
    Update {
        #[arg(long, env = "KMATRIX_MIRROR")]
        mirror: Option<String>,
    },
    /// Remove cached kernels the lock no longer names.
    Gc,
}

pub async fn main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Boot(a) => boot(a).await,
        Command::Bench(BenchCommand::Boot { guest, runs, json }) => bench_boot(guest, runs, json).await,
        Command::Bench(BenchCommand::Matrix(a)) => bench_matrix(a).await,
        Command::Kernels(KernelsCommand::Fetch { ids, mirror }) => kernels_fetch(ids, mirror).await,
        Command::Kernels(k) => kernels_other(k).await,
        Command::Run(a) => run(a).await,
        Command::Scenarios(ScenariosCommand::List { json }) => scenarios_list(json),
        Command::Report(a) => report_cmd(a),
        Command::Exec(a) => exec_cmd(a).await,
        Command::CoreCheck(a) => core_check_cmd(a).await,
        Command::Ci(CiCommand::Github) => {
            let ids = kernel::matrix_ids().context("cannot read the kernel matrix").exit_code(exit::BAD_INPUT)?;
            print!("{}", report::github::workflow(&ids));
            Ok(exit::OK)
        }
    }
}

/// Everything a boot needs, prepared once.
pub struct Prepared {
    pub session: Session,
    pub kernel: PreparedKernel,
    pub image: image::Image,
}

pub async fn prepare(args: &GuestArgs) -> Result<Prepared> {
    prepare_with(args, Vec::new()).await
}

/// Open a session for `args.accel` and say which accelerator it uses and why.
async fn open_session(choice: AccelChoice) -> Result<Session> {
    let session = Session::open(choice).await.exit_code(exit::INFRA)?;
    eprintln!("kmatrix: {}", session.accel.describe());
    Ok(session)
}

/// [`prepare`] with extra files in the image.
pub async fn prepare_with(args: &GuestArgs, extra: Vec<image::ExtraFile>) -> Result<Prepared> {
    let session = open_session(args.accel).await?;
    let opts = FetchOptions {
        mirror: args.mirror.clone(),
        modules: args.modules.clone(),
        config: args.config.clone(),
        ..Default::default()
    };
    let io = image::ImageOptions { virtio_channel: args.channel == "virtio" };
    let (kernel, image) = session.prepare(&args.kernel, &opts, io, &extra).await.map_err(tag_session)?;
    Ok(Prepared { session, kernel, image })
}

impl Prepared {
    pub fn guest_options(&self, args: &GuestArgs, tag: &str) -> Result<GuestOptions> {
        std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let log = args.out.join(format!("{}-{tag}-{stamp}.console.log", sanitize(&self.kernel.id)));
        let mut o = self.session.guest_options(log);
        o.memory_mb = args.memory;
        o.append = args.append.clone();
        o.virtio = args.channel == "virtio";
        // Callers that want snapshots set `o.snapshots`; a cold boot is the default here.
        if !(args.boot_timeout.is_finite() && args.boot_timeout > 0.0) {
            return Err(anyhow::anyhow!(
                "--boot-timeout must be a positive number of seconds, got {}",
                args.boot_timeout
            ))
            .exit_code(exit::BAD_INPUT);
        }
        o.boot_timeout = Duration::from_secs_f64(args.boot_timeout);
        Ok(o)
    }
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

async fn boot(a: BootArgs) -> Result<i32> {
    let p = prepare(&a.guest).await?;
    let mut opts = p.guest_options(&a.guest, "boot")?;
    if a.guest.snapshots(false) {
        opts.snapshots = Some(p.session.cache.clone());
    }
    let guest = p
        .session
        .start_guest(&p.kernel, &p.image, &opts)
        .await
        .with_context(|| format!("booting {} failed (console log: {})", p.kernel.id, opts.console_log.display()))
        .exit_code(exit::INFRA)?;
    let rec = report::BootRecord::new(&p.kernel, &p.session.accel.verdict(), &guest, &p.image);
    guest.shutdown().await.context("the guest did not power off cleanly").exit_code(exit::INFRA)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rec)?);
    } else {
        print!("{}", report::render_boot(&rec));
    }
    Ok(exit::OK)
}

async fn bench_boot(guest: GuestArgs, runs: u32, json: bool) -> Result<i32> {
    if runs == 0 {
        return Err(anyhow::anyhow!("--runs must be at least 1")).exit_code(exit::BAD_INPUT);
    }
    let p = prepare(&guest).await?;
    let mut secs = Vec::new();
    for i in 0..runs {
        let mut opts = p.guest_options(&guest, &format!("bench{i}"))?;
        if guest.snapshots(false) {
            opts.snapshots = Some(p.session.cache.clone());
        }
        let g = p
            .session
            .start_guest(&p.kernel, &p.image, &opts)
            .await
            .with_context(|| format!("boot {} of {} failed (console log: {})", i + 1, runs, opts.console_log.display()))
            .exit_code(exit::INFRA)?;
        let s = g.hello_after.as_secs_f64();
        eprintln!(
            "run {}/{}: Hello after {:.3} s ({}, {}, channel {})",
            i + 1,
            runs,
            s,
            g.boot_path,
            g.accel.as_str(),
            g.channel()
        );
        secs.push(s);
        g.shutdown().await.context("the guest did not power off cleanly").exit_code(exit::INFRA)?;
    }
    let stats = report::Stats::of(&secs);
    if json {
        println!(
            "{}",
            serde_json::json!({"kernel": p.kernel.id, "release": p.kernel.release, "accel": p.session.accel.current(), "runs": secs, "min": stats.min, "median": stats.median, "max": stats.max})
        );
    } else {
        println!(
            "boot to Hello, {} ({}), {}, {} runs: min {:.3} s  median {:.3} s  max {:.3} s",
            p.kernel.id,
            p.kernel.release,
            p.session.accel.current().as_str(),
            runs,
            stats.min,
            stats.median,
            stats.max
        );
    }
    Ok(exit::OK)
}

async fn kernels_fetch(ids: Vec<String>, mirror: Option<String>) -> Result<i32> {
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let ids = if ids.is_empty() {
        kernel::matrix_ids().context("cannot read the kernel matrix").exit_code(exit::BAD_INPUT)?
    } else {
        ids
    };
    for id in ids {
        let spec: KernelSpec = id.parse().with_context(|| format!("bad kernel {id:?}")).exit_code(exit::BAD_INPUT)?;
        let opts = FetchOptions { mirror: mirror.clone(), ..Default::default() };
        let c = cache.clone();
        let k =
            tokio::task::spawn_blocking(move || kernel::prepare(&spec, &c, &opts)).await.context("fetch task died")?;
        let k = k.map_err(tag_kernel).with_context(|| format!("cannot fetch {id}"))?;
        println!("{}: {} ({})", k.id, k.release, k.package_version.as_deref().unwrap_or("local"));
    }
    Ok(exit::OK)
}

fn scenarios_list(json: bool) -> Result<i32> {
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let cat = crate::catalogue::load(&cache).exit_code(exit::INFRA)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&cat)?);
        return Ok(exit::OK);
    }
    let w = cat.iter().map(|s| s.id.len()).max().unwrap_or(10);
    println!("{:w$}  {:6}  summary / requires", "scenario", "since");
    for s in &cat {
        println!("{:w$}  {:6}  {}", s.id, s.since, s.summary);
        if !s.requires.is_empty() {
            println!("{:w$}  {:6}    requires: {}", "", "", s.requires.join("; "));
        }
    }
    println!("{} scenarios", cat.len());
    Ok(exit::OK)
}

fn parse_params(raw: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    let mut m = std::collections::BTreeMap::new();
    for p in raw {
        let Some((k, v)) = p.split_once('=') else {
            return Err(anyhow::anyhow!("--param {p:?} is not key=value")).exit_code(exit::BAD_INPUT);
        };
        m.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(m)
}

fn load_expectations(path: Option<&std::path::Path>) -> Result<crate::run::verdict::Expectations> {
    use crate::run::verdict::Expectations;
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => match kernel::KernelsDir::locate(None).dir {
            Some(d) => d.join("expectations.toml"),
            None => return Ok(Expectations::default()),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(t) => Expectations::parse(&t, &path.display().to_string()).exit_code(exit::BAD_INPUT),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Expectations::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())).exit_code(exit::BAD_INPUT),
    }
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

async fn run(a: RunArgs) -> Result<i32> {
    run_inner(a).await.map(|(code, _)| code)
}

async fn bench_matrix(a: RunArgs) -> Result<i32> {
    let (code, o) = run_inner(a).await?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let boot: f64 = o.kernels.iter().map(|k| k.boot_s).sum();
    let scen: f64 = o.kernels.iter().map(|k| k.scenarios_s).sum();
    let idle = (o.wall_s * cores - boot - scen).max(0.0);
    println!(
        "matrix: {} results on {} kernels in {:.1} s wall; summed over VMs: boot {:.1} s, scenarios {:.1} s, idle core-time {:.1} s ({} cores)",
        o.results.len(),
        o.kernels.len(),
        o.wall_s,
        boot,
        scen,
        idle,
        cores
    );
    for k in &o.kernels {
        println!(
            "  {:14} wall {:6.1} s  boot {:5.1} s ({} boots)  scenarios {:6.1} s",
            k.kernel, k.wall_s, k.boot_s, k.boots, k.scenarios_s
        );
    }
    Ok(code)
}

async fn run_inner(a: RunArgs) -> Result<(i32, crate::run::matrix::Outcome)> {
    use crate::run::matrix::{self, MatrixRun, Progress};
    use crate::run::scheduler::SchedulerConfig;
    use std::io::IsTerminal;
    // A user's object is checked before anything else: a typo should not cost a boot per kernel.
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
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let cat = crate::catalogue::load(&cache).context("cannot list the agent's catalogue").exit_code(exit::INFRA)?;
    let scenarios =
        select_scenarios(&cat, user.as_ref().map_or(a.scenarios.as_str(), |_| crate::bpf_object::SCENARIO))?;
    let kernels = if a.kernels.is_empty() {
        kernel::matrix_ids().context("cannot read the kernel matrix").exit_code(exit::BAD_INPUT)?
    } else {
        a.kernels.clone()
    };
    for k in &kernels {
        k.parse::<KernelSpec>().with_context(|| format!("bad kernel {k:?}")).exit_code(exit::BAD_INPUT)?;
        if let Ok(KernelSpec::Matrix(id)) = k.parse::<KernelSpec>() {
            let known = kernel::matrix_ids().unwrap_or_default();
            if !known.contains(&id) {
                return Err(anyhow::anyhow!("unknown kernel id {id:?}; known ids: {}", known.join(", ")))
                    .exit_code(exit::BAD_INPUT);
            }
        }
    }
    let mut params = parse_params(&a.params)?;
    if let Some(plan) = &user {
        params.extend(plan.params.clone());
    }
    let expectations = load_expectations(a.expectations.as_deref())?;
    for (what, v) in [
        ("--scenario-timeout", a.scenario_timeout),
        ("--vm-timeout", a.vm_timeout),
        ("--boot-timeout", a.guest.boot_timeout),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(anyhow::anyhow!("{what} must be a positive number of seconds, got {v}"))
                .exit_code(exit::BAD_INPUT);
        }
    }
    let session = Arc::new(open_session(a.guest.accel).await?);
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let run_dir = a.guest.out.join(format!("run-{stamp}"));
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))
        .exit_code(exit::INFRA)?;
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    let sched = SchedulerConfig {
        session: session.clone(),
        fetch: FetchOptions {
            mirror: a.guest.mirror.clone(),
            modules: a.guest.modules.clone(),
            config: a.guest.config.clone(),
            ..Default::default()
        },
        memory_mb: a.guest.memory,
        boot_timeout: Duration::from_secs_f64(a.guest.boot_timeout),
        scenario_timeout: Duration::from_secs_f64(a.scenario_timeout),
        vm_timeout: Duration::from_secs_f64(a.vm_timeout),
        jobs,
        image: image::ImageOptions { virtio_channel: a.guest.channel == "virtio" },
        log_dir: run_dir.clone(),
        snapshots: a.guest.snapshots(true),
        extra: user.iter().map(|p| p.file.clone()).collect(),
    };
    let results_path = run_dir.join("results.jsonl");
    eprintln!(
        "kmatrix: {} scenarios × {} kernels, {} at once; results stream to {}",
        scenarios.len(),
        kernels.len(),
        jobs,
        results_path.display()
    );
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let json = a.json;
    let mr = MatrixRun {
        sched,
        kernels: kernels.clone(),
        scenarios,
        params,
        expectations,
        results_path: results_path.clone(),
    };
    let progress = RunProgress::new(&kernels, mr.scenarios.len(), color && !json);
    let outcome = matrix::execute(mr, |p| {
        if let Progress::Result(r, _) = &p {
            if json {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            }
        }
        progress.event(&p, color);
    })
    .await
    .exit_code(exit::INFRA)?;
    progress.finish();
    let table = report::table::render(&outcome.results, &kernels, color && !json);
    let summary = report::table::Summary::of(&outcome.results);
    let summary_path = run_dir.join("summary.json");
    let _ = std::fs::write(&summary_path, serde_json::to_vec_pretty(&outcome).unwrap_or_default());
    let mut text = format!("\n{table}\n");
    if user.is_some() {
        text.push_str(&crate::bpf_object::render_steps(&outcome.results));
    }
    for s in &outcome.stale {
        text.push_str(&format!("stale expectation: {s}\n"));
    }
    text.push_str(&format!("{} in {:.1} s; results: {}\n", summary.line(), outcome.wall_s, results_path.display()));
    if json {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    let code = if summary.error > 0 {
        exit::INFRA
    } else if summary.fail > 0 {
        exit::TEST_FAILED
    } else {
        exit::OK
    };
    Ok((code, outcome))
}

async fn kernels_other(cmd: KernelsCommand) -> Result<i32> {
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let blocking = |f: Box<dyn FnOnce() -> Result<i32> + Send>| async move {
        tokio::task::spawn_blocking(f).await.context("kernel task died")?
    };
    match cmd {
        KernelsCommand::Fetch { .. } => unreachable!("handled by kernels_fetch"),
        KernelsCommand::List { json } => {
            blocking(Box::new(move || {
                let dir = kernel::KernelsDir::locate(None);
                let matrix = dir.matrix().map_err(tag_kernel)?;
                let lock = dir.lock().ok();
                let mut rows = Vec::new();
                for k in &matrix.kernels {
                    let pinned = lock.as_ref().and_then(|l| l.kernels.get(&k.id));
                    rows.push(serde_json::json!({
                        "id": k.id, "suite": k.suite, "line": k.line,
                        "pinned": pinned.map(|p| p.version.clone()),
                        "release": pinned.map(|p| p.release.clone()),
                    }));
                }
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    for r in &rows {
                        println!(
                            "{:14} {:18} line {:6} {}",
                            r["id"].as_str().unwrap_or(""),
                            r["suite"].as_str().unwrap_or(""),
                            r["line"].as_str().unwrap_or(""),
                            match (r["pinned"].as_str(), r["release"].as_str()) {
                                (Some(v), Some(rel)) => format!("pinned {v} ({rel})"),
                                _ => "not pinned: run `kmatrix kernels update`".into(),
                            }
                        );
                    }
                }
                Ok(exit::OK)
            }))
            .await
        }
        KernelsCommand::Info { id, mirror, json } => {
            blocking(Box::new(move || {
                let spec: KernelSpec =
                    id.parse().with_context(|| format!("bad kernel {id:?}")).exit_code(exit::BAD_INPUT)?;
                let opts = FetchOptions { mirror, ..Default::default() };
                let k = kernel::prepare(&spec, &cache, &opts).map_err(tag_kernel)?;
                let info = kernel::info(&k).map_err(tag_kernel)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&info)?);
                } else {
                    println!(
                        "{} ({}{}), {:?}",
                        info.id,
                        info.release,
                        info.package_version.as_ref().map(|v| format!(", package {v}")).unwrap_or_default(),
                        info.pinning
                    );
                    println!(
                        "PVH entry {}   BTF file {}   CONFIG_DEBUG_INFO_BTF {}",
                        info.pvh,
                        info.btf_file,
                        info.btf_config.map(|b| b.to_string()).unwrap_or_else(|| "unknown".into())
                    );
                    for (k, v) in &info.options {
                        println!("  CONFIG_{k:28} {}", v.as_deref().unwrap_or("is not set"));
                    }
                }
                Ok(exit::OK)
            }))
            .await
        }
        KernelsCommand::Available { line, mirror, json } => {
            blocking(Box::new(move || {
                let opts = FetchOptions { mirror, ..Default::default() };
                let v = kernel::available(&line, &cache, &opts).map_err(tag_kernel)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    for a in &v {
                        println!("{:22} {:36} {:18} --kernel {}", a.version, a.package, a.suite, a.spec);
                    }
                    println!("{} builds of {line}", v.len());
                }
                Ok(exit::OK)
            }))
            .await
        }
        KernelsCommand::Update { mirror } => {
            blocking(Box::new(move || {
                let opts = FetchOptions { mirror, ..Default::default() };
                let lock = kernel::update_lock(&cache, &opts).map_err(tag_kernel)?;
                for (id, k) in &lock.kernels {
                    println!("{:14} {} ({})", id, k.version, k.release);
                }
                Ok(exit::OK)
            }))
            .await
        }
        KernelsCommand::Gc => {
            blocking(Box::new(move || {
                let lock = kernel::KernelsDir::locate(None).lock().map_err(tag_kernel)?;
                let removed = kernel::gc(&cache, &lock).map_err(tag_kernel)?;
                for r in &removed {
                    println!("removed {}", r.display());
                }
                println!("{} entries removed", removed.len());
                Ok(exit::OK)
            }))
            .await
        }
    }
}

/// A session error with its exit code: bad input or infrastructure.
fn tag_session(e: crate::session::SessionError) -> anyhow::Error {
    let code = if e.is_bad_input() { exit::BAD_INPUT } else { exit::INFRA };
    let r: Result<(), _> = Err(e);
    r.exit_code(code).unwrap_err()
}

/// A kernel provider error with its exit code: bad input (unknown id, not a kernel) or
/// infrastructure (network, disk).
fn tag_kernel(e: kernel::KernelError) -> anyhow::Error {
    let code = if e.is_bad_input() { exit::BAD_INPUT } else { exit::INFRA };
    let r: Result<(), _> = Err(e);
    r.exit_code(code).unwrap_err()
}

fn results_file(p: &std::path::Path) -> PathBuf {
    if p.is_dir() {
        p.join("results.jsonl")
    } else {
        p.to_path_buf()
    }
}

fn read_results(p: &std::path::Path) -> Result<Vec<kmatrix_proto::ScenarioResult>> {
    crate::run::results::read(&results_file(p)).exit_code(exit::BAD_INPUT)
}

fn kernels_in(results: &[kmatrix_proto::ScenarioResult]) -> Vec<String> {
    let mut ks: Vec<String> = Vec::new();
    for r in results {
        if !ks.contains(&r.kernel) {
            ks.push(r.kernel.clone());
        }
    }
    ks
}

fn report_cmd(a: ReportArgs) -> Result<i32> {
    match a.cmd {
        Some(ReportCommand::Diff { before, after, json }) => {
            let d = report::diff::diff(&read_results(&before)?, &read_results(&after)?);
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print!("{}", report::diff::render(&d));
            }
            Ok(exit::OK)
        }
        Some(ReportCommand::Merge { inputs, output }) => {
            if inputs.is_empty() {
                return Err(anyhow::anyhow!("report merge needs at least one input")).exit_code(exit::BAD_INPUT);
            }
            let mut all = Vec::new();
            for i in &inputs {
                all.extend(read_results(i)?);
            }
            let mut w = crate::run::results::ResultsWriter::open(&output).exit_code(exit::INFRA)?;
            for r in &all {
                w.append(r).exit_code(exit::INFRA)?;
            }
            eprintln!("{} results from {} files into {}", all.len(), inputs.len(), output.display());
            Ok(exit::OK)
        }
        None => {
            let Some(run) = a.run else {
                return Err(anyhow::anyhow!("report needs a run directory or results.jsonl"))
                    .exit_code(exit::BAD_INPUT);
            };
            let results = read_results(&run)?;
            let kernels = kernels_in(&results);
            let text = match a.format.as_str() {
                "json" => {
                    let s = report::table::Summary::of(&results);
                    serde_json::to_string_pretty(&serde_json::json!({
                        "summary": {"pass": s.pass, "fail": s.fail, "unsupported": s.unsupported, "xfail": s.xfail, "error": s.error},
                        "kernels": kernels,
                        "results": results,
                    }))? + "\n"
                }
                "junit" => report::junit::render(&results),
                "html" => report::html::render(&results, &kernels, &format!("kmatrix — {}", run.display())),
                _ => format!(
                    "{}\n{}\n",
                    report::table::render(&results, &kernels, false),
                    report::table::Summary::of(&results).line()
                ),
            };
            match a.output {
                Some(o) => crate::cache::write_atomic(&o, text.as_bytes())
                    .with_context(|| format!("cannot write {}", o.display()))
                    .exit_code(exit::INFRA)?,
                None => print!("{text}"),
            }
            Ok(exit::OK)
        }
    }
}

async fn exec_cmd(a: ExecArgs) -> Result<i32> {
    let program = PathBuf::from(&a.argv[0]);
    let (guest_path, files) = crate::exec::gather(&program).exit_code(exit::BAD_INPUT)?;
    if !(a.timeout.is_finite() && a.timeout > 0.0) {
        return Err(anyhow::anyhow!("--timeout must be a positive number of seconds")).exit_code(exit::BAD_INPUT);
    }
    let kernels = if a.kernels.is_empty() { vec![a.guest.kernel.clone()] } else { a.kernels.clone() };
    let cwd = std::env::current_dir().ok().map(|d| d.display().to_string());
    let mut worst = exit::OK;
    for k in &kernels {
        let mut ga = a.guest.clone();
        ga.kernel = k.clone();
        let p = prepare_with(&ga, files.clone()).await?;
        let mut opts = p.guest_options(&ga, "exec")?;
        if ga.snapshots(true) {
            opts.snapshots = Some(p.session.cache.clone());
        }
        let mut g = p
            .session
            .start_guest(&p.kernel, &p.image, &opts)
            .await
            .with_context(|| format!("booting {k} failed (console log: {})", opts.console_log.display()))
            .exit_code(exit::INFRA)?;
        let mut argv = vec![guest_path.clone()];
        argv.extend(a.argv[1..].iter().cloned());
        let req = kmatrix_proto::ExecRequest {
            argv,
            timeout_ms: (a.timeout * 1000.0) as u64,
            env: std::env::vars().filter(|(k, _)| k.starts_with("RUST_") || k == "KMATRIX_GUEST").collect(),
            cwd: cwd.clone().filter(|_| false),
        };
        let out = g.exec(req, Duration::from_secs_f64(a.timeout + 10.0)).await.exit_code(exit::INFRA)?;
        let _ = g.shutdown().await;
        if kernels.len() > 1 {
            eprintln!(
                "== {k} ({}): exit {:?} signal {:?} in {} ms",
                p.kernel.release, out.exit_code, out.signal, out.wall_ms
            );
        }
        print!("{}", out.stdout);
        eprint!("{}", out.stderr);
        let code = match (out.exit_code, out.signal) {
            (Some(c), _) => c,
            (None, Some(sig)) => 128 + sig,
            _ => exit::INFRA,
        };
        if code != 0 {
            worst = code;
        }
    }
    Ok(worst)
}

/// Read and check a user's object for `run --bpf-object`, and plan its scenario.
fn plan_bpf_object(b: &BpfObjectArgs, path: &std::path::Path) -> Result<crate::bpf_object::Plan> {
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

async fn core_check_cmd(a: CoreCheckArgs) -> Result<i32> {
    use crate::{bpf_object, core_check};
    let obj = bpf_object::open(&a.object).exit_code(exit::BAD_INPUT)?;
    let info = core_check::object_info(&obj).exit_code(exit::BAD_INPUT)?;
    let kernels = if a.kernels.is_empty() || a.kernels.iter().any(|k| k == "all") {
        kernel::matrix_ids().context("cannot read the kernel matrix").exit_code(exit::BAD_INPUT)?
    } else {
        a.kernels.clone()
    };
    let mut specs = Vec::new();
    for k in &kernels {
        let spec: KernelSpec = k.parse().with_context(|| format!("bad kernel {k:?}")).exit_code(exit::BAD_INPUT)?;
        specs.push(spec);
    }
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let opts = FetchOptions { mirror: a.mirror.clone(), ..Default::default() };
    let report = tokio::task::spawn_blocking(move || -> Result<core_check::Report> {
        // Kernels come from the cache (fetched on first use); nothing boots.
        let mut prepared = Vec::new();
        for (id, spec) in kernels.iter().zip(&specs) {
            let k = kernel::prepare(spec, &cache, &opts)
                .map_err(tag_kernel)
                .with_context(|| format!("cannot prepare kernel {id}"))?;
            prepared.push(k);
        }
        let reports = std::thread::scope(|s| {
            let handles: Vec<_> = prepared
                .iter()
                .map(|k| {
                    let (obj, info) = (&obj, &info);
                    s.spawn(move || core_check::check_kernel(obj, info, &k.id, &k.release, k.btf.as_deref()))
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect::<Result<Vec<_>, _>>()
        })
        .map_err(|_| anyhow::anyhow!("a core-check thread panicked"))?;
        Ok(core_check::report(&obj, &info, reports))
    })
    .await
    .context("core-check task died")??;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", core_check::render(&report));
    }
    Ok(if report.ok() { exit::OK } else { exit::TEST_FAILED })
}

/// What a person sees while a run goes: on a terminal, a progress bar per kernel with result
/// lines printed above the bars; elsewhere (CI logs, pipes), one line per event.
struct RunProgress {
    bars: Option<(indicatif::MultiProgress, std::collections::BTreeMap<String, indicatif::ProgressBar>)>,
}

impl RunProgress {
    fn new(kernels: &[String], scenarios: usize, tty: bool) -> Self {
        if !tty {
            return RunProgress { bars: None };
        }
        let mp = indicatif::MultiProgress::new();
        let style =
            indicatif::ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos:>3}/{len:3} {elapsed:>4} {msg}")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let w = kernels.iter().map(|k| k.len()).max().unwrap_or(8);
        let bars = kernels
            .iter()
            .map(|k| {
                let b = mp.add(indicatif::ProgressBar::new(scenarios as u64));
                b.set_style(style.clone());
                b.set_prefix(format!("{k:>w$}"));
                b.set_message("waiting");
                (k.clone(), b)
            })
            .collect();
        RunProgress { bars: Some((mp, bars)) }
    }

    fn event(&self, p: &crate::run::matrix::Progress, color: bool) {
        use crate::run::matrix::Progress;
        let line = match p {
            Progress::Preparing(k) => {
                self.msg(k, "preparing kernel and image".into());
                format!("{k}: preparing kernel and image")
            }
            Progress::Booted { kernel, release, hello_s } => {
                self.msg(kernel, format!("{release}, ready after {hello_s:.2} s"));
                format!("{kernel}: booted {release}, Hello after {hello_s:.2} s")
            }
            Progress::Result(r, _) => {
                if let Some((_, bars)) = &self.bars {
                    if let Some(b) = bars.get(&r.kernel) {
                        b.inc(1);
                        b.set_message(r.scenario.clone());
                    }
                }
                report::table::result_line(r, color)
            }
            Progress::Note { kernel, text } => format!("{kernel}: note: {text}"),
            Progress::KernelDone(t) => {
                if let Some((_, bars)) = &self.bars {
                    if let Some(b) = bars.get(&t.kernel) {
                        b.finish_with_message(format!("done in {:.1} s", t.wall_s));
                    }
                }
                format!(
                    "{}: done in {:.1} s ({} boot{}, {:.1} s booting, {:.1} s in scenarios)",
                    t.kernel,
                    t.wall_s,
                    t.boots,
                    if t.boots == 1 { "" } else { "s" },
                    t.boot_s,
                    t.scenarios_s
                )
            }
        };
        match &self.bars {
            Some((mp, _)) => {
                let _ = mp.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn msg(&self, kernel: &str, m: String) {
        if let Some((_, bars)) = &self.bars {
            if let Some(b) = bars.get(kernel) {
                b.set_message(m);
            }
        }
    }

    fn finish(&self) {
        if let Some((mp, _)) = &self.bars {
            let _ = mp.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_accepts_kernel_lists_and_params() {
        let cli = Cli::try_parse_from([
            "kmatrix",
            "run",
            "--kernels",
            "debian-6.1,debian-6.12",
            "-s",
            "kprobe.*",
            "-p",
            "count=10",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else { panic!("not run") };
        assert_eq!(a.kernels, ["debian-6.1", "debian-6.12"]);
        assert_eq!(parse_params(&a.params).unwrap()["count"], "10");
        assert!(parse_params(&["count".into()]).is_err());
    }
}
