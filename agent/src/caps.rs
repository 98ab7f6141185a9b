//! Building the capability record the agent sends in `Hello`.
//!
//! Everything is read from the running kernel (uname, /proc, tracefs, sysfs, the bpf syscall),
//! never inferred from the version number, so verdicts can cite what the guest actually had.
//! Each probe degrades to "absent" (false, 0, None) instead of failing the boot: a kernel without
//! a feature is a result, not an error.

use crate::mounts::{self, BPFFS, DEBUGFS, TRACEFS};
use crate::{bpf, kconfig, sys, tracefs};
use kmatrix_proto::{
    AgentBoot, BpfFeatures, BtfFeatures, Capabilities, ConfigOptions, KernelIdentity, ModuleLoad, MountRecord, Mounted,
    TracefsFeatures,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Substrings of config options worth sending: the tracing, probing and BPF surface.
const CONFIG_KEYS: &[&str] = &[
    "TRACE",
    "TRACING",
    "KPROBE",
    "UPROBE",
    "FPROBE",
    "BPF",
    "BTF",
    "PERF",
    "DEBUG_INFO",
    "PROBE",
    "HIST",
    "SYNTH",
    "KALLSYMS",
    "MODULES",
    "IKCONFIG",
    "RETHOOK",
    "LIVEPATCH",
    "PREEMPT",
    "FUNCTION_GRAPH",
    "FTRACE",
    "IRQSOFF",
    "RANDOM",
];

pub struct Inputs {
    pub mounts: Vec<MountRecord>,
    pub modules: Vec<ModuleLoad>,
    pub channel: String,
}

/// Milliseconds each probe took, in order, for the console line after `Hello`: this record is
/// on every boot's critical path.
pub type Steps = Vec<(&'static str, u64)>;

pub fn build(inputs: Inputs) -> (Capabilities, Steps) {
    let mut steps: Steps = Vec::new();
    let mut clock = std::time::Instant::now();
    let mut step = |name: &'static str| {
        steps.push((name, clock.elapsed().as_millis() as u64));
        clock = std::time::Instant::now();
    };
    let uname = sys::uname().ok();
    let release = uname.as_ref().map(|u| u.release.clone()).unwrap_or_default();
    let tracefs_ok = mounts::mounted(&inputs.mounts, TRACEFS);
    let t = Path::new(TRACEFS);
    let readme = read(&t.join("README")).unwrap_or_default();
    let probe_syntaxes = tracefs::readme::probe_syntaxes(&readme);
    let available_tracers = read(&t.join("available_tracers"))
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    step("readme+tracers");
    let event_count = count_lines(&t.join("available_events"));
    step("events");
    let filter_function_count = tracefs::functions::total(t);
    step("functions");
    let blacklist = Path::new(DEBUGFS).join("kprobes/blacklist");
    let kprobe_blacklist = blacklist.exists().then(|| count_lines(&blacklist));
    step("blacklist");
    let bpf_syscall = bpf::syscall_present();
    let bpf_prog_types = bpf::prog_types();
    step("bpf_prog_types");
    let bpf_map_types = bpf::map_types();
    step("bpf_map_types");
    let bpf_attach_types = bpf::attach_types();
    step("bpf_attach_types");
    let perf_pmus = perf_pmus();
    let btf_modules = btf_modules();
    let (config, config_source) = kernel_config();
    step("pmus+btf+config");
    let caps = Capabilities {
        kernel: KernelIdentity {
            release,
            version: uname.as_ref().map(|u| u.version.clone()).unwrap_or_default(),
            machine: uname.as_ref().map(|u| u.machine.clone()).unwrap_or_default(),
            cmdline: read(Path::new("/proc/cmdline")).map(|s| s.trim().to_string()).unwrap_or_default(),
            uptime_ms: uptime_ms().unwrap_or(0),
        },
        mounted: Mounted {
            tracefs: tracefs_ok.then(|| TRACEFS.to_string()),
            debugfs: mounts::mounted(&inputs.mounts, DEBUGFS),
            bpffs: mounts::mounted(&inputs.mounts, BPFFS),
        },
        tracefs: TracefsFeatures {
            available_tracers,
            event_count,
            filter_function_count,
            kprobe_events: t.join("kprobe_events").exists(),
            uprobe_events: t.join("uprobe_events").exists(),
            dynamic_events: t.join("dynamic_events").exists(),
            probe_syntaxes,
            kprobe_blacklist,
        },
        btf: BtfFeatures { vmlinux: Path::new("/sys/kernel/btf/vmlinux").exists(), modules: btf_modules },
        bpf: BpfFeatures {
            syscall: bpf_syscall,
            jit_enable: read(Path::new("/proc/sys/net/core/bpf_jit_enable")).and_then(|s| s.trim().parse().ok()),
            prog_types: bpf_prog_types,
            map_types: bpf_map_types,
            attach_types: bpf_attach_types,
            attach_on_demand: bpf::ON_DEMAND.iter().map(|s| s.to_string()).collect(),
        },
        perf_pmus,
        agent: AgentBoot {
            modules: inputs.modules,
            channel: inputs.channel,
            scenarios: Vec::new(),
            mounts: inputs.mounts,
        },
        config: ConfigOptions { options: config, source: config_source },
    };
    (caps, steps)
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn uptime_ms() -> Option<u64> {
    let text = read(Path::new("/proc/uptime"))?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some((secs * 1000.0) as u64)
}

/// Lines of a possibly large file, streamed (available_filter_functions has ~50k).
fn count_lines(path: &Path) -> usize {
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    BufReader::with_capacity(64 * 1024, file).split(b'\n').take_while(Result::is_ok).count()
}

fn btf_modules() -> usize {
    std::fs::read_dir("/sys/kernel/btf")
        .map(|d| d.flatten().filter(|e| e.file_name() != "vmlinux").count())
        .unwrap_or(0)
}

fn perf_pmus() -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/sys/bus/event_source/devices") else {
        return out;
    };
    for entry in dir.flatten() {
        let ty = read(&entry.path().join("type")).and_then(|s| s.trim().parse().ok());
        if let Some(ty) = ty {
            out.insert(entry.file_name().to_string_lossy().into_owned(), ty);
        }
    }
    out
}

/// Tracing-related options from /proc/config.gz (only with CONFIG_IKCONFIG_PROC, which Debian
/// does not set) and that source. A `/boot/config-<release>` is not read here: see `kconfig`.
fn kernel_config() -> (BTreeMap<String, String>, Option<String>) {
    const GZ: &str = "/proc/config.gz";
    let Ok(file) = std::fs::File::open(GZ) else {
        return (BTreeMap::new(), None);
    };
    let mut text = String::new();
    if flate2::read::GzDecoder::new(file).take(16 * 1024 * 1024).read_to_string(&mut text).is_err() {
        return (BTreeMap::new(), None);
    }
    (parse_config(&text), Some(GZ.to_string()))
}

/// `CONFIG_X=y` lines whose name contains one of [`CONFIG_KEYS`]; `# CONFIG_X is not set`
/// becomes `n`, so an absent option and a disabled one differ.
fn parse_config(text: &str) -> BTreeMap<String, String> {
    kconfig::parse(text, |name| CONFIG_KEYS.iter().any(|k| name.contains(k)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_tracing_options_and_unset_ones() {
        let text = "CONFIG_KPROBES=y\n# CONFIG_FPROBE is not set\nCONFIG_SOUND=m\nCONFIG_DEFAULT_HOSTNAME=\"(none)\"\n";
        let c = parse_config(text);
        assert_eq!(c.get("CONFIG_KPROBES").map(String::as_str), Some("y"));
        assert_eq!(c.get("CONFIG_FPROBE").map(String::as_str), Some("n"));
        assert!(!c.contains_key("CONFIG_SOUND"));
        assert_eq!(c.len(), 2);
    }
}
