//! The running kernel's build config, for requirement checks: what `CONFIG_X` is set to, and
//! where that was read, so an `unsupported` can cite the file.
//!
//! Sources, in order: `/proc/config.gz` (CONFIG_IKCONFIG_PROC; Debian does not set it, and when
//! present it is already in the capability record) and `/boot/config-<release>`, where an image
//! may carry the kernel package's config as an installed Debian system has it. The second is
//! parsed on first use, not at boot: ~250 KB of text costs ~40 ms under TCG, and `Hello` must not
//! wait for it (the host has the package's config anyway).

use kmatrix_proto::Capabilities;
use std::collections::BTreeMap;
use std::sync::OnceLock;

pub struct Config {
    /// The file the options were read from.
    pub source: String,
    /// `CONFIG_X` → value; `n` for `# CONFIG_X is not set`, so unset differs from unknown.
    pub options: BTreeMap<String, String>,
}

/// The kernel's config, or None when the guest has none.
pub fn get(caps: &Capabilities) -> Option<&'static Config> {
    static CONFIG: OnceLock<Option<Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            if let (Some(source), false) = (&caps.config.source, caps.config.options.is_empty()) {
                return Some(Config { source: source.clone(), options: caps.config.options.clone() });
            }
            let boot = format!("/boot/config-{}", caps.kernel.release);
            let text = std::fs::read_to_string(&boot).ok()?;
            Some(Config { source: boot, options: parse(&text, |_| true) })
        })
        .as_ref()
}

/// `CONFIG_X=y` and `# CONFIG_X is not set` lines of a config whose name passes `wanted`.
pub fn parse(text: &str, wanted: impl Fn(&str) -> bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                let name = format!("CONFIG_{name}");
                if wanted(&name) {
                    out.insert(name, "n".to_string());
                }
            }
        } else if line.starts_with("CONFIG_") {
            if let Some((name, value)) = line.split_once('=') {
                if wanted(name) {
                    out.insert(name.to_string(), value.trim_matches('"').to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_set_and_unset_options() {
        // Lines of Debian 6.12's config-6.12.107+deb13-amd64.
        let text = "CONFIG_FPROBE_EVENTS=y\n# CONFIG_FUNCTION_GRAPH_RETVAL is not set\n\
                    CONFIG_DEFAULT_HOSTNAME=\"(none)\"\n# comment\n";
        let c = parse(text, |_| true);
        assert_eq!(c.get("CONFIG_FPROBE_EVENTS").map(String::as_str), Some("y"));
        assert_eq!(c.get("CONFIG_FUNCTION_GRAPH_RETVAL").map(String::as_str), Some("n"));
        assert_eq!(c.get("CONFIG_DEFAULT_HOSTNAME").map(String::as_str), Some("(none)"));
        assert_eq!(parse(text, |n| n.contains("FPROBE")).len(), 1);
    }
}
