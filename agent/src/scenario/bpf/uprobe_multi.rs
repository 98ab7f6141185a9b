//! `bpf.uprobe_multi.*`: one uprobe_multi link (BPF_TRACE_UPROBE_MULTI, 6.6) on the `hello`
//! workload's hello_greet (cookie 1) and hello_add (cookie 2): 2N hits, alternating cookies, the
//! message for hello_greet and a + b = 1, 3, 5, ... for hello_add.
//!
//! The run is `kprobe_multi.rs`'s, with user-space targets.

use super::kprobe_multi::run_multi;
use crate::bpf::multi::Kind;
use crate::scenario::meta::{Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::workload;

pub const HELLO: Scenario = Meta::new("bpf.uprobe_multi.hello", Kind::Uprobe.since())
    .summary("BPF uprobe_multi link on hello_greet + hello_add with cookies: 2N hits, per-target payload")
    .requires(&[Req::Program(workload::HELLO)])
    .params(&[("count", "10")])
    .run(|ctx| run_multi(ctx, Kind::Uprobe));
