//! SSE/SSE2 floating point on XMM registers: packed and scalar arithmetic, square root,
//! MIN/MAX, compares, COMISS/UCOMISS and the conversions, all through `softfp` so results
//! and MXCSR flags never depend on the host's FPU. An unmasked exception raises #XM (#UD
//! when CR4.OSXMMEXCPT is clear) with the flags set and the destination left unchanged.

use iced_x86::{Instruction, Mnemonic as M};
use rustc_apfloat::ieee::{Double, Single};
use rustc_apfloat::Float;

use super::lanes::{join, lanes};
use super::softfp::{self, f32_of, f64_of, Env, Op};
use super::CR4_OSXMMEXCPT;
use crate::interp::cpu::flags;
use crate::interp::fault::{Fault, Result, Stop};
use crate::interp::Interp;

/// #XM, the SIMD floating-point exception.
pub const XM: u8 = 19;

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::Addps
            | M::Addpd
            | M::Addss
            | M::Addsd
            | M::Subps
            | M::Subpd
            | M::Subss
            | M::Subsd
            | M::Mulps
            | M::Mulpd
            | M::Mulss
            | M::Mulsd
            | M::Divps
            | M::Divpd
            | M::Divss
            | M::Divsd
            | M::Sqrtps
            | M::Sqrtpd
            | M::Sqrtss
            | M::Sqrtsd
            | M::Minps
            | M::Minpd
            | M::Minss
            | M::Minsd
            | M::Maxps
            | M::Maxpd
            | M::Maxss
            | M::Maxsd
            | M::Cmpps
            | M::Cmppd
            | M::Cmpss
            | M::Cmpsd
            | M::Comiss
            | M::Comisd
            | M::Ucomiss
            | M::Ucomisd
            | M::Cvtsi2ss
            | M::Cvtsi2sd
            | M::Cvtss2si
            | M::Cvtsd2si
            | M::Cvttss2si
            | M::Cvttsd2si
            | M::Cvtss2sd
            | M::Cvtsd2ss
            | M::Cvtps2pd
            | M::Cvtpd2ps
            | M::Cvtdq2ps
            | M::Cvtps2dq
            | M::Cvttps2dq
            | M::Cvtdq2pd
            | M::Cvtpd2dq
            | M::Cvttpd2dq
            | M::Rcpps
            | M::Rcpss
            | M::Rsqrtps
            | M::Rsqrtss
            | M::Addsubps
            | M::Addsubpd
            | M::Haddps
            | M::Haddpd
            | M::Hsubps
            | M::Hsubpd
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Width {
    Single,
    Double,
}

/// The width and whether the operation is packed (every lane) or scalar (lane 0).
fn shape(m: M) -> (Width, bool) {
    use M::*;
    match m {
        Addps | Subps | Mulps | Divps | Sqrtps | Minps | Maxps | Cmpps => (Width::Single, true),
        Addpd | Subpd | Mulpd | Divpd | Sqrtpd | Minpd | Maxpd | Cmppd => (Width::Double, true),
        Rcpps | Rsqrtps | Addsubps | Haddps | Hsubps => (Width::Single, true),
        Addsubpd | Haddpd | Hsubpd => (Width::Double, true),
        Addss | Subss | Mulss | Divss | Sqrtss | Minss | Maxss | Cmpss | Comiss | Ucomiss
        | Rcpss | Rsqrtss => (Width::Single, false),
        _ => (Width::Double, false),
    }
}

/// `f` on each lane (or lane 0) of `a` and `b`; other lanes of a scalar result are `a`'s.
fn per_lane(w: Width, packed: bool, a: u128, b: u128, mut f: impl FnMut(u64, u64) -> u64) -> u128 {
    match w {
        Width::Single => {
            let (la, lb) = (lanes::<4>(a), lanes::<4>(b));
            let n = if packed { 4 } else { 1 };
            join::<4>(std::array::from_fn(|k| {
                if k < n {
                    f(la[k], lb[k])
                } else {
                    la[k]
                }
            }))
        }
        Width::Double => {
            let (la, lb) = (lanes::<2>(a), lanes::<2>(b));
            let n = if packed { 2 } else { 1 };
            join::<2>(std::array::from_fn(|k| {
                if k < n {
                    f(la[k], lb[k])
                } else {
                    la[k]
                }
            }))
        }
    }
}

fn s(x: Single) -> u64 {
    x.to_bits() as u64
}

fn d(x: Double) -> u64 {
    x.to_bits() as u64
}

impl Interp {
    fn xm_fault(&self) -> Stop {
        if self.cpu.cr4 & CR4_OSXMMEXCPT != 0 {
            Fault::new(XM).into()
        } else {
            Fault::ud().into()
        }
    }

    /// Commits an instruction's MXCSR flags, or faults if one of them is unmasked.
    pub(super) fn finish_fp(&mut self, env: &Env) -> Result<()> {
        self.cpu.fpu.mxcsr |= env.flags;
        if env.unmasked() != 0 {
            return Err(self.xm_fault());
        }
        Ok(())
    }

    pub(super) fn simd_float(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        let mut env = Env::new(self.cpu.fpu.mxcsr);
        match m {
            M::Comiss | M::Ucomiss | M::Comisd | M::Ucomisd => {
                let a = self.cpu.fpu.xmm[self.xmm(i, 0)?] as u64;
                let b = self.simd_read(i, 1)? as u64;
                let signaling = matches!(m, M::Comiss | M::Comisd);
                let (zf, pf, cf) = if matches!(m, M::Comiss | M::Ucomiss) {
                    softfp::comi(&mut env, signaling, f32_of(a), f32_of(b))
                } else {
                    softfp::comi(&mut env, signaling, f64_of(a), f64_of(b))
                };
                self.finish_fp(&env)?;
                let c = &mut self.cpu;
                c.rflags &=
                    !(flags::OF | flags::SF | flags::AF | flags::ZF | flags::PF | flags::CF);
                for (set, bit) in [(zf, flags::ZF), (pf, flags::PF), (cf, flags::CF)] {
                    if set {
                        c.rflags |= bit;
                    }
                }
                return Ok(());
            }
            M::Cvtss2si | M::Cvtsd2si | M::Cvttss2si | M::Cvttsd2si => {
                let a = self.simd_read(i, 1)? as u64;
                let width = i.op_register(0).size() * 8;
                let truncate = matches!(m, M::Cvttss2si | M::Cvttsd2si);
                let v = if matches!(m, M::Cvtss2si | M::Cvttss2si) {
                    softfp::to_int(&mut env, f32_of(a), width, truncate)
                } else {
                    softfp::to_int(&mut env, f64_of(a), width, truncate)
                };
                self.finish_fp(&env)?;
                return self.write_op(i, 0, v);
            }
            _ => {}
        }
        let dst = self.xmm(i, 0)?;
        let a = self.cpu.fpu.xmm[dst];
        let b = self.simd_read(i, 1)?;
        let (w, packed) = shape(m);
        let binary_op = match m {
            M::Addps | M::Addpd | M::Addss | M::Addsd => Some(Op::Add),
            M::Subps | M::Subpd | M::Subss | M::Subsd => Some(Op::Sub),
            M::Mulps | M::Mulpd | M::Mulss | M::Mulsd => Some(Op::Mul),
            M::Divps | M::Divpd | M::Divss | M::Divsd => Some(Op::Div),
            _ => None,
        };
        let r = match (m, binary_op) {
            (_, Some(op)) => per_lane(w, packed, a, b, |x, y| match w {
                Width::Single => s(softfp::arith(&mut env, op, f32_of(x), f32_of(y))),
                Width::Double => d(softfp::arith(&mut env, op, f64_of(x), f64_of(y))),
            }),
            (M::Sqrtps | M::Sqrtpd | M::Sqrtss | M::Sqrtsd, None) => {
                per_lane(w, packed, a, b, |_, y| match w {
                    Width::Single => s(softfp::sqrt(&mut env, f32_of(y))),
                    Width::Double => d(softfp::sqrt(&mut env, f64_of(y))),
                })
            }
            (M::Rcpps | M::Rcpss | M::Rsqrtps | M::Rsqrtss, None) => {
                let recip = matches!(m, M::Rcpps | M::Rcpss);
                per_lane(w, packed, a, b, |_, y| {
                    s(if recip {
                        softfp::rcp(f32_of(y))
                    } else {
                        softfp::rsqrt(f32_of(y))
                    })
                })
            }
            (M::Addsubps | M::Addsubpd, None) => {
                // Even lanes subtract, odd lanes add.
                let mut k = 0;
                per_lane(w, true, a, b, |x, y| {
                    let op = if k % 2 == 0 { Op::Sub } else { Op::Add };
                    k += 1;
                    match w {
                        Width::Single => s(softfp::arith(&mut env, op, f32_of(x), f32_of(y))),
                        Width::Double => d(softfp::arith(&mut env, op, f64_of(x), f64_of(y))),
                    }
                })
            }
            (M::Haddps | M::Hsubps | M::Haddpd | M::Hsubpd, None) => {
                // Adjacent pairs of the destination, then of the source.
                let op = if matches!(m, M::Haddps | M::Haddpd) {
                    Op::Add
                } else {
                    Op::Sub
                };
                match w {
                    Width::Single => {
                        let (la, lb) = (lanes::<4>(a), lanes::<4>(b));
                        let pairs = [
                            (la[0], la[1]),
                            (la[2], la[3]),
                            (lb[0], lb[1]),
                            (lb[2], lb[3]),
                        ];
                        join::<4>(
                            pairs
                                .map(|(x, y)| s(softfp::arith(&mut env, op, f32_of(x), f32_of(y)))),
                        )
                    }
                    Width::Double => {
                        let (la, lb) = (lanes::<2>(a), lanes::<2>(b));
                        join::<2>(
                            [(la[0], la[1]), (lb[0], lb[1])]
                                .map(|(x, y)| d(softfp::arith(&mut env, op, f64_of(x), f64_of(y)))),
                        )
                    }
                }
            }
            (
                M::Minps
                | M::Minpd
                | M::Minss
                | M::Minsd
                | M::Maxps
                | M::Maxpd
                | M::Maxss
                | M::Maxsd,
                None,
            ) => {
                let max = matches!(m, M::Maxps | M::Maxpd | M::Maxss | M::Maxsd);
                per_lane(w, packed, a, b, |x, y| match w {
                    Width::Single => s(softfp::min_max(&mut env, max, f32_of(x), f32_of(y))),
                    Width::Double => d(softfp::min_max(&mut env, max, f64_of(x), f64_of(y))),
                })
            }
            (M::Cmpps | M::Cmppd | M::Cmpss | M::Cmpsd, None) => {
                let pred = i.immediate8();
                per_lane(w, packed, a, b, |x, y| {
                    let t = match w {
                        Width::Single => softfp::compare(&mut env, pred, f32_of(x), f32_of(y)),
                        Width::Double => softfp::compare(&mut env, pred, f64_of(x), f64_of(y)),
                    };
                    match (t, w) {
                        (false, _) => 0,
                        (true, Width::Single) => 0xffff_ffff,
                        (true, Width::Double) => u64::MAX,
                    }
                })
            }
            (M::Cvtsi2ss | M::Cvtsi2sd, None) => {
                let v = match i.memory_size().size() {
                    0 if i.op_register(1).size() == 8 => b as u64 as i64,
                    8 => b as u64 as i64,
                    _ => b as u32 as i32 as i64,
                };
                if m == M::Cvtsi2ss {
                    let x: Single = softfp::from_int(&mut env, v);
                    (a & !0xffff_ffff) | u128::from(s(x))
                } else {
                    let x: Double = softfp::from_int(&mut env, v);
                    (a & !(u64::MAX as u128)) | u128::from(d(x))
                }
            }
            (M::Cvtss2sd, None) => {
                let x: Double = softfp::convert(&mut env, f32_of(b as u64));
                (a & !(u64::MAX as u128)) | u128::from(d(x))
            }
            (M::Cvtsd2ss, None) => {
                let x: Single = softfp::convert(&mut env, f64_of(b as u64));
                (a & !0xffff_ffff) | u128::from(s(x))
            }
            (M::Cvtps2pd, None) => {
                let l = lanes::<4>(b);
                join::<2>(std::array::from_fn(|k| {
                    d(softfp::convert::<Single, Double>(&mut env, f32_of(l[k])))
                }))
            }
            (M::Cvtpd2ps, None) => {
                let l = lanes::<2>(b);
                let lo: [u64; 2] = std::array::from_fn(|k| {
                    s(softfp::convert::<Double, Single>(&mut env, f64_of(l[k])))
                });
                join::<4>([lo[0], lo[1], 0, 0])
            }
            (M::Cvtdq2ps, None) => {
                let l = lanes::<4>(b);
                join::<4>(std::array::from_fn(|k| {
                    s(softfp::from_int(&mut env, i64::from(l[k] as u32 as i32)))
                }))
            }
            (M::Cvtdq2pd, None) => {
                let l = lanes::<4>(b);
                join::<2>(std::array::from_fn(|k| {
                    d(softfp::from_int(&mut env, i64::from(l[k] as u32 as i32)))
                }))
            }
            (M::Cvtps2dq | M::Cvttps2dq, None) => {
                let truncate = m == M::Cvttps2dq;
                let l = lanes::<4>(b);
                join::<4>(std::array::from_fn(|k| {
                    softfp::to_int(&mut env, f32_of(l[k]), 32, truncate)
                }))
            }
            (M::Cvtpd2dq | M::Cvttpd2dq, None) => {
                let truncate = m == M::Cvttpd2dq;
                let l = lanes::<2>(b);
                let lo: [u64; 2] =
                    std::array::from_fn(|k| softfp::to_int(&mut env, f64_of(l[k]), 32, truncate));
                join::<4>([lo[0], lo[1], 0, 0])
            }
            // `handles` and this match list the same mnemonics; should they ever disagree, the
            // guest gets #UD rather than the host a panic.
            _ => return Err(crate::interp::fault::Fault::ud().into()),
        };
        self.finish_fp(&env)?;
        self.cpu.fpu.xmm[dst] = r;
        Ok(())
    }
}
