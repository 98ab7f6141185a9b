//! `perf.hardware.*`: `perf stat -e instructions ./hello` (perf-stat(1)) as a
//! PERF_TYPE_HARDWARE counter on the `hello` workload.
//!
//! Without a hardware PMU (TCG has none) the kernel refuses the counter: that is `unsupported`,
//! with the errno and the kernel's own `Performance Events:` boot line as evidence.

use crate::perf::{self, Attr};
use crate::scenario::meta::{Ctx, Meta, Scenario};
use crate::scenario::req::{Req, HARDWARE_PMU};
use crate::scenario::support::gated::workload_problems;
use crate::scenario::support::perf::{count_run, gated_hello, refused};
use crate::scenario::support::verdict::{count, unsupported};
use crate::scenario::support::workload;
use anyhow::Result;
use kmatrix_proto::ScenarioResult;

/// PERF_TYPE_HARDWARE instructions on `hello`: with a PMU, instructions > 0; without, the
/// kernel's ENOENT (or EOPNOTSUPP, ENODEV) as evidence.
// perf_event_open has PERF_TYPE_HARDWARE since 2.6.31; whether a PMU exists depends on the
// machine (none under TCG, one under KVM with a vPMU): `Req::Machine`, judged by the host.
pub const INSTRUCTIONS: Scenario = Meta::new("perf.hardware.instructions", "2.6.31")
    .summary(
        "the seeds' `perf stat -e instructions ./hello`: PERF_TYPE_HARDWARE instructions > 0 (unsupported \
        without a PMU, errno as evidence)",
    )
    .requires(&[HARDWARE_PMU, Req::Program(workload::HELLO)])
    .params(&[("count", "10")])
    .run(instructions);

fn instructions(ctx: &mut Ctx) -> Result<ScenarioResult> {
    let (n, attach, w) = gated_hello(ctx)?;
    let pid = w.pid();
    let ev = match perf::open(Attr::counter(perf::TYPE_HARDWARE, perf::HW_INSTRUCTIONS), pid, None) {
        Ok(ev) => ev,
        Err(errno @ (libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV)) => {
            let pmus: Vec<String> = std::fs::read_dir("/sys/bus/event_source/devices")
                .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let boot =
                kmsg_line("Performance Events:").unwrap_or_else(|| "no `Performance Events:` line in /dev/kmsg".into());
            return Ok(unsupported(
                ctx.id(),
                format!(
                    "no hardware PMU: perf_event_open(PERF_TYPE_HARDWARE, instructions) failed with {}",
                    crate::sys::errno_text(errno)
                ),
                format!("kernel: {boot}; PMUs: {}", pmus.join(" ")),
                Some(errno),
            ));
        }
        Err(errno) => return Err(refused(format!("perf_event_open(instructions, pid {pid})"), errno)),
    };
    let (a, readings) = count_run(ctx, w, attach, &[&ev])?;
    let mut problems = workload_problems(&a.done);
    if readings[0].value == 0 {
        problems.push("instructions counted 0".to_string());
    }
    let greetings = workload::greetings(&a.done.stdout);
    let mut r = a.verdict(ctx.id(), vec![count("hello, world! lines printed", n, greetings)], problems);
    r.detail = serde_json::json!({ "instructions": readings[0].value, "reading": format!("{:?}", readings[0]) });
    Ok(r)
}

/// The first kernel log record containing `needle` (from /dev/kmsg, without blocking).
fn kmsg_line(needle: &str) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg").ok()?;
    let mut buf = vec![0u8; 8192];
    for _ in 0..20_000 {
        match f.read(&mut buf) {
            Ok(0) => return None,
            Ok(k) => {
                let rec = String::from_utf8_lossy(&buf[..k]);
                let text = rec.split_once(';').map_or(rec.as_ref(), |(_, t)| t).trim();
                if text.contains(needle) {
                    return Some(text.to_string());
                }
            }
            // EPIPE: a record was overwritten while reading; the next read goes on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => return None,
        }
    }
    None
}
