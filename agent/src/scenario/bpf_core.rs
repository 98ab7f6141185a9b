//! CO-RE: one object, every kernel. Reads of `task_struct` by field name (pid, tgid, comm,
//! real_parent->tgid) and of the task state, whose field was renamed from `state` (a long) to
//! `__state` (an unsigned int) in 5.14: the program asks bpf_core_field_exists() and the loader
//! keeps the branch the running kernel has. Also the loader's error paths: a program the
//! verifier rejects (its log must surface) and an object that does not parse.

use super::bpf::{events_excerpt, guarded, openat_summary, reqs, without_btf, OpenatWorkload};
use super::{count, ms, openat, verdict, Ctx, Req, Scenario};
use crate::bpf::event::MAX_EVENTS;
use crate::bpf::{self, Loaded, Object, Rejected};
use crate::sys;
use anyhow::Result;
use aya::programs::TracePoint;
use kmatrix_proto::{ScenarioResult, Status};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// pid, tgid, comm, real_parent->tgid.
    Task,
    /// `__state` or `state`, whichever the kernel has.
    State,
}

pub struct CoreBpf {
    read: Read,
}

pub const TASK_STRUCT: CoreBpf = CoreBpf { read: Read::Task };
pub const TASK_STATE: CoreBpf = CoreBpf { read: Read::State };

/// The state field a kernel release has: `__state` from 5.14.
pub fn state_field_of(release: &str) -> (u32, &'static str) {
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse::<u32>().ok());
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version >= (5, 14) {
        (1, "__state")
    } else {
        (2, "state")
    }
}

impl Scenario for CoreBpf {
    fn id(&self) -> &'static str {
        match self.read {
            Read::Task => "bpf.core.task_struct",
            Read::State => "bpf.core.task_state",
        }
    }

    fn since(&self) -> &'static str {
        // Kernel BTF in /sys/kernel/btf/vmlinux (5.4) and bpf_probe_read_kernel (5.5).
        "5.5"
    }

    fn summary(&self) -> &'static str {
        match self.read {
            Read::Task => "CO-RE reads of task_struct pid, tgid, comm and real_parent->tgid: match the workload",
            Read::State => "CO-RE read of task_struct state/__state (renamed in 5.14) via bpf_core_field_exists",
        }
    }

    fn params(&self) -> &'static [(&'static str, &'static str)] {
        &[("count", "10")]
    }

    fn requirements(&self) -> Vec<Req> {
        reqs(openat::OPENAT_LOOP)
    }

    fn run(&self, ctx: &mut Ctx) -> Result<ScenarioResult> {
        let id = self.id();
        if let Some(r) = without_btf(id) {
            return Ok(r);
        }
        guarded(id, || {
            let w = OpenatWorkload::start(ctx)?;
            let pid = w.pid();
            let program = "core_task";
            let hook = super::bpf::Hook::TracePoint("syscalls", "sys_enter_openat");
            let p = super::bpf::run_program(ctx, bpf::CORE, pid, program, &hook, w.running)?;
            let (counts, events) = (&p.counts, &p.events);

            let n = w.n;
            let recorded = n.min(MAX_EVENTS);
            let release_name = sys::uname().map(|u| u.release).unwrap_or_default();
            // The workload's parent is the agent itself.
            let parent = std::process::id() as i32;
            let (want_field, want_name) = state_field_of(&release_name);
            let (summary, problems) = openat_summary(&p.done);
            let mut c = vec![
                count("openat calls made by the workload", n, summary.calls),
                count(format!("{program} hits of the workload"), n, counts.hits),
            ];
            let of = |f: &dyn Fn(&bpf::event::KmEvent) -> bool| events.iter().filter(|e| f(e)).count() as u64;
            match self.read {
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
            let mut r = verdict(id, c, problems);
            p.timings(&mut r);
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
            });
            Ok(r.with_excerpt(&events_excerpt(events, 5)))
        })
    }
}

/// The verifier must reject `reject.bpf.o` (a map value used without its NULL check) with
/// EACCES, and its log must say why; a truncated object must fail to parse, naming the object.
pub struct LoaderErrors;

pub const VERIFIER_REJECT: LoaderErrors = LoaderErrors;

impl Scenario for LoaderErrors {
    fn id(&self) -> &'static str {
        "bpf.verifier.reject"
    }

    fn since(&self) -> &'static str {
        "4.7"
    }

    fn summary(&self) -> &'static str {
        "a program the verifier rejects fails with EACCES and its log; a truncated object fails to parse"
    }

    fn requirements(&self) -> Vec<Req> {
        Vec::new()
    }

    fn run(&self, _ctx: &mut Ctx) -> Result<ScenarioResult> {
        let id = self.id();
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
        Ok(r.with_excerpt(&super::bpf::log_tail(&log, 30)))
    }
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
