//! Ubuntu builds from the fixture mirror: an image and a modules package of one ABI, the LZ4
//! legacy (5.4) and gzip (4.15, no BTF) payloads, the `ubuntu:` spec and matrix ids, and the bad
//! input the provider must name: an unsigned Release, an ABI the archive does not have, a line
//! it does not carry, a payload in no known format.

use super::*;

const MATRIX_UBUNTU: &str = "[[kernel]]\nid = \"ubuntu-5.4\"\ndistro = \"ubuntu\"\nsuite = \"focal-updates\"\nline = \"5.4\"\n\n[[kernel]]\nid = \"ubuntu-4.15\"\ndistro = \"ubuntu\"\nsuite = \"bionic-updates\"\nline = \"4.15\"\n\n[[kernel]]\nid = \"ubuntu-4.18\"\ndistro = \"ubuntu\"\nsuite = \"bionic-updates\"\nline = \"4.18\"\n";

/// The PVH lines of Ubuntu's 5.4 and 4.15 configs: 4.15's PVH note is Xen's alone.
const CONFIG_5_4: &str = "CONFIG_XEN_PVH=y\nCONFIG_PVH=y\nCONFIG_DEBUG_INFO_BTF=y\n";
const CONFIG_4_15: &str = "CONFIG_XEN_PVHVM=y\nCONFIG_XEN_PVH=y\n# CONFIG_DEBUG_INFO_BTF is not set\n";

/// A 4.15-style vmlinux: PVH note, no `.BTF`.
fn vmlinux_without_btf(release: &str) -> Vec<u8> {
    let banner = format!("Linux version {release} (test@kmatrix) #1 SMP\0");
    fake::elf(&[("Xen", 18, &0x0100_0000u32.to_le_bytes())], &[(".text", b"\x90\xc3"), (".rodata", banner.as_bytes())])
}

/// `linux-image-unsigned-<rel>` and `linux-modules-<rel>` as Ubuntu lays them out.
fn ubuntu_build(abi: &str, ver: &str, bz: Vec<u8>, config: &str) -> Vec<Pkg> {
    let rel = format!("{abi}-generic");
    let image = build::deb(&[
        (&format!("./boot/vmlinuz-{rel}"), 0o600, &bz),
        (&format!("./usr/share/doc/linux-image-unsigned-{rel}/changelog.Debian.gz"), 0o644, &gzip(b"x")),
    ]);
    let m = format!("./lib/modules/{rel}");
    let modules = build::deb(&[
        (&format!("./boot/config-{rel}"), 0o644, config.as_bytes()),
        (&format!("./boot/System.map-{rel}"), 0o600, b"ffffffff81000000 T _text\n"),
        (&format!("{m}/kernel/fs/9p/9p.ko"), 0o644, &ko("9pnet")),
        (&format!("{m}/kernel/net/9p/9pnet.ko"), 0o644, &ko("")),
        (&format!("{m}/modules.builtin"), 0o644, b"kernel/drivers/virtio/virtio_pci.ko\n"),
    ]);
    vec![pkg(&format!("linux-image-unsigned-{rel}"), ver, image), pkg(&format!("linux-modules-{rel}"), ver, modules)]
}

fn ubuntu_env(payload_5_4: Compression) -> Env {
    let root = tempfile::tempdir().unwrap();
    let rel54 = "5.4.0-216-generic";
    write_suite(
        root.path(),
        "focal-updates",
        &ubuntu_build(
            "5.4.0-216",
            "5.4.0-216.236",
            fake::bzimage(&fake::vmlinux(rel54), payload_5_4, rel54),
            CONFIG_5_4,
        ),
    );
    let rel415 = "4.15.0-213-generic";
    let bz415 = fake::bzimage(&vmlinux_without_btf(rel415), Compression::Gzip, rel415);
    write_suite(root.path(), "bionic-updates", &ubuntu_build("4.15.0-213", "4.15.0-213.224", bz415, CONFIG_4_15));
    let server = Server::start(root);
    let cdir = tempfile::tempdir().unwrap();
    let kdir = tempfile::tempdir().unwrap();
    let mut opts = opts_for(&server, kdir.path(), None);
    std::fs::write(kdir.path().join("matrix.toml"), MATRIX_UBUNTU).unwrap();
    opts.ubuntu_mirror = Some(server.url.clone());
    // No keyring can check the fixture's unsigned Release files; --allow-unsigned takes them.
    opts.trust.keyring = Some(PathBuf::from("/nonexistent/ubuntu-archive-keyring.gpg"));
    Env { server, cache: Cache::at(cdir.path()).unwrap(), opts, _dirs: (cdir, kdir) }
}

#[test]
fn an_lz4_build_by_abi_and_a_gzip_build_without_btf_by_id() {
    let e = ubuntu_env(Compression::Lz4);
    let k = e.prepare("ubuntu:5.4.0-216").unwrap();
    assert_eq!((k.id.as_str(), k.release.as_str()), ("ubuntu:5.4.0-216", "5.4.0-216-generic"));
    assert_eq!(k.origin.distro, Distro::Ubuntu);
    assert_eq!(k.origin.package.as_deref(), Some("linux-image-unsigned-5.4.0-216-generic"));
    assert_eq!(k.build().spec, "ubuntu:5.4.0-216.236", "the spec that boots this build again");
    assert_eq!(std::fs::read(k.boot.vmlinux.as_ref().unwrap()).unwrap(), fake::vmlinux("5.4.0-216-generic"));
    assert_eq!(std::fs::read(k.boot.btf.as_ref().unwrap()).unwrap(), b"\x9f\xeb\x01\x00fake-btf");
    assert_eq!(std::fs::read_to_string(k.boot.config.as_ref().unwrap()).unwrap(), CONFIG_5_4);
    let c = module_closure(&k, &["9p", "virtio_pci"]).unwrap();
    assert_eq!(c.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["9pnet", "9p"]);
    assert_eq!(e.server.hits_ending(".deb"), 2, "image and modules");
    let manifest = std::fs::read_to_string(k.manifest.as_ref().unwrap()).unwrap();
    assert!(manifest.contains("\"distro\": \"ubuntu\""), "{manifest}");

    // A matrix id; 4.15's gzip payload has a PVH note, but its config says the note is Xen's
    // (CONFIG_XEN_PVH, no CONFIG_PVH): no vmlinux, it boots as a bzImage. No .BTF: recorded,
    // not an error.
    let old = e.prepare("ubuntu-4.15").unwrap();
    assert_eq!(old.release, "4.15.0-213-generic");
    assert!(old.boot.vmlinux.is_none() && old.boot.btf.is_none(), "{:?}", old.boot);
    assert!(old.boot.bzimage.is_file());
    let i = info(&old).unwrap();
    assert!(!i.btf_file && !i.pvh);
}

#[test]
fn bad_input_is_named_and_leaves_nothing() {
    let e = ubuntu_env(Compression::Lz4);
    let err = |s: &str| e.prepare(s).unwrap_err().to_string();
    assert_eq!(
        err("ubuntu:5.4.0-100"), // jammy and noble are not on the fixture mirror: skipped with a warning.
        "find kernel build ubuntu:5.4.0-100 in suites bionic-updates, focal-updates"
    );
    assert_eq!(err("ubuntu-4.18"), "find a kernel for line 4.18 in suite bionic-updates (flavour -generic)");
    let bad_spec = "ubuntu:5.4".parse::<KernelSpec>().unwrap_err().to_string();
    assert!(
        bad_spec.contains("ubuntu:5.4") && bad_spec.contains("after ubuntu: comes an ABI such as 5.4.0-216"),
        "{bad_spec}"
    );
    // Without --allow-unsigned an Ubuntu Release nobody can check is refused, before any .deb.
    let mut o = e.opts.clone();
    o.trust.allow_unsigned = false;
    let refused = prepare(&spec("ubuntu-5.4"), &e.cache, &o).unwrap_err();
    assert!(matches!(refused, KernelError::Unverifiable { .. }), "{refused}");
    assert!(refused.to_string().contains("dists/focal-updates/Release"), "{refused}");
    assert_eq!(e.server.hits_ending(".deb"), 0);

    // A payload in a format kmatrix does not read (bzip2): the file and its bytes are named.
    let b = ubuntu_env(Compression::None);
    let e2 = b.prepare("ubuntu-5.4").unwrap_err().to_string();
    assert!(e2.contains("vmlinuz") && e2.contains("payload starts with bytes [42, 5a, 68, 39, 31, 41]"), "{e2}");
    let left: Vec<_> = std::fs::read_dir(b.cache.root().join("kernels"))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "index")
        .collect();
    assert!(left.is_empty(), "nothing half-written in the cache: {left:?}");
}
