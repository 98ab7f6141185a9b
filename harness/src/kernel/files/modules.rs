//! Kernel modules of a prepared kernel: `modules.dep` generation from each module's `.modinfo`,
//! the load-order closure of a set of module names, and reading (decompressing) a module.
//!
//! Debian ships `modules.order` and `modules.builtin` but no `modules.dep` (depmod runs at install
//! time), so kmatrix writes one itself. It does not load modules: the image builder copies what
//! [`module_closure`] returns into the guest, and the agent loads them in that order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::compress::{decompress_all, Compression, MAX_MODULE};
use super::error::{KernelError, Result};
use super::image::elf_section;
use super::store::Manifest;
use super::PreparedKernel;

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

/// `9pnet-virtio`, `9pnet_virtio.ko.xz`, `kernel/net/9p/9pnet_virtio.ko` → `9pnet_virtio`.
pub fn canonical_name(s: &str) -> String {
    let base = s.rsplit('/').next().unwrap_or(s);
    let base = [".xz", ".zst", ".gz"].iter().fold(base, |b, ext| b.strip_suffix(ext).unwrap_or(b));
    let base = base.strip_suffix(".ko").unwrap_or(base);
    base.replace('-', "_")
}

/// True for a file name that is a module (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`).
pub fn is_module(path: &str) -> bool {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().any(|e| path.ends_with(e))
}

/// The `depends=` list of a module's `.modinfo` (uncompressed module bytes).
pub fn modinfo_depends(ko: &[u8]) -> Option<Vec<String>> {
    let info = elf_section(ko, ".modinfo")?;
    for field in info.split(|&c| c == 0) {
        if let Some(v) = field.strip_prefix(b"depends=") {
            let v = String::from_utf8_lossy(v);
            return Some(v.split(',').filter(|d| !d.is_empty()).map(canonical_name).collect());
        }
    }
    Some(Vec::new())
}

/// Render `modules.dep` from each module's path (relative to the modules directory) and direct
/// dependencies (by name). Each line lists the transitive dependencies so that loading them from
/// the last to the first, then the module, works — what depmod writes and modprobe expects.
pub fn render_modules_dep(mods: &BTreeMap<String, (String, Vec<String>)>) -> String {
    let mut out = String::new();
    let mut by_path: Vec<(&String, &String)> = mods.iter().map(|(n, (p, _))| (p, n)).collect();
    by_path.sort();
    for (path, name) in by_path {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        visit(name, mods, &mut seen, &mut order);
        order.pop(); // the module itself comes last in load order
        let deps: Vec<&str> = order.iter().rev().filter_map(|n| mods.get(n.as_str()).map(|m| m.0.as_str())).collect();
        out.push_str(path);
        out.push(':');
        for d in deps {
            out.push(' ');
            out.push_str(d);
        }
        out.push('\n');
    }
    out
}

/// Post-order DFS: dependencies before dependents. Unknown names (built-in or missing) are
/// skipped; `seen` also breaks cycles.
fn visit(
    name: &str,
    mods: &BTreeMap<String, (String, Vec<String>)>,
    seen: &mut HashSet<String>,
    order: &mut Vec<String>,
) {
    if !seen.insert(name.to_string()) {
        return;
    }
    let Some((_, deps)) = mods.get(name) else { return };
    for d in deps {
        visit(d, mods, seen, order);
    }
    order.push(name.to_string());
}

/// Parsed `modules.dep`: canonical name → (path relative to the modules dir, deps as paths).
pub fn parse_modules_dep(text: &str) -> HashMap<String, (String, Vec<String>)> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let Some((path, deps)) = line.split_once(':') else { continue };
        let path = path.trim();
        let deps = deps.split_whitespace().map(str::to_string).collect();
        m.insert(canonical_name(path), (path.to_string(), deps));
    }
    m
}

/// Canonical names listed in `modules.builtin` (paths like `kernel/fs/ext4/ext4.ko`).
pub fn parse_builtin(text: &str) -> HashSet<String> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| canonical_name(l.trim())).collect()
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
    use crate::kernel::image::fake;

    pub fn ko(depends: &str) -> Vec<u8> {
        let info = format!("license=GPL\0depends={depends}\0retpoline=Y\0name=x\0");
        fake::elf(&[], &[(".modinfo", info.as_bytes())])
    }

    #[test]
    fn depends_from_modinfo() {
        assert_eq!(modinfo_depends(&ko("9pnet,netfs")).unwrap(), vec!["9pnet", "netfs"]);
        assert_eq!(modinfo_depends(&ko("")).unwrap(), Vec::<String>::new());
        assert_eq!(modinfo_depends(b"not elf"), None);
    }

    #[test]
    fn modules_dep_is_transitive_and_reversible() {
        let mut m = BTreeMap::new();
        m.insert("9p".to_string(), ("kernel/fs/9p/9p.ko".to_string(), vec!["9pnet".to_string(), "netfs".to_string()]));
        m.insert("9pnet".to_string(), ("kernel/net/9p/9pnet.ko".to_string(), vec![]));
        m.insert("netfs".to_string(), ("kernel/fs/netfs/netfs.ko".to_string(), vec!["fscache".to_string()]));
        m.insert("fscache".to_string(), ("kernel/fs/fscache/fscache.ko".to_string(), vec![]));
        let text = render_modules_dep(&m);
        assert_eq!(
            text,
            "kernel/fs/9p/9p.ko: kernel/fs/netfs/netfs.ko kernel/fs/fscache/fscache.ko kernel/net/9p/9pnet.ko\n\
             kernel/fs/fscache/fscache.ko:\n\
             kernel/fs/netfs/netfs.ko: kernel/fs/fscache/fscache.ko\n\
             kernel/net/9p/9pnet.ko:\n"
        );
    }

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
