//! Why a guest could not be started or stopped answering ([`VmError`]): each variant keeps its
//! evidence (the console tail, QEMU's stderr, the path or the protocol version), so a failed run
//! says what happened without another look at the machine. Not here: deciding what an error
//! means for a run (`run::scheduler` turns it into results with a cause).

use std::path::PathBuf;

/// Why a guest could not be started or stopped answering; the guest-side variants carry the
/// console tail as evidence.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The QEMU binary does not exist.
    #[error("QEMU not found at {path}: install it (Debian: apt-get install qemu-system-x86) or set KMATRIX_QEMU")]
    QemuMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// QEMU exists but could not be spawned.
    #[error("cannot start QEMU ({path})")]
    Spawn {
        /// The QEMU binary.
        path: PathBuf,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// The sockets of the guest channel or QEMU monitor could not be created.
    #[error("cannot set up the guest channel in {dir}")]
    ChannelSetup {
        /// The temporary folder the sockets go in.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The guest's console log could not be created (a directory this user cannot write).
    #[error("cannot create the console log {path}")]
    ConsoleLog {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// QEMU ended while the host still expected an answer.
    #[error("QEMU exited ({status}) before {waiting_for}\n--- console tail ---\n{console}")]
    Exited {
        /// QEMU's exit status, as text.
        status: String,
        /// What the host was waiting for (`Hello`, a scenario's answer).
        waiting_for: String,
        /// The last console lines (and QEMU's stderr), for the error report.
        console: String,
    },
    /// The console said `Kernel panic`.
    #[error("guest kernel panicked while waiting for {waiting_for}: {line}\n--- console tail ---\n{console}")]
    Panic {
        /// The panic line.
        line: String,
        /// What the host was waiting for (`Hello`, a scenario's answer).
        waiting_for: String,
        /// The last console lines (and QEMU's stderr), for the error report.
        console: String,
    },
    /// No answer within the deadline (the guest was killed).
    #[error("timed out after {secs:.1} s waiting for {waiting_for}\n--- console tail ---\n{console}")]
    Timeout {
        /// The deadline that passed, in seconds.
        secs: f64,
        /// What the host was waiting for (`Hello`, a scenario's answer).
        waiting_for: String,
        /// The last console lines (and QEMU's stderr), for the error report.
        console: String,
    },
    /// The channel closed, sent a line that is not a message, or could not be written.
    #[error("guest channel broken: {detail}\n--- console tail ---\n{console}")]
    Channel {
        /// What went wrong on the channel.
        detail: String,
        /// The last console lines (and QEMU's stderr), for the error report.
        console: String,
    },
    /// The virtio-fs daemon for a share could not be started.
    #[error("cannot serve a virtio-fs share")]
    Virtiofs(#[source] super::virtiofs::VirtiofsError),
    /// The host root cannot be shared the way the run asked (`--share virtiofs` with a kernel
    /// or host that cannot do it).
    #[error("cannot share the host root")]
    Share(#[source] super::share::ShareError),
    /// The agent's `Hello` names another protocol version than this host's.
    #[error("agent speaks protocol {got}, this harness speaks {want}: rebuild both")]
    ProtoMismatch {
        /// The agent's version.
        got: u32,
        /// This host's version (`kmatrix_proto::PROTO_VERSION`).
        want: u32,
    },
    /// The accelerator, not the guest, failed: QEMU said so on stderr (and is killed at once,
    /// since a KVM error pauses the guest instead of ending QEMU), QEMU under KVM died before the
    /// guest answered, or the real kernel did not reach `Hello` under KVM within its deadline.
    #[error("the {accel} accelerator failed while waiting for {waiting_for}: {evidence}\n--- QEMU stderr ---\n{qemu_stderr}\n--- console tail ---\n{console}")]
    Accelerator {
        /// The accelerator that failed (`kvm`).
        accel: &'static str,
        /// QEMU's line that named the failure, or what the host saw instead (death, deadline).
        evidence: String,
        /// What the host was waiting for (`Hello`, a scenario's answer).
        waiting_for: String,
        /// QEMU's last stderr lines.
        qemu_stderr: String,
        /// The last console lines (and QEMU's stderr), for the error report.
        console: String,
    },
}

impl VmError {
    /// The console tail this error carries, if any.
    pub fn console(&self) -> Option<&str> {
        match self {
            VmError::Exited { console, .. }
            | VmError::Panic { console, .. }
            | VmError::Timeout { console, .. }
            | VmError::Channel { console, .. }
            | VmError::Accelerator { console, .. } => Some(console),
            _ => None,
        }
    }

    /// Whether the accelerator (not the kernel, the agent or kmatrix) is to blame.
    pub fn is_accelerator(&self) -> bool {
        matches!(self, VmError::Accelerator { .. })
    }
}
