//! Kernel entries in the cache: `kernels/<package>_<version>/` holding `vmlinuz`, `vmlinux`,
//! `vmlinux.btf`, `config`, `System.map`, `modules/<release>/...` and a `manifest.json`
//! ([`Manifest`]) that records the sha256 of every file.
//!
//! An entry is built in a staging directory and renamed into place with its manifest written
//! last, so a half-built entry is never taken for a good one. A present manifest whose files no
//! longer match is reported as stale, and the caller rebuilds the entry. This module does not
//! download: it turns verified `.deb` files into an entry.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::arch::Arch;
use super::debian::index::DebPackage;
use super::error::{KernelError, Result};
use super::files::compress::{decompress_all, Compression, MAX_MODULE};
use super::files::modules::{canonical_name, is_module, modinfo_depends, render_modules_dep};
use super::files::{arm64, bzimage, config, deb};
use super::manifest::{FileSum, Manifest, FORMAT};
use super::matrix::Lock;
use crate::cache::Cache;

/// The cache entry directory name of a package build: `<package>_<version>` with characters a
/// file name should not carry (the epoch's `:`) replaced.
pub fn entry_name(package: &str, version: &str) -> String {
    format!("{package}_{version}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._+~-".contains(c) { c } else { '_' })
        .collect()
}

/// Where a file of a kernel package goes in the entry, or `None` to skip it.
/// Up to 6.12: `boot/{vmlinuz,config,System.map}-<rel>` and `[usr/]lib/modules/<rel>/...`;
/// from 7.x: `usr/lib/modules/<rel>/{vmlinuz,config,System.map}` and the modules beside them.
fn place(path: &str) -> Option<(String, Option<String>)> {
    if let Some(name) = path.strip_prefix("boot/") {
        for (prefix, dest) in [("vmlinuz-", "vmlinuz"), ("config-", "config"), ("System.map-", "System.map")] {
            if let Some(rel) = name.strip_prefix(prefix) {
                return Some((dest.to_string(), Some(rel.to_string())));
            }
        }
        return None;
    }
    let rest = path.strip_prefix("usr/").unwrap_or(path).strip_prefix("lib/modules/")?;
    let (rel, file) = rest.split_once('/')?;
    match file {
        "vmlinuz" | "config" | "System.map" => Some((file.to_string(), Some(rel.to_string()))),
        _ => Some((format!("modules/{rel}/{file}"), None)),
    }
}

/// Collected while extracting, shared by the workers.
#[derive(Default)]
struct Extracted {
    files: BTreeMap<String, FileSum>,
    /// canonical name → (path relative to the modules dir, direct deps)
    modules: BTreeMap<String, (String, Vec<String>)>,
    releases: Vec<String>,
    errors: Vec<KernelError>,
}

/// Extract the `.deb` files (already verified) into `staging` and finish the entry: `vmlinux`
/// (when the image has a PVH note), `vmlinux.btf`, `modules.dep`, `manifest.json`.
pub fn build_entry(staging: &Path, debs: &[(DebPackage, PathBuf)], mut m: Manifest) -> Result<Manifest> {
    let state = Mutex::new(Extracted::default());
    for (pkg, path) in debs {
        extract_deb(pkg, path, staging, &state)?;
    }
    let mut st = state.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = st.errors.pop() {
        return Err(e);
    }
    if let Some(other) = st.releases.iter().find(|r| **r != m.release) {
        return Err(KernelError::Extract {
            what: m.origin.package.clone().unwrap_or_default(),
            detail: format!("holds files of release {other}, expected {}", m.release),
        });
    }
    let what = m.origin.package.clone().unwrap_or_else(|| "kernel package".into());
    if !st.files.contains_key("vmlinuz") {
        return Err(KernelError::Extract {
            what,
            detail: "no vmlinuz (boot/vmlinuz-* or lib/modules/*/vmlinuz)".into(),
        });
    }
    m.boot.bzimage = "vmlinuz".into();
    m.boot.config = st.files.contains_key("config").then(|| "config".into());
    m.boot.system_map = st.files.contains_key("System.map").then(|| "System.map".into());

    // vmlinux for PVH boot, and its BTF.
    let bz_path = staging.join("vmlinuz");
    let (vmlinux, btf) = if m.arch == Arch::Arm64 {
        let (image, btf, wrapping) = derive_arm64(&bz_path)?;
        // A plain Image is booted as packaged; a wrapped one is stored unwrapped beside it.
        if wrapping != arm64::Wrapping::Plain {
            write_file(staging, "Image", &image, &mut st.files)?;
            m.boot.bzimage = "Image".into();
        }
        (None, btf)
    } else {
        derive_vmlinux(&bz_path)?
    };
    // Before 5.0 the PVH note is Xen's alone (CONFIG_XEN_PVH): its entry expects a Xen
    // hypervisor and a QEMU guest hangs without a console byte (Ubuntu's 4.15, seen). Those
    // boot as a bzImage.
    let vmlinux = vmlinux.filter(|_| {
        let pvh = pvh_outside_xen(&staging.join("config"));
        if !pvh {
            eprintln!(
                "note: {what}: CONFIG_XEN_PVH without CONFIG_PVH (a PVH note for Xen alone); it boots as a bzImage"
            );
        }
        pvh
    });
    if let Some(v) = vmlinux {
        write_file(staging, "vmlinux", &v, &mut st.files)?;
        m.boot.vmlinux = Some("vmlinux".into());
    }
    if let Some(b) = btf {
        write_file(staging, "vmlinux.btf", &b, &mut st.files)?;
        m.boot.btf = Some("vmlinux.btf".into());
    }

    // modules.dep, from each module's .modinfo.
    let mod_dir = format!("modules/{}", m.release);
    if staging.join(&mod_dir).is_dir() {
        let dep = render_modules_dep(&st.modules);
        write_file(staging, &format!("{mod_dir}/modules.dep"), dep.as_bytes(), &mut st.files)?;
        m.boot.modules_dir = Some(mod_dir);
    }
    m.files = st.files;
    m.format = FORMAT;
    m.write(staging)?;
    Ok(m)
}

/// Whether the kernel whose config is at `config` boots through its PVH note outside Xen: not
/// when the config has `CONFIG_XEN_PVH` without `CONFIG_PVH` (Linux before 5.0, whose PVH entry
/// is Xen's); yes otherwise, a missing config included.
fn pvh_outside_xen(config: &Path) -> bool {
    let Ok(text) = fs::read_to_string(config) else { return true };
    let c = config::KernelConfig::parse(&text);
    c.is_enabled("PVH") || !c.is_enabled("XEN_PVH")
}

/// An arm64 `vmlinuz` unwrapped to its `Image`, the BTF found inside, and how it was wrapped.
pub fn derive_arm64(path: &Path) -> Result<(Vec<u8>, Option<Vec<u8>>, arm64::Wrapping)> {
    let bytes = fs::read(path).map_err(KernelError::io(path))?;
    let (image, wrapping) = arm64::unwrap_image(&bytes)
        .map_err(|e| KernelError::NotAKernel { path: path.to_path_buf(), detail: e.to_string() })?;
    let btf = arm64::find_btf(&image).and_then(|r| image.get(r)).map(<[u8]>::to_vec);
    if btf.is_none() {
        eprintln!("warning: no BTF found in {}; core-check cannot read its types", path.display());
    }
    Ok((image, btf, wrapping))
}

/// What a bzImage yields: the ELF (only when it has a PVH entry note) and its `.BTF` section.
pub type Derived = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The ELF inside a bzImage when it carries a PVH entry note, and its `.BTF` section.
pub fn derive_vmlinux(bz_path: &Path) -> Result<Derived> {
    let not_kernel = |detail: String| KernelError::NotAKernel { path: bz_path.to_path_buf(), detail };
    let bytes = fs::read(bz_path).map_err(KernelError::io(bz_path))?;
    let bz = bzimage::parse_bzimage(&bytes).map_err(|e| not_kernel(e.to_string()))?;
    let elf = bzimage::vmlinux_of(&bytes, &bz).map_err(|e| not_kernel(e.to_string()))?;
    let info = bzimage::parse_elf(&elf).map_err(|d| not_kernel(format!("payload: {d}")))?;
    let btf = info.btf.clone().and_then(|r| elf.get(r)).map(<[u8]>::to_vec);
    if info.pvh_entry.is_none() {
        eprintln!("warning: {} has no PVH entry note; it boots only as a bzImage", bz_path.display());
        return Ok((None, btf));
    }
    Ok((Some(elf), btf))
}

/// Write `data` to `rel` under `root` and record its size and hash in `files`.
pub fn write_file(root: &Path, rel: &str, data: &[u8], files: &mut BTreeMap<String, FileSum>) -> Result<()> {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(KernelError::io(d))?;
    }
    fs::write(&p, data).map_err(KernelError::io(&p))?;
    files.insert(rel.to_string(), FileSum { sha256: hex::encode(Sha256::digest(data)), size: data.len() as u64 });
    Ok(())
}

/// Stream one `.deb`: the main thread decompresses the tar, two workers write, hash and read
/// `.modinfo` (which means decompressing `.ko.xz` modules) in parallel.
fn extract_deb(pkg: &DebPackage, path: &Path, staging: &Path, state: &Mutex<Extracted>) -> Result<()> {
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 4);
    let (tx, rx) = mpsc::sync_channel::<(String, Option<String>, Vec<u8>)>(64);
    let rx = Mutex::new(rx);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let job = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                let Ok((dest, release, data)) = job else { return };
                let r = store_one(staging, &dest, &data);
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                match r {
                    Ok((sum, deps)) => {
                        st.files.insert(dest.clone(), sum);
                        if let Some(rel) = release {
                            if !st.releases.contains(&rel) {
                                st.releases.push(rel);
                            }
                        }
                        if let Some(deps) = deps {
                            // dest is modules/<release>/<path>: keep <path>.
                            let inner = dest.splitn(3, '/').nth(2).unwrap_or(&dest).to_string();
                            st.modules.insert(canonical_name(&inner), (inner, deps));
                        }
                    }
                    Err(e) => st.errors.push(e),
                }
            });
        }
        let r = deb::for_each_file(path, |p, size, reader| {
            let Some((dest, release)) = place(p) else { return Ok(()) };
            let data = deb::read_file(reader, size, deb::MAX_FILE).map_err(|e| KernelError::Deb {
                what: format!("{} ({})", pkg.name, path.display()),
                detail: format!("{p}: {e}"),
            })?;
            // A closed channel means every worker stopped; their errors are in `state`.
            let _ = tx.send((dest, release, data));
            Ok(())
        });
        drop(tx);
        r
    })
}

/// Write one file, hash it, and for a module read its dependencies.
fn store_one(root: &Path, dest: &str, data: &[u8]) -> Result<(FileSum, Option<Vec<String>>)> {
    let p = root.join(dest);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(KernelError::io(d))?;
    }
    fs::write(&p, data).map_err(KernelError::io(&p))?;
    let sum = FileSum { sha256: hex::encode(Sha256::digest(data)), size: data.len() as u64 };
    if !is_module(dest) {
        return Ok((sum, None));
    }
    let kind = Compression::from_name(dest);
    let ko = decompress_all(kind, data, MAX_MODULE).map_err(|e| KernelError::Extract {
        what: p.display().to_string(),
        detail: format!("decompress {kind:?} module: {e}"),
    })?;
    Ok((sum, Some(modinfo_depends(&ko).unwrap_or_default())))
}

/// A temporary directory under the kernels root (`.staging-…`, `.download-…`): on the same file
/// system as the entries, so a finished one is renamed into place; `gc` removes old leftovers.
pub fn temp_dir(kroot: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(prefix).tempdir_in(kroot).map_err(KernelError::io(kroot))
}

/// Put a finished staging directory in place of `entry` (replacing a stale one).
pub fn install(staging: tempfile::TempDir, entry: &Path) -> Result<()> {
    if entry.exists() {
        fs::remove_dir_all(entry).map_err(KernelError::io(entry))?;
    }
    fs::rename(staging.keep(), entry).map_err(KernelError::io(entry))
}

/// Remove the kernel cache entries the lock does not name (other builds, local kernels, stale
/// indexes), except those a running kmatrix holds. Returns what was removed.
pub fn gc(cache: &Cache, lock: &Lock) -> Result<Vec<PathBuf>> {
    let kroot = cache.dir("kernels")?;
    let keep: std::collections::HashSet<String> =
        lock.kernels.values().map(|k| entry_name(&k.image, &k.version)).collect();
    let mut removed = Vec::new();
    for e in fs::read_dir(&kroot).map_err(KernelError::io(&kroot))? {
        let e = e.map_err(KernelError::io(&kroot))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name == "index" || keep.contains(&name) || !path.is_dir() {
            continue;
        }
        if name.starts_with('.') {
            // A staging or download directory: only when old, it may belong to a running prepare.
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 24 * 3600);
            if !old {
                continue;
            }
        }
        // One a running kmatrix holds stays (`kmatrix gc` says so).
        let Some(_claim) = cache.claim(&format!("kernel-{name}"))? else { continue };
        let _guard = cache.lock(&format!("kernel-{name}"))?;
        fs::remove_dir_all(&path).map_err(KernelError::io(&path))?;
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_files_of_every_layout() {
        let cases = [
            ("boot/vmlinuz-6.1.0-50-amd64", Some(("vmlinuz", Some("6.1.0-50-amd64")))),
            ("boot/config-6.1.0-50-amd64", Some(("config", Some("6.1.0-50-amd64")))),
            ("boot/System.map-6.1.0-50-amd64", Some(("System.map", Some("6.1.0-50-amd64")))),
            (
                "lib/modules/6.1.0-50-amd64/kernel/fs/9p/9p.ko",
                Some(("modules/6.1.0-50-amd64/kernel/fs/9p/9p.ko", None)),
            ),
            (
                "usr/lib/modules/6.12.107+deb13-amd64/modules.builtin",
                Some(("modules/6.12.107+deb13-amd64/modules.builtin", None)),
            ),
            ("usr/lib/modules/7.3.4+deb13-amd64/vmlinuz", Some(("vmlinuz", Some("7.3.4+deb13-amd64")))),
            ("usr/lib/modules/7.3.4+deb13-amd64/config", Some(("config", Some("7.3.4+deb13-amd64")))),
            ("usr/lib/modules/7.3.4+deb13-amd64/System.map", Some(("System.map", Some("7.3.4+deb13-amd64")))),
            ("usr/share/doc/linux-image-6.1.0-50-amd64/changelog.gz", None),
            ("usr/share/bug/linux-base-7.3.4+deb13-amd64/script", None),
        ];
        for (path, want) in cases {
            let got = place(path);
            let want = want.map(|(d, r)| (d.to_string(), r.map(str::to_string)));
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn entry_names_are_file_safe() {
        assert_eq!(
            entry_name("linux-image-7.3.4+deb13-amd64", "1:7.3.4-1~bpo13+1"),
            "linux-image-7.3.4+deb13-amd64_1_7.3.4-1~bpo13+1"
        );
    }
}
