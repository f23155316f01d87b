//! SSE4.2: the string comparisons PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM, PCMPGTQ, and
//! CRC32 (CRC-32C on general registers).
//!
//! The string instructions follow the SDM's model (Vol. 2, 4.1): compare every element pair
//! of the two operands (bytes or words, signed or not), override pairs involving invalid
//! elements (past the explicit or implicit length) as the aggregation says, aggregate
//! (equal any, ranges, equal each, equal ordered), apply the polarity, and return an index in
//! ECX or a mask in XMM0, with CF, ZF, SF and OF reporting on the result and the lengths.

use iced_x86::{Instruction, Mnemonic as M, Register};

use super::lanes::sx;
use crate::interp::cpu::flags;
use crate::interp::fault::Result;
use crate::interp::Interp;

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::Pcmpestri | M::Pcmpestrm | M::Pcmpistri | M::Pcmpistrm | M::Pcmpgtq
    )
}

/// The elements of `v` as integers: 16 bytes or 8 words, signed or unsigned.
fn elements(v: u128, words: bool, signed: bool) -> Vec<i64> {
    let (n, bits) = if words { (8, 16) } else { (16, 8) };
    (0..n)
        .map(|k| {
            let x = (v >> (bits * k)) as u64 & ((1 << bits) - 1);
            if signed {
                sx(x, bits as u32)
            } else {
                x as i64
            }
        })
        .collect()
}

/// An implicit length: the index of the first zero element.
fn implicit_len(e: &[i64]) -> usize {
    e.iter().position(|&x| x == 0).unwrap_or(e.len())
}

/// An explicit length from EAX/EDX (RAX/RDX with REX.W): its absolute value, at most `n`.
fn explicit_len(v: u64, wide: bool, n: usize) -> usize {
    let abs = if wide {
        (v as i64).unsigned_abs()
    } else {
        u64::from((v as i32).unsigned_abs())
    };
    abs.min(n as u64) as usize
}

/// The string comparison's result: IntRes2 (one bit per element) from `a` (the register
/// operand, length `la`) and `b` (the register or memory operand, length `lb`).
pub fn compare_strings(a: u128, la: usize, b: u128, lb: usize, imm: u8) -> u32 {
    let words = imm & 1 == 1;
    let signed = imm & 2 != 0;
    let (ea, eb) = (elements(a, words, signed), elements(b, words, signed));
    let n = ea.len();
    let agg = (imm >> 2) & 3;
    let mut int1 = 0u32;
    for i in 0..n {
        let bit = match agg {
            // Equal any: b[i] is one of a's valid elements.
            0 => i < lb && (0..la).any(|j| ea[j] == eb[i]),
            // Ranges: b[i] lies in one of a's valid [lo, hi] pairs.
            1 => {
                i < lb
                    && (0..n / 2).any(|p| {
                        let (lo, hi) = (2 * p, 2 * p + 1);
                        let ge = lo < la && eb[i] >= ea[lo];
                        let le = hi < la && eb[i] <= ea[hi];
                        ge && le
                    })
            }
            // Equal each: both valid and equal, or both invalid.
            2 => match (i < la, i < lb) {
                (true, true) => ea[i] == eb[i],
                (false, false) => true,
                _ => false,
            },
            // Equal ordered: a (the needle) occurs at b[i]; needle elements past its length
            // match anything, a valid needle element past b's length matches nothing.
            _ => (0..n - i).all(|k| match (k < la, i + k < lb) {
                (false, _) => true,
                (true, true) => ea[k] == eb[i + k],
                (true, false) => false,
            }),
        };
        int1 |= u32::from(bit) << i;
    }
    let all = (1u32 << n) - 1;
    let valid_b = (1u32 << lb) - 1;
    match (imm >> 4) & 3 {
        1 => !int1 & all,
        3 => (int1 ^ valid_b) & all,
        _ => int1,
    }
}

impl Interp {
    pub(super) fn simd_sse42(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        let d = self.xmm(i, 0)?;
        let a = self.cpu.fpu.xmm[d];
        let b = self.simd_read(i, 1)?;
        if m == M::Pcmpgtq {
            let gt = |k: u32| {
                let (x, y) = ((a >> (64 * k)) as u64 as i64, (b >> (64 * k)) as u64 as i64);
                if x > y {
                    u128::from(u64::MAX) << (64 * k)
                } else {
                    0
                }
            };
            self.cpu.fpu.xmm[d] = gt(0) | gt(1);
            return Ok(());
        }
        let imm = i.immediate8();
        let words = imm & 1 == 1;
        let n = if words { 8 } else { 16 };
        let explicit = matches!(m, M::Pcmpestri | M::Pcmpestrm);
        let (la, lb) = if explicit {
            let wide = i.op_code().operand_size() == 64;
            (
                explicit_len(self.cpu.regs[0], wide, n),
                explicit_len(self.cpu.regs[2], wide, n),
            )
        } else {
            let signed = imm & 2 != 0;
            (
                implicit_len(&elements(a, words, signed)),
                implicit_len(&elements(b, words, signed)),
            )
        };
        let res = compare_strings(a, la, b, lb, imm);
        if matches!(m, M::Pcmpestri | M::Pcmpistri) {
            let index = if res == 0 {
                n as u32
            } else if imm & 0x40 != 0 {
                31 - res.leading_zeros()
            } else {
                res.trailing_zeros()
            };
            self.set_reg(Register::ECX, u64::from(index));
        } else {
            self.cpu.fpu.xmm[0] = if imm & 0x40 != 0 {
                let bits = if words { 16 } else { 8 };
                (0..n).fold(0u128, |v, k| {
                    if res >> k & 1 == 1 {
                        v | ((1u128 << bits) - 1) << (bits * k)
                    } else {
                        v
                    }
                })
            } else {
                u128::from(res)
            };
        }
        let c = &mut self.cpu;
        c.rflags &= !(flags::OF | flags::SF | flags::AF | flags::ZF | flags::PF | flags::CF);
        c.set_flag(flags::CF, res != 0);
        c.set_flag(flags::ZF, lb < n);
        c.set_flag(flags::SF, la < n);
        c.set_flag(flags::OF, res & 1 == 1);
        Ok(())
    }

    /// CRC32 r32/r64, r/m8/16/32/64: CRC-32C (reflected polynomial 0x82F63B78) of the source's
    /// bytes, least significant first, continuing from the destination's low 32 bits.
    pub(super) fn crc32(&mut self, i: &Instruction) -> Result<()> {
        let size = if i.op_kind(1) == iced_x86::OpKind::Register {
            i.op_register(1).size()
        } else {
            i.memory_size().size()
        };
        let src = self.read_op(i, 1)?;
        let mut crc = self.get_reg(i.op_register(0)) as u32;
        for k in 0..size {
            crc ^= (src >> (8 * k)) as u8 as u32;
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0x82f6_3b78 & (crc & 1).wrapping_neg());
            }
        }
        // A 64-bit destination gets the CRC zero-extended.
        self.set_reg(i.op_register(0), u64::from(crc));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &[u8]) -> u128 {
        s.iter()
            .enumerate()
            .fold(0, |v, (k, b)| v | u128::from(*b) << (8 * k))
    }

    #[test]
    fn string_comparisons() {
        let hay = bytes(b"hello world");
        // Equal any of "ol": positions of o, l.
        let r = compare_strings(bytes(b"ol"), 2, hay, 11, 0b00_00_00);
        assert_eq!(r, 0b010_1001_1100);
        // Ranges a–z: every letter, not the space.
        let r = compare_strings(bytes(b"az"), 2, hay, 11, 0b00_01_00);
        assert_eq!(r, 0b111_1101_1111);
        // Equal ordered "wor": at 6.
        let r = compare_strings(bytes(b"wor"), 3, hay, 11, 0b00_11_00);
        assert_eq!(r, 1 << 6);
        // Equal each, negative masked: differences within b's length; past both lengths
        // elements compare equal and stay set.
        let r = compare_strings(bytes(b"hellO"), 5, bytes(b"hello"), 5, 0b11_10_00);
        assert_eq!(r, 0xffe0 | 1 << 4);
    }

    #[test]
    fn lengths() {
        assert_eq!(explicit_len(u64::from((-5i32) as u32), false, 16), 5);
        assert_eq!(explicit_len(100, false, 8), 8);
        assert_eq!(explicit_len(0x8000_0000, false, 16), 16);
        assert_eq!(implicit_len(&elements(bytes(b"ab"), false, false)), 2);
    }
}
