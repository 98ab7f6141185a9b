//! `/lib/modules/$(uname -r)` in the view of the host root, as on an installed kernel: a tmpfs
//! over the host's modules directory holding one directory for the running kernel whose entries
//! link to the module tree the host made for it (its modules and `depmod`'s indexes, in the
//! host's cache: the harness's `kernel/modtree.rs`), plus `build` and `source` linking to the
//! kernel's headers when the host fetched them. `modprobe`, `modinfo NAME`, bpftrace (which finds
//! headers through `build`) and BCC then find what they look for.
//!
//! The links hold host paths, which resolve in the view (programs run with the host root as
//! their root). Not here: mounting the host root (`share.rs`), loading modules at boot
//! (`modules.rs`).

use crate::sys;
use anyhow::{bail, Context, Result};
use kmatrix_proto::Share;
use std::path::{Path, PathBuf};

/// Put the running kernel's module tree at `/lib/modules/<release>` of the view mounted at
/// `root`. Returns what it did, for the share's line; `None` when the host offered no tree.
pub fn bind(share: &Share, root: &str) -> Result<Option<String>> {
    let Some(tree) = share.modules.as_deref() else { return Ok(None) };
    let release = sys::uname()?.release;
    let seen = Path::new(root).join(tree.trim_start_matches('/'));
    if !seen.is_dir() {
        bail!("the module tree {tree} the host offered is not in the view ({} absent)", seen.display());
    }
    let (target, how) = writable_in_view(root, "lib/modules")?;
    let dir = target.join(&release);
    std::fs::create_dir(&dir).with_context(|| format!("mkdir({})", dir.display()))?;
    let (mut linked, mut left) = (0, Vec::new());
    for e in std::fs::read_dir(&seen).with_context(|| format!("read_dir({})", seen.display()))? {
        let e = e.with_context(|| format!("read_dir({})", seen.display()))?;
        let name = e.file_name();
        // The indexes are regular files of the tree; its module directories (`kernel/`) are
        // links to the kernel's cache entry (host paths, which do not resolve here).
        let index = e.file_type().with_context(|| format!("stat({})", seen.join(&name).display()))?.is_file();
        if !share.module_files && !index {
            left.push(name.to_string_lossy().into_owned());
            continue;
        }
        let to = Path::new(tree).join(&name);
        std::os::unix::fs::symlink(&to, dir.join(&name)).with_context(|| format!("symlink({})", to.display()))?;
        linked += 1;
    }
    let mut said = format!("/lib/modules/{release} ({how}): {linked} entries of {tree}");
    if !left.is_empty() {
        said.push_str(&format!(" (indexes only: {} left out)", left.join(", ")));
    }
    if let Some(h) = &share.headers {
        for name in ["build", "source"] {
            std::os::unix::fs::symlink(h, dir.join(name)).with_context(|| format!("symlink({name} -> {h})"))?;
        }
        said.push_str(&format!(", build -> {h}"));
    }
    Ok(Some(said))
}

/// Where the overlay's upper and work directories live (the guest's own, outside the view).
const OVERLAY_STATE: &str = "/kmatrix-overlay";

/// `rel` of the view at `root` (its symbolic links followed inside the view: `/lib` is a link to
/// `usr/lib` on merged-/usr hosts) as an empty writable directory, and how it was made: a tmpfs
/// over the host's directory when the host has one; else (a container host has no
/// `/usr/lib/modules`) an overlay over its deepest existing ancestor, the missing directories
/// made in the overlay's tmpfs upper layer (the `overlay` module comes with the share's).
fn writable_in_view(root: &str, rel: &str) -> Result<(PathBuf, &'static str)> {
    let mut at = PathBuf::from(root);
    for part in Path::new(rel).components() {
        let next = at.join(part);
        match std::fs::read_link(&next) {
            Ok(t) if t.is_absolute() => at = Path::new(root).join(t.strip_prefix("/").unwrap_or(&t)),
            Ok(t) => at = at.join(t),
            Err(_) => at = next,
        }
    }
    if at.is_dir() {
        mount(&at, "tmpfs", "mode=0755")?;
        return Ok((at, "a tmpfs over the host's"));
    }
    let base = at.ancestors().find(|a| a.is_dir()).context("no directory above the modules directory")?.to_path_buf();
    let missing = at.strip_prefix(&base).context("the modules directory is not below its ancestor")?.to_path_buf();
    std::fs::create_dir_all(OVERLAY_STATE).with_context(|| format!("mkdir({OVERLAY_STATE})"))?;
    mount(Path::new(OVERLAY_STATE), "tmpfs", "mode=0755")?;
    let (upper, work) = (Path::new(OVERLAY_STATE).join("upper"), Path::new(OVERLAY_STATE).join("work"));
    for d in [&upper, &work] {
        std::fs::create_dir(d).with_context(|| format!("mkdir({})", d.display()))?;
    }
    let data = format!("lowerdir={},upperdir={},workdir={}", base.display(), upper.display(), work.display());
    mount(&base, "overlay", &data)?;
    std::fs::create_dir_all(base.join(&missing)).with_context(|| format!("mkdir({})", at.display()))?;
    Ok((at, "the host has none: made in an overlay"))
}

fn mount(target: &Path, fstype: &str, data: &str) -> Result<()> {
    let (src, t, fs, d) =
        (sys::cstring("kmatrix-modules")?, sys::cpath(target)?, sys::cstring(fstype)?, sys::cstring(data)?);
    // SAFETY: NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(src.as_ptr(), t.as_ptr(), fs.as_ptr(), libc::MS_NOSUID | libc::MS_NODEV, d.as_ptr().cast())
    };
    if rc != 0 {
        bail!("mount({fstype}, {}, {data}) failed: {}", target.display(), sys::errno_text(sys::errno()));
    }
    Ok(())
}
