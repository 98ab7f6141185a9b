//! Multi-attach links, which aya 0.14 cannot make: kprobe_multi (BPF_TRACE_KPROBE_MULTI, 5.18)
//! and uprobe_multi (BPF_TRACE_UPROBE_MULTI, 6.6).
//!
//! The kernel only links a program to these if it was loaded with that expected attach type,
//! and aya loads kprobe programs without one. So the object is taken through aya-obj (parse,
//! CO-RE relocation against /sys/kernel/btf/vmlinux, map creation with aya's `MapData`, map and
//! call relocation: what `EbpfLoader` does), and the program load and BPF_LINK_CREATE are done
//! here with raw bpf(2) calls. [`supported`] asks the kernel the same question with a trivial
//! program first, so a kernel without the link type gives an `unsupported` with its errno
//! rather than a verifier error about a helper it also lacks. Not for programs aya can load.

use super::event::KmEvent;
use super::object::{read_counts, read_events, write_tgid, Counts, Object};
use super::rejected::Rejected;
use super::sys::{
    bpf_raw, load_with_log, owned, KprobeMultiAttr, UprobeMultiAttr, BPF_LINK_CREATE, BPF_TRACE_KPROBE_MULTI,
    BPF_TRACE_UPROBE_MULTI, PROG_KPROBE, RETURN_ZERO,
};
use anyhow::{Context, Result};
use aya::maps::{Map, MapData};
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// The two link types, with what results say about them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kprobe,
    Uprobe,
}

impl Kind {
    /// `enum bpf_attach_type` value.
    pub fn attach_type(self) -> u32 {
        match self {
            Kind::Kprobe => BPF_TRACE_KPROBE_MULTI,
            Kind::Uprobe => BPF_TRACE_UPROBE_MULTI,
        }
    }

    pub fn attach_type_name(self) -> &'static str {
        match self {
            Kind::Kprobe => "BPF_TRACE_KPROBE_MULTI",
            Kind::Uprobe => "BPF_TRACE_UPROBE_MULTI",
        }
    }

    /// The upstream release that added the link type.
    pub const fn since(self) -> &'static str {
        match self {
            Kind::Kprobe => "5.18",
            Kind::Uprobe => "6.6",
        }
    }
}

/// Where a link attaches: kernel symbols, or offsets in an executable for one pid.
pub enum Targets<'a> {
    Kernel { symbols: &'a [&'a str] },
    User { path: &'a str, offsets: &'a [u64], pid: u32 },
}

impl Targets<'_> {
    fn kind(&self) -> Kind {
        match self {
            Targets::Kernel { .. } => Kind::Kprobe,
            Targets::User { .. } => Kind::Uprobe,
        }
    }

    fn describe(&self) -> String {
        match self {
            Targets::Kernel { symbols } => symbols.join(","),
            Targets::User { path, offsets, pid } => {
                let offs: Vec<String> = offsets.iter().map(|o| format!("{o:#x}")).collect();
                format!("{path}:{} pid {pid}", offs.join(","))
            }
        }
    }
}

/// An object prepared by hand: maps created (tgid written), instructions relocated.
pub struct MultiObject {
    obj: aya_obj::Object,
    maps: HashMap<String, Map>,
    pub object: &'static str,
}

impl MultiObject {
    pub fn new(o: Object, tgid: u32) -> Result<MultiObject> {
        let step = format!("load object {}", o.name);
        let mut obj = aya_obj::Object::parse(o.bytes).map_err(|e| Rejected::new(step.clone(), &e))?;
        let btf = super::vmlinux::btf()?;
        obj.relocate_btf(btf).map_err(|e| Rejected::new(format!("{step}: CO-RE relocation"), &e))?;
        let mut defs: Vec<(String, aya_obj::Map)> = obj.maps.drain().collect();
        defs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut maps = HashMap::new();
        let mut created = Vec::new();
        for (name, mut def) in defs {
            // The object's BTF is not loaded into the kernel here (aya-obj's fixups for that are
            // internal to aya), so the maps are created without key/value type ids.
            if let aya_obj::Map::Btf(m) = &mut def {
                m.def.btf_key_type_id = 0;
                m.def.btf_value_type_id = 0;
            }
            let data = MapData::create(def.clone(), &name, None)
                .map_err(|e| Rejected::new(format!("{step}: create map {name}"), &e))?;
            created.push((name.clone(), data.fd().as_fd().as_raw_fd(), def));
            maps.insert(name, Map::from_map_data(data).context("unknown map type")?);
        }
        let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
        obj.relocate_maps(created.iter().map(|(n, fd, def)| (n.as_str(), *fd, def)), &text_sections)
            .map_err(|e| Rejected::new(format!("{step}: map relocation"), &e))?;
        obj.relocate_calls(&text_sections).map_err(|e| Rejected::new(format!("{step}: call relocation"), &e))?;
        let mut me = MultiObject { obj, maps, object: o.name };
        write_tgid(me.maps.get_mut("km_config").context("no km_config map")?, tgid)?;
        Ok(me)
    }

    /// BPF_PROG_LOAD of program `name` as a kprobe program expecting the `kind` link.
    pub fn load(&self, name: &str, kind: Kind) -> Result<OwnedFd, Rejected> {
        let step = format!("load {name} ({})", kind.attach_type_name());
        let Some(prog) = self.obj.programs.get(name) else {
            return Err(Rejected::new(step, &std::io::Error::other(format!("{} has no program {name}", self.object))));
        };
        let Some(func) = self.obj.functions.get(&prog.function_key()) else {
            return Err(Rejected::new(step, &std::io::Error::other("program without instructions")));
        };
        // SAFETY: bpf_insn is a plain 8-byte struct; the slice covers exactly the instructions.
        let insns: &[u64] =
            unsafe { std::slice::from_raw_parts(func.instructions.as_ptr().cast(), func.instructions.len()) };
        load_with_log(name, PROG_KPROBE, insns, &prog.license, kind.attach_type()).map_err(|(errno, log)| Rejected {
            step,
            errno: Some(errno),
            message: format!("BPF_PROG_LOAD: {}", crate::sys::errno_text(errno)),
            verifier_log: log,
        })
    }

    pub fn counts(&self) -> Result<Counts> {
        read_counts(self.maps.get("km_counts").context("no km_counts map")?)
    }

    pub fn events(&self, hits: u64) -> Result<Vec<KmEvent>> {
        read_events(self.maps.get("km_events").context("no km_events map")?, hits)
    }
}

/// BPF_LINK_CREATE of `prog` to `targets`, target i with cookie `cookies[i]`. Dropping the fd
/// detaches.
pub fn link(prog: BorrowedFd, targets: &Targets, cookies: &[u64]) -> Result<OwnedFd, Rejected> {
    let kind = targets.kind();
    let step = format!("BPF_LINK_CREATE({}) on {}", kind.attach_type_name(), targets.describe());
    let fail = |errno: i32| Rejected {
        step: step.clone(),
        errno: Some(errno),
        message: crate::sys::errno_text(errno),
        verifier_log: String::new(),
    };
    let n = match targets {
        Targets::Kernel { symbols } => symbols.len(),
        Targets::User { offsets, .. } => offsets.len(),
    };
    if cookies.len() != n {
        return Err(Rejected { message: format!("{} cookies for {n} targets", cookies.len()), ..fail(libc::EINVAL) });
    }
    let prog_fd = prog.as_raw_fd() as u32;
    let fd = match targets {
        Targets::Kernel { symbols } => {
            let names: Vec<CString> =
                symbols.iter().map(|s| CString::new(*s)).collect::<Result<_, _>>().map_err(|_| fail(libc::EINVAL))?;
            let ptrs: Vec<u64> = names.iter().map(|c| c.as_ptr() as u64).collect();
            let attr = KprobeMultiAttr {
                prog_fd,
                attach_type: kind.attach_type(),
                cnt: ptrs.len() as u32,
                syms: ptrs.as_ptr() as u64,
                cookies: cookies.as_ptr() as u64,
                ..Default::default()
            };
            bpf_raw(BPF_LINK_CREATE, &attr)
        }
        Targets::User { path, offsets, pid } => {
            let cpath = CString::new(*path).map_err(|_| fail(libc::EINVAL))?;
            let attr = UprobeMultiAttr {
                prog_fd,
                attach_type: kind.attach_type(),
                path: cpath.as_ptr() as u64,
                offsets: offsets.as_ptr() as u64,
                cookies: cookies.as_ptr() as u64,
                cnt: offsets.len() as u32,
                pid: *pid,
                ..Default::default()
            };
            bpf_raw(BPF_LINK_CREATE, &attr)
        }
    };
    owned(fd).map_err(fail)
}

/// Whether the kernel makes a `kind` link to `targets`: a trivial program (`r0 = 0; exit`)
/// loaded for it and linked, then closed at once. Err is the refused step with its errno.
pub fn supported(targets: &Targets) -> Result<(), Rejected> {
    let kind = targets.kind();
    let prog = load_with_log("kmatrix_probe", PROG_KPROBE, &RETURN_ZERO, c"GPL", kind.attach_type()).map_err(
        |(errno, log)| Rejected {
            step: format!("BPF_PROG_LOAD(kprobe, expected_attach_type {})", kind.attach_type_name()),
            errno: Some(errno),
            message: crate::sys::errno_text(errno),
            verifier_log: log,
        },
    )?;
    let n = match targets {
        Targets::Kernel { symbols } => symbols.len(),
        Targets::User { offsets, .. } => offsets.len(),
    };
    link(prog.as_fd(), targets, &vec![0; n]).map(drop)
}
