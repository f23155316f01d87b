//! IEEE single and double arithmetic as SSE does it, independent of the host's FPU: rounding
//! from MXCSR.RC, DAZ and FTZ, the exception flags, and x86's NaN rules (the first NaN
//! operand, quieted; the "indefinite" QNaN for invalid operations). The arithmetic itself is
//! rustc_apfloat's; square roots are computed on integers here (apfloat has none).

use rustc_apfloat::ieee::{Double, Quad, Single};
use rustc_apfloat::{Float, FloatConvert, Round, Status, StatusAnd};

/// MXCSR bits.
pub mod mx {
    pub const IE: u32 = 1 << 0;
    pub const DE: u32 = 1 << 1;
    pub const ZE: u32 = 1 << 2;
    pub const OE: u32 = 1 << 3;
    pub const UE: u32 = 1 << 4;
    pub const PE: u32 = 1 << 5;
    pub const FLAGS: u32 = 0x3f;
    pub const DAZ: u32 = 1 << 6;
    /// The masks sit 7 bits above their flags.
    pub const MASK_SHIFT: u32 = 7;
    pub const UM: u32 = 1 << 11;
    pub const RC_SHIFT: u32 = 13;
    pub const FTZ: u32 = 1 << 15;
}

/// A format SSE computes in.
pub trait Fmt: Float {
    /// A format wide enough to hold any sum, product or quotient of two values of this one
    /// without overflowing (used to tell overflow apart from a value just below it).
    type Wide: Float;
    fn widen(self) -> Self::Wide;
    /// 2^(emax+1): the smallest magnitude that overflows, in the wide format.
    fn overflow_threshold() -> Self::Wide;
    /// Whether `wide`, rounded to this format's precision with an unbounded exponent, is
    /// below the smallest normal: x86 detects tininess after rounding, where apfloat rounds
    /// at the denormal position first (they differ for results that round up to 2^emin).
    fn tiny_after_rounding(wide: Self::Wide, round: Round) -> bool;
    const WIDTH: u32;
    /// The QNaN "floating-point indefinite": sign set, quiet bit set, payload zero.
    const INDEFINITE: u128;
    const QUIET_BIT: u128;
    const EXP_BITS: u32;
    /// Fraction bits (the significand less its implicit bit).
    const FRAC_BITS: u32;
}

impl Fmt for Single {
    type Wide = Double;
    fn widen(self) -> Double {
        let mut loses = false;
        FloatConvert::convert(self, &mut loses).value
    }
    fn overflow_threshold() -> Double {
        Double::from_bits(u128::from(2f64.powi(128).to_bits()))
    }
    fn tiny_after_rounding(wide: Double, round: Round) -> bool {
        let mut loses = false;
        let t: Single = wide.scalbn(64).convert_r(round, &mut loses).value;
        t.abs() < Single::smallest_normalized().scalbn(64)
    }
    const WIDTH: u32 = 32;
    const INDEFINITE: u128 = 0xffc0_0000;
    const QUIET_BIT: u128 = 1 << 22;
    const EXP_BITS: u32 = 8;
    const FRAC_BITS: u32 = 23;
}

impl Fmt for Double {
    type Wide = Quad;
    fn widen(self) -> Quad {
        let mut loses = false;
        FloatConvert::convert(self, &mut loses).value
    }
    fn overflow_threshold() -> Quad {
        Quad::from_u128(1).value.scalbn(1024)
    }
    fn tiny_after_rounding(wide: Quad, round: Round) -> bool {
        let mut loses = false;
        let t: Double = wide.scalbn(2048).convert_r(round, &mut loses).value;
        t.abs() < Double::smallest_normalized().scalbn(2048)
    }
    const WIDTH: u32 = 64;
    const INDEFINITE: u128 = 0xfff8_0000_0000_0000;
    const QUIET_BIT: u128 = 1 << 51;
    const EXP_BITS: u32 = 11;
    const FRAC_BITS: u32 = 52;
}

/// One instruction's view of MXCSR: its controls, and the flags its lanes raise.
pub struct Env {
    pub mxcsr: u32,
    pub flags: u32,
}

impl Env {
    pub fn new(mxcsr: u32) -> Self {
        Env { mxcsr, flags: 0 }
    }

    pub fn round(&self) -> Round {
        match (self.mxcsr >> mx::RC_SHIFT) & 3 {
            0 => Round::NearestTiesToEven,
            1 => Round::TowardNegative,
            2 => Round::TowardPositive,
            _ => Round::TowardZero,
        }
    }

    fn daz(&self) -> bool {
        self.mxcsr & mx::DAZ != 0
    }

    /// A source operand as the computation sees it: a denormal raises DE, or with DAZ
    /// becomes a zero of its sign.
    pub fn source<F: Fmt>(&mut self, x: F) -> F {
        if x.is_denormal() {
            if self.daz() {
                return zero_like(x);
            }
            self.flags |= mx::DE;
        }
        x
    }

    /// Folds a result's status into the flags and applies FTZ: with underflow masked, a
    /// tiny result becomes a zero of its sign (raising UE and PE).
    pub fn result<F: Fmt>(&mut self, r: StatusAnd<F>) -> F {
        let mut v = r.value;
        let s = r.status;
        if s.contains(Status::INVALID_OP) {
            self.flags |= mx::IE;
            return F::from_bits(F::INDEFINITE);
        }
        if s.contains(Status::DIV_BY_ZERO) {
            self.flags |= mx::ZE;
        }
        if s.contains(Status::OVERFLOW) {
            self.flags |= mx::OE;
        }
        let tiny = s.contains(Status::UNDERFLOW) || v.is_denormal();
        if tiny && self.mxcsr & mx::FTZ != 0 && self.mxcsr & mx::UM != 0 {
            self.flags |= mx::UE | mx::PE;
            return zero_like(v);
        }
        if s.contains(Status::UNDERFLOW) {
            self.flags |= mx::UE;
        }
        if s.contains(Status::INEXACT) {
            self.flags |= mx::PE;
        }
        if v.is_nan() {
            v = quiet(v);
        }
        v
    }

    /// The exceptions raised whose mask bits are clear.
    pub fn unmasked(&self) -> u32 {
        self.flags & !(self.mxcsr >> mx::MASK_SHIFT) & mx::FLAGS
    }
}

pub fn zero_like<F: Fmt>(x: F) -> F {
    if x.is_negative() {
        -F::ZERO
    } else {
        F::ZERO
    }
}

pub fn quiet<F: Fmt>(x: F) -> F {
    F::from_bits(x.to_bits() | F::QUIET_BIT)
}

/// x86's NaN rule for two operands (SDM Vol. 1, Table 4-7): an SNaN raises IE; the result is
/// the first operand if it is a NaN, else the second, quieted.
pub fn nan_result<F: Fmt>(env: &mut Env, a: F, b: F) -> Option<F> {
    if a.is_signaling() || b.is_signaling() {
        env.flags |= mx::IE;
    }
    if a.is_nan() {
        Some(quiet(a))
    } else if b.is_nan() {
        Some(quiet(b))
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

pub fn arith<F: Fmt>(env: &mut Env, op: Op, a: F, b: F) -> F {
    if let Some(n) = nan_result(env, a, b) {
        return n;
    }
    let daz = |x: F| {
        if x.is_denormal() && env.daz() {
            zero_like(x)
        } else {
            x
        }
    };
    let (za, zb) = (daz(a), daz(b));
    // Division of a finite non-zero value by zero raises ZE, which outranks DE.
    let div_by_zero = op == Op::Div && zb.is_zero() && za.is_finite() && !za.is_zero();
    let (a, b) = if div_by_zero {
        (za, zb)
    } else {
        (env.source(a), env.source(b))
    };
    let rnd = env.round();
    let compute = |x: F, y: F, rnd| match op {
        Op::Add => x.add_r(y, rnd),
        Op::Sub => x.sub_r(y, rnd),
        Op::Mul => x.mul_r(y, rnd),
        Op::Div => x.div_r(y, rnd),
    };
    let mut r = compute(a, b, rnd);
    let wide = |round| {
        let (wa, wb) = (a.widen(), b.widen());
        match op {
            Op::Add => wa.add_r(wb, round),
            Op::Sub => wa.sub_r(wb, round),
            Op::Mul => wa.mul_r(wb, round),
            Op::Div => wa.div_r(wb, round),
        }
        .value
    };
    let inexact = r.status.contains(Status::INEXACT);
    // apfloat reports a directed rounding that stops at the largest finite value as inexact
    // only; IEEE (and x86) call it overflow when the exact value reaches 2^(emax+1).
    if r.value.is_largest()
        && inexact
        && !r.status.contains(Status::OVERFLOW)
        && wide(Round::TowardZero).abs() >= F::overflow_threshold()
    {
        r.status |= Status::OVERFLOW;
    }
    // A result rounded up to the smallest normal can still be tiny after rounding.
    if r.value.is_smallest_normalized()
        && inexact
        && !r.status.contains(Status::UNDERFLOW)
        && F::tiny_after_rounding(wide(Round::NearestTiesToEven), rnd)
    {
        r.status |= Status::UNDERFLOW;
    }
    env.result(r)
}

/// MIN/MAX: any NaN (quiet or not) raises IE and the second operand comes back as it is;
/// equal operands (+0 and -0 included) give the second too. Under DAZ a denormal comes back
/// as the zero it was read as.
pub fn min_max<F: Fmt>(env: &mut Env, max: bool, a: F, b: F) -> F {
    if a.is_nan() || b.is_nan() {
        env.flags |= mx::IE;
        return if b.is_denormal() && env.daz() {
            zero_like(b)
        } else {
            b
        };
    }
    let (a, b) = (env.source(a), env.source(b));
    let pick_a = if max { a > b } else { a < b };
    if pick_a {
        a
    } else {
        b
    }
}

/// CMPPS/CMPSS predicates 0–7; `true` if the relation holds. LT/LE/NLT/NLE signal on QNaNs.
pub fn compare<F: Fmt>(env: &mut Env, pred: u8, a: F, b: F) -> bool {
    let unordered = a.is_nan() || b.is_nan();
    let signaling = matches!(pred & 7, 1 | 2 | 5 | 6);
    if a.is_signaling() || b.is_signaling() || (unordered && signaling) {
        env.flags |= mx::IE;
    }
    if unordered {
        return matches!(pred & 7, 3..=6);
    }
    let (a, b) = (env.source(a), env.source(b));
    match pred & 7 {
        0 => a == b,
        1 => a < b,
        2 => a <= b,
        3 => false,
        4 => a != b,
        // Both ordered here, so "not less" is "greater or equal".
        5 => a >= b,
        6 => a > b,
        _ => true,
    }
}

/// COMISS/UCOMISS: ZF, PF, CF as unordered 111, less 001, equal 100, greater 000.
pub fn comi<F: Fmt>(env: &mut Env, signaling: bool, a: F, b: F) -> (bool, bool, bool) {
    if a.is_signaling() || b.is_signaling() || (signaling && (a.is_nan() || b.is_nan())) {
        env.flags |= mx::IE;
    }
    if a.is_nan() || b.is_nan() {
        return (true, true, true);
    }
    let (a, b) = (env.source(a), env.source(b));
    if a == b {
        (true, false, false)
    } else if a < b {
        (false, false, true)
    } else {
        (false, false, false)
    }
}

/// Integer square root of a u128 (the largest q with q² ≤ n).
fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    let mut x = (n as f64).sqrt() as u128;
    // Correct the float estimate (at most a few steps either way).
    while x.checked_mul(x).is_none_or(|sq| sq > n) {
        x -= 1;
    }
    while (x + 1).checked_mul(x + 1).is_some_and(|sq| sq <= n) {
        x += 1;
    }
    x
}

pub fn sqrt<F: Fmt>(env: &mut Env, a: F) -> F {
    if a.is_nan() {
        if a.is_signaling() {
            env.flags |= mx::IE;
        }
        return quiet(a);
    }
    let a = if a.is_denormal() && env.daz() {
        zero_like(a)
    } else {
        a
    };
    if a.is_zero() {
        return a;
    }
    // A negative operand is invalid, and that outranks its being denormal.
    if a.is_negative() {
        env.flags |= mx::IE;
        return F::from_bits(F::INDEFINITE);
    }
    let a = env.source(a);
    if a.is_infinite() {
        return a;
    }
    // a = m × 2^e exactly.
    let bits = a.to_bits();
    let frac_mask = (1u128 << F::FRAC_BITS) - 1;
    let field = (bits >> F::FRAC_BITS) as i32 & ((1 << F::EXP_BITS) - 1);
    let bias = (1i32 << (F::EXP_BITS - 1)) - 1;
    let (mut m, mut e) = if field == 0 {
        (bits & frac_mask, 1 - bias - F::FRAC_BITS as i32)
    } else {
        (
            (bits & frac_mask) | (1 << F::FRAC_BITS),
            field - bias - F::FRAC_BITS as i32,
        )
    };
    if e % 2 != 0 {
        m <<= 1;
        e -= 1;
    }
    // Scale the radicand so the root has well over the significand's bits, then keep a
    // sticky bit for what the integer root dropped (round to odd): one rounding is exact.
    let len = 128 - m.leading_zeros() as i32;
    let k = (120 - len) / 2;
    let n = m << (2 * k);
    let mut q = isqrt(n);
    if q * q != n {
        q |= 1;
    }
    let StatusAnd { status, value } = F::from_u128_r(q, env.round());
    if status.contains(Status::INEXACT) {
        env.flags |= mx::PE;
    }
    value.scalbn(e / 2 - k)
}

/// The 12-bit approximations RCPPS and RSQRTPS: the architecture promises a relative error
/// of at most 1.5 × 2^-12, and parts differ in the exact bits. Here: the correctly rounded
/// value with its significand cut to 12 bits (relative error below 2^-12, within the bound).
/// Denormal inputs read as zero and tiny results flush to zero, as on Intel parts; MXCSR is
/// neither read nor changed.
fn approx12(x: Single) -> Single {
    if x.is_denormal() {
        return zero_like(x);
    }
    Single::from_bits(x.to_bits() & !0x7ff)
}

pub fn rcp(x: Single) -> Single {
    if x.is_nan() {
        return quiet(x);
    }
    if x.is_zero() || x.is_denormal() {
        return if x.is_negative() {
            -Single::INFINITY
        } else {
            Single::INFINITY
        };
    }
    approx12(
        Single::from_u128(1)
            .value
            .div_r(x, Round::NearestTiesToEven)
            .value,
    )
}

pub fn rsqrt(x: Single) -> Single {
    if x.is_nan() {
        return quiet(x);
    }
    if x.is_zero() || x.is_denormal() {
        return if x.is_negative() {
            -Single::INFINITY
        } else {
            Single::INFINITY
        };
    }
    if x.is_negative() {
        return Single::from_bits(Single::INDEFINITE);
    }
    let mut env = Env::new(0x1f80);
    let root = sqrt(&mut env, x);
    approx12(
        Single::from_u128(1)
            .value
            .div_r(root, Round::NearestTiesToEven)
            .value,
    )
}

/// Integer conversion (CVTSS2SI and kin): `truncate` for the CVTT forms, else MXCSR's
/// rounding. NaN and out-of-range values give the integer indefinite (the sign bit alone)
/// and raise IE.
pub fn to_int<F: Fmt>(env: &mut Env, a: F, width: usize, truncate: bool) -> u64 {
    let indefinite = 1u64 << (width - 1);
    if a.is_nan() {
        env.flags |= mx::IE;
        return indefinite;
    }
    // Conversions to integers raise no DE; DAZ still reads a denormal as zero.
    let a = if a.is_denormal() && env.daz() {
        zero_like(a)
    } else {
        a
    };
    let round = if truncate {
        Round::TowardZero
    } else {
        env.round()
    };
    let mut exact = false;
    let r = a.to_i128_r(width, round, &mut exact);
    if r.status.contains(Status::INVALID_OP) {
        env.flags |= mx::IE;
        return indefinite;
    }
    if r.status.contains(Status::INEXACT) {
        env.flags |= mx::PE;
    }
    r.value as u64 & (u64::MAX >> (64 - width))
}

pub fn from_int<F: Fmt>(env: &mut Env, v: i64) -> F {
    env.result(F::from_i128_r(i128::from(v), env.round()))
}

/// Single to double and back (CVTSS2SD, CVTSD2SS and the packed forms).
pub fn convert<A: Fmt + rustc_apfloat::FloatConvert<B>, B: Fmt>(env: &mut Env, a: A) -> B {
    if a.is_nan() {
        if a.is_signaling() {
            env.flags |= mx::IE;
        }
        // x86 keeps the significand's top bits: shift the fraction between the widths.
        let frac = a.to_bits() & ((1u128 << A::FRAC_BITS) - 1);
        let frac = if B::FRAC_BITS >= A::FRAC_BITS {
            frac << (B::FRAC_BITS - A::FRAC_BITS)
        } else {
            frac >> (A::FRAC_BITS - B::FRAC_BITS)
        };
        let sign = u128::from(a.is_negative()) << (B::WIDTH - 1);
        let exp = ((1u128 << B::EXP_BITS) - 1) << B::FRAC_BITS;
        return B::from_bits(sign | exp | frac | B::QUIET_BIT);
    }
    let a = env.source(a);
    let mut loses = false;
    let mut r = a.convert_r(env.round(), &mut loses);
    // As in `arith`: a directed rounding stopping at the largest finite value is an overflow
    // when the source reaches 2^(emax+1) of the narrower format.
    let emax_plus_1 = 1 << (B::EXP_BITS - 1);
    if r.value.is_largest()
        && r.status.contains(Status::INEXACT)
        && !r.status.contains(Status::OVERFLOW)
        && a.ilogb() >= emax_plus_1
    {
        r.status |= Status::OVERFLOW;
    }
    // Tininess after rounding, as in `arith` (only narrowing can underflow).
    if A::WIDTH == 64
        && B::WIDTH == 32
        && r.value.is_smallest_normalized()
        && r.status.contains(Status::INEXACT)
        && !r.status.contains(Status::UNDERFLOW)
        && Single::tiny_after_rounding(Double::from_bits(a.to_bits()), env.round())
    {
        r.status |= Status::UNDERFLOW;
    }
    env.result(r)
}

/// The two formats as lanes of an XMM register.
pub fn f32_of(bits: u64) -> Single {
    Single::from_bits(u128::from(bits as u32))
}

pub fn f64_of(bits: u64) -> Double {
    Double::from_bits(u128::from(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f32) -> Single {
        Single::from_bits(u128::from(v.to_bits()))
    }

    fn bits(x: Single) -> u32 {
        x.to_bits() as u32
    }

    #[test]
    fn tininess_is_detected_after_rounding() {
        // (2^24 - 1) × 2^-150 rounds to 2^-126 at the denormal position, but with 24 bits and
        // an unbounded exponent it is exact and below 2^-126: tiny, so UE with PE (what an
        // x86 host reports for the same multiplication).
        let a = Single::from_bits(u128::from((4095.0f32 * 2f32.powi(-75)).to_bits()));
        let b = Single::from_bits(u128::from((4097.0f32 * 2f32.powi(-75)).to_bits()));
        let mut env = Env::new(0x1f80);
        assert_eq!(bits(arith(&mut env, Op::Mul, a, b)), 0x0080_0000);
        assert_eq!(env.flags, mx::UE | mx::PE);
        // With FTZ that tiny result is flushed.
        let mut env = Env::new(0x1f80 | mx::FTZ);
        assert_eq!(bits(arith(&mut env, Op::Mul, a, b)), 0);
    }

    #[test]
    fn nan_rules_and_indefinite() {
        let mut env = Env::new(0x1f80);
        let snan = Single::from_bits(0x7fa0_0001);
        let qnan = Single::from_bits(0xffc0_1234);
        assert_eq!(bits(arith(&mut env, Op::Add, f(1.0), snan)), 0x7fe0_0001);
        assert_eq!(env.flags, mx::IE);
        let mut env = Env::new(0x1f80);
        assert_eq!(bits(arith(&mut env, Op::Add, qnan, snan)), 0xffc0_1234);
        let mut env = Env::new(0x1f80);
        let inf = f(f32::INFINITY);
        assert_eq!(bits(arith(&mut env, Op::Sub, inf, inf)), 0xffc0_0000);
        assert_eq!(env.flags, mx::IE);
    }

    #[test]
    fn rounding_flags_daz_and_ftz() {
        let mut env = Env::new(0x1f80);
        assert_eq!(
            bits(arith(&mut env, Op::Div, f(1.0), f(3.0))),
            (1.0f32 / 3.0).to_bits()
        );
        assert_eq!(env.flags, mx::PE);
        // Round toward zero.
        let mut env = Env::new(0x1f80 | 3 << mx::RC_SHIFT);
        assert_eq!(bits(arith(&mut env, Op::Div, f(2.0), f(3.0))), 0x3f2a_aaaa);
        // A denormal operand: DE; with DAZ it is zero.
        let tiny = Single::from_bits(1);
        let mut env = Env::new(0x1f80);
        assert_eq!(bits(arith(&mut env, Op::Add, tiny, f(0.0))), 1);
        assert_eq!(env.flags, mx::DE);
        let mut env = Env::new(0x1f80 | mx::DAZ);
        assert_eq!(bits(arith(&mut env, Op::Add, tiny, f(0.0))), 0);
        assert_eq!(env.flags, 0);
        // A tiny result with FTZ: zero, UE and PE.
        let mut env = Env::new(0x1f80 | mx::FTZ);
        let r = arith(&mut env, Op::Mul, f(1e-30), f(1e-10));
        assert_eq!(bits(r), 0);
        assert_eq!(env.flags, mx::UE | mx::PE);
        let mut env = Env::new(0x1f80);
        assert_eq!(bits(arith(&mut env, Op::Div, f(1.0), f(0.0))), 0x7f80_0000);
        assert_eq!(env.flags, mx::ZE);
    }

    #[test]
    fn square_roots_round_correctly() {
        for v in [2.0f32, 3.0, 0.5, 1e-40, 1e30, 123.456, f32::MAX, 1.0] {
            let mut env = Env::new(0x1f80);
            assert_eq!(bits(sqrt(&mut env, f(v))), v.sqrt().to_bits(), "{v}");
        }
        for v in [2.0f64, 1e-310, 7.0, f64::MAX] {
            let mut env = Env::new(0x1f80);
            let r = sqrt(&mut env, Double::from_bits(u128::from(v.to_bits())));
            assert_eq!(r.to_bits() as u64, v.sqrt().to_bits(), "{v}");
        }
        let mut env = Env::new(0x1f80);
        assert_eq!(bits(sqrt(&mut env, f(-1.0))), 0xffc0_0000);
        assert_eq!(env.flags, mx::IE);
        let mut env = Env::new(0x1f80);
        assert_eq!(bits(sqrt(&mut env, f(4.0))), 2.0f32.to_bits());
        assert_eq!(env.flags, 0);
    }

    #[test]
    fn approximations_are_within_the_architectural_bound() {
        for v in [1.0f32, 3.0, 0.1, 7.5e-30, 123456.0, 2.0e30] {
            let r = f32::from_bits(bits(rcp(f(v))));
            assert!(((r * v) - 1.0).abs() <= 1.5 / 4096.0, "rcp {v}: {r}");
            let q = f32::from_bits(bits(rsqrt(f(v))));
            assert!(
                ((q * v.sqrt()) - 1.0).abs() <= 1.5 / 4096.0,
                "rsqrt {v}: {q}"
            );
        }
        assert_eq!(bits(rcp(f(-0.0))), 0xff80_0000);
        assert_eq!(bits(rsqrt(f(-1.0))), 0xffc0_0000);
        assert_eq!(bits(rcp(f(f32::INFINITY))), 0);
    }

    #[test]
    fn integer_conversions() {
        let mut env = Env::new(0x1f80);
        assert_eq!(to_int(&mut env, f(2.5), 32, false), 2);
        assert_eq!(to_int(&mut env, f(-2.5), 32, true), (-2i32) as u32 as u64);
        assert_eq!(env.flags, mx::PE);
        let mut env = Env::new(0x1f80);
        assert_eq!(to_int(&mut env, f(3e9), 32, false), 0x8000_0000);
        assert_eq!(env.flags, mx::IE);
        let mut env = Env::new(0x1f80);
        let x: Single = from_int(&mut env, 16_777_217);
        assert_eq!(bits(x), 16_777_216f32.to_bits());
        assert_eq!(env.flags, mx::PE);
    }
}
