//! `perf.sampling.*`: `perf record -e cpu-clock -g -- ./hello` (perf-record(1)) as cpu-clock
//! sampling with callchains on the `hello` workload into an mmap ring buffer.
//!
//! Not for counting (`software.rs`), nor for BPF programs on samples (`bpf/perf_event.rs`).

use crate::excerpt;
use crate::perf::{self, Attr};
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::support::gated::workload_problems;
use crate::scenario::support::perf::{count_run, gated_hello, refused, SOFTWARE_ON_HELLO};
use crate::scenario::support::verdict::count;
use anyhow::Result;
use kmatrix_proto::{ScenarioResult, Status};

const SAMPLE_PERIOD_NS: u64 = 250_000;
const RING_PAGES: usize = 128;

/// cpu-clock sampling with callchains on `hello N`. Sampling is statistical, so the checks are:
/// samples arrived, none lost, every one from the workload's pid with a callchain holding at
/// least one instruction pointer beside its context markers.
pub const CPU_CLOCK: Scenario = Meta::new("perf.sampling.cpu_clock", "2.6.31")
    .summary(
        "cpu-clock sampling (250 us) with PERF_SAMPLE_CALLCHAIN on hello N into a ring buffer: samples > 0, \
        none lost, all from the workload, each with >= 1 ip",
    )
    .requires(&[SOFTWARE_ON_HELLO])
    .params(&[("count", "20000")])
    .run(cpu_clock);

fn cpu_clock(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (_n, attach, w) = gated_hello(ctx)?;
    let pid = w.pid();
    let mut attr = Attr::counter(perf::TYPE_SOFTWARE, perf::SW_CPU_CLOCK);
    attr.sample_period = SAMPLE_PERIOD_NS;
    attr.sample_type = perf::SAMPLE_IP | perf::SAMPLE_TID | perf::SAMPLE_CALLCHAIN;
    let ring = perf::Ring::open(attr, pid, RING_PAGES)
        .map_err(|e| refused(format!("perf_event_open(cpu-clock sampling, pid {pid}) + mmap"), e))?;
    let (a, _) = count_run(ctx, w, attach, &[ring.event()])?;
    let d = ring.drain();
    let samples = d.samples.len() as u64;
    let from_workload = d.samples.iter().filter(|s| s.pid == pid as u32).count() as u64;
    let ips = |s: &perf::Sample| s.callchain.iter().filter(|ip| **ip < perf::CONTEXT_MAX).count();
    let with_ip = d.samples.iter().filter(|s| ips(s) >= 1).count() as u64;
    let kernel = d.samples.iter().filter(|s| s.callchain.contains(&perf::CONTEXT_KERNEL)).count();
    let user = d.samples.iter().filter(|s| s.callchain.contains(&perf::CONTEXT_USER)).count();
    let depth_max = d.samples.iter().map(ips).max().unwrap_or(0);
    let mut problems = workload_problems(&a.done);
    if samples == 0 {
        problems.push("no samples".to_string());
    }
    if d.lost > 0 {
        problems.push(format!("{} samples lost (ring of {RING_PAGES} pages)", d.lost));
    }
    let mut r = a.verdict(
        ctx.id(),
        vec![
            count("samples from the workload pid", samples, from_workload),
            count("samples with at least one ip in the callchain", samples, with_ip),
        ],
        problems,
    );
    let first: Vec<String> =
        d.samples.first().map(|s| s.callchain.iter().map(|ip| format!("{ip:#x}")).collect()).unwrap_or_default();
    r.detail = serde_json::json!({
        "pid": pid,
        "period_ns": SAMPLE_PERIOD_NS,
        "samples": samples,
        "with_kernel_chain": kernel,
        "with_user_chain": user,
        "deepest_chain": depth_max,
        "other_records": d.other,
        "bytes": d.head,
    });
    if r.status == Status::Pass {
        r.reason = format!("{samples} samples, {kernel} with a kernel chain, {user} with a user chain");
    }
    Ok(r.with_excerpt(&excerpt::head(&first.join("\n"), 32)))
}
