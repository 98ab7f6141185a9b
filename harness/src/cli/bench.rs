//! `kmatrix bench`: boot times (cold or from a snapshot) and the whole matrix's wall time split
//! into boot, scenarios and idle core-time.

use super::*;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Run the whole default matrix and report wall time split into boot, scenarios and idle.
    Matrix(RunArgs),
    /// Boot a kernel N times; min / median / max seconds from QEMU start to the agent's Hello,
    /// beside the floor: the same kernel alone (no initramfs) from QEMU start to its VFS panic,
    /// measured in the same run, interleaved.
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
    let mut floor = Vec::new();
    for i in 0..runs {
        floor.push(bare_kernel(&p).await?);
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
    let bare = render::Stats::of(&floor);
    if json {
        println!(
            "{}",
            serde_json::json!({"kernel": p.kernel.id, "release": p.kernel.release, "accel": p.session.accel.current(), "runs": secs, "min": stats.min, "median": stats.median, "max": stats.max, "bare_kernel": {"runs": floor, "min": bare.min, "median": bare.median, "max": bare.max}})
        );
    } else {
        println!(
            "boot to Hello, {} ({}), {}, {} runs: min {:.3} s  median {:.3} s  max {:.3} s; bare kernel to its panic: median {:.3} s (Hello - floor: {:+.3} s)",
            p.kernel.id,
            p.kernel.release,
            p.session.accel.current().as_str(),
            runs,
            stats.min,
            stats.median,
            stats.max,
            bare.median,
            stats.median - bare.median
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

/// The floor: QEMU start → exit for the same kernel file with the same machine, firmware and
/// kernel command line, but no initramfs: the kernel runs its initcalls, finds no root file
/// system, panics, and (`panic=-1`, `-no-reboot`) QEMU exits.
async fn bare_kernel(p: &Prepared) -> Result<f64> {
    let arch = p.kernel.arch;
    let foreign = !arch.is_host();
    let qemu = if foreign { crate::vm::qemu::binary_for(arch) } else { p.session.qemu.clone() };
    let cfg = crate::vm::QemuConfig {
        bios: if foreign { None } else { crate::vm::qemu::default_bios(&qemu) },
        qemu,
        arch,
        kernel: p.kernel.vmlinux.clone().unwrap_or_else(|| p.kernel.bzimage.clone()),
        initrd: None,
        accel: if foreign { crate::vm::Accel::Tcg } else { p.session.accel.current() },
        memory_mb: crate::session::MEMORY_MB,
        cpus: 1,
        append: Vec::new(),
        serial_channel: None,
        virtio_channel: None,
        debug_exit: false,
        monitor: None,
        memory_file: None,
        incoming: false,
        shares: Vec::new(),
    };
    let started = std::time::Instant::now();
    let mut cmd = tokio::process::Command::new(&cfg.qemu);
    cmd.args(cfg.args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    crate::vm::machine::die_with_parent(&mut cmd);
    let st = tokio::time::timeout(Duration::from_secs(120), cmd.status())
        .await
        .context("the bare kernel did not reach its VFS panic within 120 s")?
        .with_context(|| format!("cannot run {}", cfg.qemu.display()))?;
    let s = started.elapsed().as_secs_f64();
    eprintln!("bare kernel (no initramfs) to its panic: {s:.3} s ({st})");
    Ok(s)
}
