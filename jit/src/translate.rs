//! Guest instructions to host code.
//!
//! What is translated (64-bit code, 8- to 64-bit operands, no LOCK or REP prefix): MOV, the
//! ALU group (ADD OR ADC SBB AND SUB XOR CMP TEST), INC DEC NEG NOT, SHL SHR SAR by an
//! immediate, LEA, MOVZX MOVSX MOVSXD, SETcc, CMOVcc, two- and three-operand IMUL, XCHG of two
//! registers, NOP and ENDBR, PUSH and POP of 64-bit registers, and as the block's last instruction JMP,
//! Jcc and CALL to a relative target and RET. Register and memory operands both; memory goes
//! through the helpers. A block ends before the first instruction outside
//! this set, at the end of its page, or after [`MAX_BLOCK`] instructions.
//!
//! Register use in a block: RBX = the context, R12 = `Cpu::regs`, R13 = RFLAGS' address,
//! R14 = RIP's address, R15 = flags kept across a helper call; RAX, RCX, RDX, RSI, RDI and
//! R8 are scratch. Guest registers live in `Cpu::regs` between instructions, so an exception
//! in a helper finds the guest state exact.

use dynasmrt::x64::Assembler;
use dynasmrt::{dynasm, AssemblyOffset, DynamicLabel, DynasmApi, DynasmLabelApi};
use iced_x86::{ConditionCode, Instruction, Mnemonic as M, OpKind, Register, RflagsBits};

use emu_core::interp::operand::{gpr, seg_index};

use crate::helpers::{self, REGS, RFLAGS, RIP, SCRATCH0, SCRATCH1, STATUS};

/// Guest instructions in a block at most.
pub const MAX_BLOCK: usize = 64;

/// CF PF AF ZF SF OF: the status flags a host `popfq` may load (never TF, IF, DF or AC).
const STATUS_FLAGS: u32 = 0x8d5;

/// How an instruction ends the block, if it does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Next,
    End,
}

/// The status flags iced says `i` writes (set, cleared, computed or left undefined).
fn written_flags(i: &Instruction) -> u32 {
    let mut f = 0;
    let m = i.rflags_modified();
    for (rf, bit) in [
        (RflagsBits::CF, 1 << 0),
        (RflagsBits::PF, 1 << 2),
        (RflagsBits::AF, 1 << 4),
        (RflagsBits::ZF, 1 << 6),
        (RflagsBits::SF, 1 << 7),
        (RflagsBits::OF, 1 << 11),
    ] {
        if m & rf != 0 {
            f |= bit;
        }
    }
    f
}

/// A general register operand: where its bytes are in `Cpu::regs` (AH–BH are byte 1 of
/// their register) and its size in bytes.
fn reg_slot(r: Register) -> Option<(i32, u32)> {
    let (idx, size, high) = gpr(r)?;
    Some((8 * idx as i32 + i32::from(high), size))
}

/// Whether the translator handles `i` (and how it affects the block).
pub fn supported(i: &Instruction) -> Option<Flow> {
    if i.has_lock_prefix() || i.has_rep_prefix() || i.has_repne_prefix() {
        return None;
    }
    let size = op_size(i);
    let sized = matches!(size, Some(1 | 2 | 4 | 8));
    let wide = matches!(size, Some(2 | 4 | 8));
    let mem_ok = |k: u32| i.op_kind(k) != OpKind::Memory || memory_ok(i);
    let reg_or_mem = |k: u32| match i.op_kind(k) {
        OpKind::Register => reg_slot(i.op_register(k)).is_some(),
        OpKind::Memory => memory_ok(i),
        _ => false,
    };
    let src_ok = |k: u32| match i.op_kind(k) {
        OpKind::Register => reg_slot(i.op_register(k)).is_some(),
        OpKind::Memory => memory_ok(i),
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32
        | OpKind::Immediate32to64
        | OpKind::Immediate64 => true,
        _ => false,
    };
    let ok = match i.mnemonic() {
        M::Mov => {
            sized
                && i.op_count() == 2
                && reg_or_mem(0)
                && src_ok(1)
                && !(i.op_kind(0) == OpKind::Memory && i.op_kind(1) == OpKind::Memory)
        }
        M::Add | M::Or | M::Adc | M::Sbb | M::And | M::Sub | M::Xor | M::Cmp | M::Test => {
            sized && reg_or_mem(0) && src_ok(1)
        }
        M::Inc | M::Dec | M::Neg | M::Not => sized && reg_or_mem(0),
        M::Shl | M::Sal | M::Shr | M::Sar => {
            // A masked count of zero is the interpreter's (no flags change, but a 32-bit
            // register destination is still zero-extended).
            let mask = if size == Some(8) { 63 } else { 31 };
            sized
                && reg_or_mem(0)
                && i.op_kind(1) == OpKind::Immediate8
                && i.immediate8() & mask != 0
        }
        M::Lea => wide && i.op_kind(0) == OpKind::Register && memory_ok(i),
        M::Movzx | M::Movsx | M::Movsxd => {
            wide && i.op_kind(0) == OpKind::Register
                && match i.op_kind(1) {
                    OpKind::Register => gpr(i.op_register(1)).is_some(),
                    OpKind::Memory => memory_ok(i),
                    _ => false,
                }
        }
        M::Push => {
            i.op_kind(0) == OpKind::Register && matches!(gpr(i.op_register(0)), Some((_, 8, false)))
        }
        M::Pop => {
            i.op_kind(0) == OpKind::Register && matches!(gpr(i.op_register(0)), Some((_, 8, false)))
        }
        M::Nop | M::Endbr64 | M::Endbr32 => true,
        M::Xchg => sized && i.op_kind(0) == OpKind::Register && i.op_kind(1) == OpKind::Register,
        M::Imul => {
            wide && i.op_kind(0) == OpKind::Register
                && match i.op_count() {
                    2 => reg_or_mem(1),
                    3 => reg_or_mem(1) && src_ok(2),
                    _ => false,
                }
        }
        m if is_setcc(m) => size == Some(1) && reg_or_mem(0),
        m if is_cmovcc(m) => wide && i.op_kind(0) == OpKind::Register && reg_or_mem(1),
        // A non-canonical target is the interpreter's #GP to raise.
        M::Jmp | M::Call => {
            i.op_kind(0) == OpKind::NearBranch64 && emu_core::interp::canonical(i.near_branch64())
        }
        M::Ret => i.op_count() == 0,
        m if i.is_jcc_short_or_near() && m != M::Jrcxz => {
            emu_core::interp::canonical(i.near_branch_target())
        }
        _ => false,
    };
    if !ok || !mem_ok(0) {
        return None;
    }
    Some(if i.flow_control() == iced_x86::FlowControl::Next {
        Flow::Next
    } else {
        Flow::End
    })
}

fn is_setcc(m: M) -> bool {
    matches!(
        m,
        M::Seto
            | M::Setno
            | M::Setb
            | M::Setae
            | M::Sete
            | M::Setne
            | M::Setbe
            | M::Seta
            | M::Sets
            | M::Setns
            | M::Setp
            | M::Setnp
            | M::Setl
            | M::Setge
            | M::Setle
            | M::Setg
    )
}

fn is_cmovcc(m: M) -> bool {
    matches!(
        m,
        M::Cmovo
            | M::Cmovno
            | M::Cmovb
            | M::Cmovae
            | M::Cmove
            | M::Cmovne
            | M::Cmovbe
            | M::Cmova
            | M::Cmovs
            | M::Cmovns
            | M::Cmovp
            | M::Cmovnp
            | M::Cmovl
            | M::Cmovge
            | M::Cmovle
            | M::Cmovg
    )
}

/// The operand size the translator works in (None for instructions without one).
fn op_size(i: &Instruction) -> Option<u32> {
    match i.op0_kind() {
        OpKind::Register => gpr(i.op0_register()).map(|(_, s, _)| s),
        OpKind::Memory => Some(i.memory_size().size() as u32),
        _ => None,
    }
}

/// A memory operand the translator can address: 64- or 32-bit addressing with general
/// registers, or RIP-relative.
fn memory_ok(i: &Instruction) -> bool {
    let base_ok = match i.memory_base() {
        Register::None | Register::RIP | Register::EIP => true,
        r => matches!(gpr(r), Some((_, 4 | 8, false))),
    };
    let index_ok = match i.memory_index() {
        Register::None => true,
        r => matches!(gpr(r), Some((_, 4 | 8, false))),
    };
    base_ok && index_ok && seg_index(i.memory_segment()).is_some()
}

/// Emits one block; returns its entry offset and how many guest instructions it holds.
pub struct BlockBuilder<'a> {
    ops: &'a mut Assembler,
    epilogue: DynamicLabel,
    /// Per instruction with a helper call: (its exit label, its index, RIP, next RIP, the
    /// flags a store into the block's code must still merge from R15 on the way out).
    exits: Vec<(DynamicLabel, u32, u64, u64, u32)>,
    /// Flags computed into R15 and not yet merged (set around a destination's store).
    pending_flags: u32,
}

impl<'a> BlockBuilder<'a> {
    /// Translates `instrs` (already checked with [`supported`]) into one block.
    pub fn build(ops: &'a mut Assembler, instrs: &[Instruction]) -> AssemblyOffset {
        let epilogue = ops.new_dynamic_label();
        let mut b = BlockBuilder {
            ops,
            epilogue,
            exits: Vec::new(),
            pending_flags: 0,
        };
        let entry = b.ops.offset();
        dynasm!(b.ops
            ; .arch x64
            ; push rbx
            ; push r12
            ; push r13
            ; push r14
            ; push r15
            ; mov rbx, rdi
            ; mov r12, [rbx + REGS]
            ; mov r13, [rbx + RFLAGS]
            ; mov r14, [rbx + RIP]
        );
        let n = instrs.len() as u32;
        let mut ended = false;
        for (k, i) in instrs.iter().enumerate() {
            if b.instruction(i, k as u32) == Flow::End {
                ended = true;
                break;
            }
        }
        if !ended {
            let next = instrs.last().map_or(0, |i| i.next_ip());
            b.finish_at_const(next, n);
        }
        // Exits after helper calls: a fault stops before the instruction, a store into the
        // block's code page after it.
        let exits = std::mem::take(&mut b.exits);
        for (label, k, rip, next, flags) in exits {
            let fault = b.ops.new_dynamic_label();
            let fault_status = helpers::FAULT as i32;
            dynasm!(b.ops
                ; .arch x64
                ; =>label
                ; cmp QWORD [rbx + STATUS], fault_status
                ; je =>fault
            );
            // The instruction completed: its flags too.
            b.merge_flags(flags);
            b.finish_at_const(next, k + 1);
            dynasm!(b.ops ; .arch x64 ; =>fault);
            b.finish_at_const(rip, k);
        }
        dynasm!(b.ops
            ; .arch x64
            ; =>epilogue
            ; pop r15
            ; pop r14
            ; pop r13
            ; pop r12
            ; pop rbx
            ; ret
        );
        entry
    }

    /// Sets RIP to `rip` and returns `count` retired instructions.
    fn finish_at_const(&mut self, rip: u64, count: u32) {
        let (new_rip, count, epilogue) = (rip as i64, count as i32, self.epilogue);
        dynasm!(self.ops
            ; .arch x64
            ; mov rax, QWORD new_rip
            ; mov [r14], rax
            ; mov eax, count
            ; jmp =>epilogue
        );
    }

    /// After a helper call: leave through instruction `k`'s exit if the helper failed or
    /// wrote the block's code.
    fn check(&mut self, i: &Instruction, k: u32) {
        let pending = self.pending_flags;
        let label = match self.exits.iter_mut().find(|e| e.1 == k) {
            Some(e) => {
                e.4 |= pending;
                e.0
            }
            None => {
                let l = self.ops.new_dynamic_label();
                self.exits.push((l, k, i.ip(), i.next_ip(), pending));
                l
            }
        };
        dynasm!(self.ops
            ; .arch x64
            ; cmp QWORD [rbx + STATUS], 0
            ; jne =>label
        );
    }

    /// After CALL's push: leave through instruction `k`'s exit only if it faulted.
    fn check_fault(&mut self, i: &Instruction, k: u32) {
        let label = self.ops.new_dynamic_label();
        self.exits.push((label, k, i.ip(), i.next_ip(), 0));
        let fault_status = helpers::FAULT as i32;
        dynasm!(self.ops
            ; .arch x64
            ; cmp QWORD [rbx + STATUS], fault_status
            ; je =>label
        );
    }

    /// RDX = the offset of `i`'s memory operand (its segment is applied by the helper).
    fn effective_address(&mut self, i: &Instruction) {
        let disp = if i.is_ip_rel_memory_operand() {
            i.ip_rel_memory_address()
        } else {
            i.memory_displacement64()
        };
        let disp = disp as i64;
        dynasm!(self.ops ; .arch x64 ; mov rdx, QWORD disp);
        if let Some((b, _, _)) = gpr(i.memory_base()) {
            let off_b = 8 * b as i32;
            dynasm!(self.ops ; .arch x64 ; add rdx, [r12 + off_b]);
        }
        if let Some((x, _, _)) = gpr(i.memory_index()) {
            let shift = i.memory_index_scale().trailing_zeros() as i8;
            let off_x = 8 * x as i32;
            dynasm!(self.ops
                ; .arch x64
                ; mov rax, [r12 + off_x]
                ; shl rax, shift
                ; add rdx, rax
            );
        }
        if addr32(i) {
            dynasm!(self.ops ; .arch x64 ; mov edx, edx);
        }
    }

    /// RAX = the memory operand (`size` bytes, zero-extended) through the load helper.
    fn load_mem(&mut self, i: &Instruction, k: u32, size: u32) {
        self.effective_address(i);
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        let (size, f) = (size as i32, helpers::load as *const () as usize as i64);
        dynasm!(self.ops
            ; .arch x64
            ; mov [rbx + SCRATCH0], rdx
            ; mov rdi, rbx
            ; mov esi, seg
            ; mov ecx, size
            ; mov rax, QWORD f
            ; call rax
        );
        self.check(i, k);
    }

    /// Stores RAX's low `size` bytes to the memory operand whose offset is in scratch 0.
    fn store_mem(&mut self, i: &Instruction, k: u32, size: u32) {
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        let (size, f) = (size as i32, helpers::store as *const () as usize as i64);
        dynasm!(self.ops
            ; .arch x64
            ; mov r8, rax
            ; mov rdx, [rbx + SCRATCH0]
            ; mov rdi, rbx
            ; mov esi, seg
            ; mov ecx, size
            ; mov rax, QWORD f
            ; call rax
        );
        self.check(i, k);
    }

    /// RAX (`rcx` false) or RCX = register `r`, zero-extended from its size.
    fn load_reg(&mut self, r: Register, rcx: bool) {
        let (off, size) = reg_slot(r).expect("checked");
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
    /// 8- and 16-bit writes leave the rest alone.
    fn store_reg(&mut self, r: Register) {
        let (off, size) = reg_slot(r).expect("checked");
        match size {
            8 => dynasm!(self.ops ; .arch x64 ; mov QWORD [r12 + off], rax),
            4 => dynasm!(self.ops ; .arch x64 ; mov eax, eax ; mov QWORD [r12 + off], rax),
            2 => dynasm!(self.ops ; .arch x64 ; mov WORD [r12 + off], ax),
            _ => dynasm!(self.ops ; .arch x64 ; mov BYTE [r12 + off], al),
        }
    }

    /// RAX = operand 0 (a register or memory) in `size` bytes.
    fn load_dest(&mut self, i: &Instruction, k: u32, size: u32) {
        match i.op_kind(0) {
            OpKind::Memory => self.load_mem(i, k, size),
            _ => self.load_reg(i.op_register(0), false),
        }
    }

    /// Operand 0 = RAX's low `size` bytes.
    fn store_dest(&mut self, i: &Instruction, k: u32, size: u32) {
        match i.op_kind(0) {
            OpKind::Memory => self.store_mem(i, k, size),
            _ => self.store_reg(i.op_register(0)),
        }
    }

    /// RCX = operand `n` (register, immediate or memory) in `size` bytes.
    fn load_src(&mut self, i: &Instruction, k: u32, n: u32, size: u32) {
        match i.op_kind(n) {
            OpKind::Register => self.load_reg(i.op_register(n), true),
            OpKind::Memory => {
                self.load_mem(i, k, size);
                dynasm!(self.ops ; .arch x64 ; mov rcx, rax);
            }
            _ => {
                let imm = i.immediate(n) as i64;
                dynasm!(self.ops ; .arch x64 ; mov rcx, QWORD imm);
            }
        }
    }

    /// The guest's status flags into the host's (for instructions that read them).
    fn load_flags(&mut self) {
        let status = STATUS_FLAGS as i32;
        dynasm!(self.ops
            ; .arch x64
            ; mov rsi, [r13]
            ; and esi, status
            ; push rsi
            ; popfq
        );
    }

    /// The host's flags into R15 (right after the operation of `i`), pending until merged.
    fn save_flags(&mut self, i: &Instruction) {
        self.pending_flags = written_flags(i);
        dynasm!(self.ops ; .arch x64 ; pushfq ; pop r15);
    }

    /// The result in RAX to operand 0 and the operation's flags to RFLAGS (the flags only
    /// once the store cannot fault any more).
    fn commit(&mut self, i: &Instruction, k: u32, size: u32) {
        self.save_flags(i);
        self.store_dest(i, k, size);
        self.merge_flags(written_flags(i));
    }

    /// RFLAGS = RFLAGS with the flags in `which` from R15.
    fn merge_flags(&mut self, which: u32) {
        self.pending_flags = 0;
        if which == 0 {
            return;
        }
        let (keep, take) = (!(which as i32), which as i32);
        dynasm!(self.ops
            ; .arch x64
            ; mov rsi, [r13]
            ; and rsi, keep
            ; and r15d, take
            ; or rsi, r15
            ; mov [r13], rsi
        );
    }

    fn instruction(&mut self, i: &Instruction, k: u32) -> Flow {
        let size = op_size(i).unwrap_or(8);
        match i.mnemonic() {
            M::Nop | M::Endbr64 | M::Endbr32 => {}
            M::Xchg => {
                self.load_reg(i.op_register(0), false);
                self.load_reg(i.op_register(1), true);
                self.store_reg(i.op_register(1));
                dynasm!(self.ops ; .arch x64 ; mov rax, rcx);
                self.store_reg(i.op_register(0));
            }
            M::Imul => {
                // Two operands: dest *= r/m; three: dest = r/m * imm.
                if i.op_count() == 2 {
                    self.load_src(i, k, 1, size);
                    self.load_reg(i.op_register(0), false);
                } else {
                    self.load_src(i, k, 1, size);
                    dynasm!(self.ops ; .arch x64 ; mov rax, rcx);
                    let imm = i.immediate(2) as i64;
                    dynasm!(self.ops ; .arch x64 ; mov rcx, QWORD imm);
                }
                match size {
                    2 => dynasm!(self.ops ; .arch x64 ; imul ax, cx),
                    4 => dynasm!(self.ops ; .arch x64 ; imul eax, ecx),
                    _ => dynasm!(self.ops ; .arch x64 ; imul rax, rcx),
                }
                self.save_flags(i);
                self.store_reg(i.op_register(0));
                self.merge_flags(written_flags(i));
            }
            m if is_setcc(m) => {
                if i.op_kind(0) == OpKind::Memory {
                    self.effective_address(i);
                    dynasm!(self.ops ; .arch x64 ; mov [rbx + SCRATCH0], rdx);
                }
                // MOV, not XOR: the flags must survive until the CMOV.
                dynasm!(self.ops ; .arch x64 ; mov eax, 0 ; mov ecx, 1);
                self.load_flags();
                self.cmov_cc(i.condition_code());
                self.store_dest(i, k, 1);
            }
            m if is_cmovcc(m) => {
                // The source is read whatever the condition, as on hardware.
                self.load_src(i, k, 1, size);
                self.load_reg(i.op_register(0), false);
                self.load_flags();
                self.cmov_cc(i.condition_code());
                self.store_reg(i.op_register(0));
            }
            M::Mov => {
                if i.op_kind(0) == OpKind::Memory {
                    self.load_src(i, k, 1, size);
                    self.effective_address(i);
                    dynasm!(self.ops ; .arch x64 ; mov [rbx + SCRATCH0], rdx ; mov rax, rcx);
                    self.store_mem(i, k, size);
                } else {
                    self.load_src(i, k, 1, size);
                    dynasm!(self.ops ; .arch x64 ; mov rax, rcx);
                    self.store_dest(i, k, size);
                }
            }
            m
            @ (M::Add | M::Or | M::Adc | M::Sbb | M::And | M::Sub | M::Xor | M::Cmp | M::Test) => {
                // The source first: a memory destination's address stays in scratch 0.
                if i.op_kind(1) == OpKind::Memory {
                    self.load_src(i, k, 1, size);
                    dynasm!(self.ops ; .arch x64 ; mov [rbx + SCRATCH1], rcx);
                    self.load_dest(i, k, size);
                    dynasm!(self.ops ; .arch x64 ; mov rcx, [rbx + SCRATCH1]);
                } else {
                    self.load_dest(i, k, size);
                    self.load_src(i, k, 1, size);
                }
                if matches!(m, M::Adc | M::Sbb) {
                    self.load_flags();
                }
                macro_rules! op {
                    ($op:ident) => {
                        match size {
                            1 => dynasm!(self.ops ; .arch x64 ; $op al, cl),
                            2 => dynasm!(self.ops ; .arch x64 ; $op ax, cx),
                            4 => dynasm!(self.ops ; .arch x64 ; $op eax, ecx),
                            _ => dynasm!(self.ops ; .arch x64 ; $op rax, rcx),
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
                self.save_flags(i);
                if !matches!(m, M::Cmp | M::Test) {
                    self.store_dest(i, k, size);
                }
                self.merge_flags(written_flags(i));
            }
            m @ (M::Inc | M::Dec | M::Neg | M::Not) => {
                self.load_dest(i, k, size);
                macro_rules! op {
                    ($op:ident) => {
                        match size {
                            1 => dynasm!(self.ops ; .arch x64 ; $op al),
                            2 => dynasm!(self.ops ; .arch x64 ; $op ax),
                            4 => dynasm!(self.ops ; .arch x64 ; $op eax),
                            _ => dynasm!(self.ops ; .arch x64 ; $op rax),
                        }
                    };
                }
                match m {
                    M::Inc => op!(inc),
                    M::Dec => op!(dec),
                    M::Neg => op!(neg),
                    _ => op!(not),
                }
                self.commit(i, k, size);
            }
            m @ (M::Shl | M::Sal | M::Shr | M::Sar) => {
                let count = (i.immediate8() as u32) & if size == 8 { 63 } else { 31 };
                self.load_dest(i, k, size);
                let c = count as i8;
                macro_rules! op {
                    ($op:ident) => {
                        match size {
                            1 => dynasm!(self.ops ; .arch x64 ; $op al, c),
                            2 => dynasm!(self.ops ; .arch x64 ; $op ax, c),
                            4 => dynasm!(self.ops ; .arch x64 ; $op eax, c),
                            _ => dynasm!(self.ops ; .arch x64 ; $op rax, c),
                        }
                    };
                }
                match m {
                    M::Shr => op!(shr),
                    M::Sar => op!(sar),
                    _ => op!(shl),
                }
                self.commit(i, k, size);
            }
            M::Lea => {
                self.effective_address(i);
                dynasm!(self.ops ; .arch x64 ; mov rax, rdx);
                self.store_dest(i, k, size);
            }
            m @ (M::Movzx | M::Movsx | M::Movsxd) => {
                let src_size = match i.op_kind(1) {
                    OpKind::Register => {
                        self.load_reg(i.op_register(1), false);
                        reg_slot(i.op_register(1)).expect("checked").1
                    }
                    _ => {
                        let s = i.memory_size().size() as u32;
                        self.load_mem(i, k, s);
                        s
                    }
                };
                let signed = m != M::Movzx;
                match (signed, src_size) {
                    (false, 1) => dynasm!(self.ops ; .arch x64 ; movzx eax, al),
                    (false, 2) => dynasm!(self.ops ; .arch x64 ; movzx eax, ax),
                    (false, _) => dynasm!(self.ops ; .arch x64 ; mov eax, eax),
                    (true, 1) => dynasm!(self.ops ; .arch x64 ; movsx rax, al),
                    (true, 2) => dynasm!(self.ops ; .arch x64 ; movsx rax, ax),
                    (true, _) => dynasm!(self.ops ; .arch x64 ; movsxd rax, eax),
                }
                self.store_dest(i, k, size);
            }
            M::Push => {
                let (r, _, _) = gpr(i.op_register(0)).expect("checked");
                let off_r = 8 * r as i32;
                let f = helpers::push as *const () as usize as i64;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rdi, rbx
                    ; mov rsi, [r12 + off_r]
                    ; mov edx, 8
                    ; mov rax, QWORD f
                    ; call rax
                );
                self.check(i, k);
            }
            M::Pop => {
                let (r, _, _) = gpr(i.op_register(0)).expect("checked");
                let off_r = 8 * r as i32;
                let f = helpers::pop as *const () as usize as i64;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rdi, rbx
                    ; mov esi, 8
                    ; mov rax, QWORD f
                    ; call rax
                );
                self.check(i, k);
                dynasm!(self.ops ; .arch x64 ; mov [r12 + off_r], rax);
            }
            M::Jmp => {
                self.finish_at_const(i.near_branch64(), k + 1);
                return Flow::End;
            }
            M::Call => {
                let next = i.next_ip() as i64;
                let f = helpers::push as *const () as usize as i64;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rdi, rbx
                    ; mov rsi, QWORD next
                    ; mov edx, 8
                    ; mov rax, QWORD f
                    ; call rax
                );
                // The push may have written this block's page: the block ends here anyway.
                self.check_fault(i, k);
                self.finish_at_const(i.near_branch64(), k + 1);
                return Flow::End;
            }
            M::Ret => {
                let f = helpers::ret as *const () as usize as i64;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rdi, rbx
                    ; mov rax, QWORD f
                    ; call rax
                );
                self.check(i, k);
                let (epilogue, done) = (self.epilogue, (k + 1) as i32);
                dynasm!(self.ops
                    ; .arch x64
                    ; mov [r14], rax
                    ; mov eax, done
                    ; jmp =>epilogue
                );
                return Flow::End;
            }
            _ => {
                // Jcc: RIP = the target if the condition holds, else the next instruction.
                self.load_flags();
                let (next, target) = (i.next_ip() as i64, i.near_branch_target() as i64);
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rax, QWORD next
                    ; mov rcx, QWORD target
                );
                self.cmov_cc(i.condition_code());
                let (epilogue, done) = (self.epilogue, (k + 1) as i32);
                dynasm!(self.ops
                    ; .arch x64
                    ; mov [r14], rax
                    ; mov eax, done
                    ; jmp =>epilogue
                );
                return Flow::End;
            }
        }
        Flow::Next
    }

    /// RAX = RCX if condition `cc` holds on the host's flags.
    fn cmov_cc(&mut self, cc: ConditionCode) {
        match cc {
            ConditionCode::o => dynasm!(self.ops ; .arch x64 ; cmovo rax, rcx),
            ConditionCode::no => dynasm!(self.ops ; .arch x64 ; cmovno rax, rcx),
            ConditionCode::b => dynasm!(self.ops ; .arch x64 ; cmovb rax, rcx),
            ConditionCode::ae => dynasm!(self.ops ; .arch x64 ; cmovae rax, rcx),
            ConditionCode::e => dynasm!(self.ops ; .arch x64 ; cmove rax, rcx),
            ConditionCode::ne => dynasm!(self.ops ; .arch x64 ; cmovne rax, rcx),
            ConditionCode::be => dynasm!(self.ops ; .arch x64 ; cmovbe rax, rcx),
            ConditionCode::a => dynasm!(self.ops ; .arch x64 ; cmova rax, rcx),
            ConditionCode::s => dynasm!(self.ops ; .arch x64 ; cmovs rax, rcx),
            ConditionCode::ns => dynasm!(self.ops ; .arch x64 ; cmovns rax, rcx),
            ConditionCode::p => dynasm!(self.ops ; .arch x64 ; cmovp rax, rcx),
            ConditionCode::np => dynasm!(self.ops ; .arch x64 ; cmovnp rax, rcx),
            ConditionCode::l => dynasm!(self.ops ; .arch x64 ; cmovl rax, rcx),
            ConditionCode::ge => dynasm!(self.ops ; .arch x64 ; cmovge rax, rcx),
            ConditionCode::le => dynasm!(self.ops ; .arch x64 ; cmovle rax, rcx),
            _ => dynasm!(self.ops ; .arch x64 ; cmovg rax, rcx),
        }
    }
}

/// 32-bit addressing (an address-size prefix in 64-bit code).
fn addr32(i: &Instruction) -> bool {
    matches!(
        i.memory_base(),
        Register::EAX
            | Register::ECX
            | Register::EDX
            | Register::EBX
            | Register::ESP
            | Register::EBP
            | Register::ESI
            | Register::EDI
            | Register::R8D
            | Register::R9D
            | Register::R10D
            | Register::R11D
            | Register::R12D
            | Register::R13D
            | Register::R14D
            | Register::R15D
            | Register::EIP
    ) || gpr(i.memory_index()).is_some_and(|(_, s, _)| s == 4)
}
