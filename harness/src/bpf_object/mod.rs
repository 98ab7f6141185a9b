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
//!
//! Section names are libbpf 1.x's ([`sections`]): an object whose programs sit in sections
//! aya-obj does not read (`ksyscall/`, `usdt/`, `kprobe.multi/`, `struct_ops/`, ...) is read
//! through aliases, and a program whose section names its target is attached to it without
//! `--attach`, as libbpf's auto-attach does.

#![warn(missing_docs)]

mod object;
mod plan;
pub mod sections;

pub use object::{contain, kind_of, open, parse, ObjProgram, Panicked, UserObject};
pub use plan::{plan, render_steps, workload, workload_count, Plan, Request, Workload};

use std::path::PathBuf;

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
