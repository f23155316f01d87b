//! Data movement, arithmetic, logic, shifts, multiplication and division, bit operations.

use iced_x86::{ConditionCode, Instruction, Mnemonic, OpKind, Register};

use super::cpu::flags::*;
use super::fault::{Fault, Result};
use super::flags_calc::{self, sign_bit, szp};
use super::operand::{mask, sign_extend};
use super::Interp;

impl Interp {
    /// Replaces the status flags with `f`.
    pub fn set_status(&mut self, f: u64) {
        self.cpu.rflags = (self.cpu.rflags & !STATUS) | (f & STATUS);
    }

    /// Replaces the flags in `which` with those of `f`.
    pub fn set_flags_masked(&mut self, f: u64, which: u64) {
        self.cpu.rflags = (self.cpu.rflags & !which) | (f & which);
    }

    pub fn cond(&self, cc: ConditionCode) -> bool {
        let f = |b| self.cpu.flag(b);
        match cc {
            ConditionCode::o => f(OF),
            ConditionCode::no => !f(OF),
            ConditionCode::b => f(CF),
            ConditionCode::ae => !f(CF),
            ConditionCode::e => f(ZF),
            ConditionCode::ne => !f(ZF),
            ConditionCode::be => f(CF) || f(ZF),
            ConditionCode::a => !f(CF) && !f(ZF),
            ConditionCode::s => f(SF),
            ConditionCode::ns => !f(SF),
            ConditionCode::p => f(PF),
            ConditionCode::np => !f(PF),
            ConditionCode::l => f(SF) != f(OF),
            ConditionCode::ge => f(SF) == f(OF),
            ConditionCode::le => f(ZF) || f(SF) != f(OF),
            ConditionCode::g => !f(ZF) && f(SF) == f(OF),
            ConditionCode::None => true,
        }
    }

    pub(crate) fn mov(&mut self, i: &Instruction) -> Result<()> {
        // MOV to/from segment, control and debug registers is handled by the system module.
        let size = self.op_size(i, 0);
        let v = self.read_op(i, 1)?;
        self.write_op(i, 0, v & mask(size))
    }

    pub(crate) fn movzx_movsx(&mut self, i: &Instruction) -> Result<()> {
        let src_size = self.op_size(i, 1);
        let v = self.read_op(i, 1)?;
        let v = if i.mnemonic() == Mnemonic::Movzx {
            v & mask(src_size)
        } else {
            sign_extend(v, src_size)
        };
        let dst = self.op_size(i, 0);
        self.write_op(i, 0, v & mask(dst))
    }

    pub(crate) fn lea(&mut self, i: &Instruction) -> Result<()> {
        let ea = self.effective_address(i);
        let size = self.op_size(i, 0);
        self.write_op(i, 0, ea & mask(size))
    }

    /// Two-operand arithmetic and logic: ADD ADC SUB SBB CMP AND OR XOR TEST.
    pub(crate) fn alu2(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let a = self.read_op(i, 0)?;
        let b = self.read_op(i, 1)? & mask(size);
        let cf = self.cpu.flag(CF);
        let (res, f, store) = match i.mnemonic() {
            Mnemonic::Add => {
                let (r, f) = flags_calc::add(a, b, false, size);
                (r, f, true)
            }
            Mnemonic::Adc => {
                let (r, f) = flags_calc::add(a, b, cf, size);
                (r, f, true)
            }
            Mnemonic::Sub => {
                let (r, f) = flags_calc::sub(a, b, false, size);
                (r, f, true)
            }
            Mnemonic::Sbb => {
                let (r, f) = flags_calc::sub(a, b, cf, size);
                (r, f, true)
            }
            Mnemonic::Cmp => {
                let (r, f) = flags_calc::sub(a, b, false, size);
                (r, f, false)
            }
            Mnemonic::And => (a & b, flags_calc::logic(a & b, size), true),
            Mnemonic::Or => (a | b, flags_calc::logic(a | b, size), true),
            Mnemonic::Xor => (a ^ b, flags_calc::logic(a ^ b, size), true),
            _ => (a & b, flags_calc::logic(a & b, size), false), // TEST
        };
        if store {
            self.write_op(i, 0, res)?;
        }
        self.set_status(f);
        Ok(())
    }

    /// INC DEC NEG NOT.
    pub(crate) fn alu1(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let a = self.read_op(i, 0)?;
        match i.mnemonic() {
            Mnemonic::Inc | Mnemonic::Dec => {
                let (r, f) = if i.mnemonic() == Mnemonic::Inc {
                    flags_calc::add(a, 1, false, size)
                } else {
                    flags_calc::sub(a, 1, false, size)
                };
                self.write_op(i, 0, r)?;
                self.set_flags_masked(f, STATUS & !CF);
            }
            Mnemonic::Neg => {
                let (r, f) = flags_calc::sub(0, a, false, size);
                self.write_op(i, 0, r)?;
                self.set_status(f);
            }
            _ => self.write_op(i, 0, !a & mask(size))?, // NOT: no flags
        }
        Ok(())
    }

    /// SHL/SAL SHR SAR ROL ROR RCL RCR.
    pub(crate) fn shift(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let bits = size * 8;
        let a = self.read_op(i, 0)? & mask(size);
        let raw = if i.op_count() > 1 {
            self.read_op(i, 1)?
        } else {
            1
        };
        let count = (raw & if size == 8 { 0x3f } else { 0x1f }) as u32;
        if count == 0 {
            // No flags change; a 32-bit register destination is still zero-extended.
            return self.write_unchanged(i, a);
        }
        let m = mask(size);
        let sb = sign_bit(size);
        let cf_in = self.cpu.flag(CF);
        let (res, mut f, touched) = match i.mnemonic() {
            Mnemonic::Shl | Mnemonic::Sal => {
                let r = if count >= 64 { 0 } else { (a << count) & m };
                let cf = count <= bits && (a >> (bits - count)) & 1 != 0;
                let mut f = szp(r, size) | if cf { CF } else { 0 };
                if ((r & sb != 0) as u64 ^ cf as u64) != 0 {
                    f |= OF;
                }
                (r, f, STATUS)
            }
            Mnemonic::Shr => {
                let r = if count >= 64 { 0 } else { a >> count };
                let cf = count <= bits && (a >> (count - 1)) & 1 != 0;
                let mut f = szp(r, size) | if cf { CF } else { 0 };
                if a & sb != 0 {
                    f |= OF; // defined for count 1: the original sign
                }
                (r, f, STATUS)
            }
            Mnemonic::Sar => {
                let sa = sign_extend(a, size) as i64;
                let r = (sa >> count.min(63)) as u64 & m;
                let cf = (sa >> (count - 1).min(63)) & 1 != 0;
                (r, szp(r, size) | if cf { CF } else { 0 }, STATUS)
            }
            Mnemonic::Rol => {
                let c = count % bits;
                let r = if c == 0 {
                    a
                } else {
                    ((a << c) | (a >> (bits - c))) & m
                };
                let cf = r & 1 != 0;
                let mut f = if cf { CF } else { 0 };
                if ((r & sb != 0) as u64 ^ cf as u64) != 0 {
                    f |= OF;
                }
                (r, f, CF | OF)
            }
            Mnemonic::Ror => {
                let c = count % bits;
                let r = if c == 0 {
                    a
                } else {
                    ((a >> c) | (a << (bits - c))) & m
                };
                let mut f = if r & sb != 0 { CF } else { 0 };
                if ((r >> (bits - 1)) ^ (r >> (bits - 2))) & 1 != 0 {
                    f |= OF;
                }
                (r, f, CF | OF)
            }
            Mnemonic::Rcl | Mnemonic::Rcr => {
                // Rotate through carry over bits+1 positions.
                let c = count % (bits + 1);
                let mut v = u128::from(a) | (u128::from(cf_in) << bits);
                let width = bits + 1;
                let wmask = (1u128 << width) - 1;
                if c != 0 {
                    v = if i.mnemonic() == Mnemonic::Rcl {
                        ((v << c) | (v >> (width - c))) & wmask
                    } else {
                        ((v >> c) | (v << (width - c))) & wmask
                    };
                }
                let r = (v as u64) & m;
                let cf = (v >> bits) & 1 != 0;
                let mut f = if cf { CF } else { 0 };
                // RCL: MSB(result) XOR CF(after); RCR: MSB(original) XOR CF(before). Both
                // are computed whenever the masked count is non-zero.
                let of = if i.mnemonic() == Mnemonic::Rcl {
                    (r & sb != 0) ^ cf
                } else {
                    (a & sb != 0) ^ cf_in
                };
                if of {
                    f |= OF;
                }
                (r, f, CF | OF)
            }
            _ => return self.unimplemented(i),
        };
        if matches!(
            i.mnemonic(),
            Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr | Mnemonic::Sar
        ) {
            f &= !AF;
        }
        self.write_op(i, 0, res)?;
        self.set_flags_masked(f, touched);
        Ok(())
    }

    /// A shift or rotate by zero: the operand keeps its value, but a 32-bit register is
    /// still written (and so zero-extended in 64-bit mode).
    fn write_unchanged(&mut self, i: &Instruction, value: u64) -> Result<()> {
        if !Self::is_mem(i, 0) && self.op_size(i, 0) == 4 {
            self.write_op(i, 0, value)?;
        }
        Ok(())
    }

    /// SHLD SHRD.
    pub(crate) fn shift_double(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let bits = size * 8;
        let a = self.read_op(i, 0)? & mask(size);
        let b = self.read_op(i, 1)? & mask(size);
        let count = (self.read_op(i, 2)? & if size == 8 { 0x3f } else { 0x1f }) as u32;
        if count == 0 {
            return self.write_unchanged(i, a);
        }
        // The architecture leaves 16-bit shifts by more than 16 undefined; Intel hardware
        // shifts DEST:SRC:DEST as one 48-bit value, and so does this model.
        let (v, width) = if size == 2 && count > 16 {
            (
                (u128::from(a) << 32) | (u128::from(b) << 16) | u128::from(a),
                48,
            )
        } else if i.mnemonic() == Mnemonic::Shld {
            ((u128::from(a) << bits) | u128::from(b), bits * 2)
        } else {
            ((u128::from(b) << bits) | u128::from(a), bits * 2)
        };
        let (res, cf) = if i.mnemonic() == Mnemonic::Shld {
            let r = ((v << count) >> (width - bits)) as u64 & mask(size);
            (r, (v >> (width - count)) & 1 != 0)
        } else {
            let r = (v >> count) as u64 & mask(size);
            (r, (v >> (count - 1)) & 1 != 0)
        };
        let mut f = szp(res, size) | if cf { CF } else { 0 };
        if (res ^ a) & sign_bit(size) != 0 {
            f |= OF;
        }
        self.write_op(i, 0, res)?;
        self.set_status(f);
        Ok(())
    }

    /// MUL IMUL DIV IDIV.
    pub(crate) fn muldiv(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        if m == Mnemonic::Imul && i.op_count() > 1 {
            let size = self.op_size(i, 0);
            let (x, y) = if i.op_count() == 2 {
                (self.read_op(i, 0)?, self.read_op(i, 1)?)
            } else {
                (self.read_op(i, 1)?, self.read_op(i, 2)?)
            };
            let p = i128::from(sign_extend(x & mask(size), size) as i64)
                * i128::from(sign_extend(y & mask(size), size) as i64);
            let r = (p as u64) & mask(size);
            let overflow = i128::from(sign_extend(r, size) as i64) != p;
            self.write_op(i, 0, r)?;
            let f = szp(r, size) | if overflow { CF | OF } else { 0 };
            self.set_status(f);
            return Ok(());
        }
        let size = self.op_size(i, 0);
        let src = self.read_op(i, 0)? & mask(size);
        let bits = size * 8;
        // The implicit accumulator pair: AX for bytes, DX:AX, EDX:EAX, RDX:RAX.
        let (lo, hi) = if size == 1 {
            (self.cpu.regs[0] & 0xff, (self.cpu.regs[0] >> 8) & 0xff)
        } else {
            (self.cpu.regs[0] & mask(size), self.cpu.regs[2] & mask(size))
        };
        let store = |s: &mut Interp, lo: u64, hi: u64| {
            if size == 1 {
                s.set_reg(Register::AX, (lo & 0xff) | ((hi & 0xff) << 8));
            } else {
                let (a, d) = match size {
                    2 => (Register::AX, Register::DX),
                    4 => (Register::EAX, Register::EDX),
                    _ => (Register::RAX, Register::RDX),
                };
                s.set_reg(a, lo);
                s.set_reg(d, hi);
            }
        };
        match m {
            Mnemonic::Mul => {
                let p = u128::from(lo) * u128::from(src);
                let (l, h) = ((p as u64) & mask(size), ((p >> bits) as u64) & mask(size));
                store(self, l, h);
                let f = szp(l, size) | if h != 0 { CF | OF } else { 0 };
                self.set_status(f);
            }
            Mnemonic::Imul => {
                let p = i128::from(sign_extend(lo, size) as i64)
                    * i128::from(sign_extend(src, size) as i64);
                let l = (p as u64) & mask(size);
                let h = ((p >> bits) as u64) & mask(size);
                store(self, l, h);
                let overflow = i128::from(sign_extend(l, size) as i64) != p;
                let f = szp(l, size) | if overflow { CF | OF } else { 0 };
                self.set_status(f);
            }
            Mnemonic::Div => {
                if src == 0 {
                    return Err(Fault::de().into());
                }
                let dividend = (u128::from(hi) << bits) | u128::from(lo);
                let q = dividend / u128::from(src);
                let r = dividend % u128::from(src);
                if q > u128::from(mask(size)) {
                    return Err(Fault::de().into());
                }
                if size == 1 {
                    self.set_reg(Register::AX, (q as u64 & 0xff) | ((r as u64 & 0xff) << 8));
                } else {
                    store(self, q as u64, r as u64);
                }
            }
            _ => {
                // IDIV
                if src == 0 {
                    return Err(Fault::de().into());
                }
                let dividend = (((u128::from(hi) << bits) | u128::from(lo)) << (128 - 2 * bits))
                    as i128
                    >> (128 - 2 * bits);
                let divisor = i128::from(sign_extend(src, size) as i64);
                let q = dividend.checked_div(divisor).ok_or(Fault::de())?;
                let r = dividend % divisor;
                let min = -(1i128 << (bits - 1));
                let max = (1i128 << (bits - 1)) - 1;
                if q < min || q > max {
                    return Err(Fault::de().into());
                }
                if size == 1 {
                    self.set_reg(Register::AX, (q as u64 & 0xff) | ((r as u64 & 0xff) << 8));
                } else {
                    store(self, q as u64 & mask(size), r as u64 & mask(size));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn xchg(&mut self, i: &Instruction) -> Result<()> {
        let a = self.read_op(i, 0)?;
        let b = self.read_op(i, 1)?;
        // The memory operand (if any) is written first: a fault leaves the register alone.
        if Self::is_mem(i, 1) {
            self.write_op(i, 1, a)?;
            self.write_op(i, 0, b)
        } else {
            self.write_op(i, 0, b)?;
            self.write_op(i, 1, a)
        }
    }

    pub(crate) fn xadd(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let a = self.read_op(i, 0)?;
        let b = self.read_op(i, 1)?;
        let (r, f) = flags_calc::add(a, b, false, size);
        // SRC ← DEST, then DEST ← sum: with one register as both, the sum wins. A memory
        // destination is stored first so a fault leaves the register alone.
        if Self::is_mem(i, 0) {
            self.write_op(i, 0, r)?;
            self.write_op(i, 1, a)?;
        } else {
            self.write_op(i, 1, a)?;
            self.write_op(i, 0, r)?;
        }
        self.set_status(f);
        Ok(())
    }

    pub(crate) fn cmpxchg(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let dest = self.read_op(i, 0)?;
        let acc = self.cpu.regs[0] & mask(size);
        let (_, f) = flags_calc::sub(acc, dest, false, size);
        if acc == dest & mask(size) {
            let src = self.read_op(i, 1)?;
            self.write_op(i, 0, src)?;
        } else {
            // A memory destination is written back unchanged (the locked cycle always
            // writes); a register one is left alone, not even zero-extended.
            if Self::is_mem(i, 0) {
                self.write_op(i, 0, dest)?;
            }
            let r = match size {
                1 => Register::AL,
                2 => Register::AX,
                4 => Register::EAX,
                _ => Register::RAX,
            };
            self.set_reg(r, dest);
        }
        self.set_status(f);
        Ok(())
    }

    /// CMPXCHG8B / CMPXCHG16B.
    pub(crate) fn cmpxchg_wide(&mut self, i: &Instruction) -> Result<()> {
        let wide = i.mnemonic() == Mnemonic::Cmpxchg16b;
        let half = if wide { 8 } else { 4 };
        let (seg, off) = self.mem_operand(i, 0);
        if wide && off & 15 != 0 {
            return Err(Fault::gp(0).into());
        }
        let lo = self.read_mem(seg, off, half)?;
        let hi = self.read_mem(seg, off.wrapping_add(u64::from(half)), half)?;
        let m = mask(half);
        let (eax, edx, ebx, ecx) = (
            self.cpu.regs[0] & m,
            self.cpu.regs[2] & m,
            self.cpu.regs[3] & m,
            self.cpu.regs[1] & m,
        );
        if lo == eax && hi == edx {
            self.write_mem(seg, off, half, ebx)?;
            self.write_mem(seg, off.wrapping_add(u64::from(half)), half, ecx)?;
            self.cpu.set_flag(ZF, true);
        } else {
            self.write_mem(seg, off, half, lo)?;
            let (a, d) = if wide {
                (Register::RAX, Register::RDX)
            } else {
                (Register::EAX, Register::EDX)
            };
            self.set_reg(a, lo);
            self.set_reg(d, hi);
            self.cpu.set_flag(ZF, false);
        }
        Ok(())
    }

    /// Where BT/BTS/BTR/BTC with memory operand 0 and register bit offset `off` reach: the
    /// operand-sized word holding that bit, which may lie before or beyond the operand.
    pub(crate) fn bit_string_address(&self, i: &Instruction, off: u64) -> (usize, u64) {
        let size = self.op_size(i, 0);
        let bits = i64::from(size * 8);
        let signed = sign_extend(off, size) as i64;
        let byte_off = (signed.div_euclid(bits) * (bits / 8)) as u64;
        let (seg, base) = self.mem_operand(i, 0);
        (seg, base.wrapping_add(byte_off) & mask(self.addr_size(i)))
    }

    /// BT BTS BTR BTC: a register bit offset on a memory operand addresses beyond it.
    pub(crate) fn bit_test(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let bits = u64::from(size * 8);
        let off = self.read_op(i, 1)?;
        let m = i.mnemonic();
        let (value, bit, mem_at) = if Self::is_mem(i, 0) && i.op_kind(1) == OpKind::Register {
            let signed = sign_extend(off, size) as i64;
            let (seg, addr) = self.bit_string_address(i, off);
            (
                self.read_mem(seg, addr, size)?,
                signed.rem_euclid(bits as i64) as u64,
                Some((seg, addr)),
            )
        } else {
            (self.read_op(i, 0)?, off % bits, None)
        };
        let cf = (value >> bit) & 1 != 0;
        let new = match m {
            Mnemonic::Bts => Some(value | (1 << bit)),
            Mnemonic::Btr => Some(value & !(1 << bit)),
            Mnemonic::Btc => Some(value ^ (1 << bit)),
            _ => None,
        };
        if let Some(new) = new {
            match mem_at {
                Some((seg, addr)) => self.write_mem(seg, addr, size, new)?,
                None => self.write_op(i, 0, new)?,
            }
        }
        self.cpu.set_flag(CF, cf);
        Ok(())
    }

    /// BSF BSR: ZF set and the destination unchanged for a zero source.
    pub(crate) fn bit_scan(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let v = self.read_op(i, 1)? & mask(size);
        if v == 0 {
            self.cpu.set_flag(ZF, true);
            return Ok(());
        }
        // TZCNT lands here as BSF on models without BMI1 (LZCNT as BSR without LZCNT).
        let r = if matches!(i.mnemonic(), Mnemonic::Bsf | Mnemonic::Tzcnt) {
            u64::from(v.trailing_zeros())
        } else {
            63 - u64::from(v.leading_zeros())
        };
        self.write_op(i, 0, r)?;
        self.cpu.set_flag(ZF, false);
        Ok(())
    }

    pub(crate) fn setcc(&mut self, i: &Instruction) -> Result<()> {
        let v = u64::from(self.cond(i.condition_code()));
        self.write_op(i, 0, v)
    }

    pub(crate) fn cmovcc(&mut self, i: &Instruction) -> Result<()> {
        let v = self.read_op(i, 1)?;
        if self.cond(i.condition_code()) {
            self.write_op(i, 0, v)
        } else if self.op_size(i, 0) == 4 {
            // A 32-bit CMOV zero-extends its destination even when the condition is false.
            let r = i.op_register(0);
            let cur = self.get_reg(r);
            self.set_reg(r, cur);
            Ok(())
        } else {
            Ok(())
        }
    }

    /// CBW CWDE CDQE and CWD CDQ CQO.
    pub(crate) fn convert(&mut self, i: &Instruction) -> Result<()> {
        let a = self.cpu.regs[0];
        match i.mnemonic() {
            Mnemonic::Cbw => self.set_reg(Register::AX, sign_extend(a, 1)),
            Mnemonic::Cwde => self.set_reg(Register::EAX, sign_extend(a, 2)),
            Mnemonic::Cdqe => self.set_reg(Register::RAX, sign_extend(a, 4)),
            Mnemonic::Cwd => self.set_reg(Register::DX, if a & 0x8000 != 0 { 0xffff } else { 0 }),
            Mnemonic::Cdq => self.set_reg(
                Register::EDX,
                if a & 0x8000_0000 != 0 { 0xffff_ffff } else { 0 },
            ),
            _ => self.set_reg(Register::RDX, if (a as i64) < 0 { u64::MAX } else { 0 }),
        }
        Ok(())
    }

    pub(crate) fn bswap(&mut self, i: &Instruction) -> Result<()> {
        let r = i.op_register(0);
        let v = self.get_reg(r);
        let out = match r.size() {
            4 => u64::from((v as u32).swap_bytes()),
            8 => v.swap_bytes(),
            _ => 0, // 16-bit BSWAP is undefined; current CPUs give zero
        };
        self.set_reg(r, out);
        Ok(())
    }

    /// XLAT: AL = [seg:(E/R)BX + AL].
    pub(crate) fn xlat(&mut self, i: &Instruction) -> Result<()> {
        let (seg, _) = self.mem_operand(i, 0);
        let asz = self.addr_size(i);
        let off = (self.cpu.regs[3].wrapping_add(self.cpu.regs[0] & 0xff)) & mask(asz);
        let v = self.read_mem(seg, off, 1)?;
        self.set_reg(Register::AL, v);
        Ok(())
    }

    /// BOUND: #BR unless lower ≤ index ≤ upper (signed), the bounds a pair in memory.
    pub(crate) fn bound(&mut self, i: &Instruction) -> Result<()> {
        let size = self.op_size(i, 0);
        let index = sign_extend(self.read_op(i, 0)?, size) as i64;
        let (seg, off) = self.mem_operand(i, 1);
        let lower = sign_extend(self.read_mem(seg, off, size)?, size) as i64;
        let upper_off = off.wrapping_add(u64::from(size)) & mask(self.addr_size(i));
        let upper = sign_extend(self.read_mem(seg, upper_off, size)?, size) as i64;
        if index < lower || index > upper {
            return Err(Fault::new(super::fault::vector::BR).into());
        }
        Ok(())
    }

    /// ARPL: raises the destination selector's RPL to the source's (ZF says it did).
    pub(crate) fn arpl(&mut self, i: &Instruction) -> Result<()> {
        let full = self.read_op(i, 0)?;
        let dest = full & 0xffff;
        let src = self.read_op(i, 1)? & 0xffff;
        if dest & 3 < src & 3 {
            // Only the selector's 16 bits change, whatever register iced names.
            self.write_op(i, 0, (full & !0xffff) | (dest & !3) | (src & 3))?;
            self.cpu.set_flag(ZF, true);
        } else {
            self.cpu.set_flag(ZF, false);
        }
        Ok(())
    }

    pub(crate) fn lahf_sahf(&mut self, i: &Instruction) -> Result<()> {
        if i.mnemonic() == Mnemonic::Lahf {
            self.set_reg(Register::AH, self.cpu.rflags & 0xff);
        } else {
            let ah = (self.cpu.regs[0] >> 8) & 0xff;
            self.set_flags_masked(ah, SF | ZF | AF | PF | CF);
        }
        Ok(())
    }
}
