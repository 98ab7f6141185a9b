//! The `selftest.` family: scenarios that break the guest on purpose, so the host's scheduler
//! can be tested against the real failure modes: a scenario that never answers (timeout, fresh
//! VM for the rest) and a guest kernel panic (`error` with the console tail). The host never
//! selects `selftest.*` unless a pattern names it explicitly. Not a tracing path.

use super::meta::{Ctx, Meta, Scenario};
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;

pub const ALL: &[Scenario] = &[HANG, PANIC];

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
