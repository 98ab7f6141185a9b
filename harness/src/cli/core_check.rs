//! `kmatrix core-check`: a BPF object's CO-RE relocations against each kernel's BTF, no boot.

use super::{tag_kernel, MirrorArgs};
use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use crate::kernel::{self, KernelSpec};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// `kmatrix core-check`: the object and the kernels to check it against.
#[derive(Debug, Args)]
pub struct CoreCheckArgs {
    /// The BPF object (clang -target bpf -g: CO-RE needs its BTF).
    pub object: PathBuf,
    /// Kernels, comma-separated: ids, specs, or groups of the matrix (`all`, `default`, `x86_64`,
    /// `arm64`).
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub kernels: Vec<String>,
    /// Where kernels come from: the mirror and whether an unsigned Release is accepted.
    #[command(flatten)]
    pub fetch: MirrorArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// An external BTF (BTFHub's, or `scripts/btf-from-headers.sh`'s) for kernels built without
    /// BTF: their relocations are computed against it. Kernels with BTF keep their own.
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
}

pub(crate) async fn core_check_cmd(a: CoreCheckArgs) -> Result<i32> {
    use crate::{bpf_object, core_check};
    let obj = bpf_object::open(&a.object).exit_code(exit::BAD_INPUT)?;
    let info = core_check::object_info(&obj).exit_code(exit::BAD_INPUT)?;
    if let Some(b) = &a.btf {
        crate::btf::external::read(b).exit_code(exit::BAD_INPUT)?;
    }
    let external = a.btf.clone();
    let named = if a.kernels.is_empty() { vec!["all".to_string()] } else { a.kernels.clone() };
    let kernels = kernel::expand_names(&named).map_err(tag_kernel).exit_code(exit::BAD_INPUT)?;
    let mut specs = Vec::new();
    for k in &kernels {
        let spec: KernelSpec = k.parse().with_context(|| format!("bad kernel {k:?}")).exit_code(exit::BAD_INPUT)?;
        specs.push(spec);
    }
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let opts = a.fetch.fetch_options();
    let report = tokio::task::spawn_blocking(move || -> Result<core_check::Report> {
        // Kernels come from the cache (fetched on first use); nothing boots.
        let mut prepared = Vec::new();
        for (id, spec) in kernels.iter().zip(&specs) {
            let k = kernel::prepare(spec, &cache, &opts)
                .map_err(tag_kernel)
                .with_context(|| format!("cannot prepare kernel {id}"))?;
            prepared.push(k);
        }
        let reports = std::thread::scope(|s| {
            let handles: Vec<_> = prepared
                .iter()
                .map(|k| {
                    let (obj, info, external) = (&obj, &info, external.as_deref());
                    s.spawn(move || {
                        core_check::check_kernel(obj, info, &k.id, &k.release, k.boot.btf.as_deref(), external)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect::<Result<Vec<_>, _>>()
        })
        .map_err(|_| anyhow::anyhow!("a core-check thread panicked"))?;
        Ok(core_check::report(&obj, &info, reports))
    })
    .await
    .context("core-check task died")??;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", core_check::render(&report));
    }
    Ok(if report.ok() { exit::OK } else { exit::TEST_FAILED })
}
