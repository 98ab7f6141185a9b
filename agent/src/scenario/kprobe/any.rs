//! `kprobe.tracefs.any`: a `p:` probe through `kprobe_events` on any kernel function, for any
//! workload — the question a user brings ("does a kprobe on `do_unlinkat` fire for my program
//! on this kernel?"): `--param function=SYM` and `kmatrix run --workload 'CMD'`.
//!
//! The hits counted are those of the workload's process tree (`support::user_workload`). A
//! function the kernel will not probe (absent, renamed, inlined, blacklisted) is `unsupported`
//! with the kernel's refusal as evidence.

use crate::excerpt;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::support::openat_loop;
use crate::scenario::support::probe_events::{profile_of, GROUP, KPROBE_EVENTS};
use crate::scenario::support::user_workload::{self, UserWorkload};
use crate::scenario::support::verdict::{count, unsupported};
use anyhow::Result;
use kmatrix_proto::ScenarioResult;
use std::time::Instant;

/// The probe's event name in [`GROUP`].
const EVENT: &str = "any";

/// `p:kmatrix/any <function>` for the workload: with the defaults (the openat function,
/// `openat-loop 100`) exactly N hits of the workload's pid; for another function or a user's
/// command, `expect_runs` hits or at least one.
// kprobe_events: 2.6.33.
pub const ANY: Scenario = Meta::new("kprobe.tracefs.any", "2.6.33")
    .summary(
        "p: on any kernel function (`function`, default the openat function) while any workload runs \
        (`workload`: openat-loop:N, hello:N, or a host command from `kmatrix run --workload`): the hits \
        of the workload's process tree, N for openat-loop on its own call, else expect_runs or at least one",
    )
    .requires(&[KPROBE_EVENTS, openat_loop::IN_IMAGE])
    .params(&[("function", ""), ("workload", "openat-loop:100"), ("expect_runs", "")])
    .run(any);

fn any(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let own = openat_loop::symbol(ctx)?;
    let function = match ctx.params.get("function").map(|f| f.trim()).filter(|f| !f.is_empty()) {
        Some(f) => f.to_string(),
        None => own.to_string(),
    };
    let w = UserWorkload::from_params(ctx)?;
    let expected = w.expected(ctx, function == own)?;
    let definition = format!("p:{GROUP}/{EVENT} {function}");
    let attach = Instant::now();
    if let Err(refused) = ctx.tfs.write("kprobe_events", &definition) {
        let log = ctx.tfs.error_log();
        return Ok(unsupported(
            ctx.id(),
            format!("the kernel refused a kprobe on {function}: {refused}"),
            format!("{definition}\n{}", excerpt::tail(&log, 10)),
            Some(refused.errno),
        ));
    }
    openat_loop::fit_buffer(ctx, expected.unwrap_or(100), 160)?;
    let seen = user_workload::observe(ctx, &w, attach, &format!("{GROUP}/{EVENT}"))?;
    let (profile_text, prof) = profile_of(ctx, GROUP, EVENT)?;
    let what = format!("{GROUP}/{EVENT} entries of the workload's processes");
    let detail = serde_json::json!({
        "function": function,
        "definition": definition,
        "kprobe_profile": profile_text.trim(),
    });
    Ok(seen.verdict(ctx, &w, &what, expected, vec![count("kprobe_profile misses", 0, prof.misses)], detail))
}
