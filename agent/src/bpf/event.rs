//! `struct km_event` of tracer-ebpf/include/kmatrix.h, as the agent reads it from maps, ring
//! buffers and perf buffers. The layout is the C one; change both together (the tests pin it).

/// What a BPF program saw on one hit of the workload; fields a program does not fill are zero.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KmEvent {
    /// Thread id and tgid from `bpf_get_current_pid_tgid()`.
    pub pid: u32,
    pub tgid: u32,
    /// Per program: return value, syscall number, dfd, sample period.
    pub aux: i64,
    /// `bpf_get_attach_cookie()` on multi links.
    pub cookie: u64,
    /// CO-RE reads of `task_struct`.
    pub task_pid: i32,
    pub task_tgid: i32,
    pub parent_tgid: i32,
    /// Which task state field the kernel has: 1 `__state` (5.14+), 2 `state`.
    pub state_field: u32,
    pub state: i64,
    pub name: [u8; NAME_LEN],
}

pub const NAME_LEN: usize = 64;
/// KM_MAX_EVENTS: slots in `km_events`; hits past it are counted, not recorded.
pub const MAX_EVENTS: u64 = 1024;

// SAFETY: KmEvent is repr(C), Copy, made of integers only, and has no padding (the test checks
// the size is the sum of its fields), so any bit pattern is a valid value.
unsafe impl aya::Pod for KmEvent {}

impl Default for KmEvent {
    fn default() -> Self {
        KmEvent {
            pid: 0,
            tgid: 0,
            aux: 0,
            cookie: 0,
            task_pid: 0,
            task_tgid: 0,
            parent_tgid: 0,
            state_field: 0,
            state: 0,
            name: [0; NAME_LEN],
        }
    }
}

impl KmEvent {
    /// The `name` field up to its NUL, lossily decoded.
    pub fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }

    /// An event from the bytes of a ring-buffer or perf-buffer record (which may carry
    /// trailing padding); None when too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<KmEvent> {
        if bytes.len() < std::mem::size_of::<KmEvent>() {
            return None;
        }
        // SAFETY: the length was checked, read_unaligned copes with any alignment, and every bit
        // pattern is a valid KmEvent (see the Pod impl).
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<KmEvent>()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn layout_matches_kmatrix_h() {
        assert_eq!(std::mem::size_of::<KmEvent>(), 112);
        assert_eq!(offset_of!(KmEvent, aux), 8);
        assert_eq!(offset_of!(KmEvent, cookie), 16);
        assert_eq!(offset_of!(KmEvent, task_pid), 24);
        assert_eq!(offset_of!(KmEvent, state_field), 36);
        assert_eq!(offset_of!(KmEvent, state), 40);
        assert_eq!(offset_of!(KmEvent, name), 48);
    }

    #[test]
    fn from_bytes_reads_a_record_and_its_name() {
        let mut e = KmEvent { pid: 7, tgid: 7, aux: -2, ..Default::default() };
        e.name[..5].copy_from_slice(b"/tmp\0");
        // SAFETY: KmEvent is plain data; viewing it as bytes is sound.
        let bytes =
            unsafe { std::slice::from_raw_parts((&e as *const KmEvent).cast::<u8>(), std::mem::size_of::<KmEvent>()) };
        let mut padded = bytes.to_vec();
        padded.extend_from_slice(&[0, 0, 0, 0]);
        let back = KmEvent::from_bytes(&padded).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.name(), "/tmp");
        assert!(KmEvent::from_bytes(&bytes[..10]).is_none());
    }
}
