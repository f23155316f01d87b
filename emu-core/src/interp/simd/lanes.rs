//! A 128-bit register as lanes of 8, 16, 32 or 64 bits, and the packed integer operations
//! of SSE2 on them. Pure functions of their inputs.

/// Lane widths in bytes.
pub fn lanes<const N: usize>(v: u128) -> [u64; N] {
    let bits = 128 / N;
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    std::array::from_fn(|k| (v >> (k * bits)) as u64 & mask)
}

pub fn join<const N: usize>(l: [u64; N]) -> u128 {
    let bits = 128 / N;
    let mask: u128 = if bits == 64 {
        u64::MAX as u128
    } else {
        (1u128 << bits) - 1
    };
    l.iter()
        .enumerate()
        .fold(0, |acc, (k, &x)| acc | ((x as u128 & mask) << (k * bits)))
}

/// Applies `f` to each pair of lanes of `n` lanes.
pub fn map2(n: usize, a: u128, b: u128, f: impl Fn(u64, u64) -> u64) -> u128 {
    match n {
        16 => join::<16>(zip(lanes::<16>(a), lanes::<16>(b), f)),
        8 => join::<8>(zip(lanes::<8>(a), lanes::<8>(b), f)),
        4 => join::<4>(zip(lanes::<4>(a), lanes::<4>(b), f)),
        _ => join::<2>(zip(lanes::<2>(a), lanes::<2>(b), f)),
    }
}

fn zip<const N: usize>(a: [u64; N], b: [u64; N], f: impl Fn(u64, u64) -> u64) -> [u64; N] {
    std::array::from_fn(|k| f(a[k], b[k]))
}

/// A lane of `bits` as a signed value.
pub fn sx(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// Saturates `v` to a signed lane of `bits`.
pub fn sat_s(v: i64, bits: u32) -> u64 {
    let (lo, hi) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
    v.clamp(lo, hi) as u64 & ((1u64 << bits) - 1)
}

/// Saturates `v` to an unsigned lane of `bits`.
pub fn sat_u(v: i64, bits: u32) -> u64 {
    v.clamp(0, (1i64 << bits) - 1) as u64
}

/// Interleaves the low (`high` false) or high halves of `a` and `b`, lanes of `n`.
pub fn unpack(n: usize, a: u128, b: u128, high: bool) -> u128 {
    let pick = |la: &[u64], lb: &[u64]| -> Vec<u64> {
        let half = la.len() / 2;
        let start = if high { half } else { 0 };
        (0..half)
            .flat_map(|k| [la[start + k], lb[start + k]])
            .collect()
    };
    match n {
        16 => join::<16>(to_arr(pick(&lanes::<16>(a), &lanes::<16>(b)))),
        8 => join::<8>(to_arr(pick(&lanes::<8>(a), &lanes::<8>(b)))),
        4 => join::<4>(to_arr(pick(&lanes::<4>(a), &lanes::<4>(b)))),
        _ => join::<2>(to_arr(pick(&lanes::<2>(a), &lanes::<2>(b)))),
    }
}

fn to_arr<const N: usize>(v: Vec<u64>) -> [u64; N] {
    v.try_into().expect("lane count")
}

/// PACKSSWB/PACKSSDW/PACKUSWB: `a`'s lanes then `b`'s, each narrowed to half width with
/// signed or unsigned saturation. `n` is the source lane count.
pub fn pack(n: usize, a: u128, b: u128, unsigned: bool) -> u128 {
    let src_bits = (128 / n) as u32;
    let dst_bits = src_bits / 2;
    let narrow = |x: u64| {
        let s = sx(x, src_bits);
        if unsigned {
            sat_u(s, dst_bits)
        } else {
            sat_s(s, dst_bits)
        }
    };
    let (la, lb): (Vec<u64>, Vec<u64>) = match n {
        8 => (lanes::<8>(a).to_vec(), lanes::<8>(b).to_vec()),
        _ => (lanes::<4>(a).to_vec(), lanes::<4>(b).to_vec()),
    };
    let out: Vec<u64> = la.into_iter().chain(lb).map(narrow).collect();
    match n {
        8 => join::<16>(to_arr(out)),
        _ => join::<8>(to_arr(out)),
    }
}

/// PSLL/PSRL/PSRA on lanes of `bits` by `count` (counts past the width give 0, or the sign
/// for arithmetic shifts).
pub fn shift(n: usize, v: u128, count: u64, kind: ShiftKind) -> u128 {
    let bits = (128 / n) as u32;
    let f = |x: u64| -> u64 {
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        match kind {
            ShiftKind::Left if count >= u64::from(bits) => 0,
            ShiftKind::Left => (x << count) & mask,
            ShiftKind::Right if count >= u64::from(bits) => 0,
            ShiftKind::Right => x >> count,
            ShiftKind::Arith => {
                let c = count.min(u64::from(bits) - 1);
                (sx(x, bits) >> c) as u64 & mask
            }
        }
    };
    map2(n, v, 0, |x, _| f(x))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShiftKind {
    Left,
    Right,
    Arith,
}

/// Runtime-width lanes (the width comes from the instruction): the `n` lanes of `bits`
/// each in the low `n × bits` bits of `v`.
pub fn split(v: u128, n: usize, bits: u32) -> Vec<u64> {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    (0..n)
        .map(|k| (v >> (bits as usize * k)) as u64 & mask)
        .collect()
}

/// The inverse of [`split`]: lanes of `bits` packed from bit 0 up.
pub fn merge(l: &[u64], bits: u32) -> u128 {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    l.iter().enumerate().fold(0, |v, (k, x)| {
        v | u128::from(x & mask) << (bits as usize * k)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_round_trip() {
        let v = 0x0011_2233_4455_6677_8899_aabb_ccdd_eeffu128;
        assert_eq!(join::<16>(lanes::<16>(v)), v);
        assert_eq!(join::<8>(lanes::<8>(v)), v);
        assert_eq!(join::<4>(lanes::<4>(v)), v);
        assert_eq!(join::<2>(lanes::<2>(v)), v);
        assert_eq!(lanes::<4>(v)[0], 0xccdd_eeff);
        assert_eq!(lanes::<2>(v)[1], 0x0011_2233_4455_6677);
    }

    #[test]
    fn packs_and_unpacks() {
        // Words 0x0100 (256) and 0xff80 (-128) to bytes: signed 127, -128; unsigned 255, 0.
        let a = join::<8>([0x100, 0xff80, 0, 0, 0, 0, 0, 0]);
        assert_eq!(lanes::<16>(pack(8, a, 0, false))[..2], [0x7f, 0x80]);
        assert_eq!(lanes::<16>(pack(8, a, 0, true))[..2], [0xff, 0x00]);
        let (x, y) = (join::<4>([1, 2, 3, 4]), join::<4>([5, 6, 7, 8]));
        assert_eq!(lanes::<4>(unpack(4, x, y, false)), [1, 5, 2, 6]);
        assert_eq!(lanes::<4>(unpack(4, x, y, true)), [3, 7, 4, 8]);
    }

    #[test]
    fn shifts() {
        let v = join::<8>([0x8001; 8]);
        assert_eq!(lanes::<8>(shift(8, v, 1, ShiftKind::Left))[0], 0x0002);
        assert_eq!(lanes::<8>(shift(8, v, 16, ShiftKind::Left))[0], 0);
        assert_eq!(lanes::<8>(shift(8, v, 1, ShiftKind::Arith))[0], 0xc000);
        assert_eq!(lanes::<8>(shift(8, v, 99, ShiftKind::Arith))[0], 0xffff);
        assert_eq!(lanes::<8>(shift(8, v, 15, ShiftKind::Right))[0], 1);
    }
}
