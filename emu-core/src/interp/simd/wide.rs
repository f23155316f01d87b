//! A working float with a 128-bit significand, for the x87 transcendental instructions.
//!
//! The x87 delivers FSIN, FYL2X and the rest to within an ulp of 64 bits; computing them here
//! with about twice that precision and rounding once gives the correctly rounded result in all
//! but a vanishing fraction of cases, on any host (no host float is involved). Operations
//! truncate and set the lowest bit when anything was lost ("round to odd"): each is off by at
//! most an ulp of 128 bits, and a result that is not exact never looks exact to the final
//! rounding, which keeps directed rounding right when a series' tail is tiny.

use rustc_apfloat::ieee::X87DoubleExtended as Ext;
use rustc_apfloat::{Round, Status, StatusAnd};

use super::x87::ext;

/// `sig × 2^(exp − 127)`, with `sig` normalized (bit 127 set) or zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wide {
    pub neg: bool,
    pub exp: i32,
    pub sig: u128,
}

/// π to 128 bits.
pub const PI: Wide = Wide {
    neg: false,
    exp: 1,
    sig: 0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1,
};

/// ln 2 to 128 bits.
pub const LN2: Wide = Wide {
    neg: false,
    exp: -1,
    sig: 0xb172_17f7_d1cf_79ab_c9e3_b398_03f2_f6af,
};

/// 1.0
pub const ONE: Wide = Wide {
    neg: false,
    exp: 0,
    sig: 1 << 127,
};

/// The full 256-bit product of two 128-bit numbers, as (high, low).
fn mul_128(a: u128, b: u128) -> (u128, u128) {
    let (a1, a0) = (a >> 64, a & u128::from(u64::MAX));
    let (b1, b0) = (b >> 64, b & u128::from(u64::MAX));
    let lo = a0 * b0;
    let m1 = a1 * b0;
    let m2 = a0 * b1;
    let hi = a1 * b1;
    let t = (lo >> 64) + (m1 & u128::from(u64::MAX)) + (m2 & u128::from(u64::MAX));
    let low = (lo & u128::from(u64::MAX)) | (t << 64);
    let high = hi + (m1 >> 64) + (m2 >> 64) + (t >> 64);
    (high, low)
}

impl Wide {
    pub const ZERO: Wide = Wide {
        neg: false,
        exp: 0,
        sig: 0,
    };

    /// Normalizes `sig × 2^(exp − 127)`.
    pub fn new(neg: bool, exp: i32, sig: u128) -> Wide {
        if sig == 0 {
            return Wide { neg, ..Wide::ZERO };
        }
        let shift = sig.leading_zeros();
        Wide {
            neg,
            exp: exp - shift as i32,
            sig: sig << shift,
        }
    }

    pub fn from_u64(v: u64) -> Wide {
        Wide::new(false, 127, u128::from(v))
    }

    pub fn from_i64(v: i64) -> Wide {
        Wide {
            neg: v < 0,
            ..Wide::from_u64(v.unsigned_abs())
        }
    }

    /// A finite extended-precision value (denormals and pseudo-denormals included).
    pub fn from_ext(v: u128) -> Wide {
        let field = ((v >> 64) & 0x7fff) as i32;
        let e = field.max(1) - 16383;
        Wide::new(v >> 79 & 1 == 1, e, u128::from(v as u64) << 64)
    }

    pub fn is_zero(&self) -> bool {
        self.sig == 0
    }

    pub fn neg(self) -> Wide {
        Wide {
            neg: !self.neg,
            ..self
        }
    }

    pub fn abs(self) -> Wide {
        Wide { neg: false, ..self }
    }

    /// `self × 2^n`.
    pub fn scale(self, n: i32) -> Wide {
        if self.is_zero() {
            self
        } else {
            Wide {
                exp: self.exp + n,
                ..self
            }
        }
    }

    /// |self| > |other|
    pub fn mag_gt(&self, other: &Wide) -> bool {
        (self.exp, self.sig) > (other.exp, other.sig) || other.is_zero() && !self.is_zero()
    }

    pub fn mul(self, b: Wide) -> Wide {
        if self.is_zero() || b.is_zero() {
            return Wide {
                neg: self.neg != b.neg,
                ..Wide::ZERO
            };
        }
        let (hi, lo) = mul_128(self.sig, b.sig);
        let neg = self.neg != b.neg;
        if hi >> 127 == 1 {
            Wide {
                neg,
                exp: self.exp + b.exp + 1,
                sig: hi | u128::from(lo != 0),
            }
        } else {
            Wide {
                neg,
                exp: self.exp + b.exp,
                sig: hi << 1 | lo >> 127 | u128::from(lo << 1 != 0),
            }
        }
    }

    pub fn add(self, b: Wide) -> Wide {
        if b.is_zero() {
            return self;
        }
        if self.is_zero() {
            return b;
        }
        let (big, small) = if b.mag_gt(&self) {
            (b, self)
        } else {
            (self, b)
        };
        let d = big.exp.abs_diff(small.exp);
        // `small` shifted right by `by`, and whether bits fell off.
        let shifted = |by: u32| {
            if by >= 128 {
                (0, true)
            } else {
                let s = small.sig >> by;
                (s, s << by != small.sig)
            }
        };
        let (sum, lost) = if big.neg == small.neg {
            let (s, lost) = shifted(d);
            match big.sig.overflowing_add(s) {
                (sum, false) => (Wide::new(big.neg, big.exp, sum), lost),
                (sum, true) => (
                    Wide::new(big.neg, big.exp + 1, sum >> 1 | 1 << 127),
                    lost || sum & 1 == 1,
                ),
            }
        } else {
            let (s, lost) = shifted(d);
            // Truncating toward zero: the bits that fell off make the difference smaller.
            let diff = big.sig - s - u128::from(lost);
            (Wide::new(big.neg, big.exp, diff), lost)
        };
        sum.sticky(lost)
    }

    pub fn sub(self, b: Wide) -> Wide {
        self.add(b.neg())
    }

    /// `self / b` (b non-zero), by restoring division to 128 quotient bits.
    pub fn div(self, b: Wide) -> Wide {
        debug_assert!(!b.is_zero());
        if self.is_zero() || b.is_zero() {
            return Wide {
                neg: self.neg != b.neg,
                ..Wide::ZERO
            };
        }
        let steps = if self.sig >= b.sig { 128 } else { 129 };
        let (mut r, mut q, mut carry) = (self.sig, 0u128, false);
        for _ in 0..steps {
            q <<= 1;
            if carry || r >= b.sig {
                r = r.wrapping_sub(b.sig);
                q |= 1;
            }
            carry = r >> 127 == 1;
            r <<= 1;
        }
        Wide {
            neg: self.neg != b.neg,
            exp: self.exp - b.exp - i32::from(steps == 129),
            sig: q,
        }
        .sticky(r != 0 || carry)
    }

    /// Sets the lowest bit when bits were lost: a truncated value is then never mistaken for
    /// an exact one by the final rounding (round to odd).
    fn sticky(self, lost: bool) -> Wide {
        if lost && !self.is_zero() {
            Wide {
                sig: self.sig | 1,
                ..self
            }
        } else {
            self
        }
    }

    /// Rounds to extended precision (64 bits, the full exponent range with denormals) with
    /// `rc`, taking the value as inexact: it approximates an irrational result. The status
    /// says INEXACT, and OVERFLOW or UNDERFLOW (tiny before rounding) where they apply.
    pub fn round_ext(self, rc: Round) -> StatusAnd<Ext> {
        let sign = u128::from(self.neg) << 79;
        if self.is_zero() {
            return StatusAnd {
                status: Status::OK,
                value: ext(sign),
            };
        }
        let biased = self.exp + 16383;
        let mut status = Status::INEXACT;
        let up_allowed = |half: bool| match rc {
            Round::NearestTiesToEven | Round::NearestTiesToAway => half,
            Round::TowardZero => false,
            Round::TowardPositive => !self.neg,
            Round::TowardNegative => self.neg,
        };
        if biased >= 0x7fff {
            let inf = match rc {
                Round::NearestTiesToEven | Round::NearestTiesToAway => true,
                Round::TowardZero => false,
                Round::TowardPositive => !self.neg,
                Round::TowardNegative => self.neg,
            };
            let v = if inf {
                sign | 0x7fff << 64 | 1 << 63
            } else {
                sign | 0x7ffe << 64 | u128::from(u64::MAX)
            };
            return StatusAnd {
                status: Status::OVERFLOW | Status::INEXACT,
                value: ext(v),
            };
        }
        // Bits dropped below the kept significand: 64, plus the denormal shift.
        let shift = 64 + (1 - biased).max(0) as u32;
        let (kept, half) = if shift > 128 {
            (0u128, false)
        } else if shift == 128 {
            (0, self.sig >> 127 == 1)
        } else {
            (self.sig >> shift, (self.sig >> (shift - 1)) & 1 == 1)
        };
        let mut kept = kept + u128::from(up_allowed(half));
        let mut field = biased.max(0) as u128;
        if biased < 1 {
            status |= Status::UNDERFLOW;
            field = u128::from(kept >> 63 == 1); // rounded up into the smallest normal
        } else if kept >> 64 == 1 {
            kept >>= 1;
            field += 1;
            if field == 0x7fff {
                return StatusAnd {
                    status: Status::OVERFLOW | Status::INEXACT,
                    value: ext(sign | 0x7fff << 64 | 1 << 63),
                };
            }
        }
        StatusAnd {
            status,
            value: ext(sign | field << 64 | kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::simd::x87::bits80;

    fn close(a: Wide, b: Wide, bits: i32) -> bool {
        let d = a.sub(b);
        d.is_zero() || d.exp < a.exp - bits
    }

    #[test]
    fn arithmetic_round_trips() {
        let three = Wide::from_u64(3);
        let seven = Wide::from_u64(7);
        let q = three.div(seven);
        assert!(close(q.mul(seven), three, 125));
        assert_eq!(three.add(seven), Wide::from_u64(10));
        assert_eq!(three.sub(seven), Wide::from_i64(-4));
        assert_eq!(seven.mul(three), Wide::from_u64(21));
        assert!(three.sub(three).is_zero());
    }

    #[test]
    fn constants_agree_with_their_series() {
        // π = 16 atan(1/5) − 4 atan(1/239) (Machin).
        let atan_inv = |n: u64| {
            let x = ONE.div(Wide::from_u64(n));
            let x2 = x.mul(x);
            let (mut term, mut sum) = (x, x);
            for k in 1..80u64 {
                term = term.mul(x2).neg();
                sum = sum.add(term.div(Wide::from_u64(2 * k + 1)));
            }
            sum
        };
        let pi = atan_inv(5).scale(2).sub(atan_inv(239)).scale(2);
        assert!(close(pi, PI, 120), "{pi:x?}");
        // ln 2 = 2 atanh(1/3).
        let x = ONE.div(Wide::from_u64(3));
        let x2 = x.mul(x);
        let (mut p, mut sum) = (x, x);
        for k in 1..90u64 {
            p = p.mul(x2);
            sum = sum.add(p.div(Wide::from_u64(2 * k + 1)));
        }
        assert!(close(sum.scale(1), LN2, 120), "{sum:x?}");
    }

    #[test]
    fn rounding_to_extended() {
        let r = PI.round_ext(Round::NearestTiesToEven);
        assert_eq!(bits80(r.value), 0x4000_c90f_daa2_2168_c235);
        let r = PI.round_ext(Round::TowardZero);
        assert_eq!(bits80(r.value), 0x4000_c90f_daa2_2168_c234);
        // The smallest denormal and below.
        let tiny = ONE.scale(-16445);
        assert_eq!(bits80(tiny.round_ext(Round::TowardZero).value), 1);
        let tinier = ONE.scale(-16447);
        assert_eq!(bits80(tinier.round_ext(Round::TowardZero).value), 0);
        assert_eq!(bits80(tinier.round_ext(Round::TowardPositive).value), 1);
        assert!(tinier
            .round_ext(Round::NearestTiesToEven)
            .status
            .contains(Status::UNDERFLOW));
        let huge = ONE.scale(16384);
        assert!(huge
            .round_ext(Round::TowardZero)
            .status
            .contains(Status::OVERFLOW));
        assert_eq!(
            bits80(
                Wide::from_ext(0x3fff_8000_0000_0000_0001)
                    .round_ext(Round::TowardZero)
                    .value
            ),
            0x3fff_8000_0000_0000_0001
        );
    }
}
