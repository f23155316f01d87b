//! AES-NI: AESENC/AESENCLAST/AESDEC/AESDECLAST (one round on a 128-bit state with a round key),
//! AESIMC and AESKEYGENASSIST, computed from the AES definition (FIPS-197): the S-box is built
//! at compile time from the GF(2^8) inverse and the affine map.

use iced_x86::{Instruction, Mnemonic as M};

use crate::interp::fault::{Fault, Result};
use crate::interp::Interp;

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::Aesenc | M::Aesenclast | M::Aesdec | M::Aesdeclast | M::Aesimc | M::Aeskeygenassist
    )
}

/// Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
const fn gmul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let hi = a & 0x80;
        a <<= 1;
        if hi != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    p
}

const fn make_sbox() -> [u8; 256] {
    let mut s = [0u8; 256];
    let mut x = 0usize;
    while x < 256 {
        // The inverse (0 for 0): x^254.
        let mut inv = 1u8;
        let mut k = 0;
        while k < 254 {
            inv = gmul(inv, x as u8);
            k += 1;
        }
        if x == 0 {
            inv = 0;
        }
        let b = inv;
        s[x] = b ^ b.rotate_left(1) ^ b.rotate_left(2) ^ b.rotate_left(3) ^ b.rotate_left(4) ^ 0x63;
        x += 1;
    }
    s
}

const fn invert(s: &[u8; 256]) -> [u8; 256] {
    let mut inv = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        inv[s[x] as usize] = x as u8;
        x += 1;
    }
    inv
}

const SBOX: [u8; 256] = make_sbox();
const INV_SBOX: [u8; 256] = invert(&SBOX);

/// The state's bytes, column-major as AES numbers them (byte 4c + r is row r of column c).
fn bytes(v: u128) -> [u8; 16] {
    v.to_le_bytes()
}

fn value(b: [u8; 16]) -> u128 {
    u128::from_le_bytes(b)
}

fn shift_rows(s: [u8; 16], inverse: bool) -> [u8; 16] {
    std::array::from_fn(|k| {
        let (c, r) = (k / 4, k % 4);
        let from = if inverse {
            (c + 4 - r) % 4
        } else {
            (c + r) % 4
        };
        s[4 * from + r]
    })
}

fn sub_bytes(s: [u8; 16], inverse: bool) -> [u8; 16] {
    let table = if inverse { &INV_SBOX } else { &SBOX };
    s.map(|b| table[usize::from(b)])
}

fn mix_columns(s: [u8; 16], inverse: bool) -> [u8; 16] {
    let m: [u8; 4] = if inverse {
        [14, 11, 13, 9]
    } else {
        [2, 3, 1, 1]
    };
    std::array::from_fn(|k| {
        let (c, r) = (k / 4, k % 4);
        (0..4).fold(0, |acc, j| acc ^ gmul(m[(j + 4 - r) % 4], s[4 * c + j]))
    })
}

fn sub_word(w: u32) -> u32 {
    u32::from_le_bytes(w.to_le_bytes().map(|b| SBOX[usize::from(b)]))
}

/// One AES-NI operation on `state` with `key` (the second operand; AESIMC and
/// AESKEYGENASSIST read only it).
pub fn op(m: M, state: u128, key: u128, imm: u8) -> Option<u128> {
    let s = bytes(state);
    Some(match m {
        M::Aesenc => value(mix_columns(sub_bytes(shift_rows(s, false), false), false)) ^ key,
        M::Aesenclast => value(sub_bytes(shift_rows(s, false), false)) ^ key,
        M::Aesdec => value(mix_columns(sub_bytes(shift_rows(s, true), true), true)) ^ key,
        M::Aesdeclast => value(sub_bytes(shift_rows(s, true), true)) ^ key,
        M::Aesimc => value(mix_columns(bytes(key), true)),
        M::Aeskeygenassist => {
            let w = |k: u32| (key >> (32 * k)) as u32;
            let (x1, x3) = (sub_word(w(1)), sub_word(w(3)));
            let rcon = u32::from(imm);
            u128::from(x1)
                | u128::from(x1.rotate_right(8) ^ rcon) << 32
                | u128::from(x3) << 64
                | u128::from(x3.rotate_right(8) ^ rcon) << 96
        }
        _ => return None,
    })
}

impl Interp {
    pub(super) fn simd_aes(&mut self, i: &Instruction) -> Result<()> {
        let d = self.xmm(i, 0)?;
        let a = self.cpu.fpu.xmm[d];
        let b = self.simd_read(i, 1)?;
        let imm = if i.op_count() > 2 { i.immediate8() } else { 0 };
        self.cpu.fpu.xmm[d] = op(i.mnemonic(), a, b, imm).ok_or_else(Fault::ud)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbox_and_mix_columns() {
        assert_eq!(SBOX[0x00], 0x63);
        assert_eq!(SBOX[0x53], 0xed);
        assert_eq!(INV_SBOX[0x63], 0x00);
        let mut s = [0u8; 16];
        s[..4].copy_from_slice(&[0xdb, 0x13, 0x53, 0x45]);
        let m = mix_columns(s, false);
        assert_eq!(m[..4], [0x8e, 0x4d, 0xa1, 0xbc]);
        assert_eq!(mix_columns(m, true)[..4], [0xdb, 0x13, 0x53, 0x45]);
    }

    #[test]
    fn fips_197_aes_128() {
        // Key expansion with AESKEYGENASSIST, as software does it, then ten rounds.
        let rcons = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36];
        let mut keys = vec![0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100u128];
        for rcon in rcons {
            let prev = *keys.last().unwrap();
            let assist = op(M::Aeskeygenassist, 0, prev, rcon).unwrap();
            let t = (assist >> 96) as u32;
            let mut w: [u32; 4] = std::array::from_fn(|k| (prev >> (32 * k)) as u32);
            w[0] ^= t;
            w[1] ^= w[0];
            w[2] ^= w[1];
            w[3] ^= w[2];
            keys.push(
                w.iter()
                    .enumerate()
                    .fold(0, |v, (k, x)| v | u128::from(*x) << (32 * k)),
            );
        }
        let plain = u128::from_le_bytes([
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        let mut s = plain ^ keys[0];
        for k in &keys[1..10] {
            s = op(M::Aesenc, s, *k, 0).unwrap();
        }
        s = op(M::Aesenclast, s, keys[10], 0).unwrap();
        let expect = u128::from_le_bytes([
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ]);
        assert_eq!(s, expect);
        // And back, with the equivalent inverse cipher's keys (AESIMC).
        let mut d = s ^ keys[10];
        for k in keys[1..10].iter().rev() {
            d = op(M::Aesdec, d, op(M::Aesimc, 0, *k, 0).unwrap(), 0).unwrap();
        }
        d = op(M::Aesdeclast, d, keys[0], 0).unwrap();
        assert_eq!(d, plain);
    }
}
