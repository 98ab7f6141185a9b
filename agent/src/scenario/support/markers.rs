//! `trace_marker` strings for the scenarios that read them back (through `trace`, `trace_pipe`,
//! an instance): writing N numbered markers with a nonce, and finding them again in order.
//!
//! Markers are written by the agent itself, so the entries are filtered to the agent's pid.

use crate::scenario::meta::{Ctx, Meta};
use crate::scenario::req::Req;
use crate::tracefs::{trace, Tracefs};
use anyhow::Result;
use std::time::Instant;

/// The markers scenarios' parameters: 10 markers unless `count` says otherwise.
pub const PARAMS: &[(&str, &str)] = &[("count", "10")];

impl Meta {
    /// A scenario whose workload is the agent writing N markers: `trace_marker` required after
    /// the scenario's own requirements ([`Meta::requires_last`]), and the count ([`PARAMS`]).
    pub const fn writes_markers(self) -> Meta {
        self.requires_last(Req::File("trace_marker")).params(PARAMS)
    }
}

/// Write the scenario's declared count N of markers to `rel` ([`write_markers`]): N, the nonce
/// and when the writes began (the start of the run).
pub fn write_declared(ctx: &Ctx, rel: &str) -> Result<(u64, String, Instant)> {
    let n = ctx.declared_count()?;
    let run = Instant::now();
    Ok((n, write_markers(&ctx.tfs, rel, n)?, run))
}

/// Write `n` markers `kmatrix-marker <nonce> <i>` through one fd of `rel`; returns the nonce.
pub fn write_markers(tfs: &Tracefs, rel: &str, n: u64) -> Result<String> {
    let nonce = format!("{:x}", crate::sys::since_start_ms() ^ 0x6b6d);
    let marker = tfs.open_write(rel)?;
    for i in 0..n {
        tfs.write_fd(&marker, rel, &format!("kmatrix-marker {nonce} {i}\n"))?;
    }
    Ok(nonce)
}

/// Marker indices found in `text` (the agent's own pid only), in the order they appear, and the
/// number of entries in `text`.
pub fn markers_in(text: &str, nonce: &str) -> (Vec<u64>, usize) {
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

/// A problem when all `n` markers came back but not as 0, 1, ..., n-1.
pub fn order_problem(seen: &[u64], n: u64) -> Vec<String> {
    if seen.len() as u64 == n && !seen.iter().copied().eq(0..n) {
        vec!["markers out of order".to_string()]
    } else {
        Vec::new()
    }
}
