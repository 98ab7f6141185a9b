//! `bpf.core.*`: CO-RE, one object on every kernel. Reads of `task_struct` by field name
//! (pid, tgid, comm, real_parent->tgid) and of the task state, whose field was renamed from
//! `state` (a long) to `__state` (an unsigned int) in 5.14: the program asks
//! bpf_core_field_exists() and the loader keeps the branch the running kernel has.
//!
//! Not for the loader's error paths (`verifier.rs`).

use crate::bpf;
use crate::bpf::event::{KmEvent, MAX_EVENTS};
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::support::bpf::{
    events_excerpt, guarded, openat_summary, run_program, without_core_btf, Hook, OpenatWorkload, VMLINUX_BTF_SINCE,
};
use crate::scenario::support::openat_loop;
use crate::scenario::support::verdict::count;
use crate::sys;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

/// What the CO-RE program is checked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// pid, tgid, comm, real_parent->tgid.
    Task,
    /// `__state` or `state`, whichever the kernel has.
    State,
}

// Kernel BTF in /sys/kernel/btf/vmlinux (5.4); aya rewrites bpf_probe_read_kernel (5.5).
pub const TASK_STRUCT: Scenario = Meta::new("bpf.core.task_struct", VMLINUX_BTF_SINCE)
    .summary("CO-RE reads of task_struct pid, tgid, comm and real_parent->tgid: match the workload")
    .on_openat_loop(&[("count", "10")])
    .run(|ctx| core_read(ctx, Read::Task));

// Kernel BTF in /sys/kernel/btf/vmlinux (5.4); aya rewrites bpf_probe_read_kernel (5.5).
pub const TASK_STATE: Scenario = Meta::new("bpf.core.task_state", VMLINUX_BTF_SINCE)
    .summary("CO-RE read of task_struct state/__state (renamed in 5.14) via bpf_core_field_exists")
    .on_openat_loop(&[("count", "10")])
    .run(|ctx| core_read(ctx, Read::State));

/// The state field a kernel release has: `__state` from 5.14.
fn state_field_of(release: &str) -> (u32, &'static str) {
    let version = kmatrix_proto::KernelVersion::parse(release).unwrap_or_default();
    if version >= kmatrix_proto::KernelVersion::new(5, 14, 0) {
        (1, "__state")
    } else {
        (2, "state")
    }
}

/// `core_task` on sys_enter_openat for `openat-loop N`, checked for what `read` names.
fn core_read(ctx: &mut Ctx, read: Read) -> Result<ScenarioResult> {
    let id = ctx.id();
    if let Some(r) = without_core_btf(id) {
        return Ok(r);
    }
    guarded(id, || {
        let w = OpenatWorkload::start(ctx)?;
        let pid = w.pid();
        let program = "core_task";
        let hook = Hook::TracePoint("syscalls", "sys_enter_openat");
        let p = run_program(ctx, bpf::CORE, pid, program, &hook, w.running)?;
        let (counts, events) = (&p.counts, &p.events);

        let n = w.n;
        let recorded = n.min(MAX_EVENTS);
        let release_name = sys::uname().map(|u| u.release).unwrap_or_default();
        // The workload's parent is the agent itself.
        let parent = std::process::id() as i32;
        let (want_field, want_name) = state_field_of(&release_name);
        let (summary, problems) = openat_summary(&p.done);
        let mut c = openat_loop::counts(n, &summary, format!("{program} hits of the workload"), counts.hits);
        let of = |f: &dyn Fn(&KmEvent) -> bool| events.iter().filter(|e| f(e)).count() as u64;
        match read {
            Read::Task => c.extend([
                count(
                    format!("events with task->pid = task->tgid = {pid}"),
                    recorded,
                    of(&|e| e.task_pid == pid as i32 && e.task_tgid == pid as i32),
                ),
                count("events with task->comm = openat-loop", recorded, of(&|e| e.name() == "openat-loop")),
                count(
                    format!("events with task->real_parent->tgid = {parent} (the agent)"),
                    recorded,
                    of(&|e| e.parent_tgid == parent),
                ),
            ]),
            Read::State => c.extend([
                count(
                    format!("events that read task_struct::{want_name} (kernel {release_name})"),
                    recorded,
                    of(&|e| e.state_field == want_field),
                ),
                count("events with state 0 (TASK_RUNNING, in a syscall)", recorded, of(&|e| e.state == 0)),
            ]),
        }
        let mut r = p.verdict(id, c, problems);
        let fields: Vec<&str> = events
            .iter()
            .map(|e| match e.state_field {
                1 => "__state",
                2 => "state",
                _ => "none",
            })
            .collect();
        r.detail = serde_json::json!({
            "object": bpf::CORE.name,
            "program": program,
            "pid": pid,
            "release": release_name,
            "expected_state_field": want_name,
            "state_field_read": fields.first().copied().unwrap_or("none"),
            "verifier_load_ms": p.load_ms,
            // The BTF the object was relocated against: the kernel's, or `run --btf`'s.
            "btf": bpf::vmlinux::external().unwrap_or(bpf::BTF_VMLINUX),
        });
        Ok(r.with_excerpt(&events_excerpt(events, 5)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_field_follows_the_5_14_rename() {
        assert_eq!(state_field_of("5.10.0-32-amd64"), (2, "state"));
        assert_eq!(state_field_of("5.14.0"), (1, "__state"));
        assert_eq!(state_field_of("6.1.0-50-amd64"), (1, "__state"));
        assert_eq!(state_field_of("6.12.107+deb13-amd64"), (1, "__state"));
    }
}
