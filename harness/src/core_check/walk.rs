//! Reachability of poisoned instructions in a program's linked code: the verifier's branch
//! pruning on known constants, done on the host. A CO-RE relocation with no target leaves a call
//! to helper [`POISON`] that the verifier refuses only when it is reachable; behind
//! `if (bpf_core_field_exists(...))` the relocated constant makes the branch dead, so constants
//! are propagated through registers and a branch on known values takes one side only.
//!
//! What it is not: a verifier. It tracks scalar constants in registers and nothing else (no
//! stack, bounds or pointer types); whatever it cannot decide counts as reachable, and past its
//! budget it gives up (`complete: false`), which makes every failure count.

use aya_obj::generated::bpf_insn;
use std::collections::HashSet;

/// Helper number aya (like libbpf) writes into an instruction whose relocation found no target.
pub const POISON: i32 = 0xBAD2310;
/// Poisoned instructions are retagged `TAG | relocation index` by `relocate`, so each one can be
/// traced back to its relocation after the linker has moved functions around.
pub const TAG: i32 = 0x4B4D_0000;

pub struct Walk {
    /// Relocation indexes whose poisoned instruction is reachable.
    pub poisoned: HashSet<u32>,
    /// False when the walk gave up (then every failure counts as reachable).
    pub complete: bool,
}

type Regs = [Option<u64>; 11];

pub fn walk(insns: &[bpf_insn]) -> Walk {
    let n = insns.len();
    let mut seen: Vec<Option<Regs>> = vec![None; n];
    let mut work: Vec<(usize, Regs)> = vec![(0, [None; 11])];
    let mut poisoned = HashSet::new();
    let mut budget = 200_000u32;
    let jump = |pc: usize, by: i64| -> Option<usize> { usize::try_from(pc as i64 + 1 + by).ok() };
    while let Some((pc, regs)) = work.pop() {
        if pc >= n {
            continue;
        }
        let regs = match &seen[pc] {
            None => regs,
            Some(old) => {
                let mut m = *old;
                for (a, b) in m.iter_mut().zip(regs.iter()) {
                    if *a != *b {
                        *a = None;
                    }
                }
                if m == *old {
                    continue;
                }
                m
            }
        };
        seen[pc] = Some(regs);
        budget -= 1;
        if budget == 0 {
            return Walk { poisoned, complete: false };
        }
        let ins = &insns[pc];
        let (class, op) = (ins.code & 7, ins.code & 0xf0);
        let (dst, src) = (usize::from(ins.dst_reg()), usize::from(ins.src_reg()));
        if dst > 10 {
            continue;
        }
        let mut r = regs;
        let next = |to: Option<usize>, regs: Regs, work: &mut Vec<(usize, Regs)>| {
            if let Some(to) = to {
                work.push((to, regs));
            }
        };
        match class {
            // BPF_LD: ld_imm64 (a constant, or a map or function reference), legacy packet loads.
            0 => {
                if ins.code == 0x18 {
                    r[dst] = match (src, insns.get(pc + 1)) {
                        (0, Some(hi)) => Some((ins.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32)),
                        _ => None,
                    };
                    if src == 4 {
                        // BPF_PSEUDO_FUNC: a callback (bpf_loop, timers) runs from here.
                        next(jump(pc, i64::from(ins.imm)), [None; 11], &mut work);
                    }
                    next(Some(pc + 2), r, &mut work);
                } else {
                    r[0] = None;
                    next(Some(pc + 1), r, &mut work);
                }
            }
            1 => {
                r[dst] = None;
                next(Some(pc + 1), r, &mut work);
            }
            2 => next(Some(pc + 1), r, &mut work),
            3 => {
                if ins.code & 0xe0 == 0xc0 {
                    // Atomics: BPF_FETCH writes the old value to src, cmpxchg to r0.
                    if ins.imm & 1 != 0 && src <= 10 {
                        r[src] = None;
                    }
                    r[0] = if ins.imm == 0xf1 { None } else { r[0] };
                }
                next(Some(pc + 1), r, &mut work);
            }
            4 | 7 => {
                r[dst] = alu(ins, &regs, class == 7);
                next(Some(pc + 1), r, &mut work);
            }
            _ => match op {
                0x00 => {
                    let by = if class == 6 { i64::from(ins.imm) } else { i64::from(ins.off) };
                    next(jump(pc, by), r, &mut work);
                }
                0x80 => {
                    if ins.code == 0x85 && src == 0 && (ins.imm == POISON || ins.imm & !0xffff == TAG) {
                        if ins.imm & !0xffff == TAG {
                            poisoned.insert((ins.imm & 0xffff) as u32);
                        } else {
                            return Walk { poisoned, complete: false };
                        }
                        continue;
                    }
                    if src == 1 {
                        next(jump(pc, i64::from(ins.imm)), [None; 11], &mut work);
                    }
                    for x in r.iter_mut().take(6) {
                        *x = None;
                    }
                    next(Some(pc + 1), r, &mut work);
                }
                0x90 => {}
                _ => {
                    let b = if ins.code & 8 == 0 {
                        Some(if class == 6 { ins.imm as u32 as u64 } else { ins.imm as i64 as u64 })
                    } else if src <= 10 {
                        regs[src]
                    } else {
                        None
                    };
                    let taken = jump(pc, i64::from(ins.off));
                    match (regs[dst], b, cond(op, class == 6)) {
                        (Some(a), Some(b), Some(f)) => next(if f(a, b) { taken } else { Some(pc + 1) }, r, &mut work),
                        _ => {
                            next(taken, r, &mut work);
                            next(Some(pc + 1), r, &mut work);
                        }
                    }
                }
            },
        }
    }
    Walk { poisoned, complete: true }
}

fn alu(ins: &bpf_insn, regs: &Regs, wide: bool) -> Option<u64> {
    let op = ins.code & 0xf0;
    let src = usize::from(ins.src_reg());
    // Byte swaps, and the cpu v4 signed forms (sdiv, smod, movsx) carried in `off`: unknown.
    if op == 0xd0 || (ins.off != 0 && matches!(op, 0x30 | 0x90 | 0xb0)) {
        return None;
    }
    let b = if ins.code & 8 == 0 {
        Some(if wide { ins.imm as i64 as u64 } else { ins.imm as u32 as u64 })
    } else if src <= 10 {
        regs[src]
    } else {
        None
    };
    let narrow = |v: u64| if wide { v } else { v as u32 as u64 };
    if op == 0xb0 {
        return b.map(narrow);
    }
    let a = regs[usize::from(ins.dst_reg())]?;
    if op == 0x80 {
        return Some(narrow(a.wrapping_neg()));
    }
    let b = b?;
    let (a, b) = if wide { (a, b) } else { (a as u32 as u64, b as u32 as u64) };
    let bits = if wide { 64 } else { 32 };
    let v = match op {
        0x00 => a.wrapping_add(b),
        0x10 => a.wrapping_sub(b),
        0x20 => a.wrapping_mul(b),
        0x30 => a.checked_div(b).unwrap_or(0),
        0x40 => a | b,
        0x50 => a & b,
        0x60 => a.wrapping_shl((b % bits) as u32),
        0x70 => a.wrapping_shr((b % bits) as u32),
        0x90 => a.checked_rem(b).unwrap_or(a),
        0xa0 => a ^ b,
        0xc0 if wide => ((a as i64) >> (b % 64)) as u64,
        0xc0 => ((a as u32 as i32) >> (b % 32)) as u32 as u64,
        _ => return None,
    };
    Some(narrow(v))
}

type Cmp = fn(u64, u64) -> bool;

fn cond(op: u8, narrow: bool) -> Option<Cmp> {
    Some(match (op, narrow) {
        (0x10, false) => |a, b| a == b,
        (0x10, true) => |a, b| a as u32 == b as u32,
        (0x50, false) => |a, b| a != b,
        (0x50, true) => |a, b| a as u32 != b as u32,
        (0x20, false) => |a, b| a > b,
        (0x20, true) => |a, b| a as u32 > b as u32,
        (0x30, false) => |a, b| a >= b,
        (0x30, true) => |a, b| a as u32 >= b as u32,
        (0xa0, false) => |a, b| a < b,
        (0xa0, true) => |a, b| (a as u32) < b as u32,
        (0xb0, false) => |a, b| a <= b,
        (0xb0, true) => |a, b| a as u32 <= b as u32,
        (0x40, false) => |a, b| a & b != 0,
        (0x40, true) => |a, b| a as u32 & b as u32 != 0,
        (0x60, false) => |a, b| a as i64 > b as i64,
        (0x60, true) => |a, b| a as i32 > b as i32,
        (0x70, false) => |a, b| a as i64 >= b as i64,
        (0x70, true) => |a, b| a as i32 >= b as i32,
        (0xc0, false) => |a, b| (a as i64) < b as i64,
        (0xc0, true) => |a, b| (a as i32) < b as i32,
        (0xd0, false) => |a, b| a as i64 <= b as i64,
        (0xd0, true) => |a, b| a as i32 <= b as i32,
        _ => return None,
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// One instruction, for tests that write programs by hand.
    pub fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> bpf_insn {
        bpf_insn { code, _bitfield_align_1: [], _bitfield_1: bpf_insn::new_bitfield_1(dst, src), off, imm }
    }

    #[test]
    fn a_poisoned_call_behind_a_false_constant_is_unreachable() {
        // r1 = 0 (field_exists: absent); if r1 == 0 goto +1; call poison#0; r0 = 0; exit
        let guarded = [
            insn(0xb7, 1, 0, 0, 0),
            insn(0x15, 1, 0, 1, 0),
            insn(0x85, 0, 0, 0, TAG),
            insn(0xb7, 0, 0, 0, 0),
            insn(0x95, 0, 0, 0, 0),
        ];
        let w = walk(&guarded);
        assert!(w.complete && w.poisoned.is_empty());
        // The same with the field present (r1 = 1): the poisoned call runs.
        let mut reached = guarded;
        reached[0] = insn(0xb7, 1, 0, 0, 1);
        assert!(walk(&reached).poisoned.contains(&0));
        // A branch that is always taken skips it again: if r1 != 0 goto +1.
        reached[1] = insn(0x55, 1, 0, 1, 0);
        assert!(walk(&reached).poisoned.is_empty());
        reached[1] = insn(0x15, 1, 0, 1, 0);
        assert!(walk(&reached).poisoned.contains(&0));
        // An unknown value takes both branches.
        let mut unknown = guarded;
        unknown[0] = insn(0x79, 1, 2, 0, 0); // r1 = *(u64 *)(r2 + 0)
        assert!(walk(&unknown).poisoned.contains(&0));
    }

    #[test]
    fn alu_folds_constants_as_the_verifier_does() {
        let mut regs: Regs = [None; 11];
        regs[1] = Some(5);
        assert_eq!(alu(&insn(0x07, 1, 0, 0, -6), &regs, true), Some(u64::MAX)); // r1 += -6
        assert_eq!(alu(&insn(0x04, 1, 0, 0, -6), &regs, false), Some(0xffff_ffff)); // w1 += -6
        assert_eq!(alu(&insn(0x37, 1, 0, 0, 0), &regs, true), Some(0)); // r1 /= 0
        assert_eq!(alu(&insn(0x0f, 1, 2, 0, 0), &regs, true), None); // r1 += r2 (unknown)
    }
}
