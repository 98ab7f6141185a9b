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

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("read the ELF sections of {path}")]
    Elf {
        path: PathBuf,
        #[source]
        source: ElfError,
    },
    #[error("read {section} of {path}")]
    Btf {
        path: PathBuf,
        section: &'static str,
        #[source]
        source: BtfError,
    },
    #[error("read the kernel's BTF file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse the kernel's BTF file {path}")]
    KernelBtf {
        path: PathBuf,
        #[source]
        source: BtfError,
    },
}

/// Everything core-check found, for one object on every kernel.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub object: String,
    pub programs: Vec<String>,
    /// CO-RE relocation records in the object.
    pub relocations: usize,
    pub kernels: Vec<KernelReport>,
}

impl Report {
    /// Every program relocates on every kernel.
    pub fn ok(&self) -> bool {
        self.kernels.iter().all(|k| k.ok)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelReport {
    pub kernel: String,
    pub release: String,
    /// The BTF file the relocations were computed against.
    pub btf: Option<String>,
    pub ok: bool,
    /// A failure of the whole object on this kernel (aya refuses to load any of its programs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub programs: Vec<ProgramReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgramReport {
    pub program: String,
    pub kind: String,
    pub ok: bool,
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
    pub insn: usize,
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
