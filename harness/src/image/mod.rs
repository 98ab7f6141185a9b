//! Guest images: a newc initramfs holding the agent as `/init`, the workloads under `/bin`, and
//! the kernel modules the agent loads, decompressed, with the load order in
//! `/lib/modules/kmatrix.load`.
//!
//! Images are content-addressed in the cache (`images/<sha256>.cpio`): the same inputs give the
//! same bytes and the same file, which is written once. This module decides what goes in an image;
//! how a kernel's modules are found and ordered is `kernel/`'s job.

pub mod arch;
pub mod cpio;

use crate::cache::{self, Cache};
use crate::kernel::{self, PreparedKernel};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

pub use assets::{AGENT, WORKLOADS};

/// `images/guest.toml`, embedded: what every image carries.
const GUEST_TOML: &str = include_str!("../../../images/guest.toml");

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("malformed images/guest.toml")]
    GuestToml(#[source] toml::de::Error),
    #[error("cannot resolve guest modules for kernel {kernel}")]
    Modules {
        kernel: String,
        #[source]
        source: Box<kernel::KernelError>,
    },
    #[error("cannot write image")]
    Write(#[source] std::io::Error),
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    #[error(transparent)]
    Assets(#[from] arch::AssetsError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestSpec {
    channel_modules: Vec<String>,
    share_modules: Vec<String>,
    modules: Vec<String>,
}

/// Choices that change what goes into an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageOptions {
    /// Include the virtio-serial driver modules (the preferred channel).
    pub virtio_channel: bool,
    /// Include the modules that mount the host's root (9p over virtio), listed apart in
    /// `/lib/modules/kmatrix-share.load`: the agent loads them on first use, not at boot.
    pub share: bool,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions { virtio_channel: true, share: false }
    }
}

/// A built image in the cache.
#[derive(Debug, Clone)]
pub struct Image {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Modules in load order (file names as they sit under /lib/modules in the guest).
    pub modules: Vec<String>,
    /// Requested modules the kernel has built in.
    pub builtin: Vec<String>,
}

impl Image {
    /// Whether the guest can get a virtio-serial port (driver built in or shipped as a module).
    pub fn has_virtio_console(&self) -> bool {
        let has = |n: &str| self.modules.iter().chain(&self.builtin).any(|m| m.trim_end_matches(".ko") == n);
        has("virtio_console")
    }
}

/// Build (or find) the image for `kernel`.
pub fn build(cache: &Cache, kernel: &PreparedKernel, opts: ImageOptions) -> Result<Image, ImageError> {
    build_with(cache, kernel, opts, &[])
}

/// A file a caller adds to the image (e.g. a host program for `kmatrix exec` and its libraries).
#[derive(Debug, Clone)]
pub struct ExtraFile {
    /// Absolute path in the guest.
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// [`build`] plus caller-supplied files.
pub fn build_with(
    cache: &Cache,
    kernel: &PreparedKernel,
    opts: ImageOptions,
    extra: &[ExtraFile],
) -> Result<Image, ImageError> {
    let spec: GuestSpec = toml::from_str(GUEST_TOML).map_err(ImageError::GuestToml)?;
    let mut names: Vec<&str> = spec.modules.iter().map(String::as_str).collect();
    if opts.virtio_channel {
        names.extend(spec.channel_modules.iter().map(String::as_str));
    }
    let assets = arch::assets(kernel.arch)?;
    let mut w = cpio::CpioWriter::new(Vec::with_capacity(assets.agent.len() + (8 << 20)));
    let io = ImageError::Write;
    for d in ["dev", "proc", "sys", "tmp", "run", "bin", "lib/modules"] {
        w.dir(d, 0o755).map_err(io)?;
    }
    // Without /dev/console in the initramfs, PID 1 starts with no stdin/stdout/stderr.
    w.char_dev("dev/console", 0o600, 5, 1).map_err(io)?;
    w.file("init", 0o755, &assets.agent).map_err(io)?;
    for (name, bytes) in &assets.workloads {
        w.file(&format!("bin/{name}"), 0o755, bytes).map_err(io)?;
    }
    let mut modules = Vec::new();
    let mut builtin = Vec::new();
    if kernel.modules_dir.is_some() && !names.is_empty() {
        let closure = kernel::module_closure(kernel, &names)
            .map_err(|source| ImageError::Modules { kernel: kernel.id.clone(), source: Box::new(source) })?;
        builtin = closure.builtin.clone();
        let mut load = String::new();
        for m in &closure.modules {
            let bytes = kernel::read_module(m)
                .map_err(|source| ImageError::Modules { kernel: kernel.id.clone(), source: Box::new(source) })?;
            let file = format!("{}.ko", m.name);
            w.file(&format!("lib/modules/{file}"), 0o644, &bytes).map_err(io)?;
            load.push_str(&format!("/lib/modules/{file}\n"));
            modules.push(file);
        }
        w.file("lib/modules/kmatrix.load", 0o644, load.as_bytes()).map_err(io)?;
    }
    if opts.share && kernel.modules_dir.is_some() {
        let names: Vec<&str> = spec.share_modules.iter().map(String::as_str).collect();
        let closure = kernel::module_closure(kernel, &names)
            .map_err(|source| ImageError::Modules { kernel: kernel.id.clone(), source: Box::new(source) })?;
        let mut load = String::new();
        for m in &closure.modules {
            let file = format!("{}.ko", m.name);
            if !modules.contains(&file) {
                let bytes = kernel::read_module(m)
                    .map_err(|source| ImageError::Modules { kernel: kernel.id.clone(), source: Box::new(source) })?;
                w.file(&format!("lib/modules/{file}"), 0o644, &bytes).map_err(io)?;
            }
            load.push_str(&format!("/lib/modules/{file}\n"));
        }
        w.file("lib/modules/kmatrix-share.load", 0o644, load.as_bytes()).map_err(io)?;
    }
    // The package's config, where the agent looks for it (Debian kernels have no
    // /proc/config.gz): `unsupported` verdicts can then cite the option itself.
    if let Some(cfg) = &kernel.config {
        let bytes = std::fs::read(cfg).map_err(io)?;
        w.file(&format!("boot/config-{}", kernel.release), 0o644, &bytes).map_err(io)?;
    }
    for f in extra {
        w.file(&f.path, f.mode, &f.data).map_err(io)?;
    }
    let bytes = w.finish().map_err(io)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let path = cache.dir("images")?.join(format!("{sha256}.cpio"));
    cache.hold(&format!("image-{sha256}"))?;
    let fresh = std::fs::metadata(&path).map(|m| m.len() == bytes.len() as u64).unwrap_or(false);
    if !fresh {
        cache::write_atomic(&path, &bytes)?;
    }
    Ok(Image { path, sha256, size: bytes.len() as u64, modules, builtin })
}
