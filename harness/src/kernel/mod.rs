//! The kernel provider: turns a kernel spec (`debian-6.1`, `debian:6.12.57-1`, a local bzImage)
//! into files on disk a VM can boot — bzImage, the uncompressed PVH `vmlinux`, its BTF, config and
//! modules with a `modules.dep` — fetched from the distribution mirror, verified along the
//! archive's chain of trust, and cached.
//!
//! It does not boot anything or build guest images; `vm/` and `image/` take a [`PreparedKernel`]
//! from here. All functions block (network and disk); async callers use `spawn_blocking`.

#![warn(missing_docs)]

pub mod arch;
mod archive;
mod closure;
pub mod debian;
mod describe;
mod error;
pub mod files;
mod headers;
mod info;
mod local;
mod manifest;
pub mod matrix;
pub mod mirror;
mod modtree;
mod prepare;
mod prepared;
mod source;
mod spec;
mod store;
pub mod ubuntu;

#[cfg(test)]
mod tests;

pub use arch::Arch;
pub use archive::{Archive, AvailableKernel};
pub use closure::{module_closure, read_module, ModuleClosure, ModuleFile};
pub use debian::{changelog, index, version};
pub use describe::{BootFiles, Origin};
pub use error::KernelError;
use error::Result;
pub use files::compress::Compression;
pub use files::{bzimage, compress, config, deb, modules};
pub use headers::{headers, HeadersTree};
pub use index::{Signature, TrustOptions};
pub use info::{info, tracing_config, KernelInfo};
pub use matrix::{Distro, KernelsDir, Lock, LockedKernel, Matrix, MatrixKernel};
pub use mirror::Mirror;
pub use modtree::{module_tree, ModuleTree};
pub use prepare::{archive, available, prepare, update_lock};
pub use prepared::{Pinning, PreparedKernel};
pub use source::{selftests, source_dir, SelftestTree};
pub use spec::{FetchOptions, KernelSpec};
pub use store::gc;

/// The ids of the kernel matrix, in file order.
pub fn matrix_ids() -> Result<Vec<String>> {
    Ok(KernelsDir::try_locate(None)?.matrix()?.ids().into_iter().map(str::to_string).collect())
}

/// `names` as given to `--kernels`, each group ([`Matrix::group`]: `all`, `default`, `arm64`,
/// ...) replaced by its kernels, once each, in order; other names are kept for `KernelSpec`.
pub fn expand_names(names: &[String]) -> Result<Vec<String>> {
    let matrix = KernelsDir::try_locate(None)?.matrix()?;
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let ids = match matrix.group(n) {
            Some(ids) if ids.is_empty() => {
                return Err(KernelError::Invalid {
                    path: format!("--kernels {n}"),
                    detail: format!("the matrix has no kernel in group {n:?} (ids: {})", matrix.ids().join(", ")),
                })
            }
            Some(ids) => ids.into_iter().map(str::to_string).collect(),
            None => vec![n.clone()],
        };
        for id in ids {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// The lane each of `ids` runs when a run names none, in order: its entry's `lane` in the
/// matrix in use, else every lane. A kernel outside the matrix (a spec, a file) runs every lane.
pub fn default_lanes(ids: &[String]) -> Result<Vec<crate::catalogue::Lane>> {
    let matrix = KernelsDir::try_locate(None)?.matrix()?;
    Ok(ids.iter().map(|id| matrix.get(id).and_then(|k| k.lane).unwrap_or(crate::catalogue::Lane::All)).collect())
}

/// The ids of the default matrix (see [`Matrix::default_ids`]), in file order.
pub fn default_ids() -> Result<Vec<String>> {
    Ok(KernelsDir::try_locate(None)?.matrix()?.default_ids().into_iter().map(str::to_string).collect())
}
