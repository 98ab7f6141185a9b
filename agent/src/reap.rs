//! Reaping orphans: as PID 1 the agent inherits every process whose parent died (daemons an
//! `Exec` left behind). Reaped between requests only, never while a scenario waits for its own
//! child, so a scenario's `waitpid` always finds its workload.

/// Collect every exited child without blocking.
pub fn orphans() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG writes only to `status`, a valid int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
    }
}
