//! MMX: the 64-bit packed-integer instructions on MM0–MM7, which live in the x87 register
//! file (MMi is the significand of physical register Ri), with SSE's and SSE2's additions
//! on MMX registers and the conversions between MMX and XMM registers.
//!
//! Every MMX instruction but EMMS sets TOP to 0 and tags all registers valid; writing MMi
//! sets Ri's sign and exponent to all ones. The 64-bit operations reuse the 128-bit lane
//! code on a value whose upper half is zero (packs and high unpacks arrange their inputs so
//! the lanes they need line up).

use iced_x86::{Instruction, Mnemonic as M, OpKind, Register};

use super::lanes::{join, lanes, pack, shift, unpack, ShiftKind};
use super::softfp::{self, f32_of, f64_of, Env};
use super::xmm_index;
use crate::interp::fault::{Fault, Result};
use crate::interp::Interp;

pub fn mm_index(r: Register) -> Option<usize> {
    r.is_mm().then(|| r as usize - Register::MM0 as usize)
}

/// Whether `i` (already known to have an MMX operand) is implemented here.
pub fn handles(m: M) -> bool {
    super::integer::handles(m) && !is_xmm_only(m)
        || super::ssse3::handles(m)
        || matches!(
            m,
            M::Movd
                | M::Movq
                | M::Movntq
                | M::Pshufw
                | M::Pextrw
                | M::Pinsrw
                | M::Pmovmskb
                | M::Movdq2q
                | M::Movq2dq
                | M::Cvtpi2ps
                | M::Cvtps2pi
                | M::Cvttps2pi
                | M::Cvtpi2pd
                | M::Cvtpd2pi
                | M::Cvttpd2pi
        )
}

/// Integer-class mnemonics with no MMX form.
fn is_xmm_only(m: M) -> bool {
    matches!(
        m,
        M::Pslldq
            | M::Psrldq
            | M::Punpcklqdq
            | M::Punpckhqdq
            | M::Andps
            | M::Andpd
            | M::Andnps
            | M::Andnpd
            | M::Orps
            | M::Orpd
            | M::Xorps
            | M::Xorpd
            | M::Unpcklps
            | M::Unpckhps
            | M::Unpcklpd
            | M::Unpckhpd
    )
}

const LOW64: u128 = u64::MAX as u128;

impl Interp {
    /// Operand `k` as a 64-bit MMX value: an MM register, the low quadword of an XMM
    /// register, a general register or memory (zero-extended).
    fn mmx_read(&mut self, i: &Instruction, k: u32) -> Result<u64> {
        if i.op_kind(k) == OpKind::Register {
            if let Some(m) = mm_index(i.op_register(k)) {
                return Ok(self.cpu.fpu.mm(m));
            }
        }
        Ok(self.simd_read(i, k)? as u64)
    }

    pub(super) fn simd_mmx(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        let reg0 = (i.op_kind(0) == OpKind::Register).then(|| i.op_register(0));
        let dst_mm = reg0.and_then(mm_index);
        match m {
            M::Cvtpi2ps | M::Cvtpi2pd => return self.mmx_to_float(i),
            M::Cvtps2pi | M::Cvttps2pi | M::Cvtpd2pi | M::Cvttpd2pi => return self.float_to_mmx(i),
            M::Movq2dq => {
                let v = self.mmx_read(i, 1)?;
                self.cpu.fpu.mmx_transition();
                let d = self.xmm(i, 0)?;
                self.cpu.fpu.xmm[d] = u128::from(v);
                return Ok(());
            }
            _ => {}
        }
        let Some(d) = dst_mm else {
            // A store or a general-register destination: MOVD/MOVQ/MOVNTQ/PEXTRW/PMOVMSKB.
            let src = self.mmx_read(i, 1)?;
            let v = match m {
                M::Pextrw => (src >> (16 * (i.immediate8() & 3))) & 0xffff,
                M::Pmovmskb => (0..8).fold(0, |acc, k| acc | ((src >> (8 * k + 7)) & 1) << k),
                _ => src,
            };
            self.write_op(i, 0, v)?;
            self.cpu.fpu.mmx_transition();
            return Ok(());
        };
        let a = self.cpu.fpu.mm(d);
        let b = self.mmx_read(i, 1)?;
        let (a128, b128) = (u128::from(a), u128::from(b));
        let r: u64 = match m {
            M::Movd => b & 0xffff_ffff,
            M::Movq | M::Movdq2q => b,
            M::Pshufw => {
                let imm = u64::from(i.immediate8());
                (0..4).fold(0, |acc, k| {
                    let sel = (imm >> (2 * k)) & 3;
                    acc | ((b >> (16 * sel)) & 0xffff) << (16 * k)
                })
            }
            M::Pinsrw => {
                let k = u64::from(i.immediate8() & 3);
                (a & !(0xffff << (16 * k))) | ((b & 0xffff) << (16 * k))
            }
            M::Packsswb => pack(8, a128 | b128 << 64, 0, false) as u64,
            M::Packssdw => pack(4, a128 | b128 << 64, 0, false) as u64,
            M::Packuswb => pack(8, a128 | b128 << 64, 0, true) as u64,
            M::Punpcklbw => unpack(16, a128, b128, false) as u64,
            M::Punpcklwd => unpack(8, a128, b128, false) as u64,
            M::Punpckldq => unpack(4, a128, b128, false) as u64,
            M::Punpckhbw => (unpack(16, a128, b128, false) >> 64) as u64,
            M::Punpckhwd => (unpack(8, a128, b128, false) >> 64) as u64,
            M::Punpckhdq => (unpack(4, a128, b128, false) >> 64) as u64,
            M::Psllw
            | M::Pslld
            | M::Psllq
            | M::Psrlw
            | M::Psrld
            | M::Psrlq
            | M::Psraw
            | M::Psrad => {
                let (n, kind) = match m {
                    M::Psllw => (8, ShiftKind::Left),
                    M::Pslld => (4, ShiftKind::Left),
                    M::Psllq => (2, ShiftKind::Left),
                    M::Psrlw => (8, ShiftKind::Right),
                    M::Psrld => (4, ShiftKind::Right),
                    M::Psrlq => (2, ShiftKind::Right),
                    M::Psraw => (8, ShiftKind::Arith),
                    _ => (4, ShiftKind::Arith),
                };
                (shift(n, a128, b, kind) & LOW64) as u64
            }
            _ if super::ssse3::handles(m) => {
                let imm = if i.op_count() > 2 { i.immediate8() } else { 0 };
                match super::ssse3::op(m, a128, b128, imm, 8) {
                    Some(r) => (r & LOW64) as u64,
                    None => return Err(Fault::ud().into()),
                }
            }
            // The lane-wise operations: the XMM implementation on the low half.
            _ => match super::integer::lane_op(m, a128, b128) {
                Some(r) => (r & LOW64) as u64,
                None => return Err(Fault::ud().into()),
            },
        };
        self.cpu.fpu.mmx_transition();
        self.cpu.fpu.set_mm(d, r);
        Ok(())
    }

    /// CVTPI2PS/CVTPI2PD: two 32-bit integers from an MMX register or memory to floats.
    fn mmx_to_float(&mut self, i: &Instruction) -> Result<()> {
        let src_mm = i.op_kind(1) == OpKind::Register;
        let v = self.mmx_read(i, 1)?;
        let d = self.xmm(i, 0)?;
        let old = self.cpu.fpu.xmm[d];
        let mut env = Env::new(self.cpu.fpu.mxcsr);
        let ints = [v as u32 as i32, (v >> 32) as u32 as i32];
        let r = if i.mnemonic() == M::Cvtpi2ps {
            let l: [u64; 2] = std::array::from_fn(|k| {
                let x: rustc_apfloat::ieee::Single = softfp::from_int(&mut env, i64::from(ints[k]));
                x.to_bits_u64()
            });
            (old & !LOW64) | u128::from(l[0] | l[1] << 32)
        } else {
            let l: [u64; 2] = std::array::from_fn(|k| {
                let x: rustc_apfloat::ieee::Double = softfp::from_int(&mut env, i64::from(ints[k]));
                x.to_bits_u64()
            });
            join::<2>(l)
        };
        self.finish_fp(&env)?;
        if src_mm {
            self.cpu.fpu.mmx_transition();
        }
        self.cpu.fpu.xmm[d] = r;
        Ok(())
    }

    /// CVT(T)PS2PI/CVT(T)PD2PI: two floats to 32-bit integers in an MMX register.
    fn float_to_mmx(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        let d = mm_index(i.op_register(0)).ok_or_else(Fault::ud)?;
        let src = match i.op_kind(1) {
            OpKind::Register => {
                self.cpu.fpu.xmm[xmm_index(i.op_register(1)).ok_or_else(Fault::ud)?]
            }
            _ => self.simd_read(i, 1)?,
        };
        let mut env = Env::new(self.cpu.fpu.mxcsr);
        let truncate = matches!(m, M::Cvttps2pi | M::Cvttpd2pi);
        let out: [u64; 2] = if matches!(m, M::Cvtps2pi | M::Cvttps2pi) {
            let l = lanes::<4>(src);
            std::array::from_fn(|k| softfp::to_int(&mut env, f32_of(l[k]), 32, truncate))
        } else {
            let l = lanes::<2>(src);
            std::array::from_fn(|k| softfp::to_int(&mut env, f64_of(l[k]), 32, truncate))
        };
        self.finish_fp(&env)?;
        self.cpu.fpu.mmx_transition();
        self.cpu.fpu.set_mm(d, out[0] | out[1] << 32);
        Ok(())
    }
}

/// Bits of a float as a lane value.
trait ToBits64 {
    fn to_bits_u64(self) -> u64;
}

impl<F: rustc_apfloat::Float> ToBits64 for F {
    fn to_bits_u64(self) -> u64 {
        self.to_bits() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmx_packs_and_high_unpacks_line_up() {
        let a = join::<8>([0x100, 0xff80, 1, 2, 0, 0, 0, 0]);
        let b = join::<8>([3, 4, 0x7fff, 0x8000, 0, 0, 0, 0]);
        let p = pack(8, a | b << 64, 0, false) as u64;
        assert_eq!(p, u64::from_le_bytes([0x7f, 0x80, 1, 2, 3, 4, 0x7f, 0x80]));
        let (x, y) = (0x0807_0605_0403_0201u128, 0x1817_1615_1413_1211u128);
        assert_eq!(
            (unpack(16, x, y, false) >> 64) as u64,
            0x1808_1707_1606_1505
        );
    }
}
