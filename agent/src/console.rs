//! The kernel console as the agent's stdin/stdout/stderr.
//!
//! Without a `/dev/console` node in the initramfs the kernel starts PID 1 with fds 0-2 closed, so
//! once devtmpfs is mounted the agent opens `/dev/console` itself and puts it on 0, 1 and 2. The
//! host logs the console; results never depend on it (they go over the channel).

use std::io;

/// Why the console is not on fds 0-2.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("open(/dev/console) failed: {}", crate::sys::errno_text(*.errno))]
    Open { errno: i32 },
    #[error("dup2(/dev/console, {target}) failed: {source}")]
    Dup2 { target: i32, source: io::Error },
}

/// Put `/dev/console` on fds 0, 1 and 2. Returns why when the console cannot be opened; the
/// agent goes on without one (the channel still works).
pub fn attach() -> Result<(), ConsoleError> {
    // SAFETY: the path is a NUL-terminated literal; open has no other preconditions.
    let fd = unsafe { libc::open(c"/dev/console".as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    if fd < 0 {
        return Err(ConsoleError::Open { errno: crate::sys::errno() });
    }
    for target in 0..=2 {
        if fd != target {
            // SAFETY: fd is an open descriptor we own; dup2 onto 0-2 replaces whatever was there.
            if unsafe { libc::dup2(fd, target) } < 0 {
                return Err(ConsoleError::Dup2 { target, source: io::Error::last_os_error() });
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
