//! Choosing the accelerator: KVM when it works, TCG otherwise, and a remembered verdict.
//!
//! `/dev/kvm` existing proves nothing on the machines kmatrix runs on: on some hosts QEMU asserts
//! in its KVM code with `-cpu host`; on others a toy guest runs but a real kernel stops at its
//! first `lock cmpxchg16b` with `KVM internal error`, and QEMU *pauses* instead of exiting. So:
//!
//! 1. a 200-byte probe guest (a PVH ELF built here that prints a marker on COM1 and leaves through
//!    `isa-debug-exit`) is a fast first filter, never the proof;
//! 2. the proof is the real kernel of the run reaching the agent's `Hello` under KVM within
//!    [`KVM_HELLO_DEADLINE`]: [`Accelerator::proven`] records it, and every KVM boot is held to
//!    that deadline; until then a KVM boot prints from its first milliseconds and must print
//!    within [`KVM_FIRST_OUTPUT`], so a KVM that runs nothing and says nothing costs 3 s, not 15;
//! 3. QEMU's stderr is watched (`console::accel_failure`): a KVM error ends the guest at once as
//!    a [`VmError::Accelerator`], and [`Accelerator::fall_back`]
//!    flips the verdict to TCG, stores it, and lets the caller redo the guest under TCG in the same
//!    run — unless the user forced `--accel kvm`, in which case it is an error.
//!
//! The verdict, with its evidence, is cached per host (kernel release, QEMU binary, CPU model and
//! flags), one file per host identity, so later runs pay for nothing; `--accel` overrides it.

use super::error::VmError;
use super::qemu::{Accel, QemuConfig};
use crate::cache::{self, Cache};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// What the probe prints on COM1.
const MARKER: &str = "KMATRIX-ACCEL-PROBE-OK";
/// `isa-debug-exit` turns the byte written into exit status (b << 1) | 1.
const EXIT_BYTE: u8 = 0x10;
const EXIT_STATUS: i32 = ((EXIT_BYTE as i32) << 1) | 1;
/// A working KVM runs the probe in well under a second (QEMU start included).
pub const PROBE_DEADLINE: Duration = Duration::from_secs(4);
/// QEMU start → the agent's `Hello` under KVM. Where KVM works, Debian's kernels get there in
/// well under a second (snapshot saving comes after `Hello`); a KVM boot slower than this is a
/// KVM that does not work, and the guest is redone under TCG.
pub const KVM_HELLO_DEADLINE: Duration = Duration::from_secs(15);
/// QEMU start → the first console byte of a KVM boot, until a real kernel has proven KVM on this
/// host. A PVH kernel with `earlyprintk` prints in its first milliseconds under a working KVM
/// (QEMU's own start is most of the wait); a KVM that runs nothing leaves the console empty (on
/// one Intel host QEMU printed nothing at all and the guest never ran), and waiting out
/// [`KVM_HELLO_DEADLINE`] for it cost 15 s. Under TCG the same boot prints within about 0.3 s.
pub const KVM_FIRST_OUTPUT: Duration = Duration::from_secs(3);
/// A cached TCG verdict is re-measured after this long: the probe or the KVM boot that made it
/// may have failed for a passing reason (a loaded host, a module being reloaded), and a host
/// whose KVM works must not stay on TCG for ever. A KVM verdict needs no expiry: a KVM that
/// stops working is caught by the next boot and flipped.
pub const TCG_VERDICT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The accelerator chosen and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccelVerdict {
    /// The accelerator guests start under.
    pub accel: Accel,
    /// One line a person can read: why this accelerator.
    pub reason: String,
    /// Whether the verdict came from the cache.
    #[serde(skip)]
    pub cached: bool,
    /// Host identity the verdict applies to.
    pub host: String,
    /// When it was measured (seconds since the epoch).
    pub measured_at: u64,
    /// For KVM: whether a real kernel has reached `Hello` under it on this host (the probe guest
    /// alone does not prove KVM works). For TCG after a KVM failure: QEMU's words.
    #[serde(default)]
    pub evidence: Option<String>,
    /// A real kernel has reached `Hello` under this KVM verdict on this host, so KVM boots
    /// need not be doubted again; always false for TCG.
    #[serde(default)]
    pub proven: bool,
}

/// User's choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// The cached verdict for this host, else the probe's (KVM only where it works).
    #[default]
    Auto,
    /// KVM, and a KVM failure is an error rather than a fall-back to TCG.
    Kvm,
    /// TCG, without probing KVM.
    Tcg,
}

/// An accelerator name that is none of `auto`, `kvm`, `tcg` (as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown accelerator {0:?}: expected auto, kvm or tcg")]
pub struct UnknownAccel(pub String);

impl std::str::FromStr for AccelChoice {
    type Err = UnknownAccel;
    fn from_str(s: &str) -> Result<Self, UnknownAccel> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => Err(UnknownAccel(s.to_string())),
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The accelerator of a session: read by every guest start, flipped to TCG (once) when KVM fails.
/// Shared by every kernel of a run (`Arc`).
#[derive(Debug)]
pub struct Accelerator {
    state: Mutex<AccelVerdict>,
    choice: AccelChoice,
    store: Option<PathBuf>,
}

impl Accelerator {
    /// Pick the accelerator: forced by `choice`, else the cached verdict for this host, else the
    /// probe guest as a first filter (the real kernel's `Hello` is the proof, see the module doc).
    pub async fn select(cache: &Cache, qemu: &Path, choice: AccelChoice) -> Accelerator {
        let host = host_identity(qemu);
        let store = verdict_path(cache, &host);
        let forced = |accel: Accel, reason: &str| AccelVerdict {
            accel,
            reason: reason.into(),
            cached: false,
            host: host.clone(),
            measured_at: now(),
            evidence: None,
            proven: false,
        };
        let verdict = match choice {
            AccelChoice::Tcg => forced(Accel::Tcg, "TCG forced (--accel tcg)"),
            AccelChoice::Kvm => forced(Accel::Kvm, "KVM forced (--accel kvm)"),
            AccelChoice::Auto => match store.as_deref().and_then(read_verdict).filter(|v| still_holds(v, &host, now()))
            {
                Some(v) => AccelVerdict { cached: true, ..v },
                None => {
                    let (accel, reason) = probe_kvm(cache, qemu).await;
                    let v = AccelVerdict {
                        accel,
                        reason,
                        cached: false,
                        host,
                        measured_at: now(),
                        evidence: None,
                        proven: false,
                    };
                    if let Some(p) = &store {
                        write_verdict(p, &v);
                    }
                    v
                }
            },
        };
        Accelerator { state: Mutex::new(verdict), choice, store }
    }

    /// A fixed accelerator, nothing probed or stored (tests, and callers that know).
    pub fn fixed(accel: Accel, reason: &str) -> Accelerator {
        let v = AccelVerdict {
            accel,
            reason: reason.into(),
            cached: false,
            host: String::new(),
            measured_at: now(),
            evidence: None,
            proven: false,
        };
        let choice = if accel == Accel::Kvm { AccelChoice::Kvm } else { AccelChoice::Tcg };
        Accelerator { state: Mutex::new(v), choice, store: None }
    }

    /// The accelerator the next guest starts under.
    pub fn current(&self) -> Accel {
        self.verdict().accel
    }

    /// A copy of the current verdict, with its reason and evidence.
    pub fn verdict(&self) -> AccelVerdict {
        match self.state.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Where the verdict is cached, if anywhere.
    pub fn store(&self) -> Option<&Path> {
        self.store.as_deref()
    }

    /// One line for the user: which accelerator and why.
    pub fn describe(&self) -> String {
        let v = self.verdict();
        let cached = match (&self.store, v.cached) {
            (Some(p), true) => format!(" (cached verdict in {}; delete it to re-probe)", p.display()),
            _ => String::new(),
        };
        format!("accelerator {} — {}{cached}", v.accel.as_str(), v.reason)
    }

    /// A real kernel reached `Hello` under KVM: that, not the probe guest, proves KVM works here.
    /// `first_output`: when its console's first byte came (the proof boot prints from the start).
    pub fn proven(&self, kernel: &str, hello: Duration, first_output: Option<Duration>) {
        let Ok(mut v) = self.state.lock() else { return };
        if v.accel != Accel::Kvm || v.proven {
            return;
        }
        v.proven = true;
        let first =
            first_output.map(|d| format!(", its first console byte after {} ms", d.as_millis())).unwrap_or_default();
        v.reason =
            format!("KVM works: {kernel} reached the agent's Hello under KVM in {:.2} s{first}", hello.as_secs_f64());
        v.measured_at = now();
        if let (Some(p), AccelChoice::Auto) = (&self.store, self.choice) {
            write_verdict(p, &v);
        }
    }

    /// A guest failed because of KVM (`err` is a [`VmError::Accelerator`]). Unless KVM was forced,
    /// switch this session — and this host's cached verdict — to TCG and return true: the caller
    /// redoes the guest under TCG. The switch is announced once, however many guests saw it.
    pub fn fall_back(&self, err: &VmError) -> bool {
        let VmError::Accelerator { evidence, .. } = err else { return false };
        if self.choice == AccelChoice::Kvm {
            return false;
        }
        let Ok(mut v) = self.state.lock() else { return false };
        if v.accel == Accel::Tcg {
            // Another guest of this run already switched.
            return true;
        }
        v.accel = Accel::Tcg;
        v.proven = false;
        v.evidence = Some(evidence.clone());
        v.reason = format!("KVM failed with a real kernel ({evidence}); using TCG");
        v.measured_at = now();
        v.cached = false;
        let stored = match &self.store {
            Some(p) if self.choice == AccelChoice::Auto => {
                write_verdict(p, &v);
                format!("; verdict stored in {}", p.display())
            }
            _ => String::new(),
        };
        eprintln!(
            "kmatrix: KVM failed on this host ({evidence}); redoing under TCG for this run and later ones{stored}"
        );
        true
    }
}

fn read_verdict(p: &Path) -> Option<AccelVerdict> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

fn write_verdict(p: &Path, v: &AccelVerdict) {
    if let Ok(bytes) = serde_json::to_vec_pretty(v) {
        // A verdict we cannot store is re-measured next time; not worth failing the run for.
        let _ = cache::write_atomic(p, &bytes);
    }
}

/// Whether a stored verdict still decides for `host` at `now`: the same host identity, and for
/// TCG not older than [`TCG_VERDICT_TTL`].
fn still_holds(v: &AccelVerdict, host: &str, now: u64) -> bool {
    v.host == host && (v.accel != Accel::Tcg || now.saturating_sub(v.measured_at) < TCG_VERDICT_TTL.as_secs())
}

/// Whether this process can open `/dev/kvm` read-write, as QEMU must: part of the host identity,
/// so a user given access (or a device that appears) is measured again, not held to a verdict
/// made without it.
fn kvm_access() -> &'static str {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => "kvm rw",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no kvm",
        Err(_) => "kvm denied",
    }
}

/// One verdict file per host identity, so a different QEMU (a test's fake one, say) never
/// overwrites the real one's verdict.
fn verdict_path(cache: &Cache, host: &str) -> Option<PathBuf> {
    let id = hex::encode(&Sha256::digest(host.as_bytes())[..8]);
    cache.dir("host").ok().map(|d| d.join(format!("accel-{id}.json")))
}

/// Kernel release, QEMU binary identity, CPU model and a hash of the CPU flags: a verdict holds
/// while these hold.
pub(crate) fn host_identity(qemu: &Path) -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .map(|l| l.split_once(':').map(|x| x.1).unwrap_or("").trim().to_string())
            .unwrap_or_default()
    };
    let flags = hex::encode(&Sha256::digest(field("flags").as_bytes())[..6]);
    format!(
        "{} | {} | {} | flags {} | {}",
        release.trim(),
        qemu_identity(qemu),
        field("model name"),
        flags,
        kvm_access()
    )
}

/// The QEMU part of a host identity: `path:size:mtime`, or the path alone when it is missing.
fn qemu_identity(qemu: &Path) -> String {
    std::fs::metadata(qemu)
        .ok()
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}:{}:{}", qemu.display(), m.len(), m.mtime())
        })
        .unwrap_or_else(|| qemu.display().to_string())
}

/// Why the verdict file at `p` can never apply again, if it cannot: the QEMU binary it was
/// measured with is gone or changed (its identity names the binary's path, size and mtime), or
/// the file is unreadable. `kmatrix gc` removes such files.
pub fn stale_verdict(p: &Path) -> Option<&'static str> {
    let Some(v) = read_verdict(p) else { return Some("unreadable accelerator verdict") };
    let recorded = v.host.split(" | ").nth(1)?;
    // `path:size:mtime`, or the path alone when the binary was missing when measured.
    let parts: Vec<&str> = recorded.rsplitn(3, ':').collect();
    let path = match parts[..] {
        [mtime, size, path] if [mtime, size].iter().all(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit())) => {
            path
        }
        _ => recorded,
    };
    let path = Path::new(path);
    if !path.exists() {
        Some("its QEMU binary no longer exists")
    } else if qemu_identity(path) != recorded {
        Some("its QEMU binary changed since it was measured")
    } else {
        None
    }
}

/// Boot the probe guest under KVM. Returns TCG with the evidence when anything is off.
async fn probe_kvm(cache: &Cache, qemu: &Path) -> (Accel, String) {
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return (Accel::Tcg, format!("KVM unusable: cannot open /dev/kvm ({e}); using TCG"));
    }
    let image = match cache.dir("host") {
        Ok(d) => d.join("accel-probe.elf"),
        Err(e) => return (Accel::Tcg, format!("KVM not probed ({e}); using TCG")),
    };
    if cache::write_atomic(&image, &probe_elf()).is_err() {
        return (Accel::Tcg, format!("KVM not probed (cannot write {}); using TCG", image.display()));
    }
    match run_probe(qemu, &image, Accel::Kvm, PROBE_DEADLINE).await {
        Ok(elapsed) => (
            Accel::Kvm,
            format!("KVM passed the probe guest in {:.2} s (not yet proven with a real kernel)", elapsed.as_secs_f64()),
        ),
        Err(why) => (Accel::Tcg, format!("KVM unusable: {why}; using TCG")),
    }
}

/// Why the probe guest did not pass; its message becomes the accelerator verdict's reason
/// ("KVM unusable: ...").
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// QEMU could not be started.
    #[error("cannot run {} ({source})", .qemu.display())]
    Spawn {
        /// The QEMU binary.
        qemu: std::path::PathBuf,
        /// The spawn error.
        source: std::io::Error,
    },
    /// Waiting for QEMU's exit failed.
    #[error("wait for {} ({source})", .qemu.display())]
    Wait {
        /// The QEMU binary.
        qemu: std::path::PathBuf,
        /// The wait error.
        source: std::io::Error,
    },
    /// QEMU's own stderr line that names an accelerator failure.
    #[error("QEMU said {line:?}")]
    QemuSaid {
        /// That line, as QEMU wrote it.
        line: String,
    },
    /// The probe printed nothing before the deadline (QEMU killed).
    #[error("the probe guest printed nothing within {:.1} s (guests hang after the firmware)", .deadline.as_secs_f64())]
    Silent {
        /// How long it was given ([`PROBE_DEADLINE`] in practice).
        deadline: Duration,
    },
    /// The guest exited without printing the marker (or with another status); `last` is QEMU's
    /// accelerator error, else its last stderr line.
    #[error("probe guest exited with {status} without its marker: {last}")]
    NoMarker {
        /// QEMU's exit status.
        status: std::process::ExitStatus,
        /// QEMU's accelerator error, else its last stderr line.
        last: String,
    },
}

/// Run the probe image under `accel`; Ok(time) when it printed the marker and exited as planned.
/// QEMU's stderr is read as it comes: a KVM error ends the probe at once, not at the deadline.
pub async fn run_probe(qemu: &Path, image: &Path, accel: Accel, deadline: Duration) -> Result<Duration, ProbeError> {
    let cfg = QemuConfig {
        qemu: qemu.to_path_buf(),
        arch: crate::kernel::Arch::X86_64,
        kernel: image.to_path_buf(),
        initrd: None,
        accel,
        memory_mb: 64,
        cpus: 1,
        append: Vec::new(),
        serial_channel: None,
        virtio_channel: None,
        bios: super::qemu::default_bios(qemu),
        debug_exit: true,
        monitor: None,
        memory_file: None,
        incoming: false,
        shares: Vec::new(),
        disk: None,
        first_output: None,
        net_user: false,
    };
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(qemu);
    cmd.args(cfg.args()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    super::machine::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| ProbeError::Spawn { qemu: qemu.to_path_buf(), source })?;
    let stdout = Arc::new(Mutex::new(Vec::<u8>::new()));
    let stderr = Arc::new(Mutex::new(Vec::<String>::new()));
    if let Some(mut out) = child.stdout.take() {
        let buf = stdout.clone();
        tokio::spawn(async move {
            let mut b = [0u8; 1024];
            while let Ok(n) = out.read(&mut b).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut v) = buf.lock() {
                    let room = 4096usize.saturating_sub(v.len());
                    v.extend_from_slice(&b[..n.min(room)]);
                }
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        let buf = stderr.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if let Ok(mut v) = buf.lock() {
                    if v.len() < 64 {
                        v.push(l);
                    }
                }
            }
        });
    }
    let kvm_error = || stderr.lock().ok().and_then(|v| v.iter().find(|l| super::console::accel_failure(l)).cloned());
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let end = tokio::time::Instant::now() + deadline;
    let status = loop {
        tokio::select! {
            st = child.wait() => break st.map_err(|source| ProbeError::Wait { qemu: qemu.to_path_buf(), source })?,
            _ = tick.tick() => {
                if let Some(l) = kvm_error() {
                    let _ = child.start_kill();
                    return Err(ProbeError::QemuSaid { line: l });
                }
            }
            _ = tokio::time::sleep_until(end) => {
                let _ = child.start_kill();
                return Err(ProbeError::Silent { deadline });
            }
        }
    };
    // Let the readers drain what QEMU wrote last.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let out = stdout.lock().map(|v| String::from_utf8_lossy(&v).to_string()).unwrap_or_default();
    if out.contains(MARKER) && status.code() == Some(EXIT_STATUS) {
        Ok(started.elapsed())
    } else {
        let why = kvm_error().or_else(|| stderr.lock().ok().and_then(|v| v.last().cloned())).unwrap_or_default();
        Err(ProbeError::NoMarker { status, last: why.trim().to_string() })
    }
}

/// A minimal ELF64 with a Xen PVH entry note (as Linux's vmlinux has): QEMU enters it in 32-bit
/// protected mode at the note's address. The code prints `MARKER` on COM1 and writes
/// `EXIT_BYTE` to `isa-debug-exit`.
pub fn probe_elf() -> Vec<u8> {
    const LOAD: u64 = 0x10_0000;
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    let note_off = EHDR + 2 * PHDR;
    let note_len = 12 + 4 + 4; // header, "Xen\0", 4-byte entry
    let code_off = note_off + note_len;
    let entry = LOAD + code_off as u64;

    let mut code: Vec<u8> = Vec::new();
    code.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03]); // mov dx, 0x3f8
    for b in MARKER.bytes().chain(*b"\n") {
        code.extend_from_slice(&[0xb0, b, 0xee]); // mov al, b; out dx, al
    }
    code.extend_from_slice(&[0x66, 0xba, 0xf4, 0x00]); // mov dx, 0xf4
    code.extend_from_slice(&[0xb0, EXIT_BYTE, 0xee]); // mov al, EXIT_BYTE; out dx, al
    code.extend_from_slice(&[0xf4, 0xeb, 0xfd]); // hlt; jmp back to hlt
    let total = code_off + code.len();

    let mut f = Vec::with_capacity(total);
    // ELF header.
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&entry.to_le_bytes());
    f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    f.extend_from_slice(&(EHDR as u16).to_le_bytes());
    f.extend_from_slice(&(PHDR as u16).to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes()); // e_phnum
    f.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    f.extend_from_slice(&0u16.to_le_bytes());
    f.extend_from_slice(&0u16.to_le_bytes());
    // PT_LOAD: the whole file at 1 MiB, RWX.
    phdr(&mut f, 1, 7, 0, LOAD, total as u64, 0x1000);
    // PT_NOTE.
    phdr(&mut f, 4, 4, note_off as u64, LOAD + note_off as u64, note_len as u64, 4);
    // Note: namesz, descsz, type XEN_ELFNOTE_PHYS32_ENTRY (18), "Xen\0", entry.
    f.extend_from_slice(&4u32.to_le_bytes());
    f.extend_from_slice(&4u32.to_le_bytes());
    f.extend_from_slice(&18u32.to_le_bytes());
    f.extend_from_slice(b"Xen\0");
    f.extend_from_slice(&(entry as u32).to_le_bytes());
    f.extend_from_slice(&code);
    debug_assert_eq!(f.len(), total);
    f
}

fn phdr(f: &mut Vec<u8>, ty: u32, flags: u32, off: u64, addr: u64, size: u64, align: u64) {
    f.extend_from_slice(&ty.to_le_bytes());
    f.extend_from_slice(&flags.to_le_bytes());
    f.extend_from_slice(&off.to_le_bytes());
    f.extend_from_slice(&addr.to_le_bytes()); // vaddr
    f.extend_from_slice(&addr.to_le_bytes()); // paddr
    f.extend_from_slice(&size.to_le_bytes()); // filesz
    f.extend_from_slice(&size.to_le_bytes()); // memsz
    f.extend_from_slice(&align.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_elf_is_a_pvh_elf() {
        let f = probe_elf();
        assert_eq!(&f[..4], b"\x7fELF");
        assert!(f.len() < 300);
        let note = f.windows(4).position(|w| w == b"Xen\0").unwrap();
        let entry = u32::from_le_bytes(f[note + 4..note + 8].try_into().unwrap());
        assert_eq!(u64::from(entry), u64::from_le_bytes(f[24..32].try_into().unwrap()));
    }

    #[test]
    fn accel_choice_parses_and_refuses_unknown() {
        assert_eq!("tcg".parse::<AccelChoice>().unwrap(), AccelChoice::Tcg);
        assert!("hvf".parse::<AccelChoice>().unwrap_err().to_string().contains("hvf"));
    }

    /// A TCG verdict is measured again after its time, or for another host (another QEMU, or
    /// a user who can now open /dev/kvm); a KVM verdict holds until a boot disproves it.
    #[test]
    fn a_tcg_verdict_expires_and_a_verdict_holds_only_for_its_host() {
        let v = |accel, age: u64| AccelVerdict {
            accel,
            reason: String::new(),
            cached: true,
            host: "h | kvm denied".into(),
            measured_at: 1_000_000 - age,
            evidence: None,
            proven: false,
        };
        let ttl = TCG_VERDICT_TTL.as_secs();
        assert!(still_holds(&v(Accel::Tcg, 60), "h | kvm denied", 1_000_000));
        assert!(!still_holds(&v(Accel::Tcg, ttl + 1), "h | kvm denied", 1_000_000));
        assert!(!still_holds(&v(Accel::Tcg, 60), "h | kvm rw", 1_000_000));
        assert!(still_holds(&v(Accel::Kvm, 10 * ttl), "h | kvm denied", 1_000_000));
    }
}
