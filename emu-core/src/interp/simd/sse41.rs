//! SSE4.1's integer and data-movement instructions: blends, PACKUSDW, PCMPEQQ, the signed and
//! unsigned minimum/maximum additions, PMULDQ/PMULLD, PHMINPOSUW, MPSADBW, PTEST, PMOVSX/ZX,
//! PEXTRB/W/D/Q, PINSRB/D/Q, EXTRACTPS, INSERTPS and MOVNTDQA. The float ones (ROUNDxx,
//! DPPS/DPPD) live in `sse41_float`.

use super::lanes::merge;
use iced_x86::{Instruction, Mnemonic as M, OpKind};

use super::lanes::{join, lanes, pack, sx};
use crate::interp::cpu::flags;
use crate::interp::fault::{Fault, Result};
use crate::interp::Interp;

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::Pblendw
            | M::Blendps
            | M::Blendpd
            | M::Blendvps
            | M::Blendvpd
            | M::Pblendvb
            | M::Packusdw
            | M::Pcmpeqq
            | M::Pmaxsb
            | M::Pmaxsd
            | M::Pmaxuw
            | M::Pmaxud
            | M::Pminsb
            | M::Pminsd
            | M::Pminuw
            | M::Pminud
            | M::Pmuldq
            | M::Pmulld
            | M::Phminposuw
            | M::Mpsadbw
            | M::Ptest
            | M::Pmovsxbw
            | M::Pmovsxbd
            | M::Pmovsxbq
            | M::Pmovsxwd
            | M::Pmovsxwq
            | M::Pmovsxdq
            | M::Pmovzxbw
            | M::Pmovzxbd
            | M::Pmovzxbq
            | M::Pmovzxwd
            | M::Pmovzxwq
            | M::Pmovzxdq
            | M::Pextrb
            | M::Pextrd
            | M::Pextrq
            | M::Pinsrb
            | M::Pinsrd
            | M::Pinsrq
            | M::Extractps
            | M::Insertps
            | M::Movntdqa
    )
}

/// Lanes of `bits` (8, 16, 32, 64) of all of `v` (SSSE3's lane helpers, whole register).
fn split(v: u128, bits: u32) -> Vec<u64> {
    super::lanes::split(v, 128 / bits as usize, bits)
}

fn lanewise(a: u128, b: u128, bits: u32, f: impl Fn(u64, u64) -> u64) -> u128 {
    let (la, lb) = (split(a, bits), split(b, bits));
    let out: Vec<u64> = la.iter().zip(&lb).map(|(x, y)| f(*x, *y)).collect();
    merge(&out, bits)
}

/// `b`'s lanes where `take(k)`, else `a`'s.
fn blend(a: u128, b: u128, bits: u32, take: impl Fn(usize) -> bool) -> u128 {
    let (la, lb) = (split(a, bits), split(b, bits));
    let out: Vec<u64> = (0..la.len())
        .map(|k| if take(k) { lb[k] } else { la[k] })
        .collect();
    merge(&out, bits)
}

/// PMOVSX/PMOVZX: the low lanes of `src` (of `from` bits) widened to `to` bits.
fn widen(src: u128, from: u32, to: u32, signed: bool) -> u128 {
    let n = 128 / to as usize;
    let l = split(src, from);
    let out: Vec<u64> = (0..n)
        .map(|k| if signed { sx(l[k], from) as u64 } else { l[k] })
        .collect();
    merge(&out, to)
}

/// MPSADBW: eight sums of absolute differences between 4-byte windows of `a` (sliding from
/// the offset imm[2] × 4) and the 4-byte block of `b` at imm[1:0] × 4.
fn mpsadbw(a: u128, b: u128, imm: u8) -> u128 {
    let (ba, bb) = (lanes::<16>(a), lanes::<16>(b));
    let src = usize::from(imm & 3) * 4;
    let dst = usize::from((imm >> 2) & 1) * 4;
    join::<8>(std::array::from_fn(|k| {
        (0..4)
            .map(|j| ba[dst + k + j].abs_diff(bb[src + j]))
            .sum::<u64>()
    }))
}

/// PHMINPOSUW: the smallest unsigned word and its (lowest) index.
fn phminposuw(b: u128) -> u128 {
    let w = split(b, 16);
    let (idx, min) = w
        .iter()
        .enumerate()
        .min_by_key(|(k, v)| (**v, *k))
        .map(|(k, v)| (k as u128, u128::from(*v)))
        .unwrap_or((0, 0));
    min | idx << 16
}

/// The two-operand lane operations (`a` the destination, `b` the source).
pub fn lane_op(m: M, a: u128, b: u128, imm: u8, xmm0: u128) -> Option<u128> {
    let smin = |bits| {
        move |x: u64, y: u64| {
            if sx(x, bits) <= sx(y, bits) {
                x
            } else {
                y
            }
        }
    };
    let smax = |bits| {
        move |x: u64, y: u64| {
            if sx(x, bits) >= sx(y, bits) {
                x
            } else {
                y
            }
        }
    };
    let sign_of = |bits: u32| {
        let l = split(xmm0, bits);
        move |k: usize| l[k] >> (bits - 1) & 1 == 1
    };
    Some(match m {
        M::Pblendw => blend(a, b, 16, |k| imm >> k & 1 == 1),
        M::Blendps => blend(a, b, 32, |k| imm >> k & 1 == 1),
        M::Blendpd => blend(a, b, 64, |k| imm >> k & 1 == 1),
        M::Pblendvb => blend(a, b, 8, sign_of(8)),
        M::Blendvps => blend(a, b, 32, sign_of(32)),
        M::Blendvpd => blend(a, b, 64, sign_of(64)),
        M::Packusdw => pack(4, a, b, true),
        M::Pcmpeqq => lanewise(a, b, 64, |x, y| if x == y { u64::MAX } else { 0 }),
        M::Pmaxsb => lanewise(a, b, 8, smax(8)),
        M::Pmaxsd => lanewise(a, b, 32, smax(32)),
        M::Pmaxuw => lanewise(a, b, 16, u64::max),
        M::Pmaxud => lanewise(a, b, 32, u64::max),
        M::Pminsb => lanewise(a, b, 8, smin(8)),
        M::Pminsd => lanewise(a, b, 32, smin(32)),
        M::Pminuw => lanewise(a, b, 16, u64::min),
        M::Pminud => lanewise(a, b, 32, u64::min),
        M::Pmuldq => {
            let (la, lb) = (split(a, 32), split(b, 32));
            merge(
                &[
                    (sx(la[0], 32) * sx(lb[0], 32)) as u64,
                    (sx(la[2], 32) * sx(lb[2], 32)) as u64,
                ],
                64,
            )
        }
        M::Pmulld => lanewise(a, b, 32, |x, y| x.wrapping_mul(y)),
        M::Phminposuw => phminposuw(b),
        M::Mpsadbw => mpsadbw(a, b, imm),
        M::Pmovsxbw => widen(b, 8, 16, true),
        M::Pmovsxbd => widen(b, 8, 32, true),
        M::Pmovsxbq => widen(b, 8, 64, true),
        M::Pmovsxwd => widen(b, 16, 32, true),
        M::Pmovsxwq => widen(b, 16, 64, true),
        M::Pmovsxdq => widen(b, 32, 64, true),
        M::Pmovzxbw => widen(b, 8, 16, false),
        M::Pmovzxbd => widen(b, 8, 32, false),
        M::Pmovzxbq => widen(b, 8, 64, false),
        M::Pmovzxwd => widen(b, 16, 32, false),
        M::Pmovzxwq => widen(b, 16, 64, false),
        M::Pmovzxdq => widen(b, 32, 64, false),
        M::Movntdqa => b,
        _ => return None,
    })
}

impl Interp {
    pub(super) fn simd_sse41(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        let imm = (0..i.op_count())
            .find(|&k| i.op_kind(k) == OpKind::Immediate8)
            .map_or(0, |_| i.immediate8());
        match m {
            M::Pextrb | M::Pextrw | M::Pextrd | M::Pextrq | M::Extractps => {
                let v = self.cpu.fpu.xmm[self.xmm(i, 1)?];
                let bits = match m {
                    M::Pextrb => 8,
                    M::Pextrw => 16,
                    M::Pextrq => 64,
                    _ => 32,
                };
                let lane = usize::from(imm) % (128 / bits as usize);
                let x = split(v, bits)[lane];
                return self.write_op(i, 0, x);
            }
            M::Pinsrb | M::Pinsrd | M::Pinsrq => {
                let d = self.xmm(i, 0)?;
                let x = self.simd_read(i, 1)?;
                let bits = match m {
                    M::Pinsrb => 8,
                    M::Pinsrq => 64,
                    _ => 32,
                };
                let mut l = split(self.cpu.fpu.xmm[d], bits);
                let lane = usize::from(imm) % l.len();
                l[lane] = x as u64;
                self.cpu.fpu.xmm[d] = merge(&l, bits);
                return Ok(());
            }
            M::Insertps => {
                let d = self.xmm(i, 0)?;
                let src = if i.op_kind(1) == OpKind::Register {
                    let s = self.cpu.fpu.xmm[self.xmm(i, 1)?];
                    split(s, 32)[usize::from(imm >> 6)]
                } else {
                    self.simd_read(i, 1)? as u64
                };
                let mut l = split(self.cpu.fpu.xmm[d], 32);
                l[usize::from((imm >> 4) & 3)] = src;
                for (k, x) in l.iter_mut().enumerate() {
                    if imm >> k & 1 == 1 {
                        *x = 0;
                    }
                }
                self.cpu.fpu.xmm[d] = merge(&l, 32);
                return Ok(());
            }
            M::Ptest => {
                let a = self.cpu.fpu.xmm[self.xmm(i, 0)?];
                let b = self.simd_read(i, 1)?;
                let c = &mut self.cpu;
                c.rflags &=
                    !(flags::OF | flags::SF | flags::AF | flags::ZF | flags::PF | flags::CF);
                c.set_flag(flags::ZF, a & b == 0);
                c.set_flag(flags::CF, !a & b == 0);
                return Ok(());
            }
            _ => {}
        }
        let d = self.xmm(i, 0)?;
        let a = self.cpu.fpu.xmm[d];
        let b = self.simd_read(i, 1)?;
        let xmm0 = self.cpu.fpu.xmm[0];
        self.cpu.fpu.xmm[d] = lane_op(m, a, b, imm, xmm0).ok_or_else(Fault::ud)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blends_widens_and_sad() {
        let a = merge(&[1, 2, 3, 4, 5, 6, 7, 8], 16);
        let b = merge(&[10, 20, 30, 40, 50, 60, 70, 80], 16);
        assert_eq!(
            split(lane_op(M::Pblendw, a, b, 0b1010_0101, 0).unwrap(), 16),
            [10, 2, 30, 4, 5, 60, 7, 80]
        );
        let mask = merge(&[0, 1 << 31, 0, 1 << 31], 32);
        assert_eq!(
            split(lane_op(M::Blendvps, a, b, 0, mask).unwrap(), 32),
            split(
                merge(
                    &[1 | 2 << 16, 30 | 40 << 16, 5 | 6 << 16, 70 | 80 << 16],
                    32
                ),
                32
            )
        );
        assert_eq!(
            split(lane_op(M::Pmovsxbw, 0, 0x80_7f, 0, 0).unwrap(), 16)[..2],
            [0x7f, 0xff80]
        );
        assert_eq!(
            phminposuw(merge(&[5, 3, 9, 3, 7, 8, 9, 10], 16)),
            3 | 1 << 16
        );
        let x = merge(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], 8);
        let y = merge(&[1, 1, 1, 1], 8);
        assert_eq!(split(mpsadbw(x, y, 0), 16)[..2], [6, 10]);
    }
}
