//! `kmatrix trace RUN KERNEL::SCENARIO`: where a cell's artifacts are (Chrome trace, flame graph,
//! folded stacks). A results file from before artifacts were written gets them made now, from
//! what its results carry.

use crate::exit::{self, ExitContext};
use crate::report::artifacts;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// `kmatrix trace`: which run and which cell.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// A run directory or its results.jsonl.
    pub run: PathBuf,
    /// The cell, `<kernel>::<scenario>` as cargo test names trials (globs work in either part).
    pub cell: String,
    /// Print the files as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn trace_cmd(a: TraceArgs) -> Result<i32> {
    let Some((kernel, scenario)) = a.cell.split_once("::") else {
        return Err(anyhow::anyhow!(
            "{:?} is not a cell: write <kernel>::<scenario>, e.g. debian-6.1::ftrace.function_graph.nested",
            a.cell
        ))
        .exit_code(exit::BAD_INPUT);
    };
    let file = crate::run::results::file_in(&a.run);
    let run_dir = file.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let results = super::report::read_results(&a.run)?;
    let cells: Vec<&kmatrix_proto::ScenarioResult> = results
        .iter()
        .filter(|r| crate::run::matches_any(kernel, &r.kernel) && crate::run::matches_any(scenario, &r.scenario))
        .collect();
    if cells.is_empty() {
        return Err(anyhow::anyhow!("{} has no result for {}", file.display(), a.cell)).exit_code(exit::BAD_INPUT);
    }
    let mut files = Vec::new();
    for r in &cells {
        let recorded: Vec<PathBuf> = r.artifacts.iter().map(|p| run_dir.join(p)).collect();
        let paths = if !recorded.is_empty() && recorded.iter().all(|p| p.is_file()) {
            recorded
        } else {
            // Not written when the cell ran (an older kmatrix, or removed since): make them now.
            let mut r = (*r).clone();
            artifacts::write(&run_dir, &mut r).exit_code(exit::INFRA)?;
            r.artifacts.iter().map(|p| run_dir.join(p)).collect()
        };
        for p in paths {
            let bytes = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            files.push((r.kernel.clone(), r.scenario.clone(), p, bytes));
        }
    }
    if files.is_empty() {
        return Err(anyhow::anyhow!(
            "{} carries no trace data: no function_graph or trace lines in its excerpt, no collapsed stacks in its detail",
            a.cell
        ))
        .exit_code(exit::BAD_INPUT);
    }
    if a.json {
        let v: Vec<serde_json::Value> = files
            .iter()
            .map(|(k, s, p, b)| serde_json::json!({"kernel": k, "scenario": s, "path": p, "bytes": b}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (k, s, p, b) in &files {
            println!("{k}::{s}  {}  ({b} bytes)", p.display());
        }
    }
    Ok(exit::OK)
}
