//! Access to tracefs for scenarios: reading and writing its control files with errors that keep
//! the errno, and bookkeeping of what a scenario touched so [`Tracefs::reset`] can undo it.
//!
//! Writes go through one `write(2)` each, as `echo` does (continued only when the kernel takes
//! part of it): tracefs parses every write on its own, and a definition split over two writes
//! by the agent is a different request. Opening without `O_TRUNC` adds
//! to lists such as `kprobe_events` and `set_ftrace_filter`; [`Tracefs::truncate`] clears them.
//! Parsers of the files' contents are `kmatrix_proto::tracefs` (pure, shared with the fuzz
//! targets), re-exported here under their old names; `functions` and `stats` add the reading.

pub mod functions;
mod reset;
pub mod stats;

/// The pure parsers, one file format each.
pub use kmatrix_proto::tracefs::{format, hist, profile, readme, trace};

/// function_graph lines: the parser host and agent share.
pub use kmatrix_proto::ftrace::graph;

use crate::sys;
use std::cell::Cell;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::PathBuf;

/// The size of each `read(2)` of a tracefs file: coreutils `cat` asks for 128 KiB, and reads
/// under about 4 KiB duplicate lines of `trace` on old kernels (see [`Tracefs::read`]).
pub const READ_CHUNK: usize = 128 * 1024;

/// The kernel refused a tracefs operation: the call, its input, and the errno. Scenarios that
/// hit one report `fail` with the errno (the tracing path does not work), unlike infrastructure
/// errors which are `error`.
#[derive(Debug)]
pub struct Refused {
    pub call: String,
    pub errno: i32,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.call, sys::errno_text(self.errno))
    }
}

impl std::error::Error for Refused {}

/// What a scenario changed that a plain reset of the standard files would not undo.
#[derive(Default)]
struct Touched {
    /// `options/<name>` and its value before the first change.
    options: Vec<(String, String)>,
    /// Event `filter` files written (relative paths).
    filters: Vec<String>,
    /// Instances created under `instances/`.
    instances: Vec<String>,
    /// `buffer_size_kb` before the first change.
    buffer_size_kb: Option<String>,
    /// Event triggers added: (`events/<sys>/<event>/trigger`, trigger text).
    triggers: Vec<(String, String)>,
    /// `trace_clock` before a host tool could change it (the selected clock).
    trace_clock: Option<String>,
}

impl Touched {
    fn is_empty(&self) -> bool {
        self.options.is_empty()
            && self.filters.is_empty()
            && self.instances.is_empty()
            && self.buffer_size_kb.is_none()
            && self.triggers.is_empty()
            && self.trace_clock.is_none()
    }
}

/// A tracefs mount plus what the current scenario touched.
pub struct Tracefs {
    root: PathBuf,
    touched: Touched,
    /// Files a reset cleared that the leftover check must read too (trigger files).
    check_after_reset: Vec<String>,
    /// The last thing done through this handle was a reset that worked: set by
    /// [`Tracefs::reset`], cleared by every write, so the leftover check knows it follows one.
    verified_reset: Cell<bool>,
}

pub use reset::state_unknown;

impl Tracefs {
    pub fn new(root: impl Into<PathBuf>) -> Tracefs {
        Tracefs {
            root: root.into(),
            touched: Touched::default(),
            check_after_reset: Vec::new(),
            verified_reset: Cell::new(false),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// `error_log` (4.20 and later: why the last probe definitions were refused), empty when the
    /// kernel has none or it cannot be read: evidence, never a reason to fail.
    pub fn error_log(&self) -> String {
        if self.exists("error_log") {
            self.read("error_log").unwrap_or_default()
        } else {
            String::new()
        }
    }

    /// The whole file as text, read as `cat` reads it: in [`READ_CHUNK`] calls of `read(2)`.
    /// Not `read_to_end`, whose first calls ask for 32 bytes and then a few hundred: on 4.15,
    /// `trace` read in calls under about 4 KiB prints some lines twice (the seq_file re-emits
    /// an entry that overflowed the user's buffer; measured with `dd bs=1k`: 172 `do_sys_open()`
    /// lines for 101 with `bs=4k` and above, while 6.1 gives 101 at every size).
    pub fn read(&self, rel: &str) -> Result<String, Refused> {
        self.read_in(rel, READ_CHUNK)
    }

    /// The whole file as text, read in calls of `read(2)` of `size` bytes each.
    pub fn read_in(&self, rel: &str, size: usize) -> Result<String, Refused> {
        let mut out = Vec::new();
        let mut chunk = vec![0u8; size.max(1)];
        let mut file = File::open(self.path(rel)).map_err(|e| refused(format!("read({rel})"), &e))?;
        loop {
            match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(refused(format!("read({rel})"), &e)),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// One `write(2)` of `data` to `rel`, adding to (not replacing) list files.
    pub fn write(&self, rel: &str, data: &str) -> Result<(), Refused> {
        let file = self.open_write(rel)?;
        self.write_fd(&file, rel, data)
    }

    /// Open `rel` for writing, to write to it later without another `openat` (which would show
    /// up in a scenario that counts openat calls).
    pub fn open_write(&self, rel: &str) -> Result<File, Refused> {
        self.verified_reset.set(false);
        OpenOptions::new().write(true).open(self.path(rel)).map_err(|e| refused(format!("open({rel}, O_WRONLY)"), &e))
    }

    /// Write `data` on a file from [`Tracefs::open_write`] as `echo` does: one `write(2)`, and
    /// when the kernel takes only part of it (list files such as `set_ftrace_filter` and
    /// `set_event` consume one word per call) the rest in further calls. Not `pwrite`: many
    /// tracefs files are non-seekable (ESPIPE), and the control files ignore the position.
    pub fn write_fd(&self, mut file: &File, rel: &str, data: &str) -> Result<(), Refused> {
        let call = || format!("write({:?} > {rel})", data.trim_end());
        let mut rest = data.as_bytes();
        while !rest.is_empty() {
            match file.write(rest) {
                Ok(0) => return Err(Refused { call: call(), errno: libc::EIO }),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(refused(call(), &e)),
            }
        }
        Ok(())
    }

    /// Open with `O_TRUNC` and close: clears list files (`echo > kprobe_events`) and the buffer
    /// (`echo > trace`).
    pub fn truncate(&self, rel: &str) -> Result<(), Refused> {
        self.verified_reset.set(false);
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.path(rel))
            .map(drop)
            .map_err(|e| refused(format!("open({rel}, O_WRONLY|O_TRUNC)"), &e))
    }

    /// Set an event's filter (`events/<sys>/<event>/filter`), remembered for reset.
    pub fn set_filter(&mut self, event: &str, expr: &str) -> Result<(), Refused> {
        let rel = format!("events/{event}/filter");
        if !self.touched.filters.contains(&rel) {
            self.touched.filters.push(rel.clone());
        }
        self.write(&rel, expr)
    }

    /// Set `options/<name>` to 0 or 1, remembering the first value seen for reset.
    pub fn set_option(&mut self, name: &str, on: bool) -> Result<(), Refused> {
        let rel = format!("options/{name}");
        if !self.touched.options.iter().any(|(n, _)| n == name) {
            let old = self.read(&rel)?.trim().to_string();
            self.touched.options.push((name.to_string(), old));
        }
        self.write(&rel, if on { "1" } else { "0" })
    }

    /// Resize the per-CPU ring buffer, remembering the original size for reset.
    pub fn set_buffer_size_kb(&mut self, kb: u64) -> Result<(), Refused> {
        if self.touched.buffer_size_kb.is_none() {
            let old = self.read("buffer_size_kb")?;
            // While expanding after boot the file reads "7 (expanded: 1408)"; keep the number.
            let old = old.split_whitespace().next().unwrap_or("").to_string();
            self.touched.buffer_size_kb = Some(old);
        }
        self.write("buffer_size_kb", &kb.to_string())
    }

    /// Before a program the agent does not drive writes to tracefs (a host tool: trace-cmd,
    /// uftrace -k): remember every option, the buffer size and the trace clock as they are, so
    /// that the reset restores whatever the tool changed and left.
    pub fn remember_settings(&mut self) -> Result<(), Refused> {
        let dir = self.path("options");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| Refused {
                call: format!("read_dir({})", dir.display()),
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            })?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        for name in names {
            if !self.touched.options.iter().any(|(n, _)| *n == name) {
                let old = self.read(&format!("options/{name}"))?.trim().to_string();
                self.touched.options.push((name, old));
            }
        }
        if self.touched.buffer_size_kb.is_none() {
            // Before the first use after boot it reads "7 (expanded: 1408)": 1408 is the size
            // the buffer has once anything traced, which is what a tool leaves it at.
            let old = self.read("buffer_size_kb")?;
            let expanded = old.split_once("(expanded: ").and_then(|(_, r)| r.split(')').next());
            let kb = expanded.or_else(|| old.split_whitespace().next()).unwrap_or("").trim();
            self.touched.buffer_size_kb = Some(kb.to_string());
        }
        if self.touched.trace_clock.is_none() && self.exists("trace_clock") {
            // `[local] global counter ...`: the selected clock is in brackets.
            let text = self.read("trace_clock")?;
            self.touched.trace_clock = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
                .map(str::to_string);
        }
        Ok(())
    }

    /// Add a trigger (`hist:keys=common_pid`) to an event, removed again by reset.
    pub fn add_trigger(&mut self, event: &str, trigger: &str) -> Result<(), Refused> {
        let rel = format!("events/{event}/trigger");
        self.write(&rel, trigger)?;
        self.touched.triggers.push((rel, trigger.to_string()));
        Ok(())
    }

    /// Everything `rel` (a `trace_pipe`) holds now, read without blocking: the pipe blocks when
    /// empty, so EAGAIN is the end of what is there. What is read is consumed.
    pub fn drain_pipe(&self, rel: &str) -> Result<String, Refused> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut pipe = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.path(rel))
            .map_err(|e| refused(format!("open({rel}, O_NONBLOCK)"), &e))?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => raw.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(refused(format!("read({rel})"), &e)),
            }
        }
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }

    /// Create `instances/<name>`, removed again by reset.
    pub fn make_instance(&mut self, name: &str) -> Result<PathBuf, Refused> {
        let rel = format!("instances/{name}");
        self.verified_reset.set(false);
        std::fs::create_dir(self.path(&rel)).map_err(|e| refused(format!("mkdir({rel})"), &e))?;
        self.touched.instances.push(name.to_string());
        Ok(self.path(&rel))
    }
}

fn refused(call: String, e: &std::io::Error) -> Refused {
    Refused { call, errno: e.raw_os_error().unwrap_or(libc::EIO) }
}
