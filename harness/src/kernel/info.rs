//! What can be known about a prepared kernel from its files, without booting it: version, BTF,
//! PVH, and the tracing options its config sets.

use std::collections::BTreeMap;
use std::fs;

use serde::Serialize;

use super::describe::Origin;
use super::error::{KernelError, Result};
use super::files::config;
use super::prepared::{Pinning, PreparedKernel};

/// What can be known about a kernel before booting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelInfo {
    /// The kernel's id (matrix id, `debian:<version>` or `local:<path>`).
    pub id: String,
    /// `uname -r`.
    pub release: String,
    /// The package it came from; its JSON shows only `package` and `package_version`.
    #[serde(flatten, serialize_with = "Origin::serialize_package")]
    pub origin: Origin,
    /// Whether the lock pins its bytes.
    pub pinning: Pinning,
    /// `vmlinux.btf` was extracted from the image.
    pub btf_file: bool,
    /// `CONFIG_DEBUG_INFO_BTF`, when the config is known.
    pub btf_config: Option<bool>,
    /// It has a PVH entry note, so it boots directly from `vmlinux`.
    pub pvh: bool,
    /// Each of [`config::TRACING_OPTIONS`] with its value (`y`, `m`, a string), `None` when not set
    /// or no config is known.
    pub options: Vec<(String, Option<String>)>,
}

/// Version, BTF and tracing options of a prepared kernel, from its files (no VM).
pub fn info(kernel: &PreparedKernel) -> Result<KernelInfo> {
    let cfg = match &kernel.boot.config {
        Some(p) => Some(config::KernelConfig::parse(&fs::read_to_string(p).map_err(KernelError::io(p))?)),
        None => None,
    };
    Ok(KernelInfo {
        id: kernel.id.clone(),
        release: kernel.release.clone(),
        origin: kernel.origin.clone(),
        pinning: kernel.pinning,
        btf_file: kernel.boot.btf.as_ref().is_some_and(|p| p.is_file()),
        btf_config: cfg.as_ref().map(|c| c.is_enabled("DEBUG_INFO_BTF")),
        pvh: kernel.boot.vmlinux.is_some(),
        options: config::TRACING_OPTIONS
            .iter()
            .map(|o| (o.to_string(), cfg.as_ref().and_then(|c| c.get(o)).map(str::to_string)))
            .collect(),
    })
}

/// The [`config::TRACING_OPTIONS`] the kernel's config sets (`KPROBES` → `y`); empty when the
/// config is unknown or unreadable.
pub fn tracing_config(kernel: &PreparedKernel) -> BTreeMap<String, String> {
    let Some(text) = kernel.boot.config.as_ref().and_then(|p| fs::read_to_string(p).ok()) else {
        return BTreeMap::new();
    };
    let cfg = config::KernelConfig::parse(&text);
    config::TRACING_OPTIONS.iter().filter_map(|o| cfg.get(o).map(|v| (o.to_string(), v.to_string()))).collect()
}
