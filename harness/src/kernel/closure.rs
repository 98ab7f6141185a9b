//! The modules a guest loads for a prepared kernel: the load-order closure of a set of module
//! names over the kernel's `modules.dep` (scanned from the modules when there is none, as for a
//! local kernel installed without depmod), each file checked against the cache entry's manifest,
//! and a module's bytes decompressed.
//!
//! It does not load modules: the image builder copies what [`module_closure`] returns into the
//! guest, and the agent loads them in that order. What a module file says about itself
//! (`.modinfo`, names, `modules.dep` text) is [`super::files::modules`]'s.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{KernelError, Result};
use super::files::compress::{decompress_all, Compression, MAX_MODULE};
use super::files::modules::{
    canonical_name, is_module, modinfo_depends, parse_builtin, parse_modules_dep, render_modules_dep,
};
use super::manifest::Manifest;
use super::prepared::PreparedKernel;

/// One module file to put in a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleFile {
    /// Canonical name: `-` replaced by `_`, no extension (`9pnet_virtio`).
    pub name: String,
    /// Where the file is on the host.
    pub path: PathBuf,
    /// How the file is compressed (`.ko.xz`, `.ko.zst`).
    pub compressed: Compression,
}

/// Modules to load, dependencies first, each once; and the requested names that are built into
/// the kernel (nothing to load).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModuleClosure {
    /// The files to load, dependencies first.
    pub modules: Vec<ModuleFile>,
    /// Requested names the kernel has built in.
    pub builtin: Vec<String>,
}

impl std::ops::Deref for ModuleClosure {
    type Target = [ModuleFile];
    fn deref(&self) -> &[ModuleFile] {
        &self.modules
    }
}

/// Build `modules.dep` text by reading every module under `dir` (for local kernels installed
/// without depmod).
fn scan_modules_dep(dir: &Path) -> Result<String> {
    let mut mods = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(KernelError::io(&d))? {
            let e = e.map_err(KernelError::io(&d))?;
            let p = e.path();
            let ft = e.file_type().map_err(KernelError::io(&p))?;
            if ft.is_dir() {
                stack.push(p);
            } else if let Some(rel) = p.strip_prefix(dir).ok().and_then(|r| r.to_str()).filter(|r| is_module(r)) {
                let raw = fs::read(&p).map_err(KernelError::io(&p))?;
                let ko = decompress_all(Compression::from_name(rel), &raw, MAX_MODULE).map_err(KernelError::io(&p))?;
                mods.insert(canonical_name(rel), (rel.to_string(), modinfo_depends(&ko).unwrap_or_default()));
            }
        }
    }
    Ok(render_modules_dep(&mods))
}

/// The modules to load for `names`, dependencies first, each once, and the names that are
/// built in. `-` and `_` are interchangeable in names, as with modprobe. Every returned module is
/// checked against the kernel's manifest (sha256) when it has one.
pub fn module_closure(kernel: &PreparedKernel, names: &[&str]) -> Result<ModuleClosure> {
    let dir = kernel.boot.modules_dir.as_ref().ok_or_else(|| KernelError::NoModules { id: kernel.id.clone() })?;
    let dep_path = dir.join("modules.dep");
    let dep_text = match fs::read_to_string(&dep_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => scan_modules_dep(dir)?,
        Err(source) => return Err(KernelError::Io { path: dep_path, source }),
    };
    let deps = parse_modules_dep(&dep_text);
    let builtin = match fs::read_to_string(dir.join("modules.builtin")) {
        Ok(t) => parse_builtin(&t),
        Err(_) => HashSet::new(),
    };
    let manifest = kernel.manifest.as_deref().map(Manifest::load).transpose()?;

    let mut out = ModuleClosure::default();
    let mut added = HashSet::new();
    for want in names {
        let name = canonical_name(want);
        let Some((path, list)) = deps.get(&name) else {
            if builtin.contains(&name) {
                if !out.builtin.contains(&name) {
                    out.builtin.push(name);
                }
                continue;
            }
            return Err(KernelError::ModuleNotFound { name: want.to_string(), dir: dir.clone() });
        };
        // modules.dep lists dependencies so that the last one is loaded first.
        for p in list.iter().rev().chain(std::iter::once(path)) {
            let n = canonical_name(p);
            if !added.insert(n.clone()) {
                continue;
            }
            let full = if Path::new(p).is_absolute() { PathBuf::from(p) } else { dir.join(p) };
            if let (Some(m), Some(root)) = (&manifest, kernel.manifest.as_deref().and_then(Path::parent)) {
                m.verify_file(root, &full)?;
            }
            out.modules.push(ModuleFile { name: n, compressed: Compression::from_name(p), path: full });
        }
    }
    Ok(out)
}

/// The module's ELF bytes, decompressed.
pub fn read_module(m: &ModuleFile) -> Result<Vec<u8>> {
    let raw = fs::read(&m.path).map_err(KernelError::io(&m.path))?;
    decompress_all(m.compressed, &raw, MAX_MODULE).map_err(|e| KernelError::Extract {
        what: m.path.display().to_string(),
        detail: format!("decompress {:?} module: {e}", m.compressed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::files::modules::tests::ko;

    #[test]
    fn closure_orders_dedups_and_reports_builtin() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("6.1.0-50-amd64");
        fs::create_dir_all(dir.join("kernel")).unwrap();
        // The real 9p lines of a depmod-generated modules.dep (Debian 6.1), compression added.
        fs::write(
            dir.join("modules.dep"),
            "kernel/fs/9p/9p.ko.xz: kernel/fs/fscache/fscache.ko.xz kernel/fs/netfs/netfs.ko.xz kernel/net/9p/9pnet.ko.xz\n\
             kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz\n\
             kernel/net/9p/9pnet.ko.xz:\n\
             kernel/fs/netfs/netfs.ko.xz:\n\
             kernel/fs/fscache/fscache.ko.xz: kernel/fs/netfs/netfs.ko.xz\n",
        )
        .unwrap();
        fs::write(dir.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\nkernel/drivers/virtio/virtio_pci.ko\n")
            .unwrap();
        let mut k = PreparedKernel::empty("t", "6.1.0-50-amd64");
        k.boot.modules_dir = Some(dir.clone());
        let c = module_closure(&k, &["9pnet-virtio", "9p", "virtio-pci", "9pnet_virtio"]).unwrap();
        let names: Vec<_> = c.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["9pnet", "9pnet_virtio", "netfs", "fscache", "9p"]);
        assert_eq!(c.builtin, ["virtio_pci"]);
        assert!(c.iter().all(|m| m.compressed == Compression::Xz));
        assert_eq!(c[4].path, dir.join("kernel/fs/9p/9p.ko.xz"));
        let e = module_closure(&k, &["nosuch"]).unwrap_err();
        assert!(e.to_string().starts_with("find module nosuch in "), "{e}");
    }

    #[test]
    fn local_dir_without_modules_dep_is_scanned() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        fs::create_dir_all(dir.join("kernel/a")).unwrap();
        fs::write(dir.join("kernel/a/top.ko"), ko("mid")).unwrap();
        fs::write(dir.join("kernel/a/mid.ko.xz"), crate::kernel::deb::build::xz(&ko("low"))).unwrap();
        fs::write(dir.join("kernel/a/low.ko"), ko("")).unwrap();
        let mut k = PreparedKernel::empty("t", "1");
        k.boot.modules_dir = Some(dir.to_path_buf());
        let c = module_closure(&k, &["top"]).unwrap();
        let names: Vec<_> = c.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["low", "mid", "top"]);
        assert_eq!(read_module(&c[1]).unwrap(), ko("low"));
    }
}
