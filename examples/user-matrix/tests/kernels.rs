//! The whole kernel-compatibility test of a user's crate: the tracing paths it depends on, on the
//! kernels it supports. `cargo test --test kernels -- --list` shows the trials.

use kmatrix::testing::{MatrixTest, Status};

fn main() {
    MatrixTest::new()
        .kernels(&["debian-6.1"])
        .scenarios("kprobe.tracefs.openat,ftrace.event.sys_enter_openat")
        .expect("debian-6.1", "kprobe.tracefs.openat", Status::Pass, "our tool reads do_sys_openat2 via kprobe_events")
        .main()
}
