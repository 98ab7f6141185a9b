//! The kernel console as the agent's stdin/stdout/stderr.
//!
//! Without a `/dev/console` node in the initramfs the kernel starts PID 1 with fds 0-2 closed, so
//! once devtmpfs is mounted the agent opens `/dev/console` itself and puts it on 0, 1 and 2. The
//! host logs the console; results never depend on it (they go over the channel).

use std::io;

/// Put `/dev/console` on fds 0, 1 and 2. Returns the errno text when the console cannot be opened;
/// the agent goes on without one (the channel still works).
pub fn attach() -> Result<(), String> {
    // SAFETY: the path is a NUL-terminated literal; open has no other preconditions.
    let fd = unsafe { libc::open(c"/dev/console".as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    if fd < 0 {
        return Err(format!("open(/dev/console) failed: {}", crate::sys::errno_text(crate::sys::errno())));
    }
    for target in 0..=2 {
        if fd != target {
            // SAFETY: fd is an open descriptor we own; dup2 onto 0-2 replaces whatever was there.
            if unsafe { libc::dup2(fd, target) } < 0 {
                return Err(format!("dup2(/dev/console, {target}) failed: {}", io::Error::last_os_error()));
            }
        }
    }
    if fd > 2 {
        // SAFETY: fd is ours and now duplicated onto 0-2; closing the spare copy is sound.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// One line on the console, prefixed so the host can pick agent lines out of kernel output.
pub fn say(line: &str) {
    eprintln!("kmatrix-agent: {line}");
}
