//! SSE4.1's floating-point instructions: ROUNDPS/PD/SS/SD and the dot products DPPS/DPPD,
//! on the same software float as the rest of SSE.

use iced_x86::{Instruction, Mnemonic as M, OpKind};
use rustc_apfloat::{Float, Round, Status};

use super::softfp::{self, f32_of, f64_of, mx, zero_like, Env, Fmt, Op};
use crate::interp::fault::Result;
use crate::interp::Interp;

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::Roundps | M::Roundpd | M::Roundss | M::Roundsd | M::Dpps | M::Dppd
    )
}

/// ROUNDxx of one lane: to an integral value with imm[1:0]'s rounding (or MXCSR's when
/// imm[2] is set), precision flagged unless imm[3]; an SNaN is invalid and comes back quiet;
/// with DAZ a denormal is rounded as the zero it is read as (no DE: ROUND raises none).
fn round_lane<F: Fmt>(env: &mut Env, x: F, imm: u8) -> F {
    if x.is_nan() {
        if x.is_signaling() {
            env.flags |= mx::IE;
        }
        return softfp::quiet(x);
    }
    let x = if x.is_denormal() && env.mxcsr & mx::DAZ != 0 {
        zero_like(x)
    } else {
        x
    };
    let rc = if imm & 4 != 0 {
        env.round()
    } else {
        match imm & 3 {
            0 => Round::NearestTiesToEven,
            1 => Round::TowardNegative,
            2 => Round::TowardPositive,
            _ => Round::TowardZero,
        }
    };
    let r = x.round_to_integral(rc);
    if r.status.contains(Status::INEXACT) && imm & 8 == 0 {
        env.flags |= mx::PE;
    }
    r.value
}

/// DPPS/DPPD on lanes of `F`: the products imm[4..] selects (others +0), summed pairwise,
/// broadcast to the lanes imm[0..] selects (others +0).
fn dot<F: Fmt>(env: &mut Env, a: &[F], b: &[F], imm: u8) -> Vec<F> {
    let n = a.len();
    let products: Vec<F> = (0..n)
        .map(|k| {
            if imm >> (4 + k) & 1 == 1 {
                softfp::arith(env, Op::Mul, a[k], b[k])
            } else {
                F::ZERO
            }
        })
        .collect();
    let sum = if n == 4 {
        let lo = softfp::arith(env, Op::Add, products[0], products[1]);
        let hi = softfp::arith(env, Op::Add, products[2], products[3]);
        softfp::arith(env, Op::Add, lo, hi)
    } else {
        softfp::arith(env, Op::Add, products[0], products[1])
    };
    (0..n)
        .map(|k| if imm >> k & 1 == 1 { sum } else { F::ZERO })
        .collect()
}

impl Interp {
    pub(super) fn simd_sse41_float(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        let imm = (0..i.op_count())
            .find(|&k| i.op_kind(k) == OpKind::Immediate8)
            .map_or(0, |_| i.immediate8());
        let d = self.xmm(i, 0)?;
        let a = self.cpu.fpu.xmm[d];
        let b = self.simd_read(i, 1)?;
        let mut env = Env::new(self.cpu.fpu.mxcsr);
        let singles = |v: u128| -> Vec<rustc_apfloat::ieee::Single> {
            (0..4).map(|k| f32_of((v >> (32 * k)) as u64)).collect()
        };
        let doubles = |v: u128| -> Vec<rustc_apfloat::ieee::Double> {
            (0..2).map(|k| f64_of((v >> (64 * k)) as u64)).collect()
        };
        let join32 = |l: &[rustc_apfloat::ieee::Single]| {
            l.iter()
                .enumerate()
                .fold(0u128, |v, (k, x)| v | x.to_bits() << (32 * k))
        };
        let join64 = |l: &[rustc_apfloat::ieee::Double]| {
            l.iter()
                .enumerate()
                .fold(0u128, |v, (k, x)| v | x.to_bits() << (64 * k))
        };
        let r = match m {
            M::Roundps => {
                let l: Vec<_> = singles(b)
                    .into_iter()
                    .map(|x| round_lane(&mut env, x, imm))
                    .collect();
                join32(&l)
            }
            M::Roundpd => {
                let l: Vec<_> = doubles(b)
                    .into_iter()
                    .map(|x| round_lane(&mut env, x, imm))
                    .collect();
                join64(&l)
            }
            M::Roundss => {
                let x = round_lane(&mut env, f32_of(b as u64), imm);
                (a & !0xffff_ffff) | x.to_bits()
            }
            M::Roundsd => {
                let x = round_lane(&mut env, f64_of(b as u64), imm);
                (a & !u128::from(u64::MAX)) | x.to_bits()
            }
            M::Dpps => join32(&dot(&mut env, &singles(a), &singles(b), imm)),
            _ => join64(&dot(&mut env, &doubles(a), &doubles(b), imm)),
        };
        self.finish_fp(&env)?;
        self.cpu.fpu.xmm[d] = r;
        Ok(())
    }
}
