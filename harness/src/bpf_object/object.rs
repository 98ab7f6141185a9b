//! The object itself: read, checked as an ELF for BPF with sound BTF, parsed by aya-obj (its
//! panics contained), and its programs with their types.
//!
//! What to do with a program (attach, workload, the scenario's parameters) is [`super::plan`]'s.

use super::{ObjectError, EM_BPF};
use aya_obj::ProgramSection;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A program of the object, as aya-obj sees it, with its section as the compiler wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjProgram {
    /// The program's name (its function's name in the C source).
    pub name: String,
    /// The program type from its ELF section (`kprobe`, `tracepoint`, `fentry`, ...); for a
    /// section aya-obj reads only under an alias, libbpf's name for it (`ksyscall`, `usdt`).
    pub kind: &'static str,
    /// The type aya-obj gives it (the alias's for an aliased section): what it loads as.
    pub aya_kind: &'static str,
    /// Its ELF section's name as written (`ksyscall/openat`).
    pub section: String,
}

/// A user's object, read and parsed.
#[derive(Debug, Clone)]
pub struct UserObject {
    /// The file as given.
    pub path: PathBuf,
    /// Its bytes, put into the guest image: as given, or with the program sections aya-obj
    /// does not read renamed ([`super::sections::alias`]).
    pub bytes: Vec<u8>,
    /// (section as written, the name aya-obj reads) for each renamed section.
    pub renamed: Vec<(String, String)>,
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
    let written = section_names(&bytes);
    let super::sections::Aliased { bytes, renamed } = super::sections::alias(&bytes);
    let object = contain(|| aya_obj::Object::parse(&bytes))
        .map_err(|Panicked(message)| ObjectError::AyaPanic { path: path.clone(), message })?
        .map_err(|e| ObjectError::Parse { detail: parse_detail(&e), path: path.clone() })?;
    let mut programs: Vec<ObjProgram> = object
        .programs
        .iter()
        .map(|(name, p)| {
            let section = written.get(p.section_index).cloned().unwrap_or_default();
            let aya_kind = kind_of(&p.section);
            let kind = match super::sections::lookup(&section) {
                Some((def, _)) if renamed.iter().any(|(old, _)| *old == section) => def.prefix,
                _ => aya_kind,
            };
            ObjProgram { name: name.clone(), kind, aya_kind, section }
        })
        .collect();
    programs.sort_by(|a, b| a.name.cmp(&b.name));
    if programs.is_empty() {
        return Err(ObjectError::NoPrograms { path });
    }
    Ok(UserObject { path, bytes, renamed, programs, object })
}

/// Section names by index, as written (empty where unreadable).
fn section_names(bytes: &[u8]) -> Vec<String> {
    crate::elf::Elf::parse(bytes)
        .and_then(|e| e.sections())
        .map(|s| s.iter().map(|s| String::from_utf8_lossy(s.name).into_owned()).collect())
        .unwrap_or_default()
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
pub(super) fn loads_without_target(kind: &str) -> bool {
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
}
