//! BMI2 (BZHI PDEP PEXT MULX RORX SARX SHLX SHRX), ADX (ADCX ADOX) and MOVBE.
//!
//! All but BZHI, ADCX and ADOX leave the flags alone; that is their point (flag-free
//! arithmetic for multi-precision code).

use iced_x86::{Instruction, Mnemonic};

use super::cpu::flags::*;
use super::fault::Result;
use super::flags_calc::sign_bit;
use super::operand::mask;
use super::Interp;

fn pdep(src: u64, mut m: u64) -> u64 {
    let (mut out, mut k) = (0, 0);
    while m != 0 {
        let bit = m & m.wrapping_neg();
        if src >> k & 1 != 0 {
            out |= bit;
        }
        k += 1;
        m &= m - 1;
    }
    out
}

fn pext(src: u64, mut m: u64) -> u64 {
    let (mut out, mut k) = (0, 0);
    while m != 0 {
        let bit = m & m.wrapping_neg();
        if src & bit != 0 {
            out |= 1 << k;
        }
        k += 1;
        m &= m - 1;
    }
    out
}

impl Interp {
    pub(crate) fn bmi2(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let bits = size * 8;
        let m = mask(size);
        match i.mnemonic() {
            Mnemonic::Bzhi => {
                let src = self.read_op(i, 1)? & m;
                let n = (self.read_op(i, 2)? & 0xff) as u32;
                let (r, cf) = if n < bits {
                    (src & ((1u64 << n) - 1), false)
                } else {
                    (src, true)
                };
                self.write_op(i, 0, r)?;
                let mut f = if cf { CF } else { 0 };
                if r == 0 {
                    f |= ZF;
                }
                if r & sign_bit(size) != 0 {
                    f |= SF;
                }
                self.set_status(f);
            }
            Mnemonic::Pdep | Mnemonic::Pext => {
                let src = self.read_op(i, 1)? & m;
                let sel = self.read_op(i, 2)? & m;
                let r = if i.mnemonic() == Mnemonic::Pdep {
                    pdep(src, sel)
                } else {
                    pext(src, sel)
                };
                self.write_op(i, 0, r)?;
            }
            Mnemonic::Mulx => {
                let rdx = self.cpu.regs[2] & m;
                let src = self.read_op(i, 2)? & m;
                let p = u128::from(rdx) * u128::from(src);
                let (lo, hi) = ((p as u64) & m, (p >> bits) as u64 & m);
                // Low half first: when both destinations are one register, the high half wins.
                self.write_op(i, 1, lo)?;
                self.write_op(i, 0, hi)?;
            }
            Mnemonic::Rorx => {
                let src = self.read_op(i, 1)? & m;
                let n = (i.immediate(2) as u32) & (bits - 1);
                let r = if n == 0 {
                    src
                } else {
                    ((src >> n) | (src << (bits - n))) & m
                };
                self.write_op(i, 0, r)?;
            }
            mn => {
                // SARX SHLX SHRX: the count is the third operand, masked like a shift count.
                let src = self.read_op(i, 1)? & m;
                let n = (self.read_op(i, 2)? as u32) & (bits - 1);
                let r = match mn {
                    Mnemonic::Shlx => src << n,
                    Mnemonic::Shrx => src >> n,
                    _ => {
                        let shift = 64 - bits;
                        (((src << shift) as i64 >> shift) >> n) as u64
                    }
                } & m;
                self.write_op(i, 0, r)?;
            }
        }
        Ok(())
    }

    /// ADCX (carry in and out through CF) and ADOX (through OF); no other flag changes.
    pub(crate) fn adx(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let m = mask(size);
        let flag = if i.mnemonic() == Mnemonic::Adcx {
            CF
        } else {
            OF
        };
        let a = self.read_op(i, 0)? & m;
        let b = self.read_op(i, 1)? & m;
        let sum = u128::from(a) + u128::from(b) + u128::from(self.cpu.flag(flag));
        self.write_op(i, 0, sum as u64 & m)?;
        self.cpu.set_flag(flag, sum >> (size * 8) != 0);
        Ok(())
    }

    /// MOVBE: a load or store that reverses the byte order.
    pub(crate) fn movbe(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let v = self.read_op(i, 1)?;
        let swapped = match size {
            2 => u64::from((v as u16).swap_bytes()),
            4 => u64::from((v as u32).swap_bytes()),
            _ => v.swap_bytes(),
        };
        self.write_op(i, 0, swapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deposit_and_extract_are_inverse_on_the_mask() {
        assert_eq!(pdep(0b101, 0b1101_0000), 0b1001_0000);
        assert_eq!(pext(0b1001_0000, 0b1101_0000), 0b101);
        assert_eq!(pext(u64::MAX, 0), 0);
    }
}
