//! PCLMULQDQ: the carry-less product of one quadword of each operand (imm8 bit 0 picks the
//! destination's, bit 4 the source's), 128 bits wide.

use iced_x86::Instruction;

use crate::interp::fault::Result;
use crate::interp::Interp;

pub fn clmul(a: u64, b: u64) -> u128 {
    (0..64)
        .filter(|k| b >> k & 1 == 1)
        .fold(0u128, |acc, k| acc ^ u128::from(a) << k)
}

impl Interp {
    pub(super) fn pclmulqdq(&mut self, i: &Instruction) -> Result<()> {
        let d = self.xmm(i, 0)?;
        let a = self.cpu.fpu.xmm[d];
        let b = self.simd_read(i, 1)?;
        let imm = i.immediate8();
        let qa = (a >> (64 * u32::from(imm & 1))) as u64;
        let qb = (b >> (64 * u32::from((imm >> 4) & 1))) as u64;
        self.cpu.fpu.xmm[d] = clmul(qa, qb);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carry_less_products() {
        assert_eq!(clmul(0b11, 0b11), 0b101);
        assert_eq!(clmul(u64::MAX, 2), u128::from(u64::MAX) << 1);
        assert_eq!(clmul(1 << 63, 1 << 63), 1 << 126);
    }
}
