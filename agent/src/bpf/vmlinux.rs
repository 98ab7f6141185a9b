//! The running kernel's BTF, parsed once per agent process rather than once per use.
//!
//! aya parses `/sys/kernel/btf/vmlinux` (~5 MB) in every `EbpfLoader::new()`, and the fentry,
//! fexit and tp_btf attaches and the multi-link objects need it parsed again: under TCG on Debian
//! 6.1 that was ~250 ms each time, most of every BPF scenario's attach time. One loader (its
//! configuration is aya's default and `load` leaves it unchanged, so sharing it changes nothing
//! a load sees) and one parsed copy serve every scenario of a boot. Not for the capability
//! probes, which walk the raw type section themselves (`bpf::btf`).

use super::btf::BTF_VMLINUX;
use super::Rejected;
use aya::{Btf, Ebpf, EbpfError, EbpfLoader};
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
        l.borrow_mut().get_or_insert_with(EbpfLoader::new);
    });
    let _ = btf();
    t.elapsed().as_secs_f64() * 1000.0
}

/// Load `bytes` (parse, CO-RE relocation against the kernel's BTF, maps) with the agent's one
/// loader, made on first use.
pub fn load(bytes: &[u8]) -> Result<Ebpf, EbpfError> {
    LOADER.with(|l| l.borrow_mut().get_or_insert_with(EbpfLoader::new).load(bytes))
}

/// The kernel's BTF, parsed on first use and kept for the agent's life (PID 1: it lives as long
/// as the guest). A failure is kept too and said again at every use.
pub fn btf() -> Result<&'static Btf, Rejected> {
    BTF.with(|c| {
        c.get_or_init(|| match Btf::from_sys_fs() {
            Ok(btf) => Ok(Box::leak(Box::new(btf))),
            Err(e) => Err(Rejected::new(format!("read {BTF_VMLINUX}"), &e)),
        })
        .clone()
    })
}
