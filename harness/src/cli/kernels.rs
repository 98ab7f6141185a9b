//! `kmatrix kernels`: list, fetch, inspect, list a line's builds, update the lock, gc.

use super::{tag_kernel, MirrorArgs};
use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use crate::kernel::{self, KernelSpec};
use anyhow::{Context, Result};
use clap::Subcommand;

/// What `kmatrix kernels` does with the kernel matrix and the cache.
#[derive(Debug, Subcommand)]
pub enum KernelsCommand {
    /// Fetch (download, verify, extract) kernels into the cache.
    Fetch {
        /// Kernel ids or specs; default: the whole matrix.
        ids: Vec<String>,
        /// Where kernels come from: the mirror and whether an unsigned Release is accepted.
        #[command(flatten)]
        fetch: MirrorArgs,
    },
    /// The kernels of kernels/matrix.toml with what the lock pins.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What a kernel can do, read from its package before booting it.
    Info {
        /// A kernel id (`debian-6.1`) or spec (`debian:<version>`, a path to a kernel image).
        id: String,
        /// Where kernels come from: the mirror and whether an unsigned Release is accepted.
        #[command(flatten)]
        fetch: MirrorArgs,
        /// Print what was found as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every build of a kernel line the mirror has (for bisecting): `--line 6.12`.
    Available {
        /// The kernel line, upstream major.minor (`6.12`).
        #[arg(long)]
        line: String,
        /// The distribution whose archive is listed (`debian`, `ubuntu`).
        #[arg(long, value_enum, default_value_t = kernel::Distro::Debian)]
        distro: kernel::Distro,
        /// Where kernels come from: the mirror and whether an unsigned Release is accepted.
        #[command(flatten)]
        fetch: MirrorArgs,
        /// Print the builds as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-resolve every matrix kernel on the mirror and rewrite kernels/kernels.lock.
    Update {
        /// Where kernels come from: the mirror and whether an unsigned Release is accepted.
        #[command(flatten)]
        fetch: MirrorArgs,
    },
    /// Remove cached kernels the lock no longer names.
    Gc,
}

pub(crate) async fn kernels_fetch(ids: Vec<String>, fetch: MirrorArgs) -> Result<i32> {
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let ids = if ids.is_empty() {
        kernel::matrix_ids().context("cannot read the kernel matrix").exit_code(exit::BAD_INPUT)?
    } else {
        ids
    };
    for id in ids {
        let spec: KernelSpec = id.parse().with_context(|| format!("bad kernel {id:?}")).exit_code(exit::BAD_INPUT)?;
        let opts = fetch.fetch_options();
        let c = cache.clone();
        let k =
            tokio::task::spawn_blocking(move || kernel::prepare(&spec, &c, &opts)).await.context("fetch task died")?;
        let k = k.map_err(tag_kernel).with_context(|| format!("cannot fetch {id}"))?;
        println!("{}: {} ({})", k.id, k.release, k.origin.package_version.as_deref().unwrap_or("local"));
    }
    Ok(exit::OK)
}

pub(crate) async fn kernels_other(cmd: KernelsCommand) -> Result<i32> {
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let blocking = |f: Box<dyn FnOnce() -> Result<i32> + Send>| async move {
        tokio::task::spawn_blocking(f).await.context("kernel task died")?
    };
    match cmd {
        KernelsCommand::Fetch { .. } => unreachable!("handled by kernels_fetch"),
        KernelsCommand::List { json } => {
            blocking(Box::new(move || {
                let dir = kernel::KernelsDir::locate(None);
                let matrix = dir.matrix().map_err(tag_kernel)?;
                let lock = dir.lock().ok();
                let mut rows = Vec::new();
                for k in &matrix.kernels {
                    let pinned = lock.as_ref().and_then(|l| l.kernels.get(&k.id));
                    rows.push(serde_json::json!({
                        "id": k.id, "suite": k.suite, "line": k.line,
                        "pinned": pinned.map(|p| p.version.clone()),
                        "release": pinned.map(|p| p.release.clone()),
                    }));
                }
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    for r in &rows {
                        println!(
                            "{:14} {:18} line {:6} {}",
                            r["id"].as_str().unwrap_or(""),
                            r["suite"].as_str().unwrap_or(""),
                            r["line"].as_str().unwrap_or(""),
                            match (r["pinned"].as_str(), r["release"].as_str()) {
                                (Some(v), Some(rel)) => format!("pinned {v} ({rel})"),
                                _ => "not pinned: run `kmatrix kernels update`".into(),
                            }
                        );
                    }
                }
                Ok(exit::OK)
            }))
            .await
        }
        KernelsCommand::Info { id, fetch, json } => {
            blocking(Box::new(move || {
                let spec: KernelSpec =
                    id.parse().with_context(|| format!("bad kernel {id:?}")).exit_code(exit::BAD_INPUT)?;
                let opts = fetch.fetch_options();
                let k = kernel::prepare(&spec, &cache, &opts).map_err(tag_kernel)?;
                let info = kernel::info(&k).map_err(tag_kernel)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&info)?);
                } else {
                    println!(
                        "{} ({}{}), {:?}",
                        info.id,
                        info.release,
                        info.origin.package_version.as_ref().map(|v| format!(", package {v}")).unwrap_or_default(),
                        info.pinning
                    );
                    println!(
                        "PVH entry {}   BTF file {}   CONFIG_DEBUG_INFO_BTF {}",
                        info.pvh,
                        info.btf_file,
                        info.btf_config.map(|b| b.to_string()).unwrap_or_else(|| "unknown".into())
                    );
                    for (k, v) in &info.options {
                        println!("  CONFIG_{k:28} {}", v.as_deref().unwrap_or("is not set"));
                    }
                }
                Ok(exit::OK)
            }))
            .await
        }
        KernelsCommand::Available { line, distro, fetch, json } => {
            blocking(Box::new(move || {
                let opts = fetch.fetch_options();
                let v = kernel::available(distro, &line, &cache, &opts).map_err(tag_kernel)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    for a in &v {
                        println!("{:22} {:36} {:18} --kernel {}", a.version, a.package, a.suite, a.spec);
                    }
                    println!("{} builds of {line}", v.len());
                }
                Ok(exit::OK)
            }))
            .await
        }
        KernelsCommand::Update { fetch } => {
            blocking(Box::new(move || {
                let opts = fetch.fetch_options();
                let lock = kernel::update_lock(&cache, &opts).map_err(tag_kernel)?;
                for (id, k) in &lock.kernels {
                    println!("{:14} {} ({})", id, k.version, k.release);
                }
                Ok(exit::OK)
            }))
            .await
        }
        KernelsCommand::Gc => {
            blocking(Box::new(move || {
                let lock = kernel::KernelsDir::locate(None).lock().map_err(tag_kernel)?;
                let removed = kernel::gc(&cache, &lock).map_err(tag_kernel)?;
                for r in &removed {
                    println!("removed {}", r.display());
                }
                println!("{} entries removed", removed.len());
                Ok(exit::OK)
            }))
            .await
        }
    }
}
