//! The guest side of the host channel: finding the port, raw mode, and JSON lines in and out.
//!
//! A virtio-serial port named `kmatrix.0` is preferred (fast, and EOF when the host goes away);
//! the second 8250 UART, `/dev/ttyS1`, is the fallback every kernel has built in. A tty is put in
//! raw mode first, or the line discipline would echo the host's requests back and rewrite bytes.
//! This module moves lines; what the messages mean is `serve`'s business.

use crate::power::CHANNEL_FD;
use crate::sys;
use anyhow::{Context, Result};
use kmatrix_proto::{GuestMsg, MAX_LINE};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Name the host gives the virtio-serial port (`-device virtserialport,name=kmatrix.0`).
pub const PORT_NAME: &str = "kmatrix.0";
/// The fallback: COM2, the 8250's second UART.
pub const SERIAL_FALLBACK: &str = "/dev/ttyS1";
/// How long to wait for the named port once a virtio console device is known to exist: the host
/// announces ports over the control queue after the driver binds, so they appear asynchronously.
const PORT_WAIT: Duration = Duration::from_secs(3);

pub struct Channel {
    file: File,
    name: String,
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned for a newline.
    scanned: usize,
}

/// One line read from the channel.
pub enum Line {
    Text(Vec<u8>),
    /// Longer than [`MAX_LINE`]: dropped up to its newline; carries the length seen.
    TooLong(usize),
    /// The host closed the channel.
    Eof,
}

impl Channel {
    /// Find and open the channel (virtio-serial first), raw mode for a tty.
    pub fn open() -> Result<Channel> {
        let path = match find_virtio_port() {
            Some(p) => p,
            None => PathBuf::from(SERIAL_FALLBACK),
        };
        let file = open_port(&path)?;
        CHANNEL_FD.store(file.as_raw_fd(), Ordering::SeqCst);
        Ok(Channel { file, name: path.display().to_string(), buf: Vec::new(), scanned: 0 })
    }

    /// The device path in use, for the capability record.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Send one message as one JSON line.
    pub fn send(&mut self, msg: &GuestMsg) -> Result<()> {
        let mut line = serde_json::to_vec(msg).context("serialize guest message failed")?;
        line.push(b'\n');
        self.file.write_all(&line).with_context(|| format!("write({}) failed", self.name))
    }

    /// Read the next line (without its newline). Blocks until one arrives.
    pub fn recv(&mut self) -> Result<Line> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + i;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                self.scanned = 0;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Line::Text(line));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_LINE {
                return self.skip_long_line();
            }
            let n = self.read(&mut chunk)?;
            if n == 0 {
                return Ok(Line::Eof);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A line if one arrives within `timeout_ms` (a complete line already buffered comes at once),
    /// for loops that also watch other file descriptors (a running `Exec`). Over-long lines are
    /// skipped as in [`recv`](Self::recv).
    pub fn poll_recv(&mut self, timeout_ms: i32) -> Result<Option<Line>> {
        if self.buf[self.scanned..].contains(&b'\n') {
            return self.recv().map(Some);
        }
        let mut pfd = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, its count, a timeout.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc <= 0 || pfd.revents == 0 {
            return Ok(None);
        }
        let mut chunk = [0u8; 8192];
        let n = self.read(&mut chunk)?;
        if n == 0 {
            return Ok(Some(Line::Eof));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        if self.buf[self.scanned..].contains(&b'\n') || self.buf.len() > MAX_LINE {
            return self.recv().map(Some);
        }
        Ok(None)
    }

    /// One read(2) into `chunk`, retried when a signal interrupts it; 0 at EOF.
    fn read(&mut self, chunk: &mut [u8]) -> Result<usize> {
        loop {
            match self.file.read(chunk) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("read({}) failed", self.name)),
            }
        }
    }

    /// Drop bytes up to and including the next newline after an over-long line.
    fn skip_long_line(&mut self) -> Result<Line> {
        let mut seen = self.buf.len();
        self.buf.clear();
        self.scanned = 0;
        let mut chunk = [0u8; 8192];
        loop {
            let n = self.read(&mut chunk)?;
            if n == 0 {
                return Ok(Line::Eof);
            }
            if let Some(i) = chunk[..n].iter().position(|&b| b == b'\n') {
                self.buf.extend_from_slice(&chunk[i + 1..n]);
                return Ok(Line::TooLong(seen + i));
            }
            seen += n;
        }
    }
}

/// `/dev/vportXpY` of the port named [`PORT_NAME`], waiting briefly when a virtio console
/// device exists but has not announced its ports yet. None when there is no such port.
fn find_virtio_port() -> Option<PathBuf> {
    let deadline = Instant::now() + PORT_WAIT;
    loop {
        if let Some(dev) = named_port(Path::new("/sys/class/virtio-ports")) {
            if dev.exists() {
                return Some(dev);
            }
        }
        if !virtio_console_present() || Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn named_port(class_dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(class_dir).ok()?;
    for entry in entries.flatten() {
        let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if name.trim() == PORT_NAME {
            return Some(Path::new("/dev").join(entry.file_name()));
        }
    }
    None
}

/// A virtio device of type console (id 3) bound to a driver: worth waiting for its ports.
fn virtio_console_present() -> bool {
    let Ok(entries) = std::fs::read_dir("/sys/bus/virtio/devices") else {
        return false;
    };
    entries.flatten().any(|e| {
        let id = std::fs::read_to_string(e.path().join("device")).unwrap_or_default();
        id.trim() == "0x0003" && e.path().join("driver").exists()
    })
}

/// Open the port read-write; a tty goes to raw mode first.
fn open_port(path: &Path) -> Result<File> {
    let cpath = sys::cpath(path)?;
    // O_NONBLOCK so opening a serial line does not wait for carrier before CLOCAL is set.
    // SAFETY: cpath is a NUL-terminated path alive for the call.
    let fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("open({}) failed", path.display()));
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    // SAFETY: isatty only inspects the fd.
    if unsafe { libc::isatty(fd) } == 1 {
        make_raw(fd).with_context(|| format!("raw mode on {} failed", path.display()))?;
    }
    // SAFETY: F_GETFL/F_SETFL on an fd we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above; clearing O_NONBLOCK so reads block until the host writes.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("fcntl(F_SETFL, {}) failed", path.display()));
    }
    Ok(file)
}

/// cfmakeraw, 8N1, 115200, no modem control, reads return as soon as one byte is there.
fn make_raw(fd: libc::c_int) -> Result<()> {
    // SAFETY: termios is plain old data; tcgetattr fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open tty and `t` a valid termios.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return Err(io::Error::last_os_error()).context("tcgetattr failed");
    }
    // SAFETY: `t` is a valid termios; cfmakeraw only edits the struct.
    unsafe { libc::cfmakeraw(&mut t) };
    // The speed goes straight into the flags: cfset*speed are versioned symbols a static glibc
    // link cannot resolve, and on Linux they do exactly this.
    t.c_cflag &= !(libc::CBAUD | libc::CSIZE | libc::PARENB | libc::CSTOPB | libc::CRTSCTS | libc::HUPCL);
    t.c_cflag |= libc::B115200 | libc::CS8 | libc::CLOCAL | libc::CREAD;
    t.c_ispeed = libc::B115200;
    t.c_ospeed = libc::B115200;
    t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG | libc::IEXTEN);
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    // SAFETY: fd is an open tty and `t` a valid termios.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
        return Err(io::Error::last_os_error()).context("tcsetattr(TCSANOW) failed");
    }
    Ok(())
}
