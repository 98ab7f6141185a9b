//! Kernel `.config` files: which tracing features a kernel was built with, known before booting.
//!
//! Only reads `CONFIG_X=...` and `# CONFIG_X is not set` lines; it does not evaluate Kconfig
//! dependencies. The guest agent's capability probe is the authority at run time; this is the
//! pre-boot view (`kmatrix kernels info`).

use std::collections::BTreeMap;

/// The options that decide which tracing paths can work, without the `CONFIG_` prefix.
pub const TRACING_OPTIONS: &[&str] = &[
    "KPROBES",
    "KPROBE_EVENTS",
    "UPROBE_EVENTS",
    "FTRACE",
    "FUNCTION_TRACER",
    "FUNCTION_GRAPH_TRACER",
    "FUNCTION_GRAPH_RETVAL",
    "DYNAMIC_FTRACE",
    "FPROBE",
    "FPROBE_EVENTS",
    "PROBE_EVENTS_BTF_ARGS",
    "HIST_TRIGGERS",
    "BPF_SYSCALL",
    "BPF_EVENTS",
    "BPF_JIT",
    "DEBUG_INFO_BTF",
    "DEBUG_INFO_BTF_MODULES",
    "PERF_EVENTS",
    "TRACEPOINTS",
    "FTRACE_SYSCALLS",
    "IKCONFIG_PROC",
    "HAVE_KPROBES_ON_FTRACE",
    "KPROBES_ON_FTRACE",
];

/// A parsed kernel config. Keys are stored without the `CONFIG_` prefix; string values without
/// their quotes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    values: BTreeMap<String, String>,
    not_set: std::collections::BTreeSet<String>,
}

fn strip(name: &str) -> &str {
    name.strip_prefix("CONFIG_").unwrap_or(name)
}

impl KernelConfig {
    /// Read a `.config` text: `CONFIG_X=v` lines and `# CONFIG_X is not set` lines; anything else
    /// is ignored.
    pub fn parse(text: &str) -> KernelConfig {
        let mut c = KernelConfig::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# CONFIG_") {
                if let Some(name) = rest.strip_suffix(" is not set") {
                    c.not_set.insert(name.to_string());
                }
                continue;
            }
            let Some(rest) = line.strip_prefix("CONFIG_") else { continue };
            let Some((name, value)) = rest.split_once('=') else { continue };
            let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(s) => s.replace("\\\"", "\"").replace("\\\\", "\\"),
                None => value.to_string(),
            };
            c.not_set.remove(name);
            c.values.insert(name.to_string(), value);
        }
        c
    }

    /// The value of `name` (`KPROBES` or `CONFIG_KPROBES`): `y`, `m`, a number or a string.
    /// `None` when unset or `# ... is not set`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(strip(name)).map(String::as_str)
    }

    /// `y` or `m`.
    pub fn is_enabled(&self, name: &str) -> bool {
        matches!(self.get(name), Some("y") | Some("m"))
    }

    /// Written as `# CONFIG_X is not set` (as opposed to absent from the file).
    pub fn is_explicitly_unset(&self, name: &str) -> bool {
        self.not_set.contains(strip(name))
    }

    /// How many options are set.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no option is set (an empty or unreadable config).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines from Debian's config-6.1.0-50-amd64 (bookworm), in file order around each option.
    const DEBIAN_6_1: &str = include_str!("../fixtures/config-6.1.excerpt");

    #[test]
    fn parses_a_real_config() {
        let c = KernelConfig::parse(DEBIAN_6_1);
        let expect: &[(&str, Option<&str>)] = &[
            ("KPROBES", Some("y")),
            ("KPROBE_EVENTS", Some("y")),
            ("UPROBE_EVENTS", Some("y")),
            ("FTRACE", Some("y")),
            ("FUNCTION_TRACER", Some("y")),
            ("FUNCTION_GRAPH_TRACER", Some("y")),
            ("FUNCTION_GRAPH_RETVAL", None),
            ("DYNAMIC_FTRACE", Some("y")),
            ("FPROBE", None),
            ("FPROBE_EVENTS", None),
            ("HIST_TRIGGERS", Some("y")),
            ("BPF_SYSCALL", Some("y")),
            ("BPF_EVENTS", Some("y")),
            ("BPF_JIT", Some("y")),
            ("DEBUG_INFO_BTF", Some("y")),
            ("DEBUG_INFO_BTF_MODULES", Some("y")),
            ("IKCONFIG_PROC", None),
            ("KPROBES_ON_FTRACE", Some("y")),
            ("LOG_BUF_SHIFT", Some("17")),
        ];
        for (k, v) in expect {
            assert_eq!(c.get(k), *v, "{k}");
        }
        assert!(c.is_enabled("CONFIG_KPROBES"));
        assert!(!c.is_enabled("IKCONFIG_PROC"));
        assert!(c.is_explicitly_unset("IKCONFIG") && c.is_explicitly_unset("FPROBE"));
        assert!(c.is_enabled("NET_9P_VIRTIO") && c.get("NET_9P_VIRTIO") == Some("m"));
    }

    #[test]
    fn odd_lines() {
        let c = KernelConfig::parse(
            "CONFIG_A=\"x \\\"q\\\"\"\n# CONFIG_B is not set\nCONFIG_B=y\nnoise\nCONFIG_C\n#CONFIG_D is not set\n",
        );
        assert_eq!(c.get("A"), Some("x \"q\""));
        assert!(c.is_enabled("B") && !c.is_explicitly_unset("B"));
        assert_eq!(c.get("C"), None);
        assert_eq!(c.len(), 2);
    }
}
