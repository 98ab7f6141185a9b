//! Types shared by the kmatrix host and its in-guest agent.
//!
//! Everything that crosses the guest channel is defined here, once: the messages (JSON lines, one
//! message a line), the capability record the agent sends in `Hello`, and the result of a scenario.
//! The host also writes results to disk in this shape, so a results file and the channel agree.
//!
//! This crate holds data and small pure helpers only: no I/O, no parsing of kernel files (the agent
//! and the harness own those) beyond what both sides read — ftrace's and tracefs's line formats
//! ([`ftrace`], [`tracefs`], fuzzed) and the kernel version of a release or a `since`
//! ([`KernelVersion`]).

// The shared vocabulary of host and guest: every public item says what it means.
#![warn(missing_docs)]

mod caps;
pub mod ftrace;
mod msg;
mod result;
pub mod tracefs;
mod version;

pub use caps::{
    AgentBoot, BpfFeatures, BtfFeatures, Capabilities, ConfigOptions, KernelIdentity, ModuleLoad, MountRecord, Mounted,
    ProbeSyntax, TracefsFeatures,
};
pub use msg::{
    ExecOutcome, ExecRequest, GuestMsg, HostMsg, RunRequest, Share, ShareMount, StdinMode, EXTERNAL_BTF, HEADERS_ENV,
    MAX_LINE, PROTO_VERSION, ROOT_TAG,
};
pub use result::{
    bounded, Capture, Cause, Count, KernelBuild, ScenarioInfo, ScenarioResult, Status, Timings, MAX_CAPTURE,
    MAX_EXCERPT,
};
pub use version::KernelVersion;
