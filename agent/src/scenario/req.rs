//! Requirements of a scenario ([`Req`]): what it needs from the guest, how the catalogue words
//! it, and, when it is missing, the reason and evidence of the `unsupported` result.
//!
//! Checked against the capability record and the guest's files before a scenario runs. Not for
//! what a scenario finds out while running (a refused write, a missing PMU): that is its own
//! verdict.

use crate::host_program::{Found, Tool};
use crate::mounts::{DEBUGFS, TRACEFS};
use crate::{kallsyms, kconfig};
use kmatrix_proto::Capabilities;
use std::path::Path;

/// What a scenario needs from the guest; checked against the capability record and the files.
#[derive(Debug, Clone, Copy)]
pub enum Req {
    /// tracefs mounted.
    Tracefs,
    /// Something of the machine, not the kernel (`hardware PMU`): the scenario detects it itself
    /// and reports `unsupported` with the kernel's errno; the host, which knows the machine (TCG
    /// has no PMU), judges whether that is right.
    Machine(&'static str),
    /// A tool of the host, run through the shared host root (`/usr/bin/perf`): present, able to
    /// run in this guest, and running (see `host_program`); else the package that provides it on
    /// the host's distribution, and the tool's own words when it refused.
    HostProgram(&'static Tool),
    /// The running kernel's headers, for tools that compile against them at run time (BCC): the
    /// kernel's own `/sys/kernel/kheaders.tar.xz` (CONFIG_IKHEADERS), or Debian's `linux-headers`
    /// of the build, fetched by the host and mounted in the shared host root.
    KernelHeaders,
    /// A tracer listed in `available_tracers`.
    Tracer(&'static str),
    /// A tracefs file (`kprobe_events`, `set_ftrace_pid`, ...).
    File(&'static str),
    /// An event directory under `events/` (`syscalls/sys_enter_openat`).
    Event(&'static str),
    /// A debugfs file (`kprobes/blacklist`).
    Debugfs(&'static str),
    /// A program in the image (`/bin/openat-loop`).
    Program(&'static str),
    /// A probe syntax in the tracefs README whose text starts with this (`e[`, `f[`).
    Syntax(&'static str),
    /// A tracer option file `options/<name>`, built only with `config`, first in upstream `since`;
    /// when absent, the reason tells a kernel that predates the option from one built without it.
    TraceOption { name: &'static str, config: &'static str, since: &'static str },
    /// A kernel config option: read from the kernel's config when the guest has it, else
    /// inferred from a tracefs file that the kernel creates exactly when the option is set.
    Config { option: &'static str, tracefs: &'static str },
    /// A perf PMU under `/sys/bus/event_source/devices` (`kprobe`, `uprobe`).
    Pmu(&'static str),
    /// A symbol in `/proc/kallsyms`.
    Symbol(&'static str),
    /// At least this many online CPUs (`/sys/devices/system/cpu/online`): a per-CPU path is
    /// only exercised with work on two CPUs at once. The host sets them (`--cpus`).
    Cpus(u32),
    /// A block device (`vda`): the scratch disk the host attaches with `--disk SIZE`.
    BlockDevice(&'static str),
    /// A BPF program type the kernel accepts, as probed at boot (`raw_tracepoint`, 4.17); or
    /// `tracing` (fentry, fexit, tp_btf: 5.5), which loads only with a BTF id to attach to and
    /// is probed when asked, as aya probes it (on `bpf_fentry_test1`).
    BpfProgType(&'static str),
    /// A BPF map type the kernel accepts, as probed at boot (`ringbuf`, 5.8).
    BpfMapType(&'static str),
    /// BPF global data (`.rodata`/`.data`/`.bss` as maps a program reads directly, 5.2), as aya
    /// probes it before loading an object: without it aya drops those maps and the program's
    /// references to them cannot be relocated.
    BpfGlobalData,
    /// Several requirements that go together (one tracefs interface's files), checked and
    /// listed in order as if written out.
    All(&'static [Req]),
}

/// A hardware PMU, as the host matches it (`machine: hardware PMU`): scenarios that count
/// PERF_TYPE_HARDWARE events need one (TCG emulates none).
pub const HARDWARE_PMU: Req = Req::Machine("hardware PMU");

impl Req {
    /// The requirements in `reqs`, groups ([`Req::All`]) written out, in order.
    pub fn flatten(reqs: &'static [Req]) -> Vec<&'static Req> {
        reqs.iter().flat_map(|r| if let Req::All(group) = r { Req::flatten(group) } else { vec![r] }).collect()
    }

    /// The requirement as text, for the catalogue (`ScenarioInfo::requires`).
    pub fn describe(&self) -> String {
        match *self {
            Req::Tracefs => "tracefs mounted".to_string(),
            Req::Tracer(t) => format!("tracer {t}"),
            Req::File(f) => format!("tracefs file {f}"),
            Req::Event(e) => format!("event {e}"),
            Req::Debugfs(f) => format!("debugfs file {f}"),
            Req::Program(p) => format!("program {p}"),
            Req::Machine(m) => format!("machine: {m}"),
            Req::HostProgram(tool) => format!("host program {} (shared host root)", tool.path),
            Req::KernelHeaders => "the kernel's headers (CONFIG_IKHEADERS, or linux-headers shared by the host)".into(),
            Req::Syntax(s) => format!("probe syntax {s} in tracefs README"),
            Req::TraceOption { name, config, since } => format!("tracefs options/{name} ({config}, since {since})"),
            Req::Config { option, tracefs } => format!("config {option} (else tracefs {tracefs})"),
            Req::Pmu(p) => format!("perf PMU {p}"),
            Req::Symbol(s) => format!("symbol {s} in /proc/kallsyms"),
            Req::BlockDevice(d) => format!("block device /dev/{d} (the scratch disk: --disk SIZE)"),
            Req::Cpus(n) => format!("at least {n} online CPUs (--cpus {n})"),
            Req::BpfProgType(t) => format!("BPF program type {t}"),
            Req::BpfMapType(t) => format!("BPF map type {t}"),
            Req::BpfGlobalData => "BPF global data (.rodata maps, 5.2)".to_string(),
            Req::All(group) => group.iter().map(Req::describe).collect::<Vec<_>>().join(", "),
        }
    }

    /// None when met; else the missing requirement and the evidence.
    pub fn missing(&self, caps: &Capabilities) -> Option<(String, String)> {
        let tracefs = Path::new(TRACEFS);
        match *self {
            Req::Tracefs => caps.mounted.tracefs.is_none().then(|| {
                let outcome = caps
                    .agent
                    .mounts
                    .iter()
                    .find(|m| m.fstype == "tracefs")
                    .map_or("not attempted".to_string(), |m| m.outcome.clone());
                ("tracefs not mounted".into(), format!("mount(tracefs): {outcome}"))
            }),
            Req::Tracer(t) => (!caps.tracefs.available_tracers.iter().any(|x| x == t)).then(|| {
                (
                    format!("tracer {t} not available"),
                    format!("available_tracers: {}", caps.tracefs.available_tracers.join(" ")),
                )
            }),
            Req::File(f) => (!tracefs.join(f).exists())
                .then(|| (format!("tracefs file {f} absent"), format!("{} does not exist", tracefs.join(f).display()))),
            Req::Event(e) => (!tracefs.join("events").join(e).is_dir())
                .then(|| (format!("event {e} absent"), format!("{}/events/{e} does not exist", TRACEFS))),
            Req::Debugfs(f) => (!Path::new(DEBUGFS).join(f).exists()).then(|| {
                (
                    format!("debugfs file {f} absent"),
                    format!("{DEBUGFS}/{f} does not exist (debugfs mounted: {})", caps.mounted.debugfs),
                )
            }),
            // Judged by the host; the scenario reports what the kernel says.
            Req::Machine(_) => None,
            Req::Program(p) => (!Path::new(p).exists())
                .then(|| (format!("program {p} not in the image"), format!("{p} does not exist"))),
            Req::HostProgram(tool) => match tool.found() {
                Found::Usable { .. } => None,
                Found::Lacking { reason, evidence, .. } | Found::Unreachable { reason, evidence } => {
                    Some((reason, evidence))
                }
            },
            Req::KernelHeaders => headers_missing(caps),
            Req::Syntax(prefix) => (!caps.tracefs.has_probe_syntax(prefix)).then(|| {
                let kinds: Vec<&str> = caps.tracefs.probe_syntaxes.iter().map(|s| s.text.as_str()).collect();
                (
                    format!("no `{prefix}` syntax in tracefs README"),
                    format!("README probe syntaxes: {}", kinds.join(" | ")),
                )
            }),
            Req::TraceOption { name, config, since } => {
                (!tracefs.join("options").join(name).exists()).then(|| option_absent(caps, name, config, since))
            }
            Req::Config { option, tracefs: file } => config_missing(caps, option, file),
            Req::Pmu(p) => (!caps.perf_pmus.contains_key(p)).then(|| {
                let pmus: Vec<&str> = caps.perf_pmus.keys().map(String::as_str).collect();
                (format!("perf PMU {p} absent"), format!("/sys/bus/event_source/devices: {}", pmus.join(" ")))
            }),
            Req::Symbol(s) => match kallsyms::has(s) {
                Ok(true) => None,
                Ok(false) => Some((format!("symbol {s} not in /proc/kallsyms"), kallsyms::evidence(s))),
                Err(e) => Some((format!("symbol {s} could not be looked up"), format!("{e:#}"))),
            },
            Req::BlockDevice(d) => (!Path::new("/sys/block").join(d).exists()).then(|| {
                let have = std::fs::read_dir("/sys/block")
                    .map(|r| r.flatten().filter_map(|e| e.file_name().into_string().ok()).collect::<Vec<_>>())
                    .unwrap_or_default();
                (
                    format!("no block device {d}: boot the guest with a scratch disk (--disk SIZE)"),
                    format!("/sys/block/{d} does not exist; /sys/block: {}", have.join(" ")),
                )
            }),
            // Without the kernel's BTF there is nothing to attach to: say that, as the BTF-typed
            // scenarios always have.
            Req::BpfProgType("tracing") => crate::bpf::btf_absent().or_else(|| {
                match aya::sys::is_program_supported(aya::programs::ProgramType::Tracing) {
                    Ok(true) => None,
                    Ok(false) => Some((
                        "BPF program type tracing refused".to_string(),
                        "a tracing program attached by BTF id to bpf_fentry_test1 did not load (aya's probe)"
                            .to_string(),
                    )),
                    Err(e) => Some(("BPF program type tracing could not be probed".to_string(), format!("{e}"))),
                }
            }),
            Req::BpfProgType(t) => (!caps.bpf.prog_types.iter().any(|p| p == t)).then(|| {
                (
                    format!("BPF program type {t} refused"),
                    format!("program types the kernel accepted at boot: {}", caps.bpf.prog_types.join(" ")),
                )
            }),
            Req::BpfMapType(t) => (!caps.bpf.map_types.iter().any(|m| m == t)).then(|| {
                (
                    format!("BPF map type {t} refused"),
                    format!("map types the kernel accepted at boot: {}", caps.bpf.map_types.join(" ")),
                )
            }),
            Req::BpfGlobalData => (!aya::features().bpf_global_data()).then(|| {
                (
                    "BPF global data refused".to_string(),
                    "an array map with BPF_F_RDONLY_PROG read by a program through BPF_PSEUDO_MAP_VALUE \
                     (aya's probe) did not load"
                        .to_string(),
                )
            }),
            Req::Cpus(n) => match crate::cpus::online() {
                Ok((cpus, _)) if cpus.len() >= n as usize => None,
                Ok((cpus, text)) => Some((
                    format!("{} online CPU(s), the scenario needs {n}: boot the guest with --cpus {n}", cpus.len()),
                    format!("{}: {text}", crate::cpus::ONLINE),
                )),
                Err(e) => Some((format!("the online CPUs could not be read (needs {n})"), format!("{e:#}"))),
            },
            Req::All(group) => group.iter().find_map(|r| r.missing(caps)),
        }
    }

    /// What the host lacks when this requirement is missing because of the host, not of the
    /// kernel (a host tool not installed, or refusing to run): `Debian's linux-perf`. The host
    /// leaves such an `unsupported` standing on every kernel.
    pub fn host_lacks(&self) -> Option<String> {
        match *self {
            Req::HostProgram(tool) => match tool.found() {
                Found::Lacking { lacks, .. } => Some(lacks),
                _ => None,
            },
            Req::All(group) => group.iter().find_map(Req::host_lacks),
            _ => None,
        }
    }
}

/// Why `options/<name>` is absent: the config says so when the guest has it; else the kernel
/// version tells a kernel older than the option from one built without it.
fn option_absent(caps: &Capabilities, name: &str, config: &str, since: &str) -> (String, String) {
    let listed = std::fs::read_dir(Path::new(TRACEFS).join("options"))
        .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect::<Vec<_>>())
        .unwrap_or_default();
    let file = format!("options/{name}");
    if let Some(kconfig::Config { source, options }) = kconfig::get(caps) {
        return match options.get(config).map(String::as_str) {
            Some("n") => (format!("{config} is not set"), format!("{file} absent; {source}: # {config} is not set")),
            Some(v) => (format!("{file} absent although {config}={v}"), format!("{source}: {config}={v}")),
            None => (
                format!("{file} absent: this kernel's config has no {config} (added in {since})"),
                format!("{source} does not mention {config}"),
            ),
        };
    }
    let evidence = format!("{file} absent (options/: {}); no kernel config in the guest", listed.join(" "));
    match (kversion(&caps.kernel.release), kversion(since)) {
        (Some(k), Some(s)) if k < s => {
            (format!("{file} absent: kernel {} predates {since}", caps.kernel.release), evidence)
        }
        _ => (
            format!(
                "{config} is not set: {file} absent on {} (>= {since}), and tracefs creates it exactly with {config}",
                caps.kernel.release
            ),
            evidence,
        ),
    }
}

/// None when `option` is set; else why not, from the config or from the tracefs evidence.
/// None when the kernel's headers are reachable; else why not: the config line of
/// CONFIG_IKHEADERS and what the host said about its `linux-headers` packages.
fn headers_missing(caps: &Capabilities) -> Option<(String, String)> {
    const KHEADERS: &str = "/sys/kernel/kheaders.tar.xz";
    let release = &caps.kernel.release;
    let shared = crate::share::mount_offered();
    if Path::new(KHEADERS).exists() || (shared.is_ok() && crate::share::headers_dir().is_some()) {
        return None;
    }
    let config = match kconfig::get(caps).map(|c| (c.source.clone(), c.options.get("CONFIG_IKHEADERS").cloned())) {
        Some((source, Some(v))) if v == "n" => format!("{source}: # CONFIG_IKHEADERS is not set"),
        Some((source, Some(v))) => format!("{source}: CONFIG_IKHEADERS={v} (the kheaders module is not loaded)"),
        Some((source, None)) => format!("{source} does not mention CONFIG_IKHEADERS"),
        None => "no kernel config in the guest".to_string(),
    };
    let host = match (&shared, crate::share::offered()) {
        (Err(why), _) => format!("no shared host root: {why}"),
        (Ok(_), Some(kmatrix_proto::Share { headers_missing: Some(why), .. })) => format!("the host has none: {why}"),
        (Ok(_), Some(kmatrix_proto::Share { headers: Some(h), .. })) => {
            format!("the host offered {h}, but it has no include/linux/kconfig.h")
        }
        (Ok(_), _) => "the host offered no linux-headers (the scenario's catalogue entry does not ask for them)".into(),
    };
    Some((format!("no kernel headers for {release}: {host}"), format!("{config}; {KHEADERS} absent; {host}")))
}

fn config_missing(caps: &Capabilities, option: &str, file: &str) -> Option<(String, String)> {
    if let Some(kconfig::Config { source, options }) = kconfig::get(caps) {
        return match options.get(option).map(String::as_str) {
            Some("y") | Some("m") => None,
            Some("n") => Some((format!("{option} is not set"), format!("{source}: # {option} is not set"))),
            Some(v) => Some((format!("{option} is not set"), format!("{source}: {option}={v}"))),
            None => {
                Some((format!("{option} not in this kernel's config"), format!("{source} does not mention {option}")))
            }
        };
    }
    (!Path::new(TRACEFS).join(file).exists()).then(|| {
        (
            format!("{option} is not set (tracefs has no {file})"),
            format!(
                "{TRACEFS}/{file} does not exist, and the kernel creates it exactly when {option}=y; \
                 no kernel config in the guest"
            ),
        )
    })
}

/// `major.minor` of a kernel release (`6.1.0-47-amd64`) or a `since` (`5.15`).
fn kversion(s: &str) -> Option<(u32, u32)> {
    kmatrix_proto::KernelVersion::parse(s).map(|v| (v.major, v.minor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmatrix_proto::TracefsFeatures;

    const GROUP: Req = Req::All(&[Req::Tracefs, Req::File("kprobe_events")]);
    const LIST: &[Req] = &[GROUP, Req::Tracer("function"), Req::All(&[GROUP, Req::Program("/bin/x")])];

    #[test]
    fn groups_are_listed_and_checked_as_if_written_out() {
        let described: Vec<String> = Req::flatten(LIST).into_iter().map(Req::describe).collect();
        assert_eq!(
            described,
            [
                "tracefs mounted",
                "tracefs file kprobe_events",
                "tracer function",
                "tracefs mounted",
                "tracefs file kprobe_events",
                "program /bin/x"
            ]
        );
        // The first missing member of a group is the group's answer.
        let caps = Capabilities::default();
        let (reason, _) = GROUP.missing(&caps).unwrap();
        assert_eq!(reason, "tracefs not mounted");
    }

    #[test]
    fn missing_requirements_name_the_evidence() {
        let caps = Capabilities {
            tracefs: TracefsFeatures { available_tracers: vec!["nop".into()], ..Default::default() },
            ..Default::default()
        };
        let (reason, evidence) = Req::Tracer("function").missing(&caps).unwrap();
        assert_eq!(reason, "tracer function not available");
        assert_eq!(evidence, "available_tracers: nop");
        assert!(Req::Tracer("nop").missing(&caps).is_none());
        assert!(Req::Tracefs.missing(&caps).is_some());
        let (reason, _) = Req::Syntax("f[").missing(&caps).unwrap();
        assert_eq!(reason, "no `f[` syntax in tracefs README");
    }
}
