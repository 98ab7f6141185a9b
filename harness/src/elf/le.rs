//! Little-endian integers at a byte offset, bounds-checked (`None` past the end, never a panic):
//! the one copy the harness's binary readers share, for BTF and `.BTF.ext` records and ELF note
//! descriptors. ELF structures themselves are not read with these but through object's typed
//! headers ([`super::Elf`]).

use object::read::Bytes;
use object::{LittleEndian, Pod, U16, U32, U64};

fn at<T: Pod>(b: &[u8], off: usize) -> Option<&T> {
    Bytes(b).read_at::<T>(off).ok()
}

/// The `u16` at byte `off`; `None` when its two bytes do not all lie in `b`.
pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    at::<U16<LittleEndian>>(b, off).map(|v| v.get(LittleEndian))
}

/// The `u32` at byte `off`; `None` when its four bytes do not all lie in `b`.
pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    at::<U32<LittleEndian>>(b, off).map(|v| v.get(LittleEndian))
}

/// The `u64` at byte `off`; `None` when its eight bytes do not all lie in `b`.
pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    at::<U64<LittleEndian>>(b, off).map(|v| v.get(LittleEndian))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_refuses_past_the_end() {
        let b = [0x9f, 0xeb, 1, 0, 0, 0, 0, 0, 0x80];
        assert_eq!(u16_at(&b, 0), Some(0xeb9f));
        assert_eq!(u32_at(&b, 0), Some(0x0001_eb9f));
        assert_eq!(u64_at(&b, 1), Some(0x8000_0000_0000_01eb));
        assert_eq!(u16_at(&b, 8), None);
        assert_eq!(u32_at(&b, 6), None);
        assert_eq!(u64_at(&b, 2), None);
        assert_eq!(u32_at(&b, usize::MAX), None);
    }
}
