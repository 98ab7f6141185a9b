//! Resolving, fetching and caching kernels from the fixture mirror: packaged builds by id and
//! by version, headers, suites, the lock and `kernels gc`, local kernel files, and spec parsing.

use super::*;

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
    let a = available(Distro::Debian, "6.1", &e.cache, &e.opts).unwrap();
    let v: Vec<_> = a.iter().map(|k| (k.package.as_str(), k.version.as_str(), k.suite.as_str())).collect();
    assert_eq!(
        v,
        [
            ("linux-image-6.1.0-99-amd64", "6.1.176-1", "bookworm"),
            ("linux-image-6.1.0-98-amd64", "6.1.170-3", "bookworm")
        ]
    );
    assert_eq!(a[1].spec, "debian:6.1.170-3");
    assert!(available(Distro::Debian, "6.12", &e.cache, &e.opts).unwrap().is_empty());
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
        assert!(bzimage::parse_elf(&vm).unwrap().pvh_entry.is_some());
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
    assert_eq!(manifest, include_str!("../fixtures/json/manifest.json"));
    assert_eq!(pretty(&info(&k).unwrap(), root, "<cache>"), include_str!("../fixtures/json/info.json"));
    assert_eq!(value(&pretty(&k, root, "<cache>")), value(include_str!("../fixtures/json/prepared.json")));

    let d = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(d.path()).unwrap();
    let cache = Cache::at(dir.join("cache")).unwrap();
    let bz = dir.join("bzImage");
    std::fs::write(&bz, fake::bzimage(&fake::vmlinux("6.13.0-rc1"), Compression::Zstd, "6.13.0-rc1")).unwrap();
    let s = KernelSpec::Local { path: bz, modules: None, config: None };
    let k = prepare(&s, &cache, &FetchOptions::default()).unwrap();
    let entry = k.boot.btf.as_ref().unwrap().with_file_name("manifest.json");
    let manifest = std::fs::read_to_string(entry).unwrap().replace(&dir.display().to_string(), "<dir>");
    assert_eq!(manifest, include_str!("../fixtures/json/local-manifest.json"));
    assert_eq!(pretty(&info(&k).unwrap(), &dir, "<dir>"), include_str!("../fixtures/json/local-info.json"));
    assert_eq!(value(&pretty(&k, &dir, "<dir>")), value(include_str!("../fixtures/json/local-prepared.json")));
}
