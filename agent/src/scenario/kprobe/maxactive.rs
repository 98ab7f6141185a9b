//! `kprobe.maxactive.*`: a return probe with an explicit `maxactive` (`r16:`,
//! Documentation/trace/kprobetrace.rst, "Synopsis of kprobe_events").
//!
//! The run is `tracefs.rs`'s return probe; what it adds is the `r<N>:` the kernel must echo.

use super::tracefs::openat_probe;
use crate::scenario::meta::{Meta, Scenario};
use crate::scenario::req::Req;
use crate::scenario::support::openat_loop;
use crate::scenario::support::probe_events::KPROBE_EVENTS;

/// `r16:kmatrix/openat_rmax <sym> ret=$retval:s64`: accepted, echoed with its 16 in
/// `kprobe_events`, and N entries returning the workload's fd.
// "tracing/kprobes: expose maxactive for kretprobe in kprobe_events", 4.12.
pub const OPENAT: Scenario = Meta::new("kprobe.maxactive.openat", "4.12")
    .summary(
        "r16: (maxactive) on the openat function: accepted and echoed in kprobe_events, \
        N hits, 0 misses, every entry returning the workload's fd",
    )
    .requires(&[KPROBE_EVENTS, Req::Syntax("r[maxactive]")])
    .on_openat_loop(openat_loop::PARAMS_100)
    .run(|ctx| openat_probe(ctx, true, Some(16)));
