//! `bpf.object.*`: a BPF object from a path in the guest, loaded, verified, attached and fired
//! step by step: the agent side of users bringing their own objects (`kmatrix run
//! --bpf-object`), driven by the scenario's parameters so it needs no protocol of its own.
//!
//! Parameters: `object` (its path in the guest; without it, the agent's own probes.bpf.o is
//! written to /tmp and taken through the same steps, a self-test), `program` (default: the
//! object's only program), `attach` (`kprobe:SYM`, `tracepoint:CAT/NAME`, `raw_tracepoint:NAME`,
//! `tp_btf:NAME`, `fentry:FN`, `fexit:FN`, `uprobe:PATH:SYMBOL`, `perf_event:cpu-clock`, and
//! libbpf's `ksyscall:NAME`, a kprobe on this kernel's symbol for syscall NAME from
//! /proc/kallsyms; without it the program is only loaded), `unsupported` (set by the host for a
//! program in a libbpf section the agent has no attach path for, `usdt/`, `kprobe.multi/`, ...:
//! the object is loaded, CO-RE relocated and its maps created, then the result is `unsupported`
//! with that reason), `workload` (`openat-loop:N` or `hello:N`) and `expect_runs`
//! (how many times the program must run during the workload, counted by the kernel's BPF run
//! statistics, 5.8+); `path` is the file openat-loop opens, as for the other openat scenarios.
//! Every step is reported with its time, errno and message; a refused load carries the
//! verifier's log. What it does not do: check a user program's output (its maps are its own).

use crate::bpf::{self, Loaded, Rejected};
use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::support::bpf::{attach, detach, release, Hook};
use crate::scenario::support::openat_loop;
use crate::scenario::support::user_workload;
use crate::scenario::support::verdict::{count, ms, verdict};
use crate::{elf, process};
use anyhow::{bail, Context, Result};
use aya::programs::{Program, ProgramError};
use kmatrix_proto::{Count, ScenarioResult, Status};
use std::path::Path;
use std::time::Instant;

// Counting a program's runs: kernel.bpf_stats_enabled (5.1), or BPF_ENABLE_STATS (5.8).
pub const LOAD: Scenario = Meta::new("bpf.object.load", "5.1")
.summary("a BPF object from a path: load, verify, attach, run a workload, detach, each step reported with the verifier log")
.params(&[("object", ""), ("program", ""), ("attach", ""), ("workload", ""), ("workload_cmd", ""), ("workload_cwd", ""), ("expect_runs", ""), ("unsupported", "")])
.run(load);

/// Where the self-test writes the embedded object, to load it from a path like a user's.
const SELFTEST_PATH: &str = "/tmp/kmatrix-selftest.bpf.o";
/// The self-test's openat-loop calls, each one run of its kprobe.
const SELFTEST_CALLS: u64 = 10;

/// One step of the path, as reported.
#[derive(serde::Serialize)]
struct Step {
    step: String,
    ok: bool,
    ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<i32>,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
}

/// `KIND:TARGET` of the `attach` parameter.
#[derive(Debug, PartialEq, Eq)]
enum AttachSpec {
    KProbe(String),
    /// libbpf's `ksyscall/NAME`: a kprobe on the syscall's symbol, found on the running kernel.
    KSyscall(String),
    TracePoint(String, String),
    RawTracePoint(String),
    TpBtf(String),
    FEntry(String),
    FExit(String),
    UProbe {
        path: String,
        symbol: String,
    },
    CpuClock,
}

fn parse_attach(spec: &str) -> Result<AttachSpec> {
    let (kind, target) = spec.split_once(':').with_context(|| format!("attach={spec:?} is not KIND:TARGET"))?;
    let target = target.to_string();
    Ok(match kind {
        "kprobe" | "kretprobe" => AttachSpec::KProbe(target),
        "ksyscall" => AttachSpec::KSyscall(target),
        "tracepoint" => {
            let (c, n) = target.split_once('/').with_context(|| format!("attach={spec:?}: tracepoint:CAT/NAME"))?;
            AttachSpec::TracePoint(c.to_string(), n.to_string())
        }
        "raw_tracepoint" | "raw_tp" => AttachSpec::RawTracePoint(target),
        "tp_btf" => AttachSpec::TpBtf(target),
        "fentry" => AttachSpec::FEntry(target),
        "fexit" => AttachSpec::FExit(target),
        "uprobe" | "uretprobe" => {
            let (path, symbol) =
                target.rsplit_once(':').with_context(|| format!("attach={spec:?}: uprobe:PATH:SYMBOL"))?;
            AttachSpec::UProbe { path: path.to_string(), symbol: symbol.to_string() }
        }
        "perf_event" if target == "cpu-clock" => AttachSpec::CpuClock,
        _ => bail!("attach={spec:?}: unknown kind {kind:?} (kprobe, ksyscall, tracepoint, raw_tracepoint, tp_btf, fentry, fexit, uprobe, perf_event:cpu-clock)"),
    })
}

/// Load a program that needs no attach target to verify.
fn load_only(p: &mut Program) -> Option<Result<(), ProgramError>> {
    Some(match p {
        Program::KProbe(p) => p.load(),
        Program::UProbe(p) => p.load(),
        Program::TracePoint(p) => p.load(),
        Program::RawTracePoint(p) => p.load(),
        Program::PerfEvent(p) => p.load(),
        Program::SocketFilter(p) => p.load(),
        Program::Xdp(p) => p.load(),
        Program::SchedClassifier(p) => p.load(),
        _ => return None,
    })
}

fn load(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let id = ctx.id();
    let param = |k: &str| ctx.params.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let (path, program, attach_spec, workload) = match param("object") {
        Some(p) => (p, param("program"), param("attach"), param("workload")),
        None => {
            std::fs::write(SELFTEST_PATH, bpf::PROBES.bytes)
                .with_context(|| format!("write({SELFTEST_PATH}) failed"))?;
            let sym = openat_loop::symbol(ctx)?;
            (
                SELFTEST_PATH.to_string(),
                Some("kprobe_openat".to_string()),
                Some(format!("kprobe:{sym}")),
                Some(format!("openat-loop:{SELFTEST_CALLS}")),
            )
        }
    };
    // `object` absent or empty (the catalogue's default, which the host sends) means the
    // self-test: its workload and count are its own, whatever workload and count a run gives the
    // scenarios that take one (`run --workload ... --expect-runs ...` sends them to every scenario).
    let selftest = param("object").is_none();
    let expect_runs = match param("expect_runs") {
        _ if selftest => Some(SELFTEST_CALLS),
        Some(v) => Some(v.parse::<u64>().with_context(|| format!("expect_runs={v:?} is not a number"))?),
        None => None,
    };
    let attach_text = attach_spec.clone().unwrap_or_default();
    let attach_spec = attach_spec.as_deref().map(parse_attach).transpose()?;
    // A host command (`workload_cmd`, a JSON argv the host resolved) runs in the shared root.
    let command: Option<Vec<String>> = match param("workload_cmd").filter(|_| !selftest) {
        Some(j) => Some(serde_json::from_str(&j).with_context(|| format!("workload_cmd={j:?} is not a JSON argv"))?),
        None => None,
    };
    let argv = match (workload.as_deref(), &command) {
        (_, Some(c)) => Some(c.clone()),
        (Some(w), None) => Some(user_workload::builtin(w, &openat_loop::target_path(ctx)?)?.0),
        (None, None) => None,
    };
    let bytes = std::fs::read(&path).with_context(|| format!("read({path}) failed"))?;

    let mut steps: Vec<Step> = Vec::new();
    let mut verifier_log = String::new();
    let push = |steps: &mut Vec<Step>, step: String, t: Instant, r: Result<(), &Rejected>| {
        let (ok, errno, message) = match r {
            Ok(()) => (true, None, String::new()),
            Err(rej) => (false, rej.errno, rej.message.clone()),
        };
        steps.push(Step { step, ok, ms: ms(t), errno, message });
    };
    let finish = |steps: Vec<Step>, log: &str, counts: Vec<Count>, problems: Vec<String>, errno: Option<i32>| {
        let mut r = verdict(id, counts, problems);
        r.errno = errno;
        r.detail = serde_json::json!({ "object": path, "steps": steps });
        r.with_excerpt_tail(&excerpt::tail(log, 40))
    };

    // Step 1: the object (parse, CO-RE relocation against the kernel's BTF, maps).
    let t = Instant::now();
    let against =
        bpf::vmlinux::external().map(|p| format!(" (CO-RE against the external BTF {p})")).unwrap_or_default();
    let mut l = match Loaded::open("user object", &bytes) {
        Ok(l) => {
            push(&mut steps, format!("load object {path}{against}"), t, Ok(()));
            l
        }
        Err(e) => {
            let rej = e.chain().find_map(|c| c.downcast_ref::<Rejected>()).context("load object")?;
            push(&mut steps, format!("load object {path}{against}"), t, Err(rej));
            return Ok(finish(steps, "", Vec::new(), vec![rej.to_string()], rej.errno));
        }
    };
    if let Some(why) = param("unsupported").filter(|_| !selftest) {
        let mut r = finish(steps, "", Vec::new(), Vec::new(), None);
        r.status = Status::Unsupported;
        // kmatrix lacks the attach path, not the kernel: the host's verdict keeps it unsupported.
        let program = param("program").unwrap_or_default();
        r.host_lacks =
            Some(format!("an attach path for the section of program {program} (kmatrix's, not the kernel's)"));
        r.reason = why;
        return Ok(r);
    }
    let names: Vec<String> = l.ebpf.programs().map(|(n, _)| n.to_string()).collect();
    let program = match program {
        Some(p) => p,
        None if names.len() == 1 => names[0].clone(),
        None => {
            bail!("the object has {} programs ({}); say which with program=NAME", names.len(), names.join(", "))
        }
    };
    // Held until the end: the kernel counts program runs while this is held.
    let stats = RunStats::enable();
    let run_count = |l: &Loaded| -> Result<u64> {
        let prog = l.ebpf.program(&program).with_context(|| format!("no program {program}"))?;
        prog.info().map(|i| i.run_count()).context("BPF_OBJ_GET_INFO_BY_FD")
    };

    // The workload, gated, so uprobe and perf_event attach to its pid before it runs.
    let mut running = match (&command, &argv) {
        (Some(c), _) => {
            crate::share::mount_offered().map_err(|e| anyhow::anyhow!("workload_cmd needs the host root: {e}"))?;
            let cwd = user_workload::host_cwd(ctx.params);
            crate::host_paths::prepare(&cwd, c)?;
            Some(process::spawn_gated_in_root(c, crate::share::HOST_ROOT, &cwd, user_workload::HOST_ENV)?)
        }
        (None, Some(a)) => Some(process::spawn(a, true)?),
        (None, None) => None,
    };
    let pid = running.as_ref().map(|w| w.pid() as u32);

    // Steps 2 and 3: verify (load) and attach.
    let t = Instant::now();
    // What a `ksyscall:NAME` target is on this kernel, for the attach step.
    let mut resolved = String::new();
    let outcome: Result<f64, anyhow::Error> = match &attach_spec {
        None => {
            let prog = l.ebpf.program_mut(&program).with_context(|| format!("no program {program} in {path}"))?;
            match load_only(prog) {
                Some(r) => r.map(|()| ms(t)).map_err(|e| Rejected::program(format!("load {program}"), e).into()),
                None => bail!("program {program} needs an attach target to be verified: give attach=KIND:TARGET"),
            }
        }
        Some(spec) => {
            let need_pid = || pid.context("uprobe and perf_event attach need a workload=... to attach to");
            let offset;
            let syscall: String;
            let hook = match spec {
                AttachSpec::KProbe(s) => Hook::KProbe(s),
                AttachSpec::KSyscall(name) => {
                    // libbpf's rule: the arch wrapper where the kernel has syscall wrappers (4.17+
                    // on x86-64), else sys_NAME.
                    let names = crate::arch::syscall_symbols(name);
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    syscall = crate::kallsyms::first_of(&names)?
                        .with_context(|| format!("ksyscall:{name}: none of {names:?} in /proc/kallsyms"))?
                        .to_string();
                    resolved = format!(" (kprobe {syscall})");
                    Hook::KProbe(&syscall)
                }
                AttachSpec::TracePoint(c, n) => Hook::TracePoint(c, n),
                AttachSpec::RawTracePoint(n) => Hook::RawTracePoint(n),
                AttachSpec::TpBtf(n) => Hook::TpBtf(n),
                AttachSpec::FEntry(f) => Hook::FEntry(f),
                AttachSpec::FExit(f) => Hook::FExit(f),
                AttachSpec::UProbe { path, symbol } => {
                    offset = elf::function_offset(Path::new(path), symbol)?;
                    Hook::UProbe { path, offset, pid: need_pid()? }
                }
                AttachSpec::CpuClock => Hook::CpuClock { pid: need_pid()?, period_ns: 1_000_000 },
            };
            attach(&mut l, &program, &hook)
        }
    };
    let load_ms = match outcome {
        Ok(load_ms) => load_ms,
        Err(e) => {
            let Some(rej) = e.chain().find_map(|c| c.downcast_ref::<Rejected>()) else {
                return Err(e);
            };
            push(&mut steps, rej.step.clone(), t, Err(rej));
            verifier_log = rej.verifier_log.clone();
            return Ok(finish(steps, &verifier_log, Vec::new(), vec![rej.to_string()], rej.errno));
        }
    };
    let attach_ms = ms(t);
    steps.push(Step {
        step: format!("load {program} (verifier)"),
        ok: true,
        ms: load_ms,
        errno: None,
        message: String::new(),
    });
    if attach_spec.is_some() {
        let step = format!("attach {program} to {attach_text}{resolved}");
        steps.push(Step { step, ok: true, ms: attach_ms - load_ms, errno: None, message: String::new() });
    }
    let runs_before = run_count(&l);

    // Step 4: the workload.
    let mut counts = Vec::new();
    let mut problems = Vec::new();
    // Why the kernel cannot count the program's runs, when a count was asked for.
    let mut cannot_count: Option<String> = None;
    let mut run_ms = 0.0;
    if let (Some(expected), None) = (expect_runs, &running) {
        problems.push(format!("expect_runs={expected} needs a workload=... to count the runs of"));
    }
    if let Some(w) = running.take() {
        let done;
        (done, run_ms) = release(w, ctx)?;
        let ok = done.success();
        steps.push(Step {
            step: format!("run {}", argv.as_ref().map(|a| a.join(" ")).unwrap_or_default()),
            ok,
            ms: done.wall.as_secs_f64() * 1000.0,
            errno: None,
            message: if ok { String::new() } else { done.describe() },
        });
        if !ok {
            problems.push(format!("workload ended with {}: {}", done.describe(), done.stderr.trim()));
        }
        let wants_count = expect_runs.is_some() || (command.is_some() && attach_spec.is_some());
        if let (true, RunStats::Unavailable(why)) = (wants_count, &stats) {
            cannot_count = Some(why.clone());
        } else if let Some(expected) = expect_runs {
            let (c, p) = runs_check(&program, expected, &runs_before, &run_count(&l));
            counts.extend(c);
            problems.extend(p);
        } else if command.is_some() && attach_spec.is_some() {
            // A user's command has no exact count to promise: the check is that the program ran.
            match (&runs_before, &run_count(&l)) {
                (Ok(b), Ok(a)) => {
                    let ran = a.saturating_sub(*b);
                    counts.push(count(format!("{program} ran at least once during the workload"), 1, ran.min(1)));
                }
                (b, a) => problems.push(format!(
                    "the run count of {program} could not be read: {}",
                    b.as_ref().err().or(a.as_ref().err()).map(|e| format!("{e:#}")).unwrap_or_default()
                )),
            }
        }
    }
    let t = Instant::now();
    if attach_spec.is_some() {
        let r = detach(&mut l, &program);
        let rej = r.as_ref().err().map(|e| Rejected::new("detach", e.root_cause()));
        push(&mut steps, format!("detach {program}"), t, rej.as_ref().map_or(Ok(()), Err));
    }
    drop(l);
    drop(stats);
    let detach_ms = ms(t);
    let mut r = finish(steps, &verifier_log, counts, problems, None);
    r.timings.attach_ms = attach_ms;
    r.timings.run_ms = run_ms;
    r.timings.detach_ms = detach_ms;
    if r.status == Status::Pass {
        r.reason = format!("{program} of {path}: every step succeeded");
        if let Some(why) = cannot_count {
            r.status = Status::Unsupported;
            r.reason = format!("{program} of {path} loaded and attached, but this kernel cannot count its runs");
            r.evidence = Some(why);
        }
    }
    Ok(r)
}

/// The kernel counting BPF program runs (`run_cnt` of `bpf_prog_info`, 5.1): through a
/// `BPF_ENABLE_STATS` fd (5.8), else the `kernel.bpf_stats_enabled` sysctl (5.1, set back when
/// dropped), else not at all.
enum RunStats {
    /// Held, not read: the kernel counts while the fd is open.
    Fd {
        _fd: std::os::fd::OwnedFd,
    },
    Sysctl {
        was: String,
    },
    Unavailable(String),
}

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl RunStats {
    fn enable() -> RunStats {
        let enable_stats = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => return RunStats::Fd { _fd: fd },
            Err(e) => format!("BPF_ENABLE_STATS: {e}"),
        };
        match std::fs::read_to_string(STATS_SYSCTL) {
            Ok(was) => match std::fs::write(STATS_SYSCTL, "1") {
                Ok(()) => RunStats::Sysctl { was: was.trim().to_string() },
                Err(e) => RunStats::Unavailable(format!("{enable_stats}; write 1 to {STATS_SYSCTL}: {e}")),
            },
            Err(e) => RunStats::Unavailable(format!(
                "{enable_stats} (the command came in 5.8); {STATS_SYSCTL}: {e} (the sysctl and run_cnt came in 5.1)"
            )),
        }
    }
}

impl Drop for RunStats {
    fn drop(&mut self) {
        if let RunStats::Sysctl { was, .. } = self {
            let _ = std::fs::write(STATS_SYSCTL, was.as_bytes());
        }
    }
}

/// The `expect_runs` check: the runs of `program` during the workload, from the kernel's BPF
/// run statistics read `before` and `after` it. A run count that could not be read is a problem
/// naming why, never a check left out. (Statistics that could not be enabled never get here:
/// the scenario is `unsupported` with why, above.)
fn runs_check(program: &str, expected: u64, before: &Result<u64>, after: &Result<u64>) -> (Vec<Count>, Vec<String>) {
    let mut problems = Vec::new();
    match (before, after) {
        (Ok(b), Ok(a)) => (
            vec![count(format!("{program} runs during the workload (BPF stats)"), expected, a.saturating_sub(*b))],
            problems,
        ),
        _ => {
            for (when, read) in [("before", before), ("after", after)] {
                if let Err(e) = read {
                    problems.push(format!(
                        "expect_runs={expected}: the run count of {program} could not be read {when} the workload: {e:#}"
                    ));
                }
            }
            (Vec::new(), problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_specs_parse_and_bad_ones_name_the_input() {
        assert_eq!(parse_attach("kprobe:do_sys_openat2").unwrap(), AttachSpec::KProbe("do_sys_openat2".into()));
        assert_eq!(
            parse_attach("tracepoint:syscalls/sys_enter_openat").unwrap(),
            AttachSpec::TracePoint("syscalls".into(), "sys_enter_openat".into())
        );
        assert_eq!(
            parse_attach("uprobe:/bin/hello:hello_greet").unwrap(),
            AttachSpec::UProbe { path: "/bin/hello".into(), symbol: "hello_greet".into() }
        );
        assert_eq!(parse_attach("ksyscall:openat").unwrap(), AttachSpec::KSyscall("openat".into()));
        assert!(parse_attach("tracepoint:nocategory").unwrap_err().to_string().contains("nocategory"));
        assert!(parse_attach("xdp:eth0").is_err());
        assert!(parse_attach("kprobe").is_err());
    }

    #[test]
    fn expect_runs_fails_when_the_runs_cannot_be_counted() {
        let (c, p) = runs_check("p", 10, &Ok(5), &Ok(15));
        assert_eq!((c[0].expected, c[0].observed, p.len()), (10, 10, 0));
        // info() failing after the workload used to drop the check and pass.
        let (c, p) = runs_check("p", 10, &Ok(5), &Err(anyhow::anyhow!("BPF_OBJ_GET_INFO_BY_FD: EPERM")));
        assert!(c.is_empty());
        assert_eq!(
            p,
            ["expect_runs=10: the run count of p could not be read after the workload: BPF_OBJ_GET_INFO_BY_FD: EPERM"]
        );
        let r = verdict("bpf.object.load", c, p);
        assert_eq!(r.status, Status::Fail);
        let (_, p) = runs_check("p", 10, &Err(anyhow::anyhow!("x")), &Err(anyhow::anyhow!("y")));
        assert_eq!(p.len(), 2);
    }
}
