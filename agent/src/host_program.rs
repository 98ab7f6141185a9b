//! A tracing tool of the host (perf, trace-cmd, bpftool, ...) as the agent finds it in the shared
//! host root (`share.rs`) before a `tool.*` scenario runs it ([`Tool::found`]):
//!
//! - which program runs: the tool's usual path, except Ubuntu's perf and bpftool, whose
//!   `/usr/bin/perf` and `/usr/sbin/bpftool` are linux-tools-common's wrappers that exec
//!   `/usr/lib/linux-tools/$(uname -r)/<tool>` and refuse every kernel Ubuntu has no
//!   linux-tools package for (every guest kernel): the real binary, the newest under
//!   `/usr/lib/linux-tools/*/`, runs instead, and results say which;
//! - which package provides it on the host's distribution (`ID`/`ID_LIKE` of the host root's
//!   os-release), for the reason when it is missing;
//! - whether it runs at all: its version command, whose own words are the evidence when it
//!   refuses (a wrapper, a missing library), and the version it says, kept for every result.
//!
//! A tool that is missing or refuses is what the *host* lacks, not the kernel: its scenarios are
//! `unsupported` with `host_lacks` set, which the host's verdict leaves `unsupported` on every
//! kernel. Not here: running tools in scenarios and judging what they print
//! (`scenario::support::host_tool`, `scenario::tool`).

use crate::{exec, share};
use anyhow::{Context, Result};
use kmatrix_proto::{ExecOutcome, ExecRequest};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The environment host tools get: a plain root shell's, nothing of the agent's own.
pub const ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ("HOME", "/root"),
    ("LANG", "C.UTF-8"),
    // perf asks before reading kallsyms of a kernel it did not build for, and pages its output.
    ("PAGER", "cat"),
    ("TERM", "dumb"),
];

/// Where Ubuntu's linux-tools packages put the real perf and bpftool, one directory per
/// kernel ABI (`6.8.0-90-generic`).
pub const LINUX_TOOLS: &str = "/usr/lib/linux-tools";

/// The package that provides a tool, per distribution.
#[derive(Debug, Clone, Copy)]
pub struct Packages {
    pub debian: &'static str,
    pub ubuntu: &'static str,
}

impl Packages {
    /// The same name on Debian and Ubuntu.
    pub const fn both(name: &'static str) -> Packages {
        Packages { debian: name, ubuntu: name }
    }
}

/// A host tool: what runs, from which package, and how it says its version.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    /// The program (or file), as a host path.
    pub path: &'static str,
    pub packages: Packages,
    /// The tool's name under [`LINUX_TOOLS`]`/<abi>/` when `path` may be Ubuntu's wrapper of it.
    pub linux_tools: Option<&'static str>,
    /// The arguments after the program that make it print its version on its first line
    /// (stdout or stderr); empty with [`Tool::version_file`].
    pub version_args: &'static [&'static str],
    /// The exit status of the version command of a tool that works (trace-cmd's is 255).
    pub version_exit: i32,
    /// A host file holding the version (`bcc/version.py`), for tools whose version needs no run.
    pub version_file: Option<&'static str>,
}

/// What the host root holds for a tool.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// It runs: the program to run (a host path) and its version line.
    Usable { program: String, version: String },
    /// It is missing or refuses to run: what the host lacks (`Debian's linux-perf`), the
    /// reason and the evidence (the tool's own words when it refused).
    Lacking { lacks: String, reason: String, evidence: String },
    /// It cannot run in this guest (a host of another architecture), or the host root is not
    /// shared: the reason and the evidence.
    Unreachable { reason: String, evidence: String },
}

impl Tool {
    /// A tool found at `path` under the same package name on Debian and Ubuntu, whose version
    /// command is `path version_args` exiting 0.
    pub const fn asking(
        name: &'static str,
        path: &'static str,
        package: &'static str,
        version_args: &'static [&'static str],
    ) -> Tool {
        Tool {
            name,
            path,
            packages: Packages::both(package),
            linux_tools: None,
            version_args,
            version_exit: 0,
            version_file: None,
        }
    }

    /// What the host root holds for this tool, found once per boot.
    pub fn found(&self) -> Found {
        static KNOWN: Mutex<BTreeMap<&'static str, Found>> = Mutex::new(BTreeMap::new());
        if let Some(f) = KNOWN.lock().ok().and_then(|k| k.get(self.name).cloned()) {
            return f;
        }
        let f = self.find(Path::new(share::HOST_ROOT));
        if let Ok(mut k) = KNOWN.lock() {
            k.insert(self.name, f.clone());
        }
        f
    }

    /// The program to run (a host path): the one [`Tool::found`], else the usual path.
    pub fn program(&self) -> String {
        match self.found() {
            Found::Usable { program, .. } => program,
            _ => self.path.to_string(),
        }
    }

    /// The tool's version line, or why there is none.
    pub fn version(&self) -> String {
        match self.found() {
            Found::Usable { version, .. } => version,
            Found::Lacking { reason, .. } | Found::Unreachable { reason, .. } => reason,
        }
    }

    fn find(&self, root: &Path) -> Found {
        if let Err(why) = share::mount_offered() {
            return Found::Unreachable {
                reason: format!("host program {} unreachable: {why}", self.path),
                evidence: why.to_string(),
            };
        }
        let os = OsRelease::read(root);
        let program = match self.linux_tools.and_then(|t| newest_linux_tool(root, t)) {
            Some(p) => p,
            None => self.path.to_string(),
        };
        let inside = root.join(program.trim_start_matches('/'));
        if !inside.exists() {
            let lacks = os.package(self.packages);
            return Found::Lacking {
                reason: format!("host program {program} missing: install {lacks} on the host"),
                evidence: format!("{} does not exist ({})", inside.display(), os.pretty),
                lacks,
            };
        }
        // The host's tools run in the guest only when host and guest share a CPU.
        if let Some(why) = crate::arch::foreign_program(root, &program) {
            return Found::Unreachable {
                reason: format!("host program {program} cannot run in this guest"),
                evidence: format!("{} {why}", inside.display()),
            };
        }
        if let Some(file) = self.version_file {
            let version = match std::fs::read_to_string(root.join(file.trim_start_matches('/'))) {
                Ok(t) => t
                    .lines()
                    .find_map(|l| l.split_once("__version__").map(|(_, v)| v.trim_matches([' ', '=', '\'', '"'])))
                    .map(|v| format!("{} {v}", self.name))
                    .unwrap_or_else(|| format!("no __version__ in {file}")),
                Err(e) => format!("cannot read {file}: {e}"),
            };
            return Found::Usable { program, version };
        }
        let mut argv = vec![program.as_str()];
        argv.extend_from_slice(self.version_args);
        let words = argv.join(" ");
        match run_in(&argv, "/tmp", Duration::from_secs(30)) {
            Ok(out) if !out.timed_out && out.exit_code == Some(self.version_exit) => {
                let text = if out.stdout.trim().is_empty() { &out.stderr } else { &out.stdout };
                let version = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_string();
                Found::Usable { program, version }
            }
            Ok(out) => {
                let lacks = os.package(self.packages);
                let said = first_words(&out);
                Found::Lacking {
                    reason: format!(
                        "host program {program} does not run (`{words}`: {said}): install {lacks} on the host"
                    ),
                    evidence: format!(
                        "`{words}` in the host root ({}): {}; stderr: {}; stdout: {}",
                        os.pretty,
                        ended(&out),
                        crate::excerpt::tail(out.stderr.trim(), 10),
                        crate::excerpt::head(out.stdout.trim(), 5)
                    ),
                    lacks,
                }
            }
            Err(e) => {
                let lacks = os.package(self.packages);
                Found::Lacking {
                    reason: format!("host program {program} does not run: install {lacks} on the host"),
                    evidence: format!("`{words}` in the host root ({}): {e:#}", os.pretty),
                    lacks,
                }
            }
        }
    }
}

/// The newest `<root>/usr/lib/linux-tools/<abi>/<tool>` (by the numbers in `<abi>`), as a host
/// path.
fn newest_linux_tool(root: &Path, tool: &str) -> Option<String> {
    let dir = root.join(LINUX_TOOLS.trim_start_matches('/'));
    let mut abis: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|abi| root.join(LINUX_TOOLS.trim_start_matches('/')).join(abi).join(tool).is_file())
        .collect();
    abis.sort_by_key(|a| numbers(a));
    abis.pop().map(|abi| format!("{LINUX_TOOLS}/{abi}/{tool}"))
}

/// The runs of digits in `s`, as numbers: `6.8.0-90-generic` → [6, 8, 0, 90].
fn numbers(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()).filter_map(|w| w.parse().ok()).collect()
}

/// How a refusing tool ended and its first words: up to three non-empty lines, stderr's first
/// (a wrapper's warning may follow a complaint of its own shell script).
fn first_words(out: &ExecOutcome) -> String {
    let lines = |t: &str| t.lines().map(str::trim).filter(|l| !l.is_empty()).take(3).collect::<Vec<_>>().join(" / ");
    let said = match (lines(&out.stderr), lines(&out.stdout)) {
        (e, _) if !e.is_empty() => e,
        (_, o) if !o.is_empty() => o,
        _ => "no output".into(),
    };
    format!("{}, {said}", ended(out))
}

/// One line: how a run ended.
pub fn ended(out: &ExecOutcome) -> String {
    match (out.timed_out, out.exit_code, out.signal) {
        (true, _, _) => format!("timed out after {} ms", out.wall_ms),
        (_, Some(c), _) => format!("exit {c} in {} ms", out.wall_ms),
        (_, _, Some(s)) => format!("signal {s} after {} ms", out.wall_ms),
        _ => "no exit status".into(),
    }
}

/// The host's distribution, from its root's os-release.
#[derive(Debug, Clone, PartialEq)]
pub struct OsRelease {
    /// `ID` (`debian`, `ubuntu`), empty when unknown.
    pub id: String,
    /// `ID_LIKE`'s words (`ubuntu debian` on Linux Mint).
    pub like: Vec<String>,
    /// `PRETTY_NAME`, or where the file was not found.
    pub pretty: String,
}

impl OsRelease {
    /// `etc/os-release`, else `usr/lib/os-release`, under `root`.
    pub fn read(root: &Path) -> OsRelease {
        for f in ["etc/os-release", "usr/lib/os-release"] {
            if let Ok(text) = std::fs::read_to_string(root.join(f)) {
                return OsRelease::parse(&text);
            }
        }
        OsRelease { id: String::new(), like: Vec::new(), pretty: "no os-release in the host root".into() }
    }

    pub fn parse(text: &str) -> OsRelease {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
                .unwrap_or_default()
        };
        OsRelease {
            id: field("ID"),
            like: field("ID_LIKE").split_whitespace().map(str::to_string).collect(),
            pretty: field("PRETTY_NAME"),
        }
    }

    fn is(&self, id: &str) -> bool {
        self.id == id || self.like.iter().any(|l| l == id)
    }

    /// The package providing a tool here, as a person installs it: `Ubuntu's linux-tools-generic`,
    /// `Debian's linux-perf`; on another distribution, Debian's name for reference.
    pub fn package(&self, p: Packages) -> String {
        if self.is("ubuntu") {
            format!("Ubuntu's {}", p.ubuntu)
        } else if self.is("debian") {
            format!("Debian's {}", p.debian)
        } else {
            let id = if self.id.is_empty() { "this distribution" } else { &self.id };
            format!("the package of {id} that Debian calls {}", p.debian)
        }
    }
}

/// Run `argv` (host paths) in the host root with cwd `cwd` (a host path), up to `timeout`, with
/// [`ENV`] (and BCC's kernel source when the host fetched the kernel's headers).
pub fn run_in(argv: &[&str], cwd: &str, timeout: Duration) -> Result<ExecOutcome> {
    let root = share::offered().context("the host root is not shared into this guest")?;
    let mut env: Vec<(String, String)> = ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    // The kernel's headers, when the host fetched them (BCC compiles against them).
    if let Some((host_path, _)) = share::headers_dir() {
        for var in kmatrix_proto::HEADERS_ENV {
            env.push((var.to_string(), host_path.clone()));
        }
    }
    let req = ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        timeout_ms: timeout.as_millis() as u64,
        env,
        cwd: Some(cwd.into()),
        root: Some(root),
        stream: false,
        stdin: Default::default(),
        winsize: None,
        host_time_ns: None,
    };
    exec::run(None, &req).with_context(|| format!("run {} in the host root", argv.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ubuntu 24.04's /etc/os-release, and Debian 12's.
    const NOBLE: &str =
        "PRETTY_NAME=\"Ubuntu 24.04.3 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n";
    const BOOKWORM: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n";
    const PERF: Packages = Packages { debian: "linux-perf", ubuntu: "linux-tools-generic" };

    #[test]
    fn the_package_named_is_the_host_distributions() {
        let noble = OsRelease::parse(NOBLE);
        assert_eq!(noble.id, "ubuntu");
        assert_eq!(noble.pretty, "Ubuntu 24.04.3 LTS");
        assert_eq!(noble.package(PERF), "Ubuntu's linux-tools-generic");
        assert_eq!(OsRelease::parse(BOOKWORM).package(PERF), "Debian's linux-perf");
        let mint = OsRelease::parse("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n");
        assert_eq!(mint.package(PERF), "Ubuntu's linux-tools-generic");
        let fedora = OsRelease::parse("ID=fedora\n");
        assert_eq!(fedora.package(PERF), "the package of fedora that Debian calls linux-perf");
    }

    #[test]
    fn the_newest_linux_tools_binary_is_chosen_by_its_numbers() {
        let root = std::env::temp_dir().join(format!("kmatrix-linux-tools-{}", std::process::id()));
        for abi in ["6.8.0-9-generic", "6.8.0-90-generic", "6.8.0-100-generic", "6.11.0-1-generic"] {
            let d = root.join("usr/lib/linux-tools").join(abi);
            std::fs::create_dir_all(&d).unwrap();
            if abi != "6.11.0-1-generic" {
                std::fs::write(d.join("perf"), b"").unwrap();
            }
        }
        // 6.11's directory has no perf: the newest with one wins, by number, not by text.
        assert_eq!(newest_linux_tool(&root, "perf").as_deref(), Some("/usr/lib/linux-tools/6.8.0-100-generic/perf"));
        assert_eq!(newest_linux_tool(&root, "bpftool"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
