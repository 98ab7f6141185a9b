//! A kernel build's files, whatever archive they came from: the bzImage and the ELF `vmlinux`
//! inside it ([`bzimage`]), arm64 images ([`arm64`]), the compression formats of packages,
//! modules and payloads ([`compress`]), the kernel config ([`config`]), `.deb` archives ([`deb`])
//! and module files with their `modules.dep` ([`modules`]).
//!
//! Nothing here knows a distribution, a mirror or the cache: these modules read bytes and files
//! and import only each other and `kernel::error`.

pub mod arm64;
pub mod bzimage;
pub mod compress;
pub mod config;
pub mod deb;
pub mod modules;
