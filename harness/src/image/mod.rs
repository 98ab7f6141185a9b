//! Guest images: a newc initramfs holding the agent as `/init`, the workloads under `/bin`, and
//! the kernel modules the agent loads, decompressed, with the load order in
//! `/lib/modules/kmatrix.load`.
//!
//! Images are content-addressed in the cache (`images/<sha256>.cpio`): the same inputs give the
//! same bytes and the same file, which is written once. An index keyed by the inputs' hash
//! (`image-inputs/<key>.json`, a few hundred bytes each: the embedded agent and workloads,
//! `guest.toml`, the kernel build, the options, extra files) names the image those inputs gave,
//! so a process that finds it neither decompresses modules nor assembles ~6 MB in memory (each
//! `cargo nextest` trial is a process of its own); `gc` removes entries whose image is gone. This module decides what goes in an image;
//! how a kernel's modules are found and ordered is `kernel/`'s job.

#![warn(missing_docs)]

pub mod arch;
pub mod cpio;

use crate::cache::{self, Cache};
use crate::kernel::{self, PreparedKernel};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

pub use assets::{AGENT, WORKLOADS, WORKLOAD_ALIASES};

/// `images/guest.toml`, embedded: what every image carries.
const GUEST_TOML: &str = include_str!("../../../images/guest.toml");

/// Why a guest image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// `images/guest.toml` (the modules an image carries) does not parse.
    #[error("malformed images/guest.toml")]
    GuestToml(#[source] toml::de::Error),
    /// The kernel's modules could not be resolved.
    #[error("cannot resolve guest modules for kernel {kernel}")]
    Modules {
        /// The kernel's id.
        kernel: String,
        /// The kernel provider's error.
        #[source]
        source: Box<kernel::KernelError>,
    },
    /// The image could not be written to the cache.
    #[error("cannot write image")]
    Write(#[source] std::io::Error),
    /// The cache could not be used.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    /// The guest's agent or workloads for the kernel's architecture could not be had.
    #[error(transparent)]
    Assets(#[from] arch::AssetsError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestSpec {
    channel_modules: Vec<String>,
    share_modules: Vec<String>,
    virtiofs_modules: Vec<String>,
    disk_modules: Vec<String>,
    net_modules: Vec<String>,
    modules: Vec<String>,
}

/// Choices that change what goes into an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageOptions {
    /// Include the virtio-serial driver modules (the preferred channel).
    pub virtio_channel: bool,
    /// Include the modules that mount the host's root, listed apart per file system in
    /// `/lib/modules/kmatrix-share.load` (9p over virtio) and `kmatrix-virtiofs.load`: the agent
    /// loads the chosen one's on first use, not at boot.
    pub share: bool,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions { virtio_channel: true, share: false }
    }
}

/// A built image in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    /// Where the cpio archive is in the cache.
    pub path: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// Its size in bytes.
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
    /// Its mode (permission bits, e.g. 0o755).
    pub mode: u32,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// [`build`] plus caller-supplied files.
pub fn build_with(
    cache: &Cache,
    kernel: &PreparedKernel,
    opts: ImageOptions,
    extra: &[ExtraFile],
) -> Result<Image, ImageError> {
    let assets = arch::assets(kernel.arch)?;
    let key = input_key(kernel, &assets, opts, extra);
    let index = cache.dir("image-inputs")?.join(format!("{key}.json"));
    if let Some(img) = indexed(&index) {
        cache.hold(&format!("image-{}", img.sha256))?;
        return Ok(img);
    }
    let img = assemble(cache, kernel, &assets, opts, extra)?;
    if let Ok(json) = serde_json::to_vec(&img) {
        // Only a shortcut: an index that cannot be written costs the next process a rebuild.
        let _ = cache::write_atomic(&index, &json);
    }
    Ok(img)
}

/// Bumped when what [`assemble`] puts in an image changes in a way its inputs do not show.
const LAYOUT: u32 = 2;

/// The hash of everything [`assemble`] reads: the kernel architecture's agent and workloads,
/// `guest.toml`, the kernel build (its package hash, else its files' identities), the options and
/// the extra files.
fn input_key(kernel: &PreparedKernel, assets: &arch::GuestAssets, opts: ImageOptions, extra: &[ExtraFile]) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(&LAYOUT.to_le_bytes());
    field(&assets.agent);
    for (name, bytes) in &assets.workloads {
        field(name.as_bytes());
        field(bytes);
    }
    for (name, target) in &assets.aliases {
        field(name.as_bytes());
        field(target.as_bytes());
    }
    field(GUEST_TOML.as_bytes());
    field(format!("{opts:?}").as_bytes());
    field(kernel.id.as_bytes());
    field(kernel.release.as_bytes());
    field(kernel.sha256.as_deref().unwrap_or("").as_bytes());
    for p in [&kernel.boot.modules_dir, &kernel.boot.config] {
        field(p.as_deref().map(file_identity).unwrap_or_default().as_bytes());
    }
    for f in extra {
        field(f.path.as_bytes());
        field(&f.mode.to_le_bytes());
        field(&f.data);
    }
    hex::encode(&h.finalize()[..16])
}

/// Path, size, mtime and inode: a file replaced in place (a local kernel rebuilt) changes them.
fn file_identity(p: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(p) {
        Ok(m) => format!("{}:{}:{}:{}", p.display(), m.len(), m.mtime(), m.ino()),
        Err(_) => p.display().to_string(),
    }
}

/// The image an index entry names, when that image is still in the cache whole.
/// Whether the index entry at `index` names an image still in the cache (`gc` removes those
/// that do not).
pub fn index_points_to_an_image(index: &std::path::Path) -> bool {
    indexed(index).is_some()
}

fn indexed(index: &std::path::Path) -> Option<Image> {
    let img: Image = serde_json::from_slice(&std::fs::read(index).ok()?).ok()?;
    let len = std::fs::metadata(&img.path).ok()?.len();
    (len == img.size).then_some(img)
}

/// Assemble the image in memory and write it to the cache under its content hash.
fn assemble(
    cache: &Cache,
    kernel: &PreparedKernel,
    assets: &arch::GuestAssets,
    opts: ImageOptions,
    extra: &[ExtraFile],
) -> Result<Image, ImageError> {
    let spec: GuestSpec = toml::from_str(GUEST_TOML).map_err(ImageError::GuestToml)?;
    let mut names: Vec<&str> = spec.modules.iter().map(String::as_str).collect();
    if opts.virtio_channel {
        names.extend(spec.channel_modules.iter().map(String::as_str));
    }
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
    // The other static workloads are names of the multi-call /bin/hello (see harness/build.rs):
    // a symlink keeps `comm` and argv[0] the workload's own name.
    for (name, target) in &assets.aliases {
        w.symlink(&format!("bin/{name}"), target).map_err(io)?;
    }
    let mut modules = Vec::new();
    let mut builtin = Vec::new();
    if kernel.boot.modules_dir.is_some() && !names.is_empty() {
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
    if kernel.boot.modules_dir.is_some() {
        // Files already in the image (boot modules, the other list's): written once.
        let mut written = modules.clone();
        let mut lists = vec![(&spec.disk_modules, "kmatrix-disk.load"), (&spec.net_modules, "kmatrix-net.load")];
        if opts.share {
            lists.push((&spec.share_modules, "kmatrix-share.load"));
            // A kernel without virtio-fs (before 5.4: Ubuntu's 4.15) shares over 9p only; the
            // share plan says so from the same config.
            if crate::vm::share::kernel_has_virtiofs(kernel.boot.config.as_deref()) != Some(false) {
                lists.push((&spec.virtiofs_modules, "kmatrix-virtiofs.load"));
            }
        }
        for (names, list) in lists {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let closure = kernel::module_closure(kernel, &names)
                .map_err(|source| ImageError::Modules { kernel: kernel.id.clone(), source: Box::new(source) })?;
            let mut load = String::new();
            for m in &closure.modules {
                let file = format!("{}.ko", m.name);
                if !written.contains(&file) {
                    let bytes = kernel::read_module(m).map_err(|source| ImageError::Modules {
                        kernel: kernel.id.clone(),
                        source: Box::new(source),
                    })?;
                    w.file(&format!("lib/modules/{file}"), 0o644, &bytes).map_err(io)?;
                    written.push(file.clone());
                }
                load.push_str(&format!("/lib/modules/{file}\n"));
            }
            w.file(&format!("lib/modules/{list}"), 0o644, load.as_bytes()).map_err(io)?;
        }
    }
    // The package's config, where the agent looks for it (Debian kernels have no
    // /proc/config.gz): `unsupported` verdicts can then cite the option itself.
    if let Some(cfg) = &kernel.boot.config {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_reuse_the_indexed_image_and_a_lost_image_is_rebuilt() {
        let (_dir, cache) = crate::cache::temp_cache();
        let k = PreparedKernel::empty("local-test", "6.1.0-test");
        let opts = ImageOptions::default();
        let a = build(&cache, &k, opts).unwrap();
        assert!(a.size > AGENT.len() as u64, "the image holds the agent");
        let x86 = arch::assets(k.arch).unwrap();
        let index = cache.dir("image-inputs").unwrap().join(format!("{}.json", input_key(&k, &x86, opts, &[])));
        assert!(index.is_file(), "the inputs' index entry is written");
        // The index is what answers now: a changed entry is believed while its image is whole.
        let mut fake: Image = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
        fake.builtin = vec!["from-the-index".into()];
        std::fs::write(&index, serde_json::to_vec(&fake).unwrap()).unwrap();
        assert_eq!(build(&cache, &k, opts).unwrap().builtin, ["from-the-index"]);
        // Other inputs, another key; a removed image is built again, with the same bytes.
        let extra = [ExtraFile { path: "/user/x".into(), mode: 0o644, data: b"x".to_vec() }];
        assert_ne!(input_key(&k, &x86, opts, &extra), input_key(&k, &x86, opts, &[]));
        // Another architecture's agent, another key (an arm64 guest rebuilt is a new image).
        let other = arch::GuestAssets { agent: b"another agent".as_slice().into(), ..x86.clone() };
        assert_ne!(input_key(&k, &other, opts, &[]), input_key(&k, &x86, opts, &[]));
        std::fs::remove_file(&a.path).unwrap();
        let again = build(&cache, &k, opts).unwrap();
        assert_eq!(again.sha256, a.sha256);
        assert!(again.builtin.is_empty(), "rebuilt, not taken from the stale index entry");
        assert!(again.path.is_file());
    }
}
