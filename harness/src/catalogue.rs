//! The scenario catalogue as the host sees it: asked of the embedded agent itself
//! (`kmatrix-agent --catalogue`, run on the host), so the list of scenarios, their `since` and
//! their requirements exist in one place only, the code that runs them.
//!
//! Why a round trip rather than sharing the list through `proto` at build time: the catalogue is
//! made of the agent's `const` scenario entries (with their requirement enums and run functions),
//! so the agent binary the harness embeds anyway is the one thing that can print it without a
//! second copy or generated code; running it costs ~10 ms once per agent build (cached by hash).

#![warn(missing_docs)]

use crate::cache::{self, Cache};
use kmatrix_proto::ScenarioInfo;
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Why the agent's catalogue could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The embedded agent binary could not be written to the cache.
    #[error("cannot write the agent binary to {path}")]
    Write {
        /// Where it was written.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The agent binary could not be run on the host.
    #[error("cannot run the agent ({path}) to list its catalogue")]
    Run {
        /// The agent binary.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The agent failed (its status and stderr) or printed no JSON catalogue (the parser's error).
    #[error("the agent's catalogue is unreadable: {0}")]
    Parse(String),
    /// The cache could not be used.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
}

/// The whole catalogue, in the agent's order.
pub fn load(cache: &Cache) -> Result<Vec<ScenarioInfo>, CatalogueError> {
    let bytes = crate::image::AGENT;
    let sha = hex::encode(Sha256::digest(bytes));
    let path = cache.dir("agent")?.join(format!("kmatrix-agent-{}", &sha[..16]));
    cache.hold(&format!("agent-{}", &sha[..16]))?;
    let fresh = std::fs::metadata(&path).map(|m| m.len() == bytes.len() as u64).unwrap_or(false);
    if !fresh {
        cache::write_atomic_with(&path, |f| {
            use std::io::Write;
            f.write_all(bytes)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o755))
        })?;
    }
    // ETXTBSY ("Text file busy"): a child forked by another thread while the file was still
    // open for writing holds a write descriptor until it execs (here, or in a concurrent kmatrix
    // that wrote the same file). It goes within milliseconds; retry briefly, as Go's os/exec does.
    let mut tries = 0;
    let out = loop {
        match std::process::Command::new(&path).arg("--catalogue").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            other => break other.map_err(|source| CatalogueError::Run { path: path.clone(), source })?,
        }
    };
    if !out.status.success() {
        return Err(CatalogueError::Parse(format!(
            "agent exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| CatalogueError::Parse(e.to_string()))
}

/// Scenarios that break the guest on purpose (`selftest.*`): only selected when a pattern names
/// them explicitly, never by `*`.
pub const SELFTEST_PREFIX: &str = "selftest.";

/// The scenarios `globs` selects, with `selftest.*` left out unless a pattern starts with it.
pub fn select(cat: &[ScenarioInfo], globs: &str) -> Vec<ScenarioInfo> {
    let explicit_selftest = globs.split(',').map(str::trim).any(|p| p.starts_with(SELFTEST_PREFIX));
    cat.iter()
        .filter(|s| explicit_selftest || !s.id.starts_with(SELFTEST_PREFIX))
        .filter(|s| crate::run::matches_any(globs, &s.id))
        .cloned()
        .collect()
}

/// A measured share of the catalogue: `kmatrix run --lane`, and a matrix kernel's `lane` (what
/// a run that names no lane gives it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    /// The kernel's own interfaces, run by the agent.
    Core,
    /// The host's real tools, run in the guest (`tool.*`).
    Tools,
    /// Both.
    All,
}

impl Lane {
    /// As `--lane` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Core => "core",
            Lane::Tools => "tools",
            Lane::All => "all",
        }
    }

    /// Whether a scenario belongs to this lane: the tools lane is the scenarios that run the
    /// host's programs (they need its root shared in, which every guest of a run then gets).
    pub fn has(self, s: &kmatrix_proto::ScenarioInfo) -> bool {
        match self {
            Lane::Core => !s.host_root,
            Lane::Tools => s.host_root,
            Lane::All => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> ScenarioInfo {
        ScenarioInfo {
            id: id.into(),
            summary: String::new(),
            since: String::new(),
            until: None,
            requires: Vec::new(),
            params: Default::default(),
            host_root: false,
            kernel_headers: false,
        }
    }

    #[test]
    fn selftests_need_an_explicit_pattern() {
        let cat = vec![info("kprobe.tracefs.openat"), info("selftest.hang"), info("selftest.panic")];
        let ids = |v: Vec<ScenarioInfo>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(select(&cat, "*")), ["kprobe.tracefs.openat"]);
        assert_eq!(ids(select(&cat, "selftest.hang,kprobe.*")), ["kprobe.tracefs.openat", "selftest.hang"]);
    }
}
