//! `kmatrix btf from-headers`: an external BTF for a kernel built without
//! `CONFIG_DEBUG_INFO_BTF`, made from a kernel build's own headers package the way the kernel's
//! build makes its BTF: a C file that includes the kernel headers the usual CO-RE objects read
//! (`linux/sched.h` for `task_struct`, `trace/events/syscalls.h` with `CREATE_TRACE_POINTS` for
//! `trace_event_raw_sys_enter`/`_exit`, as the kernel generates them), compiled with the build's
//! configuration (`include/linux/kconfig.h`, which includes `include/generated/autoconf.h`) by
//! `clang -g`, then the DWARF turned into a raw BTF blob by `pahole --btf_encode_detached`
//! (Debian's `dwarves`). The result is checked as `--btf` checks its input.
//!
//! What it is not: the kernel's whole BTF. Only the types those headers (and `--include`d ones)
//! define are in it, which is what CO-RE relocations of tracing objects look up; `kmatrix
//! core-check --btf` says which relocation found no type. Nor is it BTFHub: BTFHub converts a
//! build's full DWARF (its debug symbols package, hundreds of MB).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the BTF could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FromHeadersError {
    /// A tool the recipe runs is not installed.
    #[error("run {tool}: {source} (install it: apt-get install {package})")]
    Tool {
        /// `clang` or `pahole`.
        tool: String,
        /// The Debian package that has it.
        package: &'static str,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// A tool ran and failed.
    #[error("{tool} failed on {input}: {stderr}")]
    Failed {
        /// `clang` or `pahole`.
        tool: String,
        /// What it was run on.
        input: PathBuf,
        /// The end of its standard error.
        stderr: String,
    },
    /// The headers tree has no configuration (not a kernel build's headers).
    #[error("{dir} is not a kernel build's headers: it has no include/generated/autoconf.h")]
    NotHeaders {
        /// The tree.
        dir: PathBuf,
    },
    /// Writing the C file or the output failed.
    #[error("write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The tools wrote something that is not usable BTF.
    #[error("the BTF made from {dir}")]
    Check {
        /// The headers tree.
        dir: PathBuf,
        /// What is wrong with it.
        #[source]
        source: super::external::ExternalBtfError,
    },
}

/// The C file compiled for its DWARF: `includes` first, then the fixed ones.
pub fn source(includes: &[String]) -> String {
    let mut s = String::from("/* kmatrix btf from-headers: types for CO-RE relocations. */\n");
    for i in includes {
        s.push_str(&format!("#include <{i}>\n"));
    }
    s.push_str(
        "#include <linux/sched.h>\n\
         /* The tracepoint structs, generated as the kernel generates them. */\n\
         #define CREATE_TRACE_POINTS\n\
         #include <trace/events/syscalls.h>\n\
         struct task_struct *kmatrix_btf_task;\n\
         struct trace_event_raw_sys_enter *kmatrix_btf_sys_enter;\n\
         struct trace_event_raw_sys_exit *kmatrix_btf_sys_exit;\n",
    );
    s
}

/// Make `out` from the headers tree `dir` of a kernel of architecture `arch` (the kernel's
/// `arch/` directory name: `x86`, `arm64`); the number of types in it.
pub fn make(dir: &Path, arch: &str, includes: &[String], out: &Path) -> Result<usize, FromHeadersError> {
    if !dir.join("include/generated/autoconf.h").is_file() {
        return Err(FromHeadersError::NotHeaders { dir: dir.to_path_buf() });
    }
    let work = tempfile::tempdir().map_err(|source| FromHeadersError::Write { path: std::env::temp_dir(), source })?;
    let c = work.path().join("types.c");
    let o = work.path().join("types.o");
    std::fs::write(&c, source(includes)).map_err(|source| FromHeadersError::Write { path: c.clone(), source })?;
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let builtin = run(Command::new(&clang).arg("-print-file-name=include"), &clang, "clang", &c)?;
    let a = dir.join("arch").join(arch);
    let mut cc = Command::new(&clang);
    // Every type the headers define, not only those the file uses: CO-RE looks types up by name.
    cc.args(["-g", "-c", "-O0", "-fstandalone-debug", "-fno-eliminate-unused-debug-types", "-Wno-everything"]).args([
        "-D__KERNEL__",
        "-nostdinc",
        "-isystem",
        builtin.trim(),
    ]);
    for inc in [
        a.join("include"),
        a.join("include/generated"),
        dir.join("include"),
        a.join("include/uapi"),
        a.join("include/generated/uapi"),
        dir.join("include/uapi"),
        dir.join("include/generated/uapi"),
    ] {
        cc.arg("-I").arg(inc);
    }
    cc.arg("-include").arg(dir.join("include/linux/kconfig.h")).arg("-o").arg(&o).arg(&c);
    run(&mut cc, &clang, "clang", &c)?;
    let mut pahole = Command::new("pahole");
    pahole.arg(format!("--btf_encode_detached={}", out.display())).arg(&o);
    run(&mut pahole, "pahole", "dwarves", &o)?;
    let bytes =
        super::external::read(out).map_err(|source| FromHeadersError::Check { dir: dir.to_path_buf(), source })?;
    let table = super::BtfTable::parse(&bytes).map_err(|source| FromHeadersError::Check {
        dir: dir.to_path_buf(),
        source: super::external::ExternalBtfError::NotBtf { path: out.to_path_buf(), source },
    })?;
    Ok(table.types.len() - 1)
}

/// Run `cmd` (`tool`, from `package`) on `input`; its standard output.
fn run(cmd: &mut Command, tool: &str, package: &'static str, input: &Path) -> Result<String, FromHeadersError> {
    let o = cmd.output().map_err(|source| FromHeadersError::Tool { tool: tool.to_string(), package, source })?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        return Err(FromHeadersError::Failed {
            tool: tool.to_string(),
            input: input.to_path_buf(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_includes_the_users_headers_before_the_tracepoints() {
        let s = source(&["linux/fs.h".to_string()]);
        let fs = s.find("#include <linux/fs.h>").unwrap();
        let tp = s.find("#define CREATE_TRACE_POINTS").unwrap();
        assert!(fs < tp, "{s}");
        assert!(s.contains("struct task_struct *kmatrix_btf_task;"));
    }

    #[test]
    fn a_tree_without_a_config_is_not_headers() {
        let d = tempfile::tempdir().unwrap();
        let e = make(d.path(), "x86", &[], &d.path().join("out.btf")).unwrap_err();
        assert!(matches!(e, FromHeadersError::NotHeaders { .. }), "{e}");
        assert!(e.to_string().contains(&d.path().display().to_string()), "{e}");
    }
}
