//! kmatrix host library: kernels, guest images, QEMU, the guest channel, runs and reports.
//!
//! The `kmatrix` binary is a thin front over this crate; tests drive the same API.

#![warn(missing_docs)]

pub mod bench;
pub mod bisect;
pub mod bpf_object;
pub mod btf;
pub mod cache;
pub mod catalogue;
pub mod cli;
pub mod core_check;
pub mod elf;
pub mod exec;
pub mod exit;
pub mod gc;
pub mod guest;
pub mod image;
pub mod kernel;
pub mod report;
pub mod run;
pub mod selftest;
pub mod session;
pub mod settings;
pub mod testing;
pub mod user_command;
pub mod vm;

/// An error and every cause under it on one line (`a: b: c`), for results and reports that
/// keep a reason as text.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
