//! `perf_event_open(2)` scenarios, each counting on the workload's task: a kprobe and kretprobe
//! through the `kprobe` PMU, a uprobe through the `uprobe` PMU, a tracepoint by its id, the
//! software counters and the seeds' `perf stat -e instructions ./hello` on `hello`, and the
//! seeds' `perf record -e cpu-clock -g` as cpu-clock sampling with callchains into a ring buffer.
//!
//! A refused `perf_event_open` on a path the kernel should have is `fail` with its errno; the
//! hardware counter without a PMU (TCG has none) is `unsupported`, with the errno and the
//! kernel's own `Performance Events:` boot line as evidence.

use super::common::{release_and_disarm, workload_problems, Armed};
use super::{count, openat, verdict, workload, Ctx, Req, Scenario};
use crate::perf::{self, Attr, Event, Reading};
use crate::process::Running;
use crate::tracefs::Refused;
use crate::{elf, excerpt};
use anyhow::{Context, Result};
use kmatrix_proto::{ScenarioResult, Status};
use std::path::Path;
use std::time::{Duration, Instant};

pub const ALL: [&'static dyn Scenario; 7] = [
    &KprobePmu { ret: false },
    &KprobePmu { ret: true },
    &UprobePmu,
    &TracepointCount,
    &Software,
    &Hardware,
    &Sampling,
];

/// A refused perf call as a [`Refused`], so the runner reports `fail` with its errno.
fn refused(call: String, errno: i32) -> anyhow::Error {
    anyhow::Error::new(Refused { call, errno })
}

/// Open `attr` on `pid`, a refusal becoming [`Refused`] naming `what`.
fn open(attr: Attr, pid: i32, name: Option<&str>, what: &str) -> Result<Event> {
    perf::open(attr, pid, name).map_err(|e| refused(format!("perf_event_open({what}, pid {pid})"), e))
}

/// Enable `events`, release the gated workload, wait for it, disable and read each.
fn count_run(ctx: &mut Ctx, w: Running, attach: Instant, events: &[&Event]) -> Result<(Armed, Vec<Reading>)> {
    for e in events {
        e.enable().map_err(|errno| refused("ioctl(PERF_EVENT_IOC_ENABLE)".into(), errno))?;
    }
    let mut readings = Vec::new();
    let a = release_and_disarm(ctx, w, attach, |_| {
        for e in events {
            e.disable().map_err(|errno| refused("ioctl(PERF_EVENT_IOC_DISABLE)".into(), errno))?;
            readings.push(e.read().map_err(|errno| refused("read(perf event)".into(), errno))?);
        }
        Ok(())
    })?;
    Ok((a, readings))
}

/// `openat-loop N` with one counter, `open_counter(pid)`, on it: the calls made and the count,
/// named `what`, must both be N. The result (without detail), the workload's pid and the
/// counter's reading.
fn count_openat(
    ctx: &mut Ctx,
    id: &str,
    what: String,
    open_counter: impl FnOnce(i32) -> Result<Event>,
) -> Result<(ScenarioResult, i32, Reading)> {
    let n = ctx.declared_count()?;
    let path = openat::target_path(ctx)?;
    let attach = Instant::now();
    let w = openat::start(n, &path)?;
    let ev = open_counter(w.pid())?;
    let (a, readings) = count_run(ctx, w, attach, &[&ev])?;
    let summary = openat::summary(&a.done.stdout).unwrap_or_default();
    let mut r = verdict(
        id,
        vec![count("openat calls made by the workload", n, summary.calls), count(what, n, readings[0].value)],
        workload_problems(&a.done),
    );
    a.timings(&mut r);
    Ok((r, a.pid, readings[0]))
}

/// A kprobe (or kretprobe, the PMU's `retprobe` format bit) on the openat function created
/// through the `kprobe` PMU (`config1` = the symbol name), counting on openat-loop N: N.
pub struct KprobePmu {
    ret: bool,
}

impl Scenario for KprobePmu {
    fn id(&self) -> &'static str {
        if self.ret {
            "kprobe.perf_pmu.openat_ret"
        } else {
            "kprobe.perf_pmu.openat"
        }
    }

    fn summary(&self) -> &'static str {
        if self.ret {
            "perf_event_open on the kprobe PMU with the retprobe bit, on the openat function: counts N"
        } else {
            "perf_event_open on the kprobe PMU (type from sysfs, config1 = symbol) on the openat function: counts N"
        }
    }

    fn since(&self) -> &'static str {
        // "perf/core: Implement the 'perf_kprobe' PMU", 4.17.
        "4.17"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Pmu("kprobe"), Req::Program(openat::OPENAT_LOOP)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let sym = openat::symbol(ctx)?;
        let ty = perf::pmu_type("kprobe").map_err(anyhow::Error::msg)?;
        let config =
            if self.ret { 1u64 << perf::format_bit("kprobe", "retprobe").map_err(anyhow::Error::msg)? } else { 0 };
        let what = format!("{} hits of {sym} counted", if self.ret { "kretprobe" } else { "kprobe" });
        let (mut r, pid, reading) = count_openat(ctx, self.id(), what, |pid| {
            open(Attr::counter(ty, config), pid, Some(sym), &format!("kprobe PMU {sym}"))
        })?;
        r.detail = serde_json::json!({ "pmu_type": ty, "config": config, "symbol": sym, "pid": pid, "reading": format!("{reading:?}") });
        Ok(r)
    }
}

/// A uprobe on `hello_greet` through the `uprobe` PMU (`config1` = path, `config2` = file
/// offset), counting on `hello N`: N.
pub struct UprobePmu;

impl Scenario for UprobePmu {
    fn id(&self) -> &'static str {
        "uprobe.perf_pmu.hello"
    }

    fn summary(&self) -> &'static str {
        "perf_event_open on the uprobe PMU (config1 = /bin/hello, config2 = hello_greet's offset): counts N"
    }

    fn since(&self) -> &'static str {
        // The perf_uprobe PMU came with perf_kprobe, 4.17.
        "4.17"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "10")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Pmu("uprobe"), Req::Program(workload::HELLO)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let offset = elf::function_offset(Path::new(workload::HELLO), "hello_greet")?;
        let ty = perf::pmu_type("uprobe").map_err(anyhow::Error::msg)?;
        let attach = Instant::now();
        let w = workload::start_hello(n)?;
        let pid = w.pid();
        let mut attr = Attr::counter(ty, 0);
        attr.config2 = offset;
        let ev = open(attr, pid, Some(workload::HELLO), &format!("uprobe PMU {}:{offset:#x}", workload::HELLO))?;
        let (a, readings) = count_run(ctx, w, attach, &[&ev])?;
        let mut r = verdict(
            self.id(),
            vec![
                count("hello, world! lines printed", n, workload::greetings(&a.done.stdout)),
                count("uprobe hits of hello_greet counted", n, readings[0].value),
            ],
            workload_problems(&a.done),
        );
        a.timings(&mut r);
        r.detail = serde_json::json!({ "pmu_type": ty, "file_offset": offset, "pid": pid });
        Ok(r)
    }
}

/// `syscalls/sys_enter_openat` counted through perf_event_open (PERF_TYPE_TRACEPOINT, config =
/// the event's id) on openat-loop N: N.
pub struct TracepointCount;

impl Scenario for TracepointCount {
    fn id(&self) -> &'static str {
        "tracepoint.perf.sys_enter_openat"
    }

    fn summary(&self) -> &'static str {
        "perf_event_open(PERF_TYPE_TRACEPOINT, id of syscalls/sys_enter_openat) on openat-loop N: counts N"
    }

    fn since(&self) -> &'static str {
        // Syscall tracepoints, 2.6.33 (tracepoint perf events are older).
        "2.6.33"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        openat::PARAMS_100
    }

    fn requirements(&self) -> Vec<Req> {
        vec![
            Req::Tracefs,
            Req::Event("syscalls/sys_enter_openat"),
            Req::Pmu("tracepoint"),
            Req::Program(openat::OPENAT_LOOP),
        ]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let id_text = ctx.tfs.read("events/syscalls/sys_enter_openat/id")?;
        let id: u64 = id_text.trim().parse().with_context(|| format!("events/.../id holds {id_text:?}"))?;
        let (mut r, pid, _) = count_openat(ctx, self.id(), "sys_enter_openat counted".into(), |pid| {
            open(Attr::counter(perf::TYPE_TRACEPOINT, id), pid, None, &format!("tracepoint {id}"))
        })?;
        r.detail = serde_json::json!({ "tracepoint_id": id, "pid": pid });
        Ok(r)
    }
}

/// The software counters of `perf stat` on `hello N`: task-clock, context-switches,
/// page-faults, cpu-migrations. hello reports what the kernel counted for it through getrusage
/// between its gate and its last greeting; the counters run from before the gate opens to its
/// exit, so each must be at least hello's own count (and task-clock > 0, within the wall time).
pub struct Software;

impl Scenario for Software {
    fn id(&self) -> &'static str {
        "perf.software.hello"
    }

    fn summary(&self) -> &'static str {
        "software counters on hello N: task-clock > 0 and within wall time, context-switches and page-faults \
         at least hello's own getrusage counts, page-faults > 0"
    }

    fn since(&self) -> &'static str {
        // perf_event_open and its software events, 2.6.31.
        "2.6.31"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "1000")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Pmu("software"), Req::Program(workload::HELLO)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let attach = Instant::now();
        let w = workload::start_hello(n)?;
        let pid = w.pid();
        // Its switch-out for the gate must not land in the counters: wait until it sleeps there.
        w.wait_at_gate(Duration::from_secs(10))?;
        let names = ["task-clock", "context-switches", "page-faults", "cpu-migrations"];
        let configs = [perf::SW_TASK_CLOCK, perf::SW_CONTEXT_SWITCHES, perf::SW_PAGE_FAULTS, perf::SW_CPU_MIGRATIONS];
        let mut events = Vec::new();
        for (name, config) in names.iter().zip(configs) {
            events.push(open(Attr::counter(perf::TYPE_SOFTWARE, config), pid, None, name)?);
        }
        let refs: Vec<&Event> = events.iter().collect();
        let (a, readings) = count_run(ctx, w, attach, &refs)?;
        let done = &a.done;
        let own = workload::summary(&done.stderr, "hello")?;
        let switches = (workload::num(&own, "nvcsw")? + workload::num(&own, "nivcsw")?) as u64;
        let faults = (workload::num(&own, "minflt")? + workload::num(&own, "majflt")?) as u64;
        let [task_clock, ctx_switches, page_faults, migrations] = [0, 1, 2, 3].map(|i| readings[i].value);
        let greetings = workload::greetings(&done.stdout);
        let mut problems = workload_problems(done);
        let wall_ns = done.wall.as_nanos() as u64;
        if task_clock == 0 || task_clock > wall_ns {
            problems.push(format!("task-clock {task_clock} ns, expected > 0 and <= the wall time {wall_ns} ns"));
        }
        if ctx_switches < switches {
            problems.push(format!("context-switches {ctx_switches} < hello's own count {switches}"));
        }
        if page_faults == 0 || page_faults < faults {
            problems.push(format!("page-faults {page_faults}, expected > 0 and >= hello's own count {faults}"));
        }
        if readings.iter().any(|r| r.enabled_ns == 0) {
            problems.push(format!("a counter was never enabled: {readings:?}"));
        }
        let mut r = verdict(self.id(), vec![count("hello, world! lines printed", n, greetings)], problems);
        a.timings(&mut r);
        r.detail = serde_json::json!({
            "pid": pid,
            "task_clock_ns": task_clock,
            "context_switches": ctx_switches,
            "page_faults": page_faults,
            "cpu_migrations": migrations,
            "hello_getrusage": { "switches": switches, "faults": faults },
            "wall_ns": wall_ns,
        });
        Ok(r)
    }
}

/// The seeds' `perf stat -e instructions ./hello`: PERF_TYPE_HARDWARE instructions on `hello`.
/// Without a hardware PMU (TCG has none) the kernel refuses with ENOENT: `unsupported`, with the
/// errno and the kernel's `Performance Events:` boot line as evidence. With one, instructions > 0.
pub struct Hardware;

impl Scenario for Hardware {
    fn id(&self) -> &'static str {
        "perf.hardware.instructions"
    }

    fn summary(&self) -> &'static str {
        "the seeds' `perf stat -e instructions ./hello`: PERF_TYPE_HARDWARE instructions > 0 (unsupported \
         without a PMU, errno as evidence)"
    }

    fn since(&self) -> &'static str {
        // Empty: whether a hardware PMU exists depends on the machine (none under TCG, one under
        // KVM with a vPMU), not on the kernel version (perf_event_open has it since 2.6.31).
        ""
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "10")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Program(workload::HELLO)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let attach = Instant::now();
        let w = workload::start_hello(n)?;
        let pid = w.pid();
        let ev = match perf::open(Attr::counter(perf::TYPE_HARDWARE, perf::HW_INSTRUCTIONS), pid, None) {
            Ok(ev) => ev,
            Err(errno @ (libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV)) => {
                let pmus: Vec<String> = std::fs::read_dir("/sys/bus/event_source/devices")
                    .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                    .unwrap_or_default();
                let boot = kmsg_line("Performance Events:")
                    .unwrap_or_else(|| "no `Performance Events:` line in /dev/kmsg".into());
                return Ok(super::unsupported(
                    self.id(),
                    format!(
                        "no hardware PMU: perf_event_open(PERF_TYPE_HARDWARE, instructions) failed with {}",
                        crate::sys::errno_text(errno)
                    ),
                    format!("kernel: {boot}; PMUs: {}", pmus.join(" ")),
                    Some(errno),
                ));
            }
            Err(errno) => return Err(refused(format!("perf_event_open(instructions, pid {pid})"), errno)),
        };
        let (a, readings) = count_run(ctx, w, attach, &[&ev])?;
        let mut problems = workload_problems(&a.done);
        if readings[0].value == 0 {
            problems.push("instructions counted 0".to_string());
        }
        let greetings = workload::greetings(&a.done.stdout);
        let mut r = verdict(self.id(), vec![count("hello, world! lines printed", n, greetings)], problems);
        a.timings(&mut r);
        r.detail = serde_json::json!({ "instructions": readings[0].value, "reading": format!("{:?}", readings[0]) });
        Ok(r)
    }
}

/// The first kernel log record containing `needle` (from /dev/kmsg, without blocking).
fn kmsg_line(needle: &str) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg").ok()?;
    let mut buf = vec![0u8; 8192];
    for _ in 0..20_000 {
        match f.read(&mut buf) {
            Ok(0) => return None,
            Ok(k) => {
                let rec = String::from_utf8_lossy(&buf[..k]);
                let text = rec.split_once(';').map_or(rec.as_ref(), |(_, t)| t).trim();
                if text.contains(needle) {
                    return Some(text.to_string());
                }
            }
            // EPIPE: a record was overwritten while reading; the next read goes on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// The seeds' `perf record -e cpu-clock -g -- ./hello`: cpu-clock sampling with callchains on
/// `hello N` into an mmap ring buffer. Sampling is statistical, so the checks are: samples
/// arrived, none lost, every one from the workload's pid with a callchain holding at least one
/// instruction pointer beside its context markers.
pub struct Sampling;

const SAMPLE_PERIOD_NS: u64 = 250_000;
const RING_PAGES: usize = 128;

impl Scenario for Sampling {
    fn id(&self) -> &'static str {
        "perf.sampling.cpu_clock"
    }

    fn summary(&self) -> &'static str {
        "cpu-clock sampling (250 us) with PERF_SAMPLE_CALLCHAIN on hello N into a ring buffer: samples > 0, \
         none lost, all from the workload, each with >= 1 ip"
    }

    fn since(&self) -> &'static str {
        "2.6.31"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "20000")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Pmu("software"), Req::Program(workload::HELLO)]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let attach = Instant::now();
        let w = workload::start_hello(n)?;
        let pid = w.pid();
        let mut attr = Attr::counter(perf::TYPE_SOFTWARE, perf::SW_CPU_CLOCK);
        attr.sample_period = SAMPLE_PERIOD_NS;
        attr.sample_type = perf::SAMPLE_IP | perf::SAMPLE_TID | perf::SAMPLE_CALLCHAIN;
        let ring = perf::Ring::open(attr, pid, RING_PAGES)
            .map_err(|e| refused(format!("perf_event_open(cpu-clock sampling, pid {pid}) + mmap"), e))?;
        let (a, _) = count_run(ctx, w, attach, &[ring.event()])?;
        let d = ring.drain();
        let samples = d.samples.len() as u64;
        let from_workload = d.samples.iter().filter(|s| s.pid == pid as u32).count() as u64;
        let ips = |s: &perf::Sample| s.callchain.iter().filter(|ip| **ip < perf::CONTEXT_MAX).count();
        let with_ip = d.samples.iter().filter(|s| ips(s) >= 1).count() as u64;
        let kernel = d.samples.iter().filter(|s| s.callchain.contains(&perf::CONTEXT_KERNEL)).count();
        let user = d.samples.iter().filter(|s| s.callchain.contains(&perf::CONTEXT_USER)).count();
        let depth_max = d.samples.iter().map(ips).max().unwrap_or(0);
        let mut problems = workload_problems(&a.done);
        if samples == 0 {
            problems.push("no samples".to_string());
        }
        if d.lost > 0 {
            problems.push(format!("{} samples lost (ring of {RING_PAGES} pages)", d.lost));
        }
        let mut r = verdict(
            self.id(),
            vec![
                count("samples from the workload pid", samples, from_workload),
                count("samples with at least one ip in the callchain", samples, with_ip),
            ],
            problems,
        );
        a.timings(&mut r);
        let first: Vec<String> =
            d.samples.first().map(|s| s.callchain.iter().map(|ip| format!("{ip:#x}")).collect()).unwrap_or_default();
        r.detail = serde_json::json!({
            "pid": pid,
            "period_ns": SAMPLE_PERIOD_NS,
            "samples": samples,
            "with_kernel_chain": kernel,
            "with_user_chain": user,
            "deepest_chain": depth_max,
            "other_records": d.other,
            "bytes": d.head,
        });
        if r.status == Status::Pass {
            r.reason = format!("{samples} samples, {kernel} with a kernel chain, {user} with a user chain");
        }
        Ok(r.with_excerpt(&excerpt::head(&first.join("\n"), 32)))
    }
}
