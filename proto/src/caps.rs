//! The capability record: what the agent found in the running kernel at boot (tracefs files,
//! probe syntaxes, BPF types, PMUs, modules, mounts), sent in `Hello`.
//!
//! It records observations only; judging a scenario against them is the agent's and the
//! host's work.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the agent found in the running kernel. Typed, never free text, so verdicts can cite it.
///
/// In sections, one per thing it records. On the wire (and in every file the host writes) the
/// sections are flattened: the JSON is one flat object whose keys keep the names and the order
/// they had before the sections existed (`release`, ..., `tracefs_mount`, ..., `bpf_syscall`,
/// ..., `config_source`), so older hosts and older files agree with this one. The sections are
/// declared in that order, which is why the mount summary is not in the tracefs section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Capabilities {
    /// Which kernel this is: what `uname` and /proc say.
    #[serde(flatten)]
    pub kernel: KernelIdentity,
    /// Which of the file systems tracing needs ended up mounted.
    #[serde(flatten)]
    pub mounted: Mounted,
    /// What tracefs offers: tracers, events, probe files and syntaxes.
    #[serde(flatten)]
    pub tracefs: TracefsFeatures,
    /// Which BTF the kernel exports.
    #[serde(flatten)]
    pub btf: BtfFeatures,
    /// What the bpf() syscall accepts.
    #[serde(flatten)]
    pub bpf: BpfFeatures,
    /// Perf PMUs under /sys/bus/event_source/devices, with their `type`.
    pub perf_pmus: BTreeMap<String, u32>,
    /// What the agent itself did at boot and offers: modules, channel, catalogue, mounts.
    #[serde(flatten)]
    pub agent: AgentBoot,
    /// The kernel config options the guest could read, and where from.
    #[serde(flatten)]
    pub config: ConfigOptions,
}

/// Which kernel is running: `uname` and /proc, as the agent read them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct KernelIdentity {
    /// `uname -r`.
    pub release: String,
    /// `uname -v`.
    pub version: String,
    /// `uname -m`.
    pub machine: String,
    /// `/proc/cmdline`.
    pub cmdline: String,
    /// Milliseconds since the kernel started (from /proc/uptime) when `Hello` was built.
    pub uptime_ms: u64,
}

/// The file systems tracing needs, as mounted at boot (the attempts themselves, failures
/// included, are [`AgentBoot::mounts`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Mounted {
    /// Where tracefs is mounted (kmatrix always mounts it at /sys/kernel/tracing); None when it
    /// could not be.
    #[serde(rename = "tracefs_mount")]
    pub tracefs: Option<String>,
    /// debugfs mounted at /sys/kernel/debug (the kprobe blacklist lives there).
    #[serde(rename = "debugfs_mounted")]
    pub debugfs: bool,
    /// bpffs mounted at /sys/fs/bpf.
    #[serde(rename = "bpffs_mounted")]
    pub bpffs: bool,
}

/// What tracefs (and debugfs's kprobe blacklist) offers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TracefsFeatures {
    /// `available_tracers`.
    pub available_tracers: Vec<String>,
    /// Lines of `available_events`.
    pub event_count: usize,
    /// Lines of `available_filter_functions` (0 when the file is absent).
    pub filter_function_count: usize,
    /// tracefs has `kprobe_events`.
    pub kprobe_events: bool,
    /// tracefs has `uprobe_events`.
    pub uprobe_events: bool,
    /// tracefs has `dynamic_events`.
    pub dynamic_events: bool,
    /// Probe syntaxes announced in the tracefs README, e.g. `p[:[gr/]event]`, `r[maxactive]`,
    /// `f[:[gr/]event]`, `e[:[gr/]event]`, `t[:[gr/]event]`.
    pub probe_syntaxes: Vec<ProbeSyntax>,
    /// Entries of /sys/kernel/debug/kprobes/blacklist (None when the file is absent).
    pub kprobe_blacklist: Option<usize>,
}

impl TracefsFeatures {
    /// Whether the tracefs README announces a probe syntax starting with `prefix`
    /// (e.g. `"f["` for fprobe events, `"e["` for event probes, `"r[maxactive]"`).
    pub fn has_probe_syntax(&self, prefix: &str) -> bool {
        self.probe_syntaxes.iter().any(|s| s.text.starts_with(prefix))
    }
}

/// One probe syntax line of the tracefs README, reduced to its prefix (`p`, `r`, `f`, `e`, `t`, ...)
/// and the full text the kernel printed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProbeSyntax {
    /// The syntax's letter as the README writes it (`p`, `r`, `f`, `e`, ...).
    pub kind: String,
    /// The README line itself.
    pub text: String,
}

/// The BTF the kernel exports under /sys/kernel/btf.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct BtfFeatures {
    /// /sys/kernel/btf/vmlinux exists.
    #[serde(rename = "btf_vmlinux")]
    pub vmlinux: bool,
    /// Number of module BTF files under /sys/kernel/btf besides vmlinux.
    #[serde(rename = "btf_modules")]
    pub modules: usize,
}

/// What the bpf() syscall accepts, each probed by asking the kernel (as aya's
/// `is_program_supported` or bpftool do), never inferred from the version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct BpfFeatures {
    /// The bpf() syscall answered (anything but ENOSYS).
    #[serde(rename = "bpf_syscall")]
    pub syscall: bool,
    /// /proc/sys/net/core/bpf_jit_enable (None when absent or unreadable).
    #[serde(rename = "bpf_jit_enable")]
    pub jit_enable: Option<i64>,
    /// BPF program types the kernel accepts, as probed by loading a minimal program of each.
    #[serde(rename = "bpf_prog_types", default)]
    pub prog_types: Vec<String>,
    /// BPF map types the kernel accepts, as probed by creating a small map of each.
    #[serde(rename = "bpf_map_types", default)]
    pub map_types: Vec<String>,
    /// BPF attach types the kernel accepts, as probed by attaching a trivial program of each to
    /// a harmless target and detaching it. Probed at boot: `kprobe` (kprobe perf event),
    /// `bpf_link_create` (BPF_LINK_CREATE of a kprobe perf event, 5.15), `raw_tracepoint`,
    /// `fentry`, `fexit`, `perf_event`. The others are in `attach_on_demand`.
    #[serde(rename = "bpf_attach_types", default)]
    pub attach_types: Vec<String>,
    /// Attach types not probed at boot (too slow for its critical path under TCG: a
    /// kprobe_multi link alone costs 80-110 ms on 6.12): the agent probes each when a scenario
    /// first asks. Not being in `attach_types` says nothing about them.
    #[serde(rename = "bpf_attach_on_demand", default)]
    pub attach_on_demand: Vec<String>,
}

/// What the agent did at boot and what it offers: modules loaded, the channel it talks on, its
/// scenario catalogue, and every mount it attempted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct AgentBoot {
    /// Modules the agent loaded, in order, with how each went.
    pub modules: Vec<ModuleLoad>,
    /// The channel the agent talks on (`/dev/ttyS1`, `/dev/vport0p1`, ...).
    pub channel: String,
    /// Ids of the scenarios in the agent's catalogue, in catalogue order.
    #[serde(default)]
    pub scenarios: Vec<String>,
    /// Every filesystem the agent tried to mount, in order, with how each went.
    #[serde(default)]
    pub mounts: Vec<MountRecord>,
}

/// Kernel config options as the guest sees them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ConfigOptions {
    /// Selected kernel config options (/proc/config.gz when built in), `CONFIG_X` to its value.
    /// The host adds the package's config, which Debian kernels do not carry in-guest.
    #[serde(rename = "config", default)]
    pub options: BTreeMap<String, String>,
    /// Where `options` was read in the guest (`/proc/config.gz`, `/boot/config-<release>`); None
    /// when the guest had no kernel config, and requirements fall back to tracefs evidence.
    #[serde(rename = "config_source", default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One mount the agent attempted at boot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountRecord {
    /// The file system type (`tracefs`).
    pub fstype: String,
    /// Where it was mounted.
    pub target: String,
    /// `ok`, or the errno text of the failed `mount` (or `mkdir` of the mount point).
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
/// One kernel module the agent loaded (or tried to).
pub struct ModuleLoad {
    /// The module's name (`virtio_pci`).
    pub name: String,
    /// `ok`, `exists` (EEXIST: already loaded, counts as ok), `builtin`, or the errno text of the
    /// failed `finit_module` (or `open` of the file).
    pub outcome: String,
    /// Milliseconds the load took.
    pub ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_syntax_lookup_matches_prefix() {
        let tracefs = TracefsFeatures {
            probe_syntaxes: vec![ProbeSyntax {
                kind: "f".into(),
                text: "f[:[<group>/][<event>]] <func-name>[%return] [<args>]".into(),
            }],
            ..Default::default()
        };
        assert!(tracefs.has_probe_syntax("f["));
        assert!(!tracefs.has_probe_syntax("e["));
    }

    /// A real `Hello` line (debian-6.1 under TCG, see fixtures/README.md), without its newline.
    fn captured_hello() -> &'static str {
        include_str!("fixtures/hello-6.1.json").trim_end()
    }

    /// The record's JSON is the channel's and every file's (snapshot meta, results, `boot
    /// --json`): reading a real one and writing it back must give the same bytes, field order
    /// included, or an older host or an older file would no longer agree with this one.
    #[test]
    fn captured_hello_round_trips_byte_for_byte() {
        let line = captured_hello();
        let msg: crate::GuestMsg = serde_json::from_str(line).unwrap();
        let crate::GuestMsg::Hello { caps, .. } = &msg else { panic!("not a Hello: {line}") };
        assert_eq!(caps.kernel.release, "6.1.0-50-amd64");
        assert!(caps.tracefs.has_probe_syntax("r[maxactive]"));
        assert_eq!(serde_json::to_string(&msg).unwrap(), line);
        // The record alone, as `boot --json` and the snapshot meta embed it.
        let start = line.find(r#""caps":"#).unwrap() + r#""caps":"#.len();
        let record = &line[start..line.len() - 1];
        let caps: Capabilities = serde_json::from_str(record).unwrap();
        assert_eq!(serde_json::to_string(&caps).unwrap(), record);
    }

    /// Records written before a field existed still parse, with that field empty; a field that
    /// was always there stays required.
    #[test]
    fn older_records_without_defaulted_fields_parse() {
        let line = captured_hello();
        let start = line.find(r#""caps":"#).unwrap() + r#""caps":"#.len();
        let full: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line[start..line.len() - 1]).unwrap();
        let defaulted = [
            "bpf_prog_types",
            "bpf_map_types",
            "bpf_attach_types",
            "bpf_attach_on_demand",
            "scenarios",
            "mounts",
            "config",
            "config_source",
        ];
        let mut old = full.clone();
        for key in defaulted {
            old.remove(key);
        }
        let caps: Capabilities = serde_json::from_value(old.into()).unwrap();
        assert_eq!(caps.kernel.release, "6.1.0-50-amd64");
        assert!(caps.bpf.prog_types.is_empty() && caps.agent.scenarios.is_empty() && caps.agent.mounts.is_empty());
        assert!(caps.config.options.is_empty() && caps.config.source.is_none());
        assert_eq!(caps.tracefs.kprobe_blacklist, Some(425));
        for required in ["release", "uptime_ms", "kprobe_events", "btf_vmlinux", "bpf_syscall", "perf_pmus", "channel"]
        {
            let mut broken = full.clone();
            broken.remove(required);
            let err = serde_json::from_value::<Capabilities>(broken.into()).unwrap_err();
            assert!(err.to_string().contains(required), "{required}: {err}");
        }
    }

    /// Two real `Hello` lines of an older agent (proto 1, before `bpf_attach_on_demand`), kept as
    /// fuzz seeds: they parse, the missing field empty and the rest in its section.
    #[test]
    fn older_agents_hello_lines_parse() {
        let seeds: [(&[u8], &str); 2] = [
            (include_bytes!("../../fuzz/corpus/channel/hello-5.10"), "5.10.0-32-amd64"),
            (include_bytes!("../../fuzz/corpus/channel/hello-7.3"), "7.3"),
        ];
        for (seed, release) in seeds {
            // The fuzz seed starts with the two bytes that choose its chunk sizes.
            let line = seed[2..].split(|&b| b == b'\n').next().unwrap();
            let msg: crate::GuestMsg = serde_json::from_slice(line).unwrap();
            let crate::GuestMsg::Hello { proto: 1, caps } = msg else { panic!("not a proto-1 Hello") };
            assert!(caps.kernel.release.starts_with(release), "{}", caps.kernel.release);
            assert!(caps.bpf.attach_on_demand.is_empty() && !caps.bpf.attach_types.is_empty());
            assert!(caps.tracefs.kprobe_events && caps.mounted.tracefs.is_some() && !caps.agent.mounts.is_empty());
        }
    }

    /// `config_source` is left out when None (the captured record has none) and kept when set.
    #[test]
    fn config_source_is_written_only_when_known() {
        let mut caps = Capabilities::default();
        assert!(!serde_json::to_string(&caps).unwrap().contains("config_source"));
        caps.config.source = Some("/proc/config.gz".into());
        let text = serde_json::to_string(&caps).unwrap();
        assert!(text.ends_with(r#""config":{},"config_source":"/proc/config.gz"}"#), "{text}");
        assert_eq!(serde_json::from_str::<Capabilities>(&text).unwrap(), caps);
    }
}
