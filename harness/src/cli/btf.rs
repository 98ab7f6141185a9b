//! `kmatrix btf from-headers`: an external BTF (for `--btf`) made from a kernel build's headers
//! package, fetched through the kernel provider with its chain of trust.

use super::{tag_kernel, MirrorArgs};
use crate::cache::Cache;
use crate::exit::{self, ExitContext};
use crate::kernel::{self, Arch, KernelSpec};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `kmatrix btf ...`.
#[derive(Debug, Subcommand)]
pub enum BtfCommand {
    /// Make a BTF file from a kernel build's headers (clang -g, then pahole): the types CO-RE
    /// tracing objects read (task_struct, the syscall tracepoints' structs), for `--btf` on a
    /// kernel built without BTF. Needs clang and pahole (dwarves).
    FromHeaders(FromHeadersArgs),
}

/// The build whose headers to use and where to write the BTF.
#[derive(Debug, Args)]
pub struct FromHeadersArgs {
    /// The kernel build: a matrix id or a spec (`ubuntu:4.15.0-212`, `debian:...`).
    #[arg(long, short = 'k')]
    pub kernel: String,
    /// Where to write the BTF.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// More kernel headers to take types from (`linux/fs.h`), repeatable.
    #[arg(long = "include", value_name = "HEADER")]
    pub includes: Vec<String>,
    /// Where kernels come from.
    #[command(flatten)]
    pub fetch: MirrorArgs,
}

pub(crate) async fn btf_cmd(cmd: BtfCommand) -> Result<i32> {
    let BtfCommand::FromHeaders(a) = cmd;
    let spec: KernelSpec =
        a.kernel.parse().with_context(|| format!("bad kernel {:?}", a.kernel)).exit_code(exit::BAD_INPUT)?;
    let cache = Cache::from_env().exit_code(exit::INFRA)?;
    let opts = a.fetch.fetch_options();
    let id = a.kernel.clone();
    let (tree, arch) = tokio::task::spawn_blocking(move || -> Result<_> {
        let k =
            kernel::prepare(&spec, &cache, &opts).map_err(tag_kernel).with_context(|| format!("cannot fetch {id}"))?;
        let tree = kernel::headers(&k, &cache, &opts).map_err(tag_kernel).context("cannot fetch its headers")?;
        Ok((tree, k.arch))
    })
    .await
    .context("kernel task died")??;
    let arch = match arch {
        Arch::X86_64 => "x86",
        Arch::Arm64 => "arm64",
    };
    let types = crate::btf::from_headers::make(&tree.dir, arch, &a.includes, &a.out)
        .with_context(|| format!("cannot make a BTF from the headers of {} ({})", a.kernel, tree.release))
        .exit_code(exit::INFRA)?;
    println!("{}: {types} types from the headers of {} ({})", a.out.display(), tree.release, tree.packages.join(", "));
    Ok(exit::OK)
}
