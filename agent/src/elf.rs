//! The agent's one ELF reader: file offsets in an executable for uprobes, which take a file
//! offset, not an address (`p:grp/ev /bin/hello:0x1234`): of a named function (scenarios), or of
//! the entry point from the first page alone (the capability probe, which must not read the
//! whole file on the boot's critical path).
//!
//! Only what uprobes need: 64-bit little-endian files, `.symtab` (falling back to `.dynsym`),
//! and the `PT_LOAD` segment that maps an address. Not a general ELF reader; BPF objects are
//! parsed by aya-obj.

use anyhow::{bail, ensure, Context, Result};
use std::path::Path;

const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;
const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const STT_FUNC: u8 = 2;

/// File offset of function `name` in the ELF file at `path`.
pub fn function_offset(path: &Path, name: &str) -> Result<u64> {
    let data = std::fs::read(path).with_context(|| format!("read({}) failed", path.display()))?;
    offset_in(&data, name).with_context(|| format!("symbol {name} in {}", path.display()))
}

/// File offset of the entry point of the ELF file whose head (at least its ELF and program
/// headers) is `head`, through the executable `PT_LOAD` segment that maps it.
pub fn entry_offset(head: &[u8]) -> Result<u64> {
    check_header(head)?;
    let entry = u64_at(head, 0x18)?;
    file_offset(head, entry, PF_X).with_context(|| format!("entry point {entry:#x}"))
}

fn offset_in(d: &[u8], name: &str) -> Result<u64> {
    check_header(d)?;
    let vaddr = symbol_value(d, name)?;
    file_offset(d, vaddr, 0)
}

fn check_header(d: &[u8]) -> Result<()> {
    ensure!(d.len() >= 64 && &d[..4] == b"\x7fELF", "not an ELF file");
    ensure!(d[4] == 2 && d[5] == 1, "not a 64-bit little-endian ELF file");
    Ok(())
}

/// File offset of `vaddr` through the first `PT_LOAD` segment that maps it and has every flag
/// of `flags` (`PF_X`), or any when `flags` is 0.
fn file_offset(d: &[u8], vaddr: u64, flags: u32) -> Result<u64> {
    let phoff = u64_at(d, 0x20)? as usize;
    let phentsize = u16_at(d, 0x36)? as usize;
    let phnum = u16_at(d, 0x38)? as usize;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(d, ph)? != PT_LOAD || u32_at(d, ph + 0x04)? & flags != flags {
            continue;
        }
        let offset = u64_at(d, ph + 0x08)?;
        let p_vaddr = u64_at(d, ph + 0x10)?;
        let filesz = u64_at(d, ph + 0x20)?;
        if (p_vaddr..p_vaddr + filesz).contains(&vaddr) {
            return Ok(vaddr - p_vaddr + offset);
        }
    }
    match flags {
        0 => bail!("address {vaddr:#x} is in no PT_LOAD segment"),
        _ => bail!("address {vaddr:#x} is in no executable PT_LOAD segment"),
    }
}

fn symbol_value(d: &[u8], name: &str) -> Result<u64> {
    let shoff = u64_at(d, 0x28)? as usize;
    let shentsize = u16_at(d, 0x3a)? as usize;
    let shnum = u16_at(d, 0x3c)? as usize;
    let section = |i: usize| -> Result<(u32, usize, usize, u32)> {
        let sh = shoff + i * shentsize;
        Ok((
            u32_at(d, sh + 0x04)?,
            u64_at(d, sh + 0x18)? as usize,
            u64_at(d, sh + 0x20)? as usize,
            u32_at(d, sh + 0x28)?,
        ))
    };
    for wanted in [SHT_SYMTAB, SHT_DYNSYM] {
        for i in 0..shnum {
            let (ty, off, size, link) = section(i)?;
            if ty != wanted {
                continue;
            }
            let (_, str_off, str_size, _) = section(link as usize)?;
            let strtab = d.get(str_off..str_off + str_size).context("string table out of bounds")?;
            for sym in (off..off + size).step_by(24) {
                let st_name = u32_at(d, sym)? as usize;
                let info = *d.get(sym + 4).context("symbol out of bounds")?;
                let sym_name = strtab.get(st_name..).and_then(|s| s.split(|&b| b == 0).next()).unwrap_or(&[]);
                if info & 0xf == STT_FUNC && sym_name == name.as_bytes() {
                    return u64_at(d, sym + 8);
                }
            }
        }
    }
    bail!("no function symbol {name}")
}

fn bytes<const N: usize>(d: &[u8], at: usize) -> Result<[u8; N]> {
    d.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .with_context(|| format!("read of {N} bytes at {at:#x} out of bounds"))
}

fn u16_at(d: &[u8], at: usize) -> Result<u16> {
    Ok(u16::from_le_bytes(bytes(d, at)?))
}

fn u32_at(d: &[u8], at: usize) -> Result<u32> {
    Ok(u32::from_le_bytes(bytes(d, at)?))
}

fn u64_at(d: &[u8], at: usize) -> Result<u64> {
    Ok(u64::from_le_bytes(bytes(d, at)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_function_in_this_test_binary() {
        // The test binary itself is an ELF file with a symbol table; `main` is a function.
        let exe = std::env::current_exe().unwrap();
        let off = function_offset(&exe, "main").unwrap();
        assert!(off > 0);
        assert!(function_offset(&exe, "no_such_function_kmatrix").is_err());
    }

    #[test]
    fn entry_offset_maps_the_entry_point_through_its_executable_segment() {
        let mut elf = vec![0u8; 64 + 2 * 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x18..0x20].copy_from_slice(&0x401234u64.to_le_bytes());
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        // A read-only PT_LOAD at 0x400000, then the executable one at 0x401000 from offset 0x1000.
        for (i, (flags, offset, vaddr)) in [(4u32, 0u64, 0x400000u64), (5, 0x1000, 0x401000)].into_iter().enumerate() {
            let ph = 64 + 56 * i;
            elf[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            elf[ph + 4..ph + 8].copy_from_slice(&flags.to_le_bytes());
            elf[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
            elf[ph + 0x10..ph + 0x18].copy_from_slice(&vaddr.to_le_bytes());
            elf[ph + 0x20..ph + 0x28].copy_from_slice(&0x1000u64.to_le_bytes());
        }
        assert_eq!(entry_offset(&elf).unwrap(), 0x1234);
        assert!(entry_offset(&elf[..100]).is_err());
        assert!(entry_offset(b"#!/bin/sh").is_err());
        // The entry point in a segment that is not executable is no entry point.
        elf[64 + 56 + 4..64 + 56 + 8].copy_from_slice(&4u32.to_le_bytes());
        assert!(entry_offset(&elf).is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(offset_in(b"not an elf at all", "main").is_err());
        assert!(offset_in(&[0x7f, b'E', b'L', b'F', 2, 1, 0, 0][..], "main").is_err());
    }
}
