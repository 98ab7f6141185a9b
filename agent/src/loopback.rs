//! `lo` up before `Hello`, as on any Linux machine: a program in the guest that serves or
//! connects on 127.0.0.1 (a test's own HTTP server, a TCP tracing tool's demo) otherwise gets
//! `ENETUNREACH`. Done with one rtnetlink request (`RTM_NEWLINK`, `IFF_UP` on the loopback
//! device, ifindex 1 in the initial namespace), so the image needs no `ip`.
//!
//! Not a network: the guest has no other interface.

use anyhow::{bail, Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The loopback device's index: the first device registered in the initial network namespace.
const LOOPBACK_IFINDEX: i32 = 1;

/// Bring `lo` up and wait for the kernel's acknowledgement.
pub fn up() -> Result<()> {
    // SAFETY: socket() takes no pointers; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket(AF_NETLINK, NETLINK_ROUTE) failed");
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let req = request();
    // SAFETY: send reads req.len() bytes from a live buffer.
    let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent != req.len() as isize {
        return Err(std::io::Error::last_os_error()).context("send(RTM_NEWLINK lo up) failed");
    }
    let mut buf = [0u8; 512];
    // SAFETY: recv writes at most buf.len() bytes into buf.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).context("recv(RTM_NEWLINK ack) failed");
    }
    match ack_errno(&buf[..n as usize]) {
        Some(0) => Ok(()),
        Some(e) => Err(std::io::Error::from_raw_os_error(e)).context("RTM_NEWLINK lo up refused"),
        None => bail!("RTM_NEWLINK lo up: no acknowledgement in {n} bytes"),
    }
}

/// `nlmsghdr` + `ifinfomsg` asking for `IFF_UP` on the loopback device, with an ack.
fn request() -> Vec<u8> {
    let len = 16 + 16u32;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    m.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    m.push(libc::AF_UNSPEC as u8); // ifi_family
    m.push(0); // pad
    m.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    m.extend_from_slice(&LOOPBACK_IFINDEX.to_ne_bytes());
    m.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_flags
    m.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_change
    m
}

/// The errno of an `NLMSG_ERROR` reply (0 = the ack of success), `None` for anything else.
fn ack_errno(reply: &[u8]) -> Option<i32> {
    let ty = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if i32::from(ty) != libc::NLMSG_ERROR {
        return None;
    }
    let err = i32::from_ne_bytes(reply.get(16..20)?.try_into().ok()?);
    Some(-err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_one_newlink_with_up_on_ifindex_1() {
        let r = request();
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
        assert_eq!(ack_errno(&ack), Some(0));
        ack[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(ack_errno(&ack), Some(libc::EPERM));
        ack[4..6].copy_from_slice(&16u16.to_ne_bytes());
        assert_eq!(ack_errno(&ack), None);
        assert_eq!(ack_errno(&[0; 8]), None);
    }
}
