//! From the command line to the agent's `bpf.object.load` scenario: which program, the
//! `--attach` and `--workload` specs checked as the agent parses them, the parameters and the
//! object's place in the image; and the steps of its results, rendered for the user.
//!
//! Reading the object is [`super::object`]'s.

use super::object::{loads_without_target, UserObject};
use super::sections::Auto;
use super::{ObjectError, GUEST_DIR, SCENARIO};
use crate::cache::sanitize;
use crate::image::ExtraFile;
use kmatrix_proto::ScenarioResult;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `--program`: which program of the object to load.
    pub program: Option<String>,
    /// `--attach KIND:TARGET`.
    pub attach: Option<String>,
    /// `--workload`: a built-in workload or a host command.
    pub workload: Option<String>,
    /// `--expect-runs N`: how many times the program must run while the workload runs.
    pub expect_runs: Option<u64>,
}

/// The scenario to run on every kernel.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The program to load.
    pub program: String,
    /// The `bpf.object.load` parameters.
    pub params: BTreeMap<String, String>,
    /// The object, for the image.
    pub file: ExtraFile,
    /// The workload is a host command: guests must share the host root.
    pub host_root: bool,
}

/// What `--workload` names: one of the agent's built-in workloads (exact counts), or any host
/// command, run in the guest through the shared host root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// `openat-loop:N`, `hello:N`: a hook on the workload's own call runs exactly N times.
    Builtin(u64),
    /// A host command line (program resolved on the host, arguments as given) and the directory
    /// it runs in (the caller's).
    Command(Vec<String>, PathBuf),
}

impl Workload {
    /// The scenario parameters of this workload, given as `spec`: a built-in is `workload=spec`;
    /// a host command is its argv as JSON (`workload_cmd`) and the current directory it runs in
    /// (`workload_cwd`), as a shell would run it here. A command's environment in the guest is a
    /// plain root shell's (the caller's could hold secrets, and every result records its
    /// parameters).
    pub fn params(&self, spec: &str) -> BTreeMap<String, String> {
        match self {
            Workload::Builtin(_) => BTreeMap::from([("workload".to_string(), spec.to_string())]),
            Workload::Command(argv, cwd) => BTreeMap::from([
                ("workload_cmd".to_string(), serde_json::to_string(argv).unwrap_or_default()),
                ("workload_cwd".to_string(), cwd.display().to_string()),
            ]),
        }
    }

    /// A host command: guests must share the host root to run it.
    pub fn needs_host_root(&self) -> bool {
        matches!(self, Workload::Command(..))
    }
}

/// `--workload SPEC`: a built-in (`openat-loop:N`, `hello:N`) or a host command line
/// (`'rm -f /var/tmp/x'`), split as a shell would split plain words and quotes. A command's
/// program must exist on the host.
pub fn workload(spec: &str) -> Result<Workload, ObjectError> {
    let bad = |why: String| ObjectError::Workload { spec: spec.to_string(), why };
    let name = spec.split(':').next().unwrap_or(spec);
    if matches!(name, "openat-loop" | "hello") && !spec.contains(char::is_whitespace) {
        return workload_count(spec).map(Workload::Builtin);
    }
    let (argv, cwd) = crate::exec::command_line(spec).map_err(|e| bad(e.to_string()))?;
    Ok(Workload::Command(argv, cwd))
}

/// Check `req` against `obj` and turn it into the scenario's parameters.
pub fn plan(obj: &UserObject, req: &Request) -> Result<Plan, ObjectError> {
    let known = obj.programs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
    let prog = match &req.program {
        Some(name) => obj.programs.iter().find(|p| &p.name == name).ok_or_else(|| ObjectError::NoProgram {
            path: obj.path.clone(),
            program: name.clone(),
            known: known.clone(),
        })?,
        None if obj.programs.len() == 1 => &obj.programs[0],
        None => return Err(ObjectError::WhichProgram { path: obj.path.clone(), count: obj.programs.len(), known }),
    };
    let wl = req.workload.as_deref().map(workload).transpose()?;
    let runs = match &wl {
        Some(Workload::Builtin(n)) => Some(*n),
        _ => None,
    };
    let has_workload = wl.is_some();
    if let Some(n) = req.expect_runs.filter(|_| !has_workload || req.attach.is_none()) {
        return Err(ObjectError::NothingToCount(n));
    }
    let section = super::sections::lookup(&prog.section);
    // A section aya-obj reads only under an alias and the agent has no attach path for: its
    // object is still relocated and loaded in the guest, and the result is `unsupported`.
    let unsupported = match section {
        Some((def, _)) if def.auto == Auto::No && obj.renamed.iter().any(|(old, _)| *old == prog.section) => {
            Some(format!(
                "program {} is in section {:?}, a libbpf {} program ({}): kmatrix relocates its object and \
                 creates its maps, but has no attach path for {} programs",
                prog.name, prog.section, def.prefix, def.prog_type, def.prefix
            ))
        }
        _ => None,
    };
    // Without --attach, the section's own target, as libbpf's auto-attach takes it.
    let attach = match (&req.attach, &unsupported) {
        (Some(a), _) => Some(a.clone()),
        (None, None) => section.and_then(|(def, extras)| auto_attach(def.auto, extras)),
        (None, Some(_)) => None,
    };
    match (&attach, &unsupported) {
        (_, Some(_)) => {}
        (Some(spec), None) => {
            let (kind, needs_pid) = attach_kind(spec)?;
            let wants = accepts(kind);
            if !wants.split(", ").any(|w| w == prog.aya_kind) {
                return Err(ObjectError::Mismatch {
                    path: obj.path.clone(),
                    program: prog.name.clone(),
                    kind: prog.kind,
                    spec: spec.clone(),
                    wants: accepts_text(kind),
                });
            }
            if needs_pid && !has_workload {
                return Err(ObjectError::NeedsWorkload { spec: spec.clone() });
            }
        }
        (None, None) if !loads_without_target(prog.aya_kind) => {
            return Err(ObjectError::NeedsAttach {
                path: obj.path.clone(),
                program: prog.name.clone(),
                kind: prog.kind,
            })
        }
        (None, None) => {}
    }
    let name = obj.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "object.bpf.o".into());
    let guest_path = format!("{GUEST_DIR}/{}", sanitize(&name));
    let mut params = BTreeMap::new();
    params.insert("object".to_string(), guest_path.clone());
    params.insert("program".to_string(), prog.name.clone());
    if let Some(a) = &attach {
        params.insert("attach".to_string(), a.clone());
    }
    if let Some(why) = &unsupported {
        params.insert("unsupported".to_string(), why.clone());
    }
    if let (Some(w), Some(spec)) = (&wl, &req.workload) {
        params.extend(w.params(spec));
    }
    // A hook on the workload's own call runs once per iteration: that is the default check.
    // Without an attach nothing runs, so there is nothing to count.
    let expect = req.expect_runs.or(runs.filter(|_| attach.is_some())).filter(|_| unsupported.is_none());
    if let Some(n) = expect {
        params.insert("expect_runs".to_string(), n.to_string());
    }
    Ok(Plan {
        program: prog.name.clone(),
        params,
        file: ExtraFile { path: guest_path, mode: 0o644, data: obj.bytes.clone() },
        host_root: wl.as_ref().is_some_and(Workload::needs_host_root),
    })
}

/// The `--attach` spec a section's extras give (libbpf's auto-attach), when the agent can
/// attach it: a plain symbol, or `CATEGORY/NAME` for a tracepoint.
fn auto_attach(auto: Auto, extras: &str) -> Option<String> {
    let symbol = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    let kind = match auto {
        Auto::KProbe => "kprobe",
        Auto::KSyscall => "ksyscall",
        Auto::RawTracePoint => "raw_tracepoint",
        Auto::TpBtf => "tp_btf",
        Auto::FEntry => "fentry",
        Auto::FExit => "fexit",
        Auto::TracePoint => {
            let (c, n) = extras.split_once('/')?;
            return (symbol(c) && symbol(n)).then(|| format!("tracepoint:{extras}"));
        }
        Auto::No => return None,
    };
    symbol(extras).then(|| format!("{kind}:{extras}"))
}

/// The kind of an `--attach KIND:TARGET` spec, checked as the agent parses it, and whether it
/// attaches to the workload's pid.
fn attach_kind(spec: &str) -> Result<(&str, bool), ObjectError> {
    let bad = |why: &str| ObjectError::Attach { spec: spec.to_string(), why: why.to_string() };
    let (kind, target) = spec.split_once(':').ok_or_else(|| bad("not KIND:TARGET"))?;
    if target.is_empty() {
        return Err(bad("the target is empty"));
    }
    match kind {
        "kprobe" | "kretprobe" | "ksyscall" | "raw_tracepoint" | "raw_tp" | "tp_btf" | "fentry" | "fexit" => {
            Ok((kind, false))
        }
        "tracepoint" => match target.split_once('/') {
            Some((c, n)) if !c.is_empty() && !n.is_empty() => Ok((kind, false)),
            _ => Err(bad("a tracepoint is tracepoint:CATEGORY/NAME")),
        },
        "uprobe" | "uretprobe" => match target.rsplit_once(':') {
            Some((p, s)) if !p.is_empty() && !s.is_empty() => Ok((kind, true)),
            _ => Err(bad("a uprobe is uprobe:PATH:SYMBOL (a path in the guest, e.g. /bin/hello)")),
        },
        "perf_event" if target == "cpu-clock" => Ok((kind, true)),
        "perf_event" => Err(bad("the perf_event target is cpu-clock")),
        _ => Err(bad(
            "unknown kind; one of kprobe, kretprobe, ksyscall, tracepoint, raw_tracepoint, tp_btf, fentry, fexit, uprobe, \
             uretprobe, perf_event",
        )),
    }
}

/// Program types an attach kind takes (aya's program classes: a KProbe is kprobe or kretprobe).
fn accepts(kind: &str) -> &'static str {
    match kind {
        "kprobe" | "kretprobe" | "ksyscall" => "kprobe, kretprobe",
        "tracepoint" => "tracepoint",
        "raw_tracepoint" | "raw_tp" => "raw_tracepoint",
        "tp_btf" => "tp_btf",
        "fentry" => "fentry",
        "fexit" => "fexit",
        "uprobe" | "uretprobe" => "uprobe, uretprobe",
        _ => "perf_event",
    }
}

fn accepts_text(kind: &str) -> &'static str {
    match accepts(kind) {
        "kprobe, kretprobe" => "it takes SEC(\"kprobe\") or SEC(\"kretprobe\") programs",
        "tracepoint" => "it takes SEC(\"tracepoint\") programs",
        "raw_tracepoint" => "it takes SEC(\"raw_tracepoint\") programs",
        "tp_btf" => "it takes SEC(\"tp_btf\") programs",
        "fentry" => "it takes SEC(\"fentry\") programs",
        "fexit" => "it takes SEC(\"fexit\") programs",
        "uprobe, uretprobe" => "it takes SEC(\"uprobe\") or SEC(\"uretprobe\") programs",
        _ => "it takes SEC(\"perf_event\") programs",
    }
}

/// `openat-loop:N` or `hello:N` (N defaults to 1, as in the agent): N.
pub fn workload_count(spec: &str) -> Result<u64, ObjectError> {
    let bad = |why: &str| ObjectError::Workload { spec: spec.to_string(), why: why.to_string() };
    let (name, n) = spec.split_once(':').unwrap_or((spec, "1"));
    if !matches!(name, "openat-loop" | "hello") {
        return Err(bad("unknown workload; openat-loop:N or hello:N"));
    }
    let n: u64 = n.parse().map_err(|_| bad("the count is not a number"))?;
    if !(1..=1_000_000).contains(&n) {
        return Err(bad("the count is out of range 1..=1000000"));
    }
    Ok(n)
}

/// The steps the agent reported for each `bpf.object.load` result, one block per kernel.
pub fn render_steps(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    for r in results.iter().filter(|r| r.scenario == SCENARIO) {
        let _ = writeln!(out, "{} ({}): {}", r.kernel, r.detail["object"].as_str().unwrap_or("?"), r.status);
        for s in r.detail["steps"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let ok = s["ok"].as_bool().unwrap_or(false);
            let _ = write!(
                out,
                "  {:4}  {:<48} {:>9.2} ms",
                if ok { "ok" } else { "FAIL" },
                s["step"].as_str().unwrap_or("?"),
                s["ms"].as_f64().unwrap_or(0.0)
            );
            if let Some(e) = s["errno"].as_i64() {
                let _ = write!(out, "  errno {e}");
            }
            if let Some(m) = s["message"].as_str() {
                let _ = write!(out, "  {m}");
            }
            out.push('\n');
        }
        for c in &r.counts {
            let _ = writeln!(
                out,
                "  {:4}  {}: {} (expected {})",
                if c.observed == c.expected { "ok" } else { "FAIL" },
                c.what,
                c.observed,
                c.expected
            );
        }
        if r.status != kmatrix_proto::Status::Pass {
            if !r.reason.is_empty() {
                let _ = writeln!(out, "  reason: {}", r.reason);
            }
            if !r.excerpt.is_empty() {
                let _ = writeln!(out, "  verifier log (end):");
                for l in r.excerpt.lines() {
                    let _ = writeln!(out, "    {l}");
                }
            }
            // aya, like libbpf, turns a CO-RE relocation without a target into a call to this
            // helper number; the verifier's "invalid func" alone does not say so.
            if r.excerpt.contains("unknown#195896080") {
                let _ = writeln!(
                    out,
                    "  hint: a CO-RE relocation found no target on {} (the poisoned call 0xbad2310); \
                     `kmatrix core-check <object> --kernels {}` names the type and field",
                    r.kernel, r.kernel
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_and_workload_specs_are_checked_as_the_agent_parses_them() {
        assert_eq!(attach_kind("kprobe:do_sys_openat2").unwrap(), ("kprobe", false));
        assert_eq!(attach_kind("uprobe:/bin/hello:hello_greet").unwrap(), ("uprobe", true));
        assert_eq!(attach_kind("perf_event:cpu-clock").unwrap(), ("perf_event", true));
        for bad in ["kprobe", "kprobe:", "tracepoint:nocategory", "xdp:eth0", "uprobe:/bin/hello", "perf_event:x"] {
            let e = attach_kind(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        assert_eq!(workload_count("openat-loop:100").unwrap(), 100);
        assert_eq!(workload("hello:3").unwrap(), Workload::Builtin(3));
        let Workload::Command(argv, _) = workload("sh -c 'touch a && rm \"a b\"' x\\ y").unwrap() else {
            panic!("a command")
        };
        assert!(argv[0].ends_with("/sh"), "{argv:?}");
        assert_eq!(argv[1..], ["-c".to_string(), "touch a && rm \"a b\"".into(), "x y".into()]);
        assert!(workload("kmatrix-no-such-cmd --x").unwrap_err().to_string().contains("kmatrix-no-such-cmd"));
        assert!(workload("sh -c 'unterminated").unwrap_err().to_string().contains("unterminated single quote"));
        assert_eq!(workload_count("hello").unwrap(), 1);
        assert!(workload_count("openat-loop:0").is_err());
        assert!(workload_count("rm:1").unwrap_err().to_string().contains("rm:1"));
    }
}
