//! String instructions (MOVS STOS LODS CMPS SCAS INS OUTS) with REP/REPE/REPNE in every
//! address size, and IN/OUT with the IOPL and TSS I/O-bitmap checks.

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::cpu::{flags::*, sreg, Mode};
use super::fault::{Fault, Result};
use super::flags_calc;
use super::operand::mask;
use super::string_bulk::BulkOp;
use super::Interp;

/// A REP string instruction runs at most this many iterations per step, then restarts itself
/// (as a real CPU does when an interrupt arrives), so kicks and interrupts are not starved.
const MAX_ITERATIONS_PER_STEP: u32 = 4096;

impl Interp {
    /// Address size of a string instruction, from its implicit SI/DI operand.
    fn string_addr_size(&self, i: &Instruction) -> u32 {
        for k in 0..i.op_count() {
            match i.op_kind(k) {
                OpKind::MemorySegSI | OpKind::MemorySegDI | OpKind::MemoryESDI => return 2,
                OpKind::MemorySegESI | OpKind::MemorySegEDI | OpKind::MemoryESEDI => return 4,
                OpKind::MemorySegRSI | OpKind::MemorySegRDI | OpKind::MemoryESRDI => return 8,
                _ => {}
            }
        }
        self.cpu.code_bits() / 8
    }

    fn element_size(&self, i: &Instruction) -> u32 {
        for k in 0..i.op_count() {
            if Self::is_mem(i, k) {
                return i.memory_size().size() as u32;
            }
        }
        match i.op_kind(0) {
            OpKind::Register => i.op_register(0).size() as u32,
            _ => 1,
        }
    }

    fn advance(&mut self, reg: usize, asz: u32, elem: u32) {
        let m = mask(asz);
        let delta = if self.cpu.flag(DF) {
            0u64.wrapping_sub(u64::from(elem))
        } else {
            u64::from(elem)
        };
        let v = self.cpu.regs[reg];
        self.cpu.regs[reg] = if asz == 4 {
            v.wrapping_add(delta) & m
        } else {
            (v & !m) | (v.wrapping_add(delta) & m)
        };
    }

    pub(crate) fn string_op(&mut self, i: &Instruction) -> Result<()> {
        let asz = self.string_addr_size(i);
        let elem = self.element_size(i);
        let m = i.mnemonic();
        let rep = i.has_rep_prefix() || i.has_repne_prefix();
        let cmp_like = matches!(
            m,
            Mnemonic::Cmpsb
                | Mnemonic::Cmpsw
                | Mnemonic::Cmpsd
                | Mnemonic::Cmpsq
                | Mnemonic::Scasb
                | Mnemonic::Scasw
                | Mnemonic::Scasd
                | Mnemonic::Scasq
        );
        let src_seg = super::operand::seg_index(i.memory_segment()).unwrap_or(sreg::DS);
        let cm = mask(asz);
        let mut done = 0;
        loop {
            if rep && self.cpu.regs[1] & cm == 0 {
                return Ok(());
            }
            if rep && done == MAX_ITERATIONS_PER_STEP {
                // Resume this instruction on the next step.
                self.cpu.rip = i.ip();
                return Ok(());
            }
            if rep && !cmp_like {
                let ran = self.string_bulk(&BulkOp {
                    mnemonic: m,
                    asz,
                    elem,
                    src_seg,
                    budget: MAX_ITERATIONS_PER_STEP - done,
                });
                if ran > 0 {
                    done += ran;
                    continue;
                }
            }
            let si = self.cpu.regs[6] & cm;
            let di = self.cpu.regs[7] & cm;
            match m {
                Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd | Mnemonic::Movsq => {
                    let v = self.read_mem(src_seg, si, elem)?;
                    self.write_mem(sreg::ES, di, elem, v)?;
                    self.advance(6, asz, elem);
                    self.advance(7, asz, elem);
                }
                Mnemonic::Stosb | Mnemonic::Stosw | Mnemonic::Stosd | Mnemonic::Stosq => {
                    let v = self.cpu.regs[0] & mask(elem);
                    self.write_mem(sreg::ES, di, elem, v)?;
                    self.advance(7, asz, elem);
                }
                Mnemonic::Lodsb | Mnemonic::Lodsw | Mnemonic::Lodsd | Mnemonic::Lodsq => {
                    let v = self.read_mem(src_seg, si, elem)?;
                    let r = match elem {
                        1 => iced_x86::Register::AL,
                        2 => iced_x86::Register::AX,
                        4 => iced_x86::Register::EAX,
                        _ => iced_x86::Register::RAX,
                    };
                    self.set_reg(r, v);
                    self.advance(6, asz, elem);
                }
                Mnemonic::Cmpsb | Mnemonic::Cmpsw | Mnemonic::Cmpsd | Mnemonic::Cmpsq => {
                    let a = self.read_mem(src_seg, si, elem)?;
                    let b = self.read_mem(sreg::ES, di, elem)?;
                    let (_, f) = flags_calc::sub(a, b, false, elem);
                    self.set_status(f);
                    self.advance(6, asz, elem);
                    self.advance(7, asz, elem);
                }
                Mnemonic::Scasb | Mnemonic::Scasw | Mnemonic::Scasd | Mnemonic::Scasq => {
                    let b = self.read_mem(sreg::ES, di, elem)?;
                    let (_, f) = flags_calc::sub(self.cpu.regs[0], b, false, elem);
                    self.set_status(f);
                    self.advance(7, asz, elem);
                }
                Mnemonic::Insb | Mnemonic::Insw | Mnemonic::Insd => {
                    let port = self.cpu.regs[2] as u16;
                    self.check_io(port, elem)?;
                    // The destination is checked before the port is read (reads can have effects).
                    self.seg_linear(sreg::ES, di, elem, true)?;
                    let mut buf = [0u8; 4];
                    self.mem
                        .platform()
                        .pio_read(port, &mut buf[..elem as usize]);
                    self.write_mem(sreg::ES, di, elem, u64::from(u32::from_le_bytes(buf)))?;
                    self.advance(7, asz, elem);
                }
                Mnemonic::Outsb | Mnemonic::Outsw | Mnemonic::Outsd => {
                    let port = self.cpu.regs[2] as u16;
                    self.check_io(port, elem)?;
                    let v = self.read_mem(src_seg, si, elem)?;
                    self.mem
                        .platform()
                        .pio_write(port, &v.to_le_bytes()[..elem as usize]);
                    self.advance(6, asz, elem);
                }
                _ => return self.unimplemented(i),
            }
            if !rep {
                return Ok(());
            }
            let c = self.cpu.regs[1].wrapping_sub(1) & cm;
            self.cpu.regs[1] = if asz == 4 {
                c
            } else {
                (self.cpu.regs[1] & !cm) | c
            };
            done += 1;
            if cmp_like {
                let zf = self.cpu.flag(ZF);
                if (i.has_repe_prefix() && !zf) || (i.has_repne_prefix() && zf) {
                    return Ok(());
                }
            }
        }
    }

    /// Whether the current privilege may access `size` ports at `port` (IOPL, then the TSS
    /// I/O permission bitmap); #GP(0) if not.
    pub fn check_io(&mut self, port: u16, size: u32) -> Result<()> {
        let mode = self.cpu.mode();
        let needs_bitmap = match mode {
            Mode::Real => false,
            Mode::Virtual8086 => true,
            _ => self.cpu.cpl() > self.cpu.iopl(),
        };
        if !needs_bitmap {
            return Ok(());
        }
        let tr = self.cpu.tr;
        // Only a 32/64-bit TSS has a bitmap.
        if tr.type_ & 0x8 == 0 || tr.limit < 0x67 {
            return Err(Fault::gp(0).into());
        }
        let base = self.read_sys(tr.base.wrapping_add(0x66), 2)?;
        let byte = base.wrapping_add(u64::from(port / 8));
        if byte + 1 > u64::from(tr.limit) {
            return Err(Fault::gp(0).into());
        }
        let bits = self.read_sys(tr.base.wrapping_add(byte), 2)?;
        let want = ((1u64 << size) - 1) << (port % 8);
        if bits & want != 0 {
            return Err(Fault::gp(0).into());
        }
        Ok(())
    }

    /// IN and OUT (not the string forms).
    pub(crate) fn in_out(&mut self, i: &Instruction) -> Result<()> {
        let is_in = i.mnemonic() == Mnemonic::In;
        let (port_op, data_op) = if is_in { (1, 0) } else { (0, 1) };
        let port = match i.op_kind(port_op) {
            OpKind::Register => self.get_reg(i.op_register(port_op)) as u16,
            _ => i.immediate(port_op) as u16,
        };
        let size = i.op_register(data_op).size() as u32;
        self.check_io(port, size)?;
        if is_in {
            let mut buf = [0u8; 4];
            self.mem
                .platform()
                .pio_read(port, &mut buf[..size as usize]);
            self.set_reg(i.op_register(0), u64::from(u32::from_le_bytes(buf)));
        } else {
            let v = self.get_reg(i.op_register(1));
            log::trace!("OUT {port:#x} <- {v:#x} at {:#x}", i.ip());
            self.mem
                .platform()
                .pio_write(port, &v.to_le_bytes()[..size as usize]);
        }
        Ok(())
    }
}
