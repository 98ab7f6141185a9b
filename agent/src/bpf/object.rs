//! kmatrix's own BPF objects and loading objects with aya: the embedded objects, [`Loaded`]
//! (an object parsed, CO-RE relocated against the kernel's BTF, maps created, the workload's
//! tgid written), and reading the maps every object shares with the agent.
//!
//! Every object includes `tracer-ebpf/include/kmatrix.h`, so every one has the same three maps:
//! `km_config` (the workload's tgid, written before anything is attached), `km_counts` (hits of
//! the workload, hits filtered out, output drops) and `km_events` ([`KmEvent`] per hit).
//! Attaching programs to hooks, and the checks on what they recorded, are the scenarios' job.

use super::event::{KmEvent, MAX_EVENTS};
use super::rejected::Rejected;
use anyhow::{Context, Result};
use aya::maps::{Array, Map, MapData};
use aya::programs::ProgramError;
use aya::{Ebpf, EbpfError};

/// An embedded BPF object.
#[derive(Clone, Copy)]
pub struct Object {
    /// File name of the object (`probes.bpf.o`), for results.
    pub name: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! object {
    ($file:literal) => {
        Object { name: $file, bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/", $file)) }
    };
}

/// kprobe, kretprobe, tracepoint, raw_tracepoint, uprobe, uretprobe, perf_event.
pub const PROBES: Object = object!("probes.bpf.o");
/// tp_btf, fentry, fexit.
pub const BTF: Object = object!("btf.bpf.o");
/// Output through a ring buffer.
pub const RINGBUF: Object = object!("ringbuf.bpf.o");
/// Output through a perf event array.
pub const PERFBUF: Object = object!("perfbuf.bpf.o");
/// bpf_trace_printk.
pub const PRINTK: Object = object!("printk.bpf.o");
/// CO-RE reads of task_struct.
pub const CORE: Object = object!("core.bpf.o");
/// Programs for kprobe_multi and uprobe_multi links.
pub const MULTI: Object = object!("multi.bpf.o");
/// Counting into a per-CPU array.
pub const PERCPU: Object = object!("percpu.bpf.o");
/// A biolatency-style histogram on the block request tracepoints.
pub const BLOCK: Object = object!("block.bpf.o");
/// A program the verifier must reject.
pub const REJECT: Object = object!("reject.bpf.o");

/// One object loaded with aya (maps created, CO-RE relocated; programs not loaded yet), with
/// the workload's tgid written to `km_config`.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub object: &'static str,
}

impl Loaded {
    /// Parse, relocate against the kernel's BTF and create the maps of `obj`; then filter on
    /// `tgid`. A refusal is a [`Rejected`] in the error chain.
    pub fn new(obj: Object, tgid: u32) -> Result<Loaded> {
        let mut loaded = Loaded::open(obj.name, obj.bytes)?;
        let config = loaded.ebpf.map_mut("km_config").with_context(|| format!("{} has no km_config map", obj.name))?;
        write_tgid(config, tgid)?;
        Ok(loaded)
    }

    /// Any object (a user's): parsed, relocated, maps created; nothing assumed about its maps.
    pub fn open(name: &'static str, bytes: &[u8]) -> Result<Loaded> {
        let ebpf =
            super::vmlinux::load(bytes).map_err(|e: EbpfError| Rejected::new(format!("load object {name}"), &e))?;
        Ok(Loaded { ebpf, object: name })
    }

    /// A program of the object by function name, as aya's concrete type (`&mut KProbe`, ...).
    pub fn program<'a, T>(&'a mut self, name: &str) -> Result<&'a mut T>
    where
        &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
    {
        let object = self.object;
        let prog = self.ebpf.program_mut(name).with_context(|| format!("{object} has no program {name}"))?;
        prog.try_into().map_err(|e: ProgramError| Rejected::program(format!("program {name} of {object}"), e).into())
    }

    pub fn counts(&self) -> Result<Counts> {
        read_counts(self.ebpf.map("km_counts").with_context(|| format!("{} has no km_counts map", self.object))?)
    }

    /// The recorded events of `hits` hits (at most [`MAX_EVENTS`]).
    pub fn events(&self, hits: u64) -> Result<Vec<KmEvent>> {
        read_events(self.ebpf.map("km_events").with_context(|| format!("{} has no km_events map", self.object))?, hits)
    }
}

/// `km_counts` as the agent reads it after a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Hits of the workload (KM_HITS).
    pub hits: u64,
    /// Hits of other tasks that the tgid filter dropped (KM_OTHERS).
    pub others: u64,
    /// Events an output channel refused (KM_DROPPED).
    pub dropped: u64,
}

pub fn write_tgid(config: &mut Map, tgid: u32) -> Result<()> {
    write_config(config, 0, u64::from(tgid))
}

/// Slot `slot` of `km_config` (an object's own settings beyond the tgid in slot 0).
pub fn write_config(config: &mut Map, slot: u32, value: u64) -> Result<()> {
    let mut array: Array<&mut MapData, u64> = Array::try_from(config).context("km_config is not an array of u64")?;
    array.set(slot, value, 0).with_context(|| format!("bpf_map_update_elem(km_config[{slot}]) failed"))
}

pub fn read_counts(map: &Map) -> Result<Counts> {
    let array: Array<&MapData, u64> = Array::try_from(map).context("km_counts is not an array of u64")?;
    let get = |i: u32| array.get(&i, 0).with_context(|| format!("bpf_map_lookup_elem(km_counts[{i}]) failed"));
    Ok(Counts { hits: get(0)?, others: get(1)?, dropped: get(2)? })
}

pub fn read_events(map: &Map, hits: u64) -> Result<Vec<KmEvent>> {
    let array: Array<&MapData, KmEvent> = Array::try_from(map).context("km_events is not an array of km_event")?;
    (0..hits.min(MAX_EVENTS) as u32)
        .map(|i| array.get(&i, 0).with_context(|| format!("bpf_map_lookup_elem(km_events[{i}]) failed")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every embedded object parses on the host, with the programs and maps the agent names:
    /// catches a renamed C function or map before a guest does.
    #[test]
    fn embedded_objects_parse_with_their_programs_and_maps() {
        let cases: [(Object, &[&str]); 10] = [
            (
                PROBES,
                &[
                    "kprobe_openat",
                    "kretprobe_openat",
                    "tracepoint_openat",
                    "raw_tp_sys_enter",
                    "uprobe_hello_greet",
                    "uretprobe_hello_add",
                    "perf_event_cpu_clock",
                ],
            ),
            (BTF, &["tp_btf_sys_enter", "fentry_openat", "fexit_openat2", "fexit_open"]),
            (RINGBUF, &["ringbuf_openat"]),
            (PERFBUF, &["perfbuf_openat"]),
            (PRINTK, &["printk_openat"]),
            (CORE, &["core_task"]),
            (MULTI, &["kprobe_multi_openat", "uprobe_multi_hello"]),
            (REJECT, &["reject_ctx_oob"]),
            (PERCPU, &["percpu_openat"]),
            (BLOCK, &["block_issue", "block_complete"]),
        ];
        for (obj, programs) in cases {
            let parsed = aya_obj::Object::parse(obj.bytes).unwrap_or_else(|e| panic!("{}: {e}", obj.name));
            for p in programs {
                assert!(parsed.programs.contains_key(*p), "{} has no program {p}", obj.name);
            }
            for m in ["km_config", "km_counts", "km_events"] {
                assert!(parsed.maps.contains_key(m), "{} has no map {m}", obj.name);
            }
        }
    }

    #[test]
    fn a_truncated_object_is_a_parse_error_not_a_panic() {
        let bytes = &PROBES.bytes[..PROBES.bytes.len() / 2];
        assert!(aya_obj::Object::parse(bytes).is_err());
        assert!(aya_obj::Object::parse(b"not an ELF file").is_err());
    }
}
