//! Probing the `bpf(2)` syscall for the capability record.
//!
//! Only presence is probed here: a `BPF_PROG_LOAD` with an empty attribute is invalid on every
//! kernel that has the syscall (EINVAL, or EPERM when locked down) and ENOSYS on one that does
//! not. Loading and attaching real programs belongs to the bpf scenarios.

const BPF_PROG_LOAD: libc::c_long = 5;

/// Whether the kernel answers `bpf(2)` with anything but ENOSYS.
pub fn syscall_present() -> bool {
    // SAFETY: a null attribute with size 0 is rejected by the kernel before any memory access;
    // no memory of ours is read or written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            std::ptr::null::<u8>(),
            0 as libc::c_uint,
        )
    };
    if rc >= 0 {
        // Cannot load an empty program; if it somehow returned an fd, close it.
        // SAFETY: rc is an fd the kernel just gave us.
        unsafe { libc::close(rc as libc::c_int) };
        return true;
    }
    crate::sys::errno() != libc::ENOSYS
}
