//! Finding a function's file offset in an ELF executable, for uprobe definitions
//! (`p:grp/ev /bin/hello:0x1234` takes a file offset, not an address).
//!
//! Only what uprobes need: 64-bit little-endian files, `.symtab` (falling back to `.dynsym`),
//! and the `PT_LOAD` segment that maps the symbol. Not a general ELF reader.

use anyhow::{bail, ensure, Context, Result};
use std::path::Path;

const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;
const PT_LOAD: u32 = 1;
const STT_FUNC: u8 = 2;

/// File offset of function `name` in the ELF file at `path`.
pub fn function_offset(path: &Path, name: &str) -> Result<u64> {
    let data = std::fs::read(path).with_context(|| format!("read({}) failed", path.display()))?;
    offset_in(&data, name).with_context(|| format!("symbol {name} in {}", path.display()))
}

fn offset_in(d: &[u8], name: &str) -> Result<u64> {
    ensure!(d.len() >= 64 && &d[..4] == b"\x7fELF", "not an ELF file");
    ensure!(d[4] == 2 && d[5] == 1, "not a 64-bit little-endian ELF file");
    let vaddr = symbol_value(d, name)?;
    let phoff = u64_at(d, 0x20)? as usize;
    let phentsize = u16_at(d, 0x36)? as usize;
    let phnum = u16_at(d, 0x38)? as usize;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(d, ph)? != PT_LOAD {
            continue;
        }
        let offset = u64_at(d, ph + 0x08)?;
        let p_vaddr = u64_at(d, ph + 0x10)?;
        let filesz = u64_at(d, ph + 0x20)?;
        if (p_vaddr..p_vaddr + filesz).contains(&vaddr) {
            return Ok(vaddr - p_vaddr + offset);
        }
    }
    bail!("address {vaddr:#x} is in no PT_LOAD segment")
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
    fn rejects_garbage() {
        assert!(offset_in(b"not an elf at all", "main").is_err());
        assert!(offset_in(&[0x7f, b'E', b'L', b'F', 2, 1, 0, 0][..], "main").is_err());
    }
}
