//! `bpf.ringbuf.*`: BPF output through a ring buffer (BPF_MAP_TYPE_RINGBUF, 5.8), drained by
//! the agent after the run.
//!
//! The run is `support::bpf_output::run_output`; this file is the ring buffer's [`Channel`].

use crate::bpf::event::KmEvent;
use crate::bpf::{self, Loaded};
use crate::scenario::meta::{Ctx, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::bpf::{events_excerpt, openat_meta};
use crate::scenario::support::bpf_output::{run_output, Channel, Output};
use anyhow::{Context, Result};
use aya::maps::RingBuf;

pub const OPENAT: Scenario = openat_meta("bpf.ringbuf.openat", "5.8")
    .requires(&[Req::BpfMapType("ringbuf")])
    .summary("BPF ring buffer output: N events with pid and filename, none dropped")
    .run(|ctx| run_output(ctx, bpf::RINGBUF, "ringbuf_openat", RingBufChannel));

/// The object's `km_ringbuf` map, read item by item.
struct RingBufChannel;

impl Channel for RingBufChannel {
    fn drain(&mut self, _ctx: &Ctx, l: &mut Loaded) -> Result<Output> {
        let map = l.ebpf.map_mut("km_ringbuf").context("ringbuf.bpf.o has no km_ringbuf map")?;
        let mut ring = RingBuf::try_from(map).context("km_ringbuf is not a ring buffer")?;
        let mut events = Vec::new();
        let mut short = 0;
        while let Some(item) = ring.next() {
            match KmEvent::from_bytes(&item) {
                Some(e) => events.push(e),
                None => short += 1,
            }
        }
        let raw = events_excerpt(&events, 5);
        Ok(Output { events, lost: short, raw })
    }
}
