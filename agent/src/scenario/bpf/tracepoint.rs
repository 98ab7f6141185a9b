//! `bpf.tracepoint.*`: BPF tracepoint programs on syscalls/sys_enter_openat and (seed 002)
//! syscalls/sys_enter_mount, reading their record as `struct trace_event_raw_sys_enter`.
//!
//! The openat run is `support::bpf::run_openat`: the program sees exactly the N calls of
//! `openat-loop N PATH`, each with the workload's pid and the payload checked; the mount run is
//! `mount-tmpfs N DIR`'s N mounts.

use crate::bpf;
use crate::process;
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::bpf::{
    event_counts, guarded, openat_meta, run_openat, run_program, Checks, Hook, Payload, TRACEPOINT_SINCE,
};
use crate::scenario::support::gated::workload_problems;
use crate::scenario::support::verdict::count;
use crate::scenario::support::workload;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

pub const SYS_ENTER_OPENAT: Scenario = openat_meta("bpf.tracepoint.sys_enter_openat", TRACEPOINT_SINCE)
    .summary("BPF tracepoint syscalls/sys_enter_openat reading trace_event_raw_sys_enter args: N hits, filename")
    .run(|ctx| {
        run_openat(
            ctx,
            bpf::PROBES,
            |_| "tracepoint_openat",
            |_, _| Hook::TracePoint("syscalls", "sys_enter_openat"),
            Checks::NameAndNr,
        )
    });

const MOUNT_DIR: &str = "/tmp/kmatrix-bpf-mnt";

/// Seed 002's `SEC("tracepoint/syscalls/sys_enter_mount") int mount_entry(struct
/// trace_event_raw_sys_enter *ctx)`, on `mount-tmpfs N DIR`: N hits of the workload, each reading
/// `args[3]` (flags, the workload's `MS_NOSUID|MS_NODEV` = 6) and the string at `args[2]` (`tmpfs`).
// BPF tracepoint programs came in 4.7.
pub const SYS_ENTER_MOUNT: Scenario = Meta::new("bpf.tracepoint.sys_enter_mount", TRACEPOINT_SINCE)
    .summary("seed 002's BPF tracepoint syscalls/sys_enter_mount reading trace_event_raw_sys_enter args: N hits, flags 6, type \"tmpfs\"")
    .requires(&[Req::Program(workload::MOUNT_TMPFS)])
    .params(&[("count", "20")])
    .run(sys_enter_mount);

fn sys_enter_mount(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let id = ctx.id();
    guarded(id, || {
        let n = ctx.declared_count()?;
        let argv = [workload::MOUNT_TMPFS.to_string(), n.to_string(), MOUNT_DIR.to_string()];
        let w = process::spawn(&argv, true)?;
        let pid = w.pid() as u32;
        let hook = Hook::TracePoint("syscalls", "sys_enter_mount");
        let p = run_program(ctx, bpf::PROBES, pid, "mount_entry", &hook, w)?;
        let mut problems = workload_problems(&p.done);
        let s = workload::summary(&p.done.stdout, "mount-tmpfs")?;
        let flags = workload::num(&s, "flags")?;
        let mut c = vec![
            count("mounts made by the workload", n, workload::num(&s, "ok")?.max(0) as u64),
            count("mount_entry hits of the workload", n, p.counts.hits),
        ];
        c.extend(event_counts(
            n,
            pid,
            &p.events,
            &Payload { name: Some("tmpfs"), aux: Some(("flags (args[3])", flags)) },
        ));
        if p.counts.others > 0 {
            problems.push(format!("{} sys_enter_mount hits of other tasks (nothing else mounts)", p.counts.others));
        }
        Ok(p.result(id, c, problems, serde_json::json!({})))
    })
}
