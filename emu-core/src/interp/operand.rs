//! Reading and writing instruction operands: general registers (with the x86 partial-register
//! rules), segment registers, immediates and memory through segmentation.

use iced_x86::{Instruction, OpKind, Register};

use super::cpu::sreg;
use super::fault::Result;
use super::Interp;

/// A general-purpose register as (index into `Cpu::regs`, width in bytes, is AH/CH/DH/BH).
pub fn gpr(reg: Register) -> Option<(usize, u32, bool)> {
    let r = reg as u32;
    let in_range = |lo: Register, hi: Register| r >= lo as u32 && r <= hi as u32;
    if in_range(Register::AL, Register::R15L) {
        let i = r - Register::AL as u32;
        // iced's order: AL CL DL BL, AH CH DH BH, SPL BPL SIL DIL, R8L … R15L.
        return Some(match i {
            0..=3 => (i as usize, 1, false),
            4..=7 => ((i - 4) as usize, 1, true),
            _ => ((i - 4) as usize, 1, false),
        });
    }
    if in_range(Register::AX, Register::R15W) {
        return Some(((r - Register::AX as u32) as usize, 2, false));
    }
    if in_range(Register::EAX, Register::R15D) {
        return Some(((r - Register::EAX as u32) as usize, 4, false));
    }
    if in_range(Register::RAX, Register::R15) {
        return Some(((r - Register::RAX as u32) as usize, 8, false));
    }
    None
}

/// Segment register index (ES=0 … GS=5).
pub fn seg_index(reg: Register) -> Option<usize> {
    match reg {
        Register::ES => Some(sreg::ES),
        Register::CS => Some(sreg::CS),
        Register::SS => Some(sreg::SS),
        Register::DS => Some(sreg::DS),
        Register::FS => Some(sreg::FS),
        Register::GS => Some(sreg::GS),
        _ => None,
    }
}

/// Immediate operand kinds (iced sign-extends them as the encoding says).
pub fn is_immediate(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Immediate8
            | OpKind::Immediate8_2nd
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

pub fn mask(size: u32) -> u64 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

pub fn sign_extend(v: u64, size: u32) -> u64 {
    match size {
        1 => v as u8 as i8 as i64 as u64,
        2 => v as u16 as i16 as i64 as u64,
        4 => v as u32 as i32 as i64 as u64,
        _ => v,
    }
}

impl Interp {
    pub fn get_reg(&self, reg: Register) -> u64 {
        match gpr(reg) {
            Some((i, _, true)) => (self.cpu.regs[i] >> 8) & 0xff,
            Some((i, size, false)) => self.cpu.regs[i] & mask(size),
            None => match seg_index(reg) {
                Some(s) => u64::from(self.cpu.seg[s].selector),
                None => match reg {
                    Register::RIP => self.cpu.rip,
                    Register::EIP => self.cpu.rip & 0xffff_ffff,
                    _ => 0,
                },
            },
        }
    }

    /// Writes a general register: 32-bit writes zero-extend, 8/16-bit writes merge.
    pub fn set_reg(&mut self, reg: Register, value: u64) {
        if let Some((i, size, high)) = gpr(reg) {
            let old = self.cpu.regs[i];
            self.cpu.regs[i] = match (size, high) {
                (1, true) => (old & !0xff00) | ((value & 0xff) << 8),
                (1, false) => (old & !0xff) | (value & 0xff),
                (2, _) => (old & !0xffff) | (value & 0xffff),
                (4, _) => value & 0xffff_ffff,
                _ => value,
            };
        }
    }

    /// Address size of a memory operand in bytes (2, 4, 8).
    pub fn addr_size(&self, instr: &Instruction) -> u32 {
        let base = instr.memory_base();
        let index = instr.memory_index();
        if base != Register::None && base != Register::RIP && base != Register::EIP {
            return base.size() as u32;
        }
        if base == Register::RIP {
            return 8;
        }
        if base == Register::EIP {
            return 4;
        }
        if index != Register::None {
            return index.size() as u32;
        }
        match instr.memory_displ_size() {
            2 | 4 | 8 => instr.memory_displ_size(),
            _ => self.cpu.code_bits() / 8,
        }
    }

    /// The segment and offset of operand `i`'s memory reference.
    pub fn mem_operand(&self, instr: &Instruction, i: u32) -> (usize, u64) {
        let seg = seg_index(instr.memory_segment()).unwrap_or(sreg::DS);
        let si_di =
            |reg: Register, size: u32| self.cpu.regs[gpr(reg).map_or(0, |g| g.0)] & mask(size);
        match instr.op_kind(i) {
            OpKind::MemorySegSI => (seg, si_di(Register::SI, 2)),
            OpKind::MemorySegESI => (seg, si_di(Register::ESI, 4)),
            OpKind::MemorySegRSI => (seg, si_di(Register::RSI, 8)),
            OpKind::MemorySegDI => (seg, si_di(Register::DI, 2)),
            OpKind::MemorySegEDI => (seg, si_di(Register::EDI, 4)),
            OpKind::MemorySegRDI => (seg, si_di(Register::RDI, 8)),
            OpKind::MemoryESDI => (sreg::ES, si_di(Register::DI, 2)),
            OpKind::MemoryESEDI => (sreg::ES, si_di(Register::EDI, 4)),
            OpKind::MemoryESRDI => (sreg::ES, si_di(Register::RDI, 8)),
            _ => (seg, self.effective_address(instr)),
        }
    }

    /// base + index × scale + displacement, wrapped to the address size.
    pub fn effective_address(&self, instr: &Instruction) -> u64 {
        let size = self.addr_size(instr);
        let base = instr.memory_base();
        let mut off = instr.memory_displacement64();
        if base != Register::None && base != Register::RIP && base != Register::EIP {
            off = off.wrapping_add(self.get_reg(base));
        }
        let index = instr.memory_index();
        if index != Register::None {
            off = off.wrapping_add(
                self.get_reg(index)
                    .wrapping_mul(u64::from(instr.memory_index_scale())),
            );
        }
        off & mask(size)
    }

    /// Width in bytes of operand `i`.
    pub fn op_size(&self, instr: &Instruction, i: u32) -> u32 {
        match instr.op_kind(i) {
            OpKind::Register => instr.op_register(i).size() as u32,
            OpKind::Immediate8 | OpKind::Immediate8_2nd => 1,
            OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
            OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
            OpKind::Immediate64 | OpKind::Immediate8to64 | OpKind::Immediate32to64 => 8,
            _ => instr.memory_size().size() as u32,
        }
    }

    pub fn is_mem(instr: &Instruction, i: u32) -> bool {
        let kind = instr.op_kind(i);
        !is_immediate(kind)
            && !matches!(
                kind,
                OpKind::Register
                    | OpKind::NearBranch16
                    | OpKind::NearBranch32
                    | OpKind::NearBranch64
                    | OpKind::FarBranch16
                    | OpKind::FarBranch32
            )
    }

    /// Reads operand `i` (zero-extended to 64 bits; immediates as iced sign-extends them).
    pub fn read_op(&mut self, instr: &Instruction, i: u32) -> Result<u64> {
        match instr.op_kind(i) {
            OpKind::Register => Ok(self.get_reg(instr.op_register(i))),
            k if is_immediate(k) => Ok(instr.immediate(i) & mask(self.op_size(instr, i))),
            _ => {
                let (seg, off) = self.mem_operand(instr, i);
                let size = self.op_size(instr, i);
                self.read_mem(seg, off, size)
            }
        }
    }

    pub fn write_op(&mut self, instr: &Instruction, i: u32, value: u64) -> Result<()> {
        match instr.op_kind(i) {
            OpKind::Register => {
                self.set_reg(instr.op_register(i), value);
                Ok(())
            }
            _ => {
                let (seg, off) = self.mem_operand(instr, i);
                let size = self.op_size(instr, i);
                self.write_mem(seg, off, size, value & mask(size))
            }
        }
    }

    /// Checks that operand `i` (if memory) may be written, before anything else commits, for
    /// read-modify-write instructions whose result depends on the read.
    pub fn probe_write(&mut self, instr: &Instruction, i: u32) -> Result<()> {
        if Self::is_mem(instr, i) {
            let (seg, off) = self.mem_operand(instr, i);
            let size = self.op_size(instr, i);
            let linear = self.seg_linear(seg, off, size, true)?;
            let priv_ = self.privilege();
            let mut tmp = [0u8; 8];
            // A read then a write-translation: page permissions checked without storing.
            self.read_linear(linear, &mut tmp[..size as usize], priv_)?;
            self.write_translate(linear, size as usize, priv_)?;
        }
        Ok(())
    }

    /// Checks that one byte at `linear` may be written (page present and writable).
    pub fn write_probe(&mut self, linear: u64, priv_: super::mmu::Privilege) -> Result<()> {
        self.write_translate(linear, 1, priv_)
    }

    fn write_translate(
        &mut self,
        linear: u64,
        len: usize,
        priv_: super::mmu::Privilege,
    ) -> Result<()> {
        let l = self.wrap_linear(linear);
        self.mmu.translate(
            &mut self.cpu,
            &self.mem,
            l,
            super::mmu::Access::Write,
            priv_,
        )?;
        let end = self.wrap_linear(l.wrapping_add(len as u64 - 1));
        if end >> 12 != l >> 12 {
            self.mmu.translate(
                &mut self.cpu,
                &self.mem,
                end,
                super::mmu::Access::Write,
                priv_,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_general_register_maps_to_its_slot() {
        let byte_regs = [
            Register::AL,
            Register::CL,
            Register::DL,
            Register::BL,
            Register::SPL,
            Register::BPL,
            Register::SIL,
            Register::DIL,
            Register::R8L,
            Register::R9L,
            Register::R10L,
            Register::R11L,
            Register::R12L,
            Register::R13L,
            Register::R14L,
            Register::R15L,
        ];
        for (n, r) in byte_regs.iter().enumerate() {
            assert_eq!(gpr(*r), Some((n, 1, false)), "{r:?}");
        }
        for (n, r) in [Register::AH, Register::CH, Register::DH, Register::BH]
            .iter()
            .enumerate()
        {
            assert_eq!(gpr(*r), Some((n, 1, true)), "{r:?}");
        }
        for n in 0..16u32 {
            let w = Register::try_from(Register::AX as usize + n as usize).unwrap();
            let d = Register::try_from(Register::EAX as usize + n as usize).unwrap();
            let q = Register::try_from(Register::RAX as usize + n as usize).unwrap();
            assert_eq!(gpr(w), Some((n as usize, 2, false)));
            assert_eq!(gpr(d), Some((n as usize, 4, false)));
            assert_eq!(gpr(q), Some((n as usize, 8, false)));
        }
    }
}
