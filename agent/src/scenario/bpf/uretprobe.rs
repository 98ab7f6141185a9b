//! `bpf.uretprobe.*`: a BPF uretprobe program on the `hello` workload's `hello_add`, whose
//! return values for `hello N` are 1, 3, 5, ... in order.
//!
//! The run is `uprobe.rs`'s, with the return probe.

use super::uprobe::hello_probe;
use crate::scenario::meta::{Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::bpf::UPROBE_SINCE;
use crate::scenario::support::workload;

pub const HELLO: Scenario = Meta::new("bpf.uretprobe.hello", UPROBE_SINCE)
    .summary("BPF uretprobe on hello_add: N hits returning 1, 3, 5, ... in order")
    .requires(&[Req::Program(workload::HELLO)])
    .params(&[("count", "10")])
    .run(|ctx| hello_probe(ctx, true));
