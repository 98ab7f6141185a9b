//! A kernel cache entry's `manifest.json`: what the entry holds (release, origin, packages, boot
//! files) and the size and sha256 of every file, paths relative to the entry; checking an entry
//! against it; the hashes a lock pins.
//!
//! Building an entry is [`super::store`]'s job; this module only describes and checks one.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::arch::Arch;
use super::debian::index::{sha256_file, DebPackage};
use super::describe::{BootFiles, Origin};
use super::error::{KernelError, Result};
use super::files::modules::is_module;
use crate::cache::write_atomic;

/// The file name of an entry's manifest.
pub const MANIFEST: &str = "manifest.json";
/// The manifest format this kmatrix writes.
pub const FORMAT: u32 = 1;

/// Size and hash of one file of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSum {
    pub sha256: String,
    pub size: u64,
}

/// What an entry holds and the hash of every file, paths relative to the entry.
///
/// Its JSON (`manifest.json`, format 1) has flat keys: [`Origin`] and [`BootFiles`] are flattened
/// into it. `deny_unknown_fields` still holds for the whole object: serde rejects any key that
/// neither this struct nor a flattened one claims (the flattened ones must not deny, they see
/// every key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub release: String,
    /// The package and suite the build came from.
    #[serde(flatten)]
    pub origin: Origin,
    /// The guest architecture; absent in entries written before arm64 existed (x86_64).
    #[serde(default, skip_serializing_if = "Arch::is_default")]
    pub arch: Arch,
    pub debs: Vec<DebPackage>,
    /// The boot files, relative to the entry (a local kernel's image: its absolute path).
    #[serde(flatten)]
    pub boot: BootFiles<String>,
    pub files: BTreeMap<String, FileSum>,
}

impl Manifest {
    /// The manifest of an entry before anything is placed in it: the release and architecture,
    /// no package, no files.
    pub fn empty(release: String, arch: Arch) -> Manifest {
        Manifest {
            format: FORMAT,
            release,
            origin: Origin::default(),
            arch,
            debs: Vec::new(),
            boot: BootFiles::image(String::new()),
            files: BTreeMap::new(),
        }
    }

    /// Write it as `manifest.json` into `dir`, atomically: the last file of an entry.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| KernelError::Parse { what: "manifest".into(), detail: e.to_string() })?;
        Ok(write_atomic(&dir.join(MANIFEST), &json)?)
    }

    pub fn load(path: &Path) -> Result<Manifest> {
        let text = fs::read_to_string(path).map_err(KernelError::io(path))?;
        serde_json::from_str(&text)
            .map_err(|e| KernelError::Parse { what: path.display().to_string(), detail: e.to_string() })
    }

    /// Hash `path` (inside the entry at `root`) and compare with the recorded sum.
    pub fn verify_file(&self, root: &Path, path: &Path) -> Result<()> {
        let rel = path.strip_prefix(root).ok().and_then(|p| p.to_str()).unwrap_or("");
        let what = path.display().to_string();
        let want = self.files.get(rel).ok_or_else(|| KernelError::Invalid {
            path: what.clone(),
            detail: format!("the manifest of {} does not list it", root.display()),
        })?;
        let (size, sha) = sha256_file(path)?;
        if sha != want.sha256 {
            return Err(KernelError::HashMismatch { what, expected: want.sha256.clone(), actual: sha });
        }
        if size != want.size {
            return Err(KernelError::SizeMismatch { what, expected: want.size, actual: size });
        }
        Ok(())
    }

    /// Check the entry at `root`: every boot file (everything but module objects) is re-hashed,
    /// every module's size is checked (modules are re-hashed when [`super::module_closure`] picks
    /// them). `Err` names the first file that does not match.
    pub fn verify(&self, root: &Path) -> Result<()> {
        for (rel, sum) in &self.files {
            let p = root.join(rel);
            if is_module(rel) {
                let len = fs::metadata(&p).map_err(KernelError::io(&p))?.len();
                if len != sum.size {
                    return Err(KernelError::SizeMismatch {
                        what: p.display().to_string(),
                        expected: sum.size,
                        actual: len,
                    });
                }
            } else {
                self.verify_file(root, &p)?;
            }
        }
        Ok(())
    }

    /// A digest of the packaged files under the modules directory: sha256 over sorted
    /// `<sha256>  <path>\n` lines. One line in the lock stands for thousands of modules. The
    /// generated `modules.dep` is left out, so improving its generator does not void locks.
    pub fn modules_digest(&self) -> Option<String> {
        let dir = self.boot.modules_dir.as_ref()?;
        let prefix = format!("{dir}/");
        let generated = format!("{dir}/modules.dep");
        let mut h = Sha256::new();
        for (rel, sum) in self.files.range(prefix.clone()..) {
            if !rel.starts_with(&prefix) {
                break;
            }
            if *rel != generated {
                h.update(format!("{}  {}\n", sum.sha256, rel));
            }
        }
        Some(hex::encode(h.finalize()))
    }

    /// The hashes a lock pins for this entry: boot files by name plus the modules digest.
    pub fn pinned_files(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for rel in self.boot.single_files() {
            if let Some(s) = self.files.get(rel) {
                out.insert(rel.clone(), s.sha256.clone());
            }
        }
        if let Some(d) = self.modules_digest() {
            out.insert("modules".to_string(), d);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Manifests of real cache entries, written before [`BootFiles`] and [`Origin`] existed.
    const CACHED: [(&str, &str); 3] = [
        ("6.1", include_str!("fixtures/json/cache-6.1-manifest.json")),
        ("arm64", include_str!("fixtures/json/cache-arm64-manifest.json")),
        ("local", include_str!("fixtures/json/cache-local-manifest.json")),
    ];

    fn load_text(text: &str) -> Result<Manifest> {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(MANIFEST), text).unwrap();
        Manifest::load(&d.path().join(MANIFEST))
    }

    #[test]
    fn cached_manifests_load_and_write_back_byte_for_byte() {
        for (name, text) in CACHED {
            let m = load_text(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let out = tempfile::tempdir().unwrap();
            m.write(out.path()).unwrap();
            assert_eq!(fs::read_to_string(out.path().join(MANIFEST)).unwrap(), text, "{name}");
        }
        let arm = load_text(CACHED[1].1).unwrap();
        assert_eq!((arm.arch, arm.boot.bzimage.as_str(), arm.boot.vmlinux.as_deref()), (Arch::Arm64, "vmlinuz", None));
        assert_eq!(arm.origin.signature, Some(super::super::Signature::Good));
        assert_eq!(
            arm.pinned_files().keys().collect::<Vec<_>>(),
            ["System.map", "config", "modules", "vmlinux.btf", "vmlinuz"]
        );
        let local = load_text(CACHED[2].1).unwrap();
        assert_eq!((local.arch, &local.origin), (Arch::X86_64, &Origin::default()));
        assert!(local.boot.bzimage.starts_with('/'), "a local kernel's image keeps its absolute path");
    }

    #[test]
    fn a_manifest_with_an_unknown_or_missing_key_is_refused() {
        let text = CACHED[0].1;
        // Flattening must not loosen `deny_unknown_fields`: a key no part claims is an error.
        let extra = text.replacen("\"bzimage\"", "\"initrd\": \"initrd.img\",\n  \"bzimage\"", 1);
        let e = load_text(&extra).unwrap_err().to_string();
        assert!(e.contains("unknown field `initrd`"), "{e}");
        for key in ["bzimage", "release", "format"] {
            let line = text.lines().find(|l| l.starts_with(&format!("  \"{key}\":"))).unwrap();
            let e = load_text(&text.replacen(&format!("{line}\n"), "", 1)).unwrap_err().to_string();
            assert!(e.contains(&format!("missing field `{key}`")), "{key}: {e}");
        }
    }
}
