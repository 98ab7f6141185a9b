//! `kmatrix report`: render, diff and merge result files.

use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use crate::report as render;
use crate::run::results;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `kmatrix report`: a run rendered, or with a subcommand two runs diffed or files merged.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Diff or merge instead of rendering.
    #[command(subcommand)]
    pub cmd: Option<ReportCommand>,
    /// Run directory or results.jsonl to render.
    pub run: Option<PathBuf>,
    /// table, json, junit, html or ktap (KTAP version 1: a subtest per kernel).
    #[arg(long, default_value = "table", value_parser = ["table", "json", "junit", "html", "ktap"])]
    pub format: String,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// What `kmatrix report` does besides rendering one run.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Cells that changed between two runs (`diff A B`), or every cell of a candidate run
    /// classified against a baseline, with an exit code CI gates on (`diff --baseline A
    /// --candidate B`).
    Diff {
        /// The older run directory or results.jsonl (lists the changed cells; exit 0).
        #[arg(conflicts_with_all = ["baseline", "candidate"], requires = "after")]
        before: Option<PathBuf>,
        /// The newer run directory or results.jsonl.
        after: Option<PathBuf>,
        /// The baseline run directory or results.jsonl: every (kernel, scenario) of it and of
        /// --candidate is new-regression, fixed, still-failing, still-passing, coverage-added,
        /// coverage-removed or inconclusive (another kernel build, accelerator, guest size or
        /// parameters).
        #[arg(long, requires = "candidate")]
        baseline: Option<PathBuf>,
        /// The candidate run directory or results.jsonl.
        #[arg(long, requires = "baseline")]
        candidate: Option<PathBuf>,
        /// With --baseline: the classes that make the exit code 1, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "new-regression", value_parser = diff_class, requires = "baseline")]
        fail_on: Vec<render::diff::Class>,
        /// Print the changes (or the classified cells) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The compatibility table of a run: one row per scenario, one column per kernel in version
    /// order, each cell its status and why, and per scenario the first kernel where it passes
    /// beside its declared `since` (a pass below it is listed as a finding).
    Compat {
        /// Run directory or results.jsonl.
        run: PathBuf,
        /// markdown, json or html.
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "json", "html"])]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// The compatibility table of one or more runs as a static site to publish (GitHub Pages):
    /// `index.html` with every cell a link to its detail, and a page per scenario with each
    /// kernel's cell (why, evidence, counts, build, guest, excerpt, rerun command line).
    Site {
        /// Run directories or results.jsonl files (a later run's cell replaces an earlier one's).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The directory to write the site into: must not exist, or be empty.
        #[arg(long)]
        out: PathBuf,
    },
    /// Join result files (e.g. CI shards) into one results.jsonl.
    Merge {
        /// Run directories or results.jsonl files, joined in this order.
        inputs: Vec<PathBuf>,
        /// The results.jsonl to append them to (created if missing).
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
}

fn diff_class(s: &str) -> std::result::Result<render::diff::Class, String> {
    s.parse().map_err(|e: render::diff::DiffError| e.to_string())
}

/// `report diff --baseline --candidate`: every cell classified, printed, and the gate's exit code.
fn gate(
    baseline: &std::path::Path,
    candidate: &std::path::Path,
    fail_on: &[render::diff::Class],
    json: bool,
) -> Result<i32> {
    let b = read_results(baseline).context("the baseline run")?;
    let c = read_results(candidate).context("the candidate run")?;
    let cells = render::diff::classify(&b, &c)
        .with_context(|| format!("baseline {} against candidate {}", baseline.display(), candidate.display()))
        .exit_code(exit::BAD_INPUT)?;
    let failed = render::diff::gate_fails(&cells, fail_on);
    if json {
        let v = serde_json::json!({
            "baseline": baseline.display().to_string(),
            "candidate": candidate.display().to_string(),
            "fail_on": fail_on,
            "failed": failed,
            "counts": render::diff::counts(&cells),
            "cells": cells,
        });
        emit(&(serde_json::to_string_pretty(&v)? + "\n"))?;
    } else {
        emit(&render::diff::render_classified(&cells, fail_on))?;
    }
    Ok(if failed { exit::TEST_FAILED } else { exit::OK })
}

/// What goes before an artifact's path (relative to the run directory) for a page written to
/// `output`: nothing when the page sits in the run directory, else the run directory's absolute
/// path (a page on stdout goes wherever the caller puts it).
fn links_from(run: &std::path::Path, output: Option<&std::path::Path>) -> String {
    let file = results::file_in(run);
    let dir = file.parent().map(|d| if d.as_os_str().is_empty() { std::path::Path::new(".") } else { d });
    let Some(dir) = dir.and_then(|d| std::fs::canonicalize(d).ok()) else { return String::new() };
    let page_dir =
        output.and_then(|o| o.parent()).map(|d| if d.as_os_str().is_empty() { std::path::Path::new(".") } else { d });
    match page_dir.and_then(|d| std::fs::canonicalize(d).ok()) {
        Some(p) if p == dir => String::new(),
        _ => format!("{}/", dir.display()),
    }
}

/// Each scenario's declared `since`, from the agent's catalogue.
fn catalogue_since() -> Result<std::collections::BTreeMap<String, String>> {
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    Ok(crate::catalogue::load(&cache)
        .context("cannot list the agent's catalogue (each scenario's since)")
        .exit_code(exit::INFRA)?
        .into_iter()
        .map(|s| (s.id, s.since))
        .collect())
}

/// The results of a run directory or results file; one that cannot be read is bad input.
pub(super) fn read_results(p: &std::path::Path) -> Result<Vec<kmatrix_proto::ScenarioResult>> {
    results::read_run(p).exit_code(exit::BAD_INPUT)
}

pub(crate) fn report_cmd(a: ReportArgs) -> Result<i32> {
    match a.cmd {
        Some(ReportCommand::Diff { before, after, baseline, candidate, fail_on, json }) => {
            if let (Some(b), Some(c)) = (&baseline, &candidate) {
                return gate(b, c, &fail_on, json);
            }
            let (Some(before), Some(after)) = (before, after) else {
                return Err(anyhow::anyhow!("report diff needs two runs: BEFORE AFTER, or --baseline A --candidate B"))
                    .exit_code(exit::BAD_INPUT);
            };
            let d = render::diff::diff(&read_results(&before)?, &read_results(&after)?);
            if json {
                emit(&(serde_json::to_string_pretty(&d)? + "\n"))?;
            } else {
                emit(&render::diff::render(&d))?;
            }
            Ok(exit::OK)
        }
        Some(ReportCommand::Compat { run, format, output }) => {
            let results = read_results(&run)?;
            let t = render::compat::build(&results, &catalogue_since()?);
            let text = match format.as_str() {
                "json" => serde_json::to_string_pretty(&t)? + "\n",
                "html" => render::compat::html(&t),
                _ => render::compat::markdown(&t),
            };
            match output {
                Some(o) => std::fs::write(&o, text)
                    .with_context(|| format!("cannot write {}", o.display()))
                    .exit_code(exit::INFRA)?,
                None => emit(&text)?,
            }
            Ok(exit::OK)
        }
        Some(ReportCommand::Site { runs, out }) => {
            let mut read = Vec::new();
            for r in &runs {
                read.push(render::site::Run { path: r.display().to_string(), results: read_results(r)? });
            }
            let w = match render::site::write(&out, &read, &catalogue_since()?) {
                Ok(w) => w,
                Err(e @ (render::site::SiteError::Empty { .. } | render::site::SiteError::NotEmpty(_))) => {
                    return Err(e).context("report site").exit_code(exit::BAD_INPUT)
                }
                Err(e) => return Err(e).context("report site").exit_code(exit::INFRA),
            };
            eprintln!(
                "report site: {} pages, {} cells, in {} (open {})",
                w.pages,
                w.cells,
                out.display(),
                out.join("index.html").display()
            );
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
            let mut w = results::ResultsWriter::open(&output).exit_code(exit::INFRA)?;
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
            let kernels = results::kernels(&results);
            let text = match a.format.as_str() {
                "json" => {
                    let s = render::table::Summary::of(&results);
                    serde_json::to_string_pretty(&serde_json::json!({
                        "summary": {"pass": s.pass, "fail": s.fail, "unsupported": s.unsupported, "xfail": s.xfail, "flaky": s.flaky, "error": s.error, "causes": s.causes},
                        "kernels": kernels,
                        "results": results,
                    }))? + "\n"
                }
                "junit" => render::junit::render(&results),
                "ktap" => render::ktap::render(&results, &kernels, &run.display().to_string()),
                "html" => render::html::render(
                    &results,
                    &kernels,
                    &format!("kmatrix — {}", run.display()),
                    &run.display().to_string(),
                    &links_from(&run, a.output.as_deref()),
                ),
                _ => format!(
                    "{}\n{}\n",
                    render::table::render(&results, &kernels, false),
                    render::table::Summary::of(&results).line()
                ),
            };
            match a.output {
                // The path is the caller's: one that cannot be written is bad input, not a
                // broken machine.
                Some(o) => crate::cache::write_atomic(&o, text.as_bytes())
                    .with_context(|| format!("cannot write {}", o.display()))
                    .exit_code(exit::BAD_INPUT)?,
                None => emit(&text)?,
            }
            Ok(exit::OK)
        }
    }
}

/// Write `text` to stdout. A reader that has gone away (`kmatrix report diff A B | head -1`)
/// ends the output quietly: `print!` would panic on the broken pipe (Rust ignores SIGPIPE).
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write the report to stdout").exit_code(exit::INFRA),
    }
}
