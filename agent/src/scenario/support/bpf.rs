//! What the `bpf.` scenarios share: attaching a program of an object to a hook with aya, the
//! gated workloads with the BPF-side pid filter set before release, the per-event payload
//! checks, and turning a refusal by the kernel into a result.
//!
//! Every scenario loads its object after the workload is spawned (gated), writes the workload's
//! tgid into the object's `km_config`, attaches, releases the workload and detaches; the program
//! records one `km_event` per hit. Counts compare hits with the workload's exact N, and every
//! recorded event's payload (pid, file name, return value) with what the workload did. A step
//! the kernel refuses (object load, verifier, attach) is `fail` with its errno and the verifier
//! log; a missing link type is `unsupported` with the refusal as evidence. What is not here: the
//! loading itself (`crate::bpf`), the scenarios (`scenario/bpf/`), and the tracefs families.

/// The `since` of a BPF scenario that reads the `bpf_trace_printk` output through tracefs.
/// (The objects' `bpf_probe_read_user_str` and `_kernel` calls, helpers of 5.5, are rewritten
/// by aya to `bpf_probe_read_str`/`bpf_probe_read` where the kernel lacks them, so the paths
/// below work from their program type's first kernel: the compatibility table over 4.15–7.3
/// showed each passing there.)
pub const BTF_CORE: &str = "5.5";

/// When each program type's path arrived upstream (BCC's kernel-versions table): kprobe and
/// kretprobe programs.
pub const KPROBE_SINCE: &str = "4.1";
/// BPF programs on uprobes.
pub const UPROBE_SINCE: &str = "4.3";
/// `bpf_perf_event_output` (a perf buffer).
pub const PERF_OUTPUT_SINCE: &str = "4.4";
/// Tracepoint programs.
pub const TRACEPOINT_SINCE: &str = "4.7";
/// Programs on perf events (`BPF_PROG_TYPE_PERF_EVENT`).
pub const PERF_EVENT_SINCE: &str = "4.9";
/// Raw tracepoint programs.
pub const RAW_TRACEPOINT_SINCE: &str = "4.17";
/// The kernel's BTF in `/sys/kernel/btf/vmlinux`, which CO-RE relocation needs.
pub const VMLINUX_BTF_SINCE: &str = "5.4";

use super::gated::workload_problems;
use super::openat_loop;
use super::verdict::{count, ms, verdict};
use crate::bpf::event::{KmEvent, MAX_EVENTS};
use crate::bpf::{Counts, Loaded, Object, Rejected};
use crate::excerpt;
use crate::process::{Finished, Running};
use crate::scenario::meta::{Ctx, Meta};
use anyhow::{Context, Result};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::uprobe::UProbeScope;
use aya::programs::{
    BtfTracePoint, FEntry, FExit, KProbe, PerfEvent, Program, ProgramError, RawTracePoint, TracePoint, UProbe,
};
use kmatrix_proto::{Count, ScenarioResult, Status, Timings};
use std::num::NonZeroU32;
use std::time::Instant;

/// `unsupported` when the kernel has no BTF (CO-RE and BTF-typed hooks need it), else None.
/// `unsupported` when there is no BTF to relocate a CO-RE object against: neither the kernel's
/// nor an external one from `kmatrix run --btf`.
pub fn without_core_btf(id: &str) -> Option<ScenarioResult> {
    let (reason, evidence) = crate::bpf::core_btf_absent()?;
    let mut r = ScenarioResult::new(id, Status::Unsupported, reason);
    r.evidence = Some(evidence);
    Some(r)
}

pub fn without_btf(id: &str) -> Option<ScenarioResult> {
    let (reason, evidence) = crate::bpf::btf_absent()?;
    let mut r = ScenarioResult::new(id, Status::Unsupported, reason);
    r.evidence = Some(evidence);
    Some(r)
}

/// Where a program attaches.
pub enum Hook<'a> {
    KProbe(&'a str),
    TracePoint(&'a str, &'a str),
    RawTracePoint(&'a str),
    TpBtf(&'a str),
    FEntry(&'a str),
    FExit(&'a str),
    /// `path` at file `offset`, for one process.
    UProbe {
        path: &'a str,
        offset: u64,
        pid: u32,
    },
    /// cpu-clock samples of one process every `period_ns`.
    CpuClock {
        pid: u32,
        period_ns: u64,
    },
}

impl Hook<'_> {
    /// A BTF-typed hook (tp_btf, fentry, fexit): loading its program needs the kernel's BTF.
    pub fn needs_btf(&self) -> bool {
        matches!(self, Hook::TpBtf(_) | Hook::FEntry(_) | Hook::FExit(_))
    }

    pub fn describe(&self) -> String {
        match self {
            Hook::KProbe(f) => format!("kprobe {f}"),
            Hook::TracePoint(c, n) => format!("tracepoint {c}/{n}"),
            Hook::RawTracePoint(n) => format!("raw_tracepoint {n}"),
            Hook::TpBtf(n) => format!("tp_btf {n}"),
            Hook::FEntry(f) => format!("fentry {f}"),
            Hook::FExit(f) => format!("fexit {f}"),
            Hook::UProbe { path, offset, pid } => format!("uprobe {path}:{offset:#x} pid {pid}"),
            Hook::CpuClock { pid, period_ns } => format!("perf_event cpu-clock pid {pid} period {period_ns} ns"),
        }
    }
}

/// Load program `name` of `l` (the verifier runs here) and attach it to `hook`. Refusals are a
/// [`Rejected`] in the chain. Returns the time spent in the verifier load, in ms.
pub fn attach(l: &mut Loaded, name: &str, hook: &Hook) -> Result<f64> {
    let verified = Instant::now();
    let btf = if hook.needs_btf() { Some(crate::bpf::vmlinux::btf()?) } else { None };
    let load_step = format!("load {name}");
    let attach_step = format!("attach {name} to {}", hook.describe());
    let load = |r: Result<(), ProgramError>| r.map_err(|e| Rejected::program(load_step.clone(), e));
    let link = |r: Result<(), ProgramError>| r.map_err(|e| Rejected::program(attach_step.clone(), e));
    let mut load_ms = 0.0;
    let mut loaded = |t: Instant| load_ms = ms(t);
    match hook {
        Hook::KProbe(f) => {
            let p: &mut KProbe = l.program(name)?;
            load(p.load())?;
            loaded(verified);
            link(p.attach(*f, 0).map(drop))?;
        }
        Hook::TracePoint(c, n) => {
            let p: &mut TracePoint = l.program(name)?;
            load(p.load())?;
            loaded(verified);
            link(p.attach(c, n).map(drop))?;
        }
        Hook::RawTracePoint(n) => {
            let p: &mut RawTracePoint = l.program(name)?;
            load(p.load())?;
            loaded(verified);
            link(p.attach(n).map(drop))?;
        }
        Hook::TpBtf(n) => {
            let p: &mut BtfTracePoint = l.program(name)?;
            load(p.load(n, btf.as_ref().context("no BTF")?))?;
            loaded(verified);
            link(p.attach().map(drop))?;
        }
        Hook::FEntry(f) => {
            let p: &mut FEntry = l.program(name)?;
            load(p.load(f, btf.as_ref().context("no BTF")?))?;
            loaded(verified);
            link(p.attach().map(drop))?;
        }
        Hook::FExit(f) => {
            let p: &mut FExit = l.program(name)?;
            load(p.load(f, btf.as_ref().context("no BTF")?))?;
            loaded(verified);
            link(p.attach().map(drop))?;
        }
        Hook::UProbe { path, offset, pid } => {
            let p: &mut UProbe = l.program(name)?;
            load(p.load())?;
            loaded(verified);
            let scope = UProbeScope::OneProcess(NonZeroU32::new(*pid).context("pid 0")?);
            link(p.attach(*offset, path, scope).map(drop))?;
        }
        Hook::CpuClock { pid, period_ns } => {
            let p: &mut PerfEvent = l.program(name)?;
            load(p.load())?;
            loaded(verified);
            let config = PerfEventConfig::Software(SoftwareEvent::CpuClock);
            let scope = PerfEventScope::OneProcess { pid: *pid, cpu: None };
            link(p.attach(config, scope, SamplePolicy::Period(*period_ns), false).map(drop))?;
        }
    }
    Ok(load_ms)
}

/// Detach and unload program `name` (its links go with it).
pub fn detach(l: &mut Loaded, name: &str) -> Result<()> {
    let object = l.object;
    let prog = l.ebpf.program_mut(name).with_context(|| format!("{object} has no program {name}"))?;
    let r = match prog {
        Program::KProbe(p) => p.unload(),
        Program::TracePoint(p) => p.unload(),
        Program::RawTracePoint(p) => p.unload(),
        Program::BtfTracePoint(p) => p.unload(),
        Program::FEntry(p) => p.unload(),
        Program::FExit(p) => p.unload(),
        Program::UProbe(p) => p.unload(),
        Program::PerfEvent(p) => p.unload(),
        _ => return Ok(()),
    };
    r.with_context(|| format!("unload {name} failed"))
}

/// Run `body`; a [`Rejected`] in its error chain becomes `fail` with the errno, the refused step
/// as reason and the verifier log (its tail) as excerpt. Other errors stay errors.
pub fn guarded(id: &str, body: impl FnOnce() -> Result<ScenarioResult>) -> Result<ScenarioResult> {
    match body() {
        Ok(r) => Ok(r),
        Err(e) => match e.chain().find_map(|c| c.downcast_ref::<Rejected>()) {
            Some(rej) => Ok(rejected(id, rej, Status::Fail)),
            None => Err(e),
        },
    }
}

/// A result for a refused step: reason, errno and the verifier log's tail.
pub fn rejected(id: &str, rej: &Rejected, status: Status) -> ScenarioResult {
    let mut r = ScenarioResult::new(id, status, rej.to_string());
    r.errno = rej.errno;
    r.with_excerpt_tail(&excerpt::tail(&rej.verifier_log, 40))
}

/// A gated `openat-loop N PATH` and what its counts are compared with.
pub struct OpenatWorkload {
    pub n: u64,
    pub path: String,
    /// do_sys_openat2, or do_sys_open on kernels before 5.6.
    pub sym: &'static str,
    pub running: Running,
}

impl OpenatWorkload {
    /// `count` calls, as the scenario declares it ([`Meta::params`](crate::scenario::meta::Meta)).
    pub fn start(ctx: &mut Ctx) -> Result<OpenatWorkload> {
        let (n, path) = openat_loop::declared(ctx)?;
        let sym = openat_loop::symbol(ctx)?;
        let running = openat_loop::start(n, &path)?;
        Ok(OpenatWorkload { n, path, sym, running })
    }

    pub fn pid(&self) -> u32 {
        self.running.pid() as u32
    }
}

/// What came of a program attached for one run of a gated workload.
pub struct ProgramRun {
    /// The object, program and hook (described) it ran, for the workload's `pid`.
    pub object: &'static str,
    pub program: String,
    pub hook: String,
    pub pid: u32,
    pub done: Finished,
    pub counts: Counts,
    pub events: Vec<KmEvent>,
    /// Time in the verifier load, ms.
    pub load_ms: f64,
    /// Attach (object load, verifier, attach), run and detach times.
    pub timings: Timings,
}

impl ProgramRun {
    /// The [`verdict`] on what this run counted, with its timings.
    pub fn verdict(&self, id: &str, counts: Vec<Count>, problems: Vec<String>) -> ScenarioResult {
        let mut r = verdict(id, counts, problems);
        r.timings = self.timings.clone();
        r
    }

    /// [`ProgramRun::verdict`], its detail naming the object, program, hook, pid and verifier
    /// load time beside the scenario's own `fields`, its excerpt the first recorded events.
    pub fn result(
        &self,
        id: &str,
        counts: Vec<Count>,
        problems: Vec<String>,
        fields: serde_json::Value,
    ) -> ScenarioResult {
        let mut r = self.verdict(id, counts, problems);
        let mut detail = serde_json::json!({
            "object": self.object,
            "program": self.program,
            "hook": self.hook,
            "pid": self.pid,
            "verifier_load_ms": self.load_ms,
        });
        if let (Some(d), serde_json::Value::Object(f)) = (detail.as_object_mut(), fields) {
            d.extend(f);
        }
        r.detail = detail;
        r.with_excerpt(&events_excerpt(&self.events, 5))
    }
}

/// Load `object` for the workload's `pid`, attach `program` to `hook`, release the gated
/// `running` and wait for it, read the counts and events, then detach and unload.
pub fn run_program(
    ctx: &Ctx,
    object: Object,
    pid: u32,
    program: &str,
    hook: &Hook,
    running: Running,
) -> Result<ProgramRun> {
    let t = Instant::now();
    let mut l = Loaded::new(object, pid)?;
    let load_ms = attach(&mut l, program, hook)?;
    let attach_ms = ms(t);
    let (done, run_ms) = release(running, ctx)?;
    let counts = l.counts()?;
    let events = l.events(counts.hits)?;
    let t = Instant::now();
    detach(&mut l, program)?;
    drop(l);
    Ok(ProgramRun {
        object: object.name,
        program: program.to_string(),
        hook: hook.describe(),
        pid,
        done,
        counts,
        events,
        load_ms,
        timings: Timings { attach_ms, run_ms, detach_ms: ms(t) },
    })
}

/// Release a gated workload and wait for it: (how it ended, run time in ms).
pub fn release(mut running: Running, ctx: &Ctx) -> Result<(Finished, f64)> {
    let t = Instant::now();
    running.release()?;
    let done = running.finish(ctx.timeout()?)?;
    Ok((done, ms(t)))
}

/// What a recorded event must carry, beyond the workload's pid.
pub struct Payload<'a> {
    /// `name` equals this (file name, string argument, comm).
    pub name: Option<&'a str>,
    /// `aux` equals this (return value, syscall number).
    pub aux: Option<(&'a str, i64)>,
}

/// How many recorded events carry the workload's pid and the expected payload: all of the first
/// min(n, KM_MAX_EVENTS) of the workload's `n` hits.
pub fn event_counts(n: u64, pid: u32, events: &[KmEvent], p: &Payload) -> Vec<Count> {
    let recorded = n.min(MAX_EVENTS);
    let mine: Vec<&KmEvent> = events.iter().filter(|e| e.pid == pid && e.tgid == pid).collect();
    let mut out = vec![count(format!("events recorded with pid {pid}"), recorded, mine.len() as u64)];
    if let Some(name) = p.name {
        let hits = mine.iter().filter(|e| e.name() == name).count() as u64;
        out.push(count(format!("events with name {name:?}"), recorded, hits));
    }
    if let Some((label, v)) = p.aux {
        let hits = mine.iter().filter(|e| e.aux == v).count() as u64;
        out.push(count(format!("events with {label}={v}"), recorded, hits));
    }
    out
}

/// The openat workload's own account, and its problems: a bad end or an unreadable summary.
pub fn openat_summary(done: &Finished) -> (openat_loop::Summary, Vec<String>) {
    let mut problems = workload_problems(done);
    let summary = openat_loop::account(done, &mut problems);
    (summary, problems)
}

/// The first few recorded events, one line each, for the excerpt.
pub fn events_excerpt(events: &[KmEvent], n: usize) -> String {
    events
        .iter()
        .take(n)
        .map(|e| {
            format!(
                "pid={} tgid={} aux={} cookie={} task_pid={} task_tgid={} parent_tgid={} state_field={} state={} name={:?}",
                e.pid,
                e.tgid,
                e.aux,
                e.cookie,
                e.task_pid,
                e.task_tgid,
                e.parent_tgid,
                e.state_field,
                e.state,
                e.name()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Clone, Copy)]
pub enum Checks {
    /// name = path.
    Name,
    /// aux = the fd the workload got.
    Ret,
    /// name = path and aux = the fd.
    NameAndRet,
    /// name = path and aux = 257 (openat's syscall number).
    NameAndNr,
}

/// The catalogue entry of a BPF scenario on `openat-loop` (in the image; 100 calls unless the
/// `count` parameter says otherwise): `id`, first in upstream `since`.
pub const fn openat_meta(id: &'static str, since: &'static str) -> Meta {
    Meta::new(id, since).on_openat_loop(&[("count", "100")])
}

/// The openat scenarios' shape: load `object`, attach its program `program(sym)` to the hook
/// `hook(sym, pid)`, run `openat-loop`, check the hits and the payload `checks` names.
pub fn run_openat(
    ctx: &mut Ctx,
    object: Object,
    program: fn(sym: &str) -> &'static str,
    hook: for<'a> fn(sym: &'a str, pid: u32) -> Hook<'a>,
    checks: Checks,
) -> Result<ScenarioResult> {
    let id = ctx.id();
    // A BTF-typed hook needs the kernel's BTF beyond CO-RE; the hook's kind does not depend on
    // the symbol or pid it is made with.
    if let Some(r) = hook("", 0).needs_btf().then(|| without_btf(id)).flatten() {
        return Ok(r);
    }
    guarded(id, || {
        let w = OpenatWorkload::start(ctx)?;
        let pid = w.pid();
        let program = program(w.sym);
        let hook = hook(w.sym, pid);
        let p = run_program(ctx, object, pid, program, &hook, w.running)?;

        let (summary, problems) = openat_summary(&p.done);
        let (name, aux) = match checks {
            Checks::Name => (Some(w.path.as_str()), None),
            Checks::Ret => (None, Some(("ret", summary.fd))),
            Checks::NameAndRet => (Some(w.path.as_str()), Some(("ret", summary.fd))),
            Checks::NameAndNr => (Some(w.path.as_str()), Some(("syscall nr", libc::SYS_openat))),
        };
        let mut c = openat_loop::counts(w.n, &summary, format!("{program} hits of the workload"), p.counts.hits);
        c.extend(event_counts(w.n, pid, &p.events, &Payload { name, aux }));
        Ok(p.result(id, c, problems, serde_json::json!({ "hits_filtered_out": p.counts.others })))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_counts_need_pid_and_name() {
        let mut good = KmEvent { pid: 9, tgid: 9, aux: 3, ..Default::default() };
        good.name[..2].copy_from_slice(b"/x");
        let other = KmEvent { pid: 8, tgid: 8, ..good };
        let c = event_counts(2, 9, &[good, other], &Payload { name: Some("/x"), aux: Some(("ret", 3)) });
        let observed: Vec<u64> = c.iter().map(|c| c.observed).collect();
        assert_eq!(observed, vec![1, 1, 1]);
    }

    #[test]
    fn a_rejection_is_a_fail_with_errno_and_log() {
        let rej = Rejected {
            step: "load x".into(),
            errno: Some(libc::EACCES),
            message: "BPF_PROG_LOAD: Permission denied".into(),
            verifier_log: "0: R1=ctx\ninvalid mem access".into(),
        };
        let r = guarded("bpf.x.y", || Err(anyhow::Error::new(rej).context("outer"))).unwrap();
        assert_eq!((r.status, r.errno), (Status::Fail, Some(libc::EACCES)));
        assert!(r.excerpt.contains("invalid mem access"));
        assert!(guarded("bpf.x.y", || Err(anyhow::anyhow!("spawn failed"))).is_err());
    }
}
