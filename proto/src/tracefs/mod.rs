//! Parsers of the tracefs files the agent reads: `trace` lines and stacks, an event's `format`,
//! `kprobe_profile`, `hist`, the README's probe syntaxes and `per_cpu/*/stats` (function_graph
//! lines are [`crate::ftrace::graph`]). Pure string parsing, no I/O, so they sit in this library
//! where the fuzz targets (`fuzz/`) and the host can reach them; the agent's `tracefs` module
//! owns the files, the writes and the errnos, and re-exports these.

pub mod format;
pub mod hist;
pub mod profile;
pub mod readme;
pub mod stats;
pub mod trace;
