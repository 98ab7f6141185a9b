//! The `kmatrix` command line: the argument types and one file per command, each the glue from
//! its arguments to the library (`Session`, `run`, `report`, ...). What every guest-booting
//! command shares — `GuestArgs` and preparing a kernel in a session — lives here. Rendering lives
//! in `report/`, the work in the library modules.

#![warn(missing_docs)]

mod bench;
mod bench_exec;
mod bisect;
mod boot;
mod btf;
mod core_check;
mod exec;
mod exec_output;
mod gc;
mod kernels;
pub mod machine;
pub(crate) mod report;
mod rerun;
mod run;
mod scenarios;
mod selftest;
mod shell;
mod trace;

pub use bench::BenchCommand;
pub use bisect::BisectArgs;
pub use boot::BootArgs;
pub use core_check::CoreCheckArgs;
pub use exec::ExecArgs;
pub use gc::GcArgs;
pub use kernels::KernelsCommand;
pub use machine::MachineArgs;
pub use report::{ReportArgs, ReportCommand};
pub use rerun::RerunArgs;
pub use run::{select_scenarios, BpfObjectArgs, RunArgs};
pub use scenarios::ScenariosCommand;
pub use selftest::{SelftestArgs, SelftestCommand};
pub use shell::ShellArgs;
pub use trace::TraceArgs;

use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use crate::guest::GuestOptions;
use crate::kernel::{self, FetchOptions};
use crate::report as render;
use crate::session::{Prepared, Session, SessionError};
use crate::settings::{Channel, GuestSettings, SnapshotMode};
use crate::vm::AccelChoice;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The `kmatrix` command line, parsed.
#[derive(Debug, Parser)]
#[command(
    name = "kmatrix",
    version,
    about = "Boot real kernels under QEMU and check every tracing path against known workloads"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every command of `kmatrix`.
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
    /// The first build of a kernel line where a scenario stops passing or a command stops
    /// exiting 0, with the changelog between the last good and the first bad build (Debian's or,
    /// with `--distro ubuntu`, Ubuntu's ABI builds).
    Bisect(BisectArgs),
    /// Where a cell's artifacts are (Chrome trace of its ftrace data, flame graph of its
    /// sampled stacks), made now from its result when the run did not write them.
    Trace(TraceArgs),
    /// Run cells of a results file again, exactly: the same kernel build, parameters and
    /// accelerator; `--shell` opens a shell on one cell's kept tracefs state.
    Rerun(RerunArgs),
    /// CI integration.
    #[command(subcommand)]
    Ci(CiCommand),
    /// Run a host program inside guests (usable as a cargo runner); exits with its status.
    Exec(ExecArgs),
    /// An interactive shell in a guest, over the shared host root; exits with the shell's status.
    Shell(ShellArgs),
    /// The kernel's own selftests, from each kernel's source package, as kmatrix results.
    #[command(subcommand)]
    Selftest(SelftestCommand),
    /// A BPF object's CO-RE relocations against each kernel's BTF, without booting; exit 1 if a
    /// program would not relocate on some kernel.
    CoreCheck(CoreCheckArgs),
    /// External BTF for kernels built without it (`--btf` of core-check and run).
    #[command(subcommand)]
    Btf(btf::BtfCommand),
    /// Keep the cache (kernels, images, snapshots) and the run directories within a size budget,
    /// least recently used first; never what a running kmatrix uses.
    Gc(GcArgs),
}

/// What `kmatrix ci` prints for a CI service.
#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Print the GitHub Actions workflow for the matrix (one job per kernel, then a merge).
    Github,
}

/// Options shared by everything that boots a guest.
#[derive(Debug, Args, Clone)]
pub struct GuestArgs {
    /// Kernel: a matrix id (debian-6.1), `debian:<package-version>`, `ubuntu:<abi>` (ubuntu:5.4.0-216), or a path to a bzImage/vmlinux.
    /// Default: debian-6.1 (`run` and `exec` take `--kernels` for several).
    #[arg(long, short = 'k')]
    pub kernel: Option<String>,
    /// Modules directory for a local kernel (`lib/modules/<release>`).
    #[arg(long)]
    pub modules: Option<PathBuf>,
    /// Config file for a local kernel.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Accelerator: auto (KVM when it works), kvm, tcg.
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    /// Seconds from QEMU start to the agent's Hello before the boot counts as failed.
    #[arg(long, default_value_t = crate::settings::BOOT_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    pub boot_timeout: f64,
    /// The guest machine's size: `--cpus`, `--memory`, `--disk`.
    #[command(flatten)]
    pub machine: MachineArgs,
    /// Where kernels come from: the mirror and whether an unsigned Release is accepted.
    #[command(flatten)]
    pub fetch: MirrorArgs,
    /// Where console logs go.
    #[arg(long, default_value = "target/kmatrix")]
    pub out: PathBuf,
    /// Extra kernel command line words (repeatable).
    #[arg(long)]
    pub append: Vec<String>,
    /// Guest channel: virtio (virtio-serial, falls back to serial when the kernel lacks the
    /// driver) or serial (the 8250 UART, no modules to load).
    #[arg(long, value_enum, default_value_t = Channel::Virtio)]
    pub channel: Channel,
    /// Start guests from a snapshot taken at the agent's Hello (taken on first use): on or off.
    /// Default: on for run and exec, off for boot and bench boot (they measure cold boots).
    #[arg(long, value_enum)]
    pub snapshot: Option<SnapshotMode>,
    /// How the host root reaches guests that share it (exec, shell, selftest, and run's tool
    /// scenarios and host-command workloads): auto (virtio-fs
    /// for cold boots, 9p when the guest starts from a snapshot, which QEMU cannot take with
    /// virtio-fs), virtiofs (an error without a usable virtiofsd), or 9p.
    #[arg(long, value_enum, default_value_t = crate::vm::share::ShareMode::Auto)]
    pub share: crate::vm::share::ShareMode,
}

/// Where kernels are fetched from and whether an unsigned Release is trusted: the options of
/// every command that may download a kernel, written once.
#[derive(Debug, Args, Clone, Default)]
pub struct MirrorArgs {
    /// Debian mirror (default: KMATRIX_MIRROR, else the host's apt configuration); an archive
    /// snapshot mirror brings back builds the mirror no longer has.
    #[arg(long, env = "KMATRIX_MIRROR")]
    pub mirror: Option<String>,
    /// Ubuntu's mirror (default: KMATRIX_UBUNTU_MIRROR, else the host's apt configuration on an
    /// Ubuntu host, else the default mirror the host's debootstrap script for the suite names).
    #[arg(long, env = "KMATRIX_UBUNTU_MIRROR")]
    pub ubuntu_mirror: Option<String>,
    /// Use a Release file whose signature cannot be checked (no gpgv, no archive keyring, no
    /// signature), trusting the mirror's hashes alone. Without it, that is an error.
    #[arg(long)]
    pub allow_unsigned: bool,
}

impl MirrorArgs {
    /// The kernel provider's options for these flags (no local kernel extras).
    pub fn fetch_options(&self) -> FetchOptions {
        FetchOptions {
            mirror: self.mirror.clone(),
            ubuntu_mirror: self.ubuntu_mirror.clone(),
            trust: kernel::TrustOptions { allow_unsigned: self.allow_unsigned, ..Default::default() },
            ..Default::default()
        }
    }
}

/// The kernel `boot`, `bench boot` and `exec` use when none is named.
pub const DEFAULT_KERNEL: &str = "debian-6.1";

impl GuestArgs {
    /// The guests' settings these flags give, `snapshot` when `--snapshot` is not given (the
    /// command's default: [`SnapshotMode::Auto`] for the commands that start from snapshots,
    /// `Off` for those that measure cold boots).
    pub fn settings(&self, snapshot: SnapshotMode) -> GuestSettings {
        GuestSettings {
            append: self.append.clone(),
            channel: self.channel,
            snapshot: self.snapshot.unwrap_or(snapshot),
            boot_timeout: Duration::from_secs_f64(self.boot_timeout),
            share: self.share,
            ..self.machine.settings()
        }
    }

    /// `--kernel`, else [`DEFAULT_KERNEL`].
    pub fn kernel(&self) -> &str {
        self.kernel.as_deref().unwrap_or(DEFAULT_KERNEL)
    }

    /// `--kernel K` and `--kernels A,B` together are ambiguous: refuse them (exit 2) rather than
    /// silently ignore one. Returns the kernels named, `--kernel` as a list of one.
    pub fn kernels_or(&self, kernels: &[String]) -> Result<Vec<String>> {
        match (&self.kernel, kernels.is_empty()) {
            (Some(k), false) => Err(anyhow::anyhow!(
                "both --kernel {k} and --kernels {} given: name the kernels once, with --kernels",
                kernels.join(",")
            ))
            .exit_code(exit::BAD_INPUT),
            (Some(k), true) => Ok(vec![k.clone()]),
            (None, _) => Ok(kernels.to_vec()),
        }
    }

    /// How to fetch this command's kernels: mirror, trust, a local kernel's extras.
    pub fn fetch_options(&self) -> FetchOptions {
        FetchOptions { modules: self.modules.clone(), config: self.config.clone(), ..self.fetch.fetch_options() }
    }
}

/// Runs the command of `cli`; `Ok` holds the exit code (test failures are a code, not an error),
/// an error carries its exit code for [`exit::code_of`].
pub async fn main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Boot(a) => boot::boot(a).await,
        Command::Bench(BenchCommand::Boot { guest, runs, json }) => bench::bench_boot(guest, runs, json).await,
        Command::Bench(BenchCommand::Matrix(a)) => bench::bench_matrix(a).await,
        Command::Bench(BenchCommand::Peers(a)) => bench::bench_peers(a).await,
        Command::Bench(BenchCommand::Exec { guest, runs, json, argv }) => {
            bench_exec::bench_exec(guest, runs, json, argv).await
        }
        Command::Kernels(KernelsCommand::Fetch { ids, fetch }) => kernels::kernels_fetch(ids, fetch).await,
        Command::Kernels(k) => kernels::kernels_other(k).await,
        Command::Run(a) => run::run(a).await,
        Command::Scenarios(ScenariosCommand::List { json }) => scenarios::scenarios_list(json),
        Command::Report(a) => report::report_cmd(a),
        Command::Rerun(a) => rerun::rerun_cmd(a).await,
        Command::Bisect(a) => bisect::bisect_cmd(a).await,
        Command::Trace(a) => trace::trace_cmd(a),
        Command::Exec(a) => exec::exec_cmd(a).await,
        Command::Shell(a) => shell::shell_cmd(a).await,
        Command::Selftest(c) => selftest::selftest_cmd(c).await,
        Command::CoreCheck(a) => core_check::core_check_cmd(a).await,
        Command::Btf(c) => btf::btf_cmd(c).await,
        Command::Gc(a) => gc::gc_cmd(a).await,
        Command::Ci(CiCommand::Github) => {
            let ids = kernel::matrix_ids().context("cannot read the kernel matrix").exit_code(exit::BAD_INPUT)?;
            let cache = Cache::from_env().exit_code(exit::INFRA)?;
            let scenarios = crate::catalogue::load(&cache).exit_code(exit::INFRA)?.len();
            print!("{}", render::github::workflow(&render::github::shards(&ids, scenarios)));
            Ok(exit::OK)
        }
    }
}

/// A number of seconds on the command line (every timeout): positive and finite, else clap
/// refuses it naming the flag (exit 2).
fn seconds(s: &str) -> Result<f64, BadSeconds> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(BadSeconds(s.to_string())),
    }
}

/// A command-line timeout that is not a positive, finite number (as given).
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a positive number of seconds")]
pub struct BadSeconds(pub String);

/// Opens a session for `args` (saying which accelerator and why) and prepares the kernel and
/// its image for guests of `settings`.
pub async fn prepare(args: &GuestArgs, settings: &GuestSettings) -> Result<Prepared> {
    let session = Arc::new(open_session(args.accel).await?);
    session.prepare_guest(args.kernel(), &args.fetch_options(), settings, false, &[]).await.map_err(tag_session)
}

/// The options of one boot of `p` with `settings`, its console log in `--out`; a `--disk` the
/// file system there has no room for is refused first.
pub(crate) fn boot_options(
    p: &Prepared,
    args: &GuestArgs,
    settings: &GuestSettings,
    tag: &str,
) -> Result<GuestOptions> {
    check_disk(args, settings)?;
    p.guest_options(settings, &args.out, tag).map_err(tag_session)
}

/// A `--disk` that the file system of `--out` (where the scratch file goes, beside the console
/// log) has no room for is refused (exit 2) before a guest starts.
fn check_disk(args: &GuestArgs, settings: &GuestSettings) -> Result<()> {
    if let Some(b) = settings.disk_bytes {
        std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
        machine::check_disk_room(&args.out, b)?;
    }
    Ok(())
}

/// Open a session for `args.accel` and say which accelerator it uses and why.
async fn open_session(choice: AccelChoice) -> Result<Session> {
    open_session_saying(choice, true).await
}

/// [`open_session`], saying the accelerator only when `say`: `exec` of one program keeps its
/// stderr the program's own (a `go test -json` reads both streams as one), unless `-v`. A KVM
/// that fails is still said, once, when it happens.
async fn open_session_saying(choice: AccelChoice, say: bool) -> Result<Session> {
    let session = Session::open(choice).await.exit_code(exit::INFRA)?;
    if say {
        eprintln!("kmatrix: {}", session.accel.describe());
    }
    Ok(session)
}

/// Prepare `kernel` in `session` with the host-root share modules, and boot it sharing the host
/// root (read-only, `rw` directories writable), from a snapshot unless `--snapshot off`
/// ([`Prepared::start_shared`]). For the commands that run the user's programs (`exec`,
/// `shell`, `selftest`). With `headers`, the kernel's own headers are offered with the share.
pub(crate) async fn start_shared(
    session: &Arc<Session>,
    args: &GuestArgs,
    kernel: &str,
    tag: &str,
    rw: Vec<PathBuf>,
    headers: bool,
) -> Result<(Prepared, crate::guest::Guest)> {
    let settings = args.settings(SnapshotMode::Auto);
    let fetch = args.fetch_options();
    let p = session.prepare_guest(kernel, &fetch, &settings, true, &[]).await.map_err(tag_session)?;
    check_disk(args, &settings)?;
    let g = p.start_shared(&settings, &fetch, &args.out, tag, rw, headers).await.map_err(|e| match e {
        SessionError::Headers { .. } => tag_session(e).context("--kernel-headers"),
        e => tag_session(e),
    })?;
    Ok((p, g))
}

/// A session error with its exit code: bad input or infrastructure.
fn tag_session(e: SessionError) -> anyhow::Error {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn guest_flags_become_one_settings_value() {
        let guest = |argv: &[&str]| {
            let mut all = vec!["kmatrix", "boot"];
            all.extend_from_slice(argv);
            let Command::Boot(a) = Cli::try_parse_from(all).unwrap().command else { panic!("not boot") };
            a.guest
        };
        // No flags: the settings' own defaults, the command's snapshot default kept.
        assert_eq!(guest(&[]).settings(SnapshotMode::Auto), GuestSettings::default());
        assert_eq!(guest(&[]).settings(SnapshotMode::Off).snapshot, SnapshotMode::Off);
        let a = guest(&[
            "--cpus",
            "2",
            "--memory",
            "1G",
            "--disk",
            "64M",
            "--append",
            "quiet",
            "--channel",
            "serial",
            "--boot-timeout",
            "5",
            "--share",
            "9p",
            "--snapshot",
            "on",
            "--net",
            "user",
        ]);
        assert_eq!(
            a.settings(SnapshotMode::Off),
            GuestSettings {
                cpus: 2,
                memory_mb: 1024,
                disk_bytes: Some(64 << 20),
                append: vec!["quiet".into()],
                channel: Channel::Serial,
                snapshot: SnapshotMode::On,
                boot_timeout: Duration::from_secs(5),
                share: crate::vm::share::ShareMode::NineP,
                net: crate::settings::Net::User,
            }
        );
        assert!(Cli::try_parse_from(["kmatrix", "exec", "--net", "tap", "--", "true"]).is_err());
        assert!(!a.settings(SnapshotMode::Off).image_options(false).virtio_channel);
        assert!(Cli::try_parse_from(["kmatrix", "boot", "--channel", "pci"]).is_err());
        assert!(Cli::try_parse_from(["kmatrix", "boot", "--snapshot", "auto"]).is_err());
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
        assert_eq!(run::parse_params(&a.params).unwrap()["count"], "10");
        assert!(run::parse_params(&["count".into()]).is_err());
    }
}
