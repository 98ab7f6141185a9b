//! End-to-end tests of the provider against a local HTTP fixture server: a Debian-shaped mirror
//! built in a temporary directory (Release, Packages.xz, `.deb` files made here, holding fake
//! bzImages around fake ELF kernels with a PVH note and `.BTF`, and fake modules with `.modinfo`).
//!
//! Tests named `real_mirror_*` use the mirror of this machine's apt configuration and download
//! hundreds of megabytes; they are `#[ignore]`d: `cargo test -p kmatrix --lib kernel -- --ignored`.
//!
//! This file is the fixture mirror; the tests are in `prepare` (what a spec resolves to, fetches
//! and caches, local kernels, the lock) and `trust` (the chain of trust and a failing mirror:
//! nothing unverified is kept).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::files::bzimage::fake;
use super::files::compress::Compression;
use super::files::deb::build;
use super::*;
use crate::cache::Cache;

/// A fault the fixture server injects into the body of a file: headers announce the whole
/// length, `after` bytes follow, then the server holds the connection silent (`Stall`) or
/// closes it (`Close`).
#[derive(Debug, Clone, Copy)]
enum Fault {
    Stall { after: usize },
    Close { after: usize },
}

/// A tiny HTTP/1.1 server: GET of files under `root`, 404 otherwise, counting requests by path;
/// requests whose path ends with a key of `faults` get that fault.
struct Server {
    url: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    faults: Arc<Mutex<HashMap<String, Fault>>>,
    _root: tempfile::TempDir,
    root: PathBuf,
}

impl Server {
    fn start(root: tempfile::TempDir) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/debian", listener.local_addr().unwrap());
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let faults: Arc<Mutex<HashMap<String, Fault>>> = Arc::default();
        let dir = root.path().to_path_buf();
        let h = hits.clone();
        let f = faults.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let dir = dir.clone();
                let h = h.clone();
                let f = f.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if r.read_line(&mut line).is_err() {
                        return;
                    }
                    loop {
                        let mut hdr = String::new();
                        if r.read_line(&mut hdr).unwrap_or(0) == 0 || hdr == "\r\n" {
                            break;
                        }
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    *h.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let fault = f.lock().unwrap().iter().find(|(k, _)| path.ends_with(k.as_str())).map(|(_, v)| *v);
                    let file = dir.join(path.trim_start_matches('/'));
                    match std::fs::read(&file) {
                        Ok(body) if file.is_file() && fault.is_some() => {
                            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                            match fault {
                                Some(Fault::Stall { after }) => {
                                    let _ = conn.write_all(&body[..after.min(body.len())]);
                                    let _ = conn.flush();
                                    // Silent, connection open, past any read timeout a test sets.
                                    std::thread::sleep(std::time::Duration::from_secs(20));
                                }
                                Some(Fault::Close { after }) => {
                                    let _ = conn.write_all(&body[..after.min(body.len())]);
                                    let _ = conn.shutdown(std::net::Shutdown::Both);
                                }
                                None => {}
                            }
                        }
                        Ok(body) if file.is_file() => {
                            let _ = write!(
                                conn,
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            );
                            let _ = conn.write_all(&body);
                        }
                        _ => {
                            let _ = conn
                                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        }
                    }
                });
            }
        });
        let root_path = root.path().to_path_buf();
        Server { url, hits, faults, _root: root, root: root_path }
    }

    /// Inject `fault` into every request for a path ending with `suffix`; `None` heals it.
    fn set_fault(&self, suffix: &str, fault: Option<Fault>) {
        let mut f = self.faults.lock().unwrap();
        match fault {
            Some(x) => f.insert(suffix.to_string(), x),
            None => f.remove(suffix),
        };
    }

    fn hits_ending(&self, suffix: &str) -> usize {
        self.hits.lock().unwrap().iter().filter(|(p, _)| p.ends_with(suffix)).map(|(_, n)| n).sum()
    }

    /// A file of the mirror (`rel` under `debian/`).
    fn file(&self, rel: &str) -> PathBuf {
        self.root.join("debian").join(rel)
    }
}

/// A package of the fixture mirror.
struct Pkg {
    name: String,
    version: String,
    depends: String,
    deb: Vec<u8>,
}

const REL_61: &str = "6.1.0-99-amd64";

fn ko(depends: &str) -> Vec<u8> {
    let info = format!("license=GPL\0depends={depends}\0name=x\0");
    fake::elf(&[], &[(".modinfo", info.as_bytes())])
}

fn config_text() -> &'static str {
    "CONFIG_KPROBES=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_NET_9P=m\n# CONFIG_IKCONFIG is not set\n"
}

/// A 6.1-style `linux-image-*` package: xz bzImage, config, modules under `lib/modules`.
fn image_61(rel: &str) -> Vec<u8> {
    let bz = fake::bzimage(&fake::vmlinux(rel), Compression::Xz, rel);
    let p9 = ko("9pnet,netfs");
    let p9net = ko("");
    let netfs = ko("");
    let v9p = ko("9pnet");
    build::deb(&[
        (&format!("./boot/vmlinuz-{rel}"), 0o644, &bz),
        (&format!("./boot/config-{rel}"), 0o644, config_text().as_bytes()),
        (
            &format!("./boot/System.map-{rel}"),
            0o644,
            b"ffffffffffffffff B The real System.map is in the -dbg package\n",
        ),
        (&format!("./lib/modules/{rel}/kernel/fs/9p/9p.ko"), 0o644, &p9),
        (&format!("./lib/modules/{rel}/kernel/net/9p/9pnet.ko"), 0o644, &p9net),
        (&format!("./lib/modules/{rel}/kernel/net/9p/9pnet_virtio.ko"), 0o644, &v9p),
        (&format!("./lib/modules/{rel}/kernel/fs/netfs/netfs.ko"), 0o644, &netfs),
        (&format!("./lib/modules/{rel}/modules.builtin"), 0o644, b"kernel/drivers/virtio/virtio_pci.ko\n"),
        (&format!("./usr/share/doc/linux-image-{rel}/changelog.gz"), 0o644, &gzip(CHANGELOG.as_bytes())),
    ])
}

/// `linux-headers-<release>` as Debian 6.1 lays it out: generated headers, the one-line Makefile,
/// the `/lib/modules` links.
fn headers_flavour_61() -> Vec<u8> {
    let d = format!("./usr/src/linux-headers-{REL_61}");
    build::deb(&[
        (&format!("{d}/Makefile"), 0o644, b"include /usr/src/linux-headers-6.1.0-99-common/Makefile\n"),
        (&format!("{d}/include/generated/autoconf.h"), 0o644, b"#define CONFIG_KPROBES 1\n"),
        (&format!("{d}/.config"), 0o644, config_text().as_bytes()),
    ])
}

/// `linux-headers-<abi>-common`: the source tree's headers.
fn headers_common_61() -> Vec<u8> {
    let d = "./usr/src/linux-headers-6.1.0-99-common";
    build::deb(&[
        (&format!("{d}/Makefile"), 0o644, b"VERSION = 6\n"),
        (&format!("{d}/include/linux/kconfig.h"), 0o644, b"/* kconfig.h */\n"),
        (&format!("{d}/arch/x86/include/asm/ptrace.h"), 0o644, b"/* ptrace.h */\n"),
    ])
}

/// A real kernel changelog's first entries (see fixtures/README.md), as packages ship it.
const CHANGELOG: &str = include_str!("../fixtures/changelog-6.12-bpo.txt");

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn pkg(name: &str, version: &str, deb: Vec<u8>) -> Pkg {
    Pkg { name: name.into(), version: version.into(), depends: String::new(), deb }
}

/// Lay out a mirror: `dists/<suite>/Release` (unsigned) listing `Packages.xz`, which lists the
/// packages, whose `.deb` files go under `pool/`.
fn write_suite(root: &Path, suite: &str, pkgs: &[Pkg]) {
    let mut packages = String::new();
    for p in pkgs {
        let filename = format!("pool/main/l/linux/{}_{}_amd64.deb", p.name, p.version);
        let path = root.join("debian").join(&filename);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &p.deb).unwrap();
        packages.push_str(&format!(
            "Package: {}\nSource: linux\nVersion: {}\nArchitecture: amd64\n{}Filename: {}\nSize: {}\nSHA256: {}\n\n",
            p.name,
            p.version,
            if p.depends.is_empty() { String::new() } else { format!("Depends: {}\n", p.depends) },
            filename,
            p.deb.len(),
            hex::encode(Sha256::digest(&p.deb)),
        ));
    }
    packages.push_str("Package: bash\nVersion: 5.2-1\nFilename: pool/main/b/bash.deb\nSize: 1\nSHA256: 00\n\n");
    let xz = build::xz(packages.as_bytes());
    let dists = root.join("debian/dists").join(suite);
    std::fs::create_dir_all(dists.join("main/binary-amd64")).unwrap();
    std::fs::write(dists.join("main/binary-amd64/Packages.xz"), &xz).unwrap();
    let release = format!(
        "Origin: Debian\nSuite: {suite}\nCodename: {suite}\nArchitectures: amd64\nComponents: main\nSHA256:\n {} {} main/binary-amd64/Packages.xz\n {} {} main/binary-amd64/Packages\n",
        hex::encode(Sha256::digest(&xz)),
        xz.len(),
        hex::encode(Sha256::digest(packages.as_bytes())),
        packages.len(),
    );
    std::fs::write(dists.join("Release"), release).unwrap();
}

const MATRIX: &str = "search_suites = [\"sid\"]\n\n[[kernel]]\nid = \"debian-6.1\"\ndistro = \"debian\"\nsuite = \"bookworm\"\nline = \"6.1\"\n\n[[kernel]]\nid = \"debian-7.3\"\ndistro = \"debian\"\nsuite = \"trixie-backports\"\nline = \"7.3\"\n";

/// A mirror with bookworm (two 6.1 builds, plus -cloud/-dbg flavours that must be skipped) and
/// trixie-backports (7.3 split packages).
fn standard_mirror() -> Server {
    let root = tempfile::tempdir().unwrap();
    write_suite(
        root.path(),
        "bookworm",
        &[
            pkg("linux-image-6.1.0-98-amd64", "6.1.170-3", image_61("6.1.0-98-amd64")),
            pkg(&format!("linux-image-{REL_61}"), "6.1.176-1", image_61(REL_61)),
            pkg("linux-image-6.1.0-99-cloud-amd64", "6.1.176-1", b"not this".to_vec()),
            pkg("linux-image-6.1.0-99-amd64-dbg", "6.1.177-1", b"not this".to_vec()),
            Pkg {
                depends: "linux-headers-6.1.0-99-common (= 6.1.176-1), linux-kbuild-6.1 (>= 6.1.176-1)".into(),
                ..pkg(&format!("linux-headers-{REL_61}"), "6.1.176-1", headers_flavour_61())
            },
            pkg("linux-headers-6.1.0-99-common", "6.1.176-1", headers_common_61()),
        ],
    );
    write_suite(root.path(), "trixie-backports", &seven_x_packages("7.3.4+deb13-amd64", "7.3.4-1~bpo13+1"));
    Server::start(root)
}

/// 7.x layout: `linux-image-*` is a meta package depending on binary, base and modules.
fn seven_x_packages(rel: &str, ver: &str) -> Vec<Pkg> {
    let bz = fake::bzimage(&fake::vmlinux(rel), Compression::Zstd, rel);
    let m = format!("./usr/lib/modules/{rel}");
    let binary = build::deb(&[(&format!("{m}/vmlinuz"), 0o644, &bz)]);
    let base = build::deb(&[
        (&format!("{m}/config"), 0o644, config_text().as_bytes()),
        (&format!("{m}/System.map"), 0o644, b"ffffffffffffffff B placeholder\n"),
        (&format!("{m}/modules.builtin"), 0o644, b"kernel/fs/netfs/netfs.ko\n"),
    ]);
    let modules = build::deb(&[
        (&format!("{m}/kernel/fs/9p/9p.ko.xz"), 0o644, &build::xz(&ko("9pnet"))),
        (&format!("{m}/kernel/net/9p/9pnet.ko.xz"), 0o644, &build::xz(&ko(""))),
    ]);
    let meta = build::deb(&[(&format!("./usr/share/lintian/overrides/linux-image-{rel}"), 0o644, b"x")]);
    let dep = |n: &str| format!("linux-{n}-{rel} (= {ver})");
    vec![
        Pkg {
            name: format!("linux-image-{rel}"),
            version: ver.into(),
            depends: format!(
                "dracut | initramfs-tools (>= 0.120+deb8u2), {}, {}, {}",
                dep("base"),
                dep("binary"),
                dep("modules")
            ),
            deb: meta,
        },
        pkg(&format!("linux-binary-{rel}"), ver, binary),
        pkg(&format!("linux-base-{rel}"), ver, base),
        Pkg {
            name: format!("linux-modules-{rel}"),
            version: ver.into(),
            depends: format!("kmod, {}", dep("base")),
            deb: modules,
        },
    ]
}

/// Options for the fixture mirror, with a kernels dir holding `MATRIX` and `lock` (if any).
fn opts_for(server: &Server, kdir: &Path, lock: Option<&str>) -> FetchOptions {
    std::fs::write(kdir.join("matrix.toml"), MATRIX).unwrap();
    match lock {
        Some(l) => std::fs::write(kdir.join("kernels.lock"), l).unwrap(),
        None => {
            let _ = std::fs::remove_file(kdir.join("kernels.lock"));
        }
    }
    FetchOptions {
        mirror: Some(server.url.clone()),
        kernels_dir: Some(kdir.to_path_buf()),
        trust: TrustOptions { allow_unsigned: true, ..TrustOptions::default() },
        ..Default::default()
    }
}

struct Env {
    server: Server,
    cache: Cache,
    opts: FetchOptions,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn env() -> Env {
    let server = standard_mirror();
    let cdir = tempfile::tempdir().unwrap();
    let kdir = tempfile::tempdir().unwrap();
    let opts = opts_for(&server, kdir.path(), None);
    Env { server, cache: Cache::at(cdir.path()).unwrap(), opts, _dirs: (cdir, kdir) }
}

fn spec(s: &str) -> KernelSpec {
    s.parse().unwrap()
}

impl Env {
    /// [`prepare`] the kernel `s` names, from this mirror into this cache.
    fn prepare(&self, s: &str) -> Result<PreparedKernel> {
        prepare(&spec(s), &self.cache, &self.opts)
    }
}

mod prepare;
mod trust;
mod ubuntu;
