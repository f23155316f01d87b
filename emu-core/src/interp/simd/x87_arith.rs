//! x87 arithmetic: FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR in every form (register, m32, m64, and
//! the FI… forms on m16/m32 integers, with and without pop), FSQRT and FRNDINT.
//!
//! Results are rounded to the precision FCW.PC selects (24, 53 or 64 bits) with FCW.RC, over
//! the extended exponent range. apfloat computes in 64-bit precision; for 24 and 53 bits the
//! operation is first rounded to 64 bits *to odd* (toward zero, then the lowest bit set if
//! anything was lost), which makes the second rounding to the narrower precision exact
//! (Boldo and Melquiond). C1 tells whether the result was rounded up in magnitude.

use iced_x86::{Instruction, Mnemonic as M, OpKind};
use rustc_apfloat::ieee::X87DoubleExtended as Ext;
use rustc_apfloat::{Float, Round, Status, StatusAnd};

use super::x87::{bits80, denormal, ext, sw, unsupported, INDEFINITE};
use crate::interp::fault::Result;
use crate::interp::Interp;

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::Fadd
            | M::Faddp
            | M::Fiadd
            | M::Fsub
            | M::Fsubp
            | M::Fisub
            | M::Fsubr
            | M::Fsubrp
            | M::Fisubr
            | M::Fmul
            | M::Fmulp
            | M::Fimul
            | M::Fdiv
            | M::Fdivp
            | M::Fidiv
            | M::Fdivr
            | M::Fdivrp
            | M::Fidivr
            | M::Fsqrt
            | M::Frndint
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

fn quiet(v: u128) -> u128 {
    v | 1 << 62
}

/// x87's NaN rule (SDM Vol. 1, Table 4-7): a QNaN over an SNaN, else the larger
/// significand; the result quieted.
pub(super) fn nan_pick(a: u128, b: u128) -> u128 {
    let (an, bn) = (ext(a).is_nan(), ext(b).is_nan());
    let pick = match (an, bn) {
        (true, false) => a,
        (false, true) => b,
        _ => {
            let (aq, bq) = (a >> 62 & 1 == 1, b >> 62 & 1 == 1);
            if aq != bq {
                if aq {
                    a
                } else {
                    b
                }
            } else if (a as u64) >= (b as u64) {
                a
            } else {
                b
            }
        }
    };
    quiet(pick)
}

/// Rounds `x` (a 64-bit significand, exact) to `bits` bits with `round`; returns the value and
/// whether it changed.
/// Whether `v` — a denormal, the exact result truncated to the register's precision
/// (`exact`: nothing was cut) — rounded to `bits` < 64 significant bits with an unbounded
/// exponent reaches the smallest normal: it lies in the binade just below it (the
/// significand field's bit 62 set) and rounding carries out of all the bits kept.
fn rounds_up_to_normal(v: u128, exact: bool, bits: u32, round: Round) -> bool {
    let sig = v as u64;
    if (v >> 64) & 0x7fff != 0 || sig >> 62 != 1 || bits >= 63 {
        return false;
    }
    // Normalized, the value's leading bit is field bit 62: `bits` of them end one bit
    // lower than a normal value's.
    let drop = 63 - bits;
    let mask = (1u64 << drop) - 1;
    if sig | mask != u64::MAX >> 1 {
        return false;
    }
    let (rem, half) = (sig & mask, 1u64 << (drop - 1));
    let inexact = rem != 0 || !exact;
    let neg = (v >> 79) & 1 == 1;
    match round {
        // Every kept bit is one: a tie rounds to even, which carries too.
        Round::NearestTiesToEven | Round::NearestTiesToAway => rem >= half,
        Round::TowardZero => false,
        Round::TowardPositive => !neg && inexact,
        Round::TowardNegative => neg && inexact,
    }
}

fn round_to_bits(x: Ext, bits: u32, round: Round) -> (Ext, bool) {
    let v = bits80(x);
    let exp = (v >> 64) & 0x7fff;
    // Zeros, infinities and NaNs are left alone. Denormals are rounded at the same bit of
    // the significand field as normal values, as the x87 does.
    if exp == 0x7fff || bits >= 64 || v as u64 == 0 {
        return (x, false);
    }
    let sig = v as u64;
    let drop = 64 - bits;
    let mask = (1u64 << drop) - 1;
    let rem = sig & mask;
    if rem == 0 {
        return (x, false);
    }
    let neg = v >> 79 & 1 == 1;
    let half = 1u64 << (drop - 1);
    let base = sig & !mask;
    let up = match round {
        Round::NearestTiesToEven => rem > half || (rem == half && (base >> drop) & 1 == 1),
        Round::TowardZero => false,
        Round::TowardPositive => !neg,
        Round::TowardNegative => neg,
        Round::NearestTiesToAway => rem >= half,
    };
    let (mut sig2, mut exp2) = (base, exp);
    if up {
        let (s, carry) = base.overflowing_add(1 << drop);
        sig2 = s;
        if carry {
            sig2 = 1 << 63;
            exp2 += 1;
        } else if exp == 0 && sig2 >> 63 == 1 {
            exp2 = 1; // a denormal rounded up to the smallest normal
        }
    }
    let sign = v & (1 << 79);
    if exp2 >= 0x7fff {
        // Rounded past the largest finite value: infinity (the caller flags overflow).
        return (ext(sign | 0x7fff << 64 | 1 << 63), true);
    }
    (ext(sign | exp2 << 64 | u128::from(sig2)), true)
}

impl Interp {
    fn rc(&self) -> Round {
        match (self.cpu.fpu.fcw >> 10) & 3 {
            0 => Round::NearestTiesToEven,
            1 => Round::TowardNegative,
            2 => Round::TowardPositive,
            _ => Round::TowardZero,
        }
    }

    /// The precision FCW.PC selects (PC = 1 is reserved; it behaves as 64 bits here).
    fn pc_bits(&self) -> u32 {
        match (self.cpu.fpu.fcw >> 8) & 3 {
            0 => 24,
            2 => 53,
            _ => 64,
        }
    }

    /// Rounds the result of `f` (a computation on exact operands, given a rounding mode) as
    /// FCW says; sets PE/OE/UE and C1. `overflowed` says whether the exact result reaches
    /// 2^16384 (apfloat cannot tell that from a value just below it under directed
    /// rounding). `None` if an unmasked exception suppresses the result.
    pub(super) fn x87_round(
        &mut self,
        f: impl Fn(Round) -> StatusAnd<Ext>,
        overflowed: bool,
    ) -> Option<u128> {
        let rc = self.rc();
        let bits = self.pc_bits();
        let tz = f(Round::TowardZero);
        let exact = !tz.status.contains(Status::INEXACT);
        let (value, mut status) = if bits == 64 {
            let r = f(rc);
            (r.value, r.status)
        } else if exact {
            // Exact at 64 bits (and with the rounding mode's zero sign): one rounding.
            let r = f(rc);
            let (v, changed) = round_to_bits(r.value, bits, rc);
            let mut st = r.status;
            if changed {
                st |= Status::INEXACT;
            }
            if v.is_infinite() && !r.value.is_infinite() {
                st |= Status::OVERFLOW;
            }
            (v, st)
        } else {
            // Round to odd at 64 bits, then once to the target precision.
            // (A result below the smallest denormal becomes the smallest denormal: the
            // sticky bit keeps it from rounding as an exact zero.)
            let odd = bits80(tz.value) | 1;
            let (v, _) = round_to_bits(ext(odd), bits, rc);
            let mut st = tz.status | Status::INEXACT;
            if v.is_infinite() && !ext(odd).is_infinite() {
                st |= Status::OVERFLOW;
            }
            (v, st)
        };
        if overflowed && !status.contains(Status::OVERFLOW) {
            status |= Status::OVERFLOW | Status::INEXACT;
        }
        // A tiny result (denormal, or rounded from one) that is inexact underflows. Tiny is
        // judged after rounding with an unbounded exponent at PC's precision (SDM 4.9.1.5):
        // a result just below the smallest normal that rounds up to it is not tiny.
        let tiny = (bits80(tz.value) >> 64) & 0x7fff == 0
            && (!tz.value.is_zero() || !exact)
            && (bits >= 64 || !rounds_up_to_normal(bits80(tz.value), exact, bits, rc));
        if tiny && status.contains(Status::INEXACT) {
            status |= Status::UNDERFLOW;
        }
        let mut raised = 0;
        if status.contains(Status::OVERFLOW) {
            raised |= sw::OE;
        }
        if status.contains(Status::UNDERFLOW) {
            raised |= sw::UE;
        }
        if status.contains(Status::INEXACT) {
            raised |= sw::PE;
        }
        if raised != 0 && !self.fpu_raise(raised) {
            return None;
        }
        if status.contains(Status::INEXACT) && value.abs() > tz.value.abs() {
            self.cpu.fpu.fsw |= sw::C1;
        }
        Some(bits80(value))
    }

    /// Both operands checked in the x87's order: unsupported encodings and SNaNs (IE), NaNs
    /// (the NaN rule), then denormals (DE). `Err(result)` when that decides the result
    /// (`None`: an unmasked exception, no result).
    fn x87_operands(
        &mut self,
        a: u128,
        b: u128,
        extra_de: bool,
        div_by_zero: bool,
    ) -> std::result::Result<(), Option<u128>> {
        if unsupported(a) || unsupported(b) {
            return Err(self.fpu_raise(sw::IE).then_some(INDEFINITE));
        }
        let (x, y) = (ext(a), ext(b));
        if x.is_nan() || y.is_nan() {
            if (x.is_signaling() || y.is_signaling()) && !self.fpu_raise(sw::IE) {
                return Err(None);
            }
            return Err(Some(nan_pick(a, b)));
        }
        // A division of a finite non-zero value by zero raises ZE, which outranks DE.
        if !div_by_zero && (extra_de || denormal(a) || denormal(b)) && !self.fpu_raise(sw::DE) {
            return Err(None);
        }
        Ok(())
    }

    fn x87_binary(&mut self, op: Op, a: u128, b: u128, extra_de: bool) -> Option<u128> {
        let (x, y) = (ext(a), ext(b));
        let div_by_zero = op == Op::Div && y.is_zero() && x.is_finite() && !x.is_zero();
        if let Err(r) = self.x87_operands(a, b, extra_de, div_by_zero) {
            return r;
        }
        // The invalid operations and division by zero, decided before rounding.
        let invalid = match op {
            Op::Add => x.is_infinite() && y.is_infinite() && x.is_negative() != y.is_negative(),
            Op::Sub => x.is_infinite() && y.is_infinite() && x.is_negative() == y.is_negative(),
            Op::Mul => (x.is_zero() && y.is_infinite()) || (x.is_infinite() && y.is_zero()),
            Op::Div => (x.is_zero() && y.is_zero()) || (x.is_infinite() && y.is_infinite()),
        };
        if invalid {
            return self.fpu_raise(sw::IE).then_some(INDEFINITE);
        }
        if op == Op::Div && y.is_zero() && !x.is_infinite() {
            if !self.fpu_raise(sw::ZE) {
                return None;
            }
            let sign = (x.is_negative() != y.is_negative()) as u128;
            return Some(sign << 79 | 0x7fff << 64 | 1 << 63);
        }
        let compute = |x: Ext, y: Ext, r| match op {
            Op::Add => x.add_r(y, r),
            Op::Sub => x.sub_r(y, r),
            Op::Mul => x.mul_r(y, r),
            Op::Div => x.div_r(y, r),
        };
        // Whether the exact result reaches 2^16384: the same operation on halved operands
        // (halving is exact where it matters: a result that large has no denormal inputs
        // that could lose bits) reaching 2^16383.
        let overflowed = {
            let tz = compute(x, y, Round::TowardZero);
            tz.value.is_largest() && tz.status.contains(Status::INEXACT) && {
                let half = |v: Ext| v.scalbn(-1);
                let h = match op {
                    Op::Add | Op::Sub => compute(half(x), half(y), Round::TowardZero),
                    Op::Mul | Op::Div => compute(half(x), y, Round::TowardZero),
                };
                h.value.ilogb() >= 16383
            }
        };
        // Unmasked overflow or underflow with a register destination: the result is
        // delivered with its exponent biased by ∓24576 into range (SDM Vol. 1, 8.5.4/8.5.5),
        // computed here on operands scaled so the exact value lands in range.
        let fcw = self.cpu.fpu.fcw;
        let tz = compute(x, y, Round::TowardZero);
        let tiny = (bits80(tz.value) >> 64) & 0x7fff == 0
            && (!tz.value.is_zero() || tz.status.contains(Status::INEXACT));
        let bias = if overflowed && fcw & sw::OE == 0 {
            -24576
        } else if tiny && fcw & sw::UE == 0 {
            24576
        } else {
            0
        };
        if bias != 0 {
            let (xs, ys) = match op {
                Op::Add | Op::Sub => (x.scalbn(bias), y.scalbn(bias)),
                // Scale the operand that stays in range: the smaller one up, or the larger
                // one down.
                Op::Mul => {
                    if (x.ilogb() < y.ilogb()) == (bias > 0) {
                        (x.scalbn(bias), y)
                    } else {
                        (x, y.scalbn(bias))
                    }
                }
                Op::Div => {
                    if (x.ilogb() < 0) == (bias > 0) {
                        (x.scalbn(bias), y)
                    } else {
                        (x, y.scalbn(-bias))
                    }
                }
            };
            let value = self.x87_round(|r| compute(xs, ys, r), false)?;
            self.fpu_raise(if bias > 0 { sw::UE } else { sw::OE });
            return Some(value);
        }
        self.x87_round(|r| compute(x, y, r), overflowed)
    }

    pub(super) fn x87_arith(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        match m {
            M::Fsqrt | M::Frndint => return self.x87_unary(m),
            _ => {}
        }
        let op = match m {
            M::Fadd | M::Faddp | M::Fiadd => Op::Add,
            M::Fsub | M::Fsubp | M::Fisub | M::Fsubr | M::Fsubrp | M::Fisubr => Op::Sub,
            M::Fmul | M::Fmulp | M::Fimul => Op::Mul,
            _ => Op::Div,
        };
        let reverse = matches!(
            m,
            M::Fsubr | M::Fsubrp | M::Fisubr | M::Fdivr | M::Fdivrp | M::Fidivr
        );
        let pop = matches!(
            m,
            M::Faddp | M::Fsubp | M::Fsubrp | M::Fmulp | M::Fdivp | M::Fdivrp
        );
        let mem = (0..i.op_count()).any(|k| Self::is_mem(i, k));
        // The destination (an ST index) and the other operand: a register or a loaded value
        // with the exceptions its conversion detected.
        let (dst, src_reg, loaded) = if mem {
            let k = (0..i.op_count()).find(|&k| Self::is_mem(i, k)).unwrap_or(0);
            let size = i.memory_size().size() as u32;
            let integer = matches!(
                m,
                M::Fiadd | M::Fisub | M::Fisubr | M::Fimul | M::Fidiv | M::Fidivr
            );
            (
                0usize,
                None,
                Some(self.x87_load_operand(i, k, size, integer)?),
            )
        } else {
            let st = |k: u32| -> usize {
                if k < i.op_count() && i.op_kind(k) == OpKind::Register && i.op_register(k).is_st()
                {
                    i.op_register(k) as usize - iced_x86::Register::ST0 as usize
                } else {
                    0
                }
            };
            // `FADDP` with no operands is FADDP ST(1), ST0.
            let (d, s) = if i.op_count() == 0 {
                (1, 0)
            } else {
                (st(0), st(1))
            };
            (d, Some(s), None)
        };
        let src_ok = src_reg.is_none_or(|s| self.fpu_valid(s));
        if !self.fpu_valid(dst) || !src_ok {
            self.cpu.fpu.fsw &= !sw::C1;
            if self.fpu_raise(sw::IE | sw::SF) {
                self.fpu_put(dst, INDEFINITE);
                if pop {
                    self.fpu_pop();
                }
            }
            return Ok(());
        }
        let (src_bits, load_flags) = match (src_reg, loaded) {
            (Some(s), _) => (self.fpu_get(s), 0),
            (None, Some(l)) => l,
            (None, None) => unreachable!("an operand"),
        };
        if load_flags & sw::IE != 0 && !self.fpu_raise(sw::IE) {
            return Ok(());
        }
        let d = self.fpu_get(dst);
        let (a, b) = if reverse {
            (src_bits, d)
        } else {
            (d, src_bits)
        };
        if let Some(r) = self.x87_binary(op, a, b, load_flags & sw::DE != 0) {
            self.fpu_put(dst, r);
            if pop {
                self.fpu_pop();
            }
        }
        Ok(())
    }

    /// A memory operand of an arithmetic instruction: m32/m64 reals widened (with their IE/DE,
    /// not yet raised) or m16/m32 integers (exact).
    fn x87_load_operand(
        &mut self,
        i: &Instruction,
        k: u32,
        size: u32,
        integer: bool,
    ) -> Result<(u128, u16)> {
        if !(1..=16).contains(&size) {
            return Err(crate::interp::fault::Fault::ud().into());
        }
        let (seg, off) = self.mem_operand(i, k);
        let linear = self.seg_linear(seg, off, size, false)?;
        let mut b = [0u8; 16];
        let priv_ = self.privilege();
        self.read_linear(linear, &mut b[..size as usize], priv_)?;
        let raw = u128::from_le_bytes(b);
        if integer {
            let v = match size {
                2 => i128::from(raw as u16 as i16),
                _ => i128::from(raw as u32 as i32),
            };
            return Ok((bits80(Ext::from_i128(v).value), 0));
        }
        Ok(self.x87_widen(raw, size))
    }

    /// `x` × 2^`n` rounded as FCW says, as FSCALE computes it: a product by powers of two of
    /// at most 2^±16000 each (all but the last exact while in range; `n` is clamped to where
    /// the result is out of range anyway).
    pub(super) fn x87_scale(&mut self, x: Ext, n: i32) -> Option<u128> {
        // 2^e for e down to -16445 (the smallest denormal).
        let pow = |e: i32| {
            if e >= -16382 {
                ext(((e + 16383) as u128) << 64 | 1 << 63)
            } else {
                ext(1u128 << (e + 16445).max(0))
            }
        };
        // Exact steps of at most 2^±16000 toward the final exponent (stopping at the
        // smallest normal going down), then one rounded step.
        let e = x.ilogb();
        let exact_part = if n >= 0 { n } else { (e + n).max(-16382) - e };
        let mut steps = Vec::new();
        let mut left = exact_part;
        while left.abs() > 16000 {
            let step = 16000 * left.signum();
            steps.push(step);
            left -= step;
        }
        steps.push(left);
        let rest = n - exact_part;
        if rest != 0 {
            steps.push(rest.max(-16445));
        }
        let overflowed = n > 0 && x.ilogb().saturating_add(n) >= 16384;
        // FSCALE rounds to the full 64 bits whatever FCW.PC says.
        let fcw = self.cpu.fpu.fcw;
        self.cpu.fpu.fcw |= 3 << 8;
        let r = self.x87_round(
            |r| {
                let (last, first) = steps.split_last().expect("a step");
                let v = first
                    .iter()
                    .fold(x, |v, &e| v.mul_r(pow(e), Round::TowardZero).value);
                v.mul_r(pow(*last), r)
            },
            overflowed,
        );
        self.cpu.fpu.fcw = fcw;
        r
    }

    fn x87_unary(&mut self, m: M) -> Result<()> {
        self.cpu.fpu.fsw &= !sw::C1;
        if !self.fpu_valid(0) {
            if self.fpu_raise(sw::IE | sw::SF) {
                self.fpu_put(0, INDEFINITE);
            }
            return Ok(());
        }
        let a = self.fpu_get(0);
        let x = ext(a);
        let r = if unsupported(a) {
            self.fpu_raise(sw::IE).then_some(INDEFINITE)
        } else if x.is_nan() {
            if x.is_signaling() && !self.fpu_raise(sw::IE) {
                None
            } else {
                Some(quiet(a))
            }
        } else if m == M::Fsqrt && x.is_negative() && !x.is_zero() {
            // Invalid, and that outranks the operand's being denormal.
            self.fpu_raise(sw::IE).then_some(INDEFINITE)
        } else if denormal(a) && !self.fpu_raise(sw::DE) {
            None
        } else if m == M::Frndint {
            if x.is_infinite() || x.is_zero() {
                Some(a)
            } else {
                let rc = self.rc();
                let r = x.round_to_integral(rc);
                let mut raised = 0;
                if r.status.contains(Status::INEXACT) {
                    raised |= sw::PE;
                }
                if raised != 0 && !self.fpu_raise(raised) {
                    None
                } else {
                    if r.value.abs() > x.abs() {
                        self.cpu.fpu.fsw |= sw::C1;
                    }
                    Some(bits80(r.value))
                }
            }
        } else if x.is_zero() {
            Some(a)
        } else if x.is_negative() {
            self.fpu_raise(sw::IE).then_some(INDEFINITE)
        } else if x.is_infinite() {
            Some(a)
        } else {
            self.x87_round(|r| ext_sqrt(x, r), false)
        };
        if let Some(r) = r {
            self.fpu_put(0, r);
        }
        Ok(())
    }
}

/// The square root of a positive finite extended value, rounded with `round` to 64 bits,
/// computed on integers: 68 bits of root and a sticky bit make the one rounding exact.
fn ext_sqrt(x: Ext, round: Round) -> StatusAnd<Ext> {
    let v = bits80(x);
    let field = ((v >> 64) & 0x7fff) as i32;
    let sig = v as u64 as u128;
    // x = sig × 2^e (a denormal's exponent is that of the smallest normal).
    let mut e = if field == 0 {
        1 - 16383 - 63
    } else {
        field - 16383 - 63
    };
    let mut m = sig;
    if e % 2 != 0 {
        m <<= 1;
        e -= 1;
    }
    let len = 128 - m.leading_zeros() as i32;
    // A radicand of 136 bits: the root has 68.
    let k2 = (136 - len + 1) & !1;
    let (mut q, exact) = sqrt_bits(m, k2 as u32, (len + k2) as u32);
    if !exact {
        q |= 1;
    }
    let r = Ext::from_u128_r(q, round);
    StatusAnd {
        status: r.status,
        value: r.value.scalbn(e / 2 - k2 / 2),
    }
}

/// The integer square root of `m << shift` (`total` bits, even), digit by digit, and whether
/// it was exact; the radicand may be wider than 128 bits.
fn sqrt_bits(m: u128, shift: u32, total: u32) -> (u128, bool) {
    let total = (total + 1) & !1;
    let (mut rem, mut root) = (0u128, 0u128);
    for pair in (0..total / 2).rev() {
        let p = 2 * pair;
        let two = if p >= shift {
            (m >> (p - shift)) & 3
        } else {
            0
        };
        rem = (rem << 2) | two;
        let trial = (root << 2) | 1;
        if rem >= trial {
            rem -= trial;
            root = (root << 1) | 1;
        } else {
            root <<= 1;
        }
    }
    (root, rem == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tininess after rounding with an unbounded exponent (seed 2033's FISUBR under single
    /// precision and rounding down: the host reports no underflow).
    #[test]
    fn a_denormal_rounding_up_to_the_smallest_normal_is_not_tiny() {
        // Field bits 62..0 all ones: just below 2^-16382, negative.
        let below = (1u128 << 79) | u128::from(u64::MAX >> 1);
        assert!(rounds_up_to_normal(below, true, 24, Round::TowardNegative));
        assert!(rounds_up_to_normal(
            below,
            false,
            24,
            Round::NearestTiesToEven
        ));
        assert!(!rounds_up_to_normal(below, true, 24, Round::TowardZero));
        assert!(!rounds_up_to_normal(below, true, 24, Round::TowardPositive));
        // A zero among the bits kept: it stays below.
        let lower = below & !(1u128 << 50);
        assert!(!rounds_up_to_normal(
            lower,
            false,
            24,
            Round::TowardNegative
        ));
        // Only the kept bits ones, nothing below the rounding bit: exact, it stays.
        let kept = (1u128 << 79) | u128::from((u64::MAX >> 1) & !((1u64 << 39) - 1));
        assert!(!rounds_up_to_normal(kept, true, 24, Round::TowardNegative));
        assert!(!rounds_up_to_normal(
            kept,
            true,
            24,
            Round::NearestTiesToEven
        ));
    }

    #[test]
    fn rounding_to_a_narrower_precision() {
        // 1 + 2^-60 to 53 bits: nearest is 1, up is 1 + 2^-52.
        let x = ext(0x3fff_8000_0000_0000_0010);
        let (r, changed) = round_to_bits(x, 53, Round::NearestTiesToEven);
        assert!(changed);
        assert_eq!(bits80(r), 0x3fff_8000_0000_0000_0000);
        let (r, _) = round_to_bits(x, 53, Round::TowardPositive);
        assert_eq!(bits80(r), 0x3fff_8000_0000_0000_0800);
        // All ones rounds up into the next binade.
        let (r, _) = round_to_bits(
            ext(0x3fff_ffff_ffff_ffff_ffff),
            24,
            Round::NearestTiesToEven,
        );
        assert_eq!(bits80(r), 0x4000_8000_0000_0000_0000);
    }

    #[test]
    fn square_roots() {
        let two = ext(0x4000_8000_0000_0000_0000);
        let r = ext_sqrt(two, Round::NearestTiesToEven);
        assert_eq!(bits80(r.value), 0x3fff_b504_f333_f9de_6484);
        assert!(r.status.contains(Status::INEXACT));
        let four = ext(0x4001_8000_0000_0000_0000);
        let r = ext_sqrt(four, Round::NearestTiesToEven);
        assert_eq!(bits80(r.value), 0x4000_8000_0000_0000_0000);
        assert!(!r.status.contains(Status::INEXACT));
        assert_eq!(sqrt_bits(99, 0, 8), (9, false));
        assert_eq!(sqrt_bits(1, 200, 202), (1 << 100, true));
    }

    #[test]
    fn nan_rules() {
        let snan = 0x7fff_a000_0000_0000_0001u128;
        let qnan = 0x7fff_c000_0000_0000_0002u128;
        assert_eq!(nan_pick(snan, qnan), qnan);
        assert_eq!(nan_pick(qnan, snan), qnan);
        assert_eq!(nan_pick(snan, 0), quiet(snan));
    }
}
