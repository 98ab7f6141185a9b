//! A user's BPF object for `kmatrix run --bpf-object`: read and checked on the host before any
//! kernel boots, then planned as the agent's `bpf.object.load` scenario with the object copied
//! into each guest image at `/user/<file name>`.
//!
//! The host checks what it can decide without a kernel: the file is a BPF ELF object that aya-obj
//! (the parser aya uses in the guest) accepts, the program exists, the `--attach` and
//! `--workload` specs are well formed and the attach kind fits the program's type. Mistakes there
//! are bad input (exit 2) instead of a boot per kernel that ends in the same error. Whether the
//! kernel accepts the program (CO-RE, verifier, attach) is the guest's job; `core_check` computes
//! the CO-RE part without booting. This module neither boots nor judges results.

#![warn(missing_docs)]

use crate::image::ExtraFile;
use aya_obj::ProgramSection;
use kmatrix_proto::ScenarioResult;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The agent's scenario that loads an object from a path in the guest.
pub const SCENARIO: &str = "bpf.object.load";

/// Where users' objects sit in the guest.
pub const GUEST_DIR: &str = "/user";

/// `e_machine` of BPF objects.
const EM_BPF: u16 = 247;

/// Why a user's BPF object, or what the command line asks of it, cannot be used. Every message
/// names the file or the flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The file could not be read.
    #[error("cannot read BPF object {path}")]
    Read {
        /// The object file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the ELF magic.
    #[error("{path} is not an ELF file (it does not start with \\x7fELF): not a BPF object")]
    NotElf {
        /// The object file.
        path: PathBuf,
    },
    /// An ELF file for another machine than BPF.
    #[error("{path} is an ELF file for machine {machine}, not BPF ({EM_BPF}): build it with clang -target bpf")]
    NotBpf {
        /// The object file.
        path: PathBuf,
        /// Its `e_machine`.
        machine: u16,
    },
    /// aya-obj refused the object.
    #[error("{path} is not a BPF object aya can load: {detail}")]
    Parse {
        /// The object file.
        path: PathBuf,
        /// aya-obj's error.
        detail: String,
    },
    /// aya-obj panicked on the object (contained, so the harness goes on).
    #[error("{path} is not a BPF object aya can load: aya-obj failed on it ({message})")]
    AyaPanic {
        /// The object file.
        path: PathBuf,
        /// The panic's message.
        message: String,
    },
    /// The harness's ELF reader could not read the section headers.
    #[error("{path} is not a BPF object aya can load: its ELF sections are unreadable")]
    Elf {
        /// The object file.
        path: PathBuf,
        /// The ELF reader's error.
        #[source]
        source: crate::elf::ElfError,
    },
    /// The object's `.BTF` or `.BTF.ext` is malformed (checked before aya-obj sees it).
    #[error("{path} is not a BPF object aya can load: its {section} is malformed")]
    Btf {
        /// The object file.
        path: PathBuf,
        /// `.BTF` or `.BTF.ext`.
        section: &'static str,
        /// The BTF reader's error.
        #[source]
        source: crate::btf::BtfError,
    },
    /// The object holds no program.
    #[error("{path} has no BPF programs")]
    NoPrograms {
        /// The object file.
        path: PathBuf,
    },
    /// `--program` names a program the object does not have.
    #[error("{path} has no program {program:?}; its programs: {known}")]
    NoProgram {
        /// The object file.
        path: PathBuf,
        /// The name given.
        program: String,
        /// The object's programs, comma-separated.
        known: String,
    },
    /// The object has several programs and `--program` names none.
    #[error("{path} has {count} programs ({known}): say which with --program")]
    WhichProgram {
        /// The object file.
        path: PathBuf,
        /// How many programs it has.
        count: usize,
        /// The object's programs, comma-separated.
        known: String,
    },
    /// `--attach` is not `KIND:TARGET` of a kind kmatrix attaches.
    #[error("--attach {spec:?}: {why}")]
    Attach {
        /// The value given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// `--workload` is neither a built-in workload nor a host command that exists.
    #[error("--workload {spec:?}: {why}")]
    Workload {
        /// The value given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// The program's type does not fit the `--attach` kind.
    #[error("program {program} of {path} is a {kind} program, which --attach {spec:?} cannot attach ({wants})")]
    Mismatch {
        /// The object file.
        path: PathBuf,
        /// The program.
        program: String,
        /// Its type, from its section.
        kind: &'static str,
        /// The `--attach` value.
        spec: String,
        /// The program type the attach kind takes.
        wants: &'static str,
    },
    /// A program type the verifier only checks with an attach target, and no `--attach`.
    #[error("program {program} of {path} is a {kind} program: it needs --attach KIND:TARGET to be verified")]
    NeedsAttach {
        /// The object file.
        path: PathBuf,
        /// The program.
        program: String,
        /// Its type, from its section.
        kind: &'static str,
    },
    /// An attach that filters on the workload's pid, without `--workload`.
    #[error("--attach {spec:?} needs a --workload to attach to (its pid)")]
    NeedsWorkload {
        /// The `--attach` value.
        spec: String,
    },
    /// `--expect-runs N` without something to count runs of.
    #[error("--expect-runs {0} needs --attach and --workload: runs are counted while the workload runs")]
    NothingToCount(u64),
}

/// A program of the object, as aya-obj sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjProgram {
    /// The program's name (its function's name in the C source).
    pub name: String,
    /// The program type from its ELF section (`kprobe`, `tracepoint`, `fentry`, ...).
    pub kind: &'static str,
}

/// A user's object, read and parsed.
#[derive(Debug, Clone)]
pub struct UserObject {
    /// The file as given.
    pub path: PathBuf,
    /// Its bytes, put into the guest image as they are.
    pub bytes: Vec<u8>,
    /// Sorted by name.
    pub programs: Vec<ObjProgram>,
    /// aya-obj's parse, for `core_check`.
    pub object: aya_obj::Object,
}

/// Read `path` and parse it as aya does in the guest.
pub fn open(path: &Path) -> Result<UserObject, ObjectError> {
    let bytes = std::fs::read(path).map_err(|source| ObjectError::Read { path: path.to_path_buf(), source })?;
    parse(path, bytes)
}

/// [`open`] on bytes already read; `path` names them in errors.
pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<UserObject, ObjectError> {
    let path = path.to_path_buf();
    let Some(machine) = crate::elf::machine(&bytes) else {
        return Err(ObjectError::NotElf { path });
    };
    if machine != EM_BPF {
        return Err(ObjectError::NotBpf { path, machine });
    }
    check_btf(&path, &bytes)?;
    let object = contain(|| aya_obj::Object::parse(&bytes))
        .map_err(|Panicked(message)| ObjectError::AyaPanic { path: path.clone(), message })?
        .map_err(|e| ObjectError::Parse { detail: parse_detail(&e), path: path.clone() })?;
    let mut programs: Vec<ObjProgram> =
        object.programs.iter().map(|(name, p)| ObjProgram { name: name.clone(), kind: kind_of(&p.section) }).collect();
    programs.sort_by(|a, b| a.name.cmp(&b.name));
    if programs.is_empty() {
        return Err(ObjectError::NoPrograms { path });
    }
    Ok(UserObject { path, bytes, programs, object })
}

/// Read the object's `.BTF` and `.BTF.ext` with the harness's readers first: aya-obj 0.3 panics
/// on some malformed ones (a `.BTF.ext` part that ends inside a record, a string offset past the
/// string table), and a bad object is bad input, not a crash. aya reads `.BTF.ext` only with a
/// `.BTF`, each the first section of that name.
fn check_btf(path: &Path, bytes: &[u8]) -> Result<(), ObjectError> {
    let elf_err = |source| ObjectError::Elf { path: path.to_path_buf(), source };
    let sections = crate::elf::Elf::parse(bytes).and_then(|e| e.sections()).map_err(elf_err)?;
    let find = |name: &str| sections.iter().find(|s| s.name == name.as_bytes());
    let Some(btf) = find(".BTF") else { return Ok(()) };
    let btf_err = |section, source| ObjectError::Btf { path: path.to_path_buf(), section, source };
    let table = crate::btf::BtfTable::parse(btf.data).map_err(|e| btf_err(".BTF", e))?;
    if let Some(ext) = find(".BTF.ext") {
        crate::btf::ext::BtfExt::parse(ext.data, &table).map_err(|e| btf_err(".BTF.ext", e))?;
    }
    Ok(())
}

thread_local! {
    /// Set while [`contain`] runs on this thread: its panics are reported by it, not the hook.
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f`, aya-obj code over a user's object, with a panic turned into its message. aya-obj 0.3
/// indexes slices with offsets and sizes read from the file in many places (a symbol that lies
/// past its section, a `.BTF.ext` part that ends inside a record): `check_btf` names the
/// cases it can first, and this keeps the rest from ending kmatrix with exit 101 instead of a
/// clear error. Only this thread's panics inside `f` are kept quiet; every other panic still
/// goes to the hook that was there before (the default one, or libFuzzer's, which aborts).
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(std::cell::Cell::get) {
                before(info);
            }
        }));
    });
    let was = CONTAINED.with(|c| c.replace(true));
    // aya-obj's parse and relocation read the object and write only what they return.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(was));
    r.map_err(|payload| {
        Panicked(
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into()),
        )
    })
}

/// A panic [`contain`] caught, with its message (aya-obj's, e.g. an index out of bounds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Panicked(pub String);

/// aya-obj's ELF errors keep their cause out of the source chain: spell it out.
fn parse_detail(e: &aya_obj::ParseError) -> String {
    let mut s = match e {
        aya_obj::ParseError::ElfError(inner) => format!("{e}: {inner}"),
        aya_obj::ParseError::SectionError { index, error } => format!("error parsing section {index}: {error}"),
        _ => e.to_string(),
    };
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        let _ = write!(s, ": {c}");
        cur = c.source();
    }
    s
}

/// The program type of an aya-obj section, as the user wrote it.
pub fn kind_of(s: &ProgramSection) -> &'static str {
    match s {
        ProgramSection::KProbe => "kprobe",
        ProgramSection::KRetProbe => "kretprobe",
        ProgramSection::UProbe { .. } => "uprobe",
        ProgramSection::URetProbe { .. } => "uretprobe",
        ProgramSection::TracePoint => "tracepoint",
        ProgramSection::RawTracePoint => "raw_tracepoint",
        ProgramSection::BtfTracePoint => "tp_btf",
        ProgramSection::FEntry { .. } => "fentry",
        ProgramSection::FExit { .. } => "fexit",
        ProgramSection::PerfEvent => "perf_event",
        ProgramSection::SocketFilter => "socket",
        ProgramSection::Xdp { .. } => "xdp",
        ProgramSection::SchedClassifier => "classifier",
        ProgramSection::Lsm { .. } | ProgramSection::LsmCgroup => "lsm",
        ProgramSection::Iter { .. } => "iter",
        ProgramSection::Extension => "freplace",
        _ => "other",
    }
}

/// Program types the agent verifies without an attach target (aya's `load()` takes no target).
fn loads_without_target(kind: &str) -> bool {
    matches!(
        kind,
        "kprobe"
            | "kretprobe"
            | "uprobe"
            | "uretprobe"
            | "tracepoint"
            | "raw_tracepoint"
            | "perf_event"
            | "socket"
            | "xdp"
            | "classifier"
    )
}

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
    /// A host command line (program resolved on the host, arguments as given).
    Command(Vec<String>),
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
    let argv = shell_words(spec).map_err(|e| bad(e.to_string()))?;
    let Some(first) = argv.first() else { return Err(bad("empty command".into())) };
    let path = std::env::var("PATH").unwrap_or_default();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let resolved = crate::exec::resolve(first, &path, &cwd).map_err(|e| bad(e.to_string()))?;
    let mut full = vec![resolved.display().to_string()];
    full.extend(argv[1..].iter().cloned());
    Ok(Workload::Command(full))
}

/// Why a command line does not split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A `'` without its closing `'`.
    #[error("unterminated single quote")]
    SingleQuote,
    /// A `"` without its closing `"`.
    #[error("unterminated double quote")]
    DoubleQuote,
    /// A `\` with nothing after it to escape.
    #[error("a backslash at the end")]
    TrailingBackslash,
}

/// Plain words, 'single' and "double" quotes, backslash escapes; no expansion of any kind.
fn shell_words(s: &str) -> Result<Vec<String>, SplitError> {
    let (mut words, mut cur, mut any) = (Vec::new(), String::new(), false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                any = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(SplitError::SingleQuote),
                    }
                }
            }
            '"' => {
                any = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.push(chars.next().ok_or(SplitError::TrailingBackslash)?),
                        Some(c) => cur.push(c),
                        None => return Err(SplitError::DoubleQuote),
                    }
                }
            }
            '\\' => {
                any = true;
                cur.push(chars.next().ok_or(SplitError::TrailingBackslash)?);
            }
            c if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                any = true;
                cur.push(c);
            }
        }
    }
    if any {
        words.push(cur);
    }
    Ok(words)
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
    match &req.attach {
        Some(spec) => {
            let (kind, needs_pid) = attach_kind(spec)?;
            let wants = accepts(kind);
            if !wants.split(", ").any(|w| w == prog.kind) {
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
        None if !loads_without_target(prog.kind) => {
            return Err(ObjectError::NeedsAttach {
                path: obj.path.clone(),
                program: prog.name.clone(),
                kind: prog.kind,
            })
        }
        None => {}
    }
    let name = obj.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "object.bpf.o".into());
    let guest_path = format!("{GUEST_DIR}/{}", sanitize(&name));
    let mut params = BTreeMap::new();
    params.insert("object".to_string(), guest_path.clone());
    params.insert("program".to_string(), prog.name.clone());
    if let Some(a) = &req.attach {
        params.insert("attach".to_string(), a.clone());
    }
    match &wl {
        Some(Workload::Builtin(_)) => {
            params.insert("workload".to_string(), req.workload.clone().unwrap_or_default());
        }
        Some(Workload::Command(argv)) => {
            params.insert("workload_cmd".to_string(), serde_json::to_string(argv).unwrap_or_default());
        }
        None => {}
    }
    // A hook on the workload's own call runs once per iteration: that is the default check.
    // Without an attach nothing runs, so there is nothing to count.
    let expect = req.expect_runs.or(runs.filter(|_| req.attach.is_some()));
    if let Some(n) = expect {
        params.insert("expect_runs".to_string(), n.to_string());
    }
    Ok(Plan {
        program: prog.name.clone(),
        params,
        file: ExtraFile { path: guest_path, mode: 0o644, data: obj.bytes.clone() },
        host_root: matches!(wl, Some(Workload::Command(_))),
    })
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') { c } else { '_' }).collect()
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
        "kprobe" | "kretprobe" | "raw_tracepoint" | "raw_tp" | "tp_btf" | "fentry" | "fexit" => Ok((kind, false)),
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
            "unknown kind; one of kprobe, kretprobe, tracepoint, raw_tracepoint, tp_btf, fentry, fexit, uprobe, \
             uretprobe, perf_event",
        )),
    }
}

/// Program types an attach kind takes (aya's program classes: a KProbe is kprobe or kretprobe).
fn accepts(kind: &str) -> &'static str {
    match kind {
        "kprobe" | "kretprobe" => "kprobe, kretprobe",
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
    fn bad_files_are_named() {
        let p = Path::new("/x/garbage.o");
        let e = parse(p, b"definitely not an object".to_vec()).unwrap_err();
        assert!(matches!(e, ObjectError::NotElf { .. }));
        assert!(e.to_string().contains("/x/garbage.o"), "{e}");
        // An x86-64 ELF header (e_machine 62).
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        elf[18] = 62;
        let e = parse(p, elf).unwrap_err();
        assert!(matches!(e, ObjectError::NotBpf { machine: 62, .. }), "{e}");
        let e = open(Path::new("/no/such/file.bpf.o")).unwrap_err();
        assert!(e.to_string().contains("/no/such/file.bpf.o"), "{e}");
    }

    #[test]
    fn a_panic_in_aya_code_is_contained_and_the_thread_goes_on() {
        let r: Result<(), Panicked> = contain(|| {
            let v: Vec<u8> = Vec::new();
            let at = std::hint::black_box(4);
            let _ = v[at];
        });
        assert_eq!(r.unwrap_err().0, "index out of bounds: the len is 0 but the index is 4");
        assert_eq!(contain(|| 7), Ok(7));
        // Panics outside `contain` still panic.
        assert!(std::thread::spawn(|| contain(|| ()).map(|()| panic!("outside"))).join().is_err());
    }

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
        let Workload::Command(argv) = workload("sh -c 'touch a && rm \"a b\"' x\\ y").unwrap() else {
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
