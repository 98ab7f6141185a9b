//! Where `kmatrix exec` keeps each kernel's output whole: `--output-dir DIR` gives every kernel
//! `DIR/<kernel>/stdout`, `stderr` and `status` (the exit code kmatrix reports for it: the
//! program's own, or 128 + the signal), unprefixed, for a parser (`go test -json`, TAP, JUnit)
//! to read; without it, several kernels keep `<run dir>/<kernel>.stdout` and `.stderr` as before.
//!
//! Not the terminal: with one kernel the terminal gets the program's bytes as they come, with
//! several each line prefixed with its kernel (`exec.rs`).

use super::exec::code_of;
use crate::exit::{self, ExitContext};
use anyhow::{Context, Result};
use kmatrix_proto::ExecOutcome;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How a run's per-kernel files are laid out.
#[derive(Debug, Clone)]
pub(crate) enum Layout {
    /// `--output-dir DIR`: `DIR/<kernel>/{stdout,stderr,status}`.
    PerKernel(PathBuf),
    /// Several kernels without it: `<run dir>/<kernel>.stdout` and `.stderr`.
    Flat(PathBuf),
}

/// `--output-dir DIR`, checked before anything boots: created when missing; one that exists and
/// is not an empty directory is refused (a parser would read an earlier run's files).
pub(crate) fn prepare_dir(dir: &Path) -> Result<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(anyhow::anyhow!(
                    "--output-dir {}: the directory is not empty (each kernel's files go in a fresh one)",
                    dir.display()
                ))
                .exit_code(exit::BAD_INPUT);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("--output-dir {}: cannot create it", dir.display()))
                .exit_code(exit::BAD_INPUT)?;
        }
        Err(e) => {
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("--output-dir {}: not a directory kmatrix can read", dir.display()))
                .exit_code(exit::BAD_INPUT)
        }
    }
    std::fs::canonicalize(dir).with_context(|| format!("--output-dir {}", dir.display())).exit_code(exit::BAD_INPUT)
}

/// One kernel's files.
pub(crate) struct KernelOutput {
    streams: [File; 2],
    status: Option<PathBuf>,
}

impl KernelOutput {
    /// Create `kernel`'s files (its name made safe for a path, `debian-6.1` stays as it is).
    pub(crate) fn create(layout: &Layout, kernel: &str) -> Result<KernelOutput> {
        let name = crate::cache::sanitize(kernel);
        let (out, err, status) = match layout {
            Layout::PerKernel(dir) => {
                let d = dir.join(&name);
                std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
                (d.join("stdout"), d.join("stderr"), Some(d.join("status")))
            }
            Layout::Flat(dir) => (dir.join(format!("{name}.stdout")), dir.join(format!("{name}.stderr")), None),
        };
        let open = |p: &Path| File::create(p).with_context(|| format!("cannot create {}", p.display()));
        Ok(KernelOutput { streams: [open(&out)?, open(&err)?], status })
    }

    /// Bytes the program wrote on `fd` (1 or 2).
    pub(crate) fn write(&mut self, fd: u8, data: &[u8]) {
        let i = usize::from(fd.clamp(1, 2) - 1);
        let _ = self.streams[i].write_all(data);
    }

    /// The program ended: its exit code into `status` (per-kernel layout).
    pub(crate) fn finish(&self, out: &ExecOutcome) -> Result<()> {
        if let Some(p) = &self.status {
            std::fs::write(p, format!("{}\n", code_of(out)))
                .with_context(|| format!("cannot write {}", p.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_kernel_files_hold_the_bytes_and_the_status() {
        let d = tempfile::tempdir().unwrap();
        let dir = prepare_dir(&d.path().join("out")).unwrap();
        let mut k = KernelOutput::create(&Layout::PerKernel(dir.clone()), "debian-6.1").unwrap();
        k.write(1, b"{\"Action\":\"run\"}\n");
        k.write(2, b"no newline");
        k.finish(&ExecOutcome { signal: Some(15), ..Default::default() }).unwrap();
        let read = |f: &str| std::fs::read(dir.join("debian-6.1").join(f)).unwrap();
        assert_eq!(read("stdout"), b"{\"Action\":\"run\"}\n");
        assert_eq!(read("stderr"), b"no newline");
        assert_eq!(read("status"), b"143\n");
        // The directory now holds a kernel's files: a second run into it is refused.
        let e = prepare_dir(&dir).unwrap_err();
        assert_eq!(exit::code_of(&e), exit::BAD_INPUT);
        assert!(format!("{e:#}").contains("is not empty"), "{e:#}");
        // A file where the directory should be is refused too.
        let f = d.path().join("file");
        std::fs::write(&f, "x").unwrap();
        assert_eq!(exit::code_of(&prepare_dir(&f).unwrap_err()), exit::BAD_INPUT);
    }
}
