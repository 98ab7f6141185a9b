//! What scenarios of several families share, and nothing of the families themselves: a scenario
//! file imports from here, this module never imports a scenario.
//!
//! - `verdict`: counts, verdicts, `unsupported` found while running, timings;
//! - `openat_loop`, `workload`: the workloads, their parameters and summary lines;
//! - `user_workload`: the workload a scenario takes as a parameter (a built-in or a host command);
//! - `gated`: arming tracefs events around a gated workload;
//! - `probe_events`: defining kprobe/uprobe/dynamic events and reading their entries;
//! - `tracer`: a workload under the function or function_graph tracer;
//! - `markers`: trace_marker strings written and found again;
//! - `perf`: perf_event_open counters on the workload;
//! - `bpf`, `bpf_output`: BPF programs attached for a workload run, and their output channels;
//! - `host_tool`, `stacks`: the host's tools run in the shared host root, and sampled stacks
//!   folded for flame graphs (the `tool.*` family).

pub mod bpf;
pub mod bpf_output;
pub mod gated;
pub mod host_tool;
pub mod markers;
pub mod openat_loop;
pub mod perf;
pub mod probe_events;
pub mod stacks;
pub mod tracer;
pub mod user_workload;
pub mod verdict;
pub mod workload;
