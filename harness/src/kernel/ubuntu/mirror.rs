//! Where Ubuntu's archive is, never written into kmatrix: `--ubuntu-mirror`, else
//! `KMATRIX_UBUNTU_MIRROR`, else the host's apt configuration when the host is Ubuntu, else the
//! default mirror the host's debootstrap script for the suite names (Debian ships debootstrap
//! with Ubuntu's scripts: `/usr/share/debootstrap/scripts/<codename>`, else `gutsy`, whose
//! `default_mirror` lines sit in a `case $ARCH` / `case $SUITE` shell block).
//!
//! It only finds a base URL and says where it came from; downloading is [`Mirror`]'s job.

use std::fs;
use std::path::Path;

use crate::kernel::error::{KernelError, Result};
use crate::kernel::mirror::{mirror_from_apt, Mirror};
use crate::kernel::spec::FetchOptions;

/// The environment variable that names Ubuntu's mirror.
pub const ENV: &str = "KMATRIX_UBUNTU_MIRROR";

/// The debootstrap scripts directory of a Debian or Ubuntu host.
pub const DEBOOTSTRAP_SCRIPTS: &str = "/usr/share/debootstrap/scripts";

/// Ubuntu's mirror for `suite` (`focal-updates`) and where it came from, as `opts`, the
/// environment and the host say.
pub fn discover(opts: &FetchOptions, suite: &str) -> Result<(Mirror, String)> {
    if let Some(m) = opts.ubuntu_mirror.as_deref().filter(|m| !m.is_empty()) {
        return Ok((Mirror::new(m), "--ubuntu-mirror".into()));
    }
    if let Some(m) = std::env::var(ENV).ok().filter(|m| !m.is_empty()) {
        return Ok((Mirror::new(&m), ENV.into()));
    }
    if host_is_ubuntu(Path::new("/etc/os-release")) {
        if let Ok(m) = mirror_from_apt(Path::new("/etc/apt"), "/ubuntu") {
            return Ok((Mirror::new(&m), "the host's apt configuration".into()));
        }
    }
    let scripts = Path::new(DEBOOTSTRAP_SCRIPTS);
    match debootstrap_mirror(scripts, suite, "amd64") {
        Some((m, script)) => Ok((Mirror::new(&m), format!("debootstrap's default for {suite} ({script})"))),
        None => Err(KernelError::NoUbuntuMirror { scripts: scripts.display().to_string() }),
    }
}

/// True when `os_release` says `ID=ubuntu`.
fn host_is_ubuntu(os_release: &Path) -> bool {
    fs::read_to_string(os_release)
        .map(|t| t.lines().any(|l| l.trim() == "ID=ubuntu" || l.trim() == "ID=\"ubuntu\""))
        .unwrap_or(false)
}

/// The `default_mirror` the debootstrap script of `suite`'s codename (else `gutsy`, which every
/// Ubuntu release after it links to) gives `arch`, and the script's path.
pub fn debootstrap_mirror(scripts: &Path, suite: &str, arch: &str) -> Option<(String, String)> {
    let codename = suite.split('-').next().unwrap_or(suite);
    for name in [codename, "gutsy"] {
        let path = scripts.join(name);
        if let Ok(text) = fs::read_to_string(&path) {
            if let Some(m) = default_mirror(&text, codename, arch) {
                return Some((m, path.display().to_string()));
            }
        }
    }
    None
}

/// Evaluate the `case $ARCH in … case $SUITE in … default_mirror URL` block of a debootstrap
/// script for `arch` and `codename`: the first `default_mirror` under the first pattern line
/// that matches (or is `*`) at each level.
pub fn default_mirror(script: &str, codename: &str, arch: &str) -> Option<String> {
    let (mut depth, mut arch_ok, mut suite_ok) = (0usize, false, false);
    let matches = |pats: &str, w: &str| pats.split('|').any(|p| p.trim() == w || p.trim() == "*");
    for line in script.lines() {
        let t = line.trim();
        if t.starts_with("case ") {
            depth += 1;
        } else if t == "esac" {
            depth = depth.saturating_sub(1);
        } else if let Some(pats) = t.strip_suffix(')') {
            match depth {
                1 => arch_ok = matches(pats, arch),
                2 => suite_ok = matches(pats, codename),
                _ => {}
            }
        } else if let Some(url) = t.strip_prefix("default_mirror") {
            // The first default_mirror under a matching branch wins, as the shell's first match.
            if (depth == 1 && arch_ok) || (depth == 2 && arch_ok && suite_ok) {
                return url.split_whitespace().next().map(str::to_string);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian bookworm's debootstrap 1.0.128 `scripts/gutsy`, its first 25 lines, with the mirror
    /// host names replaced (kmatrix never writes one): `old.example` for the old-releases mirror,
    /// `main.example` for the archive, `ports.example` for the ports mirror.
    const GUTSY: &str = include_str!("../fixtures/debootstrap-gutsy.head");

    #[test]
    fn default_mirror_follows_arch_and_suite() {
        assert_eq!(default_mirror(GUTSY, "focal", "amd64").as_deref(), Some("http://main.example/ubuntu"));
        assert_eq!(default_mirror(GUTSY, "noble", "i386").as_deref(), Some("http://main.example/ubuntu"));
        assert_eq!(default_mirror(GUTSY, "lucid", "amd64").as_deref(), Some("http://old.example/ubuntu"));
        assert_eq!(default_mirror(GUTSY, "gutsy", "sparc").as_deref(), Some("http://old.example/ubuntu"));
        assert_eq!(default_mirror(GUTSY, "focal", "sparc").as_deref(), Some("http://ports.example/ubuntu-ports"));
        assert_eq!(default_mirror(GUTSY, "focal", "arm64").as_deref(), Some("http://ports.example/ubuntu-ports"));
        assert_eq!(default_mirror("mirror_style release\n", "focal", "amd64"), None);
    }

    #[test]
    fn a_missing_script_falls_back_to_gutsy_and_names_it() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("gutsy"), GUTSY).unwrap();
        let (m, script) = debootstrap_mirror(d.path(), "noble-updates", "amd64").unwrap();
        assert_eq!(m, "http://main.example/ubuntu");
        assert!(script.ends_with("/gutsy"), "{script}");
        assert_eq!(debootstrap_mirror(&d.path().join("none"), "noble", "amd64"), None);
    }

    #[test]
    fn os_release_says_ubuntu() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("os-release");
        fs::write(&p, "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n").unwrap();
        assert!(host_is_ubuntu(&p));
        fs::write(&p, "NAME=\"Debian GNU/Linux\"\nID=debian\n").unwrap();
        assert!(!host_is_ubuntu(&p));
    }
}
