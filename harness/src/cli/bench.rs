//! `kmatrix bench`: boot times (cold or from a snapshot) and the whole matrix's wall time split
//! into boot, scenarios and idle core-time.

use super::*;

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

pub(crate) async fn bench_boot(guest: GuestArgs, runs: u32, json: bool) -> Result<i32> {
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
    let stats = render::Stats::of(&secs);
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

pub(crate) async fn bench_matrix(a: RunArgs) -> Result<i32> {
    let (code, o) = super::run::run_inner(a).await?;
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
