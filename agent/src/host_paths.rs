//! Host paths under the guest's scratch directories (`/tmp`, `/run`), shown again at their host
//! paths in the guest's view of the host root (`share.rs`).
//!
//! The view's `/tmp` and `/run` are the guest's own (writable tmpfs: programs and tools write
//! there), bound over the host's. Before they are, [`keep_host_scratch`] binds the host's own
//! `/tmp` and `/run` to [`HOST_SCRATCH`] (outside the view, private); then, for every host path a
//! request names under them (its cwd, its program, its absolute or cwd-relative arguments, the
//! `--rw` directories), [`reveal`] binds the host's entry at the path's first component over the
//! view's (`/tmp/kmatrix` for a clone at `/tmp/kmatrix/harness`), once per component. The view's
//! `/tmp` is a slave of the guest's, so these binds stay in the view: the agent's own `/tmp` (the
//! tool scenarios' work directory) never sees them. Not here: mounting the share itself and the
//! guest's kernel-backed mounts (`share.rs`).

use crate::share::{mount, HOST_ROOT};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// The guest's scratch directories: its own in the view, the host's kept at [`HOST_SCRATCH`].
pub const SCRATCH: &[&str] = &["/tmp", "/run"];
/// Where the host's own scratch directories are kept (`/kmatrix-host/tmp`): in the agent's root,
/// not in the view, so no program run in the view sees them twice.
const HOST_SCRATCH: &str = "/kmatrix-host";

/// The components already shown (`/tmp/kmatrix`), for this guest's life.
static REVEALED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Keep the host's `dir` (a [`SCRATCH`] directory of the freshly mounted host root) at
/// [`HOST_SCRATCH`]`dir`, private, before the guest's own is bound over it in the view.
pub fn keep_host_scratch(dir: &str) -> Result<()> {
    let host = format!("{HOST_ROOT}{dir}");
    let kept = format!("{HOST_SCRATCH}{dir}");
    std::fs::create_dir_all(&kept).with_context(|| format!("mkdir({kept}) failed"))?;
    mount(&host, &kept, "", libc::MS_BIND, "")
        .map_err(|e| anyhow::anyhow!("bind mount({host}, {kept}) failed: {e}"))?;
    // Private: the view's bind over the host's `dir` (next) must not propagate to this copy.
    mount("", &kept, "", libc::MS_PRIVATE, "").map_err(|e| anyhow::anyhow!("mount({kept}, MS_PRIVATE) failed: {e}"))
}

/// The view's `dir` (the guest's own, just bound) made a slave of the guest's: what the guest
/// mounts in its own `dir` still shows, what [`reveal`] mounts in the view stays there.
pub fn isolate_view_scratch(dir: &str) -> Result<()> {
    let view = format!("{HOST_ROOT}{dir}");
    mount("", &view, "", libc::MS_REC | libc::MS_SLAVE, "")
        .map_err(|e| anyhow::anyhow!("mount({view}, MS_REC|MS_SLAVE) failed: {e}"))
}

/// The paths a program run in `cwd` with `argv` names: `cwd`, and every argument that is an
/// absolute path or, relative, names something under `cwd` (the program included).
pub fn named_by(cwd: &str, argv: &[String]) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(cwd)];
    for a in argv {
        if a.is_empty() || a.starts_with('-') {
            continue;
        }
        out.push(Path::new(cwd).join(a));
    }
    out
}

/// The scratch directory and first component under it that show `path` (`/tmp/kmatrix` for
/// `/tmp/kmatrix/harness`); `None` for paths elsewhere, for a scratch directory itself, and for
/// paths with `..` (not resolved here; the host sends canonical cwds).
fn component_of(path: &Path) -> Option<(&'static str, String)> {
    if path.components().any(|c| c == Component::ParentDir) {
        return None;
    }
    let dir = SCRATCH.iter().find(|d| path.starts_with(d))?;
    let first = path.strip_prefix(dir).ok()?.components().find_map(|c| match c {
        Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
        _ => None,
    })?;
    Some((dir, first))
}

/// Show in the view every host path of `paths` that lies under a scratch directory and exists on
/// the host, at its host path (see the module doc). Returns what was newly shown. A path the host
/// does not have is left alone: a program may create it in the guest's scratch space.
pub fn reveal(paths: &[PathBuf]) -> Result<Vec<String>> {
    let mut shown = REVEALED.lock().map_err(|_| anyhow::anyhow!("host path state poisoned"))?;
    let mut new = Vec::new();
    for p in paths {
        let Some((dir, first)) = component_of(p) else { continue };
        let key = format!("{dir}/{first}");
        if shown.contains(&key) {
            continue;
        }
        let kept = format!("{HOST_SCRATCH}{key}");
        let Ok(meta) = std::fs::symlink_metadata(&kept) else { continue };
        let view = format!("{HOST_ROOT}{key}");
        let here = std::fs::symlink_metadata(&view).ok();
        if meta.file_type().is_symlink() {
            // A link resolves in the view as on the host: copy it instead of binding.
            let target = std::fs::read_link(&kept).with_context(|| format!("readlink({kept}) failed"))?;
            if here.is_none() {
                std::os::unix::fs::symlink(&target, &view)
                    .with_context(|| format!("symlink({}, {view}) failed", target.display()))?;
            }
            shown.insert(key);
            continue;
        }
        match here {
            None if meta.is_dir() => std::fs::create_dir(&view).with_context(|| format!("mkdir({view}) failed"))?,
            None => drop(std::fs::File::create(&view).with_context(|| format!("create({view}) failed"))?),
            Some(h) if h.is_dir() != meta.is_dir() => bail!(
                "the host's {key} cannot be shown in the guest: the guest already has a {} there",
                if h.is_dir() { "directory" } else { "file" }
            ),
            Some(_) => {}
        }
        mount(&kept, &view, "", libc::MS_BIND, "")
            .map_err(|e| anyhow::anyhow!("bind mount({kept}, {view}) failed: {e}"))?;
        // The bind is the view's alone: had it propagated to the guest's own `dir` (the agent's,
        // where the tool scenarios work), the entry there would now be on the share's device.
        let dev = |p: &str| std::fs::metadata(p).map(|m| m.dev()).with_context(|| format!("stat({p}) failed"));
        if dev(&key)? != dev(dir)? {
            bail!("the host's {key} shown in the view reached the guest's own {dir} too");
        }
        new.push(key.clone());
        shown.insert(key);
    }
    Ok(new)
}

/// [`reveal`] what a program run in `cwd` with `argv` names, then check that `cwd` is there in
/// the view: an error names it when it is not.
pub fn prepare(cwd: &str, argv: &[String]) -> Result<()> {
    reveal(&named_by(cwd, argv))?;
    if !Path::new(&format!("{HOST_ROOT}{cwd}")).is_dir() {
        bail!("the directory {cwd} does not exist in the guest's view of the host root");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_component_under_a_scratch_directory_is_shown() {
        let c = |p: &str| component_of(Path::new(p));
        assert_eq!(c("/tmp/kmatrix/harness"), Some(("/tmp", "kmatrix".to_string())));
        assert_eq!(c("/tmp/x.sh"), Some(("/tmp", "x.sh".to_string())));
        assert_eq!(c("/run/user/1000"), Some(("/run", "user".to_string())));
        assert_eq!(c("/tmp"), None);
        assert_eq!(c("/tmpfoo/x"), None);
        assert_eq!(c("/home/u/tmp/x"), None);
        assert_eq!(c("/tmp/../etc"), None);
    }

    #[test]
    fn a_request_names_its_cwd_program_and_path_arguments() {
        let argv: Vec<String> =
            ["/tmp/a/prog", "-v", "data.txt", "/tmp/b/c", ""].iter().map(|s| s.to_string()).collect();
        let named = named_by("/tmp/w", &argv);
        let want: Vec<PathBuf> =
            ["/tmp/w", "/tmp/a/prog", "/tmp/w/data.txt", "/tmp/b/c"].iter().map(PathBuf::from).collect();
        assert_eq!(named, want);
    }
}
