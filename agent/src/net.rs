//! The guest's network besides `lo`: with `--net user` the host gives the guest QEMU's user-mode
//! network on a virtio-net device and says so on the kernel command line (`kmatrix.net=user`);
//! before `Hello` the agent loads its driver from the image's `kmatrix-net.load`, brings `eth0`
//! up at QEMU's fixed address (10.0.2.15/24) with the default route through QEMU's gateway
//! (10.0.2.2, which is also the host's loopback), all by rtnetlink, so the image needs no `ip`
//! and no DHCP client. Also the rtnetlink transaction `loopback` uses.
//!
//! Not here: names (DNS): programs read the host's `/etc/resolv.conf` through the share, and
//! QEMU's resolver is 10.0.2.3.

use crate::modules;
use anyhow::{bail, Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The image's list of the network driver's modules, in load order.
pub const LOAD_LIST: &str = "/lib/modules/kmatrix-net.load";
/// The interface QEMU's network appears as (no udev renames it in the guest).
pub const IFACE: &str = "eth0";
/// QEMU's user-mode network: the guest's address, its prefix, the gateway.
const ADDRESS: [u8; 4] = [10, 0, 2, 15];
const PREFIX: u8 = 24;
const GATEWAY: [u8; 4] = [10, 0, 2, 2];

/// Send one rtnetlink request `req` (which asks for an ack) and wait for the kernel's answer;
/// `what` names it in errors.
pub fn transact(req: &[u8], what: &str) -> Result<()> {
    // SAFETY: socket() takes no pointers; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket(AF_NETLINK, NETLINK_ROUTE) failed");
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: send reads req.len() bytes from a live buffer.
    let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent != req.len() as isize {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("send({what}) failed"));
    }
    let mut buf = [0u8; 512];
    // SAFETY: recv writes at most buf.len() bytes into buf.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("recv({what} ack) failed"));
    }
    match ack_errno(&buf[..n as usize]) {
        Some(0) => Ok(()),
        Some(e) => Err(std::io::Error::from_raw_os_error(e)).with_context(|| format!("{what} refused")),
        None => bail!("{what}: no acknowledgement in {n} bytes"),
    }
}

/// The errno of an `NLMSG_ERROR` reply (0 = the ack of success), `None` for anything else.
pub fn ack_errno(reply: &[u8]) -> Option<i32> {
    let ty = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if i32::from(ty) != libc::NLMSG_ERROR {
        return None;
    }
    let err = i32::from_ne_bytes(reply.get(16..20)?.try_into().ok()?);
    Some(-err)
}

/// A netlink message of type `ty` with `flags` (besides REQUEST|ACK) and `body` (the family
/// header and its attributes, each already padded to 4 bytes).
fn message(ty: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let len = (16 + body.len()) as u32;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16 | flags).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    m.extend_from_slice(body);
    m
}

/// An rtattr of `ty` holding `data` (4 bytes here: no padding needed).
fn attr(ty: u16, data: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + data.len());
    a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&ty.to_ne_bytes());
    a.extend_from_slice(data);
    a
}

/// `RTM_NEWLINK` setting `IFF_UP` on interface `index`.
pub fn link_up_request(index: i32) -> Vec<u8> {
    let mut b = vec![libc::AF_UNSPEC as u8, 0];
    b.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_flags
    b.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_change
    message(libc::RTM_NEWLINK, 0, &b)
}

/// `RTM_NEWADDR` of `addr/prefix` on interface `index`.
fn address_request(index: i32, addr: [u8; 4], prefix: u8) -> Vec<u8> {
    let mut b = vec![libc::AF_INET as u8, prefix, 0, libc::RT_SCOPE_UNIVERSE];
    b.extend_from_slice(&(index as u32).to_ne_bytes());
    b.extend(attr(libc::IFA_LOCAL, &addr));
    b.extend(attr(libc::IFA_ADDRESS, &addr));
    message(libc::RTM_NEWADDR, (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16, &b)
}

/// `RTM_NEWROUTE` of the default route through `gateway` on interface `index`.
fn default_route_request(index: i32, gateway: [u8; 4]) -> Vec<u8> {
    let mut b = vec![
        libc::AF_INET as u8,
        0, // dst_len: the default route
        0,
        0,
        libc::RT_TABLE_MAIN,
        libc::RTPROT_BOOT,
        libc::RT_SCOPE_UNIVERSE,
        libc::RTN_UNICAST,
    ];
    b.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    b.extend(attr(libc::RTA_GATEWAY, &gateway));
    b.extend(attr(libc::RTA_OIF, &(index as u32).to_ne_bytes()));
    message(libc::RTM_NEWROUTE, (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16, &b)
}

/// With `kmatrix.net=user` on the command line: the driver loaded and `eth0` configured; what was
/// done (or what failed), for the console. `None` without the word.
pub fn preload() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline.split_whitespace().find(|w| *w == "kmatrix.net=user")?;
    let loaded = modules::load_listed(Path::new(LOAD_LIST));
    let said: Vec<String> = loaded.iter().map(|m| format!("{} {}", m.name, m.outcome)).collect();
    Some(match configure() {
        Ok(()) => format!("network: {IFACE} 10.0.2.15/24 via 10.0.2.2 (modules: {})", said.join(", ")),
        Err(e) => format!("network: {e:#} (modules: {})", said.join(", ")),
    })
}

fn configure() -> Result<()> {
    let name = std::ffi::CString::new(IFACE).context("interface name")?;
    // SAFETY: if_nametoindex reads a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    if index == 0 {
        return Err(std::io::Error::last_os_error()).context(format!("no interface {IFACE}"));
    }
    transact(&link_up_request(index), &format!("RTM_NEWLINK {IFACE} up"))?;
    transact(&address_request(index, ADDRESS, PREFIX), &format!("RTM_NEWADDR 10.0.2.15/24 on {IFACE}"))?;
    transact(&default_route_request(index, GATEWAY), "RTM_NEWROUTE default via 10.0.2.2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_laid_out_as_rtnetlink_reads_them() {
        let up = link_up_request(1);
        assert_eq!(up.len(), 32);
        assert_eq!(u16::from_ne_bytes(up[4..6].try_into().unwrap()), libc::RTM_NEWLINK);
        assert_eq!(i32::from_ne_bytes(up[20..24].try_into().unwrap()), 1);
        let a = address_request(2, ADDRESS, PREFIX);
        // header 16 + ifaddrmsg 8 + two 8-byte attributes
        assert_eq!((a.len(), u32::from_ne_bytes(a[0..4].try_into().unwrap())), (40, 40));
        assert_eq!((a[16], a[17]), (libc::AF_INET as u8, 24));
        assert_eq!(&a[28..32], &ADDRESS);
        let r = default_route_request(2, GATEWAY);
        // header 16 + rtmsg 12 + gateway 8 + oif 8
        assert_eq!(r.len(), 44);
        assert_eq!(r[20], libc::RT_TABLE_MAIN);
        assert_eq!(u16::from_ne_bytes(r[30..32].try_into().unwrap()), libc::RTA_GATEWAY);
        assert_eq!(&r[32..36], &GATEWAY);
    }
}
