//! A kernel's `/lib/modules/<release>` as an installed kernel has it: its modules and the
//! indexes `depmod` writes at install time (`modules.dep.bin`, `modules.alias.bin`,
//! `modules.symbols`, ...), which `modprobe`, `modinfo NAME` and libkmod read and which the
//! `.deb` does not ship. Made once per kernel in the cache (`modtree/<release>_<key>/`) by
//! running the host's own `depmod -b` over links to the extracted modules, so nothing of the
//! kernel's entry is copied or changed. Where the host has no `depmod`, the tree keeps the
//! `modules.dep` kmatrix generates from `.modinfo` and says why it has no binary indexes.
//!
//! The guest sees it at `/lib/modules/<release>` of the shared host root (the agent's
//! `modtree.rs`), with `build` and `source` pointing at the fetched headers when there are any.
//! Not here: the modules the agent loads at boot (`modules.rs`, the image builder).

use super::error::{KernelError, Result};
use super::PreparedKernel;
use crate::cache::Cache;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

/// Written last: an entry without it is incomplete and is redone. Holds the note (how the
/// indexes were made).
const COMPLETE: &str = ".kmatrix-complete";

/// A kernel's modules directory with its indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleTree {
    /// `.../lib/modules/<release>`: `kernel/` (a link to the cache entry's), `modules.*`.
    pub dir: PathBuf,
    /// How the indexes were made: `depmod (kmod version 30)`, or why only the generated
    /// `modules.dep` is there.
    pub note: String,
}

/// The module tree of `kernel`, made on first use. A kernel without modules is an error.
pub fn module_tree(kernel: &PreparedKernel, cache: &Cache) -> Result<ModuleTree> {
    let src = kernel.boot.modules_dir.clone().ok_or_else(|| KernelError::NoModules { id: kernel.id.clone() })?;
    let release = kernel.release.clone();
    let mut h = Sha256::new();
    h.update(src.as_os_str().as_encoded_bytes());
    h.update(kernel.sha256.as_deref().unwrap_or("").as_bytes());
    let key = hex::encode(&h.finalize()[..8]);
    let parent = cache.dir("modtree")?;
    let entry = parent.join(format!("{release}_{key}"));
    let dir = entry.join("lib/modules").join(&release);
    if let Ok(note) = fs::read_to_string(entry.join(COMPLETE)) {
        return Ok(ModuleTree { dir, note: note.trim().to_string() });
    }
    let _guard = cache.lock(&format!("modtree-{release}_{key}"))?;
    if let Ok(note) = fs::read_to_string(entry.join(COMPLETE)) {
        return Ok(ModuleTree { dir, note: note.trim().to_string() });
    }
    let staging = tempfile::Builder::new().prefix(".staging-").tempdir_in(&parent).map_err(KernelError::io(&parent))?;
    let staged_dir = staging.path().join("lib/modules").join(&release);
    fs::create_dir_all(&staged_dir).map_err(KernelError::io(&staged_dir))?;
    for e in fs::read_dir(&src).map_err(KernelError::io(&src))? {
        let e = e.map_err(KernelError::io(&src))?;
        let (from, to) = (e.path(), staged_dir.join(e.file_name()));
        // Directories (kernel/) are linked; the small index and list files are copied, so
        // depmod's rewrites land here and never in the kernel's entry.
        let copied = if e.file_type().map_err(KernelError::io(&from))?.is_dir() {
            std::os::unix::fs::symlink(&from, &to)
        } else {
            fs::copy(&from, &to).map(|_| ())
        };
        copied.map_err(KernelError::io(&to))?;
    }
    let note = depmod(staging.path(), &release);
    fs::write(staging.path().join(COMPLETE), format!("{note}\n")).map_err(KernelError::io(staging.path()))?;
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, &entry) {
        let _ = fs::remove_dir_all(&staged);
        if !entry.join(COMPLETE).is_file() {
            return Err(KernelError::Io { path: entry, source: e });
        }
    }
    Ok(ModuleTree { dir, note })
}

/// Run the host's `depmod -b base release`; what it did, or why the tree has no binary indexes.
fn depmod(base: &Path, release: &str) -> String {
    let bin = ["/usr/sbin/depmod", "/sbin/depmod"].into_iter().map(PathBuf::from).find(|p| p.is_file());
    let Some(bin) = bin.or_else(|| which("depmod")) else {
        return "no depmod on the host (Debian's kmod): only the modules.dep kmatrix generates".into();
    };
    let version = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_default();
    match std::process::Command::new(&bin).arg("-a").arg("-b").arg(base).arg(release).output() {
        Ok(o) if o.status.success() && base.join("lib/modules").join(release).join("modules.dep.bin").is_file() => {
            format!("{} ({version})", bin.display())
        }
        Ok(o) => format!(
            "{} -b failed ({}): {}; only the modules.dep kmatrix generates",
            bin.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("")
        ),
        Err(e) => format!("{} could not run: {e}; only the modules.dep kmatrix generates", bin.display()),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}
