//! Which agent and workloads an image carries, by the kernel's architecture: the x86_64 ones are
//! embedded in kmatrix by its build script; the arm64 ones are built on demand, the first time an
//! arm64 kernel is asked for, by `scripts/build-guest-arm64.sh` (a nightly `-Zbuild-std` build
//! of the agent and `aarch64-linux-gnu-gcc` for the workloads), so the default build does not
//! carry them. This module only picks and loads files; what goes where in the image is `mod.rs`'s.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::{AGENT, WORKLOADS, WORKLOAD_ALIASES};
use crate::kernel::Arch;

/// Why a guest's agent or workloads for an architecture are not at hand.
#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    /// The build script for the architecture's guest failed (or could not start).
    #[error("build the {arch} guest (agent and workloads) with {script}: {detail}")]
    Build {
        /// The architecture.
        arch: Arch,
        /// The build script.
        script: PathBuf,
        /// What failed: the exit status and the last lines of its output.
        detail: String,
    },
    /// A built guest file could not be read.
    #[error("read the {arch} guest's {path}")]
    Read {
        /// The architecture.
        arch: Arch,
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The agent (`/init`) and workloads (`/bin/*`) for one architecture.
#[derive(Debug, Clone)]
pub struct GuestAssets {
    /// The static agent binary, `/init` in the guest.
    pub agent: Cow<'static, [u8]>,
    /// The workload programs, by their name in `/bin`.
    pub workloads: Vec<(String, Cow<'static, [u8]>)>,
    /// Names of a multi-call workload: (name in /bin, symlink target). x86_64's static workloads
    /// are one multi-call `/bin/hello` (harness/build.rs); the arm64 build makes one program each.
    pub aliases: Vec<(String, String)>,
}

/// The workspace this kmatrix was built from: where the arm64 build script and sources are.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Where the arm64 guest files are: `$KMATRIX_GUEST_ARM64` (prebuilt, used as is), else
/// `target/guest-arm64` of the workspace (built or refreshed on first use in this process).
fn arm64_dir() -> (PathBuf, bool) {
    match std::env::var_os("KMATRIX_GUEST_ARM64").filter(|s| !s.is_empty()) {
        Some(d) => (d.into(), false),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(workspace().join("target"));
            (target.join("guest-arm64"), true)
        }
    }
}

/// Built once per process: cargo's no-op check costs a second, not once per image.
static ARM64: Mutex<Option<GuestAssets>> = Mutex::new(None);

/// The agent and workloads for `arch`: x86_64's are embedded in kmatrix; arm64's are built
/// (or refreshed) once per process by `scripts/build-guest-arm64.sh`, or taken from
/// `$KMATRIX_GUEST_ARM64`.
pub fn assets(arch: Arch) -> Result<GuestAssets, AssetsError> {
    match arch {
        Arch::X86_64 => Ok(GuestAssets {
            agent: Cow::Borrowed(AGENT),
            workloads: WORKLOADS.iter().map(|(n, b)| (n.to_string(), Cow::Borrowed(*b))).collect(),
            aliases: WORKLOAD_ALIASES.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect(),
        }),
        Arch::Arm64 => {
            let mut slot = ARM64.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(a) = slot.as_ref() {
                return Ok(a.clone());
            }
            let (dir, build) = arm64_dir();
            if build {
                build_arm64(&dir)?;
            }
            let a = load(arch, &dir)?;
            *slot = Some(a.clone());
            Ok(a)
        }
    }
}

fn build_arm64(dir: &Path) -> Result<(), AssetsError> {
    let script = workspace().join("scripts/build-guest-arm64.sh");
    let fail = |detail: String| AssetsError::Build { arch: Arch::Arm64, script: script.clone(), detail };
    eprintln!("kmatrix: building the arm64 guest (agent, workloads) into {}", dir.display());
    let out = Command::new("bash").arg(&script).arg(dir).output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(fail(format!("{}\n{}", out.status, tail.join("\n"))));
    }
    Ok(())
}

fn load(arch: Arch, dir: &Path) -> Result<GuestAssets, AssetsError> {
    let read = |p: PathBuf| std::fs::read(&p).map_err(|source| AssetsError::Read { arch, path: p, source });
    let agent = read(dir.join("kmatrix-agent"))?;
    let mut workloads = Vec::new();
    // The same names as the embedded x86 set (its files and the names of its multi-call
    // program), each its own program here: a workload missing is an error naming it.
    let names = WORKLOADS.iter().map(|(n, _)| *n).filter(|n| !n.ends_with("-dyn"));
    for name in names.chain(WORKLOAD_ALIASES.iter().map(|(n, _)| *n)) {
        workloads.push((name.to_string(), Cow::Owned(read(dir.join("workloads").join(name))?)));
    }
    Ok(GuestAssets { agent: Cow::Owned(agent), workloads, aliases: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_prebuilt_guest_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        let e = load(Arch::Arm64, d.path()).unwrap_err();
        assert!(e.to_string().contains("arm64 guest's") && e.to_string().contains("kmatrix-agent"), "{e}");
    }
}
