//! The `bpf.` family: kmatrix's own BPF objects loaded, attached and fired on every hook type
//! (kprobe, kretprobe, tracepoint, raw_tracepoint, tp_btf, fentry/fexit, uprobe/uretprobe,
//! perf_event, kprobe_multi, uprobe_multi), their output channels (ring buffer, perf buffer,
//! bpf_trace_printk), a per-CPU array read back per CPU, a block-layer latency histogram, CO-RE reads, the verifier's refusal, and a user's object brought from a
//! path. Each file holds the scenarios of one id path (`bpf.<path>.*`).
//!
//! This module is only the family's registry, in catalogue order. What the files share is in
//! `support::bpf` and `support::bpf_output`; loading objects is `crate::bpf`.

mod block;
mod core;
mod fentry;
mod fexit;
mod kprobe;
mod kprobe_multi;
mod kretprobe;
mod object;
mod percpu_array;
mod perf_buffer;
mod perf_event;
mod raw_tracepoint;
mod ringbuf;
mod tp_btf;
mod trace_printk;
mod tracepoint;
mod uprobe;
mod uprobe_multi;
mod uretprobe;
mod verifier;

use crate::scenario::meta::Scenario;

pub const ALL: &[Scenario] = &[
    kprobe::OPENAT,
    kretprobe::OPENAT,
    tracepoint::SYS_ENTER_OPENAT,
    tracepoint::SYS_ENTER_MOUNT,
    raw_tracepoint::SYS_ENTER,
    tp_btf::SYS_ENTER,
    fentry::OPENAT,
    fexit::OPENAT,
    uprobe::HELLO,
    uretprobe::HELLO,
    perf_event::CPU_CLOCK,
    kprobe_multi::OPENAT,
    uprobe_multi::HELLO,
    ringbuf::OPENAT,
    perf_buffer::OPENAT,
    trace_printk::OPENAT,
    percpu_array::OPENAT,
    block::RQ_LATENCY,
    core::TASK_STRUCT,
    core::TASK_STATE,
    verifier::REJECT,
    object::LOAD,
];
