//! Bit counting (POPCNT, LZCNT, TZCNT) and the BMI1 bit-manipulation group (ANDN, BEXTR,
//! BLSI, BLSMSK, BLSR).
//!
//! Flags the manual leaves undefined (AF, PF and, for some, SF/OF) are cleared; the
//! differential harness masks them.

use iced_x86::{Instruction, Mnemonic};

use super::cpu::flags::*;
use super::fault::Result;
use super::flags_calc::sign_bit;
use super::operand::mask;
use super::Interp;

impl Interp {
    /// POPCNT, LZCNT, TZCNT.
    pub(crate) fn bit_count(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let bits = size * 8;
        let v = self.read_op(i, 1)? & mask(size);
        let (r, f) = match i.mnemonic() {
            Mnemonic::Popcnt => {
                let r = u64::from(v.count_ones());
                (r, if v == 0 { ZF } else { 0 })
            }
            m => {
                let r = if v == 0 {
                    u64::from(bits)
                } else if m == Mnemonic::Lzcnt {
                    u64::from(v.leading_zeros() - (64 - bits))
                } else {
                    u64::from(v.trailing_zeros())
                };
                let mut f = if v == 0 { CF } else { 0 };
                if r == 0 {
                    f |= ZF;
                }
                (r, f)
            }
        };
        self.write_op(i, 0, r)?;
        self.set_status(f);
        Ok(())
    }

    /// ANDN, BEXTR, BLSI, BLSMSK, BLSR (VEX-encoded, 32- or 64-bit operands).
    pub(crate) fn bmi1(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let m = mask(size);
        let sf_zf = |r: u64| {
            let mut f = 0;
            if r == 0 {
                f |= ZF;
            }
            if r & sign_bit(size) != 0 {
                f |= SF;
            }
            f
        };
        let (r, f) = match i.mnemonic() {
            Mnemonic::Andn => {
                let r = !self.read_op(i, 1)? & self.read_op(i, 2)? & m;
                (r, sf_zf(r))
            }
            Mnemonic::Bextr => {
                let src = self.read_op(i, 1)? & m;
                let ctl = self.read_op(i, 2)?;
                let (start, len) = ((ctl & 0xff) as u32, ((ctl >> 8) & 0xff) as u32);
                let shifted = if start >= size * 8 { 0 } else { src >> start };
                let r = if len >= 64 {
                    shifted
                } else {
                    shifted & ((1u64 << len) - 1)
                } & m;
                (r, if r == 0 { ZF } else { 0 })
            }
            mn => {
                let src = self.read_op(i, 1)? & m;
                let r = match mn {
                    Mnemonic::Blsi => src.wrapping_neg() & src,
                    Mnemonic::Blsmsk => src.wrapping_sub(1) ^ src,
                    _ => src.wrapping_sub(1) & src, // BLSR
                } & m;
                let cf = if mn == Mnemonic::Blsi {
                    src != 0
                } else {
                    src == 0
                };
                let mut f = sf_zf(r);
                if cf {
                    f |= CF;
                }
                (r, f)
            }
        };
        self.write_op(i, 0, r)?;
        self.set_status(f);
        Ok(())
    }
}
