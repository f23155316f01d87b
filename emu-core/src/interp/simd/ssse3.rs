//! SSSE3: byte shuffles, horizontal additions and subtractions, signed/absolute operations,
//! PMADDUBSW, PMULHRSW and PALIGNR, on XMM registers and (in their MMX forms) on MM registers.
//! One implementation serves both widths: `bytes` is 16 or 8, and an MMX value is the low
//! half of a u128 whose high half is zero.

use iced_x86::{Instruction, Mnemonic as M};

use super::lanes::{lanes, merge, sat_s, split, sx};
use crate::interp::fault::{Fault, Result};
use crate::interp::Interp;

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::Pshufb
            | M::Phaddw
            | M::Phaddd
            | M::Phaddsw
            | M::Phsubw
            | M::Phsubd
            | M::Phsubsw
            | M::Pmaddubsw
            | M::Pmulhrsw
            | M::Psignb
            | M::Psignw
            | M::Psignd
            | M::Pabsb
            | M::Pabsw
            | M::Pabsd
            | M::Palignr
    )
}

/// The horizontal operations: adjacent pairs of `a`, then of `b`.
fn horizontal(a: u128, b: u128, bytes: usize, bits: u32, f: impl Fn(i64, i64) -> i64) -> u128 {
    let n = bytes * 8 / bits as usize;
    let pairs = |v: u128| -> Vec<u64> {
        let l = split(v, n, bits);
        (0..n / 2)
            .map(|k| f(sx(l[2 * k], bits), sx(l[2 * k + 1], bits)) as u64)
            .collect()
    };
    let mut out = pairs(a);
    out.extend(pairs(b));
    merge(&out, bits)
}

/// `op(a, b)` (a: the destination, b: the source) for `bytes`-wide registers; PALIGNR's
/// immediate in `imm`. `None` for a mnemonic [`handles`] does not list.
pub fn op(m: M, a: u128, b: u128, imm: u8, bytes: usize) -> Option<u128> {
    let lanes_of = |bits: u32| bytes * 8 / bits as usize;
    let lanewise = |bits: u32, f: &dyn Fn(u64, u64) -> u64| {
        let n = lanes_of(bits);
        let (la, lb) = (split(a, n, bits), split(b, n, bits));
        let out: Vec<u64> = (0..n).map(|k| f(la[k], lb[k])).collect();
        merge(&out, bits)
    };
    let sign = |bits: u32| {
        lanewise(bits, &|x, y| match sx(y, bits) {
            0 => 0,
            s if s < 0 => x.wrapping_neg(),
            _ => x,
        })
    };
    let abs = |bits: u32| lanewise(bits, &|_, y| sx(y, bits).unsigned_abs());
    Some(match m {
        M::Pshufb => {
            let (la, lb) = (split(a, bytes, 8), split(b, bytes, 8));
            let out: Vec<u64> = lb
                .iter()
                .map(|&s| {
                    if s & 0x80 != 0 {
                        0
                    } else {
                        la[s as usize & (bytes - 1)]
                    }
                })
                .collect();
            merge(&out, 8)
        }
        M::Phaddw => horizontal(a, b, bytes, 16, |x, y| x + y),
        M::Phaddd => horizontal(a, b, bytes, 32, |x, y| x + y),
        M::Phaddsw => horizontal(a, b, bytes, 16, |x, y| sat_s(x + y, 16) as i64),
        M::Phsubw => horizontal(a, b, bytes, 16, |x, y| x - y),
        M::Phsubd => horizontal(a, b, bytes, 32, |x, y| x - y),
        M::Phsubsw => horizontal(a, b, bytes, 16, |x, y| sat_s(x - y, 16) as i64),
        M::Pmaddubsw => {
            // Unsigned bytes of the destination times signed bytes of the source, adjacent
            // products summed with signed saturation.
            let (ba, bb) = (lanes::<16>(a), lanes::<16>(b));
            let out: Vec<u64> = (0..bytes / 2)
                .map(|k| {
                    let p = |j: usize| ba[j] as i64 * sx(bb[j], 8);
                    sat_s(p(2 * k) + p(2 * k + 1), 16)
                })
                .collect();
            merge(&out, 16)
        }
        M::Pmulhrsw => lanewise(16, &|x, y| {
            ((((sx(x, 16) * sx(y, 16)) >> 14) + 1) >> 1) as u64
        }),
        M::Psignb => sign(8),
        M::Psignw => sign(16),
        M::Psignd => sign(32),
        M::Pabsb => abs(8),
        M::Pabsw => abs(16),
        M::Pabsd => abs(32),
        M::Palignr => {
            // The destination above the source, shifted right by imm bytes.
            let shift = usize::from(imm) * 8;
            let width = bytes * 8;
            let (lo, hi) = if bytes == 16 {
                (b, a)
            } else {
                (b | a << 64, 0)
            };
            let r = if shift >= 2 * width {
                0
            } else if bytes == 16 {
                if shift >= 128 {
                    hi >> (shift - 128)
                } else if shift == 0 {
                    lo
                } else {
                    lo >> shift | hi << (128 - shift)
                }
            } else {
                lo >> shift
            };
            if bytes == 16 {
                r
            } else {
                r & u128::from(u64::MAX)
            }
        }
        _ => return None,
    })
}

impl Interp {
    /// An SSSE3 instruction on XMM registers.
    pub(super) fn simd_ssse3(&mut self, i: &Instruction) -> Result<()> {
        let dst = self.xmm(i, 0)?;
        let a = self.cpu.fpu.xmm[dst];
        let b = self.simd_read(i, 1)?;
        let imm = if i.op_count() > 2 { i.immediate8() } else { 0 };
        self.cpu.fpu.xmm[dst] = op(i.mnemonic(), a, b, imm, 16).ok_or_else(Fault::ud)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_and_alignment() {
        let a: u128 = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100;
        // Reverse the bytes; a set top bit zeroes.
        let rev: u128 = 0x0001_0203_0405_0607_0809_0a0b_0c0d_0e0f;
        assert_eq!(op(M::Pshufb, a, rev, 0, 16), Some(rev));
        assert_eq!(op(M::Pshufb, a, 0x80, 0, 16), Some(0));
        let b: u128 = 0x1f1e_1d1c_1b1a_1918_1716_1514_1312_1110;
        assert_eq!(
            op(M::Palignr, a, b, 4, 16),
            Some(0x0302_0100_1f1e_1d1c_1b1a_1918_1716_1514)
        );
        assert_eq!(op(M::Palignr, a, b, 16, 16), Some(a));
        assert_eq!(op(M::Palignr, a, b, 32, 16), Some(0));
        // MMX: 8-byte registers.
        assert_eq!(
            op(
                M::Palignr,
                0x0706_0504_0302_0100,
                0x1716_1514_1312_1110,
                3,
                8
            ),
            Some(0x0201_0017_1615_1413)
        );
    }

    #[test]
    fn horizontal_sign_and_multiply() {
        let a = merge(&[1, 2, 0x7fff, 1, 5, 6, 7, 8], 16);
        let b = merge(&[0xffff, 1, 0, 0, 0, 0, 0, 0], 16);
        assert_eq!(
            split(op(M::Phaddsw, a, b, 0, 16).unwrap(), 8, 16),
            [3, 0x7fff, 11, 15, 0, 0, 0, 0]
        );
        assert_eq!(
            split(op(M::Phsubw, a, b, 0, 16).unwrap(), 8, 16),
            [0xffff, 0x7ffe, 0xffff, 0xffff, 0xfffe, 0, 0, 0]
        );
        let s = merge(&[0xffff, 0, 1, 0x8000, 0, 0, 0, 0], 16);
        assert_eq!(
            split(op(M::Psignw, a, s, 0, 16).unwrap(), 8, 16),
            [0xffff, 0, 0x7fff, 0xffff, 0, 0, 0, 0]
        );
        assert_eq!(
            split(op(M::Pabsw, 0, s, 0, 16).unwrap(), 8, 16)[..4],
            [1, 0, 1, 0x8000]
        );
        // 255 × 127 + 255 × 127 saturates.
        let u = merge(&[0xff, 0xff, 2, 3], 8);
        let v = merge(&[0x7f, 0x7f, 0xff, 2], 8);
        assert_eq!(
            split(op(M::Pmaddubsw, u, v, 0, 16).unwrap(), 2, 16),
            [0x7fff, 4]
        );
        assert_eq!(
            split(
                op(
                    M::Pmulhrsw,
                    merge(&[0x4000], 16),
                    merge(&[0x4000], 16),
                    0,
                    16
                )
                .unwrap(),
                1,
                16
            ),
            [0x2000]
        );
    }
}
