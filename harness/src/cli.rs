//! The `kmatrix` command line: argument parsing and the glue from each subcommand to the library.
//! Rendering lives in `report/`, work in the library modules; this file only wires them.

use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use crate::guest::{Guest, GuestOptions};
use crate::image;
use crate::kernel::{self, FetchOptions, KernelSpec, PreparedKernel};
use crate::report;
use crate::vm::{self, AccelChoice, AccelVerdict};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "kmatrix", version, about = "Boot real kernels under QEMU and check every tracing path against known workloads")]
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
    #[arg(long, default_value_t = 60.0)]
    pub boot_timeout: f64,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
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
}

pub async fn main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Boot(a) => boot(a).await,
        Command::Bench(BenchCommand::Boot { guest, runs, json }) => bench_boot(guest, runs, json).await,
        Command::Kernels(KernelsCommand::Fetch { ids, mirror }) => kernels_fetch(ids, mirror).await,
    }
}

/// Everything a boot needs, prepared once.
pub struct Prepared {
    pub cache: Cache,
    pub kernel: PreparedKernel,
    pub image: image::Image,
    pub verdict: AccelVerdict,
    pub qemu: PathBuf,
}

pub async fn prepare(args: &GuestArgs) -> Result<Prepared> {
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let spec: KernelSpec = args.kernel.parse().with_context(|| format!("bad --kernel {:?}", args.kernel)).exit_code(exit::BAD_INPUT)?;
    let opts = FetchOptions { mirror: args.mirror.clone(), modules: args.modules.clone(), config: args.config.clone(), ..Default::default() };
    let kernel = {
        let cache = cache.clone();
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || kernel::prepare(&spec, &cache, &opts)).await.context("kernel preparation task died")?
    };
    let kernel = match kernel {
        Ok(k) => k,
        Err(e) => {
            let code = if e.is_bad_input() { exit::BAD_INPUT } else { exit::INFRA };
            return Err(anyhow::Error::new(e)).with_context(|| format!("cannot prepare kernel {:?}", args.kernel)).exit_code(code);
        }
    };
    let image = {
        let cache = cache.clone();
        let k = kernel.clone();
        let opts = image::ImageOptions { virtio_channel: args.channel == "virtio" };
        tokio::task::spawn_blocking(move || image::build(&cache, &k, opts)).await.context("image task died")?
    }
    .with_context(|| format!("cannot build the guest image for {}", kernel.id))
    .exit_code(exit::INFRA)?;
    let qemu = vm::qemu_binary();
    let verdict = vm::accel::select(&cache, &qemu, args.accel).await;
    eprintln!(
        "kmatrix: accelerator {} — {}{}",
        verdict.accel.as_str(),
        verdict.reason,
        if verdict.cached { " (cached verdict; delete the cache's host/accel.json to re-probe)" } else { "" }
    );
    Ok(Prepared { cache, kernel, image, verdict, qemu })
}

impl Prepared {
    pub fn guest_options(&self, args: &GuestArgs, tag: &str) -> Result<GuestOptions> {
        std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let log = args.out.join(format!("{}-{tag}-{stamp}.console.log", sanitize(&self.kernel.id)));
        let mut o = GuestOptions::new(self.qemu.clone(), self.verdict.accel, log);
        o.memory_mb = args.memory;
        o.append = args.append.clone();
        o.virtio = args.channel == "virtio";
        if !(args.boot_timeout.is_finite() && args.boot_timeout > 0.0) {
            return Err(anyhow::anyhow!("--boot-timeout must be a positive number of seconds, got {}", args.boot_timeout)).exit_code(exit::BAD_INPUT);
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
    let opts = p.guest_options(&a.guest, "boot")?;
    let guest = Guest::start(&p.kernel, &p.image, &opts)
        .await
        .with_context(|| format!("booting {} failed (console log: {})", p.kernel.id, opts.console_log.display()))
        .exit_code(exit::INFRA)?;
    let rec = report::BootRecord::new(&p.kernel, &p.verdict, &guest, &p.image);
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
        let opts = p.guest_options(&guest, &format!("bench{i}"))?;
        let g = Guest::start(&p.kernel, &p.image, &opts)
            .await
            .with_context(|| format!("boot {} of {} failed (console log: {})", i + 1, runs, opts.console_log.display()))
            .exit_code(exit::INFRA)?;
        let s = g.hello_after.as_secs_f64();
        eprintln!("run {}/{}: Hello after {:.3} s ({}, channel {})", i + 1, runs, s, g.boot_path, g.channel());
        secs.push(s);
        g.shutdown().await.context("the guest did not power off cleanly").exit_code(exit::INFRA)?;
    }
    let stats = report::Stats::of(&secs);
    if json {
        println!(
            "{}",
            serde_json::json!({"kernel": p.kernel.id, "release": p.kernel.release, "accel": p.verdict.accel, "runs": secs, "min": stats.min, "median": stats.median, "max": stats.max})
        );
    } else {
        println!(
            "boot to Hello, {} ({}), {}, {} runs: min {:.3} s  median {:.3} s  max {:.3} s",
            p.kernel.id,
            p.kernel.release,
            p.verdict.accel.as_str(),
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
    let ids = if ids.is_empty() { kernel::matrix_ids().context("cannot read the kernel matrix").exit_code(exit::BAD_INPUT)? } else { ids };
    for id in ids {
        let spec: KernelSpec = id.parse().with_context(|| format!("bad kernel {id:?}")).exit_code(exit::BAD_INPUT)?;
        let opts = FetchOptions { mirror: mirror.clone(), ..Default::default() };
        let c = cache.clone();
        let k = tokio::task::spawn_blocking(move || kernel::prepare(&spec, &c, &opts)).await.context("fetch task died")?;
        match k {
            Ok(k) => println!("{}: {} ({})", k.id, k.release, k.package_version.as_deref().unwrap_or("local")),
            Err(e) => {
                let code = if e.is_bad_input() { exit::BAD_INPUT } else { exit::INFRA };
                return Err(anyhow::Error::new(e)).with_context(|| format!("cannot fetch {id}")).exit_code(code);
            }
        }
    }
    Ok(exit::OK)
}
