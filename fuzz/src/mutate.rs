//! Deterministic mutations of corpus inputs, for the stable replay: what libFuzzer's mutators do
//! most (bit flips, interesting bytes and integers, truncations, deleted, repeated and spliced
//! chunks), driven by a seeded generator so every run tries the same inputs and a failure
//! names one that reproduces.
//!
//! What it is not: coverage-guided. cargo-fuzz is the search; this keeps what it found and what
//! the parsers must survive checked on every `cargo test`.

/// splitmix64: small, fast and good enough to spread mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// FNV-1a of a name: the seed of a target's mutations.
pub fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Bytes parsers treat specially.
const BYTES: &[u8] = b"\0\x01\x7f\x80\xff\n\r {}[]\":=,-.~#";
/// Integers that break length and offset arithmetic, written over 4 or 8 bytes.
const INTS: &[u64] = &[0, 1, 4, 0x7f, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_fff0, 0xffff_ffff, 1 << 32, u64::MAX];
/// Text that breaks number, string and line parsing.
const WORDS: &[&[u8]] = &[
    b"99999999999999999999999",
    b"-1",
    b"4294967296",
    b"\"",
    b"\\",
    b"\n\n",
    b"[[",
    b"{\"type\":\"hello\"}",
    b"\xc3\x28",
    b"1e999",
];

/// One mutation of `input`; `other` is another input of the same target, for splices. The
/// output stays under `max` bytes.
pub fn mutate(input: &[u8], other: &[u8], rng: &mut Rng, max: usize) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        let len = v.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = BYTES[rng.below(BYTES.len())];
            }
            2 if len >= 4 => {
                // Little-endian, often aligned: where binary formats keep their lengths.
                let width = if rng.below(3) == 0 { 8.min(len) } else { 4 };
                let mut at = rng.below(len - width + 1);
                if rng.below(2) == 0 {
                    at &= !3;
                }
                let mut x = INTS[rng.below(INTS.len())];
                if rng.below(4) == 0 {
                    x = (len as u64).wrapping_add(rng.below(9) as u64).wrapping_sub(4);
                }
                v[at..at + width].copy_from_slice(&x.to_le_bytes()[..width]);
            }
            3 => v.truncate(rng.below(len + 1)),
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                v.drain(a..b);
            }
            5 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256)).min(len);
                let chunk = v[a..b].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            7 => {
                let w = WORDS[rng.below(WORDS.len())];
                let at = rng.below(len + 1);
                v.splice(at..at, w.iter().copied());
            }
            8 if len > 0 => {
                // A digit run replaced by a huge or negative number.
                let start = rng.below(len);
                if let Some(p) = v[start..].iter().position(u8::is_ascii_digit) {
                    let a = start + p;
                    let b = a + v[a..].iter().take_while(|c| c.is_ascii_digit()).count();
                    let w = WORDS[rng.below(3)];
                    v.splice(a..b, w.iter().copied());
                }
            }
            _ => {
                let n = 1 + rng.below(16);
                let at = rng.below(len + 1);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(at..at, bytes);
            }
        }
        v.truncate(max);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_bounded() {
        let input = b"Package: linux-image-6.1.0-50-amd64\nSize: 70305560\n";
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200).map(|_| mutate(input, b"other", &mut rng, 80)).collect::<Vec<_>>()
        };
        let a = run(seed_of("packages"));
        assert_eq!(a, run(seed_of("packages")));
        assert_ne!(a, run(seed_of("release")));
        assert!(a.iter().all(|m| m.len() <= 80));
        // The mutations do change the input, in many different ways.
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() > 150, "{}", distinct.len());
        assert!(a.iter().filter(|m| m.as_slice() == input).count() < 10);
    }
}
