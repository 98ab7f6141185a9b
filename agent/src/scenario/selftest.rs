//! The `selftest.` family: scenarios that break the guest on purpose, so the host's scheduler
//! can be tested against the real failure modes: a scenario that never answers (timeout, fresh
//! VM for the rest), a guest kernel panic (`error` with the console tail), the agent (PID 1)
//! dying, a guest that floods the channel with garbage and an endless line, and a scenario that
//! fails once and then passes (the host's single retry must call it `flaky`). The host never
//! selects `selftest.*` unless a pattern names it explicitly. Not a tracing path.

use super::meta::{Ctx, Meta, Scenario};
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;

pub const ALL: &[Scenario] = &[HANG, PANIC, AGENT_EXIT, FLOOD, FLAKY];

/// Fails the first time it runs in a guest, passes every time after.
const FLAKY: Scenario = Meta::new("selftest.flaky", "")
    .summary("test-only: fails on its first run in a guest, passes on the next (the host must retry it and say flaky)")
    .run(flaky);

fn flaky(ctx: &mut Ctx) -> Result<ScenarioResult> {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(match n {
        0 => ScenarioResult::new(ctx.id(), kmatrix_proto::Status::Fail, "first run in this guest: fails on purpose"),
        _ => ScenarioResult::new(ctx.id(), kmatrix_proto::Status::Pass, format!("run {} in this guest", n + 1)),
    })
}

/// Never returns: the agent blocks, as a scenario stuck in the kernel would.
const HANG: Scenario = Meta::new("selftest.hang", "")
    .summary("test-only: the agent stops answering (the host must time the scenario out)")
    .run(hang);

fn hang(_ctx: &mut Ctx) -> Result<ScenarioResult> {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Crashes the guest kernel through sysrq.
const PANIC: Scenario = Meta::new("selftest.panic", "")
    .summary("test-only: echo c > /proc/sysrq-trigger (the host must report the panic with the console tail)")
    .run(panic);

fn panic(_ctx: &mut Ctx) -> Result<ScenarioResult> {
    std::fs::write("/proc/sys/kernel/sysrq", "1").context("write /proc/sys/kernel/sysrq")?;
    std::fs::write("/proc/sysrq-trigger", "c").context("write c to /proc/sysrq-trigger")?;
    anyhow::bail!("the kernel survived sysrq-c")
}

/// PID 1 exits: the kernel panics with "Attempted to kill init".
const AGENT_EXIT: Scenario = Meta::new("selftest.agent_exit", "")
    .summary("test-only: the agent (PID 1) exits mid-scenario (the host must report it, not hang)")
    .run(agent_exit);

fn agent_exit(_ctx: &mut Ctx) -> Result<ScenarioResult> {
    std::process::exit(70)
}

/// Writes garbage and then a line of more than 100 MB on the channel, then hangs.
const FLOOD: Scenario = Meta::new("selftest.flood", "")
    .summary("test-only: the agent floods the channel with garbage and a 100 MB line (the host must stay bounded)")
    .run(flood);

fn flood(_ctx: &mut Ctx) -> Result<ScenarioResult> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    let fd = crate::power::CHANNEL_FD.load(std::sync::atomic::Ordering::SeqCst);
    anyhow::ensure!(fd >= 0, "no channel to flood");
    // SAFETY: the channel's descriptor stays open for the agent's life; ManuallyDrop never closes it.
    let mut ch = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    // First a line of 110 MB (the host must give up on it at its line limit, not buffer it),
    // then garbage.
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..110 {
        if ch.write_all(&chunk).is_err() {
            break;
        }
    }
    for _ in 0..1000 {
        let _ = ch.write_all(b"\n\x01\x02 not json {{{ \n{\"type\":\"nonsense\"}\n");
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
