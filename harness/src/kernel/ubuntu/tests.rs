//! What Ubuntu's real Packages stanzas resolve to (fixtures/README.md says where they came from).

use super::*;
use crate::kernel::debian::index::{parse_packages, Signature};

fn index(suite: &str) -> SuiteIndex {
    let text = match suite {
        "focal-updates" => include_str!("../fixtures/Packages.ubuntu-focal-updates"),
        _ => include_str!("../fixtures/Packages.ubuntu-bionic-updates"),
    };
    SuiteIndex { suite: suite.into(), arch: Arch::X86_64, signature: Signature::Good, packages: parse_packages(text) }
}

#[test]
fn generic_unsigned_images_only() {
    assert_eq!(image_abi("linux-image-unsigned-5.4.0-216-generic"), Some("5.4.0-216"));
    assert_eq!(image_abi("linux-image-unsigned-4.15.0-213-generic"), Some("4.15.0-213"));
    for n in [
        "linux-image-5.4.0-216-generic",
        "linux-image-unsigned-5.4.0-216-lowlatency",
        "linux-image-generic",
        "linux-image-unsigned-generic",
        "linux-modules-5.4.0-216-generic",
        "linux-image-unsigned-5.4.0-generic",
    ] {
        assert_eq!(image_abi(n), None, "{n}");
    }
}

#[test]
fn newest_build_of_a_line_with_its_modules() {
    let r = pick_line(&index("focal-updates"), "5.4").unwrap();
    assert_eq!((r.image.as_str(), r.version.as_str()), ("linux-image-unsigned-5.4.0-216-generic", "5.4.0-216.236"));
    assert_eq!(r.release, "5.4.0-216-generic");
    let names: Vec<_> = r.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["linux-image-unsigned-5.4.0-216-generic", "linux-modules-5.4.0-216-generic"]);
    assert_eq!(r.packages[0].sha256, "a0c4872252ba1e60348fd7216c9a9e27870fcb0fbc8bc9daf8dbf9735a7ea739");
    assert_eq!(r.packages[0].size, 10538752);
    assert_eq!(
        r.packages[0].filename,
        "pool/main/l/linux/linux-image-unsigned-5.4.0-216-generic_5.4.0-216.236_amd64.deb"
    );
    // The HWE line of the same pocket.
    let hwe = pick_line(&index("focal-updates"), "5.15").unwrap();
    assert_eq!((hwe.release.as_str(), hwe.version.as_str()), ("5.15.0-97-generic", "5.15.0-97.107~20.04.1"));
    let b = pick_line(&index("bionic-updates"), "4.15").unwrap();
    assert_eq!((b.release.as_str(), b.packages.len()), ("4.15.0-213-generic", 2));
}

#[test]
fn a_build_by_abi_or_package_version() {
    let both = [index("bionic-updates"), index("focal-updates")];
    for v in ["5.4.0-215", "5.4.0-215.235"] {
        let r = pick_version(&both, v).unwrap();
        assert_eq!((r.release.as_str(), r.suite.as_str()), ("5.4.0-215-generic", "focal-updates"), "{v}");
    }
    assert_eq!(pick_version(&both, "4.15.0-213").unwrap().suite, "bionic-updates");
}

#[test]
fn bad_input_names_it() {
    let focal = index("focal-updates");
    let e = pick_line(&focal, "4.18").unwrap_err();
    assert_eq!(e.to_string(), "find a kernel for line 4.18 in suite focal-updates (flavour -generic)");
    // An ABI the archive no longer has (its pocket keeps 5.4.0-214 and later here).
    let e = pick_version(std::slice::from_ref(&focal), "5.4.0-100").unwrap_err();
    assert_eq!(e.to_string(), "find kernel build ubuntu:5.4.0-100 in suites focal-updates");
    // An image whose modules package is gone: named, not a kernel without modules.
    let e = pick_version(&[focal], "5.4.0-214").unwrap_err();
    assert_eq!(e.to_string(), "find package linux-modules-5.4.0-214-generic 5.4.0-214.234 in suite focal-updates");
}

#[test]
fn builds_of_a_line_newest_first_with_their_specs() {
    let idx = index("focal-updates");
    let a = UbuntuArchive {
        mirror: Mirror::new("http://unused.invalid/ubuntu"),
        source: "test".into(),
        opts: FetchOptions::default(),
        trust: OnceCell::new(),
    };
    let v: Vec<_> = a.builds_of_line(&idx, "5.4").into_iter().map(|k| k.spec).collect();
    assert_eq!(v, ["ubuntu:5.4.0-216", "ubuntu:5.4.0-215", "ubuntu:5.4.0-214"]);
}
