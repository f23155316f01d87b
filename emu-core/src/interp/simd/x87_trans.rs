//! The x87 transcendental instructions: F2XM1, FYL2X, FYL2XP1, FPATAN, FSIN, FCOS, FSINCOS
//! and FPTAN.
//!
//! Values are computed with a 128-bit significand ([`Wide`]) and rounded once to 64 bits with
//! FCW.RC (these instructions ignore FCW.PC). The trigonometric instructions reduce their
//! argument as the parts do: by a 66-bit π (0x3243F6A8885A308D3 × 2^-64), exactly, which is
//! why FSIN of the extended value nearest π gives −2^-64 and not −5.0165e-20, on Intel and AMD
//! parts alike. Arguments of 2^63 or more are left alone with C2 set.

use iced_x86::Mnemonic as M;
use rustc_apfloat::ieee::X87DoubleExtended as Ext;
use rustc_apfloat::{Float, Round};

use super::wide::{Wide, LN2, ONE, PI};
use super::x87::{denormal, ext, sw, unsupported, INDEFINITE};
use super::x87_arith::nan_pick;
use crate::interp::fault::Result;
use crate::interp::Interp;

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::F2xm1 | M::Fyl2x | M::Fyl2xp1 | M::Fpatan | M::Fsin | M::Fcos | M::Fsincos | M::Fptan
    )
}

/// π/2 as the parts reduce by it: a 66-bit π, halved (× 2^-65).
const HALF_PI_66: u128 = 0x3_243f_6a88_85a3_08d3;

/// √2 to 128 bits (a significand: 1.414… × 2^127).
const SQRT2_SIG: u128 = 0xb504_f333_f9de_6484_597d_89b3_754a_be9f;

const PLUS_ONE: u128 = 0x3fff_8000_0000_0000_0000;
const INFINITY: u128 = 0x7fff_8000_0000_0000_0000;

/// Whether `term` no longer changes `sum` at 128 bits.
fn negligible(term: &Wide, sum: &Wide) -> bool {
    term.is_zero() || (!sum.is_zero() && term.exp < sum.exp - 130)
}

/// e^t − 1 by its Taylor series (|t| below 1).
fn expm1(t: Wide) -> Wide {
    let (mut term, mut sum) = (t, t);
    for k in 2..200u64 {
        term = term.mul(t).div(Wide::from_u64(k));
        sum = sum.add(term);
        if negligible(&term, &sum) {
            break;
        }
    }
    sum
}

/// atanh(s) = s + s³/3 + s⁵/5 + … (|s| well below 1).
fn atanh(s: Wide) -> Wide {
    let s2 = s.mul(s);
    let (mut p, mut sum) = (s, s);
    for k in 1..400u64 {
        p = p.mul(s2);
        let term = p.div(Wide::from_u64(2 * k + 1));
        sum = sum.add(term);
        if negligible(&term, &sum) {
            break;
        }
    }
    sum
}

/// atan(x) = x − x³/3 + x⁵/5 − … (|x| at most 1/2).
fn atan_series(x: Wide) -> Wide {
    let x2 = x.mul(x);
    let (mut p, mut sum) = (x, x);
    for k in 1..400u64 {
        p = p.mul(x2).neg();
        let term = p.div(Wide::from_u64(2 * k + 1));
        sum = sum.add(term);
        if negligible(&term, &sum) {
            break;
        }
    }
    sum
}

/// atan(a/b) for 0 ≤ a ≤ b, b > 0 (exact inputs).
fn atan_ratio(a: Wide, b: Wide) -> Wide {
    if a.scale(1).sub(b).neg {
        atan_series(a.div(b))
    } else {
        // atan(a/b) = π/4 + atan((a − b)/(a + b)); the quotient is within ±1/3.
        PI.scale(-2).add(atan_series(a.sub(b).div(a.add(b))))
    }
}

/// log2(x) for finite x > 0.
fn log2(x: Wide) -> Wide {
    // x = m × 2^e with m in [√½, √2).
    let mut e = x.exp;
    let mut m = Wide { exp: 0, ..x };
    if m.sig > SQRT2_SIG {
        m.exp = -1;
        e += 1;
    }
    let ln_m = atanh(m.sub(ONE).div(m.add(ONE))).scale(1);
    Wide::from_i64(i64::from(e)).add(ln_m.div(LN2))
}

/// sin(r) and cos(r), |r| at most π/4, by their Taylor series.
fn sin_cos(r: Wide) -> (Wide, Wide) {
    let r2 = r.mul(r);
    let (mut ts, mut s) = (r, r);
    let (mut tc, mut c) = (ONE, ONE);
    for n in 1..100u64 {
        ts = ts.mul(r2).div(Wide::from_u64((2 * n) * (2 * n + 1))).neg();
        tc = tc.mul(r2).div(Wide::from_u64((2 * n - 1) * (2 * n))).neg();
        let done = negligible(&ts, &s) && negligible(&tc, &c);
        s = s.add(ts);
        c = c.add(tc);
        if done {
            break;
        }
    }
    (s, c)
}

/// |x| (finite, below 2^63) reduced by the 66-bit π/2: the quadrant (mod 4) and the
/// remainder, in [−π/4, π/4].
fn reduce(v: u128) -> (u64, Wide) {
    let x = Wide::from_ext(v).abs();
    let field = ((v >> 64) & 0x7fff) as i32;
    // |x| = sig × 2^(e − 63) = N × 2^-65 with N = sig << (e + 2).
    let shift = field - 16383 + 2;
    if field == 0 || shift < 0 {
        return (0, x); // below 1/2
    }
    let n = u128::from(v as u64) << shift;
    let (mut q, rem) = (n / HALF_PI_66, n % HALF_PI_66);
    let r = if 2 * rem > HALF_PI_66 {
        q += 1;
        Wide::new(true, 62, HALF_PI_66 - rem)
    } else {
        Wide::new(false, 62, rem)
    };
    ((q & 3) as u64, r)
}

/// sin and cos of an in-range, finite, non-zero x.
fn sin_cos_of(v: u128) -> (Wide, Wide) {
    let (k, r) = reduce(v);
    let (s, c) = sin_cos(r);
    let (s, c) = match k {
        0 => (s, c),
        1 => (c, s.neg()),
        2 => (s.neg(), c.neg()),
        _ => (c.neg(), s),
    };
    if v >> 79 & 1 == 1 {
        (s.neg(), c)
    } else {
        (s, c)
    }
}

/// 2^x − 1 for finite x (in range, |x| ≤ 1; beyond that, where the result is undefined,
/// still something finite and quickly computed).
fn exp2m1(x: Wide) -> Wide {
    if x.exp < 1 {
        return expm1(x.mul(LN2));
    }
    if x.exp >= 15 {
        return if x.neg { ONE.neg() } else { ONE.scale(1 << 15) };
    }
    // x = n + f: 2^n × 2^f − 1.
    let n = (x.sig >> (127 - x.exp)) as i32;
    let f = x.abs().sub(Wide::from_i64(i64::from(n)));
    let (n, f) = if x.neg { (-n, f.neg()) } else { (n, f) };
    expm1(f.mul(LN2)).add(ONE).scale(n).sub(ONE)
}

fn is_neg(v: u128) -> bool {
    v >> 79 & 1 == 1
}

fn signed(v: u128, neg: bool) -> u128 {
    v & !(1 << 79) | u128::from(neg) << 79
}

impl Interp {
    /// Rounds a transcendental result to 64 bits with FCW.RC (PC does not apply), with
    /// PE/UE/OE and C1; an unmasked overflow or underflow delivers the result with its
    /// exponent biased by ∓24576, as for the arithmetic instructions.
    fn trans_round(&mut self, w: Wide) -> Option<u128> {
        let fcw = self.cpu.fpu.fcw;
        let biased = w.exp + 16383;
        let (w, late) = if biased >= 0x7fff && fcw & sw::OE == 0 {
            (w.scale(-24576), sw::OE)
        } else if biased < 1 && !w.is_zero() && fcw & sw::UE == 0 {
            (w.scale(24576), sw::UE)
        } else {
            (w, 0)
        };
        let overflowed = w.exp + 16383 >= 0x7fff;
        self.cpu.fpu.fcw |= 3 << 8;
        let r = self.x87_round(|rc| w.round_ext(rc), overflowed);
        self.cpu.fpu.fcw = fcw;
        if late != 0 {
            self.fpu_raise(late);
        }
        r
    }

    /// An exact (or exactly rounded by apfloat) result: sets PE and C1 as rounding says.
    fn trans_exact(&mut self, f: impl Fn(Round) -> rustc_apfloat::StatusAnd<Ext>) -> Option<u128> {
        let fcw = self.cpu.fpu.fcw;
        self.cpu.fpu.fcw |= 3 << 8;
        let r = self.x87_round(f, false);
        self.cpu.fpu.fcw = fcw;
        r
    }

    pub(super) fn x87_trans(&mut self, m: M) -> Result<()> {
        match m {
            M::F2xm1 | M::Fsin | M::Fcos => self.trans_unary(m),
            M::Fptan | M::Fsincos => self.trans_push(m),
            _ => self.trans_binary(m),
        }
        Ok(())
    }

    /// The checks every one-operand instruction makes on ST0: `Err` with what to store
    /// (`None`: nothing) when they decide the result.
    fn trans_operand(&mut self, v: u128, trig: bool) -> std::result::Result<(), Option<u128>> {
        let x = ext(v);
        if unsupported(v) || (trig && x.is_infinite()) {
            return Err(self.fpu_raise(sw::IE).then_some(INDEFINITE));
        }
        if x.is_nan() {
            if x.is_signaling() && !self.fpu_raise(sw::IE) {
                return Err(None);
            }
            return Err(Some(v | 1 << 62));
        }
        if denormal(v) && !self.fpu_raise(sw::DE) {
            return Err(None);
        }
        Ok(())
    }

    /// Whether a trigonometric argument is out of range (|x| ≥ 2^63): C2 set, ST0 kept.
    fn trig_out_of_range(&mut self, v: u128) -> bool {
        let x = ext(v);
        let out = !x.is_nan() && !x.is_infinite() && (v >> 64) & 0x7fff >= 16383 + 63;
        if out {
            self.cpu.fpu.fsw |= sw::C2;
        }
        out
    }

    /// F2XM1, FSIN, FCOS: ST0 replaced.
    fn trans_unary(&mut self, m: M) {
        let trig = m != M::F2xm1;
        if trig {
            self.cpu.fpu.fsw &= !sw::C2;
        }
        if !self.fpu_valid(0) {
            if self.underflow() {
                self.fpu_put(0, INDEFINITE);
            }
            return;
        }
        let v = self.fpu_get(0);
        if trig && self.trig_out_of_range(v) {
            return;
        }
        let r = match self.trans_operand(v, trig) {
            Err(r) => r,
            Ok(()) => {
                let x = ext(v);
                if x.is_zero() {
                    Some(if m == M::Fcos { PLUS_ONE } else { v })
                } else if x.is_infinite() {
                    // F2XM1: 2^+inf − 1 = +inf, 2^-inf − 1 = −1, both exact.
                    Some(if x.is_negative() {
                        PLUS_ONE | 1 << 79
                    } else {
                        v
                    })
                } else if m == M::F2xm1 && (v & !(1 << 79)) == PLUS_ONE {
                    // 2^1 − 1 = 1 and 2^-1 − 1 = −1/2, exactly, though the parts report
                    // them inexact.
                    self.fpu_raise(sw::PE);
                    Some(if is_neg(v) {
                        0xbffe_8000_0000_0000_0000
                    } else {
                        v
                    })
                } else {
                    let w = match m {
                        M::F2xm1 => exp2m1(Wide::from_ext(v)),
                        M::Fsin => sin_cos_of(v).0,
                        _ => sin_cos_of(v).1,
                    };
                    self.trans_round(w)
                }
            }
        };
        if let Some(r) = r {
            self.fpu_put(0, r);
        }
    }

    /// FPTAN (ST0 ← tan ST0, then 1.0 pushed) and FSINCOS (ST0 ← sin ST0, then its cosine
    /// pushed).
    fn trans_push(&mut self, m: M) {
        self.cpu.fpu.fsw &= !sw::C2;
        let overflow = self.cpu.fpu.ftw & (1 << ((self.cpu.fpu.top() + 7) & 7)) != 0;
        if !self.fpu_valid(0) || overflow {
            let ok = if self.fpu_valid(0) {
                self.cpu.fpu.fsw |= sw::C1;
                self.fpu_raise(sw::IE | sw::SF)
            } else {
                self.underflow()
            };
            if ok {
                self.fpu_put(0, INDEFINITE);
                self.fpush_unchecked(INDEFINITE);
            }
            return;
        }
        let v = self.fpu_get(0);
        if self.trig_out_of_range(v) {
            return;
        }
        let (first, second) = match self.trans_operand(v, true) {
            Err(None) => return,
            Err(Some(r)) => (r, r),
            Ok(()) => {
                if ext(v).is_zero() {
                    (v, PLUS_ONE)
                } else {
                    let (s, c) = sin_cos_of(v);
                    if m == M::Fptan {
                        let Some(t) = self.trans_round(s.div(c)) else {
                            return;
                        };
                        (t, PLUS_ONE)
                    } else {
                        // Both results rounded; C1 tells of the last one.
                        let Some(sr) = self.trans_round(s) else {
                            return;
                        };
                        self.cpu.fpu.fsw &= !sw::C1;
                        let Some(cr) = self.trans_round(c) else {
                            return;
                        };
                        (sr, cr)
                    }
                }
            }
        };
        self.fpu_put(0, first);
        self.fpush(second);
    }

    /// FYL2X, FYL2XP1, FPATAN: ST1 ← f(ST1, ST0), then a pop.
    fn trans_binary(&mut self, m: M) {
        if !self.fpu_valid(0) || !self.fpu_valid(1) {
            if self.underflow() {
                self.fpu_put(1, INDEFINITE);
                self.fpu_pop();
            }
            return;
        }
        let (xv, yv) = (self.fpu_get(0), self.fpu_get(1));
        let r = self.trans_binary_value(m, xv, yv);
        if let Some(r) = r {
            self.fpu_put(1, r);
            self.fpu_pop();
        }
    }

    fn trans_binary_value(&mut self, m: M, xv: u128, yv: u128) -> Option<u128> {
        let (x, y) = (ext(xv), ext(yv));
        if unsupported(xv) || unsupported(yv) {
            return self.fpu_raise(sw::IE).then_some(INDEFINITE);
        }
        if x.is_nan() || y.is_nan() {
            if (x.is_signaling() || y.is_signaling()) && !self.fpu_raise(sw::IE) {
                return None;
            }
            return Some(nan_pick(xv, yv));
        }
        let (xn, yn) = (is_neg(xv), is_neg(yv));
        match m {
            M::Fyl2x => {
                let invalid = (xn && !x.is_zero())
                    || (x.is_zero() && y.is_zero())
                    || (x.is_infinite() && y.is_zero())
                    || ((xv & !(1 << 79)) == PLUS_ONE && y.is_infinite());
                let by_zero = x.is_zero() && !y.is_infinite();
                // An invalid operand outranks a denormal one (as the parts do).
                if invalid {
                    return self.fpu_raise(sw::IE).then_some(INDEFINITE);
                }
                if !by_zero && (denormal(xv) || denormal(yv)) && !self.fpu_raise(sw::DE) {
                    return None;
                }
                if x.is_zero() {
                    if by_zero && !self.fpu_raise(sw::ZE) {
                        return None;
                    }
                    return Some(signed(INFINITY, !yn));
                }
                // log2(x) is negative below 1, zero at 1, positive above.
                let log_neg = (xv >> 64) & 0x7fff < 16383;
                if x.is_infinite() || y.is_infinite() {
                    return Some(signed(INFINITY, yn != log_neg));
                }
                let lx = Wide::from_ext(xv);
                let power_of_two = lx.sig == 1 << 127;
                if power_of_two {
                    // log2 is the exponent, exactly: one rounded product. The parts still
                    // report it inexact unless it is a zero.
                    let e = Ext::from_i128(i128::from(lx.exp)).value;
                    let r = self.trans_exact(|rc| y.mul_r(e, rc));
                    if lx.exp != 0 && !y.is_zero() {
                        self.fpu_raise(sw::PE);
                    }
                    return r;
                }
                if y.is_zero() {
                    return Some(signed(0, yn != log_neg));
                }
                self.trans_round(Wide::from_ext(yv).mul(log2(lx)))
            }
            M::Fyl2xp1 => {
                if (denormal(xv) || denormal(yv)) && !self.fpu_raise(sw::DE) {
                    return None;
                }
                if (x.is_zero() && y.is_infinite()) || x.is_infinite() {
                    return self.fpu_raise(sw::IE).then_some(INDEFINITE);
                }
                if x.is_zero() || y.is_zero() {
                    return Some(signed(0, xn != yn));
                }
                if y.is_infinite() {
                    return Some(signed(INFINITY, xn != yn));
                }
                let xw = Wide::from_ext(xv);
                let two = Wide::from_u64(2);
                let l = atanh(xw.div(two.add(xw))).scale(1).div(LN2);
                self.trans_round(Wide::from_ext(yv).mul(l))
            }
            _ => {
                // FPATAN: the angle of the point (x, y) = (ST0, ST1).
                if (denormal(xv) || denormal(yv)) && !self.fpu_raise(sw::DE) {
                    return None;
                }
                let angle = if y.is_zero() {
                    if xn {
                        PI
                    } else {
                        return Some(yv);
                    }
                } else if x.is_infinite() && y.is_infinite() {
                    if xn {
                        PI.scale(-2).mul(Wide::from_u64(3))
                    } else {
                        PI.scale(-2)
                    }
                } else if x.is_zero() || y.is_infinite() {
                    PI.scale(-1)
                } else if x.is_infinite() {
                    if xn {
                        PI
                    } else {
                        return Some(signed(0, yn));
                    }
                } else {
                    let (ax, ay) = (Wide::from_ext(xv).abs(), Wide::from_ext(yv).abs());
                    let steep = ay.mag_gt(&ax);
                    let mut t = if steep {
                        PI.scale(-1).sub(atan_ratio(ax, ay))
                    } else {
                        atan_ratio(ay, ax)
                    };
                    if xn {
                        t = PI.sub(t);
                    }
                    t
                };
                self.trans_round(if yn { angle.neg() } else { angle })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::simd::x87::bits80;

    fn round(w: Wide) -> u128 {
        bits80(w.round_ext(Round::NearestTiesToEven).value)
    }

    #[test]
    fn reduction_uses_the_66_bit_pi() {
        let pi80 = 0x4000_c90f_daa2_2168_c235;
        // What AMD and Intel parts give (measured on the host).
        assert_eq!(round(sin_cos_of(pi80).0), 0xbfbf_8000_0000_0000_0000);
        assert_eq!(round(sin_cos_of(pi80).1), 0xbfff_8000_0000_0000_0000);
        assert_eq!(round(sin_cos_of(pi80 - 1).0), 0x3fc0_c000_0000_0000_0000);
        assert_eq!(
            round(sin_cos_of(0x4020_9502_f900_0000_0000).0),
            0xbffd_f99a_63c4_9c6f_2b1a
        );
        assert_eq!(
            round(sin_cos_of(0x403d_8000_0000_0000_0000).1),
            0xbffe_b503_3c86_7715_345a
        );
        assert_eq!(round(sin_cos_of(PLUS_ONE).0), 0x3ffe_d76a_a478_4867_7021);
        assert_eq!(round(sin_cos_of(PLUS_ONE).1), 0x3ffe_8a51_407d_a834_5c92);
    }

    #[test]
    fn logs_exponentials_and_angles() {
        // log2(10) = FLDL2T's constant; log2(e) likewise.
        assert_eq!(round(log2(Wide::from_u64(10))), 0x4000_d49a_784b_cd1b_8afe);
        // 2^0.5 − 1.
        let half = ONE.scale(-1);
        assert_eq!(round(exp2m1(half)), 0x3ffd_d413_cccf_e779_9211);
        // atan(1) = π/4.
        assert_eq!(round(atan_ratio(ONE, ONE)), 0x3ffe_c90f_daa2_2168_c235);
    }
}
