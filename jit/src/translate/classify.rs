//! Which instructions a block takes and how: host code of their own ([`native`]), the
//! interpreter in place ([`interpreted`]), or neither ([`supported`]); and the per-instruction
//! facts the builder plans with (flags read and written, memory written back, the registers
//! a block keeps in host registers and loads on entry).

use super::*;

use emu_core::interp::operand::is_immediate;

/// A general register operand: where its bytes are in `Cpu::regs` (AH–BH are byte 1 of
/// their register) and its size in bytes.
pub(super) fn reg_slot(r: Register) -> Option<(i32, u32)> {
    let (idx, size, high) = gpr(r)?;
    Some((8 * idx as i32 + i32::from(high), size))
}

/// Whether the translator handles `i` (and how it affects the block): with host code of
/// its own, or by calling the interpreter for it inside the block.
pub fn supported(i: &Instruction) -> Option<Flow> {
    native(i).or_else(|| interpreted(i).then_some(Flow::Next))
}

/// Instructions a block runs by calling the interpreter in place: any that continues at the
/// next instruction and cannot change what translated code relies on — the mode, CPL,
/// paging and the TLB, the FS/GS bases, TF/AC, interrupt shadows, debug registers — or
/// that may let an interrupt in (STI, POPF: the vCPU loop must look soon), or reach devices
/// (port I/O, hypercalls). Those end the block instead. CLI stays in the block: nothing
/// there depends on IF, and interrupts are only taken between runs.
pub(super) fn interpreted(i: &Instruction) -> bool {
    if i.flow_control() != iced_x86::FlowControl::Next {
        return false;
    }
    // Writes to segment, control and debug registers.
    if i.op_count() > 0 && i.op0_kind() == OpKind::Register {
        let r = i.op0_register();
        if r.is_segment_register() || r.is_cr() || r.is_dr() {
            return false;
        }
    }
    !matches!(
        i.mnemonic(),
        M::Popf
            | M::Popfd
            | M::Popfq
            | M::Sti
            | M::Stac
            | M::Clac
            | M::Hlt
            | M::In
            | M::Out
            | M::Insb
            | M::Insw
            | M::Insd
            | M::Outsb
            | M::Outsw
            | M::Outsd
            | M::Lss
            | M::Lfs
            | M::Lgs
            | M::Lds
            | M::Les
            | M::Wrmsr
            | M::Swapgs
            | M::Wrfsbase
            | M::Wrgsbase
            | M::Lgdt
            | M::Lidt
            | M::Lldt
            | M::Ltr
            | M::Lmsw
            | M::Clts
            | M::Invlpg
            | M::Invpcid
            | M::Invlpga
            | M::Xsetbv
            | M::Monitor
            | M::Mwait
            | M::Umwait
            | M::Tpause
            | M::Rsm
            | M::Invd
            | M::Wbinvd
            | M::Vmcall
            | M::Vmmcall
    )
}

/// Whether the translator emits host code of its own for `i`.
pub(super) fn native(i: &Instruction) -> Option<Flow> {
    if sse(i).is_some() || rep_string(i).is_some() {
        return Some(Flow::Next);
    }
    // REP/REPNE mean nothing on near branches (`rep ret`, MPX's BND prefix): allowed there.
    let branch = matches!(i.mnemonic(), M::Jmp | M::Call | M::Ret) || i.is_jcc_short_or_near();
    // CMPXCHG and XCHG with memory run as the host's atomic instructions, LOCK or not.
    let atomic = matches!(i.mnemonic(), M::Cmpxchg | M::Xchg) && i.op0_kind() == OpKind::Memory;
    if (i.has_lock_prefix() && !atomic) || (!branch && (i.has_rep_prefix() || i.has_repne_prefix()))
    {
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
        k => is_immediate(k),
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
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr => {
            sized
                && reg_or_mem(0)
                && (i.op_kind(1) == OpKind::Immediate8
                    || (i.op_kind(1) == OpKind::Register && i.op_register(1) == Register::CL))
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
        // A register of the stack's word (not the 16-bit forms); PUSH of an immediate or a
        // memory operand too (arguments in 32-bit code).
        M::Pop => {
            i.op_kind(0) == OpKind::Register
                && matches!(gpr(i.op_register(0)), Some((_, w, false)) if w == word(i))
        }
        M::Push => {
            i.stack_pointer_increment() == -(word(i) as i32)
                && match i.op_kind(0) {
                    OpKind::Register => {
                        matches!(gpr(i.op_register(0)), Some((_, w, false)) if w == word(i))
                    }
                    OpKind::Memory => memory_ok(i),
                    k => is_immediate(k),
                }
        }
        M::Nop | M::Endbr64 | M::Endbr32 => true,
        // DF lives in RFLAGS alone (R15 holds the status flags; merges leave DF be).
        M::Cld | M::Std => true,
        // AH to RFLAGS' low byte: 32-bit code's x87 compares (FNSTSW AX; SAHF).
        M::Sahf => true,
        M::Xchg => {
            sized
                && reg_or_mem(0)
                && i.op_kind(1) == OpKind::Register
                && reg_slot(i.op_register(1)).is_some()
                && (i.op_kind(0) == OpKind::Register || matches!(size, Some(4 | 8)))
        }
        M::Cmpxchg => {
            matches!(size, Some(4 | 8))
                && i.op_kind(0) == OpKind::Memory
                && memory_ok(i)
                && matches!(gpr(i.op_register(1)), Some((_, 4 | 8, false)))
        }
        M::Imul if i.op_count() == 1 => sized && reg_or_mem(0),
        M::Imul => {
            wide && i.op_kind(0) == OpKind::Register
                && match i.op_count() {
                    2 => reg_or_mem(1),
                    3 => reg_or_mem(1) && src_ok(2),
                    _ => false,
                }
        }
        // DIV raises #DE through the interpreter (see `divide`).
        M::Mul | M::Div => sized && reg_or_mem(0),
        M::Cbw | M::Cwde | M::Cdqe | M::Cwd | M::Cdq | M::Cqo => true,
        M::Bswap => {
            i.op_kind(0) == OpKind::Register && matches!(gpr(i.op_register(0)), Some((_, 4 | 8, _)))
        }
        // The host's own where the model and the host have them (`BlockEnv::bit_count`),
        // else the interpreter in place.
        M::Popcnt | M::Lzcnt | M::Tzcnt => {
            matches!(size, Some(4 | 8)) && i.op_kind(0) == OpKind::Register && reg_or_mem(1)
        }
        M::Bsf | M::Bsr => wide && i.op_kind(0) == OpKind::Register && reg_or_mem(1),
        // The bit-string forms with a memory operand address beyond it: the interpreter's.
        // BT reads a bit string in memory too (a register offset reaches beyond the
        // operand); BTS/BTR/BTC on memory write it (and are mostly LOCK'ed): the
        // interpreter's.
        M::Bt | M::Bts | M::Btr | M::Btc => {
            wide && (i.op_kind(0) == OpKind::Register
                || (i.mnemonic() == M::Bt && memory_ok(i) && !addr16(i)))
                && matches!(i.op_kind(1), OpKind::Register | OpKind::Immediate8)
                && (i.op_kind(1) != OpKind::Register || reg_slot(i.op_register(1)).is_some())
        }
        M::Shld | M::Shrd => {
            matches!(size, Some(4 | 8))
                && reg_or_mem(0)
                && matches!(gpr(i.op_register(1)), Some((_, 4 | 8, false)))
                && (i.op_kind(2) == OpKind::Immediate8
                    || (i.op_kind(2) == OpKind::Register && i.op_register(2) == Register::CL))
        }
        m if is_setcc(m) => size == Some(1) && reg_or_mem(0),
        m if is_cmovcc(m) => wide && i.op_kind(0) == OpKind::Register && reg_or_mem(1),
        // A non-canonical target is the interpreter's #GP to raise.
        // A CALL pushes the stack's word (not an operand-size prefixed one: `66 E8` in
        // 16-bit code pushes 4 bytes).
        M::Call if i.stack_pointer_increment() != -(word(i) as i32) => false,
        M::Jmp | M::Call => match i.op_kind(0) {
            // A non-canonical constant target is the interpreter's #GP to raise.
            OpKind::NearBranch64 => emu_core::interp::canonical(i.near_branch64()),
            k @ (OpKind::NearBranch32 | OpKind::NearBranch16) => in_cs(i, k),
            // Indirect through a register or memory of the code's word (not the 16-bit
            // forms, nor far pointers).
            OpKind::Register => {
                matches!(gpr(i.op_register(0)), Some((_, w, false)) if w == word(i))
            }
            OpKind::Memory => {
                (i.is_jmp_near_indirect() || i.is_call_near_indirect())
                    && i.memory_size().size() as u32 == word(i)
                    && memory_ok(i)
            }
            _ => false,
        },
        M::Ret => {
            i.op_count() == 0
                && matches!(
                    (i.code(), word(i)),
                    (iced_x86::Code::Retnq, 8)
                        | (iced_x86::Code::Retnd, 4)
                        | (iced_x86::Code::Retnw, 2)
                )
        }
        m if i.is_jcc_short_or_near() && m != M::Jrcxz => match i.op_kind(0) {
            k @ (OpKind::NearBranch32 | OpKind::NearBranch16) => in_cs(i, k),
            _ => emu_core::interp::canonical(i.near_branch_target()),
        },
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

/// REP STOS and REP MOVS with 64-bit addresses: their element size, and whether it is a
/// MOVS. (Their host code covers a destination — and source — inside one page; anything
/// else goes to the interpreter, see `BlockBuilder::rep_string`.)
pub(super) fn rep_string(i: &Instruction) -> Option<(u32, bool)> {
    // 64- or 32-bit addressing (16-bit code's are declined by the builder: its segments
    // have bases).
    if !i.has_rep_prefix()
        || i.has_lock_prefix()
        || !matches!(i.op0_kind(), OpKind::MemoryESRDI | OpKind::MemoryESEDI)
    {
        return None;
    }
    let movs = match i.mnemonic() {
        M::Stosb | M::Stosw | M::Stosd | M::Stosq => false,
        // A source with an FS or GS base: the page checks are on offsets (bases are 0).
        M::Movsb | M::Movsw | M::Movsd | M::Movsq
            if matches!(i.op1_kind(), OpKind::MemorySegRSI | OpKind::MemorySegESI)
                && !matches!(i.memory_segment(), Register::FS | Register::GS)
                // CS may be execute-only outside 64-bit code: the interpreter checks it.
                && !(i.memory_segment() == Register::CS && i.code_size() != iced_x86::CodeSize::Code64) =>
        {
            true
        }
        _ => return None,
    };
    Some((i.memory_size().size() as u32, movs))
}

/// Whether the translation of `i` may leave some flags it writes unchanged (a shift or
/// rotate whose count may mask to zero, RCL/RCR, SHLD/SHRD by CL or zero): such flags are
/// loaded from RFLAGS first, so the flags before it are not dead.
pub(super) fn keeps_flags_sometimes(i: &Instruction) -> bool {
    match i.mnemonic() {
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr => {
            let mask = if op_size(i) == Some(8) { 63 } else { 31 };
            matches!(i.mnemonic(), M::Rcl | M::Rcr)
                || i.op_kind(1) != OpKind::Immediate8
                || i.immediate8() & mask == 0
        }
        M::Shld | M::Shrd => {
            let mask = if op_size(i) == Some(8) { 63 } else { 31 };
            i.op_kind(2) != OpKind::Immediate8 || i.immediate8() & mask == 0
        }
        _ => false,
    }
}

/// Whether `i` can sit between a flag writer and the instruction that overwrites its flags
/// with those flags left uncomputed (see `BlockBuilder::flags_dead`): translated in place
/// with register and immediate operands only (no memory access, no helper, no fault), it
/// continues the block, reads no flags and writes the ones it writes whatever its operands.
pub(super) fn flag_transparent(i: &Instruction) -> bool {
    native(i) == Some(Flow::Next)
        && sse(i).is_none()
        && rep_string(i).is_none()
        && (0..i.op_count()).all(|k| i.op_kind(k) == OpKind::Register || is_immediate(i.op_kind(k)))
        && !matches!(
            i.mnemonic(),
            M::Push | M::Pop | M::Div | M::Popcnt | M::Lzcnt | M::Tzcnt
        )
        && i.rflags_read() == 0
        && !keeps_flags_sometimes(i)
}

/// Whether `i` reads its memory operand 0 and writes it back (one soft-TLB lookup for
/// both; see `BlockBuilder::rmw_load`).
pub(super) fn stores_back(i: &Instruction) -> bool {
    i.op0_kind() == OpKind::Memory
        && matches!(
            i.mnemonic(),
            M::Add
                | M::Or
                | M::Adc
                | M::Sbb
                | M::And
                | M::Sub
                | M::Xor
                | M::Inc
                | M::Dec
                | M::Neg
                | M::Not
                | M::Shl
                | M::Sal
                | M::Shr
                | M::Sar
                | M::Rol
                | M::Ror
                | M::Rcl
                | M::Rcr
                | M::Shld
                | M::Shrd
        )
}

/// The status flags a Jcc (SETcc, CMOVcc) tests.
pub(super) fn jcc_flags(i: &Instruction) -> u32 {
    status_bits(i.rflags_read())
}

/// Whether `i`'s translation can test the host's flags as the instruction before left
/// them: nothing it emits before its test writes host flags (a Jcc; a CMOVcc whose source
/// is a register; a SETcc into a register).
pub(super) fn tests_host_flags(i: &Instruction) -> bool {
    i.is_jcc_short_or_near()
        || (is_cmovcc(i.mnemonic()) && i.op1_kind() == OpKind::Register)
        || (is_setcc(i.mnemonic()) && i.op0_kind() == OpKind::Register)
}

pub(super) fn is_setcc(m: M) -> bool {
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

pub(super) fn is_cmovcc(m: M) -> bool {
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
pub(super) fn op_size(i: &Instruction) -> Option<u32> {
    match i.op0_kind() {
        OpKind::Register => gpr(i.op0_register()).map(|(_, s, _)| s),
        OpKind::Memory => Some(i.memory_size().size() as u32),
        _ => None,
    }
}

/// A memory operand the translator can address: 64-, 32- or 16-bit addressing with general
/// registers, or RIP-relative.
pub(super) fn memory_ok(i: &Instruction) -> bool {
    let reg_ok = |r: Register| match r {
        Register::None => true,
        r => matches!(gpr(r), Some((_, 2 | 4 | 8, false))),
    };
    let base_ok =
        matches!(i.memory_base(), Register::RIP | Register::EIP) || reg_ok(i.memory_base());
    // 32-bit code: not CS (a code segment: execute-only or read-only, the interpreter's to
    // check; 16-bit code checks every segment's limits and rights inline).
    let code32_ok =
        i.code_size() != iced_x86::CodeSize::Code32 || i.memory_segment() != Register::CS;
    base_ok && reg_ok(i.memory_index()) && code32_ok && seg_index(i.memory_segment()).is_some()
}

/// 16-bit addressing (16-bit code, or an address-size prefix in 32-bit code): the offset
/// wraps at 64 KiB.
pub(super) fn addr16(i: &Instruction) -> bool {
    let size = |r: Register| gpr(r).map(|(_, s, _)| s);
    size(i.memory_base()) == Some(2)
        || size(i.memory_index()) == Some(2)
        || (i.memory_base() == Register::None
            && i.memory_index() == Register::None
            && i.memory_displ_size() == 2)
}

/// Whether a constant near target of kind `k` is within CS without a check: any 32- or
/// 16-bit one in 32-bit code (its flat CS), a 16-bit one in 16-bit code (a CS limit of at
/// least 64 KiB, see `cache::code_mode`) — not a 32-bit one there (`66 E9 rel32`), which
/// may pass the limit (#GP at the branch: the interpreter's).
fn in_cs(i: &Instruction, k: OpKind) -> bool {
    i.code_size() == iced_x86::CodeSize::Code32 || k == OpKind::NearBranch16
}

/// A JMP or CALL to a constant (near) target.
pub(super) fn is_direct(i: &Instruction) -> bool {
    matches!(
        i.op_kind(0),
        OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16
    )
}

/// The stack's and near branches' word in `i`'s code: 8 bytes in 64-bit code, 4 in 32-bit
/// code and 2 in 16-bit code (whose stack segments match, see `cache::code_mode`).
pub(super) fn word(i: &Instruction) -> u32 {
    match i.code_size() {
        iced_x86::CodeSize::Code64 => 8,
        iced_x86::CodeSize::Code16 => 2,
        _ => 4,
    }
}

/// The guest registers (a bit per index) `instrs` may read before writing them whole: a
/// block loads only those host copies on entry (the others get their value from their
/// first write, and `Cpu::regs` stays exact for every exit either way). A 32- or 64-bit
/// write is whole (a 32-bit one zero-extends); a partial or conditional one counts as a
/// read.
pub(super) fn entry_live(instrs: &[Instruction]) -> u16 {
    let mut factory = InstructionInfoFactory::new();
    let (mut live, mut seen) = (0u16, 0u16);
    for i in instrs {
        let (mut reads, mut writes) = (0u16, 0u16);
        for u in factory.info(i).used_registers() {
            let Some((idx, size, high)) = gpr(u.register()) else {
                continue;
            };
            match u.access() {
                OpAccess::Write if size >= 4 && !high => writes |= 1 << idx,
                _ => reads |= 1 << idx,
            }
        }
        live |= reads & !seen;
        seen |= reads | writes;
    }
    live
}

/// The condition that holds exactly when `cc` does not.
pub(super) fn negate(cc: ConditionCode) -> ConditionCode {
    use ConditionCode as C;
    match cc {
        C::o => C::no,
        C::no => C::o,
        C::b => C::ae,
        C::ae => C::b,
        C::e => C::ne,
        C::ne => C::e,
        C::be => C::a,
        C::a => C::be,
        C::s => C::ns,
        C::ns => C::s,
        C::p => C::np,
        C::np => C::p,
        C::l => C::ge,
        C::ge => C::l,
        C::le => C::g,
        _ => C::le,
    }
}

/// The guest registers a block keeps copies of in host registers (see
/// `BlockBuilder::host`): those its instructions name at least twice, most named first.
pub(super) fn choose_cached(instrs: &[Instruction]) -> [Option<u8>; 16] {
    let mut uses = [0u32; 16];
    for i in instrs {
        for n in 0..i.op_count() {
            if i.op_kind(n) == OpKind::Register {
                if let Some((idx, _, _)) = gpr(i.op_register(n)) {
                    uses[idx] += 1;
                }
            }
        }
        if (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory) {
            for r in [i.memory_base(), i.memory_index()] {
                if let Some((idx, _, _)) = gpr(r) {
                    uses[idx] += 1;
                }
            }
        }
        if matches!(i.mnemonic(), M::Push | M::Pop | M::Call | M::Ret) {
            uses[4] += 1;
        }
    }
    let mut order: Vec<usize> = (0..16).filter(|&r| uses[r] >= 2).collect();
    order.sort_by_key(|&r| std::cmp::Reverse(uses[r]));
    let mut host = [None; 16];
    for (r, h) in order.into_iter().zip(CACHE_REGS) {
        host[r] = Some(h);
    }
    host
}

/// 32-bit addressing (an address-size prefix in 64-bit code).
pub(super) fn addr32(i: &Instruction) -> bool {
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

/// Addresses wrap at 4 GiB: 32-bit addressing (the default in 32-bit code, any other than
/// 16-bit in 16-bit code, an address-size prefix in 64-bit code).
pub(super) fn wraps32(i: &Instruction) -> bool {
    match i.code_size() {
        iced_x86::CodeSize::Code64 => addr32(i),
        _ => !addr16(i),
    }
}

/// Whether `i`'s host code reads and writes guest registers only through their copies
/// (`load_reg`, `store_reg`, `write_back`, addresses from `effective_address`) and calls
/// helpers only from slow paths: then dirty copies may stay dirty across it. Everything
/// else (MUL/DIV, CBW…CQO, PUSH/POP/CALL/RET, strings, SSE, atomics, BT or XCHG on memory,
/// SHLD/SHRD, SAHF, the interpreter in place) flushes them first.
pub(super) fn keeps_copies(i: &Instruction) -> bool {
    if sse(i).is_some() || rep_string(i).is_some() {
        return false;
    }
    match i.mnemonic() {
        M::Mov
        | M::Add
        | M::Or
        | M::Adc
        | M::Sbb
        | M::And
        | M::Sub
        | M::Xor
        | M::Cmp
        | M::Test
        | M::Inc
        | M::Dec
        | M::Neg
        | M::Not
        | M::Shl
        | M::Sal
        | M::Shr
        | M::Sar
        | M::Rol
        | M::Ror
        | M::Rcl
        | M::Rcr
        | M::Lea
        | M::Movzx
        | M::Movsx
        | M::Movsxd
        | M::Bswap
        | M::Bsf
        | M::Bsr
        | M::Popcnt
        | M::Lzcnt
        | M::Tzcnt
        | M::Nop
        | M::Endbr64
        | M::Endbr32
        | M::Cld
        | M::Std => true,
        M::Bt | M::Bts | M::Btr | M::Btc | M::Xchg => i.op_kind(0) == OpKind::Register,
        M::Imul => i.op_count() > 1,
        M::Jmp => is_direct(i),
        m => is_setcc(m) || is_cmovcc(m) || i.is_jcc_short_or_near(),
    }
}
