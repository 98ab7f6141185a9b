//! `trace_marker` scenarios: strings written from user space come back through `trace`,
//! `trace_pipe` (consumed) and a separate instance's buffer, each exactly once and in order.

use super::{count, ms, verdict, Ctx, Req, Scenario};
use crate::excerpt;
use crate::tracefs::{trace, Tracefs};
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

pub const ALL: [&'static dyn Scenario; 3] = [&TraceMarker, &TracePipe, &Instance];

/// Write `n` markers `kmatrix-marker <nonce> <i>` through one fd of `rel`; returns the nonce.
fn write_markers(tfs: &Tracefs, rel: &str, n: u64) -> Result<String> {
    let nonce = format!("{:x}", crate::sys::since_start_ms() ^ 0x6b6d);
    let marker = tfs.open_write(rel)?;
    for i in 0..n {
        tfs.write_fd(&marker, rel, &format!("kmatrix-marker {nonce} {i}\n"))?;
    }
    Ok(nonce)
}

/// Marker indices found in `text` (the agent's own pid only), in the order they appear.
fn markers_in(text: &str, nonce: &str) -> (Vec<u64>, usize) {
    let parsed = trace::parse(text);
    let me = std::process::id() as i32;
    let prefix = format!("tracing_mark_write: kmatrix-marker {nonce} ");
    let seen = parsed
        .entries
        .iter()
        .filter(|e| e.pid == me)
        .filter_map(|e| e.body.strip_prefix(&prefix)?.trim().parse().ok())
        .collect();
    (seen, parsed.entries.len())
}

fn order_problem(seen: &[u64], n: u64) -> Vec<String> {
    if seen.len() as u64 == n && !seen.iter().copied().eq(0..n) {
        vec!["markers out of order".to_string()]
    } else {
        Vec::new()
    }
}

/// Markers appear in `trace` as `tracing_mark_write` entries.
pub struct TraceMarker;

impl Scenario for TraceMarker {
    fn id(&self) -> &'static str {
        "ftrace.trace_marker.roundtrip"
    }

    fn summary(&self) -> &'static str {
        "N strings written to trace_marker come back in trace as tracing_mark_write entries, in order"
    }

    fn since(&self) -> &'static str {
        // trace_marker came with ftrace, 2.6.27.
        "2.6.27"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "10")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::File("trace_marker")]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let run = Instant::now();
        let nonce = write_markers(&ctx.tfs, "trace_marker", n)?;
        let run_ms = ms(run);
        let text = ctx.tfs.read("trace")?;
        let (seen, total) = markers_in(&text, &nonce);
        let mut r = verdict(
            self.id(),
            vec![
                count("markers found in trace", n, seen.len() as u64),
                count("trace entries in total", n, total as u64),
            ],
            order_problem(&seen, n),
        );
        r.timings.run_ms = run_ms;
        r.detail = serde_json::json!({ "nonce": nonce, "pid": std::process::id() });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 5)))
    }
}

/// Markers read through `trace_pipe` are consumed: all `n` come out of the pipe, in order, and
/// `trace` is empty afterwards.
pub struct TracePipe;

impl Scenario for TracePipe {
    fn id(&self) -> &'static str {
        "ftrace.trace_pipe.marker"
    }

    fn summary(&self) -> &'static str {
        "N trace_marker strings read through trace_pipe: all N, in order, consumed from trace"
    }

    fn since(&self) -> &'static str {
        "2.6.27"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "10")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::File("trace_marker"), Req::File("trace_pipe")]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let run = Instant::now();
        let nonce = write_markers(&ctx.tfs, "trace_marker", n)?;
        // Non-blocking: trace_pipe blocks when empty, and EAGAIN is the end of what is there.
        let mut pipe = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(ctx.tfs.path("trace_pipe"))
            .context("open(trace_pipe, O_NONBLOCK) failed")?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => raw.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("read(trace_pipe) failed"),
            }
        }
        let run_ms = ms(run);
        let piped = String::from_utf8_lossy(&raw).into_owned();
        let (seen, _) = markers_in(&piped, &nonce);
        let left = trace::parse(&ctx.tfs.read("trace")?).entries.len() as u64;
        let mut r = verdict(
            self.id(),
            vec![
                count("markers read from trace_pipe", n, seen.len() as u64),
                count("entries left in trace after reading the pipe", 0, left),
            ],
            order_problem(&seen, n),
        );
        r.timings.run_ms = run_ms;
        r.detail = serde_json::json!({ "nonce": nonce });
        Ok(r.with_excerpt(&excerpt::head(&piped, 5)))
    }
}

/// An instance (`instances/kmatrix`) has its own buffer: markers written to its `trace_marker`
/// are in its `trace` and not in the global one.
pub struct Instance;

impl Scenario for Instance {
    fn id(&self) -> &'static str {
        "ftrace.instance.marker"
    }

    fn summary(&self) -> &'static str {
        "instances/kmatrix has its own buffer: N markers in its trace, none in the global one"
    }

    fn since(&self) -> &'static str {
        // Instances (mkdir under instances/) came in 3.10.
        "3.10"
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "10")]
    }

    fn requirements(&self) -> Vec<Req> {
        vec![Req::Tracefs, Req::File("instances"), Req::File("trace_marker")]
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let n = ctx.declared_count()?;
        let attach = Instant::now();
        ctx.tfs.make_instance("kmatrix")?;
        let attach_ms = ms(attach);
        let run = Instant::now();
        let nonce = write_markers(&ctx.tfs, "instances/kmatrix/trace_marker", n)?;
        let run_ms = ms(run);
        let text = ctx.tfs.read("instances/kmatrix/trace")?;
        let (seen, total) = markers_in(&text, &nonce);
        let global = trace::parse(&ctx.tfs.read("trace")?).entries.len() as u64;
        let mut r = verdict(
            self.id(),
            vec![
                count("markers in the instance's trace", n, seen.len() as u64),
                count("entries in the instance's trace", n, total as u64),
                count("entries in the global trace", 0, global),
            ],
            order_problem(&seen, n),
        );
        r.timings.attach_ms = attach_ms;
        r.timings.run_ms = run_ms;
        r.detail = serde_json::json!({ "instance": "kmatrix", "nonce": nonce });
        Ok(r.with_excerpt(&excerpt::head_entries(&text, 5)))
    }
}
