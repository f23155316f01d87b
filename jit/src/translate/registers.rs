//! Guest registers and operands: the host copies of guest registers (written back lazily:
//! `BlockBuilder::dirty`), loads and stores of operands, and the forms that work on the
//! copies directly.

use super::*;

impl BlockBuilder<'_> {
    /// RCX = `imm`, in the shortest encoding.
    pub(super) fn mov_rcx(&mut self, imm: i64) {
        if let Ok(v) = u32::try_from(imm) {
            dynasm!(self.ops ; .arch x64 ; mov ecx, v as i32);
        } else if let Ok(v) = i32::try_from(imm) {
            dynasm!(self.ops ; .arch x64 ; mov rcx, v);
        } else {
            dynasm!(self.ops ; .arch x64 ; mov rcx, QWORD imm);
        }
    }

    /// RAX (`rcx` false) or RCX = register `r`, zero-extended from its size.
    pub(super) fn load_reg(&mut self, r: Register, rcx: bool) {
        let (off, size) = reg_slot(r).expect("checked");
        let (idx, _, high) = gpr(r).expect("checked");
        if let (Some(h), false) = (self.host[idx], high) {
            let d = if rcx { 1 } else { 0 };
            match size {
                8 => dynasm!(self.ops ; .arch x64 ; mov Rq(d), Rq(h)),
                4 => dynasm!(self.ops ; .arch x64 ; mov Rd(d), Rd(h)),
                2 => dynasm!(self.ops ; .arch x64 ; movzx Rd(d), Rw(h)),
                _ => dynasm!(self.ops ; .arch x64 ; movzx Rd(d), Rb(h)),
            }
            return;
        }
        // AH–BH are read from `Cpu::regs`: it must hold the copy's value.
        self.flush_reg(idx);
        match (rcx, size) {
            (false, 8) => dynasm!(self.ops ; .arch x64 ; mov rax, QWORD [r12 + off]),
            (false, 4) => dynasm!(self.ops ; .arch x64 ; mov eax, DWORD [r12 + off]),
            (false, 2) => dynasm!(self.ops ; .arch x64 ; movzx eax, WORD [r12 + off]),
            (false, _) => dynasm!(self.ops ; .arch x64 ; movzx eax, BYTE [r12 + off]),
            (true, 8) => dynasm!(self.ops ; .arch x64 ; mov rcx, QWORD [r12 + off]),
            (true, 4) => dynasm!(self.ops ; .arch x64 ; mov ecx, DWORD [r12 + off]),
            (true, 2) => dynasm!(self.ops ; .arch x64 ; movzx ecx, WORD [r12 + off]),
            (true, _) => dynasm!(self.ops ; .arch x64 ; movzx ecx, BYTE [r12 + off]),
        }
    }

    /// Register `r` = RAX's low bytes: a 32-bit write zero-extends into the whole register,
    /// 8- and 16-bit writes leave the rest alone. A register with a copy is written to the
    /// copy alone (it becomes dirty); AH–BH go through `Cpu::regs`.
    pub(super) fn store_reg(&mut self, r: Register) {
        let (off, size) = reg_slot(r).expect("checked");
        let (idx, _, high) = gpr(r).expect("checked");
        let zero_extended = std::mem::take(&mut self.rax_zero_extended);
        if let (Some(h), false) = (self.host[idx], high) {
            match size {
                8 => dynasm!(self.ops ; .arch x64 ; mov Rq(h), rax),
                4 => dynasm!(self.ops ; .arch x64 ; mov Rd(h), eax),
                2 => dynasm!(self.ops ; .arch x64 ; mov Rw(h), ax),
                _ => dynasm!(self.ops ; .arch x64 ; mov Rb(h), al),
            }
            self.dirty |= 1 << idx;
            return;
        }
        self.flush_reg(idx);
        match size {
            8 => dynasm!(self.ops ; .arch x64 ; mov QWORD [r12 + off], rax),
            4 if zero_extended => dynasm!(self.ops ; .arch x64 ; mov QWORD [r12 + off], rax),
            4 => dynasm!(self.ops ; .arch x64 ; mov eax, eax ; mov QWORD [r12 + off], rax),
            2 => dynasm!(self.ops ; .arch x64 ; mov WORD [r12 + off], ax),
            _ => dynasm!(self.ops ; .arch x64 ; mov BYTE [r12 + off], al),
        }
        if high {
            self.refresh(idx);
        }
    }

    /// The copy of guest register `idx`, if it is dirty, to `Cpu::regs` (a MOV: the host's
    /// flags stay).
    pub(super) fn flush_reg(&mut self, idx: usize) {
        if self.dirty & (1 << idx) != 0 {
            let h = self.host[idx].expect("only copies are dirty");
            let off = 8 * idx as i32;
            dynasm!(self.ops ; .arch x64 ; mov [r12 + off], Rq(h));
            self.dirty &= !(1 << idx);
        }
    }

    /// Every dirty copy to `Cpu::regs`: before anything that reads or writes guest
    /// registers there (a helper, an instruction whose code does, a jump out of the block).
    pub(super) fn flush_dirty(&mut self) {
        for idx in 0..16 {
            self.flush_reg(idx);
        }
    }

    /// The copies in `dirty` to `Cpu::regs`, outside the block's flow (a slow path's start:
    /// the copies hold what they held where it branched off).
    pub(super) fn flush_set(&mut self, dirty: u16) {
        for idx in 0..16 {
            if dirty & (1 << idx) != 0 {
                let h = self.host[idx].expect("only copies are dirty");
                let off = 8 * idx as i32;
                dynasm!(self.ops ; .arch x64 ; mov [r12 + off], Rq(h));
            }
        }
    }

    /// RCX = the guest's RCX (a shift count in CL), from its copy if it has one.
    pub(super) fn load_guest_rcx(&mut self) {
        match self.host[1] {
            Some(h) => dynasm!(self.ops ; .arch x64 ; mov rcx, Rq(h)),
            None => dynasm!(self.ops ; .arch x64 ; mov rcx, [r12 + 8]),
        }
    }

    /// The host register holding a copy of `r`, if `r` is a whole 32- or 64-bit register
    /// with one.
    pub(super) fn cached(&self, r: Register) -> Option<u8> {
        match gpr(r) {
            Some((idx, 4 | 8, false)) => self.host[idx],
            _ => None,
        }
    }

    /// A 32- or 64-bit ALU operation on a register with a host copy, as the same host
    /// instruction on that copy (which a 32-bit operation zero-extends, as the guest's
    /// does), then the copy to `Cpu::regs`: no trip through RAX. False (nothing emitted)
    /// for other forms.
    pub(super) fn direct_alu(
        &mut self,
        i: &Instruction,
        k: u32,
        m: M,
        size: u32,
        imm: Option<i32>,
    ) -> bool {
        if i.op_kind(0) != OpKind::Register || !matches!(size, 4 | 8) {
            return false;
        }
        let Some(h) = self.cached(i.op_register(0)) else {
            return false;
        };
        // The source: a copy, the immediate, or RCX.
        let src = match i.op_kind(1) {
            OpKind::Register => self.cached(i.op_register(1)),
            _ => None,
        };
        if src.is_none() && imm.is_none() {
            self.load_src(i, k, 1, size);
        }
        if matches!(m, M::Adc | M::Sbb) {
            self.load_flags(CF);
        }
        macro_rules! op {
            ($op:ident) => {
                match (size, src, imm) {
                    (4, Some(s), _) => dynasm!(self.ops ; .arch x64 ; $op Rd(h), Rd(s)),
                    (_, Some(s), _) => dynasm!(self.ops ; .arch x64 ; $op Rq(h), Rq(s)),
                    (4, None, Some(v)) => dynasm!(self.ops ; .arch x64 ; $op Rd(h), v),
                    (_, None, Some(v)) => dynasm!(self.ops ; .arch x64 ; $op Rq(h), v),
                    (4, None, None) => dynasm!(self.ops ; .arch x64 ; $op Rd(h), ecx),
                    _ => dynasm!(self.ops ; .arch x64 ; $op Rq(h), rcx),
                }
            };
        }
        match m {
            M::Add => op!(add),
            M::Or => op!(or),
            M::Adc => op!(adc),
            M::Sbb => op!(sbb),
            M::And => op!(and),
            M::Sub => op!(sub),
            M::Xor => op!(xor),
            M::Cmp => op!(cmp),
            _ => op!(test),
        }
        if !matches!(m, M::Cmp | M::Test) {
            self.write_back(i.op_register(0), h);
        }
        self.save_flags_free_rax(i);
        self.fuse_with_next(false);
        true
    }

    /// The copy `h` of guest register `r` was just written: dirty until flushed.
    pub(super) fn write_back(&mut self, r: Register, h: u8) {
        let (idx, _, _) = gpr(r).expect("checked");
        debug_assert_eq!(self.host[idx], Some(h));
        self.dirty |= 1 << idx;
    }

    /// MOV to a 32- or 64-bit register with a host copy, straight into the copy. False
    /// (nothing emitted) for other forms.
    pub(super) fn direct_mov(&mut self, i: &Instruction, k: u32, size: u32) -> bool {
        if i.op_kind(0) != OpKind::Register || !matches!(size, 4 | 8) {
            return false;
        }
        let Some(h) = self.cached(i.op_register(0)) else {
            return false;
        };
        match i.op_kind(1) {
            OpKind::Register => match (self.cached(i.op_register(1)), size) {
                (Some(s), 4) => dynasm!(self.ops ; .arch x64 ; mov Rd(h), Rd(s)),
                (Some(s), _) => dynasm!(self.ops ; .arch x64 ; mov Rq(h), Rq(s)),
                (None, 4) => {
                    let (off, _) = reg_slot(i.op_register(1)).expect("checked");
                    dynasm!(self.ops ; .arch x64 ; mov Rd(h), DWORD [r12 + off]);
                }
                (None, _) => {
                    let (off, _) = reg_slot(i.op_register(1)).expect("checked");
                    dynasm!(self.ops ; .arch x64 ; mov Rq(h), QWORD [r12 + off]);
                }
            },
            OpKind::Memory => {
                // The load zero-extends a 32-bit value.
                self.load_mem(i, k, size, false);
                dynasm!(self.ops ; .arch x64 ; mov Rq(h), rax);
            }
            _ => {
                let v = i.immediate(1) as i64;
                if size == 4 {
                    dynasm!(self.ops ; .arch x64 ; mov Rd(h), v as i32);
                } else if let Ok(v) = i32::try_from(v) {
                    dynasm!(self.ops ; .arch x64 ; mov Rq(h), v);
                } else {
                    dynasm!(self.ops ; .arch x64 ; mov Rq(h), QWORD v);
                }
            }
        }
        self.write_back(i.op_register(0), h);
        true
    }

    /// INC, DEC, NEG, NOT and shifts and rotates by a constant nonzero count (not RCL/RCR)
    /// on a 32- or 64-bit register with a host copy, on the copy. False (nothing emitted)
    /// for other forms.
    pub(super) fn direct_unary(&mut self, i: &Instruction, m: M, size: u32) -> bool {
        if i.op_kind(0) != OpKind::Register || !matches!(size, 4 | 8) || keeps_flags_sometimes(i) {
            return false;
        }
        let Some(h) = self.cached(i.op_register(0)) else {
            return false;
        };
        let c = if i.op_count() > 1 {
            i.immediate8() as i8
        } else {
            0
        };
        macro_rules! one {
            ($op:ident) => {
                match size {
                    4 => dynasm!(self.ops ; .arch x64 ; $op Rd(h)),
                    _ => dynasm!(self.ops ; .arch x64 ; $op Rq(h)),
                }
            };
        }
        macro_rules! shift {
            ($op:ident) => {
                match size {
                    4 => dynasm!(self.ops ; .arch x64 ; $op Rd(h), c),
                    _ => dynasm!(self.ops ; .arch x64 ; $op Rq(h), c),
                }
            };
        }
        match m {
            M::Inc => one!(inc),
            M::Dec => one!(dec),
            M::Neg => one!(neg),
            M::Not => one!(not),
            M::Shr => shift!(shr),
            M::Sar => shift!(sar),
            M::Rol => shift!(rol),
            M::Ror => shift!(ror),
            M::Shl | M::Sal => shift!(shl),
            _ => return false,
        }
        self.write_back(i.op_register(0), h);
        self.save_flags_free_rax(i);
        self.fuse_with_next(false);
        true
    }

    /// After a store straight to guest register `idx` in `Cpu::regs`: its copy again (it
    /// was clean: whatever wrote there flushed it first).
    pub(super) fn refresh(&mut self, idx: usize) {
        debug_assert_eq!(self.dirty & (1 << idx), 0, "a dirty copy reloaded");
        if let Some(h) = self.host[idx] {
            let off = 8 * idx as i32;
            dynasm!(self.ops ; .arch x64 ; mov Rq(h), [r12 + off]);
        }
    }

    /// After RAX (zero-extended) went straight to guest register `idx`: its copy too.
    pub(super) fn wrote_rax_to(&mut self, idx: usize) {
        if let Some(h) = self.host[idx] {
            dynasm!(self.ops ; .arch x64 ; mov Rq(h), rax);
        }
    }

    /// Every copy from `Cpu::regs`: after helper calls (which are preceded by a flush).
    pub(super) fn reload_cached(&mut self) {
        for idx in 0..16 {
            if let Some(h) = self.host[idx] {
                let off = 8 * idx as i32;
                dynasm!(self.ops ; .arch x64 ; mov Rq(h), [r12 + off]);
            }
        }
    }

    /// RAX (`rcx` false: RDX) = the 64-bit guest register `idx` (an address's base or index).
    pub(super) fn load_gpr64(&mut self, idx: usize, to_rax: bool) {
        let off = 8 * idx as i32;
        let d = if to_rax { 0 } else { 2 };
        match self.host[idx] {
            Some(h) => dynasm!(self.ops ; .arch x64 ; mov Rq(d), Rq(h)),
            None => dynasm!(self.ops ; .arch x64 ; mov Rq(d), [r12 + off]),
        }
    }

    /// RAX = operand 0 (a register or memory) in `size` bytes.
    pub(super) fn load_dest(&mut self, i: &Instruction, k: u32, size: u32) {
        match i.op_kind(0) {
            OpKind::Memory if stores_back(i) => self.rmw_load(i, k, size),
            OpKind::Memory => self.load_mem(i, k, size, true),
            _ => self.load_reg(i.op_register(0), false),
        }
    }

    /// Operand 0 = RAX's low `size` bytes.
    pub(super) fn store_dest(&mut self, i: &Instruction, k: u32, size: u32) {
        match i.op_kind(0) {
            OpKind::Memory => match self.rmw_back.take() {
                Some(back) => {
                    dynasm!(self.ops ; .arch x64 ; mov rsi, [rbx + SCRATCH0]);
                    match size {
                        1 => dynasm!(self.ops ; .arch x64 ; mov [rsi], al),
                        2 => dynasm!(self.ops ; .arch x64 ; mov [rsi], ax),
                        4 => dynasm!(self.ops ; .arch x64 ; mov [rsi], eax),
                        _ => dynasm!(self.ops ; .arch x64 ; mov [rsi], rax),
                    }
                    dynasm!(self.ops ; .arch x64 ; =>back);
                }
                None => self.store_mem(i, k, size),
            },
            _ => self.store_reg(i.op_register(0)),
        }
    }

    /// RCX = operand `n` (register, immediate or memory) in `size` bytes.
    pub(super) fn load_src(&mut self, i: &Instruction, k: u32, n: u32, size: u32) {
        match i.op_kind(n) {
            OpKind::Register => self.load_reg(i.op_register(n), true),
            OpKind::Memory => {
                self.load_mem(i, k, size, false);
                dynasm!(self.ops ; .arch x64 ; mov rcx, rax);
            }
            _ => self.mov_rcx(i.immediate(n) as i64),
        }
    }

    /// The result in RAX to operand 0, the operation's flags pending in R15.
    pub(super) fn commit(&mut self, i: &Instruction, k: u32, size: u32) {
        if i.op_kind(0) == OpKind::Memory {
            self.save_flags(i);
            self.store_dest(i, k, size);
        } else {
            // A register store leaves the host's flags alone.
            self.store_dest(i, k, size);
            self.save_flags_free_rax(i);
        }
        self.fuse_with_next(i.op_kind(0) == OpKind::Memory);
    }
}
