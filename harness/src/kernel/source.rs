//! The kernel's own selftests, from Debian's `linux-source-<line>` package of the kernel's suite:
//! the same chain of trust as the kernel (signed Release ▶ Packages hash ▶ .deb sha256), the
//! package version matching the kernel's build where the suite still has it. Only the directory
//! asked for (`tools/testing/selftests/ftrace`; `tools/testing/kunit`, the KTAP parser) is
//! extracted from the source tarball, into the cache (`selftests/<package>_<version>/<dir's last
//! component>`), written once, atomically.
//!
//! Not here: running them (`selftest.rs`).

use super::debian::{index, version};
use super::error::{KernelError, Result};
use super::files::deb;
use super::{FetchOptions, Mirror, PreparedKernel};
use crate::cache::Cache;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The source package's biggest plausible size (linux-source-6.x is ~150 MB).
const MAX_SOURCE_DEB: u64 = 600 << 20;

/// A selftest directory extracted from a kernel's source package.
#[derive(Debug, Clone)]
pub struct SelftestTree {
    /// `…/tools/testing/selftests/<name>` as extracted.
    pub dir: PathBuf,
    /// `linux-source-6.1`.
    pub package: String,
    /// Its Debian version.
    pub version: String,
    /// The kernel was built from this very source version (else the suite's newest was used).
    pub same_build: bool,
}

/// `tools/testing/selftests/<name>` of `kernel`'s source, fetched and extracted on first use.
pub fn selftests(kernel: &PreparedKernel, name: &str, cache: &Cache, opts: &FetchOptions) -> Result<SelftestTree> {
    source_dir(kernel, &format!("tools/testing/selftests/{name}"), cache, opts)
}

/// The directory `dir` of `kernel`'s source tree (`tools/testing/kunit`, whose KTAP parser the
/// report tests run), fetched and extracted on first use into
/// `selftests/<package>_<version>/<dir's last component>`.
pub fn source_dir(kernel: &PreparedKernel, dir: &str, cache: &Cache, opts: &FetchOptions) -> Result<SelftestTree> {
    let name = dir.rsplit('/').next().unwrap_or(dir);
    let invalid = |detail: String| KernelError::Invalid { path: kernel.id.clone(), detail };
    let suite = kernel
        .origin
        .suite
        .clone()
        .ok_or_else(|| invalid("a local kernel has no Debian source package to take its selftests from".into()))?;
    let line = match kmatrix_proto::KernelVersion::parse(&kernel.release) {
        Some(v) => format!("{}.{}", v.major, v.minor),
        None => return Err(invalid(format!("cannot tell the version line of release {:?}", kernel.release))),
    };
    let want = format!("linux-source-{line}");
    let mirror = Mirror::from_options(opts)?;
    let idx = index::fetch_suite(&mirror, &suite, super::Arch::X86_64, cache, &opts.trust)?;
    let mut candidates: Vec<&index::DebPackage> = idx.packages.iter().filter(|p| p.name == want).collect();
    candidates.sort_by(|a, b| version::compare(&a.version, &b.version));
    let exact = candidates.iter().find(|p| Some(&p.version) == kernel.origin.package_version.as_ref()).copied();
    let pkg = exact
        .or_else(|| candidates.last().copied())
        .ok_or_else(|| invalid(format!("suite {suite} has no {want} package")))?
        .clone();
    let held = format!("{}_{}", pkg.name, pkg.version);
    cache.hold(&format!("selftests-{held}"))?;
    let entry = cache.dir("selftests")?.join(held).join(name);
    let tree = |dir: PathBuf| SelftestTree {
        dir,
        package: pkg.name.clone(),
        version: pkg.version.clone(),
        same_build: exact.is_some(),
    };
    let complete = |d: &Path| d.join(".kmatrix-complete").is_file();
    if complete(&entry) {
        return Ok(tree(entry));
    }
    let _guard = cache.lock(&format!("selftests-{}_{}", pkg.name, pkg.version))?;
    if complete(&entry) {
        return Ok(tree(entry));
    }
    let parent = entry.parent().map(Path::to_path_buf).unwrap_or_else(|| entry.clone());
    fs::create_dir_all(&parent).map_err(KernelError::io(&parent))?;
    let dl = tempfile::Builder::new().prefix(".dl-").tempfile_in(&parent).map_err(KernelError::io(&parent))?;
    mirror.download_checked(&pkg.filename, &pkg.sha256, pkg.size, dl.path(), MAX_SOURCE_DEB, &pkg.name)?;
    let url = mirror.url(&pkg.filename);
    let staging = tempfile::Builder::new().prefix(".staging-").tempdir_in(&parent).map_err(KernelError::io(&parent))?;
    let prefix = format!("{}/", dir.trim_end_matches('/'));
    let mut found = 0usize;
    deb::for_each_file(dl.path(), |path, _, reader| {
        if !(path.starts_with("usr/src/linux-source-") && path.ends_with(".tar.xz")) {
            return Ok(());
        }
        found += extract_subdir(reader, &prefix, staging.path(), &url)?;
        Ok(())
    })?;
    if found == 0 {
        return Err(invalid(format!("{} {} has no {prefix}", pkg.name, pkg.version)));
    }
    fs::write(staging.path().join(".kmatrix-complete"), format!("{} {}\n", pkg.name, pkg.version))
        .map_err(KernelError::io(staging.path()))?;
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, &entry) {
        let _ = fs::remove_dir_all(&staged);
        if !complete(&entry) {
            return Err(KernelError::Io { path: entry, source: e });
        }
    }
    Ok(tree(entry))
}

/// From the source tarball on `reader` (xz), the files under `<top>/<prefix>` into `dest`, with
/// their modes; returns how many.
fn extract_subdir(reader: &mut dyn Read, prefix: &str, dest: &Path, what: &str) -> Result<usize> {
    let bad = |detail: String| KernelError::Deb { what: what.to_string(), detail };
    let mut archive = tar::Archive::new(xz2::read::XzDecoder::new(reader));
    let mut n = 0;
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.to_string_lossy().into_owned();
        // `linux-source-6.1/tools/...`: drop the top directory.
        let Some((_, rel)) = path.split_once('/') else { continue };
        let Some(inner) = rel.strip_prefix(prefix) else { continue };
        if inner.is_empty() || inner.starts_with('/') || inner.split('/').any(|c| c == "..") {
            continue;
        }
        let out = dest.join(inner);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::create_dir_all(&out).map_err(KernelError::io(&out))?;
        } else if kind.is_file() {
            if let Some(p) = out.parent() {
                fs::create_dir_all(p).map_err(KernelError::io(p))?;
            }
            let mode = entry.header().mode().unwrap_or(0o644) & 0o755;
            let mut f = fs::File::create(&out).map_err(KernelError::io(&out))?;
            std::io::copy(&mut entry, &mut f).map_err(|e| bad(format!("{path}: {e}")))?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&out, fs::Permissions::from_mode(mode | 0o444)).map_err(KernelError::io(&out))?;
            n += 1;
        } else if kind.is_symlink() {
            // Links inside the tree only: nothing extracted may point out of it.
            let target =
                entry.link_name().ok().flatten().filter(|t| {
                    t.is_relative() && !t.components().any(|c| matches!(c, std::path::Component::ParentDir))
                });
            if let Some(target) = target {
                if let Some(p) = out.parent() {
                    fs::create_dir_all(p).map_err(KernelError::io(p))?;
                }
                let _ = std::os::unix::fs::symlink(target, &out);
            }
        }
    }
    Ok(n)
}
