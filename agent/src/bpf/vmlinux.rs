//! The running kernel's BTF, parsed once per agent process rather than once per use.
//!
//! aya parses `/sys/kernel/btf/vmlinux` (~5 MB) in every `EbpfLoader::new()`, and the fentry,
//! fexit and tp_btf attaches and the multi-link objects need it parsed again: under TCG on Debian
//! 6.1 that was ~250 ms each time, most of every BPF scenario's attach time. One loader (its
//! configuration is aya's default and `load` leaves it unchanged, so sharing it changes nothing
//! a load sees) and one parsed copy serve every scenario of a boot. Not for the capability
//! probes, which walk the raw type section themselves (`bpf::btf`).
//!
//! A kernel without BTF of its own may come with an external one in the image (`kmatrix run
//! --btf FILE`, at [`EXTERNAL_BTF`]): the loader relocates against it instead, as libbpf does
//! with `btf_custom_path`. The kernel's own BTF always wins.

use super::btf::BTF_VMLINUX;
use super::Rejected;
use aya::{Btf, Ebpf, EbpfError, EbpfLoader, Endianness};
use kmatrix_proto::EXTERNAL_BTF;
use std::cell::{OnceCell, RefCell};

thread_local! {
    static LOADER: RefCell<Option<EbpfLoader<'static>>> = const { RefCell::new(None) };
    static BTF: OnceCell<Result<&'static Btf, Rejected>> = const { OnceCell::new() };
}

/// Do the one-time work now (the loader with its BTF, the second parsed copy, aya's feature
/// probes), before a snapshot is taken (`HostMsg::Warm`); milliseconds it took. A kernel
/// without BTF keeps its failure, said at first use as before.
pub fn warm() -> f64 {
    let t = std::time::Instant::now();
    let _ = aya::features();
    LOADER.with(|l| {
        l.borrow_mut().get_or_insert_with(loader);
    });
    let _ = btf();
    t.elapsed().as_secs_f64() * 1000.0
}

/// Load `bytes` (parse, CO-RE relocation against the kernel's BTF, maps) with the agent's one
/// loader, made on first use.
pub fn load(bytes: &[u8]) -> Result<Ebpf, EbpfError> {
    LOADER.with(|l| l.borrow_mut().get_or_insert_with(loader).load(bytes))
}

/// The external BTF the agent relocates against: only when the kernel has none of its own and
/// the image carries one.
pub fn external() -> Option<&'static str> {
    (!std::path::Path::new(BTF_VMLINUX).exists() && std::path::Path::new(EXTERNAL_BTF).exists()).then_some(EXTERNAL_BTF)
}

/// aya's loader: its default (the kernel's BTF), or the external BTF's when [`external`] says so.
fn loader() -> EbpfLoader<'static> {
    let mut l = EbpfLoader::new();
    if external().is_some() {
        // A BTF that does not parse leaves the loader without one: the load then fails as on a
        // kernel without BTF, and `btf()` says why.
        if let Ok(btf) = btf() {
            l.btf(Some(btf));
        }
    }
    l
}

/// The kernel's BTF, parsed on first use and kept for the agent's life (PID 1: it lives as long
/// as the guest). A failure is kept too and said again at every use.
pub fn btf() -> Result<&'static Btf, Rejected> {
    BTF.with(|c| {
        c.get_or_init(|| {
            let (path, parsed) = match external() {
                Some(p) => (p, Btf::parse_file(p, Endianness::default())),
                None => (BTF_VMLINUX, Btf::from_sys_fs()),
            };
            match parsed {
                Ok(btf) => Ok(&*Box::leak(Box::new(btf))),
                Err(e) => Err(Rejected::new(format!("read {path}"), &e)),
            }
        })
        .clone()
    })
}
