//! Scenarios that break the guest on purpose, so the host's scheduler can be tested against the
//! real failure modes: a scenario that never answers (timeout, fresh VM for the rest) and a guest
//! kernel panic (`error` with the console tail). The host never selects `selftest.*` unless a
//! pattern names it explicitly.

use super::{Ctx, Req, Scenario};
use anyhow::{Context, Result};
use kmatrix_proto::ScenarioResult;

pub const ALL: [&'static dyn Scenario; 2] = [&Hang, &Panic];

/// Never returns: the agent blocks, as a scenario stuck in the kernel would.
pub struct Hang;

impl Scenario for Hang {
    fn id(&self) -> &'static str {
        "selftest.hang"
    }

    fn summary(&self) -> &'static str {
        "test-only: the agent stops answering (the host must time the scenario out)"
    }

    fn since(&self) -> &'static str {
        ""
    }

    fn requirements(&self) -> Vec<Req> {
        Vec::new()
    }

    fn run(&self, _ctx: &mut Ctx) -> Result<ScenarioResult> {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Crashes the guest kernel through sysrq.
pub struct Panic;

impl Scenario for Panic {
    fn id(&self) -> &'static str {
        "selftest.panic"
    }

    fn summary(&self) -> &'static str {
        "test-only: echo c > /proc/sysrq-trigger (the host must report the panic with the console tail)"
    }

    fn since(&self) -> &'static str {
        ""
    }

    fn requirements(&self) -> Vec<Req> {
        Vec::new()
    }

    fn run(&self, _ctx: &mut Ctx) -> Result<ScenarioResult> {
        std::fs::write("/proc/sys/kernel/sysrq", "1").context("write /proc/sys/kernel/sysrq")?;
        std::fs::write("/proc/sysrq-trigger", "c").context("write c to /proc/sysrq-trigger")?;
        anyhow::bail!("the kernel survived sysrq-c")
    }
}
