//! What a kernel module file says about itself and the `modules.dep` of a build: canonical
//! module names, the `depends=` of each module's `.modinfo`, and `modules.dep` text (written and
//! read).
//!
//! Debian ships `modules.order` and `modules.builtin` but no `modules.dep` (depmod runs at install
//! time), so kmatrix writes one itself. Which modules a guest loads is `kernel/closure.rs`'s
//! ([`crate::kernel::module_closure`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::bzimage::elf_section;

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernel::files::bzimage::fake;

    /// A module whose `.modinfo` says it depends on `depends`.
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
}
