//! The guest architectures kmatrix boots, and what each one means for the kernel provider
//! (Debian's architecture name, the kernel flavour) and for QEMU (which binary, machine, CPU and
//! console). x86_64 is the default everywhere; arm64 guests run under TCG on an x86 host.
//!
//! This module only names things; how an image is unwrapped is `image.rs`/`arm64.rs`, and the
//! command line is built in `vm/qemu.rs`.

use serde::{Deserialize, Serialize};

/// The architecture of a guest kernel: which mirror index, QEMU, agent and workloads it takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// x86-64 (`amd64` in Debian), the default.
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    /// 64-bit Arm (`arm64`, `aarch64`).
    Arm64,
}

impl Arch {
    /// Debian's architecture name: `binary-<this>` indexes, `linux-image-*-<this>` packages.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target triple of the guest agent built for this architecture.
    pub fn rust_triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The host's own architecture: a guest of it can use KVM.
    pub fn is_host(self) -> bool {
        match self {
            Arch::X86_64 => cfg!(target_arch = "x86_64"),
            Arch::Arm64 => cfg!(target_arch = "aarch64"),
        }
    }

    /// Whether this is x86_64, the value a matrix or manifest leaves out.
    pub fn is_default(&self) -> bool {
        *self == Arch::X86_64
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        })
    }
}

/// An architecture name kmatrix does not boot (as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown architecture {0:?} (x86_64 or arm64)")]
pub struct UnknownArch(pub String);

impl std::str::FromStr for Arch {
    type Err = UnknownArch;
    fn from_str(s: &str) -> Result<Arch, UnknownArch> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            other => Err(UnknownArch(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!("aarch64".parse::<Arch>(), Ok(Arch::Arm64));
        assert_eq!(Arch::Arm64.debian(), "arm64");
        assert_eq!(Arch::default().debian(), "amd64");
        assert!("riscv64".parse::<Arch>().unwrap_err().to_string().contains("riscv64"));
        #[derive(Deserialize)]
        struct T {
            a: Arch,
        }
        let t: T = toml::from_str("a = \"arm64\"").unwrap();
        assert_eq!(t.a, Arch::Arm64);
        assert!(toml::from_str::<T>("a = \"aarch64x\"").is_err());
    }
}
