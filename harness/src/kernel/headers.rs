//! A Debian kernel's headers, for tools that compile against the running kernel at run time
//! (BCC): `linux-headers-<release>` of the kernel's own build and the `-common` package it
//! depends on, through the kernel's chain of trust (signed Release ▶ Packages hash ▶ .deb
//! sha256), extracted into the cache once (`headers/<release>_<version>/`), atomically.
//!
//! Debian splits a build's headers in two directories (`linux-headers-<abi>-common`, and the
//! flavour's generated headers and config in `linux-headers-<release>`, found through
//! `/lib/modules/<release>/{source,build}`). The entry is ONE merged tree, common first and the
//! flavour's files over it (except its `Makefile`, a one-line include of the common one), which
//! is what `BCC_KERNEL_SOURCE` expects: the guest needs no mount and no `/lib/modules` in the
//! host root (a container host has none), only the path, which it reaches through the shared
//! host root. `linux-kbuild` (the tools to build modules) is not fetched: BCC reads headers only,
//! and building modules in a guest is not a kmatrix use.
//!
//! No Debian kernel sets `CONFIG_IKHEADERS`, so this is the only way BCC works in a guest.
//! Not here: using it (`agent/src/scenario/tool/bcc.rs`, the `BCC_KERNEL_SOURCE` of host tools).

use super::error::{KernelError, Result};
use super::files::deb;
use super::prepare::archive;
use super::{FetchOptions, PreparedKernel};
use crate::cache::Cache;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// A headers package's biggest plausible size (`-common` is ~12 MB, the flavour ~3 MB).
const MAX_HEADERS_DEB: u64 = 200 << 20;
/// Written last: an entry without it is incomplete and is redone.
const COMPLETE: &str = ".kmatrix-complete";

/// A kernel's headers, extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadersTree {
    /// The entry: a kernel header tree (`include/`, `arch/`, `.config`, ...).
    pub dir: PathBuf,
    /// `uname -r` of the kernel they belong to.
    pub release: String,
    /// The packages it was made of, `name version` each.
    pub packages: Vec<String>,
}

/// The headers of `kernel`'s exact build, fetched and extracted on first use. A local kernel, or
/// a suite without the build's headers, is an error saying so.
pub fn headers(kernel: &PreparedKernel, cache: &Cache, opts: &FetchOptions) -> Result<HeadersTree> {
    let invalid = |detail: String| KernelError::Invalid { path: kernel.id.clone(), detail };
    let (Some(suite), Some(version)) = (kernel.origin.suite.clone(), kernel.origin.package_version.clone()) else {
        return Err(invalid("a local kernel has no Debian headers package (only Debian builds have one)".into()));
    };
    let release = kernel.release.clone();
    let name = format!("{release}_{version}");
    // Held before it is looked up, as every cache entry is: gc never removes it under a guest.
    cache.hold(&format!("headers-{name}"))?;
    let entry = cache.dir("headers")?.join(name);
    let tree = |packages: Vec<String>| HeadersTree { dir: entry.clone(), release: release.clone(), packages };
    if let Some(packages) = complete(&entry) {
        return Ok(tree(packages));
    }
    // The build's own archive (Debian's or Ubuntu's) and its chain of trust.
    let a = archive(kernel.origin.distro, opts)?;
    let mirror = a.mirror();
    let idx = a.index(&suite, kernel.arch, cache)?;
    let find = |name: &str| idx.packages.iter().find(|p| p.name == name && p.version == version);
    let flavour_name = format!("linux-headers-{release}");
    let flavour = find(&flavour_name)
        .ok_or_else(|| invalid(format!("suite {suite} has no {flavour_name} {version} (the build's headers)")))?;
    // The common part first: the flavour's files go over it.
    let mut pkgs = Vec::new();
    for dep in depends_on_headers(&flavour.depends) {
        let p = find(&dep)
            .ok_or_else(|| invalid(format!("suite {suite} has no {dep} {version}, which {flavour_name} needs")))?;
        pkgs.push((p.clone(), false));
    }
    pkgs.push((flavour.clone(), true));
    let _guard = cache.lock(&format!("headers-{release}_{version}"))?;
    if let Some(packages) = complete(&entry) {
        return Ok(tree(packages));
    }
    let parent = cache.dir("headers")?;
    let staging = tempfile::Builder::new().prefix(".staging-").tempdir_in(&parent).map_err(KernelError::io(&parent))?;
    let mut names = Vec::new();
    for (pkg, is_flavour) in &pkgs {
        let dl = tempfile::Builder::new().prefix(".dl-").tempfile_in(&parent).map_err(KernelError::io(&parent))?;
        mirror.download_checked(&pkg.filename, &pkg.sha256, pkg.size, dl.path(), MAX_HEADERS_DEB, &pkg.name)?;
        let url = mirror.url(&pkg.filename);
        extract(dl.path(), staging.path(), *is_flavour, &url)?;
        names.push(format!("{} {}", pkg.name, pkg.version));
    }
    for needed in ["include/linux/kconfig.h", "include/generated/autoconf.h"] {
        if !staging.path().join(needed).is_file() {
            return Err(invalid(format!("the headers of {flavour_name} {version} have no {needed}")));
        }
    }
    fs::write(staging.path().join(COMPLETE), names.join("\n") + "\n").map_err(KernelError::io(staging.path()))?;
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, &entry) {
        let _ = fs::remove_dir_all(&staged);
        if complete(&entry).is_none() {
            return Err(KernelError::Io { path: entry, source: e });
        }
    }
    Ok(tree(names))
}

/// The packages of a complete entry, `None` when there is none (or it is incomplete).
fn complete(entry: &Path) -> Option<Vec<String>> {
    let text = fs::read_to_string(entry.join(COMPLETE)).ok()?;
    Some(text.lines().map(str::to_string).collect())
}

/// The `linux-headers-*` names in a `Depends:` field (the `-common` part); the kbuild tools and
/// compilers are left out on purpose (see the module doc).
pub fn depends_on_headers(depends: &str) -> Vec<String> {
    depends
        .split(',')
        .flat_map(|alt| alt.split('|'))
        .filter_map(|d| d.split_whitespace().next())
        .filter(|n| n.starts_with("linux-headers-"))
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Where a package path goes in the merged tree: `usr/src/linux-headers-X/rest` → `rest`;
/// everything else (the `/lib/modules` links, docs, lintian) is left out.
fn place(path: &str) -> Option<PathBuf> {
    let (dir, rest) = path.strip_prefix("usr/src/")?.split_once('/')?;
    (dir.starts_with("linux-headers-") && !rest.is_empty()).then(|| PathBuf::from(rest))
}

/// True when a link at `rel` of the flavour's tree points to the same `rel` in a sibling
/// `linux-headers-*` directory (the common part).
fn links_to_common(target: &Path, rel: &Path) -> bool {
    let mut parts = target.components().skip_while(|c| matches!(c, std::path::Component::ParentDir));
    let into_common = parts.next().is_some_and(|c| c.as_os_str().to_string_lossy().starts_with("linux-headers-"));
    into_common && parts.eq(rel.components())
}

/// Extract the headers of one `.deb` into the merged tree `dest` (the flavour's `Makefile`, an
/// include of the common one by absolute path, is left out). Files and links land only inside
/// `dest`, never through a link extracted before; links are kept as written (`scripts ->
/// ../../lib/linux-kbuild-…` dangles: nothing here follows it).
fn extract(deb_path: &Path, dest: &Path, flavour: bool, url: &str) -> Result<()> {
    let bad = |detail: String| KernelError::Deb { what: url.to_string(), detail };
    let mut links: BTreeSet<PathBuf> = BTreeSet::new();
    deb::for_each_entry(deb_path, |path, entry| {
        let Some(rel) = place(path) else { return Ok(()) };
        if flavour && rel == Path::new("Makefile") {
            return Ok(());
        }
        if rel.ancestors().skip(1).any(|a| links.contains(a)) {
            return Err(bad(format!("{path} lies below a symbolic link of the same package")));
        }
        let out = dest.join(&rel);
        // Ubuntu's flavour package links most of its tree to the same path of the common part
        // (`Documentation -> ../linux-headers-5.4.0-216/Documentation`), which is merged here
        // already: the link would only replace it.
        if let deb::Entry::Symlink { target } = &entry {
            if flavour && out.symlink_metadata().is_ok() && links_to_common(Path::new(target), &rel) {
                return Ok(());
            }
        }
        if let Some(p) = out.parent() {
            fs::create_dir_all(p).map_err(KernelError::io(p))?;
        }
        // The flavour replaces what the common part had at the same path, file or link.
        let _ = fs::remove_file(&out);
        match entry {
            deb::Entry::File { size, data } => {
                if size > deb::MAX_FILE {
                    return Err(bad(format!("{path}: {size} bytes")));
                }
                let mut f = fs::File::create(&out).map_err(KernelError::io(&out))?;
                std::io::copy(&mut std::io::Read::take(data, deb::MAX_FILE), &mut f)
                    .map_err(|e| bad(format!("{path}: {e}")))?;
            }
            deb::Entry::Symlink { target } => {
                std::os::unix::fs::symlink(&target, &out).map_err(KernelError::io(&out))?;
                links.insert(rel);
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ubuntu_flavour_links_into_the_common_part() {
        // Real links of linux-headers-5.4.0-216-generic.
        let rel = Path::new("Documentation");
        assert!(links_to_common(Path::new("../linux-headers-5.4.0-216/Documentation"), rel));
        let deep = Path::new("arch/x86/Kconfig");
        assert!(links_to_common(Path::new("../../../linux-headers-5.4.0-216/arch/x86/Kconfig"), deep));
        assert!(!links_to_common(Path::new("../linux-headers-5.4.0-216/include"), rel), "another path");
        assert!(!links_to_common(Path::new("../../lib/linux-kbuild-6.1/scripts"), Path::new("scripts")));
    }

    #[test]
    fn depends_keep_only_headers_packages() {
        // Debian 7.3's and 5.10's real Depends lines.
        let d73 = "gcc-14-for-host, linux-base (>= 4.12~), linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), \
                   linux-headers-7.3.4+deb13-common (= 7.3.4-1~bpo13+1), linux-kbuild-7.3.4+deb13";
        assert_eq!(depends_on_headers(d73), vec!["linux-headers-7.3.4+deb13-common"]);
        let d510 = "linux-headers-5.10.0-32-common (= 5.10.223-1), linux-kbuild-5.10 (>= 5.10.223-1), linux-compiler-gcc-10-x86";
        assert_eq!(depends_on_headers(d510), vec!["linux-headers-5.10.0-32-common"]);
        assert!(depends_on_headers("").is_empty());
    }

    #[test]
    fn paths_are_placed_in_one_tree() {
        assert_eq!(
            place("usr/src/linux-headers-6.1.0-50-amd64/include/generated/autoconf.h"),
            Some("include/generated/autoconf.h".into())
        );
        assert_eq!(
            place("usr/src/linux-headers-6.1.0-50-common/include/linux/kconfig.h"),
            Some("include/linux/kconfig.h".into())
        );
        assert_eq!(place("lib/modules/6.1.0-50-amd64/build"), None);
        assert_eq!(place("usr/src/python3.11/x"), None);
        assert_eq!(place("usr/share/doc/linux-headers-6.1.0-50-amd64/changelog.Debian.gz"), None);
    }

    /// A `.deb` of `files` (path, mode, bytes) and then `links` (path, target), in that order.
    fn deb_with(files: &[(&str, u32, &[u8])], links: &[(&str, &str)]) -> tempfile::NamedTempFile {
        let mut b = tar::Builder::new(Vec::new());
        for (p, mode, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            b.append_data(&mut h, p, *data).expect("tar file");
        }
        for (p, t) in links {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, p, t).expect("tar link");
        }
        let f = tempfile::NamedTempFile::new().expect("tmp");
        fs::write(f.path(), deb::build::deb_of_tar(&b.into_inner().expect("tar"))).expect("write");
        f
    }

    #[test]
    fn common_and_flavour_merge_into_one_tree() {
        let common = deb_with(
            &[
                ("./usr/src/linux-headers-7.3.4+deb13-common/Makefile", 0o644, b"# the top Makefile\n"),
                ("./usr/src/linux-headers-7.3.4+deb13-common/include/linux/kconfig.h", 0o644, b"common"),
                ("./usr/share/doc/x", 0o644, b"doc"),
            ],
            &[("./usr/src/linux-headers-7.3.4+deb13-common/scripts", "../../lib/linux-kbuild-7.3.4+deb13/scripts")],
        );
        let flavour = deb_with(
            &[
                ("./usr/src/linux-headers-7.3.4+deb13-amd64/Makefile", 0o644, b"include /usr/src/x/Makefile\n"),
                ("./usr/src/linux-headers-7.3.4+deb13-amd64/include/generated/autoconf.h", 0o644, b"flavour"),
            ],
            &[("./usr/lib/modules/7.3.4+deb13-amd64/build", "../../../src/linux-headers-7.3.4+deb13-amd64")],
        );
        let dest = tempfile::tempdir().expect("tmp");
        extract(common.path(), dest.path(), false, "common.deb").expect("common");
        extract(flavour.path(), dest.path(), true, "flavour.deb").expect("flavour");
        let d = dest.path();
        assert_eq!(fs::read(d.join("Makefile")).expect("Makefile"), b"# the top Makefile\n");
        assert_eq!(fs::read(d.join("include/linux/kconfig.h")).expect("kconfig.h"), b"common");
        assert_eq!(fs::read(d.join("include/generated/autoconf.h")).expect("autoconf.h"), b"flavour");
        assert_eq!(
            fs::read_link(d.join("scripts")).expect("link"),
            Path::new("../../lib/linux-kbuild-7.3.4+deb13/scripts")
        );
        assert!(!d.join("usr").exists() && !d.join("build").exists());
    }

    #[test]
    fn a_file_below_a_link_is_refused() {
        // A hostile package: a link to /tmp, then a file written "through" it.
        let deb = deb_with(&[], &[("./usr/src/linux-headers-x/evil", "/tmp")]);
        let dest = tempfile::tempdir().expect("tmp");
        extract(deb.path(), dest.path(), false, "fixture.deb").expect("the link alone is harmless");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "./usr/src/linux-headers-x/evil", "/tmp").expect("link");
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "./usr/src/linux-headers-x/evil/kmatrix-through-a-link", &b"x"[..]).expect("file");
        let f = tempfile::NamedTempFile::new().expect("tmp");
        fs::write(f.path(), deb::build::deb_of_tar(&b.into_inner().expect("tar"))).expect("write");
        let dest = tempfile::tempdir().expect("tmp");
        let err = extract(f.path(), dest.path(), false, "hostile.deb").expect_err("refused");
        assert!(err.to_string().contains("below a symbolic link"), "{err}");
        assert!(!Path::new("/tmp/kmatrix-through-a-link").exists());
    }
}
