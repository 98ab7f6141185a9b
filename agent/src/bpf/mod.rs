//! BPF in the guest: kmatrix's embedded objects loaded with aya (`object`), what a refusal by
//! the kernel looks like (`rejected`), the record every program writes (`event`), the links aya
//! 0.14 cannot make (`multi`), and probing which program, map and attach types the kernel
//! accepts for the capability record (`probe`, on the raw `bpf(2)` layer of `sys` and the BTF
//! lookups of `btf`).
//!
//! The objects are built from `tracer-ebpf/src/*.bpf.c` by build.rs. This module only declares
//! and re-exports; the scenarios and their checks are not here (`scenario/bpf/`).

mod btf;
pub mod event;
pub mod multi;
pub mod object;
mod probe;
pub mod rejected;
mod sys;
pub mod vmlinux;

pub use btf::BTF_VMLINUX;
pub use object::{Counts, Loaded, Object, BLOCK, BTF, CORE, MULTI, PERCPU, PERFBUF, PRINTK, PROBES, REJECT, RINGBUF};
pub use probe::{attach_probe, attach_types, map_types, probed_map_types, probed_prog_types, prog_types, ON_DEMAND};
pub use rejected::Rejected;
pub use sys::syscall_present;

/// Why the running kernel has no BTF to give (reason, evidence), or `None` when
/// `/sys/kernel/btf/vmlinux` is there: what CO-RE objects and the BTF-typed hooks (tp_btf,
/// fentry, fexit) need, said the same way wherever one is refused for it.
/// Neither the kernel's BTF nor an external one (`kmatrix run --btf`) to relocate CO-RE
/// objects against: why, and the evidence.
pub fn core_btf_absent() -> Option<(String, String)> {
    let (reason, evidence) = btf_absent()?;
    if vmlinux::external().is_some() {
        return None;
    }
    Some((reason, format!("{evidence}; no external BTF at {} (kmatrix run --btf FILE)", kmatrix_proto::EXTERNAL_BTF)))
}

pub fn btf_absent() -> Option<(String, String)> {
    if std::path::Path::new(btf::BTF_VMLINUX).exists() {
        return None;
    }
    let missing = format!("{} does not exist", btf::BTF_VMLINUX);
    let not_set = "no kernel BTF (CONFIG_DEBUG_INFO_BTF is not set)".to_string();
    Some(match debug_info_btf() {
        Some((Some(v), source)) if v == "n" => {
            (not_set, format!("{missing}; {source}: # CONFIG_DEBUG_INFO_BTF is not set"))
        }
        Some((Some(v), source)) => {
            ("no kernel BTF".to_string(), format!("{missing}, although {source} has CONFIG_DEBUG_INFO_BTF={v}"))
        }
        Some((None, source)) => {
            (not_set, format!("{missing}; {source} has no CONFIG_DEBUG_INFO_BTF line (the option came in 5.2)"))
        }
        None => ("no kernel BTF".to_string(), format!("{missing}; the guest has no config of this kernel to say why")),
    })
}

/// `CONFIG_DEBUG_INFO_BTF` of the running kernel (`None`: the config has no such line) and the
/// file that says it: the image's `/boot/config-<release>` (the package's config), read only
/// when the BTF is missing.
fn debug_info_btf() -> Option<(Option<String>, String)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let path = format!("/boot/config-{}", release.trim());
    let text = std::fs::read_to_string(&path).ok()?;
    let value = crate::kconfig::parse(&text, |n| n == "CONFIG_DEBUG_INFO_BTF").remove("CONFIG_DEBUG_INFO_BTF");
    Some((value, path))
}
