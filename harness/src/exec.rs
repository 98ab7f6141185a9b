//! `kmatrix exec`: run a host program inside guests, so a test binary can run on each kernel of a
//! matrix (also as a cargo runner: `runner = "kmatrix exec --kernels debian-6.1 --"`).
//!
//! The program goes into the image at its host path, with the shared libraries and the ELF
//! interpreter `ldd` names (guests have no libc of their own), so an ordinary dynamically linked
//! test binary runs unchanged. This module gathers those files; booting is `guest.rs`'s job.

use crate::image::ExtraFile;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot read program {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an ELF executable")]
    NotElf { path: PathBuf },
    #[error("cannot run ldd on {path}: {detail}")]
    Ldd { path: PathBuf, detail: String },
    #[error("{path} needs {lib}, which ldd cannot find on this host")]
    MissingLib { path: PathBuf, lib: String },
}

/// The program and everything it needs to start, as image files at their host paths.
pub fn gather(program: &Path) -> Result<(String, Vec<ExtraFile>), ExecError> {
    let abs =
        std::fs::canonicalize(program).map_err(|source| ExecError::Read { path: program.to_path_buf(), source })?;
    let data = std::fs::read(&abs).map_err(|source| ExecError::Read { path: abs.clone(), source })?;
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(ExecError::NotElf { path: abs });
    }
    let guest_path = abs.display().to_string();
    let mut files = vec![ExtraFile { path: guest_path.clone(), mode: 0o755, data }];
    for lib in shared_libs(&abs)? {
        let data = std::fs::read(&lib).map_err(|source| ExecError::Read { path: lib.clone(), source })?;
        files.push(ExtraFile { path: lib.display().to_string(), mode: 0o755, data });
        // Programs ask for the interpreter by its PT_INTERP path, which may be a symlink
        // (/lib64/ld-linux-x86-64.so.2 → /lib/x86_64-linux-gnu/...): keep both names.
        if let Ok(real) = std::fs::canonicalize(&lib) {
            if real != lib {
                if let Ok(d) = std::fs::read(&real) {
                    files.push(ExtraFile { path: real.display().to_string(), mode: 0o755, data: d });
                }
            }
        }
    }
    Ok((guest_path, files))
}

/// Libraries (and the interpreter) `ldd` lists for `program`; empty for a static binary.
fn shared_libs(program: &Path) -> Result<Vec<PathBuf>, ExecError> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .map_err(|e| ExecError::Ldd { path: program.to_path_buf(), detail: e.to_string() })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_ldd(&text).map_err(|lib| ExecError::MissingLib { path: program.to_path_buf(), lib })
}

/// Parse `ldd` output. Err(name) for a library marked "not found".
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("not a dynamic executable") || line.starts_with("statically linked") {
            return Ok(Vec::new());
        }
        if let Some((name, rest)) = line.split_once("=>") {
            let rest = rest.trim();
            if rest.starts_with("not found") {
                return Err(name.trim().to_string());
            }
            if let Some(p) = rest.split_whitespace().next().filter(|p| p.starts_with('/')) {
                libs.push(PathBuf::from(p));
            }
        } else if let Some(p) = line.split_whitespace().next().filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p)); // the interpreter
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_ldd_output() {
        // `ldd target/debug/kmatrix` on Debian bookworm.
        let text = "\tlinux-vdso.so.1 (0x00007ffd2b7f2000)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0b0c1a0000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0b0bfbf000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f0b0c8a7000)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert_eq!(parse_ldd("\tnot a dynamic executable\n").unwrap(), Vec::<PathBuf>::new());
        assert_eq!(parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err(), "libfoo.so.1");
    }

    #[test]
    fn refuses_a_non_elf_program_by_name() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("script.sh");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        let e = gather(&p).unwrap_err().to_string();
        assert!(e.contains("script.sh") && e.contains("not an ELF"), "{e}");
    }
}
