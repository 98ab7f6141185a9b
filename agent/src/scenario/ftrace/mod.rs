//! The `ftrace.` family: tracers, events, markers, instances, hist triggers and event formats
//! through tracefs, each file holding the scenarios of one id path (`ftrace.<path>.*`).
//!
//! This module is only the family's registry, in catalogue order.

mod available_events;
mod block;
mod event;
mod event_any;
mod format;
mod function;
mod function_graph;
mod hist;
mod instance;
mod options;
mod percpu;
mod reads;
mod sched;
mod session;
mod set_event;
mod trace_marker;
mod trace_pipe;
mod tracer;
mod tracers;

use crate::scenario::meta::Scenario;

pub const ALL: &[Scenario] = &[
    tracers::AVAILABLE,
    available_events::LISTING,
    function::OPENAT,
    function::STACKTRACE,
    function::FILTER_APPENDS,
    function_graph::OPENAT,
    function_graph::NESTED,
    function_graph::RETVAL,
    reads::SMALL_READS,
    tracer::IRQ_REFUSED,
    tracer::IRQSOFF,
    tracer::PREEMPTOFF,
    trace_marker::ROUNDTRIP,
    trace_pipe::MARKER,
    instance::MARKER,
    event::SYS_ENTER_OPENAT,
    percpu::SYS_ENTER_OPENAT,
    trace_pipe::SYS_ENTER_OPENAT,
    event::RAW_SYSCALLS,
    event::SYS_ENTER_MOUNT,
    event::URANDOM_READ,
    event::IRQ_HANDLER,
    block::DIRECT_IO_RQ,
    hist::SYS_ENTER_OPENAT,
    event::SCHED_SWITCH,
    event_any::ANY,
    set_event::SCHED_SWITCH,
    sched::WAKEUP_SWITCH,
    options::STACKTRACE,
    session::TRACE_SH,
    format::SYS_ENTER_OPENAT,
    format::SYS_ENTER_MOUNT,
];
