//! Decimal arithmetic: DAA DAS AAA AAS AAM AAD (invalid in 64-bit mode).

use iced_x86::{Instruction, Mnemonic, Register};

use super::cpu::{flags::*, Mode};
use super::fault::{Fault, Result};
use super::flags_calc::szp;
use super::Interp;

impl Interp {
    pub(crate) fn bcd(&mut self, i: &Instruction) -> Result<()> {
        if self.cpu.mode() == Mode::Long64 {
            return Err(Fault::ud().into());
        }
        let ax = self.cpu.regs[0] & 0xffff;
        let (al, ah) = (ax & 0xff, ax >> 8);
        let cf = self.cpu.flag(CF);
        let af = self.cpu.flag(AF);
        match i.mnemonic() {
            Mnemonic::Daa | Mnemonic::Das => {
                let add = i.mnemonic() == Mnemonic::Daa;
                let mut new_al = al;
                let mut new_cf = false;
                let mut new_af = false;
                if al & 0xf > 9 || af {
                    let (v, carry) = if add {
                        (al + 6, al + 6 > 0xff)
                    } else {
                        (al.wrapping_sub(6), al < 6)
                    };
                    new_al = v & 0xff;
                    new_cf = cf || carry;
                    new_af = true;
                }
                if al > 0x99 || cf {
                    new_al = if add {
                        (new_al + 0x60) & 0xff
                    } else {
                        new_al.wrapping_sub(0x60) & 0xff
                    };
                    new_cf = true;
                }
                self.set_reg(Register::AL, new_al);
                let mut f = szp(new_al, 1);
                if new_cf {
                    f |= CF;
                }
                if new_af {
                    f |= AF;
                }
                self.set_status(f);
            }
            Mnemonic::Aaa | Mnemonic::Aas => {
                let adjust = al & 0xf > 9 || af;
                let new_ax = if !adjust {
                    ax & 0xff0f
                } else if i.mnemonic() == Mnemonic::Aaa {
                    let v = ax.wrapping_add(0x106);
                    (v & 0xff00) | (v & 0x0f)
                } else {
                    // AX ← AX − 6 (the borrow reaches AH), then AH ← AH − 1.
                    let v = ax.wrapping_sub(6) & 0xffff;
                    let high = ((v >> 8).wrapping_sub(1) & 0xff) << 8;
                    high | (v & 0x0f)
                };
                self.set_reg(Register::AX, new_ax);
                // OF SF ZF PF are undefined; current CPUs set them from the adjusted AL.
                let mut f = szp(new_ax & 0xff, 1);
                if adjust {
                    f |= AF | CF;
                }
                self.set_status(f);
            }
            Mnemonic::Aam => {
                let base = i.immediate(0) & 0xff;
                if base == 0 {
                    return Err(Fault::de().into());
                }
                let r = ((al / base) << 8) | (al % base);
                self.set_reg(Register::AX, r);
                // CF OF AF are undefined; hardware clears them, as a logical operation would.
                self.set_status(szp(r & 0xff, 1));
            }
            _ => {
                // AAD
                let base = i.immediate(0) & 0xff;
                // Hardware computes AL + (AH × imm) as an 8-bit ADD: its CF, OF and AF are
                // the "undefined" flags software can observe.
                let (r, f) = super::flags_calc::add(al, (ah * base) & 0xff, false, 1);
                self.set_reg(Register::AX, r);
                self.set_status(f);
            }
        }
        Ok(())
    }
}
