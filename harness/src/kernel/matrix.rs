//! `kernels/matrix.toml` (which kernels to test) and `kernels/kernels.lock` (the exact packages
//! and hashes they resolved to).
//!
//! The matrix names kernels by id with a suite and a version line; the lock pins, per id, every
//! package (version, filename, size, sha256) and the sha256 of the extracted boot files, so a run
//! is reproducible and works offline once the cache is warm. Only `kmatrix kernels update`
//! rewrites the lock. Both files, and the verdict expectations that go with them
//! (`expectations.toml`), are found in `$KMATRIX_KERNELS_DIR`, else the project's `kernels/`,
//! else the copies built into the binary: the three always come from the same place.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::arch::Arch;
use super::debian::index::{DebPackage, Signature};
use super::error::{KernelError, Result};
use crate::cache::write_atomic;

const DEFAULT_MATRIX: &str = include_str!("../../../kernels/matrix.toml");
const DEFAULT_LOCK: &str = include_str!("../../../kernels/kernels.lock");
/// The built-in matrix's known gaps: without them the binary would judge the same kernels
/// differently outside the repository (Debian 6.1's config gaps would be failures).
const DEFAULT_EXPECTATIONS: &str = include_str!("../../../kernels/expectations.toml");

/// The matrix's file name in a kernels directory.
pub const MATRIX_FILE: &str = "matrix.toml";
/// The lock's file name in a kernels directory.
pub const LOCK_FILE: &str = "kernels.lock";
/// The verdict expectations' file name in a kernels directory.
pub const EXPECTATIONS_FILE: &str = "expectations.toml";

/// One kernel of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixKernel {
    /// The id runs and results name the kernel by (`debian-6.1`).
    pub id: String,
    /// Which distribution's archive (`debian`, `ubuntu`).
    pub distro: Distro,
    /// The suite whose index holds its builds (`bookworm`, `trixie-backports`).
    pub suite: String,
    /// Upstream version line: `6.1` takes the newest `6.1.x` build of the suite.
    pub line: String,
    /// The guest architecture (default x86_64): which `binary-<arch>` index, which QEMU.
    #[serde(default, skip_serializing_if = "Arch::is_default")]
    pub arch: Arch,
    /// The kernel flavour (default: the architecture's plain one, `amd64` or `arm64`; no
    /// -cloud/-rt builds).
    #[serde(default)]
    pub flavour: Option<String>,
    /// Part of the default matrix (`kmatrix test` without `--kernel`).
    #[serde(default = "yes")]
    pub default: bool,
    /// The lane a run that names none gives this kernel (default: every lane). The wide fleet's
    /// kernels say `core`: their tool lane is asked for with `--lane tools` or `--lane all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<crate::catalogue::Lane>,
}

impl MatrixKernel {
    /// The `linux-image-*-<flavour>` suffix this kernel is resolved with.
    pub fn flavour(&self) -> &str {
        self.flavour.as_deref().unwrap_or(self.arch.debian())
    }
}

fn yes() -> bool {
    true
}

/// Where a matrix kernel's packages come from.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    /// The Debian archive.
    #[default]
    Debian,
    /// Ubuntu's archive (`kernel/ubuntu/`).
    Ubuntu,
}

impl Distro {
    /// True for Debian, which manifests and locks written before Ubuntu existed leave out.
    pub fn is_debian(&self) -> bool {
        *self == Distro::Debian
    }
}

/// `kernels/matrix.toml`: the kernels a run covers and the suites `debian:<version>` searches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// The kernels, in file order (`[[kernel]]` tables).
    #[serde(rename = "kernel")]
    pub kernels: Vec<MatrixKernel>,
    /// Suites searched for `debian:<version>` specs, in order.
    #[serde(default)]
    pub search_suites: Vec<String>,
}

impl Matrix {
    /// Parse and check a matrix (`what` names it in errors): ids unique, lines well-formed.
    pub fn parse(text: &str, what: &str) -> Result<Matrix> {
        let m: Matrix =
            toml::from_str(text).map_err(|e| KernelError::Toml { path: what.to_string(), source: Box::new(e) })?;
        let invalid = |detail: String| KernelError::Invalid { path: what.to_string(), detail };
        let mut seen = std::collections::HashSet::new();
        for k in &m.kernels {
            if !seen.insert(k.id.as_str()) {
                return Err(invalid(format!("kernel id {:?} appears twice", k.id)));
            }
            let id_ok = !k.id.is_empty()
                && k.id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                && !k.id.contains('/');
            if !id_ok {
                return Err(invalid(format!("kernel id {:?}: use letters, digits, '.', '_' and '-'", k.id)));
            }
            let line_ok =
                !k.line.is_empty() && k.line.split('.').all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
            if !line_ok {
                return Err(invalid(format!("kernel {}: line {:?} is not a version line like \"6.1\"", k.id, k.line)));
            }
            if k.suite.is_empty() || !k.suite.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid(format!("kernel {}: suite {:?} is not a suite name", k.id, k.suite)));
            }
        }
        Ok(m)
    }

    /// The kernel of this id.
    pub fn get(&self, id: &str) -> Option<&MatrixKernel> {
        self.kernels.iter().find(|k| k.id == id)
    }

    /// Every id, in file order.
    pub fn ids(&self) -> Vec<&str> {
        self.kernels.iter().map(|k| k.id.as_str()).collect()
    }

    /// The ids of the default matrix (`default = true`, the default), in file order: what
    /// `kmatrix run` runs when no kernel is named. Lanes of their own (`default = false`: the
    /// arm64 kernel) run when named, and in the test suite.
    pub fn default_ids(&self) -> Vec<&str> {
        self.kernels.iter().filter(|k| k.default).map(|k| k.id.as_str()).collect()
    }

    /// The kernels a name given for `--kernels` stands for when it is not a kernel id: `all`
    /// (every kernel of the matrix), `default` (the default matrix), or an architecture
    /// (`x86_64`/`amd64`, `arm64`/`aarch64`: every kernel of it), in file order. `None` for any
    /// other name (a spec for `KernelSpec`).
    pub fn group(&self, name: &str) -> Option<Vec<&str>> {
        if self.get(name).is_some() {
            return None;
        }
        let of = |keep: &dyn Fn(&MatrixKernel) -> bool| {
            self.kernels.iter().filter(|k| keep(k)).map(|k| k.id.as_str()).collect()
        };
        match name {
            "all" => Some(self.ids()),
            "default" => Some(self.default_ids()),
            "x86_64" | "amd64" => Some(of(&|k| k.arch == Arch::X86_64)),
            "arm64" | "aarch64" => Some(of(&|k| k.arch == Arch::Arm64)),
            _ => None,
        }
    }

    /// Every suite to search for a `debian:<version>` build: `search_suites`, then the matrix's.
    pub fn suites(&self) -> Vec<String> {
        let mut v = self.search_suites.clone();
        for k in &self.kernels {
            if !v.contains(&k.suite) {
                v.push(k.suite.clone());
            }
        }
        v
    }
}

/// One pinned kernel in the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedKernel {
    /// The suite the build came from.
    pub suite: String,
    /// The guest architecture; absent means x86_64 (locks written before arm64 existed).
    #[serde(default, skip_serializing_if = "Arch::is_default")]
    pub arch: Arch,
    /// The `linux-image-*` package the build is named by.
    pub image: String,
    /// The image package's Debian version.
    pub version: String,
    /// `uname -r` of the build.
    pub release: String,
    /// How the suite's Release was authenticated when the lock was written.
    pub signature: Signature,
    /// Every package the build is made of, with its sha256.
    pub packages: Vec<DebPackage>,
    /// sha256 of the extracted boot files (`vmlinuz`, `vmlinux`, `vmlinux.btf`, `config`,
    /// `System.map`) and `modules`, a digest over every file of the modules directory.
    pub files: BTreeMap<String, String>,
}

/// `kernels/kernels.lock`: the exact build of each matrix kernel and the hashes of its files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The lock format (1).
    pub version: u32,
    /// The pinned kernels by matrix id.
    #[serde(default)]
    pub kernels: BTreeMap<String, LockedKernel>,
}

impl Lock {
    /// Parse and check a lock (`what` names it in errors): version 1, every package hashed.
    pub fn parse(text: &str, what: &str) -> Result<Lock> {
        let l: Lock =
            toml::from_str(text).map_err(|e| KernelError::Toml { path: what.to_string(), source: Box::new(e) })?;
        if l.version != 1 {
            return Err(KernelError::Invalid {
                path: what.to_string(),
                detail: format!("lock version {} is not 1", l.version),
            });
        }
        for (id, k) in &l.kernels {
            for p in &k.packages {
                if p.sha256.len() != 64 || !p.sha256.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(KernelError::Invalid {
                        path: what.to_string(),
                        detail: format!("kernel {id}: package {} has no valid sha256", p.name),
                    });
                }
            }
        }
        Ok(l)
    }

    /// The lock file's text, with its header comment.
    pub fn render(&self) -> Result<String> {
        let body = toml::to_string_pretty(self)
            .map_err(|e| KernelError::Parse { what: "kernels.lock".into(), detail: e.to_string() })?;
        Ok(format!(
            "# Pinned kernel packages and the sha256 of what they extract to.\n\
             # Written by `kmatrix kernels update`; do not edit by hand.\n\n{body}"
        ))
    }
}

/// Where `matrix.toml` and `kernels.lock` live, and whether they are the built-in copies.
#[derive(Debug, Clone)]
pub struct KernelsDir {
    /// The directory, or `None` for the copies built into kmatrix.
    pub dir: Option<PathBuf>,
}

/// A project's own file: `kmatrix.toml`, found from the current directory upward. Today it says
/// where the project keeps its kernels directory (`matrix.toml`, `kernels.lock`,
/// `expectations.toml`), relative to itself.
pub const PROJECT_FILE: &str = "kmatrix.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    /// The kernels directory, relative to the project file (default `kernels`).
    #[serde(default)]
    kernels: Option<PathBuf>,
}

impl KernelsDir {
    /// `explicit`, else `$KMATRIX_KERNELS_DIR`, else the project's, found from the current
    /// directory upward as cargo finds `Cargo.toml` (see [`KernelsDir::discover`]), else none:
    /// the built-in copies. A malformed `kmatrix.toml` is an error naming it.
    pub fn locate(explicit: Option<&Path>) -> KernelsDir {
        Self::try_locate(explicit).unwrap_or(KernelsDir { dir: None })
    }

    /// [`locate`](Self::locate), with a malformed project file as an error.
    pub fn try_locate(explicit: Option<&Path>) -> Result<KernelsDir> {
        if let Some(p) = explicit {
            return Ok(KernelsDir { dir: Some(p.to_path_buf()) });
        }
        if let Some(p) = std::env::var_os("KMATRIX_KERNELS_DIR").filter(|p| !p.is_empty()) {
            return Ok(KernelsDir { dir: Some(PathBuf::from(p)) });
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Ok(KernelsDir { dir: Self::discover(&cwd)? })
    }

    /// The nearest of `start` and its ancestors that has a `kmatrix.toml` (its kernels directory)
    /// or a `kernels/matrix.toml`.
    pub fn discover(start: &Path) -> Result<Option<PathBuf>> {
        for dir in start.ancestors() {
            let project = dir.join(PROJECT_FILE);
            if project.is_file() {
                let text = fs::read_to_string(&project).map_err(KernelError::io(&project))?;
                let pf: ProjectFile = toml::from_str(&text)
                    .map_err(|e| KernelError::Invalid { path: project.display().to_string(), detail: e.to_string() })?;
                let kd = dir.join(pf.kernels.unwrap_or_else(|| PathBuf::from("kernels")));
                if !kd.join(MATRIX_FILE).is_file() {
                    return Err(KernelError::Invalid {
                        path: project.display().to_string(),
                        detail: format!("its kernels directory {} has no {MATRIX_FILE}", kd.display()),
                    });
                }
                return Ok(Some(kd));
            }
            let kd = dir.join("kernels");
            if kd.join(MATRIX_FILE).is_file() {
                return Ok(Some(kd));
            }
        }
        Ok(None)
    }

    /// Which matrix this is, for the run's first lines.
    pub fn describe(&self) -> String {
        match &self.dir {
            Some(d) => d.join(MATRIX_FILE).display().to_string(),
            None => concat!(
                "the built-in matrix, with its lock and expectations ",
                "(no kmatrix.toml or kernels/matrix.toml here or above)"
            )
            .into(),
        }
    }

    /// The matrix of this directory (or the built-in one).
    pub fn matrix(&self) -> Result<Matrix> {
        match &self.dir {
            Some(d) => {
                let p = d.join(MATRIX_FILE);
                let text = fs::read_to_string(&p).map_err(KernelError::io(&p))?;
                Matrix::parse(&text, &p.display().to_string())
            }
            None => Matrix::parse(DEFAULT_MATRIX, "built-in matrix.toml"),
        }
    }

    /// The lock, or an empty one when the file does not exist (nothing pinned).
    pub fn lock(&self) -> Result<Lock> {
        match &self.dir {
            Some(d) => {
                let p = d.join(LOCK_FILE);
                match fs::read_to_string(&p) {
                    Ok(text) => Lock::parse(&text, &p.display().to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock { version: 1, ..Lock::default() }),
                    Err(source) => Err(KernelError::Io { path: p, source }),
                }
            }
            None => Lock::parse(DEFAULT_LOCK, "built-in kernels.lock"),
        }
    }

    /// The verdict expectations that go with this matrix, as (text, name for messages): the
    /// built-in copy with the built-in matrix, else the directory's `expectations.toml` (an empty
    /// text when it has none: nothing expected). The one rule `run`, `rerun` and the cargo-test
    /// harness share, so the same matrix gets the same verdicts wherever kmatrix runs.
    pub fn expectations(&self) -> Result<(String, String)> {
        match &self.dir {
            Some(d) => {
                let p = d.join(EXPECTATIONS_FILE);
                match fs::read_to_string(&p) {
                    Ok(text) => Ok((text, p.display().to_string())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Ok((String::new(), format!("{} (absent: nothing expected)", p.display())))
                    }
                    Err(source) => Err(KernelError::Io { path: p, source }),
                }
            }
            None => Ok((DEFAULT_EXPECTATIONS.to_string(), "built-in expectations.toml".into())),
        }
    }

    /// The lock file's path, `None` for the built-in lock.
    pub fn lock_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(LOCK_FILE))
    }

    /// Replace the lock file atomically.
    pub fn write_lock(&self, lock: &Lock) -> Result<PathBuf> {
        let p = self.lock_path().ok_or_else(|| KernelError::Invalid {
            path: "kernels.lock".into(),
            detail: "no kernels directory to write to: set KMATRIX_KERNELS_DIR".into(),
        })?;
        write_atomic(&p, lock.render()?.as_bytes())?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_name_kernels_by_architecture_and_default() {
        let m = Matrix::parse(
            r#"
[[kernel]]
id = "a"
distro = "debian"
suite = "bookworm"
line = "6.1"
[[kernel]]
id = "b"
distro = "debian"
suite = "trixie"
line = "6.12"
arch = "arm64"
default = false
[[kernel]]
id = "arm64"
distro = "debian"
suite = "trixie"
line = "6.12"
"#,
            "m",
        )
        .unwrap();
        assert_eq!(m.group("all").unwrap(), ["a", "b", "arm64"]);
        assert_eq!(m.group("default").unwrap(), ["a", "arm64"]);
        assert_eq!(m.group("x86_64").unwrap(), ["a", "arm64"]);
        assert_eq!(m.group("aarch64").unwrap(), ["b"]);
        // An id wins over a group of the same name; anything else is not a group.
        assert_eq!(m.group("arm64"), None);
        assert_eq!(m.group("a"), None);
        assert_eq!(m.group("debian:6.1.176-1"), None);
    }

    #[test]
    fn built_in_files_parse() {
        let m = Matrix::parse(DEFAULT_MATRIX, "matrix.toml").unwrap();
        // The fleet in version order, both distributions; Ubuntu's lines run their core lane
        // unless asked, Debian's every lane.
        let ids = m.default_ids();
        assert_eq!(
            ids[..8],
            [
                "ubuntu-4.15",
                "ubuntu-5.4",
                "debian-5.10",
                "ubuntu-5.15",
                "debian-6.1",
                "ubuntu-6.8",
                "debian-6.12",
                "ubuntu-7.0"
            ]
        );
        assert!(ids[8].starts_with("debian-7."), "{ids:?}");
        for k in &m.kernels {
            let want = (k.distro == Distro::Ubuntu).then_some(crate::catalogue::Lane::Core);
            assert_eq!(k.lane, want, "{}", k.id);
        }
        let l = Lock::parse(DEFAULT_LOCK, "kernels.lock").unwrap();
        assert_eq!(l.version, 1);
        for id in l.kernels.keys() {
            assert!(m.get(id).is_some(), "lock names {id}, the matrix does not");
        }
    }

    /// The expectations come from where the matrix comes from: the built-in copy with the built-in
    /// matrix (Debian 6.1's known gaps included), a directory's own file (or nothing) otherwise.
    #[test]
    fn expectations_travel_with_their_matrix() {
        let (text, name) = KernelsDir { dir: None }.expectations().unwrap();
        assert_eq!(name, "built-in expectations.toml");
        assert!(text.contains("scenario = \"ftrace.tracer.irqsoff\"") && text.contains("debian-6.1"), "{text}");
        let d = tempfile::tempdir().unwrap();
        let kd = KernelsDir { dir: Some(d.path().to_path_buf()) };
        let (text, name) = kd.expectations().unwrap();
        assert_eq!(text, "");
        assert!(name.contains(&d.path().join(EXPECTATIONS_FILE).display().to_string()), "{name}");
        fs::write(d.path().join(EXPECTATIONS_FILE), "# mine\n").unwrap();
        assert_eq!(kd.expectations().unwrap().0, "# mine\n");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = "[[kernel]]\nid = \"debian-6.1\"\ndistro = \"debian\"\nsuite = \"bookworm\"\nline = \"6.1\"\nsuit = \"x\"\n";
        let e = Matrix::parse(text, "kernels/matrix.toml").unwrap_err();
        let chain = format!("{e}: {}", std::error::Error::source(&e).unwrap());
        assert!(chain.starts_with("read kernels/matrix.toml: "), "{chain}");
        assert!(chain.contains("line 6"), "{chain}");
        assert!(chain.contains("unknown field `suit`"), "{chain}");
    }

    #[test]
    fn bad_values_are_named() {
        let base = "[[kernel]]\nid = \"a\"\ndistro = \"debian\"\nsuite = \"bookworm\"\n";
        let e = Matrix::parse(&format!("{base}line = \"six\"\n"), "m.toml").unwrap_err();
        assert_eq!(e.to_string(), "check m.toml: kernel a: line \"six\" is not a version line like \"6.1\"");
        let dup = format!("{base}line = \"6.1\"\n{base}line = \"6.1\"\n");
        let e = Matrix::parse(&dup, "m.toml").unwrap_err();
        assert_eq!(e.to_string(), "check m.toml: kernel id \"a\" appears twice");
        let e = Matrix::parse(&format!("{base}line = \"6.1\"\ndistro2 = 1\n"), "m.toml").unwrap_err();
        assert!(matches!(e, KernelError::Toml { .. }));
    }

    #[test]
    fn lock_round_trips() {
        let mut l = Lock { version: 1, ..Lock::default() };
        l.kernels.insert(
            "debian-6.1".into(),
            LockedKernel {
                suite: "bookworm".into(),
                arch: Arch::X86_64,
                image: "linux-image-6.1.0-50-amd64".into(),
                version: "6.1.176-1".into(),
                release: "6.1.0-50-amd64".into(),
                signature: Signature::Good,
                packages: vec![DebPackage {
                    name: "linux-image-6.1.0-50-amd64".into(),
                    version: "6.1.176-1".into(),
                    filename: "pool/main/l/linux-signed-amd64/linux-image-6.1.0-50-amd64_6.1.176-1_amd64.deb".into(),
                    size: 70305560,
                    sha256: "7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3".into(),
                    depends: String::new(),
                }],
                files: [("vmlinuz".to_string(), "00".repeat(32))].into_iter().collect(),
            },
        );
        let text = l.render().unwrap();
        assert_eq!(Lock::parse(&text, "x").unwrap(), l);
        let bad = text.replace("7b5597492a0a", "zz");
        assert!(Lock::parse(&bad, "x").is_err());
    }
}
