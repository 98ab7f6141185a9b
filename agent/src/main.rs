//! kmatrix-agent: the guest's PID 1.
//!
//! Mounts the pseudo filesystems (tracefs explicitly at /sys/kernel/tracing), loads the modules
//! the host listed, opens the channel, sends `Hello` with the capability record, serves requests,
//! and powers off. It never exits (PID 1 exiting panics the kernel) and never hangs: every error,
//! panic, EOF and `Shutdown` ends in a power-off. The scenarios themselves live in `scenario/`.
//!
//! Run as any other pid (on the host), it only answers `--catalogue`: the scenario list as JSON,
//! so the host never keeps a second copy of it. It never mounts or powers off anything there.

mod arch;
mod bpf;
mod caps;
mod channel;
mod clock;
mod console;
mod cpus;
mod disk;
mod elf;
mod excerpt;
mod exec;
mod host_paths;
mod host_program;
mod kallsyms;
mod kconfig;
mod loopback;
mod modtree;
mod modules;
mod mounts;
mod net;
mod perf;
mod power;
mod process;
mod reap;
mod scenario;
mod serve;
mod share;
mod sys;
mod tracefs;

use anyhow::Result;
use kmatrix_proto::{GuestMsg, PROTO_VERSION};
use std::path::Path;

/// Exit code for a bad command line when not PID 1 (sysexits' EX_USAGE).
const EX_USAGE: i32 = 64;

fn main() {
    if std::process::id() != 1 {
        std::process::exit(host_main());
    }
    sys::started();
    power::install_panic_hook();
    if let Err(e) = boot_and_serve() {
        power::fatal(&e);
    }
    power::power_off();
}

/// Not PID 1: print the catalogue for `--catalogue`, refuse anything else.
fn host_main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--catalogue"] => match serde_json::to_string(&scenario::info()) {
            Ok(json) => {
                println!("{json}");
                0
            }
            Err(e) => {
                eprintln!("kmatrix-agent: serializing the catalogue failed: {e}");
                1
            }
        },
        _ => {
            eprintln!(
                "usage: kmatrix-agent --catalogue\n\
                 (as PID 1 in a kmatrix guest it takes no arguments; anywhere else it only lists its catalogue)"
            );
            EX_USAGE
        }
    }
}

fn boot_and_serve() -> Result<()> {
    // The console needs devtmpfs, so mount first and report a failure once the console is there.
    let early = mounts::mount_early();
    let console = console::attach();
    let mut mount_records = early?;
    if std::env::var_os("PATH").is_none() {
        // The kernel starts init with only HOME and TERM; Exec requests name programs by name.
        std::env::set_var("PATH", "/bin:/sbin:/usr/bin:/usr/sbin");
    }
    mount_records.extend(mounts::mount_late());
    // Let the host ask a hung guest for a task dump (sysrq-t through the keyboard); Debian's
    // default (438) leaves dumps out. Not fatal: the dump is evidence, not a result.
    if let Err(e) = std::fs::write("/proc/sys/kernel/sysrq", "1") {
        console::say(&format!("write /proc/sys/kernel/sysrq: {e}"));
    }
    // Kernels before 5.11 charge BPF maps and programs to RLIMIT_MEMLOCK, 64 KiB for init by
    // default: after a few dozen probes every load and map creation fails with EPERM, and the
    // capability record would list types as absent that the kernel has (bpftool's feature
    // probe, which raises the limit as libbpf does, disagreed on Debian 5.10). Raise it first.
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads one valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        console::say(&format!("setrlimit(RLIMIT_MEMLOCK, unlimited): {}", sys::errno_text(sys::errno())));
    }
    for m in mount_records.iter().filter(|m| m.outcome != "ok") {
        console::say(&format!("mount({}, {}): {}", m.fstype, m.target, m.outcome));
    }
    // Programs run in the guest serve and connect on 127.0.0.1 as on any machine.
    if let Err(e) = loopback::up() {
        console::say(&format!("lo up: {e:#}"));
    }
    let mounted_ms = sys::since_start_ms();
    let modules = modules::load_listed(Path::new(modules::LOAD_LIST));
    for m in modules.iter().filter(|m| m.outcome != "ok" && m.outcome != "exists") {
        console::say(&format!("finit_module({}): {}", m.name, m.outcome));
    }
    if let Some(said) = share::preload() {
        console::say(&said);
    }
    if let Some(said) = disk::preload() {
        console::say(&said);
    }
    if let Some(said) = net::preload() {
        console::say(&said);
    }
    let modules_ms = sys::since_start_ms();
    let mut ch = channel::Channel::open()?;
    let channel_ms = sys::since_start_ms();
    if let Err(why) = console {
        ch.send(&GuestMsg::Log { line: why.to_string() })?;
    }
    let (mut caps, steps) =
        caps::build(caps::Inputs { mounts: mount_records, modules, channel: ch.name().to_string() });
    caps.agent.scenarios = scenario::ids();
    let caps_ms = sys::since_start_ms();
    let uptime_ms = caps.kernel.uptime_ms;
    ch.send(&GuestMsg::Hello { proto: PROTO_VERSION, caps: Box::new(caps.clone()) })?;
    console::say(&format!("hello sent after {} ms", sys::since_start_ms()));
    console::say(&format!(
        "kernel uptime at hello {uptime_ms} ms, channel {}; agent ms: mounts {mounted_ms}, \
         modules {modules_ms}, channel {channel_ms}, capabilities {caps_ms}",
        ch.name()
    ));
    let steps: Vec<String> = steps.iter().map(|(name, ms)| format!("{name} {ms}")).collect();
    console::say(&format!("capability probes ms: {}", steps.join(", ")));
    serve::serve(&mut ch, &caps)
}
