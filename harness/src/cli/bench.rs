//! `kmatrix bench`: boot times (cold or from a snapshot), the whole matrix's wall time split
//! into boot, scenarios and idle core-time, and the side-by-side with the peers (the work of
//! `peers` is in `crate::bench::peers`; this file only wires its arguments).

use super::{boot_options, prepare, seconds, GuestArgs, MirrorArgs, RunArgs};
use crate::bench::peers::{self, Peer};
use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use crate::report as render;
use crate::session::Prepared;
use crate::settings::GuestSettings;
use crate::settings::SnapshotMode;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::time::Duration;

/// What `kmatrix bench` measures: boot times, the matrix's wall time, the peers side by side.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Run the whole default matrix and report wall time split into boot, scenarios and idle.
    Matrix(RunArgs),
    /// Boot a kernel N times; min / median / max seconds from QEMU start to the agent's Hello,
    /// beside the floor: the same kernel alone (no initramfs) from QEMU start to its VFS panic,
    /// measured in the same run, interleaved.
    Boot {
        /// The kernel and how to boot it (flattened: `--kernel`, `--accel`, `--memory`, ...).
        #[command(flatten)]
        guest: GuestArgs,
        /// How many boots to time (each also times one boot of the bare kernel).
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Print the times and their statistics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Boot Debian kernels with kmatrix (cold and from a snapshot) and with each peer (vmtest,
    /// virtme-ng; installed on demand into `<cache>/bench`), run `uname -r; cat
    /// /sys/kernel/tracing/available_tracers`, power off; N runs each, one at a time, under TCG.
    /// Each peer is first tried as its README says, then with the least it needs here. Prints
    /// min / median / max per tool, kernel and mode and the ratios to kmatrix.
    Peers(PeersArgs),
    /// Take `kmatrix exec -- PROGRAM` apart: N runs of the whole command (its process wall
    /// time), each beside the same exec timed phase by phase in this process (session, kernel
    /// and image, guest start from the snapshot, the guest's set-up and share mount, the
    /// program, the channel, the power-off); min / median / max per phase, after one untimed
    /// warm-up run.
    Exec {
        /// The kernel and how to boot it (flattened: `--kernel`, `--accel`, `--memory`, ...).
        #[command(flatten)]
        guest: GuestArgs,
        /// How many timed runs (at least 1).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// Print the samples and their statistics as JSON.
        #[arg(long)]
        json: bool,
        /// The program and its arguments (default `/bin/true`).
        #[arg(last = true)]
        argv: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct PeersArgs {
    /// Peers to compare with, comma-separated: vmtest, virtme-ng.
    #[arg(long, value_delimiter = ',', default_value = "vmtest,virtme-ng", value_parser = parse_peer)]
    pub peers: Vec<Peer>,
    /// Kernels (matrix ids or `debian:<version>`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "debian-6.1,debian-6.12")]
    pub kernels: Vec<String>,
    /// Timed runs per tool, kernel and mode (at least 1).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Seconds one run may take before it is killed and counted as failed.
    #[arg(long, default_value_t = 300.0, value_parser = seconds)]
    pub timeout: f64,
    /// Skip each peer's out-of-the-box attempt.
    #[arg(long)]
    pub skip_out_of_the_box: bool,
    /// Print the whole result as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub fetch: MirrorArgs,
}

fn parse_peer(s: &str) -> Result<Peer, peers::UnknownPeer> {
    s.parse::<Peer>()
}

pub(crate) async fn bench_peers(a: PeersArgs) -> Result<i32> {
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let kmatrix = std::env::current_exe().context("cannot find the kmatrix binary itself")?;
    let mut peers = a.peers.clone();
    peers.sort();
    peers.dedup();
    let opts = peers::run::Options {
        peers,
        kernels: a.kernels.clone(),
        runs: a.runs,
        timeout: Duration::from_secs_f64(a.timeout),
        kmatrix,
        fetch: a.fetch.fetch_options(),
        skip_out_of_the_box: a.skip_out_of_the_box,
    };
    let progress = |s: &str| eprintln!("bench peers: {s}");
    let report = peers::run::bench(&opts, &cache, &progress).await.map_err(|e| {
        let code = match e {
            peers::install::PeerError::Kernel { ref source, .. } if source.is_bad_input() => exit::BAD_INPUT,
            _ => exit::INFRA,
        };
        let r: Result<(), _> = Err(e);
        r.exit_code(code).unwrap_err()
    })?;
    let json = serde_json::to_string_pretty(&report).context("cannot serialize the result")?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let saved = report.bench_dir.join(format!("peers-{stamp}.json"));
    std::fs::write(&saved, &json).with_context(|| format!("cannot write {}", saved.display()))?;
    if a.json {
        println!("{json}");
    } else {
        println!(
            "{} runs each, {}, {} ({} cores), load {} → {}, {}; {}",
            report.runs,
            report.accel,
            report.host.cpu,
            report.host.cores,
            report.host.load_start,
            report.host.load_end,
            report.host.date,
            report.versions.iter().map(|(n, v)| format!("{n} {v}")).collect::<Vec<_>>().join(", ")
        );
        print!("{}", report.markdown());
        eprintln!("bench peers: result saved in {}", saved.display());
    }
    Ok(exit::OK)
}

pub(crate) async fn bench_boot(guest: GuestArgs, runs: u32, json: bool) -> Result<i32> {
    if runs == 0 {
        return Err(anyhow::anyhow!("--runs must be at least 1")).exit_code(exit::BAD_INPUT);
    }
    // Cold boots unless `--snapshot on`: this command measures boots.
    let settings = guest.settings(SnapshotMode::Off);
    let p = prepare(&guest, &settings).await?;
    let mut secs = Vec::new();
    let mut floor = Vec::new();
    for i in 0..runs {
        floor.push(bare_kernel(&p, &settings).await?);
        let opts = boot_options(&p, &guest, &settings, &format!("bench{i}"))?;
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
            "  {:14} wall {:6.1} s  boot {:5.1} s ({} boots: {})  scenarios {:6.1} s",
            k.kernel,
            k.wall_s,
            k.boot_s,
            k.boots,
            k.hello_s.iter().map(|h| format!("{h:.2}")).collect::<Vec<_>>().join(" "),
            k.scenarios_s
        );
    }
    phases(&o);
    Ok(code)
}

/// Where the scenarios' time went: per family and for the slowest cells, the agent's phases
/// (attach, workload, detach) and the rest of the host-side round trip (the request, setup and
/// reading the results in the guest, the answer), from each result's timings.
fn phases(o: &crate::run::matrix::Outcome) {
    struct Cell<'a> {
        kernel: &'a str,
        scenario: &'a str,
        wall: f64,
        attach: f64,
        run: f64,
        detach: f64,
    }
    let timings: BTreeMap<(&str, &str), &kmatrix_proto::Timings> =
        o.results.iter().map(|r| ((r.kernel.as_str(), r.scenario.as_str()), &r.timings)).collect();
    let mut cells: Vec<Cell> = Vec::new();
    for k in &o.kernels {
        for (s, wall) in &k.scenario_walls {
            let t = timings.get(&(k.kernel.as_str(), s.as_str()));
            cells.push(Cell {
                kernel: &k.kernel,
                scenario: s,
                wall: *wall,
                attach: t.map_or(0.0, |t| t.attach_ms / 1000.0),
                run: t.map_or(0.0, |t| t.run_ms / 1000.0),
                detach: t.map_or(0.0, |t| t.detach_ms / 1000.0),
            });
        }
    }
    if cells.is_empty() {
        return;
    }
    let mut families: BTreeMap<&str, (usize, f64, f64, f64, f64)> = BTreeMap::new();
    for c in &cells {
        let f = families.entry(c.scenario.split('.').next().unwrap_or(c.scenario)).or_default();
        *f = (f.0 + 1, f.1 + c.wall, f.2 + c.attach, f.3 + c.run, f.4 + c.detach);
    }
    println!("per family (seconds summed over kernels): cells  wall  attach  workload  detach  other");
    let mut fam: Vec<_> = families.into_iter().collect();
    fam.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    for (name, (n, wall, attach, run, detach)) in fam {
        let other = (wall - attach - run - detach).max(0.0);
        println!("  {name:12} {n:4} {wall:7.1} {attach:7.2} {run:9.2} {detach:7.2} {other:6.2}");
    }
    cells.sort_by(|a, b| b.wall.total_cmp(&a.wall));
    println!("slowest cells: wall (attach / workload / detach / other) seconds");
    for c in cells.iter().take(15) {
        let other = (c.wall - c.attach - c.run - c.detach).max(0.0);
        println!(
            "  {:6.2}  ({:.2} / {:.2} / {:.2} / {:.2})  {} {}",
            c.wall, c.attach, c.run, c.detach, other, c.kernel, c.scenario
        );
    }
}

/// The floor: QEMU start → exit for the same kernel file with the same machine (CPUs, memory), firmware and
/// kernel command line, but no initramfs: the kernel runs its initcalls, finds no root file
/// system, panics, and (`panic=-1`, `-no-reboot`) QEMU exits.
async fn bare_kernel(p: &Prepared, settings: &GuestSettings) -> Result<f64> {
    let em = p.session.emulator(&p.kernel, settings);
    let cfg = crate::vm::QemuConfig {
        bios: em.bios,
        qemu: em.qemu,
        arch: p.kernel.arch,
        kernel: p.kernel.boot.vmlinux.clone().unwrap_or_else(|| p.kernel.boot.bzimage.clone()),
        initrd: None,
        accel: em.accel,
        memory_mb: settings.memory_mb,
        cpus: settings.cpus,
        append: Vec::new(),
        serial_channel: None,
        virtio_channel: None,
        debug_exit: false,
        monitor: None,
        memory_file: None,
        incoming: false,
        shares: Vec::new(),
        disk: None,
        first_output: None,
        net_user: false,
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
