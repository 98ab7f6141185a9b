//! The guest's wall clock, set from the host's time that comes with every request.
//!
//! A guest restored from a snapshot wakes up with the clock it had when the snapshot was taken
//! (plus its uptime since the restore): minutes or days behind the host. `make` then sees files
//! from the future and trace timestamps cannot be matched with the host's logs. So the host puts
//! its `CLOCK_REALTIME` in each `Run` and `Exec` request, and the agent sets the guest's clock to
//! it before doing anything else, recording how far off it was. The channel's latency (well under
//! a millisecond on virtio-serial, a few under TCG's 8250) is the error left.
//!
//! Not for monotonic time: `CLOCK_MONOTONIC` is the guest's own and is never set.

use crate::sys;

/// Set `CLOCK_REALTIME` to `host_ns` (ns since the epoch) and return the guest's offset before
/// (ms, guest minus host); `None` when there was no time to set or setting it failed (said on the
/// console: a wrong clock is worth a line, not a failed request).
pub fn set_from_host(host_ns: Option<u64>) -> Option<f64> {
    let host_ns = host_ns?;
    let before = now_ns()?;
    let ts = libc::timespec {
        tv_sec: (host_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (host_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: clock_settime reads one valid timespec.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } != 0 {
        crate::console::say(&format!("clock_settime(CLOCK_REALTIME): {}", sys::errno_text(sys::errno())));
        return None;
    }
    Some((before as f64 - host_ns as f64) / 1e6)
}

/// `CLOCK_REALTIME` in ns since the epoch.
fn now_ns() -> Option<i128> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } != 0 {
        return None;
    }
    Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}
