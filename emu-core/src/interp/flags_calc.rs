//! The arithmetic flags of each operation, computed explicitly (the interpreter is the
//! reference; a lazy scheme belongs to the translator).

use super::cpu::flags::*;
use super::operand::mask;

pub fn sign_bit(size: u32) -> u64 {
    1u64 << (size * 8 - 1)
}

fn parity(v: u64) -> u64 {
    if (v as u8).count_ones().is_multiple_of(2) {
        PF
    } else {
        0
    }
}

/// ZF, SF, PF of a result.
pub fn szp(res: u64, size: u32) -> u64 {
    let r = res & mask(size);
    let mut f = parity(r);
    if r == 0 {
        f |= ZF;
    }
    if r & sign_bit(size) != 0 {
        f |= SF;
    }
    f
}

/// a + b + carry: (result, flags).
pub fn add(a: u64, b: u64, carry: bool, size: u32) -> (u64, u64) {
    let m = mask(size);
    let (a, b) = (a & m, b & m);
    let c = u64::from(carry);
    let wide = u128::from(a) + u128::from(b) + u128::from(c);
    let res = (wide as u64) & m;
    let mut f = szp(res, size);
    if wide > u128::from(m) {
        f |= CF;
    }
    if (a ^ b ^ res) & 0x10 != 0 {
        f |= AF;
    }
    if (!(a ^ b) & (a ^ res)) & sign_bit(size) != 0 {
        f |= OF;
    }
    (res, f)
}

/// a - b - borrow: (result, flags).
pub fn sub(a: u64, b: u64, borrow: bool, size: u32) -> (u64, u64) {
    let m = mask(size);
    let (a, b) = (a & m, b & m);
    let c = u64::from(borrow);
    let res = a.wrapping_sub(b).wrapping_sub(c) & m;
    let mut f = szp(res, size);
    if u128::from(a) < u128::from(b) + u128::from(c) {
        f |= CF;
    }
    if (a ^ b ^ res) & 0x10 != 0 {
        f |= AF;
    }
    if ((a ^ b) & (a ^ res)) & sign_bit(size) != 0 {
        f |= OF;
    }
    (res, f)
}

/// AND/OR/XOR/TEST: CF = OF = 0, AF undefined (0 here, as current CPUs leave it).
pub fn logic(res: u64, size: u32) -> u64 {
    szp(res, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_sub_flags() {
        assert_eq!(add(0xff, 1, false, 1), (0, ZF | CF | AF | PF));
        assert_eq!(add(0x7f, 1, false, 1), (0x80, SF | OF | AF));
        assert_eq!(sub(0, 1, false, 4), (0xffff_ffff, SF | CF | AF | PF));
        assert_eq!(sub(0x80, 1, false, 1), (0x7f, OF | AF));
        assert_eq!(sub(5, 5, false, 8), (0, ZF | PF));
        assert_eq!(add(u64::MAX, 0, true, 8), (0, ZF | CF | AF | PF));
    }
}
