//! `kmatrix core-check`: a BPF object's CO-RE relocations computed against each kernel's BTF on
//! the host, without booting, and which program each failure breaks.
//!
//! The relocation itself is aya-obj's `Object::relocate_btf`, the code aya runs in the guest when
//! it loads the object, against the same BTF (the `.BTF` of the kernel's vmlinux is what the
//! guest reads from /sys/kernel/btf/vmlinux), so the verdict agrees with an in-guest load by
//! construction. What aya does not expose, this module adds: which relocation each instruction
//! came from, names for its type and access string (from the object's `.BTF`/`.BTF.ext`), why a
//! relocation found no target (from the kernel's BTF), and whether a failed one matters. A
//! relocation with no target is not an error to aya or libbpf: the instruction is poisoned (a
//! call to helper 0xbad2310) and the verifier refuses the program only if that instruction is
//! reachable. Behind `if (bpf_core_field_exists(...))` it is not: the relocated constant makes
//! the branch dead and the verifier prunes it. So each program's linked code is walked with its
//! constants propagated, as the verifier's branch pruning does.
//!
//! Here: the report model and its errors. The jobs, in the order data flows:
//! `records` (the object's sections, BTF and CO-RE records, read once), `relocate` (aya's
//! relocation and linking on one kernel, per-program outcome), `walk` (reachability of
//! poisoned instructions), `explain` (why a relocation found no target), `render` (the text
//! report). The BTF readers both sides are read with live in [`crate::btf`].
//!
//! What it is not: a verifier. A program whose relocations all resolve may still be refused
//! (bounds, helpers, attach target); `kmatrix run --bpf-object` finds that by loading it.

#![warn(missing_docs)]

mod explain;
mod records;
mod relocate;
mod render;
mod walk;

use std::path::PathBuf;

use serde::Serialize;

use crate::bpf_object::UserObject;
use crate::elf::ElfError;

pub use crate::btf::{BtfError, BtfTable};
pub use records::{object_info, ObjectInfo, RawReloc};
pub use relocate::check_kernel;
pub use render::render;

/// Why core-check could not read an object or a kernel's BTF.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The object's ELF section table is malformed.
    #[error("read the ELF sections of {path}")]
    Elf {
        /// The object file.
        path: PathBuf,
        /// The ELF reader's error.
        #[source]
        source: ElfError,
    },
    /// The object's `.BTF` or `.BTF.ext` is malformed.
    #[error("read {section} of {path}")]
    Btf {
        /// The object file.
        path: PathBuf,
        /// `.BTF` or `.BTF.ext`.
        section: &'static str,
        /// The BTF reader's error.
        #[source]
        source: BtfError,
    },
    /// A kernel's BTF file could not be read.
    #[error("read the kernel's BTF file {path}")]
    Read {
        /// The kernel's BTF file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A kernel's BTF file is not BTF the reader accepts.
    #[error("parse the kernel's BTF file {path}")]
    KernelBtf {
        /// The kernel's BTF file.
        path: PathBuf,
        /// The BTF reader's error.
        #[source]
        source: BtfError,
    },
}

/// Everything core-check found, for one object on every kernel.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The object's path.
    pub object: String,
    /// Its programs' names, sorted.
    pub programs: Vec<String>,
    /// CO-RE relocation records in the object.
    pub relocations: usize,
    /// One report per kernel, in the order they were given.
    pub kernels: Vec<KernelReport>,
}

impl Report {
    /// Every program relocates on every kernel.
    pub fn ok(&self) -> bool {
        self.kernels.iter().all(|k| k.ok)
    }
}

/// What became of the object on one kernel.
#[derive(Debug, Clone, Serialize)]
pub struct KernelReport {
    /// The kernel id.
    pub kernel: String,
    /// Its `uname -r`, which decides what aya would sanitise.
    pub release: String,
    /// The BTF file the relocations were computed against; `None` when the kernel has none and
    /// no `--btf` was given.
    pub btf: Option<String>,
    /// `btf` is the external one (`--btf FILE`): the kernel has no BTF of its own.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub external_btf: bool,
    /// Every program relocates on this kernel.
    pub ok: bool,
    /// A failure of the whole object on this kernel (aya refuses to load any of its programs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// One report per program of the object, sorted by name.
    pub programs: Vec<ProgramReport>,
}

/// What became of one program's relocations on one kernel.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramReport {
    /// The program's name.
    pub program: String,
    /// Its type from its ELF section (`kprobe`, `tracepoint`, `fentry`, ...).
    pub kind: String,
    /// No relocation of it is [`RelocStatus::Failed`] (and the object as a whole relocated).
    pub ok: bool,
    /// The relocations in the program's linked code (its callees' too), in `.BTF.ext` order.
    pub relocations: Vec<Reloc>,
}

/// What became of one relocation for one program on one kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelocStatus {
    /// Resolved against the kernel's BTF.
    Applied,
    /// No target, but the poisoned instruction is unreachable (a `bpf_core_field_exists` branch).
    Guarded,
    /// No target and reachable: the verifier refuses the program.
    Failed,
}

/// One CO-RE relocation of a program on one kernel, named and judged.
#[derive(Debug, Clone, Serialize)]
pub struct Reloc {
    /// `field_byte_offset`, `field_exists`, `type_size`, ...
    pub kind: &'static str,
    /// The object's type, with its flavour (`task_struct___old`).
    pub type_name: String,
    /// The raw access string (`0:3:1`).
    pub access: String,
    /// The access string with names (`task_struct___old.state`).
    pub spec: String,
    /// Function and instruction index in it.
    pub function: String,
    /// The instruction's index in its section (byte offset / 8).
    pub insn: usize,
    /// Applied, guarded or failed.
    pub status: RelocStatus,
    /// What the instruction became (`offset 2264`, `present`) or why it found no target.
    pub detail: String,
}

/// The report of `obj` over kernels already checked with [`check_kernel`].
pub fn report(obj: &UserObject, info: &ObjectInfo, kernels: Vec<KernelReport>) -> Report {
    Report {
        object: obj.path.display().to_string(),
        programs: obj.programs.iter().map(|p| p.name.clone()).collect(),
        relocations: info.relocs.len(),
        kernels,
    }
}
