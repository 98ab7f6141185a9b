//! `kmatrix selftest ftrace`: the kernel's own ftracetest, from each kernel's Debian source
//! package, run in a guest through the shared host root; every case a result in a run directory
//! (`results.jsonl`, so `kmatrix report` renders, diffs and merges it like any run).

use super::{open_session, seconds, start_shared, tag_kernel, tag_session, GuestArgs};
use crate::exit::{self, ExitContext};
use crate::report as render;
use crate::run::results::{self, ResultsWriter};
use crate::settings::SnapshotMode;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use kmatrix_proto::{ExecRequest, Status};
use std::sync::Arc;
use std::time::Duration;

/// The kernel selftest suites `kmatrix selftest` runs.
#[derive(Debug, Subcommand)]
pub enum SelftestCommand {
    /// tools/testing/selftests/ftrace/ftracetest of each kernel's own source.
    Ftrace(SelftestArgs),
}

/// `kmatrix selftest ftrace`: which kernels, which cases, how long.
#[derive(Debug, Args)]
pub struct SelftestArgs {
    /// Kernels, comma-separated (default: --kernel).
    #[arg(long, value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// Test cases, relative to ftracetest's test.d (`00basic/basic1.tc`, or a directory);
    /// default: all of them (5-11 minutes per kernel under TCG).
    #[arg(long, value_delimiter = ',')]
    pub tests: Vec<String>,
    /// Seconds the whole ftracetest run may take on one kernel.
    #[arg(long, default_value_t = 3600.0, value_parser = seconds)]
    pub timeout: f64,
    /// Print results as JSON lines on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// The kernel and how to boot it (flattened: `--kernel`, `--accel`, `--memory`, ...).
    #[command(flatten)]
    pub guest: GuestArgs,
}

pub(crate) async fn selftest_cmd(cmd: SelftestCommand) -> Result<i32> {
    let SelftestCommand::Ftrace(a) = cmd;
    let mut kernels = a.guest.kernels_or(&a.kernels)?;
    if kernels.is_empty() {
        kernels.push(a.guest.kernel().to_string());
    }
    for t in &a.tests {
        if t.starts_with('/') || t.split('/').any(|c| c == "..") {
            return Err(anyhow::anyhow!("--tests {t}: a path relative to ftracetest's test.d"))
                .exit_code(exit::BAD_INPUT);
        }
    }
    let session = Arc::new(open_session(a.guest.accel).await?);
    let run_dir = results::run_dir(&a.guest.out);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    let results_path = run_dir.join(results::FILE_NAME);
    let mut writer = ResultsWriter::open(&results_path).exit_code(exit::INFRA)?;
    eprintln!("kmatrix: ftracetest on {}; results stream to {}", kernels.join(", "), results_path.display());
    let mut all = Vec::new();
    for k in &kernels {
        let fetch = a.guest.fetch_options();
        let (kernel, _) = session
            .prepare(k, &fetch, a.guest.settings(SnapshotMode::Auto).image_options(true), &[])
            .await
            .map_err(tag_session)?;
        let tree = {
            let (kernel, cache, fetch) = (kernel.clone(), session.cache.clone(), fetch.clone());
            tokio::task::spawn_blocking(move || crate::kernel::selftests(&kernel, "ftrace", &cache, &fetch))
                .await
                .context("selftest fetch task died")?
                .map_err(tag_kernel)
                .with_context(|| format!("cannot get the ftrace selftests of {k}"))?
        };
        eprintln!(
            "kmatrix: {k}: ftracetest from {} {}{}",
            tree.package,
            tree.version,
            if tree.same_build { "" } else { " (the suite no longer has the kernel's own source version)" }
        );
        for t in &a.tests {
            if !tree.dir.join("test.d").join(t).exists() {
                return Err(anyhow::anyhow!("--tests {t}: no such test in {}", tree.dir.join("test.d").display()))
                    .exit_code(exit::BAD_INPUT);
            }
        }
        let (_, mut g) = start_shared(&session, &a.guest, k, "ftracetest", Vec::new(), false).await?;
        let mut argv =
            vec!["/bin/bash".to_string(), "-c".into(), crate::selftest::runner_script(), "ftracetest".into()];
        argv.extend(a.tests.iter().map(|t| format!("test.d/{t}")));
        let env = [
            ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            ("HOME", "/root"),
            ("LANG", "C.UTF-8"),
            ("TERM", "dumb"),
        ];
        let req = ExecRequest {
            argv,
            timeout_ms: (a.timeout * 1000.0) as u64,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            cwd: Some(tree.dir.display().to_string()),
            root: g.share.clone(),
            stream: false,
            stdin: Default::default(),
            winsize: None,
            host_time_ns: None,
        };
        let out = g.exec(req, Duration::from_secs_f64(a.timeout + 60.0)).await;
        let accel = g.accel.as_str();
        let _ = g.shutdown().await;
        let out = out.with_context(|| format!("ftracetest on {k}")).exit_code(exit::INFRA)?;
        let mut cases = crate::selftest::parse(&out.stdout);
        crate::selftest::locate_files(&mut cases, &tree.dir.join("test.d"));
        let planned = crate::selftest::planned_files(&tree.dir.join("test.d"), &a.tests);
        let unreached = crate::selftest::unreached(&cases, &planned, &out);
        if cases.is_empty() && unreached.is_empty() {
            return Err(anyhow::anyhow!(
                "ftracetest on {k} reported no test case ({}):\n{}\n{}",
                crate::cli::exec::code_of(&out),
                out.stdout.chars().take(2000).collect::<String>(),
                out.stderr.chars().take(2000).collect::<String>()
            ))
            .exit_code(exit::INFRA);
        }
        for mut r in cases.iter().map(crate::selftest::result_of).chain(unreached) {
            r.kernel = k.clone();
            r.accel = accel.to_string();
            r.build = Some(kernel.build());
            writer.append(&r).exit_code(exit::INFRA)?;
            if a.json {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            }
            all.push(r);
        }
    }
    let table = render::table::render(&all, &kernels, false);
    let summary = render::table::Summary::of(&all);
    let text = format!("\n{table}\n{}; results: {}\n", summary.line(), results_path.display());
    if a.json {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    Ok(if all.iter().any(|r| r.status == Status::Error) {
        exit::INFRA
    } else if all.iter().any(|r| r.status == Status::Fail) {
        exit::TEST_FAILED
    } else {
        exit::OK
    })
}
