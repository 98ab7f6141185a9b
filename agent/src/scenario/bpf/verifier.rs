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

/// The verifier must reject `reject.bpf.o` (a read of its tracepoint context far past its end)
/// with EACCES, and its log must say why; a truncated object must be refused by the ELF parser.
pub const REJECT: Scenario = Meta::new("bpf.verifier.reject", "4.7")
    .summary("a program the verifier rejects fails with EACCES and its log; a truncated object fails to parse")
    .run(reject);

/// What the verifier's log must say about reject_ctx_oob (its refusal of the access).
const WHY: &str = "invalid bpf_context access";

/// How aya words an object its ELF parser refused (`EbpfError::ParseError`).
const PARSE_ERROR: &str = "error parsing BPF object";

fn reject(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let id = ctx.id();
    let t = Instant::now();
    // The object itself must load (maps, BTF): only the program's verification may fail.
    let mut l = match Loaded::new(bpf::REJECT, 0) {
        Ok(l) => l,
        Err(e) => return guarded(id, || Err(e)),
    };
    let refusal = l.program::<TracePoint>("reject_ctx_oob")?.load().err();
    let refusal = refusal.map(|e| Rejected::program("load reject_ctx_oob", e));
    let attach_ms = ms(t);
    let truncated = truncated();
    let corrupt = Loaded::new(truncated, 0).err();
    let mut problems = verifier_problems(refusal.as_ref());
    problems.extend(truncated_problems(truncated.name, corrupt.as_ref()));
    let (errno, log) = refusal.map_or((None, String::new()), |r| (r.errno, r.verifier_log));
    let mut r = verdict(id, Vec::new(), problems);
    r.errno = errno;
    r.timings.attach_ms = attach_ms;
    if r.status == Status::Pass {
        r.reason = "verifier rejected reject_ctx_oob with EACCES; truncated object refused by the ELF parser".into();
    }
    r.detail = serde_json::json!({
        "object": bpf::REJECT.name,
        "verifier_log_lines": log.lines().count(),
        "corrupt_object": corrupt.map(|e| format!("{e:#}")),
    });
    Ok(r.with_excerpt_tail(&excerpt::tail(&log, 30)))
}

/// The first half of probes.bpf.o: an ELF file cut off in the middle.
fn truncated() -> Object {
    Object { name: "probes.bpf.o, first half", bytes: &bpf::PROBES.bytes[..bpf::PROBES.bytes.len() / 2] }
}

/// What is wrong with the verifier's answer to reject_ctx_oob (`None`: it loaded): it must be a
/// refusal with EACCES whose log says why. Each check stands on its own: a refusal without an
/// errno fails the errno check and still has its log checked.
fn verifier_problems(refusal: Option<&Rejected>) -> Vec<String> {
    let Some(rej) = refusal else {
        return vec!["the verifier accepted reject_ctx_oob".to_string()];
    };
    let mut problems = Vec::new();
    if rej.errno != Some(libc::EACCES) {
        let got = rej.errno.map_or_else(|| "no errno".to_string(), sys::errno_text);
        problems.push(format!("load failed with {got}, expected EACCES: {rej}"));
    }
    if !rej.verifier_log.contains(WHY) {
        problems.push(format!("verifier log does not say {WHY:?}"));
    }
    problems
}

/// What is wrong with how the truncated object `object` was refused (`None`: it loaded): the
/// refusal must be the object step, in user space (no errno: the kernel never saw the object),
/// by aya's ELF parser.
fn truncated_problems(object: &str, outcome: Option<&anyhow::Error>) -> Vec<String> {
    let Some(e) = outcome else {
        return vec!["a truncated object loaded".to_string()];
    };
    let Some(rej) = e.chain().find_map(|c| c.downcast_ref::<Rejected>()) else {
        return vec![format!("the truncated object failed, but not as a refusal: {e:#}")];
    };
    let mut problems = Vec::new();
    if rej.step != format!("load object {object}") {
        problems.push(format!("the truncated object was refused at {:?}, not when loaded: {rej}", rej.step));
    }
    if let Some(errno) = rej.errno {
        problems.push(format!("the truncated object was refused by the kernel ({}): {rej}", sys::errno_text(errno)));
    }
    if !rej.message.starts_with(PARSE_ERROR) {
        problems.push(format!("the truncated object's refusal is not a parse error: {rej}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(step: &str, errno: Option<i32>, message: &str, log: &str) -> Rejected {
        Rejected { step: step.into(), errno, message: message.into(), verifier_log: log.into() }
    }

    #[test]
    fn each_verifier_check_fails_on_its_own() {
        let log = "0: (79) r1 = *(u64 *)(r1 +32000)\ninvalid bpf_context access off=32000 size=8";
        let good = refusal("load reject_ctx_oob", Some(libc::EACCES), "BPF_PROG_LOAD: Permission denied", log);
        assert!(verifier_problems(Some(&good)).is_empty());
        assert_eq!(verifier_problems(None), ["the verifier accepted reject_ctx_oob"]);
        // A failure without an errno fails the errno check, and its log is still checked.
        let no_errno = refusal("load reject_ctx_oob", None, "program not loaded", "");
        let p = verifier_problems(Some(&no_errno));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("load failed with no errno, expected EACCES"), "{p:?}");
        assert_eq!(p[1], "verifier log does not say \"invalid bpf_context access\"");
        let wrong = refusal("load reject_ctx_oob", Some(libc::EINVAL), "BPF_PROG_LOAD: Invalid argument", log);
        assert_eq!(verifier_problems(Some(&wrong)).len(), 1);
    }

    #[test]
    fn a_truncated_object_is_refused_by_the_parser_and_the_check_says_so() {
        // The real loader on the real truncated object: aya parses before any bpf(2) call, so
        // this runs on the host as in the guest.
        let t = truncated();
        let outcome = Loaded::new(t, 0).err();
        assert!(truncated_problems(t.name, outcome.as_ref()).is_empty(), "{outcome:?}");
        // Its name no longer says "truncated", and no check looks for a word of it.
        assert!(!t.name.contains("truncated"));
        // Loaded, refused later or by the kernel, or refused for another reason: each fails.
        assert_eq!(truncated_problems(t.name, None), ["a truncated object loaded"]);
        let by_kernel = anyhow::Error::new(refusal(
            &format!("load object {}", t.name),
            Some(libc::EPERM),
            "map km_events: Operation not permitted",
            "",
        ));
        assert_eq!(truncated_problems(t.name, Some(&by_kernel)).len(), 2);
        let later = anyhow::Error::new(refusal("load kprobe_openat", None, "error parsing BPF object: x", ""));
        assert_eq!(truncated_problems(t.name, Some(&later)).len(), 1);
        let plain = anyhow::anyhow!("{} has no km_config map", t.name);
        assert_eq!(truncated_problems(t.name, Some(&plain)).len(), 1);
    }
}
