//! End-to-end tests of the provider against a local HTTP fixture server: a Debian-shaped mirror
//! built in a temporary directory (Release, Packages.xz, `.deb` files made here, holding fake
//! bzImages around fake ELF kernels with a PVH note and `.BTF`, and fake modules with `.modinfo`).
//!
//! Tests named `real_mirror_*` use the mirror of this machine's apt configuration and download
//! hundreds of megabytes; they are `#[ignore]`d: `cargo test -p kmatrix --lib kernel -- --ignored`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::compress::Compression;
use super::deb::build;
use super::image::fake;
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
const CHANGELOG: &str = include_str!("fixtures/changelog-6.12-bpo.txt");

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

#[test]
fn prepares_a_6_1_style_kernel_end_to_end() {
    let e = env();
    let k = e.prepare("debian-6.1").unwrap();
    assert_eq!(k.release, REL_61);
    assert_eq!(k.origin.package.as_deref(), Some("linux-image-6.1.0-99-amd64"));
    assert_eq!(k.origin.package_version.as_deref(), Some("6.1.176-1"));
    assert_eq!(k.pinning, Pinning::NotPinned);
    assert_eq!(k.origin.signature, Some(Signature::Unchecked));
    // What results record: the spec that boots this very build again, and the .deb's hash.
    let image_deb =
        std::fs::read(e.server.file(&format!("pool/main/l/linux/linux-image-{REL_61}_6.1.176-1_amd64.deb"))).unwrap();
    let b = k.build();
    assert_eq!(b.spec, "debian:6.1.176-1");
    assert_eq!(
        (b.release.as_str(), b.package.as_deref(), b.suite.as_deref()),
        (REL_61, k.origin.package.as_deref(), Some("bookworm"))
    );
    assert_eq!(b.sha256, Some(hex::encode(Sha256::digest(&image_deb))));
    assert_eq!((b.modules, b.config), (None, None), "a package's own files are not the user's");
    assert_eq!(std::fs::read(k.boot.vmlinux.as_ref().unwrap()).unwrap(), fake::vmlinux(REL_61));
    assert_eq!(std::fs::read(k.boot.btf.as_ref().unwrap()).unwrap(), b"\x9f\xeb\x01\x00fake-btf");
    assert_eq!(std::fs::read_to_string(k.boot.config.as_ref().unwrap()).unwrap(), config_text());
    assert!(k.boot.system_map.as_ref().unwrap().is_file());
    let md = k.boot.modules_dir.clone().unwrap();
    assert!(md.ends_with(format!("modules/{REL_61}")));
    assert_eq!(
        std::fs::read_to_string(md.join("modules.dep")).unwrap(),
        "kernel/fs/9p/9p.ko: kernel/fs/netfs/netfs.ko kernel/net/9p/9pnet.ko\n\
         kernel/fs/netfs/netfs.ko:\n\
         kernel/net/9p/9pnet.ko:\n\
         kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko\n"
    );
    // Only kernel files are extracted.
    assert!(!k.boot.bzimage.parent().unwrap().join("usr").exists());

    let c = module_closure(&k, &["9p", "virtio-pci", "9pnet-virtio"]).unwrap();
    let names: Vec<_> = c.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["9pnet", "netfs", "9p", "9pnet_virtio"]);
    assert_eq!(c.builtin, ["virtio_pci"]);
    assert_eq!(read_module(&c[0]).unwrap(), ko(""));

    let i = info(&k).unwrap();
    assert!(i.btf_file && i.pvh);
    assert_eq!(i.btf_config, Some(true));
    let opt = |n: &str| i.options.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(opt("KPROBES").as_deref(), Some("y"));
    assert_eq!(opt("IKCONFIG_PROC"), None);
    assert_eq!(tracing_config(&k).len(), 2);

    // One download, and a warm prepare downloads nothing more.
    assert_eq!(e.server.hits_ending(".deb"), 1);
    assert_eq!(e.server.hits_ending("Packages.xz"), 1);
    let again = e.prepare("debian-6.1").unwrap();
    assert_eq!(again, k);
    assert_eq!(e.server.hits_ending(".deb"), 1);
    assert_eq!(e.server.hits_ending("Packages.xz"), 1, "the filtered index is cached by hash");
    // No .deb, staging or download directory is left behind.
    let left: Vec<_> =
        std::fs::read_dir(e.cache.root().join("kernels")).unwrap().map(|d| d.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn prepares_a_7_x_split_kernel() {
    let e = env();
    let k = e.prepare("debian-7.3").unwrap();
    assert_eq!(k.release, "7.3.4+deb13-amd64");
    assert_eq!(k.origin.package.as_deref(), Some("linux-image-7.3.4+deb13-amd64"));
    assert_eq!(std::fs::read(k.boot.vmlinux.as_ref().unwrap()).unwrap(), fake::vmlinux("7.3.4+deb13-amd64"));
    assert!(k.boot.config.as_ref().unwrap().is_file());
    // binary, base and modules are fetched; the meta package is not.
    assert_eq!(e.server.hits_ending(".deb"), 3);
    assert_eq!(e.server.hits_ending("linux-image-7.3.4+deb13-amd64_7.3.4-1~bpo13+1_amd64.deb"), 0);
    let c = module_closure(&k, &["9p", "netfs"]).unwrap();
    let names: Vec<_> = c.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["9pnet", "9p"]);
    assert_eq!(c.builtin, ["netfs"]);
    assert_eq!(c[0].compressed, Compression::Xz);
    assert_eq!(read_module(&c[1]).unwrap(), ko("9pnet"));
}

#[test]
fn debian_version_spec_searches_suites() {
    let e = env();
    let k = e.prepare("debian:6.1.170-3").unwrap();
    assert_eq!(k.id, "debian:6.1.170-3");
    assert_eq!(k.release, "6.1.0-98-amd64");
    let err = e.prepare("debian:6.1.1-1").unwrap_err();
    // `sid` is in search_suites but not on this mirror: skipped, not fatal.
    assert_eq!(err.to_string(), "find kernel build 6.1.1-1 in suites bookworm, trixie-backports");
    assert!(err.is_bad_input());
}

#[test]
fn tampered_packages_index_is_refused() {
    let e = env();
    let p = e.server.file("dists/bookworm/main/binary-amd64/Packages.xz");
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&p, bytes).unwrap();
    let err = e.prepare("debian-6.1").unwrap_err();
    match &err {
        KernelError::HashMismatch { what, .. } => {
            assert!(what.ends_with("dists/bookworm/main/binary-amd64/Packages.xz"), "{what}")
        }
        other => panic!("expected a hash mismatch, got {other}"),
    }
    assert_eq!(e.server.hits_ending(".deb"), 0);
}

#[test]
fn headers_of_the_build_are_fetched_merged_and_checked() {
    let e = env();
    let k = e.prepare("debian-6.1").unwrap();
    let h = crate::kernel::headers(&k, &e.cache, &e.opts).unwrap();
    assert_eq!(
        h.packages,
        vec!["linux-headers-6.1.0-99-common 6.1.176-1".to_string(), format!("linux-headers-{REL_61} 6.1.176-1"),]
    );
    let read = |p: &str| std::fs::read_to_string(h.dir.join(p)).unwrap();
    // One tree: the common part's Makefile and headers, the flavour's generated files.
    assert_eq!(read("Makefile"), "VERSION = 6\n");
    assert_eq!(read("include/linux/kconfig.h"), "/* kconfig.h */\n");
    assert_eq!(read("include/generated/autoconf.h"), "#define CONFIG_KPROBES 1\n");
    assert_eq!(read("arch/x86/include/asm/ptrace.h"), "/* ptrace.h */\n");
    // Once is enough: a second call downloads nothing.
    let hits = e.server.hits_ending("_all.deb") + e.server.hits_ending("_amd64.deb");
    assert_eq!(crate::kernel::headers(&k, &e.cache, &e.opts).unwrap(), h);
    assert_eq!(e.server.hits_ending("_all.deb") + e.server.hits_ending("_amd64.deb"), hits);
}

#[test]
fn tampered_headers_are_refused_and_nothing_is_cached() {
    let e = env();
    let k = e.prepare("debian-6.1").unwrap();
    let p = e.server.file("pool/main/l/linux/linux-headers-6.1.0-99-common_6.1.176-1_amd64.deb");
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 50] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let err = crate::kernel::headers(&k, &e.cache, &e.opts).unwrap_err();
    assert!(matches!(err, KernelError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("linux-headers-6.1.0-99-common_6.1.176-1_amd64.deb: sha256 is "), "{err}");
    let left: Vec<_> =
        std::fs::read_dir(e.cache.root().join("headers")).unwrap().map(|d| d.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn headers_a_suite_lacks_and_local_kernels_are_named() {
    let e = env();
    let mut k = e.prepare("debian-6.1").unwrap();
    k.release = "6.1.0-98-amd64".into();
    let err = crate::kernel::headers(&k, &e.cache, &e.opts).unwrap_err().to_string();
    assert!(err.contains("suite bookworm has no linux-headers-6.1.0-98-amd64 6.1.176-1"), "{err}");
    k.origin.suite = None;
    let err = crate::kernel::headers(&k, &e.cache, &e.opts).unwrap_err().to_string();
    assert!(err.contains("a local kernel has no Debian headers package"), "{err}");
}

#[test]
fn tampered_deb_is_refused_and_nothing_is_cached() {
    let e = env();
    let p = e.server.file(&format!("pool/main/l/linux/linux-image-{REL_61}_6.1.176-1_amd64.deb"));
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let err = e.prepare("debian-6.1").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, KernelError::HashMismatch { .. }), "{msg}");
    assert!(msg.starts_with("verify http://127.0.0.1:"), "{msg}");
    assert!(msg.contains(&format!("linux-image-{REL_61}_6.1.176-1_amd64.deb: sha256 is ")), "{msg}");
    let left: Vec<_> =
        std::fs::read_dir(e.cache.root().join("kernels")).unwrap().map(|d| d.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("index")]);
}

/// The names under the cache's `kernels/` (an aborted download must leave only the index).
fn kernels_left(e: &Env) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> =
        std::fs::read_dir(e.cache.root().join("kernels")).unwrap().map(|d| d.unwrap().file_name()).collect();
    v.sort();
    v
}

#[test]
fn a_stalled_mirror_is_named_leaves_nothing_and_a_later_fetch_works() {
    let mut e = env();
    e.opts.read_timeout = Some(std::time::Duration::from_secs(1));
    let rel = format!("pool/main/l/linux/linux-image-{REL_61}_6.1.176-1_amd64.deb");
    let size = std::fs::metadata(e.server.file(&rel)).unwrap().len();
    e.server.set_fault(&rel, Some(Fault::Stall { after: 1000 }));
    let t = std::time::Instant::now();
    let err = e.prepare("debian-6.1").unwrap_err();
    let (took, msg) = (t.elapsed(), err.to_string());
    assert!(matches!(err, KernelError::Stalled { secs: 1, received: 1000, .. }), "{msg}");
    assert!(
        msg.starts_with(&format!(
            "download {}/{rel}: the mirror stalled, no data for 1 s after 1000 of {size} bytes",
            e.server.url
        )),
        "{msg}"
    );
    assert!(msg.contains("KMATRIX_READ_TIMEOUT"), "{msg}");
    // One read timeout (1 s) and no retry of a stalled body: not the server's 20 s silence.
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert_eq!(kernels_left(&e), vec![std::ffi::OsString::from("index")]);
    e.server.set_fault(&rel, None);
    let k = e.prepare("debian-6.1").unwrap();
    assert_eq!(k.release, REL_61);
}

#[test]
fn a_mirror_closing_mid_body_is_named_leaves_nothing_and_a_later_fetch_works() {
    let e = env();
    let rel = format!("pool/main/l/linux/linux-image-{REL_61}_6.1.176-1_amd64.deb");
    let size = std::fs::metadata(e.server.file(&rel)).unwrap().len();
    e.server.set_fault(&rel, Some(Fault::Close { after: 1000 }));
    let err = e.prepare("debian-6.1").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, KernelError::Truncated { received: 1000, .. }), "{msg}");
    assert_eq!(
        msg,
        format!("download {}/{rel}: the mirror closed the connection after 1000 of {size} bytes", e.server.url)
    );
    assert_eq!(kernels_left(&e), vec![std::ffi::OsString::from("index")]);
    e.server.set_fault(&rel, None);
    assert_eq!(e.prepare("debian-6.1").unwrap().release, REL_61);
}

#[test]
fn tampered_cache_is_detected_and_refetched() {
    let e = env();
    let k = e.prepare("debian-6.1").unwrap();
    let vm = k.boot.vmlinux.clone().unwrap();
    let mut bytes = std::fs::read(&vm).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&vm, &bytes).unwrap();
    let k2 = e.prepare("debian-6.1").unwrap();
    assert_eq!(e.server.hits_ending(".deb"), 2, "a damaged entry is fetched again");
    assert_eq!(std::fs::read(k2.boot.vmlinux.unwrap()).unwrap(), fake::vmlinux(REL_61));

    // A module changed in place (same size) is caught when it is picked.
    let m = k.boot.modules_dir.clone().unwrap().join("kernel/net/9p/9pnet.ko");
    let mut b = std::fs::read(&m).unwrap();
    b[0x30] ^= 1;
    std::fs::write(&m, b).unwrap();
    let err = module_closure(&k, &["9p"]).unwrap_err();
    assert!(matches!(err, KernelError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("9pnet.ko"), "{err}");
}

#[test]
fn missing_deb_line_and_suite_are_named() {
    let e = env();
    std::fs::remove_file(e.server.file(&format!("pool/main/l/linux/linux-image-{REL_61}_6.1.176-1_amd64.deb")))
        .unwrap();
    let err = e.prepare("debian-6.1").unwrap_err();
    assert!(matches!(err, KernelError::NotFound { .. }), "{err}");
    assert!(err.to_string().ends_with(&format!("linux-image-{REL_61}_6.1.176-1_amd64.deb: not found (404)")), "{err}");

    let kdir = tempfile::tempdir().unwrap();
    let mut o = opts_for(&e.server, kdir.path(), None);
    std::fs::write(kdir.path().join("matrix.toml"), MATRIX.replace("line = \"6.1\"", "line = \"5.4\"")).unwrap();
    let err = prepare(&spec("debian-6.1"), &e.cache, &o).unwrap_err();
    assert_eq!(err.to_string(), "find a kernel for line 5.4 in suite bookworm (flavour -amd64)");

    std::fs::write(kdir.path().join("matrix.toml"), MATRIX.replace("\"bookworm\"", "\"buster\"")).unwrap();
    let err = prepare(&spec("debian-6.1"), &e.cache, &o).unwrap_err();
    assert!(matches!(err, KernelError::UnknownSuite { .. }), "{err}");
    assert!(err.to_string().starts_with("find suite buster on the mirror: neither http://127.0.0.1:"), "{err}");

    // A Release without signature is refused unless explicitly allowed.
    std::fs::write(kdir.path().join("matrix.toml"), MATRIX).unwrap();
    o.trust.allow_unsigned = false;
    let err = prepare(&spec("debian-6.1"), &e.cache, &o).unwrap_err();
    assert!(matches!(err, KernelError::Unverifiable { .. }), "{err}");
    assert!(
        err.to_string().contains("neither InRelease nor Release.gpg") && err.to_string().contains("--allow-unsigned")
    );
    assert!(!err.is_bad_input());
}

/// The fixture mirror's Release wrapped in clear-signed armour, with a signature that cannot be
/// valid.
fn armour_release(e: &Env) {
    let dists = e.server.file("dists/bookworm");
    let release = std::fs::read_to_string(dists.join("Release")).unwrap();
    let armoured = format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{release}-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n=abcd\n-----END PGP SIGNATURE-----\n"
    );
    std::fs::write(dists.join("InRelease"), armoured).unwrap();
}

#[test]
fn an_unverifiable_signature_is_refused_unless_allowed() {
    let keyring = tempfile::NamedTempFile::new().unwrap();
    let cases = [
        // (keyring, gpgv, what the refusal names)
        (
            PathBuf::from("/nonexistent/keyring.gpg"),
            None,
            "the archive keyring /nonexistent/keyring.gpg is missing (Debian and Ubuntu: apt-get install debian-archive-keyring)",
        ),
        (
            keyring.path().to_path_buf(),
            Some(PathBuf::from("/nonexistent/gpgv")),
            "/nonexistent/gpgv is not installed (Debian and Ubuntu: apt-get install gpgv)",
        ),
    ];
    for (keyring, gpgv, missing) in cases {
        let e = env();
        armour_release(&e);
        let mut o = e.opts.clone();
        o.trust = TrustOptions { keyring: Some(keyring), gpgv, allow_unsigned: false };
        let err = prepare(&spec("debian-6.1"), &e.cache, &o).unwrap_err();
        assert!(matches!(&err, KernelError::Unverifiable { missing: m, .. } if m == missing), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("dists/bookworm/InRelease")
                && text.ends_with("pass --allow-unsigned to trust the mirror's hashes without a signature"),
            "{text}"
        );
        assert!(!err.is_bad_input(), "a missing tool is the machine's set-up, not the user's input");
        assert_eq!(e.server.hits_ending(".deb"), 0, "nothing is downloaded past an unverifiable Release");

        // --allow-unsigned: the text inside the armour is used, marked unchecked.
        o.trust.allow_unsigned = true;
        let k = prepare(&spec("debian-6.1"), &e.cache, &o).unwrap();
        assert_eq!(k.origin.signature, Some(Signature::Unchecked));
    }
}

#[test]
fn a_bad_signature_is_refused_even_when_unsigned_is_allowed() {
    // gpgv and the archive keyring are installed by scripts/setup.sh: this test needs both.
    assert!(
        Path::new(index::DEFAULT_KEYRING).is_file(),
        "{} missing: apt-get install debian-archive-keyring",
        index::DEFAULT_KEYRING
    );
    let e = env();
    armour_release(&e);
    let mut o = e.opts.clone();
    for allow_unsigned in [false, true] {
        o.trust = TrustOptions { allow_unsigned, ..TrustOptions::default() };
        let err = prepare(&spec("debian-6.1"), &e.cache, &o).unwrap_err();
        assert!(matches!(err, KernelError::Signature { .. }), "{err}");
        assert!(err.to_string().contains("dists/bookworm/InRelease: gpgv rejected it"), "{err}");
    }
}

#[test]
fn unknown_id_lists_known_ids() {
    let e = env();
    let err = e.prepare("debian-4.19").unwrap_err();
    assert_eq!(err.to_string(), "find kernel id debian-4.19: known ids are debian-6.1, debian-7.3");
    assert!(err.is_bad_input());
}

#[test]
fn concurrent_prepares_download_once() {
    let e = env();
    let results: Vec<PreparedKernel> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2).map(|_| s.spawn(|| e.prepare("debian-6.1").unwrap())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results[0], results[1]);
    assert_eq!(e.server.hits_ending(".deb"), 1);
}

#[test]
fn lock_pins_update_rewrites_and_gc_collects() {
    let e = env();
    let kdir = e.opts.kernels_dir.clone().unwrap();
    let lock = update_lock(&e.cache, &e.opts).unwrap();
    assert_eq!(lock.kernels.len(), 2);
    let l61 = &lock.kernels["debian-6.1"];
    assert_eq!(l61.version, "6.1.176-1");
    assert_eq!(
        l61.files.keys().collect::<Vec<_>>(),
        ["System.map", "config", "modules", "vmlinux", "vmlinux.btf", "vmlinuz"]
    );
    let text = std::fs::read_to_string(kdir.join("kernels.lock")).unwrap();
    assert_eq!(Lock::parse(&text, "lock").unwrap(), lock);

    // Pinned: the lock is used, no index is consulted.
    let before = e.server.hits_ending("Release");
    let k = e.prepare("debian-6.1").unwrap();
    assert_eq!(k.pinning, Pinning::Locked);
    assert_eq!(e.server.hits_ending("Release"), before);

    // A lock that pins other extracted bytes is a hard error.
    let bad = text.replacen(&l61.files["vmlinux"], &"0".repeat(64), 1);
    std::fs::write(kdir.join("kernels.lock"), bad).unwrap();
    let err = e.prepare("debian-6.1").unwrap_err();
    assert!(matches!(err, KernelError::LockMismatch { .. }), "{err}");
    assert!(err.to_string().contains("vmlinux has sha256"), "{err}");
    std::fs::write(kdir.join("kernels.lock"), &text).unwrap();

    // gc keeps what the lock names and removes the rest, but not while it is in use: this
    // process holds what it prepared until it lets go.
    e.prepare("debian:6.1.170-3").unwrap();
    assert_eq!(gc(&e.cache, &lock).unwrap(), Vec::<PathBuf>::new());
    e.cache.release_all();
    let removed = gc(&e.cache, &lock).unwrap();
    let names: Vec<_> = removed.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["linux-image-6.1.0-98-amd64_6.1.170-3"]);
    assert!(e.prepare("debian-6.1").is_ok());
    assert_eq!(gc(&e.cache, &lock).unwrap(), Vec::<PathBuf>::new());

    // The mirror dropped the pinned build (Debian keeps only recent ones): say what to do.
    e.cache.release_all();
    assert_eq!(gc(&e.cache, &Lock::default()).unwrap().len(), 2);
    std::fs::remove_file(e.server.file(&format!("pool/main/l/linux/linux-image-{REL_61}_6.1.176-1_amd64.deb")))
        .unwrap();
    let err = e.prepare("debian-6.1").unwrap_err();
    assert!(matches!(err, KernelError::PinnedGone { .. }), "{err}");
    assert!(err.to_string().contains("run `kmatrix kernels update`"), "{err}");
}

#[test]
fn available_lists_every_build_of_a_line() {
    let e = env();
    let a = available("6.1", &e.cache, &e.opts).unwrap();
    let v: Vec<_> = a.iter().map(|k| (k.package.as_str(), k.version.as_str(), k.suite.as_str())).collect();
    assert_eq!(
        v,
        [
            ("linux-image-6.1.0-99-amd64", "6.1.176-1", "bookworm"),
            ("linux-image-6.1.0-98-amd64", "6.1.170-3", "bookworm")
        ]
    );
    assert_eq!(a[1].spec, "debian:6.1.170-3");
    assert!(available("6.12", &e.cache, &e.opts).unwrap().is_empty());
}

#[test]
fn local_kernels() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path().join("cache")).unwrap();
    let o = FetchOptions::default();
    let elf = fake::vmlinux("6.13.0-rc1");
    let bz = d.path().join("bzImage");
    std::fs::write(&bz, fake::bzimage(&elf, Compression::Zstd, "6.13.0-rc1")).unwrap();
    let mods = d.path().join("lib/modules/6.13.0-rc1");
    std::fs::create_dir_all(mods.join("kernel")).unwrap();
    std::fs::write(mods.join("kernel/a.ko"), ko("")).unwrap();
    let s = KernelSpec::Local { path: bz.clone(), modules: Some(d.path().join("lib/modules")), config: None };
    let k = prepare(&s, &cache, &o).unwrap();
    assert_eq!(k.release, "6.13.0-rc1");
    assert_eq!(k.pinning, Pinning::Local);
    assert_eq!(std::fs::read(k.boot.vmlinux.as_ref().unwrap()).unwrap(), elf);
    assert_eq!(k.boot.modules_dir.as_deref(), Some(mods.as_path()));
    assert_eq!(module_closure(&k, &["a"]).unwrap().len(), 1);
    // A result on a local kernel names its file, the file's hash and the user's modules.
    let b = k.build();
    assert_eq!(PathBuf::from(&b.spec), std::fs::canonicalize(&bz).unwrap());
    let want = hex::encode(Sha256::digest(std::fs::read(&bz).unwrap()));
    assert_eq!(b.sha256.as_deref(), Some(want.as_str()));
    assert_eq!(b.modules.as_deref(), Some(mods.to_str().unwrap()));
    assert_eq!((b.package, b.release.as_str()), (None, "6.13.0-rc1"));
    // Warm: same answer.
    assert_eq!(prepare(&s, &cache, &o).unwrap(), k);

    // An ELF with a PVH note boots as is.
    let vm = d.path().join("vmlinux");
    std::fs::write(&vm, &elf).unwrap();
    let k = prepare(&spec(vm.to_str().unwrap()), &cache, &o).unwrap();
    assert_eq!(k.boot.vmlinux.as_deref(), Some(vm.as_path()));
    assert_eq!(k.release, "6.13.0-rc1");
    assert!(k.boot.btf.unwrap().is_file());

    // Anything else is refused, naming the file.
    let no_pvh = d.path().join("nopvh");
    std::fs::write(&no_pvh, fake::elf(&[], &[])).unwrap();
    let err = prepare(&spec(no_pvh.to_str().unwrap()), &cache, &o).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!("use {} as a kernel: an ELF kernel without", no_pvh.display())),
        "{err}"
    );
    let junk = d.path().join("junk.txt");
    std::fs::write(&junk, "hello").unwrap();
    let err = prepare(&spec(junk.to_str().unwrap()), &cache, &o).unwrap_err();
    assert!(err.to_string().contains(&format!("use {} as a kernel: neither a bzImage", junk.display())), "{err}");
    assert!(err.is_bad_input());
}

#[test]
fn spec_parsing() {
    assert_eq!(spec("debian-6.1"), KernelSpec::Matrix("debian-6.1".into()));
    assert_eq!(spec("debian:6.12.57-1"), KernelSpec::Debian("6.12.57-1".into()));
    assert_eq!(spec("./bzImage"), KernelSpec::Local { path: "./bzImage".into(), modules: None, config: None });
    assert!("".parse::<KernelSpec>().is_err());
    let e = "debian:".parse::<KernelSpec>().unwrap_err();
    assert_eq!(e.to_string(), "read kernel spec \"debian:\": after debian: comes a package version such as 6.12.57-1");
    assert!("debian:6.1;rm".parse::<KernelSpec>().is_err());
    assert_eq!(spec("debian:6.12.57-1").to_string(), "debian:6.12.57-1");
}

// ---- against the real mirror (slow, downloads; run with --ignored) ----

fn real_opts() -> FetchOptions {
    FetchOptions::default()
}

/// Cold and warm `prepare` of every matrix id against the real mirror, timed.
#[test]
#[ignore]
fn real_mirror_prepare_matrix() {
    let d = tempfile::tempdir().unwrap();
    let cache =
        Cache::at(std::env::var_os("KMATRIX_TEST_CACHE").map(PathBuf::from).unwrap_or(d.path().to_path_buf())).unwrap();
    let ids = std::env::var("KMATRIX_TEST_IDS").unwrap_or_else(|_| matrix_ids().unwrap().join(","));
    for id in ids.split(',') {
        let t = std::time::Instant::now();
        let k = prepare(&spec(id), &cache, &real_opts()).unwrap();
        let cold = t.elapsed();
        let t = std::time::Instant::now();
        let k2 = prepare(&spec(id), &cache, &real_opts()).unwrap();
        let warm = t.elapsed();
        assert_eq!(k, k2);
        let vm = std::fs::read(k.boot.vmlinux.as_ref().expect("a PVH vmlinux")).unwrap();
        assert!(image::parse_elf(&vm).unwrap().pvh_entry.is_some());
        let c = module_closure(&k, &["9p", "9pnet_virtio", "virtio_pci"]).unwrap();
        eprintln!(
            "{id}: {} {} {:?} cold {:.1}s warm {:.2}s btf={} modules={:?} builtin={:?}",
            k.release,
            k.origin.package_version.as_deref().unwrap_or(""),
            k.pinning,
            cold.as_secs_f64(),
            warm.as_secs_f64(),
            k.boot.btf.is_some(),
            c.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            c.builtin
        );
    }
}

/// Rewrite `kernels/kernels.lock` from the real mirror (what `kmatrix kernels update` does).
#[test]
#[ignore]
fn real_mirror_update_lock() {
    let cache = Cache::from_env().unwrap();
    let lock = update_lock(&cache, &real_opts()).unwrap();
    for (id, k) in &lock.kernels {
        eprintln!("{id}: {} {} ({})", k.image, k.version, k.suite);
    }
}

/// Every 6.12 build the real mirror has, across the suites the matrix knows.
#[test]
#[ignore]
fn real_mirror_available() {
    let cache = Cache::from_env().unwrap();
    for line in ["6.12", "7"] {
        for k in available(line, &cache, &real_opts()).unwrap() {
            eprintln!("{line}: {} {} {} {}", k.package, k.version, k.suite, k.spec);
        }
    }
}

#[test]
fn changelog_comes_from_the_image_package_verified_and_is_kept() {
    let e = env();
    let k = e.prepare("debian-6.1").unwrap();
    let deb = format!("linux-image-{REL_61}_6.1.176-1_amd64.deb");
    assert_eq!(e.server.hits_ending(&deb), 1);
    assert_eq!(changelog::changelog(&k, &e.cache, &e.opts).unwrap(), CHANGELOG);
    // Downloaded again (prepare keeps no .deb), then kept in the build's entry.
    assert_eq!(e.server.hits_ending(&deb), 2);
    assert_eq!(changelog::changelog(&k, &e.cache, &e.opts).unwrap(), CHANGELOG);
    assert_eq!(e.server.hits_ending(&deb), 2);
    assert!(k.manifest.as_ref().unwrap().parent().unwrap().join("changelog.gz").is_file());

    // A package that changed on the mirror since the build was prepared is refused.
    let e = env();
    let k = e.prepare("debian-6.1").unwrap();
    std::fs::write(e.server.file(&format!("pool/main/l/linux/{deb}")), b"tampered").unwrap();
    let err = changelog::changelog(&k, &e.cache, &e.opts).unwrap_err();
    assert!(matches!(err, KernelError::HashMismatch { .. } | KernelError::SizeMismatch { .. }), "{err}");

    // A local kernel has none, and says so.
    let mut local = k.clone();
    local.origin.package = None;
    let err = changelog::changelog(&local, &e.cache, &e.opts).unwrap_err();
    assert!(err.to_string().contains("a local kernel has no Debian changelog"), "{err}");
}

/// What kmatrix writes and prints about a kernel is what it did before a build's description was
/// split into `BootFiles` and `Origin` (`fixtures/json/`, written by 2f44e6a from the same fixture
/// mirror and fake kernel, temporary directories replaced by `<cache>`, `<dir>`): a new entry's
/// `manifest.json` and `kernels info --json` byte for byte, a `PreparedKernel`'s JSON key for key
/// (nothing prints it; its keys now come part by part).
#[test]
fn written_manifest_and_json_outputs_are_unchanged() {
    fn pretty(v: &impl serde::Serialize, root: &Path, mark: &str) -> String {
        serde_json::to_string_pretty(v).unwrap().replace(&root.display().to_string(), mark)
    }
    let value = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();

    let e = env();
    let k = e.prepare("debian-6.1").unwrap();
    let root = e.cache.root();
    let manifest = std::fs::read_to_string(k.manifest.as_ref().unwrap()).unwrap();
    assert_eq!(manifest, include_str!("fixtures/json/manifest.json"));
    assert_eq!(pretty(&info(&k).unwrap(), root, "<cache>"), include_str!("fixtures/json/info.json"));
    assert_eq!(value(&pretty(&k, root, "<cache>")), value(include_str!("fixtures/json/prepared.json")));

    let d = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(d.path()).unwrap();
    let cache = Cache::at(dir.join("cache")).unwrap();
    let bz = dir.join("bzImage");
    std::fs::write(&bz, fake::bzimage(&fake::vmlinux("6.13.0-rc1"), Compression::Zstd, "6.13.0-rc1")).unwrap();
    let s = KernelSpec::Local { path: bz, modules: None, config: None };
    let k = prepare(&s, &cache, &FetchOptions::default()).unwrap();
    let entry = k.boot.btf.as_ref().unwrap().with_file_name("manifest.json");
    let manifest = std::fs::read_to_string(entry).unwrap().replace(&dir.display().to_string(), "<dir>");
    assert_eq!(manifest, include_str!("fixtures/json/local-manifest.json"));
    assert_eq!(pretty(&info(&k).unwrap(), &dir, "<dir>"), include_str!("fixtures/json/local-info.json"));
    assert_eq!(value(&pretty(&k, &dir, "<dir>")), value(include_str!("fixtures/json/local-prepared.json")));
}
