//! The harness's integration tests, as one test binary (`cargo test -p kmatrix --test integration`):
//! one module per subject, so a cold `cargo test` compiles and links them once, not two dozen
//! times (each binary linked the whole library again: ~10 s apiece on a loaded 2-core host), and
//! a library change relinks one binary. Select by module as before: `cargo test --test
//! integration vm_accel::`, `cargo nextest run -E 'test(/^vm_accel::/)'`.
//!
//! Modules whose name starts with `vm_` boot real kernels under QEMU; the others render reports
//! (`reports`), check CO-RE relocations offline (`core_check`), collect garbage (`gc`) or run
//! the peers' benchmark (`bench_peers`). Three stay binaries of their own: `vm_soak` counts this
//! process's file descriptors, children, temporary files and memory, which other tests running
//! beside it in one process would change; `vm_ci_workflow` and `vm_ubuntu_host` build kmatrix
//! (a clean clone's workflow build, a release build in the Ubuntu root) on both cores for
//! minutes, and cargo runs test binaries one after another, so no guest with a deadline runs
//! beside those builds (one did here: a scheduler test's scenario timed out under such a build).

#[path = "../common/mod.rs"]
mod common;

mod bench_peers;
mod core_check;
mod gc;
mod reports;
mod vm_accel;
mod vm_action;
mod vm_artifacts;
mod vm_bisect;
mod vm_boot;
mod vm_bpf_object;
mod vm_exec;
mod vm_faults;
mod vm_machine;
mod vm_rerun;
mod vm_scheduler;
mod vm_selftest;
mod vm_share;
mod vm_shell;
mod vm_snapshot;
mod vm_tool_missing;
mod vm_ubuntu_kernels;
mod vm_user_command;
mod vm_user_workload;
