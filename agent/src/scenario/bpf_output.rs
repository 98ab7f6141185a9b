//! Getting events out of BPF: a ring buffer (5.8), a perf event array (the older way), and
//! bpf_trace_printk read back from trace_pipe (the seeds' TRACEPOINT_PROBE example). Each
//! program sits on syscalls/sys_enter_openat filtered to `openat-loop`, and every one of its N
//! events must come out, with the workload's pid and file name, and none lost.

use super::bpf::{attach, detach, guarded, openat_summary, release, reqs, Hook, OpenatWorkload};
use super::{count, ms, openat, verdict, Ctx, Req, Scenario};
use crate::bpf::event::KmEvent;
use crate::bpf::{self, Loaded, Object};
use crate::excerpt;
use anyhow::{Context, Result};
use aya::maps::perf::PerfEvent;
use aya::maps::{PerfEventArray, RingBuf};
use kmatrix_proto::ScenarioResult;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    RingBuf,
    PerfBuffer,
    TracePrintk,
}

pub struct OutputBpf {
    channel: Channel,
}

pub const RINGBUF: OutputBpf = OutputBpf { channel: Channel::RingBuf };
pub const PERF_BUFFER: OutputBpf = OutputBpf { channel: Channel::PerfBuffer };
pub const TRACE_PRINTK: OutputBpf = OutputBpf { channel: Channel::TracePrintk };

/// Pages per CPU of the perf buffers: 256 KiB, room for ~2000 events of 112 bytes.
const PERF_PAGES: usize = 64;

impl OutputBpf {
    fn parts(&self) -> (Object, &'static str) {
        match self.channel {
            Channel::RingBuf => (bpf::RINGBUF, "ringbuf_openat"),
            Channel::PerfBuffer => (bpf::PERFBUF, "perfbuf_openat"),
            Channel::TracePrintk => (bpf::PRINTK, "printk_openat"),
        }
    }
}

/// What came out of the channel: events (or printk lines as names), records lost, raw text.
struct Output {
    events: Vec<KmEvent>,
    lost: u64,
    raw: String,
}

impl Scenario for OutputBpf {
    fn id(&self) -> &'static str {
        match self.channel {
            Channel::RingBuf => "bpf.ringbuf.openat",
            Channel::PerfBuffer => "bpf.perf_buffer.openat",
            Channel::TracePrintk => "bpf.trace_printk.openat",
        }
    }

    fn since(&self) -> &'static str {
        match self.channel {
            Channel::RingBuf => "5.8",
            Channel::PerfBuffer => "4.4",
            Channel::TracePrintk => "4.1",
        }
    }

    fn summary(&self) -> &'static str {
        match self.channel {
            Channel::RingBuf => "BPF ring buffer output: N events with pid and filename, none dropped",
            Channel::PerfBuffer => "BPF perf event array output: N events with pid and filename, none lost",
            Channel::TracePrintk => "bpf_trace_printk from a tracepoint program read back from trace_pipe: N lines",
        }
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "100")]
    }

    fn requirements(&self) -> Vec<Req> {
        let mut r = reqs(openat::OPENAT_LOOP);
        if self.channel == Channel::TracePrintk {
            r.push(Req::File("trace_pipe"));
        }
        r
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let id = self.id();
        guarded(id, || {
            let w = OpenatWorkload::start(ctx)?;
            let pid = w.pid();
            let (object, program) = self.parts();
            if self.channel == Channel::TracePrintk {
                openat::fit_buffer(ctx, w.n, 160)?;
            }
            let hook = Hook::TracePoint("syscalls", "sys_enter_openat");
            let t = Instant::now();
            let mut l = Loaded::new(object, pid)?;
            // The perf buffers must be open before the first event, or the output has nowhere to go.
            let mut perf = match self.channel {
                Channel::PerfBuffer => Some(open_perf_buffers(&mut l)?),
                _ => None,
            };
            let load_ms = attach(&mut l, program, &hook)?;
            let printk_event = match self.channel {
                Channel::TracePrintk => Some(printk_event_on(ctx)?),
                _ => None,
            };
            let attach_ms = ms(t);
            let (done, run_ms) = release(w.running, ctx)?;
            let t = Instant::now();
            detach(&mut l, program)?;
            let detach_ms = ms(t);
            let out = match self.channel {
                Channel::RingBuf => drain_ringbuf(&mut l)?,
                Channel::PerfBuffer => drain_perf(perf.as_mut().context("perf buffers not open")?),
                Channel::TracePrintk => read_trace_pipe(ctx)?,
            };
            let counts = l.counts()?;
            drop(perf);
            drop(l);

            let (summary, problems) = openat_summary(&done);
            let mine = out.events.iter().filter(|e| e.pid == pid && e.tgid == pid).count() as u64;
            let named = out.events.iter().filter(|e| e.pid == pid && e.name() == w.path).count() as u64;
            let n = w.n;
            let c = vec![
                count("openat calls made by the workload", n, summary.calls),
                count(format!("{program} hits of the workload"), n, counts.hits),
                count("records received", n, out.events.len() as u64),
                count(format!("records with pid {pid}"), n, mine),
                count(format!("records with pid {pid} and filename {:?}", w.path), n, named),
                count("records the program could not output", 0, counts.dropped),
                count("records lost by the channel", 0, out.lost),
            ];
            let mut r = verdict(id, c, problems);
            r.timings.attach_ms = attach_ms;
            r.timings.run_ms = run_ms;
            r.timings.detach_ms = detach_ms;
            r.detail = serde_json::json!({
                "object": object.name,
                "program": program,
                "hook": hook.describe(),
                "pid": pid,
                "verifier_load_ms": load_ms,
                "hits_filtered_out": counts.others,
                "bpf_trace_printk_event": printk_event,
            });
            Ok(r.with_excerpt(&out.raw))
        })
    }
}

fn drain_ringbuf(l: &mut Loaded) -> Result<Output> {
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
    let raw = super::bpf::events_excerpt(&events, 5);
    Ok(Output { events, lost: short, raw })
}

type PerfBuffers = Vec<aya::maps::perf::PerfEventArrayBuffer<aya::maps::MapData>>;

fn open_perf_buffers(l: &mut Loaded) -> Result<PerfBuffers> {
    let map = l.ebpf.take_map("km_perf").context("perfbuf.bpf.o has no km_perf map")?;
    let mut array = PerfEventArray::try_from(map).context("km_perf is not a perf event array")?;
    let cpus = aya::util::online_cpus().map_err(|(what, e)| anyhow::Error::new(e).context(format!("read {what}")))?;
    cpus.into_iter()
        .map(|cpu| array.open(cpu, Some(PERF_PAGES)).with_context(|| format!("open perf buffer of cpu {cpu} failed")))
        .collect()
}

fn drain_perf(buffers: &mut PerfBuffers) -> Output {
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
    let raw = super::bpf::events_excerpt(&events, 5);
    Output { events, lost, raw }
}

const PRINTK_ENABLE: &str = "events/bpf_trace/bpf_trace_printk/enable";

/// Make sure the bpf_trace/bpf_trace_printk event is on before the workload runs. Loading a
/// program that calls bpf_trace_printk() turns it on, but since upstream moved that
/// trace_set_clr_event() to a work item (2025, a lock-order fix backported to stable, so Debian
/// 6.12 has it) it can happen after the workload's first calls, whose lines are then lost (seen
/// under TCG: 99 or 0 of 100). So wait for it, then turn it on ourselves; the answer says which.
fn printk_event_on(ctx: &mut Ctx) -> Result<&'static str> {
    let deadline = Instant::now() + std::time::Duration::from_millis(500);
    loop {
        if ctx.tfs.read(PRINTK_ENABLE)?.trim() == "1" {
            return Ok("enabled by the kernel at load");
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    ctx.tfs.write(PRINTK_ENABLE, "1")?;
    Ok("not enabled 500 ms after load; enabled by the agent")
}

/// Read what trace_pipe holds now (without blocking) and turn each `kmatrix-openat pid=P
/// path=F` line into an event (pid, name) for the common checks.
fn read_trace_pipe(ctx: &Ctx) -> Result<Output> {
    let file = ctx.tfs.path("trace_pipe");
    let mut pipe = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&file)
        .with_context(|| format!("open({}) failed", file.display()))?;
    let mut text = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => text.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("read({}) failed", file.display())),
        }
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let events = printk_events(&text);
    let mut raw = excerpt::head(&text, 10);
    if events.is_empty() {
        // Say where the lines could have gone: the event bpf_trace_printk enables, the buffer.
        let enable = ctx.tfs.read("events/bpf_trace/bpf_trace_printk/enable").unwrap_or_else(|e| e.to_string());
        let on = ctx.tfs.read("tracing_on").unwrap_or_else(|e| e.to_string());
        let trace = ctx.tfs.read("trace").unwrap_or_default();
        raw = format!(
            "trace_pipe held no kmatrix-openat line; bpf_trace_printk enable={} tracing_on={}\n{raw}\n--- trace:\n{}",
            enable.trim(),
            on.trim(),
            excerpt::head(&trace, 20)
        );
    }
    Ok(Output { events, lost: 0, raw })
}

/// Events from `kmatrix-openat pid=P path=F` trace lines.
fn printk_events(text: &str) -> Vec<KmEvent> {
    text.lines()
        .filter_map(|line| {
            let msg = &line[line.find("kmatrix-openat ")?..];
            let mut pid = None;
            let mut path = None;
            for kv in msg.split_whitespace().skip(1) {
                match kv.split_once('=') {
                    Some(("pid", v)) => pid = v.parse::<u32>().ok(),
                    Some(("path", v)) => path = Some(v),
                    _ => {}
                }
            }
            let (pid, path) = (pid?, path?);
            let mut e = KmEvent { pid, tgid: pid, ..Default::default() };
            let len = path.len().min(e.name.len() - 1);
            e.name[..len].copy_from_slice(&path.as_bytes()[..len]);
            Some(e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printk_lines_become_events() {
        let text = "     openat-loop-93      [000] d..31     5.123456: bpf_trace_printk: kmatrix-openat pid=93 path=/tmp/kmatrix-openat\n\
                    <...>-1 [000] ..... 1.0: bpf_trace_printk: something else\n";
        let ev = printk_events(text);
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].pid, ev[0].name()), (93, "/tmp/kmatrix-openat".to_string()));
    }
}
