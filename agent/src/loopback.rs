//! `lo` up before `Hello`, as on any Linux machine: a program in the guest that serves or
//! connects on 127.0.0.1 (a test's own HTTP server, a TCP tracing tool's demo) otherwise gets
//! `ENETUNREACH`. Done with one rtnetlink request (`RTM_NEWLINK`, `IFF_UP` on the loopback
//! device, ifindex 1 in the initial namespace), so the image needs no `ip`.
//!
//! Not a network: that is `net` (`--net user`).

use anyhow::Result;

/// The loopback device's index: the first device registered in the initial network namespace.
const LOOPBACK_IFINDEX: i32 = 1;

/// Bring `lo` up and wait for the kernel's acknowledgement.
pub fn up() -> Result<()> {
    crate::net::transact(&crate::net::link_up_request(LOOPBACK_IFINDEX), "RTM_NEWLINK lo up")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_one_newlink_with_up_on_ifindex_1() {
        let r = crate::net::link_up_request(LOOPBACK_IFINDEX);
        assert_eq!(r.len(), 32);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes(r[4..6].try_into().unwrap()), libc::RTM_NEWLINK);
        assert_eq!(i32::from_ne_bytes(r[20..24].try_into().unwrap()), 1);
        assert_eq!(u32::from_ne_bytes(r[24..28].try_into().unwrap()), libc::IFF_UP as u32);
    }

    #[test]
    fn acks_are_read_as_errnos() {
        let mut ack = vec![0u8; 36];
        ack[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        assert_eq!(crate::net::ack_errno(&ack), Some(0));
        ack[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(crate::net::ack_errno(&ack), Some(libc::EPERM));
        ack[4..6].copy_from_slice(&16u16.to_ne_bytes());
        assert_eq!(crate::net::ack_errno(&ack), None);
        assert_eq!(crate::net::ack_errno(&[0; 8]), None);
    }
}
