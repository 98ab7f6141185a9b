//! `kprobe.perf_pmu.*`: kprobes and kretprobes created through perf_event_open on the `kprobe`
//! PMU (type from sysfs, `config1` = the symbol; perf_event_open(2)), counting on the workload.
//!
//! Not for kprobes defined through tracefs (`tracefs.rs`).

use crate::perf::{self, Attr};
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::openat_loop;
use crate::scenario::support::perf::{count_openat, open};
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

/// A kprobe on the openat function through the kprobe PMU, counting on openat-loop N: N.
// "perf/core: Implement the 'perf_kprobe' PMU", 4.17.
pub const OPENAT: Scenario = Meta::new("kprobe.perf_pmu.openat", "4.17")
    .summary("perf_event_open on the kprobe PMU (type from sysfs, config1 = symbol) on the openat function: counts N")
    .requires(&[Req::Pmu("kprobe")])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(|ctx| pmu_openat(ctx, false));

/// The same with the PMU's `retprobe` format bit: a kretprobe, counting N.
// "perf/core: Implement the 'perf_kprobe' PMU", 4.17.
pub const OPENAT_RET: Scenario = Meta::new("kprobe.perf_pmu.openat_ret", "4.17")
    .summary("perf_event_open on the kprobe PMU with the retprobe bit, on the openat function: counts N")
    .requires(&[Req::Pmu("kprobe")])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(|ctx| pmu_openat(ctx, true));

fn pmu_openat(ctx: &mut Ctx, ret: bool) -> Result<ScenarioResult> {
    let sym = openat_loop::symbol(ctx)?;
    let ty = perf::pmu_type("kprobe")?;
    let config = if ret { 1u64 << perf::format_bit("kprobe", "retprobe")? } else { 0 };
    let what = format!("{} hits of {sym} counted", if ret { "kretprobe" } else { "kprobe" });
    let (mut r, pid, reading) =
        count_openat(ctx, what, |pid| open(Attr::counter(ty, config), pid, Some(sym), &format!("kprobe PMU {sym}")))?;
    r.detail = serde_json::json!({ "pmu_type": ty, "config": config, "symbol": sym, "pid": pid, "reading": format!("{reading:?}") });
    Ok(r)
}
