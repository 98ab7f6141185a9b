//! What a scenario is: its [`Meta`] (id, summary, since/until, requirements, parameters, as the
//! catalogue lists them) and one function, run with a [`Ctx`]. Each scenario file declares
//! `pub const NAME: Scenario = Meta::new(id, since).summary(..).requires(..).params(..).run(f)`,
//! a constant the family registry lists; what is left out stays empty. A scenario on the image's
//! `openat-loop` says so with [`Meta::on_openat_loop`] (the workload's requirement and parameters
//! in one place, `support::openat_loop`).
//!
//! A scenario exercises one tracing path against a known workload and reports exact counts. Its
//! function returns `Ok(result)` with `pass` or `fail`; an `Err` whose chain holds a
//! [`Refused`](crate::tracefs::Refused) (the kernel said no to a tracing request) becomes `fail`
//! with that errno, any other `Err` becomes `error` (infrastructure). Requirements ([`Req`]) are
//! checked before running, so a missing feature is `unsupported` with its evidence rather than a
//! failure. Not here: the scenarios themselves (one folder per id family), the helpers they share
//! (`support/`), and the runner (`scenario/mod.rs`).

use super::req::Req;
use crate::tracefs::Tracefs;
use anyhow::{Context, Result};
use kmatrix_proto::{Capabilities, ScenarioResult};
use std::collections::BTreeMap;

/// What the catalogue says about a scenario; the host lists and judges it from this alone.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// `family.path.target`, e.g. `kprobe.tracefs.openat`.
    pub id: &'static str,
    /// One line: what the scenario exercises and what it counts.
    pub summary: &'static str,
    /// The first upstream kernel version with everything the path needs (`"5.15"`); the host
    /// judges `unsupported` at or above it as `fail` unless an expectation names it.
    pub since: &'static str,
    /// The first upstream version without the path (a removed tracepoint), if any.
    pub until: Option<&'static str>,
    /// What the guest must have, checked in this order before the scenario runs (groups,
    /// [`Req::All`], as if written out).
    pub requires: &'static [Req],
    /// One requirement more, checked and listed after `requires`: what a shared constructor adds
    /// to the scenario's own list (the workload of [`Meta::on_openat_loop`], the tool of
    /// `host_tool::sys_enter_openat_loop`). Held by value: a `const fn` cannot make a static
    /// slice of its arguments.
    pub requires_last: Option<Req>,
    /// Parameters and their defaults (`count` = `100`), as the catalogue lists them.
    pub params: &'static [(&'static str, &'static str)],
}

impl Meta {
    /// The entry of scenario `id`, first in upstream kernel `since`; the rest is added with the
    /// methods below, and [`Meta::run`] makes it a [`Scenario`].
    pub const fn new(id: &'static str, since: &'static str) -> Meta {
        Meta { id, summary: "", since, until: None, requires: &[], requires_last: None, params: &[] }
    }

    pub const fn summary(self, summary: &'static str) -> Meta {
        Meta { summary, ..self }
    }

    pub const fn until(self, until: &'static str) -> Meta {
        Meta { until: Some(until), ..self }
    }

    pub const fn requires(self, requires: &'static [Req]) -> Meta {
        Meta { requires, ..self }
    }

    /// Add `req` after `requires` (see [`Meta::requires_last`]); a second one is refused when the
    /// catalogue is compiled, as it would silently replace the first.
    pub const fn requires_last(self, req: Req) -> Meta {
        assert!(self.requires_last.is_none(), "a scenario entry takes one requires_last");
        Meta { requires_last: Some(req), ..self }
    }

    pub const fn params(self, params: &'static [(&'static str, &'static str)]) -> Meta {
        Meta { params, ..self }
    }

    /// Every requirement, in the order they are checked and listed: `requires` then
    /// `requires_last`, groups ([`Req::All`]) written out.
    pub fn requirements(&'static self) -> Vec<&'static Req> {
        let mut all = Req::flatten(self.requires);
        all.extend(Req::flatten(self.requires_last.as_slice()));
        all
    }

    /// The scenario: this entry and the function that runs it.
    pub const fn run(self, run: fn(&mut Ctx) -> Result<ScenarioResult>) -> Scenario {
        Scenario { meta: self, run }
    }
}

/// A scenario: its catalogue entry and the function that runs it on a clean tracefs (the
/// runner resets it again afterwards).
pub struct Scenario {
    pub meta: Meta,
    pub run: fn(&mut Ctx) -> Result<ScenarioResult>,
}

/// What a scenario gets to work with.
pub struct Ctx<'a> {
    pub params: &'a BTreeMap<String, String>,
    pub tfs: Tracefs,
    /// The running scenario's catalogue entry.
    pub meta: &'static Meta,
    /// The capability record this boot sent the host (a tool's answers are checked against it).
    pub caps: &'a Capabilities,
}

impl Ctx<'_> {
    /// The running scenario's id, for its result.
    pub fn id(&self) -> &'static str {
        self.meta.id
    }

    /// A numeric parameter, `default` when absent; a malformed value is an error naming it.
    pub fn param_u64(&self, key: &str, default: u64) -> Result<u64> {
        match self.params.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().with_context(|| format!("parameter {key}={v:?} is not a number")),
        }
    }

    /// The `count` parameter, bounded so a typo cannot fill the guest's memory.
    pub fn count(&self, default: u64) -> Result<u64> {
        let n = self.param_u64("count", default)?;
        anyhow::ensure!((1..=1_000_000).contains(&n), "parameter count={n} out of range 1..=1000000");
        Ok(n)
    }

    /// The `count` parameter with the default the scenario declares in [`Meta::params`], so the
    /// catalogue and the run agree on it.
    pub fn declared_count(&self) -> Result<u64> {
        let default = self
            .meta
            .params
            .iter()
            .find(|(k, _)| *k == "count")
            .and_then(|(_, v)| v.parse().ok())
            .context("the scenario declares no numeric count default")?;
        self.count(default)
    }

    pub fn timeout(&self) -> Result<std::time::Duration> {
        Ok(std::time::Duration::from_millis(self.param_u64("timeout_ms", 60_000)?))
    }
}
