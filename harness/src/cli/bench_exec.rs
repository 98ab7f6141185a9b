//! `kmatrix bench exec`: its arguments, the runs, and the table (the phases are timed by
//! `crate::bench::exec`).

use super::GuestArgs;
use crate::bench::exec::{once, Phases, Target};
use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use crate::report::Stats;
use crate::settings::SnapshotMode;
use crate::vm::AccelChoice;
use anyhow::{Context, Result};
use std::time::Instant;

pub(crate) async fn bench_exec(guest: GuestArgs, runs: u32, json: bool, argv: Vec<String>) -> Result<i32> {
    let argv = if argv.is_empty() { vec!["/bin/true".to_string()] } else { argv };
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let kernel = guest.kernel().to_string();
    let settings = guest.settings(SnapshotMode::Auto);
    let fetch = guest.fetch_options();
    let qemu = crate::vm::qemu_binary();
    let exe = std::env::current_exe().context("cannot find the kmatrix binary itself")?;
    let accel = match guest.accel {
        AccelChoice::Auto => "auto",
        AccelChoice::Kvm => "kvm",
        AccelChoice::Tcg => "tcg",
    };
    let dir = guest.out.join("bench-exec");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display())).exit_code(exit::INFRA)?;
    let mut process = Vec::new();
    let mut phases: Vec<Phases> = Vec::new();
    // Run 0 warms what a first exec pays once (the snapshot, the image, the module tree).
    for i in 0..=runs {
        let t = Instant::now();
        let st = std::process::Command::new(&exe)
            .args(["exec", "--kernel", &kernel, "--accel", accel, "--cpus"])
            .arg(settings.cpus.to_string())
            .arg("--memory")
            .arg(format!("{}M", settings.memory_mb))
            .arg("--")
            .args(&argv)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .context("cannot run kmatrix exec")?;
        let wall = t.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(st.success(), "`kmatrix exec --kernel {kernel} -- {}` failed: {st}", argv.join(" "));
        let target = Target { kernel: &kernel, settings: &settings, fetch: &fetch };
        let p = once(&cache, &qemu, guest.accel, target, &argv, &dir)
            .await
            .with_context(|| format!("bench exec on {kernel}"))
            .exit_code(exit::INFRA)?;
        if i > 0 {
            process.push(wall);
            phases.push(p);
        }
    }
    let column = |f: fn(&Phases) -> f64| Stats::of(&phases.iter().map(f).collect::<Vec<_>>());
    let rows: Vec<(&str, Stats)> = vec![
        ("process (kmatrix exec, wall)", Stats::of(&process)),
        ("  session (accelerator verdict)", column(|p| p.session)),
        ("  kernel + image (lock, cache)", column(|p| p.prepare)),
        ("  guest start (restore)", column(|p| p.start)),
        ("  guest set-up (share mount)", column(|p| p.setup)),
        ("  program (spawn to end)", column(|p| p.program)),
        ("  channel (request, outcome)", column(|p| p.channel)),
        ("  power-off", column(|p| p.shutdown)),
        ("  in-process total", column(|p| p.total)),
    ];
    if json {
        let v = serde_json::json!({
            "kernel": kernel,
            "argv": argv,
            "process_ms": process,
            "phases_ms": phases,
            "stats": rows.iter().map(|(n, s)| serde_json::json!({"phase": n.trim(), "min": s.min, "median": s.median, "max": s.max})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("`{}` on {kernel}, {runs} runs after a warm-up, ms:", argv.join(" "));
        println!("{:<34} {:>9} {:>9} {:>9}", "phase", "min", "median", "max");
        for (name, s) in &rows {
            println!("{name:<34} {:>9.1} {:>9.1} {:>9.1}", s.min, s.median, s.max);
        }
        let outside = Stats::of(&process).median - column(|p| p.total).median;
        println!("{:<34} {:>29.1}", "process start and exit (medians)", outside);
    }
    Ok(exit::OK)
}
