//! `bpf.perf_buffer.*`: BPF output through a perf event array (BPF_MAP_TYPE_PERF_EVENT_ARRAY,
//! one ring per CPU, the way before ring buffers), opened before the first event.
//!
//! The run is `support::bpf_output::run_output`; this file is the perf buffers' [`Channel`].

use crate::bpf::event::KmEvent;
use crate::bpf::{self, Loaded};
use crate::scenario::meta::{Ctx, Scenario};
use crate::scenario::support::bpf::PERF_OUTPUT_SINCE;
use crate::scenario::support::bpf::{events_excerpt, openat_meta};
use crate::scenario::support::bpf_output::{run_output, Channel, Output};
use anyhow::{Context, Result};
use aya::maps::perf::{PerfEvent, PerfEventArrayBuffer};
use aya::maps::{MapData, PerfEventArray};

/// Pages per CPU of the perf buffers: 256 KiB, room for ~2000 events of 112 bytes.
const PERF_PAGES: usize = 64;

pub const OPENAT: Scenario = openat_meta("bpf.perf_buffer.openat", PERF_OUTPUT_SINCE)
    .summary("BPF perf event array output: N events with pid and filename, none lost")
    .run(|ctx| run_output(ctx, bpf::PERFBUF, "perfbuf_openat", PerfBuffers::default()));

/// The per-CPU buffers of the object's `km_perf` map, once opened.
#[derive(Default)]
struct PerfBuffers(Option<Vec<PerfEventArrayBuffer<MapData>>>);

impl Channel for PerfBuffers {
    /// The buffers must be open before the first event, or the output has nowhere to go.
    fn open(&mut self, l: &mut Loaded) -> Result<()> {
        let map = l.ebpf.take_map("km_perf").context("perfbuf.bpf.o has no km_perf map")?;
        let mut array = PerfEventArray::try_from(map).context("km_perf is not a perf event array")?;
        let cpus =
            aya::util::online_cpus().map_err(|(what, e)| anyhow::Error::new(e).context(format!("read {what}")))?;
        let buffers = cpus
            .into_iter()
            .map(|cpu| {
                array.open(cpu, Some(PERF_PAGES)).with_context(|| format!("open perf buffer of cpu {cpu} failed"))
            })
            .collect::<Result<_>>()?;
        self.0 = Some(buffers);
        Ok(())
    }

    fn drain(&mut self, _ctx: &Ctx, _l: &mut Loaded) -> Result<Output> {
        let buffers = self.0.as_mut().context("perf buffers not open")?;
        let mut events = Vec::new();
        let mut lost = 0;
        for buf in buffers.iter_mut() {
            buf.for_each(|ev| match ev {
                PerfEvent::Sample { head, tail } => {
                    let bytes = [head, tail].concat();
                    match KmEvent::from_bytes(&bytes) {
                        Some(e) => events.push(e),
                        None => lost += 1,
                    }
                }
                PerfEvent::Lost { count } => lost += count,
            });
        }
        let raw = events_excerpt(&events, 5);
        Ok(Output { events, lost, raw })
    }
}
