//! An external BTF file (`--btf FILE`): the types of a kernel built without
//! `CONFIG_DEBUG_INFO_BTF`, as BTFHub ships them or `scripts/btf-from-headers.sh` makes them,
//! read and checked once on the host so that a file that is not BTF is bad input naming it
//! before any kernel is prepared. core-check relocates against it for kernels without BTF of
//! their own; `run` puts it into each guest image at [`kmatrix_proto::EXTERNAL_BTF`], where the
//! agent does the same.
//!
//! What it is not: a check that the BTF describes the kernel it is used for. BTFHub matches by
//! release; a BTF from another build of the same line is the user's choice, and the results say
//! which file was used.

use std::path::{Path, PathBuf};

/// Why `--btf FILE` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ExternalBtfError {
    /// The file could not be read.
    #[error("--btf {path}: cannot read it")]
    Read {
        /// The file given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a BTF blob the harness reads.
    #[error("--btf {path} is not BTF (a raw BTF blob, as /sys/kernel/btf/vmlinux or BTFHub's .btf files)")]
    NotBtf {
        /// The file given.
        path: PathBuf,
        /// The BTF reader's error.
        #[source]
        source: super::BtfError,
    },
    /// The harness reads it, aya does not.
    #[error("--btf {path} is BTF aya cannot parse: {detail}")]
    Aya {
        /// The file given.
        path: PathBuf,
        /// aya's error, or its contained panic.
        detail: String,
    },
    /// A BTF without a single type (an empty string table, say).
    #[error("--btf {path} holds no types")]
    Empty {
        /// The file given.
        path: PathBuf,
    },
}

/// Read `path` and check it is BTF that both the harness's reader and aya parse; its bytes.
pub fn read(path: &Path) -> Result<Vec<u8>, ExternalBtfError> {
    let bytes = std::fs::read(path).map_err(|source| ExternalBtfError::Read { path: path.to_path_buf(), source })?;
    let table = super::BtfTable::parse(&bytes)
        .map_err(|source| ExternalBtfError::NotBtf { path: path.to_path_buf(), source })?;
    if table.types.len() < 2 {
        return Err(ExternalBtfError::Empty { path: path.to_path_buf() });
    }
    let aya = |detail: String| ExternalBtfError::Aya { path: path.to_path_buf(), detail };
    crate::bpf_object::contain(|| aya_obj::btf::Btf::parse(&bytes, object::Endianness::Little))
        .map_err(|p| aya(p.0))?
        .map_err(|e| aya(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_btf_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("not.btf");
        std::fs::write(&p, b"\x7fELF definitely not BTF").unwrap();
        let e = read(&p).unwrap_err();
        assert!(matches!(e, ExternalBtfError::NotBtf { .. }), "{e}");
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        let e = read(&d.path().join("absent.btf")).unwrap_err();
        assert!(matches!(e, ExternalBtfError::Read { .. }) && e.to_string().contains("absent.btf"), "{e}");
        // A well-formed BTF with one int type passes both readers.
        let mut int = crate::btf::build::ty(1, crate::btf::INT, 0, 4);
        int.extend_from_slice(&32u32.to_le_bytes()); // 32 bits, unsigned
        std::fs::write(&p, crate::btf::build::btf(&int, b"\0int\0")).unwrap();
        assert_eq!(read(&p).unwrap().len(), 24 + 16 + 5);
        std::fs::write(&p, crate::btf::build::btf(&[], b"\0")).unwrap();
        assert!(matches!(read(&p).unwrap_err(), ExternalBtfError::Empty { .. }));
    }
}
