//! SSE/SSE2 data movement: whole-register and partial moves between XMM registers, general
//! registers and memory, shuffles, word insert/extract and the sign-bit masks.

use iced_x86::{Instruction, Mnemonic as M, OpKind};

use super::lanes::{join, lanes};
use super::xmm_index;
use crate::interp::fault::Result;
use crate::interp::Interp;

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::Movd
            | M::Movq
            | M::Movdqa
            | M::Movdqu
            | M::Movaps
            | M::Movups
            | M::Movapd
            | M::Movupd
            | M::Movntdq
            | M::Movntps
            | M::Movntpd
            | M::Movss
            | M::Movsd
            | M::Movlps
            | M::Movhps
            | M::Movlpd
            | M::Movhpd
            | M::Movhlps
            | M::Movlhps
            | M::Pshufd
            | M::Pshuflw
            | M::Pshufhw
            | M::Shufps
            | M::Shufpd
            | M::Pextrw
            | M::Pinsrw
            | M::Pmovmskb
            | M::Movmskps
            | M::Movmskpd
            | M::Movddup
            | M::Movshdup
            | M::Movsldup
            | M::Lddqu
    )
}

const LOW64: u128 = u64::MAX as u128;

/// Sign bits of `n` lanes of `v`, lane 0 in bit 0.
fn sign_mask(n: usize, v: u128) -> u64 {
    let bits = 128 / n;
    (0..n).fold(0, |m, k| {
        m | ((((v >> (k * bits + bits - 1)) & 1) as u64) << k)
    })
}

impl Interp {
    pub(super) fn simd_move(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        let dst_is_xmm = i.op_kind(0) == OpKind::Register && xmm_index(i.op_register(0)).is_some();
        match m {
            M::Pextrw => {
                let v = self.cpu.fpu.xmm[self.xmm(i, 1)?];
                let w = lanes::<8>(v)[(i.immediate8() & 7) as usize];
                self.write_op(i, 0, w)
            }
            M::Pmovmskb | M::Movmskps | M::Movmskpd => {
                let v = self.cpu.fpu.xmm[self.xmm(i, 1)?];
                let n = match m {
                    M::Pmovmskb => 16,
                    M::Movmskps => 4,
                    _ => 2,
                };
                // A 32-bit destination zero-extends, as every 32-bit GPR write does.
                self.write_op(i, 0, sign_mask(n, v))
            }
            _ if !dst_is_xmm => {
                // A store (or a GPR destination): the low bytes of the XMM source.
                let v = self.cpu.fpu.xmm[self.xmm(i, 1)?];
                let v = match m {
                    M::Movhps | M::Movhpd => v >> 64,
                    _ => v,
                };
                if i.op_kind(0) == OpKind::Register {
                    self.write_op(i, 0, v as u64)
                } else {
                    let size = i.memory_size().size() as u32;
                    self.simd_write_mem(i, 0, size, v)
                }
            }
            _ => {
                let d = self.xmm(i, 0)?;
                let old = self.cpu.fpu.xmm[d];
                let src_is_mem = Self::is_mem(i, 1);
                let src = self.simd_read(i, 1)?;
                let new = match m {
                    // From a GPR or memory, or the low quadword of an XMM register: the rest
                    // of the destination is cleared.
                    M::Movd => src & 0xffff_ffff,
                    M::Movq => src & LOW64,
                    M::Movss if src_is_mem => src & 0xffff_ffff,
                    M::Movss => (old & !0xffff_ffff) | (src & 0xffff_ffff),
                    M::Movsd if src_is_mem => src & LOW64,
                    M::Movsd => (old & !LOW64) | (src & LOW64),
                    M::Movlps | M::Movlpd => (old & !LOW64) | (src & LOW64),
                    M::Movhps | M::Movhpd => (old & LOW64) | (src << 64),
                    M::Movhlps => (old & !LOW64) | (src >> 64),
                    M::Movlhps => (old & LOW64) | (src << 64),
                    M::Pshufd => {
                        let l = lanes::<4>(src);
                        let imm = i.immediate8() as usize;
                        join::<4>(std::array::from_fn(|k| l[(imm >> (2 * k)) & 3]))
                    }
                    M::Pshuflw | M::Pshufhw => {
                        let l = lanes::<8>(src);
                        let imm = i.immediate8() as usize;
                        let base = if m == M::Pshufhw { 4 } else { 0 };
                        join::<8>(std::array::from_fn(|k| {
                            if k / 4 == base / 4 {
                                l[base + ((imm >> (2 * (k % 4))) & 3)]
                            } else {
                                l[k]
                            }
                        }))
                    }
                    M::Shufps => {
                        let (a, b) = (lanes::<4>(old), lanes::<4>(src));
                        let s = |k: usize| (i.immediate8() as usize >> (2 * k)) & 3;
                        join::<4>([a[s(0)], a[s(1)], b[s(2)], b[s(3)]])
                    }
                    M::Shufpd => {
                        let (a, b) = (lanes::<2>(old), lanes::<2>(src));
                        let imm = i.immediate8() as usize;
                        join::<2>([a[imm & 1], b[(imm >> 1) & 1]])
                    }
                    M::Pinsrw => {
                        let k = (i.immediate8() & 7) as usize;
                        let mut l = lanes::<8>(old);
                        l[k] = (src & 0xffff) as u64;
                        join::<8>(l)
                    }
                    // SSE3's duplicating moves.
                    M::Movddup => (src & LOW64) | (src << 64),
                    M::Movshdup => {
                        let l = lanes::<4>(src);
                        join::<4>([l[1], l[1], l[3], l[3]])
                    }
                    M::Movsldup => {
                        let l = lanes::<4>(src);
                        join::<4>([l[0], l[0], l[2], l[2]])
                    }
                    // Whole-register moves.
                    _ => src,
                };
                self.cpu.fpu.xmm[d] = new;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_masks() {
        let v = join::<16>([0x80, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81]);
        assert_eq!(sign_mask(16, v), 0x8005);
        assert_eq!(sign_mask(2, 1u128 << 127), 2);
    }
}
