//! `bpf.percpu_array.*`: a BPF program counting into a `BPF_MAP_TYPE_PERCPU_ARRAY` (4.6), read
//! back per CPU.
//!
//! `openat`: two `openat-loop`s with different counts, N0 pinned to CPU 0 and N1 to CPU 1
//! (`sched_setaffinity` while each waits at its start gate), released together; a kprobe on the
//! openat path (`percpu.bpf.c`) adds one to its CPU's copy of slot 0 for each call of either.
//! CPU 0's value must be exactly N0, CPU 1's exactly N1, every other CPU's 0; the witnesses are
//! the calls the kernel answered each workload and the shared, atomically added hit count.
//! Needs two CPUs: with one there is no second copy to keep apart.

use crate::bpf::{self, Loaded};
use crate::cpus;
use crate::process::Running;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::bpf::{attach, detach, guarded, openat_summary, Hook};
use crate::scenario::support::openat_loop;
use crate::scenario::support::verdict::{count, ms, verdict};
use anyhow::{Context, Result};
use aya::maps::{MapData, PerCpuArray};
use kmatrix_proto::{ScenarioResult, Timings};
use std::time::Instant;

/// The program of `percpu.bpf.o` and the `km_config` slot of the second workload's tgid.
const PROGRAM: &str = "percpu_openat";
const CFG_TGID2: u32 = 1;

// Per-CPU arrays came in 4.6; kprobe programs in 4.1.
pub const OPENAT: Scenario = Meta::new("bpf.percpu_array.openat", "4.6")
    .summary(
        "BPF kprobe on the openat path counting into a PERCPU_ARRAY while openat-loop N0 runs pinned to cpu0 and \
         N1 to cpu1: the values read back per CPU are exactly N0 and N1",
    )
    .requires(&[Req::Cpus(2), Req::BpfMapType("percpu_array")])
    .on_openat_loop(&[("count", "100"), ("count_cpu1", "37")])
    .run(run);

fn run(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let id = ctx.id();
    guarded(id, || {
        let (n0, path, sym) = openat_loop::prepare(ctx)?;
        let n1 = ctx.param_u64("count_cpu1", 37)?;
        anyhow::ensure!(
            (1..=1_000_000).contains(&n1) && n1 != n0,
            "parameter count_cpu1={n1}: 1..=1000000, and not count={n0} (the two CPUs' counts must differ)"
        );
        let (_, online) = cpus::online()?;
        let t = Instant::now();
        let mut workloads: Vec<(u32, u64, Running)> = Vec::new();
        for (cpu, n) in [(0, n0), (1, n1)] {
            let w = openat_loop::start(n, &path)?;
            cpus::pin(w.pid(), cpu)?;
            workloads.push((cpu, n, w));
        }
        let pids: Vec<u32> = workloads.iter().map(|(_, _, w)| w.pid() as u32).collect();
        let mut l = Loaded::new(bpf::PERCPU, pids[0])?;
        let config = l.ebpf.map_mut("km_config").context("percpu.bpf.o has no km_config map")?;
        bpf::object::write_config(config, CFG_TGID2, u64::from(pids[1]))?;
        let load_ms = attach(&mut l, PROGRAM, &Hook::KProbe(sym))?;
        let attach_ms = ms(t);
        let t = Instant::now();
        for (_, _, w) in &mut workloads {
            w.release()?;
        }
        let timeout = ctx.timeout()?;
        let mut done = Vec::new();
        for (cpu, n, w) in workloads {
            done.push((cpu, n, w.pid(), w.finish(timeout)?));
        }
        let run_ms = ms(t);
        let hits = l.counts()?;
        let values: Vec<u64> = {
            let map = l.ebpf.map("km_percpu").context("percpu.bpf.o has no km_percpu map")?;
            let array: PerCpuArray<&MapData, u64> =
                PerCpuArray::try_from(map).context("km_percpu is not a per-CPU array of u64")?;
            array.get(&0, 0).context("bpf_map_lookup_elem(km_percpu[0]) failed")?.to_vec()
        };
        let t = Instant::now();
        detach(&mut l, PROGRAM)?;
        drop(l);
        let detach_ms = ms(t);

        let mut c = Vec::new();
        let mut problems = Vec::new();
        for (cpu, n, pid, finished) in &done {
            let (summary, p) = openat_summary(finished);
            problems.extend(p.into_iter().map(|p| format!("workload on cpu{cpu} (pid {pid}): {p}")));
            c.push(count(format!("openat calls that succeeded in the workload pinned to cpu{cpu}"), *n, summary.ok));
            let seen = values.get(*cpu as usize).copied().unwrap_or(0);
            c.push(count(format!("km_percpu[0] on cpu{cpu}"), *n, seen));
        }
        let elsewhere: u64 = values.iter().skip(2).sum();
        c.push(count("km_percpu[0] summed over the other possible CPUs", 0, elsewhere));
        c.push(count(format!("{PROGRAM} hits over all CPUs (km_counts, atomic)"), n0 + n1, hits.hits));
        let mut r = verdict(id, c, problems);
        r.timings = Timings { attach_ms, run_ms, detach_ms };
        r.detail = serde_json::json!({
            "object": bpf::PERCPU.name,
            "program": PROGRAM,
            "hook": Hook::KProbe(sym).describe(),
            "online": online,
            "workloads": done.iter().map(|(cpu, n, pid, _)| serde_json::json!({"cpu": cpu, "count": n, "pid": pid})).collect::<Vec<_>>(),
            "per_cpu_values": values,
            "hits_filtered_out": hits.others,
            "verifier_load_ms": load_ms,
        });
        let text: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("cpu{i}: km_percpu[0] = {v}")).collect();
        Ok(r.with_excerpt(&text.join("\n")))
    })
}
