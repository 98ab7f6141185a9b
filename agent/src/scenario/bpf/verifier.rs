//! `bpf.verifier.*`: the loader's error paths. A program the verifier rejects must fail with
//! EACCES and a log that says why; an object that does not parse must be refused, naming it.
//!
//! Not for programs that load (every other `bpf.` scenario).

use crate::bpf::{self, Loaded, Object, Rejected};
use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::support::bpf::guarded;
use crate::scenario::support::verdict::{ms, verdict};
use crate::sys;
use anyhow::Result;
use aya::programs::TracePoint;
use kmatrix_proto::{ScenarioResult, Status};
use std::time::Instant;

/// The verifier must reject `reject.bpf.o` (a map value used without its NULL check) with
/// EACCES, and its log must say why; a truncated object must fail to parse, naming the object.
pub const REJECT: Scenario = Meta::new("bpf.verifier.reject", "4.7")
    .summary("a program the verifier rejects fails with EACCES and its log; a truncated object fails to parse")
    .run(reject);

fn reject(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let id = ctx.id();
    let t = Instant::now();
    // The object itself must load (maps, BTF): only the program's verification may fail.
    let mut l = match Loaded::new(bpf::REJECT, 0) {
        Ok(l) => l,
        Err(e) => return guarded(id, || Err(e)),
    };
    let outcome = l.program::<TracePoint>("reject_ctx_oob")?.load();
    let attach_ms = ms(t);
    let truncated =
        Object { name: "probes.bpf.o (truncated)", bytes: &bpf::PROBES.bytes[..bpf::PROBES.bytes.len() / 2] };
    let corrupt = match Loaded::new(truncated, 0) {
        Ok(_) => None,
        Err(e) => e.chain().find_map(|c| c.downcast_ref::<Rejected>()).map(|r| r.to_string()),
    };
    let mut problems = Vec::new();
    let (errno, log) = match outcome {
        Ok(()) => {
            problems.push("the verifier accepted reject_ctx_oob".to_string());
            (None, String::new())
        }
        Err(e) => {
            let rej = Rejected::program("load reject_ctx_oob", e);
            (rej.errno, rej.verifier_log)
        }
    };
    if errno.is_some() && errno != Some(libc::EACCES) {
        problems.push(format!("load failed with {}, expected EACCES", sys::errno_text(errno.unwrap_or(0))));
    }
    let says_why = log.contains("invalid bpf_context access");
    if errno.is_some() && !says_why {
        problems.push("verifier log does not say \"invalid bpf_context access\"".to_string());
    }
    match &corrupt {
        Some(msg) if msg.contains("truncated") => {}
        Some(msg) => problems.push(format!("truncated object refused without naming it: {msg}")),
        None => problems.push("a truncated object loaded".to_string()),
    }
    let mut r = verdict(id, Vec::new(), problems);
    r.errno = errno;
    r.timings.attach_ms = attach_ms;
    if r.status == Status::Pass {
        r.reason = "verifier rejected reject_ctx_oob with EACCES; truncated object refused".into();
    }
    r.detail = serde_json::json!({
        "object": bpf::REJECT.name,
        "verifier_log_lines": log.lines().count(),
        "corrupt_object": corrupt,
    });
    Ok(r.with_excerpt(&excerpt::tail(&log, 30)))
}
