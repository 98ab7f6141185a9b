//! Host programs in guests (`kmatrix exec`, `kmatrix shell`, tool scenarios): the guest sees the
//! host's root read-only (see `agent/src/share.rs`), so anything a host shell can run — a dynamic
//! test binary, a `#!` script, perf or bpftool — runs unchanged, at its host path, in the
//! caller's cwd, with the caller's environment minus what only makes sense on the host.
//!
//! This module checks a command line on the host before anything boots (a missing program or
//! interpreter is bad input, named) and decides the environment; booting and the protocol are
//! `guest.rs`'s job, the command's output and exit code `cli/exec.rs`'s.

#![warn(missing_docs)]

use kmatrix_proto::{ExecRequest, StdinMode};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why a host command line cannot run in a guest: checked on the host first, so the error names
/// the program before any guest boots.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExecError {
    /// A program name found in no directory of PATH.
    #[error("program {name:?} not found on this host (looked in PATH: {path})")]
    NotFound {
        /// The name given.
        name: String,
        /// The PATH searched.
        path: String,
    },
    /// The program exists but cannot be run (not a file, not executable, unreadable).
    #[error("cannot run {path}: {detail}")]
    NotExecutable {
        /// The program.
        path: PathBuf,
        /// Why it cannot run.
        detail: String,
    },
    /// A directory the guest cannot show: under its own `/proc`, `/sys` or `/dev`.
    #[error("{what} {} cannot be shown in the guest: {own} there is the guest's own", .path.display())]
    GuestOnly {
        /// What the directory is (`the current directory`, `--rw`).
        what: String,
        /// The directory.
        path: PathBuf,
        /// The guest-only directory it is under.
        own: &'static str,
    },
    /// A directory that does not exist (or is not one).
    #[error("{what} {path}: {detail}")]
    NoDir {
        /// What the directory is (`the current directory`, `--rw`).
        what: String,
        /// The directory as given (or as the kernel names a removed one).
        path: String,
        /// Why it cannot be used.
        detail: String,
    },
    /// A script whose `#!` interpreter the host does not have.
    #[error("{script} needs the interpreter {interpreter}, which this host does not have")]
    NoInterpreter {
        /// The script.
        script: PathBuf,
        /// Its `#!` line's interpreter.
        interpreter: String,
    },
    /// An `--env` word that is not `NAME=VALUE` (as given).
    #[error("--env {0:?}: expected NAME=VALUE")]
    BadEnv(String),
    /// A command line that does not split into words.
    #[error("{line:?} does not split into words: {why}")]
    Split {
        /// The command line.
        line: String,
        /// Why.
        why: SplitError,
    },
    /// A command line with no word in it.
    #[error("empty command")]
    Empty,
}

/// Variables never passed to the guest: they name host resources the guest cannot reach
/// (display servers, agents' sockets, the host's runtime and session directories, the terminal
/// multiplexer) or would make the guest's programs write where the host expects its own files.
/// Everything else of the caller's environment goes through (`RUST_BACKTRACE`, `CARGO_*`,
/// `PATH`, `HOME`, test filters...). `--env NAME=VALUE` adds or overrides.
pub const ENV_DENY: &[&str] = &[
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "SSH_AUTH_SOCK",
    "SSH_AGENT_PID",
    "GPG_AGENT_INFO",
    "DBUS_SESSION_BUS_ADDRESS",
    "XDG_RUNTIME_DIR",
    "XDG_SESSION_ID",
    "TMUX",
    "TMUX_PANE",
    "STY",
    "KMATRIX_CACHE",
    "KMATRIX_QEMU",
    "LD_PRELOAD",
];

/// The directories root's `PATH` has that an ordinary user's often lacks.
const ROOT_PATH_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// The `PATH` a program sees in the guest, where it runs as root: the caller's, then each of
/// root's `sbin` directories it lacks (as `sudo`'s `secure_path` gives them), so an ordinary
/// user's `kmatrix exec -- bpftool` or a script calling `funccount-bpfcc` finds what root finds.
/// The host checks a program name against this same `PATH` before it boots anything.
pub fn guest_path(caller: &str) -> String {
    let have: Vec<PathBuf> = std::env::split_paths(caller).collect();
    let mut path = caller.to_string();
    for d in ROOT_PATH_DIRS.iter().filter(|d| !have.iter().any(|h| h == Path::new(d))) {
        if !path.is_empty() {
            path.push(':');
        }
        path.push_str(d);
    }
    path
}

/// The environment a guest program gets from `host` (the caller's), plus `KMATRIX_GUEST`
/// (the kernel id) and `KMATRIX_KERNEL_RELEASE`; its `PATH` is [`guest_path`] of the caller's.
pub fn guest_env(
    host: impl IntoIterator<Item = (String, String)>,
    kernel: &str,
    release: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = host.into_iter().filter(|(k, _)| !ENV_DENY.contains(&k.as_str())).collect();
    env.retain(|(k, _)| k != "KMATRIX_GUEST" && k != "KMATRIX_KERNEL_RELEASE");
    if let Some((_, v)) = env.iter_mut().find(|(k, _)| k == "PATH") {
        *v = guest_path(v);
    }
    env.push(("KMATRIX_GUEST".into(), kernel.into()));
    env.push(("KMATRIX_KERNEL_RELEASE".into(), release.into()));
    env
}

/// The guest's kernel-backed directory `p` is in (`/proc`, `/sys`, `/dev`: bound over the host's
/// in the shared view, and no host path under one can be shown there). `/tmp` and `/run` are the
/// guest's own too, but a host path under them that a request names is shown at its host path
/// (the agent's `host_paths.rs`).
pub fn guest_own(p: &Path) -> Option<&'static str> {
    ["/proc", "/sys", "/dev"].into_iter().find(|o| p.starts_with(o))
}

/// The caller's current directory, where a host program runs in the guest: refused, named, when
/// it no longer exists or lies under a guest-only directory ([`guest_own`]).
pub fn caller_cwd() -> Result<PathBuf, ExecError> {
    let cwd = std::env::current_dir().map_err(|e| {
        // getcwd(2) fails on a removed directory; the kernel still names it.
        let named = std::fs::read_link("/proc/self/cwd").map(|p| p.display().to_string());
        ExecError::NoDir {
            what: "the current directory".into(),
            path: named.unwrap_or_default(),
            detail: e.to_string(),
        }
    })?;
    match guest_own(&cwd) {
        Some(own) => Err(ExecError::GuestOnly { what: "the current directory".into(), path: cwd, own }),
        None => Ok(cwd),
    }
}

/// A directory the user names for the guest (`what`: `--rw`), made absolute: it must exist, be a
/// directory, and not lie under a guest-only directory ([`guest_own`]).
pub fn shared_dir(what: &str, dir: &Path) -> Result<PathBuf, ExecError> {
    let no = |detail: String| ExecError::NoDir { what: what.into(), path: dir.display().to_string(), detail };
    let abs = std::fs::canonicalize(dir).map_err(|e| no(e.to_string()))?;
    if !abs.is_dir() {
        return Err(no("not a directory".into()));
    }
    match guest_own(&abs) {
        Some(own) => Err(ExecError::GuestOnly { what: what.into(), path: abs, own }),
        None => Ok(abs),
    }
}

/// Resolve `program` as a shell would on this host: a name is looked up in `path` (the caller's
/// `PATH`), a path is taken relative to `cwd`. The result must be an executable file; a script's
/// `#!` interpreter must exist too (`#!/usr/bin/env NAME` looks NAME up in `path`).
pub fn resolve(program: &str, path: &str, cwd: &Path) -> Result<PathBuf, ExecError> {
    let found = if program.contains('/') {
        let p = cwd.join(program);
        if !p.exists() {
            return Err(ExecError::NotFound { name: program.into(), path: "(a path, not looked up)".into() });
        }
        p
    } else {
        lookup(program, path).ok_or_else(|| ExecError::NotFound { name: program.into(), path: path.into() })?
    };
    let meta = std::fs::metadata(&found)
        .map_err(|e| ExecError::NotExecutable { path: found.clone(), detail: e.to_string() })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(ExecError::NotExecutable { path: found, detail: "not an executable file".into() });
    }
    if let Some(interp) = interpreter(&found) {
        let mut words = interp.split_whitespace();
        let first = words.next().unwrap_or("");
        let ok = if Path::new(first).file_name() == Some(OsStr::new("env")) {
            // `#!/usr/bin/env [-S] NAME`: NAME must be in PATH.
            let name = words.find(|w| !w.starts_with('-')).unwrap_or("");
            Path::new(first).is_file() && lookup(name, path).is_some()
        } else {
            Path::new(first).is_file()
        };
        if !ok {
            return Err(ExecError::NoInterpreter { script: found, interpreter: interp });
        }
    }
    Ok(found)
}

fn lookup(name: &str, path: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
}

/// The `#!` line of a script (without `#!`), if `p` starts with one.
fn interpreter(p: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(p).and_then(|mut f| f.read(&mut head)).ok()?;
    let head = &head[..n];
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next()?;
    Some(String::from_utf8_lossy(line).trim().to_string())
}

/// The guest program's environment for the kernel headers offered with `g`'s share, if any:
/// `BCC_KERNEL_SOURCE` and `BPFTRACE_KERNEL_SOURCE` (BCC and bpftrace compile against it; the
/// path is the host's, which is where the shared view shows it).
pub fn headers_env(g: &crate::guest::Guest, env: &mut Vec<(String, String)>) {
    if let Some(dir) = g.share.as_ref().and_then(|s| s.headers.clone()) {
        for var in kmatrix_proto::HEADERS_ENV {
            env.retain(|(k, _)| k != var);
            env.push((var.to_string(), dir.clone()));
        }
    }
}

/// Check a command line on the host and build the request every kernel gets: `argv[0]`
/// resolved in the caller's `PATH` ([`resolve`]), run in the caller's directory
/// ([`caller_cwd`]) with the caller's environment and `extra_env` (`NAME=VALUE`, overriding),
/// output streamed, no stdin, `timeout` seconds. Returns it with the `rw` directories made
/// absolute ([`shared_dir`]). `argv` must not be empty.
pub fn request(
    argv: &[String],
    extra_env: &[String],
    timeout: f64,
    rw: &[PathBuf],
) -> Result<(ExecRequest, Vec<PathBuf>), ExecError> {
    let cwd = caller_cwd()?;
    let path = guest_path(&std::env::var("PATH").unwrap_or_default());
    let program = resolve(&argv[0], &path, &cwd)?;
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    for kv in extra_env {
        let (k, v) = kv.split_once('=').ok_or_else(|| ExecError::BadEnv(kv.clone()))?;
        env.retain(|(n, _)| n != k);
        env.push((k.to_string(), v.to_string()));
    }
    let mut rw_abs = Vec::new();
    for d in rw {
        rw_abs.push(shared_dir("--rw", d)?);
    }
    let mut full = vec![program.display().to_string()];
    full.extend(argv[1..].iter().cloned());
    let req = ExecRequest {
        argv: full,
        timeout_ms: (timeout * 1000.0) as u64,
        env,
        cwd: Some(cwd.display().to_string()),
        root: None,
        stream: true,
        stdin: StdinMode::Null,
        winsize: None,
        host_time_ns: None,
    };
    Ok((req, rw_abs))
}

/// Why a command line does not split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A `'` without its closing `'`.
    #[error("unterminated single quote")]
    SingleQuote,
    /// A `"` without its closing `"`.
    #[error("unterminated double quote")]
    DoubleQuote,
    /// A `\` with nothing after it to escape.
    #[error("a backslash at the end")]
    TrailingBackslash,
}

/// Plain words, 'single' and "double" quotes, backslash escapes; no expansion of any kind.
pub fn split_words(s: &str) -> Result<Vec<String>, SplitError> {
    let (mut words, mut cur, mut any) = (Vec::new(), String::new(), false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                any = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(SplitError::SingleQuote),
                    }
                }
            }
            '"' => {
                any = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.push(chars.next().ok_or(SplitError::TrailingBackslash)?),
                        Some(c) => cur.push(c),
                        None => return Err(SplitError::DoubleQuote),
                    }
                }
            }
            '\\' => {
                any = true;
                cur.push(chars.next().ok_or(SplitError::TrailingBackslash)?);
            }
            c if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                any = true;
                cur.push(c);
            }
        }
    }
    if any {
        words.push(cur);
    }
    Ok(words)
}

/// A host command line given as one string (`'ls -l /tmp'`, as `--workload` and `--command`
/// take it): split into words ([`split_words`]), its program resolved ([`resolve`]) in the
/// guest's `PATH` against the caller's directory ([`caller_cwd`]), where it will run. Returns
/// the argv with the program's host path first, and that directory.
pub fn command_line(line: &str) -> Result<(Vec<String>, PathBuf), ExecError> {
    let words = split_words(line).map_err(|why| ExecError::Split { line: line.into(), why })?;
    let Some(first) = words.first() else { return Err(ExecError::Empty) };
    let path = guest_path(&std::env::var("PATH").unwrap_or_default());
    let cwd = caller_cwd()?;
    let program = resolve(first, &path, &cwd)?;
    let mut argv = vec![program.display().to_string()];
    argv.extend(words[1..].iter().cloned());
    Ok((argv, cwd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_resolves_the_program_and_env_overrides_the_callers() {
        let argv: Vec<String> = ["sh", "-c", "true"].map(String::from).to_vec();
        let (req, rw) = request(&argv, &["KMATRIX_REQUEST_TEST=a=b".into()], 2.5, &[]).unwrap();
        assert!(req.argv[0].starts_with('/') && req.argv[0].ends_with("/sh"), "{:?}", req.argv);
        assert_eq!(req.argv[1..], ["-c", "true"]);
        assert_eq!(req.timeout_ms, 2500);
        let set: Vec<_> = req.env.iter().filter(|(k, _)| k == "KMATRIX_REQUEST_TEST").collect();
        assert_eq!(set, [&("KMATRIX_REQUEST_TEST".to_string(), "a=b".to_string())]);
        assert!(rw.is_empty());
        assert_eq!(request(&argv, &["NOEQUALS".into()], 1.0, &[]).unwrap_err(), ExecError::BadEnv("NOEQUALS".into()));
    }

    #[test]
    fn resolves_names_in_path_and_paths_against_cwd() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, b"\x7fELF").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = bin.display().to_string();
        assert_eq!(resolve("tool", &path, Path::new("/")).unwrap(), tool);
        assert_eq!(resolve("./bin/tool", "", d.path()).unwrap(), d.path().join("./bin/tool"));
        let e = resolve("no-such-tool", &path, Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("no-such-tool") && e.to_string().contains(&path), "{e}");
        let data = d.path().join("data.txt");
        std::fs::write(&data, b"x").unwrap();
        assert!(matches!(resolve(data.to_str().unwrap(), "", Path::new("/")), Err(ExecError::NotExecutable { .. })));
    }

    #[test]
    fn a_script_needs_its_interpreter() {
        let d = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p.display().to_string()
        };
        let ok = write("ok.sh", "#!/bin/sh\necho hi\n");
        assert!(resolve(&ok, "/usr/bin:/bin", Path::new("/")).is_ok());
        let bad = write("bad.sh", "#!/opt/kmatrix-no-such/interp -x\n");
        let e = resolve(&bad, "/usr/bin:/bin", Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("/opt/kmatrix-no-such/interp"), "{e}");
        let env_bad = write("env.sh", "#!/usr/bin/env kmatrix-no-such-lang\n");
        assert!(matches!(resolve(&env_bad, "/usr/bin:/bin", Path::new("/")), Err(ExecError::NoInterpreter { .. })));
        let env_ok = write("env-ok.sh", "#!/usr/bin/env sh\n");
        assert!(resolve(&env_ok, "/usr/bin:/bin", Path::new("/")).is_ok());
    }

    #[test]
    fn environment_drops_host_only_variables_and_names_the_kernel() {
        let host = vec![
            ("RUST_BACKTRACE".to_string(), "1".to_string()),
            ("SSH_AUTH_SOCK".to_string(), "/run/user/0/ssh".to_string()),
            ("KMATRIX_GUEST".to_string(), "stale".to_string()),
            ("CARGO_PKG_NAME".to_string(), "x".to_string()),
        ];
        let env = guest_env(host, "debian-6.1", "6.1.0-50-amd64");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("RUST_BACKTRACE"), Some("1"));
        assert_eq!(get("CARGO_PKG_NAME"), Some("x"));
        assert_eq!(get("SSH_AUTH_SOCK"), None);
        assert_eq!(get("KMATRIX_GUEST"), Some("debian-6.1"));
        assert_eq!(env.iter().filter(|(k, _)| k == "KMATRIX_GUEST").count(), 1);
    }

    #[test]
    fn the_guest_path_is_roots() {
        // An ordinary user's PATH (as `.ci/as-user` and a login shell give it) gains root's sbin
        // directories, in order, after the caller's own; root's own PATH stays as it is.
        assert_eq!(
            guest_path("/usr/local/bin:/usr/bin:/bin"),
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
        );
        let root = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        assert_eq!(guest_path(root), root);
        assert_eq!(guest_path("/home/u/bin:/usr/sbin"), "/home/u/bin:/usr/sbin:/usr/local/sbin:/sbin");
        let env = guest_env(vec![("PATH".to_string(), "/usr/bin:/bin".to_string())], "k", "r");
        assert_eq!(
            env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str()),
            Some("/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin")
        );
    }
}
