//! A kernel file the user built (a bzImage, or an ELF vmlinux with a PVH note): checked, its
//! `vmlinux` and BTF derived into a `kernels/local-<sha256>/` cache entry, its `--modules` and
//! `--config` attached.
//!
//! Packaged kernels are [`super::prepare`]'s.

use std::fs;
use std::path::{Path, PathBuf};

use super::arch::Arch;
use super::describe::BootFiles;
use super::error::{KernelError, Result};
use super::files::bzimage;
use super::manifest::{Manifest, MANIFEST};
use super::prepared::{Pinning, PreparedKernel};
use super::store;
use crate::cache::Cache;

/// A kernel file the user built: check it is a bzImage or a PVH ELF, derive `vmlinux` and its
/// BTF into `kernels/local-<sha256>/`.
pub(super) fn prepare_local(
    path: &Path,
    modules: Option<&Path>,
    config: Option<&Path>,
    cache: &Cache,
) -> Result<PreparedKernel> {
    let not_kernel = |detail: String| KernelError::NotAKernel { path: path.to_path_buf(), detail };
    let bytes = fs::read(path).map_err(KernelError::io(path))?;
    let abs = fs::canonicalize(path).map_err(KernelError::io(path))?;
    let digest = hex::encode(sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes)));
    let kroot = cache.dir("kernels")?;
    let name = format!("local-{}", &digest[..16]);
    cache.hold(&format!("kernel-{name}"))?;
    let _guard = cache.lock(&format!("kernel-{name}"))?;
    let entry = kroot.join(&name);
    let mut k = PreparedKernel::empty(&format!("local:{}", abs.display()), "");
    k.boot.bzimage = abs.clone();
    k.pinning = Pinning::Local;
    k.sha256 = Some(digest.clone());

    let (release, vmlinux_from_bz) = match bzimage::parse_bzimage(&bytes) {
        Ok(bz) => {
            let release = bz.release();
            (release, true)
        }
        Err(bz_why) => match bzimage::parse_elf(&bytes) {
            Ok(elf) => {
                if elf.pvh_entry.is_none() {
                    return Err(not_kernel(
                        "an ELF kernel without the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build with CONFIG_PVH=y or pass the bzImage".into(),
                    ));
                }
                k.boot.vmlinux = Some(abs.clone());
                (bzimage::banner_release(&bytes), false)
            }
            Err(elf_why) => {
                return Err(not_kernel(format!("neither a bzImage ({bz_why}) nor a kernel ELF ({elf_why})")))
            }
        },
    };
    drop(bytes);
    let mpath = entry.join(MANIFEST);
    let manifest = match Manifest::load(&mpath).and_then(|m| m.verify(&entry).map(|_| m)) {
        Ok(m) => m,
        Err(_) => {
            let (vmlinux, btf) = if vmlinux_from_bz {
                store::derive_vmlinux(&abs)?
            } else {
                let b = fs::read(&abs).map_err(KernelError::io(&abs))?;
                let btf = bzimage::elf_section(&b, ".BTF").map(<[u8]>::to_vec);
                (None, btf)
            };
            let staging = store::temp_dir(&kroot, ".staging-")?;
            let mut m = Manifest {
                boot: BootFiles::image(abs.display().to_string()),
                ..Manifest::empty(release.clone().unwrap_or_default(), Arch::X86_64)
            };
            for (rel, data, slot) in [("vmlinux", vmlinux, &mut m.boot.vmlinux), ("vmlinux.btf", btf, &mut m.boot.btf)]
            {
                if let Some(d) = data {
                    store::write_file(staging.path(), rel, &d, &mut m.files)?;
                    *slot = Some(rel.to_string());
                }
            }
            m.write(staging.path())?;
            store::install(staging, &entry)?;
            m
        }
    };
    if let Some(v) = &manifest.boot.vmlinux {
        k.boot.vmlinux = Some(entry.join(v));
    }
    k.boot.btf = manifest.boot.btf.as_ref().map(|b| entry.join(b));
    k.release = release.unwrap_or_default();
    if let Some(c) = config {
        if !c.is_file() {
            return Err(KernelError::Invalid {
                path: c.display().to_string(),
                detail: "--config is not a file".into(),
            });
        }
        k.boot.config = Some(c.to_path_buf());
    }
    if let Some(dir) = modules {
        k.boot.modules_dir = Some(local_modules_dir(dir, &k.release)?);
        if k.release.is_empty() {
            if let Some(n) = k.boot.modules_dir.as_ref().and_then(|d| d.file_name()) {
                k.release = n.to_string_lossy().into_owned();
            }
        }
    }
    Ok(k)
}

/// `DIR` is `lib/modules/<release>` itself, or a directory holding `<release>/`.
fn local_modules_dir(dir: &Path, release: &str) -> Result<PathBuf> {
    let looks =
        |d: &Path| d.join("modules.order").is_file() || d.join("modules.dep").is_file() || d.join("kernel").is_dir();
    if looks(dir) {
        return Ok(dir.to_path_buf());
    }
    for cand in [dir.join(release), dir.join("lib/modules").join(release)] {
        if !release.is_empty() && looks(&cand) {
            return Ok(cand);
        }
    }
    Err(KernelError::Invalid {
        path: dir.display().to_string(),
        detail: format!("--modules is neither lib/modules/{release} nor a directory holding it"),
    })
}
