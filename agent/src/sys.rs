//! Thin, safe wrappers over the few libc calls the agent needs in more than one place: errno
//! naming, C strings, `uname`, `mkdir -p`, and time since the agent started.
//!
//! Not a general syscall layer: each caller that needs a special call (mount, finit_module,
//! reboot, termios) makes it in its own module, next to the reason it needs it.

use anyhow::{Context, Result};
use std::ffi::{CStr, CString};
use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

/// When the agent started, for the "hello sent after N ms" line and per-step timings.
pub fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Milliseconds since [`started`].
pub fn since_start_ms() -> u64 {
    started().elapsed().as_millis() as u64
}

/// errno of the last failed libc call.
pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The symbolic name of an errno value (`ENOENT`), or `E<n>` when it is not one we list.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTTY => "ENOTTY",
        libc::ENOTSUP => "EOPNOTSUPP",
        libc::ENOKEY => "ENOKEY",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EILSEQ => "EILSEQ",
        _ => "",
    };
    if name.is_empty() {
        format!("E{e}")
    } else {
        name.to_string()
    }
}

/// `ENOENT (No such file or directory)`: the form outcomes and error messages use.
pub fn errno_text(e: i32) -> String {
    let msg = io::Error::from_raw_os_error(e).to_string();
    // std appends " (os error N)"; the symbolic name already says which.
    let msg = msg.split(" (os error").next().unwrap_or(&msg).to_string();
    format!("{} ({msg})", errno_name(e))
}

/// The errno an `anyhow` chain carries, if any layer is an OS error.
pub fn chain_errno(err: &anyhow::Error) -> Option<i32> {
    err.chain().find_map(|cause| cause.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error))
}

/// A C string from a Rust string that must not contain NUL (paths, argv, fs names).
pub fn cstring(s: &str) -> Result<CString> {
    CString::new(s).with_context(|| format!("string {s:?} contains a NUL byte"))
}

/// A C path from a `Path`.
pub fn cpath(p: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).with_context(|| format!("path {} contains a NUL byte", p.display()))
}

/// `uname(2)` fields: release, version, machine.
pub struct Uname {
    pub release: String,
    pub version: String,
    pub machine: String,
}

pub fn uname() -> Result<Uname> {
    // SAFETY: utsname is plain old data; all-zero bytes are a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname for the duration of the call.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(io::Error::last_os_error()).context("uname() failed");
    }
    let field = |f: &[libc::c_char]| {
        // SAFETY: the kernel NUL-terminates every utsname field within its array.
        unsafe { CStr::from_ptr(f.as_ptr()) }.to_string_lossy().into_owned()
    };
    Ok(Uname { release: field(&u.release), version: field(&u.version), machine: field(&u.machine) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_names_and_explains() {
        assert_eq!(errno_text(libc::ENOENT), "ENOENT (No such file or directory)");
        assert_eq!(errno_name(4095), "E4095");
    }

    #[test]
    fn chain_errno_finds_the_os_error_under_context() {
        let err = anyhow::Error::new(io::Error::from_raw_os_error(libc::EBUSY)).context("outer");
        assert_eq!(chain_errno(&err), Some(libc::EBUSY));
        assert_eq!(chain_errno(&anyhow::anyhow!("plain")), None);
    }
}
