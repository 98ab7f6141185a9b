//! Choosing the accelerator: KVM when it works, TCG otherwise, and a remembered verdict.
//!
//! `/dev/kvm` opening and `KVM_CREATE_VM` succeeding do not prove KVM works: on some hosts guests
//! hang right after the firmware. So kmatrix boots a probe guest under KVM (a 200-byte PVH ELF
//! built here that prints a marker on COM1 and leaves through `isa-debug-exit`) with a hard
//! deadline. The verdict, with its evidence, is cached per host (kernel release, QEMU version,
//! CPU model) so later runs do not pay for the probe; `--accel` overrides it.

use super::qemu::{Accel, QemuConfig};
use crate::cache::{self, Cache};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the probe prints on COM1.
const MARKER: &str = "KMATRIX-ACCEL-PROBE-OK";
/// `isa-debug-exit` turns the byte written into exit status (b << 1) | 1.
const EXIT_BYTE: u8 = 0x10;
const EXIT_STATUS: i32 = ((EXIT_BYTE as i32) << 1) | 1;
/// A working KVM runs the probe in well under a second (QEMU start included).
pub const PROBE_DEADLINE: Duration = Duration::from_secs(4);

/// The accelerator chosen and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccelVerdict {
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
}

/// User's choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => Err(format!("unknown accelerator {s:?}: expected auto, kvm or tcg")),
        }
    }
}

/// Pick the accelerator: forced by `choice`, else the cached verdict for this host, else probe.
pub async fn select(cache: &Cache, qemu: &Path, choice: AccelChoice) -> AccelVerdict {
    let host = host_identity(qemu);
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    match choice {
        AccelChoice::Tcg => {
            return AccelVerdict {
                accel: Accel::Tcg,
                reason: "TCG forced (--accel tcg)".into(),
                cached: false,
                host,
                measured_at: now(),
            }
        }
        AccelChoice::Kvm => {
            return AccelVerdict {
                accel: Accel::Kvm,
                reason: "KVM forced (--accel kvm)".into(),
                cached: false,
                host,
                measured_at: now(),
            }
        }
        AccelChoice::Auto => {}
    }
    let path = verdict_path(cache);
    if let Some(v) =
        path.as_ref().and_then(|p| std::fs::read(p).ok()).and_then(|b| serde_json::from_slice::<AccelVerdict>(&b).ok())
    {
        if v.host == host {
            return AccelVerdict { cached: true, ..v };
        }
    }
    let (accel, reason) = probe_kvm(cache, qemu).await;
    let v = AccelVerdict { accel, reason, cached: false, host, measured_at: now() };
    if let (Some(p), Ok(bytes)) = (path, serde_json::to_vec_pretty(&v)) {
        // A verdict we cannot store is re-measured next time; not worth failing the run for.
        let _ = cache::write_atomic(&p, &bytes);
    }
    v
}

fn verdict_path(cache: &Cache) -> Option<PathBuf> {
    cache.dir("host").ok().map(|d| d.join("accel.json"))
}

/// Kernel release, QEMU binary identity and CPU model: a verdict holds while these hold.
fn host_identity(qemu: &Path) -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let qemu_id = std::fs::metadata(qemu)
        .ok()
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}:{}:{}", qemu.display(), m.len(), m.mtime())
        })
        .unwrap_or_else(|| qemu.display().to_string());
    format!("{} | {} | {}", release.trim(), qemu_id, cpu)
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
        Ok(elapsed) => (Accel::Kvm, format!("KVM works: probe guest ran in {:.2} s", elapsed.as_secs_f64())),
        Err(why) => (Accel::Tcg, format!("KVM unusable: {why}; using TCG")),
    }
}

/// Run the probe image under `accel`; Ok(time) when it printed the marker and exited as planned.
pub async fn run_probe(qemu: &Path, image: &Path, accel: Accel, deadline: Duration) -> Result<Duration, String> {
    let cfg = QemuConfig {
        qemu: qemu.to_path_buf(),
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
    };
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(qemu);
    cmd.args(cfg.args()).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = match tokio::time::timeout(deadline, cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(format!("cannot run {} ({e})", qemu.display())),
        Err(_) => {
            return Err(format!(
                "the probe guest printed nothing within {:.1} s (guests hang after the firmware)",
                deadline.as_secs_f64()
            ))
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.contains(MARKER) && out.status.code() == Some(EXIT_STATUS) {
        Ok(started.elapsed())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "probe guest exited with {} without its marker: {}",
            out.status,
            stderr.lines().last().unwrap_or("").trim()
        ))
    }
}

/// A minimal ELF64 with a Xen PVH entry note (as Linux's vmlinux has): QEMU enters it in 32-bit
/// protected mode at the note's address. The code prints [`MARKER`] on COM1 and writes
/// [`EXIT_BYTE`] to `isa-debug-exit`.
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
        assert!("hvf".parse::<AccelChoice>().unwrap_err().contains("hvf"));
    }
}
