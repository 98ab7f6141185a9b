//! `kmatrix gc`: the cache and the run directories within a size budget, least recently used
//! first, never what a running kmatrix holds.

use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// `kmatrix gc`: the size budget and the run directories it covers.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Size budget for the cache and the run directories: bytes, or a number with K, M, G or T
    /// (powers of 1024).
    #[arg(long, default_value = crate::gc::DEFAULT_MAX_SIZE, value_parser = crate::gc::parse_size)]
    pub max_size: u64,
    /// A directory holding run directories (`run-*`), as `run --out` names it (repeatable).
    #[arg(long, default_value = "target/kmatrix")]
    pub runs: Vec<PathBuf>,
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn gc_cmd(a: GcArgs) -> Result<i32> {
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let opts = crate::gc::GcOptions { max_size: a.max_size, runs: a.runs, dry_run: a.dry_run };
    let report = tokio::task::spawn_blocking(move || crate::gc::gc(&cache, &opts))
        .await
        .context("gc task died")?
        .context("gc failed")
        .exit_code(exit::INFRA)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::gc::render(&report));
    }
    Ok(exit::OK)
}
