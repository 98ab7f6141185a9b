//! Ending the guest: sync and power off, and the panic hook that does the same.
//!
//! PID 1 must never exit (the kernel panics) and never hang (the host would wait for its timeout),
//! so every way out of the agent ends here. When the agent is not PID 1 (run by hand on a
//! development host) it exits instead: powering off the developer's machine is never the answer.

use crate::console;
use std::sync::atomic::{AtomicI32, Ordering};

/// The channel's fd, published so the panic hook can send a last `Error` line without owning
/// the channel. -1 until the channel is open.
pub static CHANNEL_FD: AtomicI32 = AtomicI32::new(-1);

/// Sync filesystems and power the machine off. Never returns.
pub fn power_off() -> ! {
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        console::say("not PID 1: exiting instead of powering off");
        std::process::exit(1);
    }
    // SAFETY: sync has no preconditions and cannot fail.
    unsafe { libc::sync() };
    for cmd in [libc::LINUX_REBOOT_CMD_POWER_OFF, libc::LINUX_REBOOT_CMD_HALT, libc::LINUX_REBOOT_CMD_RESTART] {
        // SAFETY: reboot only acts on the machine; we are PID 1 with CAP_SYS_BOOT.
        unsafe { libc::reboot(cmd) };
        console::say(&format!("reboot({cmd:#x}) failed: {}", crate::sys::errno_text(crate::sys::errno())));
    }
    // Nothing else can stop the machine; PID 1 may not return, so wait for the host's timeout.
    loop {
        // SAFETY: pause has no preconditions; it only blocks.
        unsafe { libc::pause() };
    }
}

/// Report a fatal error on the console and the channel, then power off.
pub fn fatal(err: &anyhow::Error) -> ! {
    let message = format!("{err:#}");
    console::say(&format!("fatal: {message}"));
    send_raw_error(&message);
    power_off()
}

/// Install a panic hook that reports the panic like a fatal error and powers off, so a bug in the
/// agent shows up as an `Error` on the channel rather than a kernel panic ("Attempted to kill init").
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("agent panicked: {info}");
        console::say(&message);
        send_raw_error(&message);
        power_off()
    }));
}

/// Write one `Error` line straight to the channel fd, bypassing buffers other code may hold.
fn send_raw_error(message: &str) {
    let fd = CHANNEL_FD.load(Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    let msg = kmatrix_proto::GuestMsg::Error { message: message.to_string() };
    let Ok(mut line) = serde_json::to_vec(&msg) else {
        return;
    };
    line.push(b'\n');
    let mut rest = &line[..];
    while !rest.is_empty() {
        // SAFETY: fd stays open for the agent's lifetime; `rest` is a valid readable buffer.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}
