//! Control transfer and the stack: JMP, Jcc, CALL, RET, LOOP, JCXZ, PUSH/POP and their
//! flag/all-register forms, ENTER/LEAVE. Far transfers go through `segment.rs`.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::cpu::{flags::*, sreg, Mode};
use super::fault::{Fault, Result};
use super::operand::mask;
use super::Interp;

impl Interp {
    /// Operand size of a near branch target / stack operation, from the instruction.
    fn branch_size(&self, i: &Instruction) -> u32 {
        match i.op_kind(0) {
            OpKind::NearBranch16 => 2,
            OpKind::NearBranch32 => 4,
            OpKind::NearBranch64 => 8,
            _ => self.op_size(i, 0),
        }
    }

    /// Sets RIP to a near target; outside 64-bit mode the target must lie within CS.limit.
    pub fn jump_near(&mut self, target: u64, size: u32) -> Result<()> {
        let target = target & mask(size);
        if self.cpu.mode() == Mode::Long64 {
            if !super::canonical(target) {
                return Err(Fault::gp(0).into());
            }
        } else if target > u64::from(self.cpu.seg[sreg::CS].limit) {
            return Err(Fault::gp(0).into());
        }
        self.cpu.rip = target;
        Ok(())
    }

    fn near_target(&mut self, i: &Instruction) -> Result<(u64, u32)> {
        match i.op_kind(0) {
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                Ok((i.near_branch_target(), self.branch_size(i)))
            }
            _ => {
                let size = self.op_size(i, 0);
                Ok((self.read_op(i, 0)?, size))
            }
        }
    }

    pub(crate) fn jmp(&mut self, i: &Instruction) -> Result<()> {
        match i.op_kind(0) {
            OpKind::FarBranch16 | OpKind::FarBranch32 => {
                let off = u64::from(i.far_branch32());
                self.far_jump(
                    i.far_branch_selector(),
                    off,
                    i.op_kind(0) == OpKind::FarBranch32,
                )
            }
            OpKind::Memory if is_far_pointer(i) => {
                let (sel, off, size) = self.read_far_pointer(i)?;
                self.far_jump(sel, off, size >= 4)
            }
            _ => {
                let (t, size) = self.near_target(i)?;
                self.jump_near(t, size)
            }
        }
    }

    /// Reads m16:16, m16:32 or m16:64; returns (selector, offset, offset size).
    pub fn read_far_pointer(&mut self, i: &Instruction) -> Result<(u16, u64, u32)> {
        let (seg, off) = self.mem_operand(i, 0);
        let osz = i.memory_size().size() as u32 - 2;
        let offset = self.read_mem(seg, off, osz)?;
        let sel = self.read_mem(seg, off.wrapping_add(u64::from(osz)), 2)? as u16;
        Ok((sel, offset, osz))
    }

    pub(crate) fn jcc(&mut self, i: &Instruction) -> Result<()> {
        if self.cond(i.condition_code()) {
            let size = self.branch_size(i);
            self.jump_near(i.near_branch_target(), size)?;
        }
        Ok(())
    }

    /// Width of the CX/ECX/RCX counter used by LOOP/JCXZ (the address size).
    fn counter_size(&self, i: &Instruction) -> u32 {
        match i.mnemonic() {
            Mnemonic::Jcxz => 2,
            Mnemonic::Jecxz => 4,
            Mnemonic::Jrcxz => 8,
            _ => match i.code().op_code().address_size() {
                16 => 2,
                32 => 4,
                64 => 8,
                _ => self.cpu.code_bits() / 8,
            },
        }
    }

    pub(crate) fn loop_jcxz(&mut self, i: &Instruction) -> Result<()> {
        let csize = self.counter_size(i);
        let m = mask(csize);
        let take = match i.mnemonic() {
            Mnemonic::Jcxz | Mnemonic::Jecxz | Mnemonic::Jrcxz => self.cpu.regs[1] & m == 0,
            _ => {
                let c = self.cpu.regs[1].wrapping_sub(1) & m;
                let r = match csize {
                    2 => Register::CX,
                    4 => Register::ECX,
                    _ => Register::RCX,
                };
                let target_ok = c != 0;
                let take = match i.mnemonic() {
                    Mnemonic::Loope => target_ok && self.cpu.flag(ZF),
                    Mnemonic::Loopne => target_ok && !self.cpu.flag(ZF),
                    _ => target_ok,
                };
                // The counter commits only if the branch cannot fault.
                if take {
                    let size = self.branch_size(i);
                    self.jump_near(i.near_branch_target(), size)?;
                }
                self.set_reg(r, c);
                return Ok(());
            }
        };
        if take {
            let size = self.branch_size(i);
            self.jump_near(i.near_branch_target(), size)?;
        }
        Ok(())
    }

    pub(crate) fn call(&mut self, i: &Instruction) -> Result<()> {
        match i.op_kind(0) {
            OpKind::FarBranch16 | OpKind::FarBranch32 => {
                let off = u64::from(i.far_branch32());
                let size = if i.op_kind(0) == OpKind::FarBranch32 {
                    4
                } else {
                    2
                };
                self.far_call(i.far_branch_selector(), off, size)
            }
            OpKind::Memory if is_far_pointer(i) => {
                let (sel, off, size) = self.read_far_pointer(i)?;
                self.far_call(sel, off, size)
            }
            _ => {
                let (t, size) = self.near_target(i)?;
                let ret = self.cpu.rip;
                // Check the target before pushing: a bad target faults with RSP unchanged.
                let saved = self.cpu.rip;
                self.jump_near(t, size)?;
                let target = self.cpu.rip;
                self.cpu.rip = saved;
                self.push(ret, size)?;
                self.cpu.rip = target;
                Ok(())
            }
        }
    }

    pub(crate) fn ret_near(&mut self, i: &Instruction) -> Result<()> {
        let size = match self.cpu.code_bits() {
            64 => {
                if i.code().op_code().operand_size() == 16 {
                    2
                } else {
                    8
                }
            }
            bits => {
                let os = i.code().op_code().operand_size();
                if os != 0 {
                    os / 8
                } else {
                    bits / 8
                }
            }
        };
        let target = self.stack_read(0, size)?;
        self.jump_near(target, size)?;
        let imm = if i.op_count() > 0 {
            i.immediate(0) as i64
        } else {
            0
        };
        self.adjust_rsp(i64::from(size) + imm);
        Ok(())
    }

    pub(crate) fn push_insn(&mut self, i: &Instruction) -> Result<()> {
        let size = match i.op_kind(0) {
            OpKind::Register => {
                let r = i.op_register(0);
                if super::operand::seg_index(r).is_some() {
                    self.stack_operand_size(i)
                } else {
                    r.size() as u32
                }
            }
            _ => self.op_size(i, 0),
        };
        let v = self.read_op(i, 0)?;
        self.push(v & mask(size), size)
    }

    /// Operand size of PUSH/POP sreg and PUSHF: the instruction's operand-size attribute.
    fn stack_operand_size(&self, i: &Instruction) -> u32 {
        let os = i.code().op_code().operand_size();
        if os != 0 {
            os / 8
        } else if self.cpu.code_bits() == 64 {
            8
        } else {
            self.cpu.code_bits() / 8
        }
    }

    pub(crate) fn pop_insn(&mut self, i: &Instruction) -> Result<()> {
        if i.op_kind(0) == OpKind::Register {
            let r = i.op_register(0);
            if let Some(s) = super::operand::seg_index(r) {
                let size = self.stack_operand_size(i);
                let sel = self.stack_read(0, size)? as u16;
                self.load_segment(s, sel)?;
                self.adjust_rsp(i64::from(size));
                if s == sreg::SS {
                    self.interrupt_shadow = true;
                }
                return Ok(());
            }
        }
        let size = self.op_size(i, 0);
        let v = self.stack_read(0, size)?;
        if Self::is_mem(i, 0) {
            // POP to memory computes an RSP-based address after the increment.
            self.adjust_rsp(i64::from(size));
            if let Err(e) = self.write_op(i, 0, v) {
                self.adjust_rsp(-i64::from(size));
                return Err(e);
            }
        } else {
            self.adjust_rsp(i64::from(size));
            self.write_op(i, 0, v)?;
        }
        Ok(())
    }

    pub(crate) fn pushf(&mut self, i: &Instruction) -> Result<()> {
        let size = self.stack_operand_size(i);
        if self.cpu.mode() == Mode::Virtual8086 && self.cpu.iopl() < 3 {
            return Err(Fault::gp(0).into());
        }
        // VM and RF are never pushed set.
        let v = self.cpu.rflags & !(VM | RF);
        self.push(v & mask(size), size)
    }

    pub(crate) fn popf(&mut self, i: &Instruction) -> Result<()> {
        let size = self.stack_operand_size(i);
        let mode = self.cpu.mode();
        if mode == Mode::Virtual8086 && self.cpu.iopl() < 3 {
            return Err(Fault::gp(0).into());
        }
        let v = self.stack_read(0, size)?;
        self.adjust_rsp(i64::from(size));
        let cpl = self.cpu.cpl();
        let mut changeable = STATUS | TF | DF | NT | AC | ID;
        if cpl == 0 {
            changeable |= IOPL | IF;
        } else if cpl <= self.cpu.iopl() {
            changeable |= IF;
        }
        if mode == Mode::Virtual8086 {
            changeable &= !IOPL;
        }
        if size == 2 {
            changeable &= 0xffff;
        }
        self.cpu.rflags = (self.cpu.rflags & !changeable) | (v & changeable) | 2;
        Ok(())
    }

    pub(crate) fn pusha(&mut self, i: &Instruction) -> Result<()> {
        let size = if i.mnemonic() == Mnemonic::Pushad {
            4
        } else {
            2
        };
        let sp = self.cpu.regs[4];
        let start = self.cpu.regs;
        for r in [0, 1, 2, 3, 4, 5, 6, 7] {
            let v = if r == 4 { sp } else { start[r] };
            if let Err(e) = self.push(v & mask(size), size) {
                self.cpu.regs[4] = sp;
                return Err(e);
            }
        }
        Ok(())
    }

    pub(crate) fn popa(&mut self, i: &Instruction) -> Result<()> {
        let size = if i.mnemonic() == Mnemonic::Popad {
            4
        } else {
            2
        };
        let mut vals = [0u64; 8];
        for (k, v) in vals.iter_mut().enumerate() {
            *v = self.stack_read((k as u64) * u64::from(size), size)?;
        }
        // Order on the stack: DI SI BP (SP skipped) BX DX CX AX.
        let regs = [7, 6, 5, 4, 3, 2, 1, 0];
        for (k, r) in regs.iter().enumerate() {
            if *r == 4 {
                continue;
            }
            let reg = if size == 4 {
                iced_reg32(*r)
            } else {
                iced_reg16(*r)
            };
            self.set_reg(reg, vals[k]);
        }
        self.adjust_rsp(8 * i64::from(size));
        Ok(())
    }

    /// ENTER, following the SDM's pseudo-code: the nesting loop walks the frame pointer of
    /// the stack's width; the new stack top is probed for writing before anything commits.
    pub(crate) fn enter(&mut self, i: &Instruction) -> Result<()> {
        let size = self.stack_operand_size(i);
        let alloc = i.immediate(0) & 0xffff;
        let level = i.immediate(1) & 0x1f;
        let saved = self.cpu.regs;
        let result = (|| -> Result<()> {
            let smask = self.rsp_mask();
            let bp = self.cpu.regs[5];
            self.push(bp & mask(size), size)?;
            let frame = self.cpu.regs[4] & smask;
            if level > 0 {
                let mut p = bp;
                for _ in 1..level {
                    p = (p & !smask) | (p.wrapping_sub(u64::from(size)) & smask);
                    let v = self.read_mem(sreg::SS, p & smask, size)?;
                    self.push(v, size)?;
                }
                self.push(frame, size)?;
            }
            // The new stack top must be writable: an operand-sized, alignment-checked probe.
            let top = self.cpu.regs[4].wrapping_sub(alloc) & smask;
            let linear = self.seg_linear(sreg::SS, top, size, true)?;
            self.check_alignment(linear, size)?;
            let priv_ = self.privilege();
            self.write_probe(linear, priv_)?;
            // Only the operand-sized frame pointer is written (BP for a 16-bit ENTER, even in
            // 64-bit mode).
            let bp_reg = match size {
                8 => Register::RBP,
                4 => Register::EBP,
                _ => Register::BP,
            };
            self.set_reg(bp_reg, frame);
            self.adjust_rsp(-(alloc as i64));
            Ok(())
        })();
        if result.is_err() {
            self.cpu.regs = saved;
        }
        result
    }

    pub(crate) fn leave(&mut self, i: &Instruction) -> Result<()> {
        let size = self.stack_operand_size(i);
        let mask = self.rsp_mask();
        let bp = self.cpu.regs[5];
        let v = self.read_mem(sreg::SS, bp & mask, size)?;
        self.cpu.regs[4] = (self.cpu.regs[4] & !mask) | (bp & mask);
        self.adjust_rsp(i64::from(size));
        let r = match size {
            2 => Register::BP,
            4 => Register::EBP,
            _ => Register::RBP,
        };
        self.set_reg(r, v);
        Ok(())
    }
}

fn iced_reg32(i: usize) -> Register {
    [
        Register::EAX,
        Register::ECX,
        Register::EDX,
        Register::EBX,
        Register::ESP,
        Register::EBP,
        Register::ESI,
        Register::EDI,
    ][i]
}

fn iced_reg16(i: usize) -> Register {
    [
        Register::AX,
        Register::CX,
        Register::DX,
        Register::BX,
        Register::SP,
        Register::BP,
        Register::SI,
        Register::DI,
    ][i]
}

fn is_far_pointer(i: &Instruction) -> bool {
    use iced_x86::MemorySize;
    matches!(
        i.memory_size(),
        MemorySize::SegPtr16 | MemorySize::SegPtr32 | MemorySize::SegPtr64
    )
}
