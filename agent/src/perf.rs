//! `perf_event_open(2)` for scenarios: counting events (software, hardware, tracepoint, and the
//! kprobe and uprobe PMUs) on one task, and sampling into an mmap ring buffer.
//!
//! Only what the perf scenarios need, in the uapi layout of `struct perf_event_attr` up to
//! `PERF_ATTR_SIZE_VER5` (kernels since 4.1 accept it). Not a perf tool: no groups, no
//! multiplexing logic, no symbolization. Errors keep the errno, because for a perf path the
//! errno is the result (ENOENT: no such PMU/event; EOPNOTSUPP: the PMU cannot do it).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub const TYPE_HARDWARE: u32 = 0;
pub const TYPE_SOFTWARE: u32 = 1;
pub const TYPE_TRACEPOINT: u32 = 2;

pub const HW_INSTRUCTIONS: u64 = 1;

pub const SW_CPU_CLOCK: u64 = 0;
pub const SW_TASK_CLOCK: u64 = 1;
pub const SW_PAGE_FAULTS: u64 = 2;
pub const SW_CONTEXT_SWITCHES: u64 = 3;
pub const SW_CPU_MIGRATIONS: u64 = 4;

pub const SAMPLE_IP: u64 = 1 << 0;
pub const SAMPLE_TID: u64 = 1 << 1;
pub const SAMPLE_CALLCHAIN: u64 = 1 << 5;

const FORMAT_TOTAL_TIME_ENABLED: u64 = 1 << 0;
const FORMAT_TOTAL_TIME_RUNNING: u64 = 1 << 1;

const FLAG_DISABLED: u64 = 1 << 0;
const FLAG_EXCLUDE_HV: u64 = 1 << 6;

const IOC_ENABLE: libc::c_ulong = 0x2400;
const IOC_DISABLE: libc::c_ulong = 0x2401;

const RECORD_LOST: u32 = 2;
const RECORD_SAMPLE: u32 = 9;
/// Callchain entries at or above this are context markers (PERF_CONTEXT_KERNEL, _USER, ...).
pub const CONTEXT_MAX: u64 = (-4095i64) as u64;
pub const CONTEXT_KERNEL: u64 = (-128i64) as u64;
pub const CONTEXT_USER: u64 = (-512i64) as u64;

/// `struct perf_event_attr`, PERF_ATTR_SIZE_VER5 (112 bytes).
#[repr(C)]
#[derive(Default, Clone)]
pub struct Attr {
    pub type_: u32,
    pub size: u32,
    pub config: u64,
    /// `sample_period` (or `sample_freq` with the freq flag).
    pub sample_period: u64,
    pub sample_type: u64,
    pub read_format: u64,
    /// The bitfield word: disabled, inherit, ..., exclude_hv, ...
    pub flags: u64,
    pub wakeup_events: u32,
    pub bp_type: u32,
    /// `config1`: kprobe_func / uprobe_path (a pointer to a C string) for the probe PMUs.
    pub config1: u64,
    /// `config2`: kprobe_addr or probe_offset.
    pub config2: u64,
    pub branch_sample_type: u64,
    pub sample_regs_user: u64,
    pub sample_stack_user: u32,
    pub clockid: i32,
    pub sample_regs_intr: u64,
    pub aux_watermark: u32,
    pub sample_max_stack: u16,
    pub reserved_2: u16,
}

impl Attr {
    /// A counter of `type_`/`config`, created disabled (enabled once the workload is ready).
    pub fn counter(type_: u32, config: u64) -> Attr {
        Attr {
            type_,
            size: std::mem::size_of::<Attr>() as u32,
            config,
            read_format: FORMAT_TOTAL_TIME_ENABLED | FORMAT_TOTAL_TIME_RUNNING,
            flags: FLAG_DISABLED | FLAG_EXCLUDE_HV,
            ..Default::default()
        }
    }
}

/// A perf event fd, with the C string its attr points to kept alive as long as the event.
pub struct Event {
    fd: OwnedFd,
    _name: Option<CString>,
}

/// A counter's value and how long it was enabled and running, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reading {
    pub value: u64,
    pub enabled_ns: u64,
    pub running_ns: u64,
}

/// Open `attr` on task `pid` (any CPU). `name` is the C string config1 must point to (probe
/// PMUs); it is set here so the pointer cannot outlive the string. Err is the errno.
pub fn open(mut attr: Attr, pid: i32, name: Option<&str>) -> Result<Event, i32> {
    let name = match name {
        Some(n) => Some(CString::new(n).map_err(|_| libc::EINVAL)?),
        None => None,
    };
    if let Some(n) = &name {
        attr.config1 = n.as_ptr() as u64;
    }
    // SAFETY: attr is a live, initialised repr(C) perf_event_attr whose size field matches its
    // size; config1 points to `name`, which lives until the call returns (and in Event after).
    let rc = unsafe {
        libc::syscall(libc::SYS_perf_event_open, &attr as *const Attr, pid, -1 as libc::c_int, -1 as libc::c_int, 0)
    };
    if rc < 0 {
        return Err(crate::sys::errno());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) };
    Ok(Event { fd, _name: name })
}

impl Event {
    pub fn enable(&self) -> Result<(), i32> {
        self.ioctl(IOC_ENABLE)
    }

    pub fn disable(&self) -> Result<(), i32> {
        self.ioctl(IOC_DISABLE)
    }

    fn ioctl(&self, req: libc::c_ulong) -> Result<(), i32> {
        // SAFETY: a perf ioctl on our own fd with argument 0 touches no memory of ours.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), req, 0) };
        if rc < 0 {
            Err(crate::sys::errno())
        } else {
            Ok(())
        }
    }

    /// The counter (read_format TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING).
    pub fn read(&self) -> Result<Reading, i32> {
        let mut buf = [0u64; 3];
        // SAFETY: buf is 24 writable bytes, the size of this read_format.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 24) };
        if n != 24 {
            return Err(if n < 0 { crate::sys::errno() } else { libc::EIO });
        }
        Ok(Reading { value: buf[0], enabled_ns: buf[1], running_ns: buf[2] })
    }

    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// A dynamic PMU's sysfs file that could not be read or held something else than expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PmuError {
    #[error("read({path}) failed: {detail}")]
    Read { path: String, detail: String },
    /// `want` is what it should hold: `a number`, `config:<bit>`.
    #[error("{path} holds {text:?}, not {want}")]
    Content { path: String, text: String, want: &'static str },
}

/// A PMU sysfs file's text.
fn pmu_file(path: String) -> Result<(String, String), PmuError> {
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(e) => Err(PmuError::Read { path, detail: e.to_string() }),
    }
}

/// The `type` of a dynamic PMU (`kprobe`, `uprobe`) from sysfs.
pub fn pmu_type(pmu: &str) -> Result<u32, PmuError> {
    let (path, text) = pmu_file(format!("/sys/bus/event_source/devices/{pmu}/type"))?;
    text.trim().parse().map_err(|_| PmuError::Content { path, text, want: "a number" })
}

/// The config bit a PMU format names (`retprobe` reads `config:0` on x86).
pub fn format_bit(pmu: &str, field: &str) -> Result<u32, PmuError> {
    let (path, text) = pmu_file(format!("/sys/bus/event_source/devices/{pmu}/format/{field}"))?;
    parse_format_bit(&text).ok_or(PmuError::Content { path, text, want: "config:<bit>" })
}

fn parse_format_bit(text: &str) -> Option<u32> {
    text.trim().strip_prefix("config:")?.parse().ok()
}

/// A sampling event with its ring buffer mapped (1 + 2^k pages).
pub struct Ring {
    event: Event,
    base: *mut u8,
    len: usize,
    page: usize,
}

/// One `PERF_RECORD_SAMPLE` with sample_type IP | TID | CALLCHAIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub ip: u64,
    pub pid: u32,
    pub tid: u32,
    pub callchain: Vec<u64>,
}

/// What the ring held.
#[derive(Debug, Default)]
pub struct Drained {
    pub samples: Vec<Sample>,
    /// Sum of PERF_RECORD_LOST counts.
    pub lost: u64,
    /// Records of other types (mmap, comm, ...), none expected here.
    pub other: u64,
    /// Bytes the kernel wrote in total (data_head).
    pub head: u64,
}

impl Ring {
    /// Open `attr` on `pid` and map `data_pages` (a power of two) of ring buffer.
    pub fn open(attr: Attr, pid: i32, data_pages: usize) -> Result<Ring, i32> {
        let event = open(attr, pid, None)?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = page * (1 + data_pages);
        // SAFETY: mapping a perf fd shared and read-write is how its ring buffer is read; the
        // length is 1 + 2^k pages as the kernel requires, and the mapping is owned by Ring.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, event.fd(), 0)
        };
        if base == libc::MAP_FAILED {
            return Err(crate::sys::errno());
        }
        Ok(Ring { event, base: base.cast(), len, page })
    }

    pub fn event(&self) -> &Event {
        &self.event
    }

    /// Every record written so far (call after the event is disabled).
    pub fn drain(&self) -> Drained {
        // data_head sits at offset 1024 of the header page; the kernel publishes it with a
        // release store, so read it with an acquire load before reading the data.
        // SAFETY: the header page is mapped for the life of self and data_head is an aligned u64.
        let head = unsafe {
            let p = self.base.add(1024) as *const std::sync::atomic::AtomicU64;
            (*p).load(std::sync::atomic::Ordering::Acquire)
        };
        let size = self.len - self.page;
        // SAFETY: the data area is the `size` bytes after the header page, mapped for self.
        let data = unsafe { std::slice::from_raw_parts(self.base.add(self.page), size) };
        let start = head.saturating_sub(size as u64);
        let mut out = Drained { head, ..Default::default() };
        parse_records(data, start, head, &mut out);
        out
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: base/len are the mapping made in open and nothing else unmaps it.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Parse the records between byte positions `from` and `to` of the ring `data` (positions wrap
/// modulo its length).
fn parse_records(data: &[u8], from: u64, to: u64, out: &mut Drained) {
    let size = data.len() as u64;
    let byte = |pos: u64| data[(pos % size) as usize];
    let read = |pos: u64, n: usize| -> Vec<u8> { (0..n as u64).map(|i| byte(pos + i)).collect() };
    let u64_at = |pos: u64| u64::from_le_bytes(read(pos, 8).try_into().unwrap_or([0; 8]));
    let mut pos = from;
    while pos + 8 <= to {
        let hdr = read(pos, 8);
        let kind = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let len = u16::from_le_bytes([hdr[6], hdr[7]]) as u64;
        if len < 8 || pos + len > to {
            break;
        }
        match kind {
            RECORD_SAMPLE if len >= 32 => {
                let ip = u64_at(pos + 8);
                let pidtid = u64_at(pos + 16);
                let nr = u64_at(pos + 24).min((len - 32) / 8);
                let callchain = (0..nr).map(|i| u64_at(pos + 32 + 8 * i)).collect();
                out.samples.push(Sample { ip, pid: pidtid as u32, tid: (pidtid >> 32) as u32, callchain });
            }
            // struct { header; u64 id; u64 lost; }
            RECORD_LOST if len >= 24 => out.lost += u64_at(pos + 16),
            _ => out.other += 1,
        }
        pos += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_has_the_ver5_size() {
        assert_eq!(std::mem::size_of::<Attr>(), 112);
    }

    #[test]
    fn format_bits_parse() {
        assert_eq!(parse_format_bit("config:0\n"), Some(0));
        assert_eq!(parse_format_bit("config1:0-63"), None);
    }

    fn record(kind: u32, body: &[u64]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&kind.to_le_bytes());
        r.extend_from_slice(&0u16.to_le_bytes());
        r.extend_from_slice(&((8 + 8 * body.len()) as u16).to_le_bytes());
        for v in body {
            r.extend_from_slice(&v.to_le_bytes());
        }
        r
    }

    #[test]
    fn parses_samples_and_lost_records_across_the_wrap() {
        let pidtid = (7u64 << 32) | 7;
        let mut stream = record(RECORD_SAMPLE, &[0x401000, pidtid, 3, CONTEXT_USER, 0x401000, 0x401100]);
        stream.extend(record(RECORD_LOST, &[1, 5]));
        stream.extend(record(RECORD_SAMPLE, &[0x402000, pidtid, 0]));
        // Place the stream in a 128-byte ring starting at byte 100, so it wraps.
        let mut ring = vec![0u8; 128];
        let start = 100u64;
        for (i, b) in stream.iter().enumerate() {
            ring[((start + i as u64) % 128) as usize] = *b;
        }
        let mut out = Drained::default();
        parse_records(&ring, start, start + stream.len() as u64, &mut out);
        assert_eq!(out.samples.len(), 2);
        assert_eq!(out.samples[0].callchain, vec![CONTEXT_USER, 0x401000, 0x401100]);
        assert_eq!((out.samples[0].pid, out.samples[0].tid), (7, 7));
        assert!(out.samples[1].callchain.is_empty());
        assert_eq!(out.lost, 5);
    }
}
