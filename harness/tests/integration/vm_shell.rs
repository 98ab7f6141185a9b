//! `kmatrix shell` driven as a person would, through a real terminal (tmux: `send-keys`, then
//! `capture-pane`): the host's bash on the guest's kernel, the guest's tracefs, the window size
//! and its changes, Ctrl-C reaching the guest's foreground program, and `exit N` ending kmatrix
//! with N.

use crate::common;

use common::Tmux;
use std::process::Command;
use std::time::Duration;

#[test]
fn vm_shell_is_interactive_follows_the_window_passes_ctrl_c_and_exits_with_the_status() {
    let cmd = format!(
        "env PS1='km-prompt$ ' {} shell --kernel debian-6.1 -- /bin/bash --norc --noprofile; echo KMATRIX-EXIT=$?; sleep 600",
        env!("CARGO_BIN_EXE_kmatrix")
    );
    let t = Tmux::start("shell", 100, 30, &cmd);
    t.wait_for("km-prompt$ ", 1, 120);
    t.send(&["echo TRACER=$(cat /sys/kernel/tracing/current_tracer) RELEASE=$(uname -r)", "Enter"]);
    let s = t.wait_for("TRACER=nop RELEASE=6.1.", 1, 30);
    assert!(s.contains("km-prompt$ "), "{s}");
    // The guest's terminal has the host's size, and follows it.
    t.send(&["echo SIZE=$(stty size)", "Enter"]);
    t.wait_for("SIZE=30 100", 1, 30);
    let st = Command::new("tmux").args(["resize-window", "-t", &t.session, "-x", "120", "-y", "40"]).status().unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(500));
    t.send(&["echo SIZE=$(stty size)", "Enter"]);
    t.wait_for("SIZE=40 120", 1, 30);
    // Ctrl-C goes to the guest's foreground program, not to kmatrix.
    // (Once `sleep` runs: a ^C before bash has handed it the terminal would go to bash itself.)
    t.send(&["echo SLEEPING; exec_sleep() { sleep 1000; }; exec_sleep", "Enter"]);
    t.wait_for("\nSLEEPING", 1, 30);
    std::thread::sleep(Duration::from_secs(3));
    let prompts = t.screen().matches("km-prompt$ ").count();
    t.send(&["C-c"]);
    // ^C flushes the terminal's input queue: type on only once the prompt is back.
    t.wait_for("km-prompt$ ", prompts + 1, 30);
    t.send(&["echo STATUS=$?", "Enter"]);
    t.wait_for("STATUS=130", 1, 30);
    t.send(&["exit 5", "Enter"]);
    let s = t.wait_for("KMATRIX-EXIT=", 1, 60);
    assert!(s.contains("KMATRIX-EXIT=5"), "{s}");
}
