//! `kmatrix scenarios list`: the catalogue.

use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use anyhow::Result;
use clap::Subcommand;

/// What `kmatrix scenarios` shows of the catalogue.
#[derive(Debug, Subcommand)]
pub enum ScenariosCommand {
    /// List every scenario with its `since` and requirements.
    List {
        /// Print the catalogue as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn scenarios_list(json: bool) -> Result<i32> {
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let cat = crate::catalogue::load(&cache).exit_code(exit::INFRA)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&cat)?);
        return Ok(exit::OK);
    }
    let w = cat.iter().map(|s| s.id.len()).max().unwrap_or(10);
    println!("{:w$}  {:6}  summary / requires", "scenario", "since");
    for s in &cat {
        println!("{:w$}  {:6}  {}", s.id, s.since, s.summary);
        if !s.requires.is_empty() {
            println!("{:w$}  {:6}    requires: {}", "", "", s.requires.join("; "));
        }
    }
    println!("{} scenarios", cat.len());
    Ok(exit::OK)
}
