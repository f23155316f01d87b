//! SSE2's packed integer instructions and the bitwise SSE operations on XMM registers:
//! `xmm = op(xmm, xmm/m128)`, lane by lane.

use iced_x86::{Instruction, Mnemonic as M};

use super::lanes::{self, join, map2, pack, shift, sx, unpack, ShiftKind};
use crate::interp::fault::{Fault, Result};
use crate::interp::Interp;

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::Pand
            | M::Pandn
            | M::Por
            | M::Pxor
            | M::Andps
            | M::Andpd
            | M::Andnps
            | M::Andnpd
            | M::Orps
            | M::Orpd
            | M::Xorps
            | M::Xorpd
            | M::Paddb
            | M::Paddw
            | M::Paddd
            | M::Paddq
            | M::Psubb
            | M::Psubw
            | M::Psubd
            | M::Psubq
            | M::Paddsb
            | M::Paddsw
            | M::Paddusb
            | M::Paddusw
            | M::Psubsb
            | M::Psubsw
            | M::Psubusb
            | M::Psubusw
            | M::Pmullw
            | M::Pmulhw
            | M::Pmulhuw
            | M::Pmuludq
            | M::Pmaddwd
            | M::Pavgb
            | M::Pavgw
            | M::Pminub
            | M::Pmaxub
            | M::Pminsw
            | M::Pmaxsw
            | M::Psadbw
            | M::Pcmpeqb
            | M::Pcmpeqw
            | M::Pcmpeqd
            | M::Pcmpgtb
            | M::Pcmpgtw
            | M::Pcmpgtd
            | M::Psllw
            | M::Pslld
            | M::Psllq
            | M::Psrlw
            | M::Psrld
            | M::Psrlq
            | M::Psraw
            | M::Psrad
            | M::Pslldq
            | M::Psrldq
            | M::Packsswb
            | M::Packssdw
            | M::Packuswb
            | M::Punpcklbw
            | M::Punpcklwd
            | M::Punpckldq
            | M::Punpcklqdq
            | M::Punpckhbw
            | M::Punpckhwd
            | M::Punpckhdq
            | M::Punpckhqdq
            | M::Unpcklps
            | M::Unpckhps
            | M::Unpcklpd
            | M::Unpckhpd
    )
}

/// The lane count and bit width of a packed operation's suffix.
const B: (usize, u32) = (16, 8);
const W: (usize, u32) = (8, 16);
const D: (usize, u32) = (4, 32);
const Q: (usize, u32) = (2, 64);

fn wrapping(lane: (usize, u32), a: u128, b: u128, f: impl Fn(u64, u64) -> u64) -> u128 {
    map2(lane.0, a, b, f)
}

fn saturating(lane: (usize, u32), a: u128, b: u128, signed: bool, sub: bool) -> u128 {
    let (n, bits) = lane;
    map2(n, a, b, |x, y| {
        let (x, y) = if signed {
            (sx(x, bits), sx(y, bits))
        } else {
            (x as i64, y as i64)
        };
        let r = if sub { x - y } else { x + y };
        if signed {
            lanes::sat_s(r, bits)
        } else {
            lanes::sat_u(r, bits)
        }
    })
}

fn compare(lane: (usize, u32), a: u128, b: u128, gt: bool) -> u128 {
    let (n, bits) = lane;
    let ones = if bits == 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    map2(n, a, b, |x, y| {
        let t = if gt {
            sx(x, bits) > sx(y, bits)
        } else {
            x == y
        };
        if t {
            ones
        } else {
            0
        }
    })
}

/// PMADDWD: each dword is the sum of two signed word products (wrapping in 32 bits, which
/// only 0x8000 × 0x8000 twice reaches).
fn pmaddwd(a: u128, b: u128) -> u128 {
    let (wa, wb) = (lanes::lanes::<8>(a), lanes::lanes::<8>(b));
    join::<4>(std::array::from_fn(|k| {
        let p = |j: usize| sx(wa[j], 16) * sx(wb[j], 16);
        (p(2 * k) + p(2 * k + 1)) as u64 & 0xffff_ffff
    }))
}

/// PSADBW: per 64-bit half, the sum of absolute byte differences in its low word.
fn psadbw(a: u128, b: u128) -> u128 {
    let (ba, bb) = (lanes::lanes::<16>(a), lanes::lanes::<16>(b));
    join::<2>(std::array::from_fn(|h| {
        (0..8)
            .map(|j| ba[h * 8 + j].abs_diff(bb[h * 8 + j]))
            .sum::<u64>()
    }))
}

/// The count a PSLL/PSRL/PSRA reads from an XMM/m128 operand: its whole low quadword.
fn xmm_count(v: u128) -> u64 {
    v as u64
}

impl Interp {
    pub(super) fn simd_integer(&mut self, i: &Instruction) -> Result<()> {
        let dst = self.xmm(i, 0)?;
        let a = self.cpu.fpu.xmm[dst];
        let b = self.simd_read(i, 1)?;
        self.cpu.fpu.xmm[dst] = lane_op(i.mnemonic(), a, b).ok_or_else(Fault::ud)?;
        Ok(())
    }
}

/// `op(a, b)` for a mnemonic [`handles`] lists: the 128-bit result (MMX uses its low half);
/// `None` for any other mnemonic.
pub fn lane_op(m: M, a: u128, b: u128) -> Option<u128> {
    Some({
        match m {
            M::Pand | M::Andps | M::Andpd => a & b,
            M::Pandn | M::Andnps | M::Andnpd => !a & b,
            M::Por | M::Orps | M::Orpd => a | b,
            M::Pxor | M::Xorps | M::Xorpd => a ^ b,
            M::Paddb => wrapping(B, a, b, u64::wrapping_add),
            M::Paddw => wrapping(W, a, b, u64::wrapping_add),
            M::Paddd => wrapping(D, a, b, u64::wrapping_add),
            M::Paddq => wrapping(Q, a, b, u64::wrapping_add),
            M::Psubb => wrapping(B, a, b, u64::wrapping_sub),
            M::Psubw => wrapping(W, a, b, u64::wrapping_sub),
            M::Psubd => wrapping(D, a, b, u64::wrapping_sub),
            M::Psubq => wrapping(Q, a, b, u64::wrapping_sub),
            M::Paddsb => saturating(B, a, b, true, false),
            M::Paddsw => saturating(W, a, b, true, false),
            M::Paddusb => saturating(B, a, b, false, false),
            M::Paddusw => saturating(W, a, b, false, false),
            M::Psubsb => saturating(B, a, b, true, true),
            M::Psubsw => saturating(W, a, b, true, true),
            M::Psubusb => saturating(B, a, b, false, true),
            M::Psubusw => saturating(W, a, b, false, true),
            M::Pmullw => wrapping(W, a, b, |x, y| x.wrapping_mul(y)),
            M::Pmulhw => wrapping(W, a, b, |x, y| ((sx(x, 16) * sx(y, 16)) >> 16) as u64),
            M::Pmulhuw => wrapping(W, a, b, |x, y| (x * y) >> 16),
            M::Pmuludq => wrapping(Q, a, b, |x, y| (x & 0xffff_ffff) * (y & 0xffff_ffff)),
            M::Pmaddwd => pmaddwd(a, b),
            M::Pavgb => wrapping(B, a, b, |x, y| (x + y + 1) >> 1),
            M::Pavgw => wrapping(W, a, b, |x, y| (x + y + 1) >> 1),
            M::Pminub => wrapping(B, a, b, u64::min),
            M::Pmaxub => wrapping(B, a, b, u64::max),
            M::Pminsw => wrapping(W, a, b, |x, y| if sx(x, 16) <= sx(y, 16) { x } else { y }),
            M::Pmaxsw => wrapping(W, a, b, |x, y| if sx(x, 16) >= sx(y, 16) { x } else { y }),
            M::Psadbw => psadbw(a, b),
            M::Pcmpeqb => compare(B, a, b, false),
            M::Pcmpeqw => compare(W, a, b, false),
            M::Pcmpeqd => compare(D, a, b, false),
            M::Pcmpgtb => compare(B, a, b, true),
            M::Pcmpgtw => compare(W, a, b, true),
            M::Pcmpgtd => compare(D, a, b, true),
            M::Psllw => shift(W.0, a, xmm_count(b), ShiftKind::Left),
            M::Pslld => shift(D.0, a, xmm_count(b), ShiftKind::Left),
            M::Psllq => shift(Q.0, a, xmm_count(b), ShiftKind::Left),
            M::Psrlw => shift(W.0, a, xmm_count(b), ShiftKind::Right),
            M::Psrld => shift(D.0, a, xmm_count(b), ShiftKind::Right),
            M::Psrlq => shift(Q.0, a, xmm_count(b), ShiftKind::Right),
            M::Psraw => shift(W.0, a, xmm_count(b), ShiftKind::Arith),
            M::Psrad => shift(D.0, a, xmm_count(b), ShiftKind::Arith),
            // Byte shifts of the whole register (immediate only).
            M::Pslldq => match b as u32 {
                c @ 0..=15 => a << (8 * c),
                _ => 0,
            },
            M::Psrldq => match b as u32 {
                c @ 0..=15 => a >> (8 * c),
                _ => 0,
            },
            M::Packsswb => pack(8, a, b, false),
            M::Packssdw => pack(4, a, b, false),
            M::Packuswb => pack(8, a, b, true),
            M::Punpcklbw => unpack(16, a, b, false),
            M::Punpcklwd => unpack(8, a, b, false),
            M::Punpckldq | M::Unpcklps => unpack(4, a, b, false),
            M::Punpcklqdq | M::Unpcklpd => unpack(2, a, b, false),
            M::Punpckhbw => unpack(16, a, b, true),
            M::Punpckhwd => unpack(8, a, b, true),
            M::Punpckhdq | M::Unpckhps => unpack(4, a, b, true),
            M::Punpckhqdq | M::Unpckhpd => unpack(2, a, b, true),
            _ => return None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_and_compare() {
        let a = join::<8>([0x7fff, 0x8000, 5, 0, 0, 0, 0, 0]);
        let b = join::<8>([1, 0xffff, 10, 0, 0, 0, 0, 0]);
        let s = lanes::lanes::<8>(saturating(W, a, b, true, false));
        assert_eq!(s[..3], [0x7fff, 0x8000, 15]);
        let u = lanes::lanes::<8>(saturating(W, a, b, false, true));
        assert_eq!(u[..3], [0x7ffe, 0, 0]);
        let g = lanes::lanes::<8>(compare(W, a, b, true));
        assert_eq!(g[..3], [0xffff, 0, 0]);
    }

    #[test]
    fn multiply_add_and_sad() {
        let a = join::<8>([0x8000, 0x8000, 2, 3, 0, 0, 0, 0]);
        let r = lanes::lanes::<4>(pmaddwd(a, a));
        assert_eq!(r[..2], [0x8000_0000, 13]);
        let x = join::<16>([1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        let y = join::<16>([8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(lanes::lanes::<2>(psadbw(x, y)), [32, 0x1fe]);
    }
}
