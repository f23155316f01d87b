//! Guest instructions to host code.
//!
//! A block is up to [`MAX_BLOCK`] instructions of 64-bit code in one page: instructions with
//! host code of their own ([`native`], and the SSE ones in [`sse`]) and instructions the
//! interpreter runs in place ([`interpreted`]); it ends before anything else, at an
//! unconditional branch, or at the end of its page (a Jcc inside is a side exit). ARCHITECTURE.md ("The translator") describes the design.
//!
//! Register use in a block: RBX = the context, R12 = `Cpu::regs` (RIP and RFLAGS at
//! [`RIP_AT`] and [`FLAGS_AT`] from it), RBP = the soft TLB, R15 = the guest's status
//! flags (RFLAGS' are stale while they are pending there; see
//! `BlockBuilder::complete_flags`), R9–R11, R13 and R14 = write-through copies of guest
//! registers (`BlockBuilder::host`); RAX, RCX, RDX, RSI, RDI and R8 are scratch.
//! `Cpu::regs` is exact between instructions, and RFLAGS wherever a helper may read it or
//! raise an exception, so an exception in a helper finds the guest state exact.

use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};
use iced_x86::{
    ConditionCode, Instruction, InstructionInfoFactory, Mnemonic as M, OpAccess, OpKind, Register,
    RflagsBits,
};

use std::mem::offset_of;

use emu_core::interp::cpu::Cpu;
use emu_core::interp::operand::{gpr, seg_index};

use crate::helpers::{
    self, FS_BASE, GS_BASE, JUMPS, LIMIT, LINK, RETIRED, SCRATCH0, SCRATCH1, STATUS,
};

/// The assembler blocks are emitted with, at the address they will run from.
pub type Asm = VecAssembler<X64Relocation>;
use crate::tlb;

/// Guest instructions in a block at most.
pub const MAX_BLOCK: usize = 64;

/// CF PF AF ZF SF OF: the status flags translated code computes and loads (never TF, IF,
/// DF or AC).
const STATUS_FLAGS: u32 = 0x8d5;
const CF: u32 = 1;
/// RIP and RFLAGS relative to `Cpu::regs` (R12).
const RIP_AT: i32 = offset_of!(Cpu, rip) as i32 - offset_of!(Cpu, regs) as i32;
const FLAGS_AT: i32 = offset_of!(Cpu, rflags) as i32 - offset_of!(Cpu, regs) as i32;
/// Host registers that hold copies of guest registers inside a block (see
/// `BlockBuilder::host`): R9, R10, R11, R13, R14.
const CACHE_REGS: [u8; 5] = [9, 10, 11, 13, 14];
const OF: u32 = 1 << 11;

/// How an instruction ends the block, if it does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Next,
    End,
}

/// iced's flag bits as RFLAGS bits (the six status flags).
fn status_bits(iced: u32) -> u32 {
    [
        (RflagsBits::CF, 1 << 0),
        (RflagsBits::PF, 1 << 2),
        (RflagsBits::AF, 1 << 4),
        (RflagsBits::ZF, 1 << 6),
        (RflagsBits::SF, 1 << 7),
        (RflagsBits::OF, 1 << 11),
    ]
    .iter()
    .filter(|(rf, _)| iced & rf != 0)
    .fold(0, |f, (_, bit)| f | bit)
}

/// The status flags iced says `i` writes (set, cleared, computed or left undefined).
/// Set in a link stub's `Ctx::link`: the jump goes forward in its page, so the dispatcher
/// chains it past the target's budget check (see `BlockBuilder::build`).
pub const FORWARD_LINK: u64 = 1 << 63;

/// Where R15 (LAHF's AH in bits 8-15, SETO's AL in bit 0) keeps the status flags `flags`.
fn lahf_bits(flags: u32) -> u32 {
    (flags & (STATUS_FLAGS & 0xff)) << 8 | u32::from(flags & OF != 0)
}

/// R15 = RFLAGS' six status flags in R15's layout (see `BlockBuilder::save_flags`), with
/// LAHF's always-set bit 1. Clobbers RAX. The trampoline runs this on every entry from the
/// dispatcher; blocks after flags went to RFLAGS on the way to a jump between blocks.
pub fn load_r15_from_rflags(ops: &mut Asm) {
    dynasm!(ops
        ; .arch x64
        ; mov eax, [r12 + FLAGS_AT]
        ; movzx r15d, al
        ; and r15d, (STATUS_FLAGS & 0xff) as i32
        ; shl r15d, 8
        ; or r15d, 0x200
        ; shr eax, 11
        ; and eax, 1
        ; or r15d, eax
    );
}

fn written_flags(i: &Instruction) -> u32 {
    status_bits(i.rflags_modified())
}

/// A general register operand: where its bytes are in `Cpu::regs` (AH–BH are byte 1 of
/// their register) and its size in bytes.
fn reg_slot(r: Register) -> Option<(i32, u32)> {
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
fn interpreted(i: &Instruction) -> bool {
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

/// The SSE instructions with host code of their own: legacy encodings on XMM registers,
/// general registers or 16-byte memory operands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sse {
    /// MOVAPS/MOVUPS/MOVAPD/MOVUPD/MOVDQA/MOVDQU (the aligned forms #GP on a misaligned
    /// memory operand, as every other legacy SSE instruction with one does).
    Move {
        aligned: bool,
    },
    /// dest = dest OP source (logic, compares, adds, subtracts, unpacks).
    Binary,
    Pshufd,
    Pmovmskb,
    /// MOVD/MOVQ from a general register (the rest of the XMM register cleared).
    ToXmm,
    /// MOVD/MOVQ to a general register.
    FromXmm,
    /// Scalar floating point on the low lane, the rest of the destination kept: the
    /// arithmetic (ADD/SUB/MUL/DIV/MIN/MAX/SQRT, SD and SS) and CVTSD2SS/CVTSS2SD. Like the
    /// other floating-point forms, only under MXCSR's reset controls (see
    /// `BlockBuilder::mxcsr_enter`).
    FpScalar,
    /// COMISD/UCOMISD/COMISS/UCOMISS: ZF, PF, CF (the others cleared).
    FpCompare,
    /// CVTSI2SD/CVTSI2SS from a 32- or 64-bit register or memory.
    IntToFp,
    /// CVT(T)SD2SI/CVT(T)SS2SI to a 32- or 64-bit register.
    FpToInt,
    /// The scalar moves: MOVSS and MOVSD (between registers the rest of the destination
    /// stays; a load clears it), MOVQ (which always clears it), MOVD with memory; `bytes`
    /// moved, 4 or 8.
    Scalar {
        bytes: u8,
        keeps_rest: bool,
    },
    /// PCMPISTRI (SSE4.2): ECX and the status flags.
    Pcmpistri,
}

/// `Ctx::sse_ok` bits: SSE and SSE2 usable now, and the model's SSSE3 and SSE4.2 with them.
pub const SSE_BASE: u8 = 1;
pub const SSE_SSSE3: u8 = 2;
pub const SSE_SSE42: u8 = 4;

fn xmm_index(r: Register) -> Option<i32> {
    r.is_xmm()
        .then(|| (r as i32) - (Register::XMM0 as i32))
        .filter(|n| (0..16).contains(n))
}

fn sse(i: &Instruction) -> Option<Sse> {
    if i.encoding() != iced_x86::EncodingKind::Legacy || i.has_lock_prefix() {
        return None;
    }
    let xmm = |k: u32| i.op_kind(k) == OpKind::Register && xmm_index(i.op_register(k)).is_some();
    let m128 =
        |k: u32| i.op_kind(k) == OpKind::Memory && i.memory_size().size() == 16 && memory_ok(i);
    let wide_gpr = |k: u32| {
        i.op_kind(k) == OpKind::Register && matches!(gpr(i.op_register(k)), Some((_, 4 | 8, false)))
    };
    let m64 = |k: u32| i.op_kind(k) == OpKind::Memory && memory_ok(i);
    let scalar = |bytes: u8, keeps_rest: bool| {
        let fits = |k: u32| i.memory_size().size() == usize::from(bytes) && m64(k);
        ((xmm(0) && (xmm(1) || fits(1))) || (fits(0) && xmm(1)))
            .then_some(Sse::Scalar { bytes, keeps_rest })
    };
    let op = match i.mnemonic() {
        // MOVSD and MOVSS between registers keep the rest of the destination.
        M::Movsd
            if i.code() == iced_x86::Code::Movsd_xmm_xmmm64
                || i.code() == iced_x86::Code::Movsd_xmmm64_xmm =>
        {
            scalar(8, true)
        }
        M::Movss => scalar(4, true),
        M::Movq
            if i.code() == iced_x86::Code::Movq_xmm_xmmm64
                || i.code() == iced_x86::Code::Movq_xmmm64_xmm =>
        {
            scalar(8, false)
        }
        M::Movd if !wide_gpr(0) && !wide_gpr(1) && (m64(0) || m64(1)) => scalar(4, false),
        M::Pcmpistri => (xmm(0) && (xmm(1) || m128(1))).then_some(Sse::Pcmpistri),
        m @ (M::Movaps | M::Movapd | M::Movdqa | M::Movups | M::Movupd | M::Movdqu) => {
            let aligned = matches!(m, M::Movaps | M::Movapd | M::Movdqa);
            ((xmm(0) && (xmm(1) || m128(1))) || (m128(0) && xmm(1)))
                .then_some(Sse::Move { aligned })
        }
        m if binary_sse(m) => (xmm(0) && (xmm(1) || m128(1))).then_some(Sse::Binary),
        M::Pshufd => (xmm(0) && (xmm(1) || m128(1))).then_some(Sse::Pshufd),
        M::Pmovmskb => (wide_gpr(0) && xmm(1)).then_some(Sse::Pmovmskb),
        m if fp_scalar(m) => (xmm(0) && (xmm(1) || m64(1))).then_some(Sse::FpScalar),
        M::Comisd | M::Ucomisd | M::Comiss | M::Ucomiss => {
            (xmm(0) && (xmm(1) || m64(1))).then_some(Sse::FpCompare)
        }
        M::Cvtsi2sd | M::Cvtsi2ss => (xmm(0) && (wide_gpr(1) || m64(1))).then_some(Sse::IntToFp),
        M::Cvttsd2si | M::Cvtsd2si | M::Cvttss2si | M::Cvtss2si => {
            (wide_gpr(0) && (xmm(1) || m64(1))).then_some(Sse::FpToInt)
        }
        M::Movd | M::Movq if xmm(0) && wide_gpr(1) => Some(Sse::ToXmm),
        M::Movd | M::Movq if wide_gpr(0) && xmm(1) => Some(Sse::FromXmm),
        _ => None,
    }?;
    Some(op)
}

/// The scalar floating-point operations of [`Sse::FpScalar`].
fn fp_scalar(m: M) -> bool {
    matches!(
        m,
        M::Addsd
            | M::Subsd
            | M::Mulsd
            | M::Divsd
            | M::Minsd
            | M::Maxsd
            | M::Sqrtsd
            | M::Addss
            | M::Subss
            | M::Mulss
            | M::Divss
            | M::Minss
            | M::Maxss
            | M::Sqrtss
            | M::Cvtsd2ss
            | M::Cvtss2sd
    )
}

/// MXCSR relative to XMM0 (`Ctx::xmm`, in R8 in SSE code).
const MXCSR_FROM_XMM: i32 = offset_of!(emu_core::interp::simd::FpuState, mxcsr) as i32
    - offset_of!(emu_core::interp::simd::FpuState, xmm) as i32;

fn binary_sse(m: M) -> bool {
    matches!(
        m,
        M::Pxor
            | M::Por
            | M::Pand
            | M::Pandn
            | M::Xorps
            | M::Xorpd
            | M::Andps
            | M::Andpd
            | M::Orps
            | M::Orpd
            | M::Andnps
            | M::Andnpd
            | M::Pcmpeqb
            | M::Pcmpeqw
            | M::Pcmpeqd
            | M::Pcmpgtb
            | M::Pcmpgtw
            | M::Pcmpgtd
            | M::Paddb
            | M::Paddw
            | M::Paddd
            | M::Paddq
            | M::Psubb
            | M::Psubw
            | M::Psubd
            | M::Psubq
            | M::Pminub
            | M::Pmaxub
            | M::Punpcklbw
            | M::Punpcklwd
            | M::Punpckldq
            | M::Punpcklqdq
            | M::Punpckhbw
            | M::Punpckhwd
            | M::Punpckhdq
            | M::Pshufb
            | M::Punpckhqdq
    )
}

/// Whether the translator emits host code of its own for `i`.
fn native(i: &Instruction) -> Option<Flow> {
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
        M::Push => {
            i.op_kind(0) == OpKind::Register && matches!(gpr(i.op_register(0)), Some((_, 8, false)))
        }
        M::Pop => {
            i.op_kind(0) == OpKind::Register && matches!(gpr(i.op_register(0)), Some((_, 8, false)))
        }
        M::Nop | M::Endbr64 | M::Endbr32 => true,
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
            wide && (i.op_kind(0) == OpKind::Register || (i.mnemonic() == M::Bt && memory_ok(i)))
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
        M::Jmp | M::Call => match i.op_kind(0) {
            // A non-canonical constant target is the interpreter's #GP to raise.
            OpKind::NearBranch64 => emu_core::interp::canonical(i.near_branch64()),
            // Indirect through a 64-bit register or memory (not the 16-bit forms).
            OpKind::Register => matches!(gpr(i.op_register(0)), Some((_, 8, false))),
            OpKind::Memory => i.memory_size().size() == 8 && memory_ok(i),
            _ => false,
        },
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

/// REP STOS and REP MOVS with 64-bit addresses: their element size, and whether it is a
/// MOVS. (Their host code covers a destination — and source — inside one page; anything
/// else goes to the interpreter, see `BlockBuilder::rep_string`.)
fn rep_string(i: &Instruction) -> Option<(u32, bool)> {
    if !i.has_rep_prefix() || i.has_lock_prefix() || i.op0_kind() != OpKind::MemoryESRDI {
        return None;
    }
    let movs = match i.mnemonic() {
        M::Stosb | M::Stosw | M::Stosd | M::Stosq => false,
        // A source with an FS or GS base: the page checks are on offsets (bases are 0).
        M::Movsb | M::Movsw | M::Movsd | M::Movsq
            if i.op1_kind() == OpKind::MemorySegRSI
                && !matches!(i.memory_segment(), Register::FS | Register::GS) =>
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
fn keeps_flags_sometimes(i: &Instruction) -> bool {
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
fn flag_transparent(i: &Instruction) -> bool {
    native(i) == Some(Flow::Next)
        && sse(i).is_none()
        && rep_string(i).is_none()
        && (0..i.op_count()).all(|k| {
            matches!(
                i.op_kind(k),
                OpKind::Register
                    | OpKind::Immediate8
                    | OpKind::Immediate16
                    | OpKind::Immediate8to16
                    | OpKind::Immediate8to32
                    | OpKind::Immediate8to64
                    | OpKind::Immediate32
                    | OpKind::Immediate32to64
                    | OpKind::Immediate64
            )
        })
        && !matches!(
            i.mnemonic(),
            M::Push | M::Pop | M::Div | M::Popcnt | M::Lzcnt | M::Tzcnt
        )
        && i.rflags_read() == 0
        && !keeps_flags_sometimes(i)
}

/// Whether `i` reads its memory operand 0 and writes it back (one soft-TLB lookup for
/// both; see `BlockBuilder::rmw_load`).
fn stores_back(i: &Instruction) -> bool {
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
fn jcc_flags(i: &Instruction) -> u32 {
    status_bits(i.rflags_read())
}

/// Whether `i`'s translation can test the host's flags as the instruction before left
/// them: nothing it emits before its test writes host flags (a Jcc; a CMOVcc whose source
/// is a register; a SETcc into a register).
fn tests_host_flags(i: &Instruction) -> bool {
    i.is_jcc_short_or_near()
        || (is_cmovcc(i.mnemonic()) && i.op1_kind() == OpKind::Register)
        || (is_setcc(i.mnemonic()) && i.op0_kind() == OpKind::Register)
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

/// What a memory access's slow path calls (the interpreter's full path).
#[derive(Clone, Copy)]
enum SlowCall {
    /// `load(ctx, seg, RDX, size)` into RAX.
    Load { seg: i32, size: u32 },
    /// `store(ctx, seg, RDX, size, RAX)`.
    Store { seg: i32, size: u32 },
    /// `push(ctx, RAX, 8)`: the store and RSP's update.
    Push,
    /// `ret(ctx)` into RAX: the load, the canonical check and RSP's update.
    Ret,
    /// `gp(ctx)`: #GP(0) at the instruction (it never comes back).
    Gp,
    /// The whole instruction through the interpreter (DIV's #DE cases, SSE's exceptions and
    /// TLB misses), then, for a memory operand at `seg`:RDX, the soft TLB's entry for it.
    Interpret { fill: Option<(i32, bool)> },
}

/// An inline access's way out when the soft TLB misses: the helper, the checks after it,
/// then back into the block.
struct Slow {
    label: DynamicLabel,
    back: DynamicLabel,
    call: SlowCall,
    instr: Instruction,
    k: u32,
    /// The flags in R15 not yet in RFLAGS at the instruction's start and at the access
    /// (see `BlockBuilder::unmerged`).
    before: u32,
    unmerged: u32,
    /// Leave only on a fault (CALL's push, where the block ends anyway).
    fault_only: bool,
    /// After the interpreter ran the instruction: R15 = the flags it left in RFLAGS (the
    /// fast path leaves them pending there; see `BlockBuilder::rmw_load`).
    flags_to_r15: bool,
}

/// A helper-calling instruction's ways out (see `BlockBuilder::exits`).
struct Exit {
    label: DynamicLabel,
    k: u32,
    rip: u64,
    /// Where a completed instruction continues; `None`: where the interpreter left RIP (an
    /// instruction it ran, such as a REP string instruction stopped part way).
    next: Option<u64>,
    before: u32,
    done: u32,
}

/// What a block is translated against: where it will run and what it checks on entry.
pub struct BlockEnv {
    /// The address the block is emitted for (`ops`' base).
    pub base: usize,
    /// The trampoline's exit (every way out of a block jumps there).
    pub exit: usize,
    /// The block's code page's word (emu-core's `CodePages`) and its value at translation.
    pub word_ptr: usize,
    pub word: u32,
    /// The bit-counting instructions the guest's model has and the host runs
    /// ([`HAS_POPCNT`], [`HAS_LZCNT`], [`HAS_TZCNT`]): translated to the host's own; the
    /// others run on the interpreter (which decides #UD or, for LZCNT/TZCNT, BSR/BSF).
    pub bit_count: u8,
}

pub const HAS_POPCNT: u8 = 1;
pub const HAS_LZCNT: u8 = 2;
pub const HAS_TZCNT: u8 = 4;

/// Emits one block at `ops`' base address.
pub struct BlockBuilder<'a> {
    ops: &'a mut Asm,
    env: &'a BlockEnv,
    /// The block's linear page: jumps to constant targets inside it may be chained.
    page: u64,
    /// Per instruction with a helper call: its exit label, its index, RIP and next RIP, and
    /// the flags to merge from R15 on the way out when it faulted (those of the instructions
    /// before it) and when it completed (a store into the block's code).
    exits: Vec<Exit>,
    /// Status flags computed into R15 and not yet merged into RFLAGS: flags are merged
    /// lazily, when something reads RFLAGS (a helper running an instruction, an exit, a
    /// POPF-style load) or when the next instruction's flags do not cover them all, so a run
    /// of flag-writing instructions does not go through RFLAGS' memory one by one.
    unmerged: u32,
    /// `unmerged` at the start of the instruction being emitted: what its fault exit merges.
    before: u32,
    /// The slow paths of inline memory accesses, emitted after the block's body.
    slow: Vec<Slow>,
    /// Chainable jumps: their link stubs (emitted after the body), displacement offsets and
    /// targets.
    chains: Vec<(DynamicLabel, usize, u64, bool)>,
    /// The instruction after the one being emitted, if it is in the block.
    next: Option<Instruction>,
    /// The block's instructions and the index of the one being emitted (flag liveness looks
    /// at those after it).
    instrs: Vec<Instruction>,
    at: usize,
    /// Flags an instruction left in the host's flags (and in R15) for the Jcc right after
    /// it, not yet merged into RFLAGS.
    live_flags: u32,
    /// Flags of R15 the host's flags were loaded with before the current instruction's
    /// operation (which leaves them), so its capture takes them as written.
    preloaded: u32,
    /// RAX holds a zero-extended value (a load of at most four bytes, MOVZX): a 32-bit
    /// register store needs no `mov eax, eax` (cleared by `store_reg` and per instruction).
    rax_zero_extended: bool,
    /// The out-of-line exit that merges R15 into RFLAGS (RIP and the count already stored).
    merge_exit: Option<DynamicLabel>,
    /// The flags the last `save_flags` left in the host's flags untouched.
    flags_in_host: u32,
    /// A `check` after the interpreter ran the instruction (its exit keeps RIP).
    interpreting: bool,
    /// Where a read-modify-write instruction's slow path (the interpreter) comes back:
    /// after its store (see `rmw_load`).
    rmw_back: Option<DynamicLabel>,
    /// Guest registers with a copy in a host register for the whole block (the ones its
    /// instructions name most): read from the copy, written to both. `Cpu::regs` stays
    /// exact — an exit, a fault or a helper finds every register there — so only writes
    /// need care: every write to a guest register updates its copy, and every helper call
    /// (which may change any register) reloads them all.
    host: [Option<u8>; 16],
}

impl<'a> BlockBuilder<'a> {
    /// Translates `instrs` (already checked with [`supported`]) into one block starting at
    /// offset 0 of `ops`.
    ///
    /// The block runs inside the trampoline's frame: RBX = the context, R12 = `Cpu::regs`
    /// (RIP and RFLAGS at fixed offsets from it), RBP = the soft TLB, R9–R11, R13 and R14
    /// copies of guest registers (`host`). On entry it checks
    /// the run's instruction budget and its page's code word (a store by any vCPU since
    /// translation sends it back to the dispatcher, which translates it again); every exit
    /// adds the instructions it retired to `Ctx::retired` and leaves RIP at the next one.
    ///
    /// Returns the offsets of the block's chain entries: where jumps from blocks of the
    /// same code page (and word) come in, past the code-word check — their block made it,
    /// and a store by this vCPU since would have ended it; another vCPU's store is seen at
    /// the next dispatch (x86 lets cross-modified code run stale until the CPU serializes,
    /// and interrupts, IRET included, come through the dispatcher). Jumps backward come in
    /// through the run's budget check; jumps forward (to a RIP past the jump's) past it too:
    /// each raises the block's start within the page, so every cycle of chained jumps has
    /// a backward one and the run still ends within its budget plus one page's worth of
    /// instructions. Jumps into a block never store RIP: every way out of its entry stores
    /// its own.
    pub fn build(ops: &'a mut Asm, env: &'a BlockEnv, instrs: &[Instruction]) -> (usize, usize) {
        let mut b = BlockBuilder {
            ops,
            env,
            page: instrs.first().map_or(0, |i| i.ip() >> 12),
            exits: Vec::new(),
            // Every block starts with the six status flags in R15 (see `complete_flags`).
            unmerged: STATUS_FLAGS,
            before: STATUS_FLAGS,
            slow: Vec::new(),
            chains: Vec::new(),
            next: None,
            instrs: instrs.to_vec(),
            at: 0,
            live_flags: 0,
            preloaded: 0,
            rax_zero_extended: false,
            merge_exit: None,
            flags_in_host: 0,
            interpreting: false,
            rmw_back: None,
            host: choose_cached(instrs),
        };
        let (word_ptr, word) = (env.word_ptr as i64, env.word as i32);
        let refuse = b.ops.new_dynamic_label();
        dynasm!(b.ops
            ; .arch x64
            ; mov rax, QWORD word_ptr
            ; cmp DWORD [rax], word
            ; jne =>refuse
            ; mov [rbx + helpers::CODE_WORD], rax
            ; mov DWORD [rbx + helpers::WORD], word
        );
        let chain_entry = b.ops.offset().0;
        dynasm!(b.ops
            ; .arch x64
            ; mov rax, [rbx + RETIRED]
            ; cmp rax, [rbx + LIMIT]
            ; jae =>refuse
        );
        let forward_entry = b.ops.offset().0;
        let live = entry_live(instrs);
        for idx in 0..16 {
            if live & (1 << idx) != 0 {
                b.refresh(idx);
            }
        }
        let n = instrs.len() as u32;
        let mut ended = false;
        for (k, i) in instrs.iter().enumerate() {
            b.next = instrs.get(k + 1).copied();
            b.at = k;
            if b.instruction(i, k as u32) == Flow::End {
                ended = true;
                break;
            }
        }
        if !ended {
            let next = instrs.last().map_or(0, |i| i.next_ip());
            b.complete_flags();
            b.jump_to(next, n);
        }
        let slow = std::mem::take(&mut b.slow);
        for path in slow {
            b.slow_path(path);
        }
        // Exits after helper calls: a fault stops before the instruction, a store into the
        // block's code page after it.
        let exits = std::mem::take(&mut b.exits);
        for e in exits {
            let fault = b.ops.new_dynamic_label();
            let fault_status = helpers::FAULT as i32;
            dynasm!(b.ops
                ; .arch x64
                ; =>e.label
                ; cmp QWORD [rbx + STATUS], fault_status
                ; je =>fault
            );
            // The instruction completed: its flags too.
            b.merge_flags_free_rax(e.done);
            match e.next {
                Some(next) => b.leave_at(next, e.k + 1),
                None => {
                    let count = (e.k + 1) as i32;
                    dynasm!(b.ops ; .arch x64 ; add QWORD [rbx + RETIRED], count);
                    b.jmp_exit();
                }
            }
            dynasm!(b.ops ; .arch x64 ; =>fault);
            b.merge_flags_free_rax(e.before);
            b.leave_at(e.rip, e.k);
        }
        // Link stubs: an unchained jump tells the dispatcher where it goes and which
        // displacement to patch.
        let base = b.env.base;
        let chains = std::mem::take(&mut b.chains);
        for (stub, field, target, forward) in chains {
            let link = (base + field) as u64 | if forward { FORWARD_LINK } else { 0 };
            let (at, target) = (link as i64, target as i64);
            dynasm!(b.ops ; .arch x64 ; =>stub);
            // R15 holds all six flags at every jump between blocks.
            b.merge_flags_free_rax(STATUS_FLAGS);
            dynasm!(b.ops
                ; .arch x64
                ; mov rax, QWORD target
                ; mov [r12 + RIP_AT], rax
                ; mov rax, QWORD at
                ; mov [rbx + LINK], rax
            );
            b.jmp_exit();
        }
        // The block does not run (its code changed, or the run's budget is spent): back to
        // the dispatcher at its first instruction.
        let own = instrs.first().map_or(0, |i| i.ip()) as i64;
        dynasm!(b.ops ; .arch x64 ; =>refuse);
        b.merge_flags_free_rax(STATUS_FLAGS);
        dynasm!(b.ops
            ; .arch x64
            ; mov rax, QWORD own
            ; mov [r12 + RIP_AT], rax
        );
        b.jmp_exit();
        if let Some(label) = b.merge_exit {
            dynasm!(b.ops ; .arch x64 ; =>label);
            b.merge_flags_free_rax(STATUS_FLAGS);
            b.jmp_exit();
        }
        (chain_entry, forward_entry)
    }

    /// Counts `count` retired instructions and sets RIP to `rip`.
    fn retire_at(&mut self, rip: u64, count: u32) {
        let (new_rip, count) = (rip as i64, count as i32);
        dynasm!(self.ops
            ; .arch x64
            ; add QWORD [rbx + RETIRED], count
            ; mov rax, QWORD new_rip
            ; mov [r12 + RIP_AT], rax
        );
    }

    /// Leaves the block (to the dispatcher) at `rip` with `count` retired.
    fn leave_at(&mut self, rip: u64, count: u32) {
        self.retire_at(rip, count);
        self.jmp_exit();
    }

    /// On to the block for the RIP in RAX (its instructions counted) if the jump cache
    /// knows it, else back to the dispatcher with RIP stored.
    fn jump_through_cache(&mut self) {
        debug_assert_eq!(
            self.unmerged, STATUS_FLAGS,
            "a jump between blocks without R15 full"
        );
        let (mask, shift) = ((tlb::JUMPS - 1) as i32, tlb::JUMP_SHIFT as i8);
        dynasm!(self.ops
            ; .arch x64
            ; mov rcx, rax
            ; shr rcx, 12
            ; xor ecx, eax
            ; and ecx, mask
            ; shl ecx, shift
            ; add rcx, [rbx + JUMPS]
            ; cmp rax, [rcx]
            ; jne >miss
            ; jmp QWORD [rcx + 8]
            ; miss:
            ; mov [r12 + RIP_AT], rax
        );
        self.merge_flags_free_rax(STATUS_FLAGS);
        self.jmp_exit();
    }

    /// A jump to the trampoline's exit (a rel32 to an absolute address: the block's base is
    /// known, so the displacement is computed here).
    fn jmp_exit(&mut self) {
        self.ops.push(0xe9);
        self.push_rel32_to_exit();
    }

    /// The block's exit that merges R15 (all six flags) into RFLAGS, for a jump to the
    /// dispatcher with RIP and the count already stored.
    fn merge_exit(&mut self) -> DynamicLabel {
        debug_assert_eq!(self.unmerged, STATUS_FLAGS);
        match self.merge_exit {
            Some(l) => l,
            None => {
                let l = self.ops.new_dynamic_label();
                self.merge_exit = Some(l);
                l
            }
        }
    }

    fn push_rel32_to_exit(&mut self) {
        let end = (self.env.base + self.ops.offset().0 + 4) as i64;
        let rel = self.env.exit as i64 - end;
        // The buffer is far smaller than 2 GiB, so the exit is always in reach.
        self.ops
            .push_i32(i32::try_from(rel).expect("code buffer within 2 GiB"));
    }

    /// Continues at the constant `rip` with `count` retired: a chainable jump when the
    /// target is in the block's own page (first to a link stub, later patched to go straight
    /// to the target's block), else back to the dispatcher.
    fn jump_to(&mut self, rip: u64, count: u32) {
        let count = count as i32;
        dynasm!(self.ops ; .arch x64 ; add QWORD [rbx + RETIRED], count);
        self.continue_to(rip);
    }

    /// On to the constant `rip` (its instructions counted; RIP is stored only if the jump
    /// goes back to the dispatcher).
    fn continue_to(&mut self, rip: u64) {
        if rip >> 12 != self.page {
            let target = rip as i64;
            dynasm!(self.ops ; .arch x64 ; mov rax, QWORD target);
            self.jump_through_cache();
            return;
        }
        let stub = self.ops.new_dynamic_label();
        dynasm!(self.ops ; .arch x64 ; jmp =>stub);
        let field = self.ops.offset().0 - 4;
        let from = self.instrs.get(self.at).map_or(0, |i| i.ip());
        self.chains.push((stub, field, rip, rip > from));
    }

    /// After a helper call: leave through instruction `k`'s exit if the helper failed or
    /// wrote the block's code.
    fn check(&mut self, i: &Instruction, k: u32) {
        let (before, done) = (self.before, self.unmerged);
        let label = match self.exits.iter_mut().find(|e| e.k == k) {
            Some(e) => {
                e.done |= done;
                e.label
            }
            None => {
                let label = self.ops.new_dynamic_label();
                self.exits.push(Exit {
                    label,
                    k,
                    rip: i.ip(),
                    next: (!self.interpreting).then(|| i.next_ip()),
                    before,
                    done,
                });
                label
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
        self.exits.push(Exit {
            label,
            k,
            rip: i.ip(),
            next: Some(i.next_ip()),
            before: self.before,
            done: 0,
        });
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
        } as i64;
        let base = gpr(i.memory_base()).map(|(b, _, _)| b);
        let index = gpr(i.memory_index()).map(|(x, _, _)| x);
        match (base, index, i32::try_from(disp)) {
            // One LEA for base + index * scale + disp32, on the registers' host copies
            // where they have them (else RDX holds the base, RAX the index).
            (b, Some(x), Ok(d)) => {
                let xr = self.host[x].unwrap_or_else(|| {
                    self.load_gpr64(x, true);
                    0
                });
                let br = b.map(|b| {
                    self.host[b].unwrap_or_else(|| {
                        self.load_gpr64(b, false);
                        2
                    })
                });
                match (br, i.memory_index_scale()) {
                    (Some(br), 1) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(br) + Rq(xr) + d]),
                    (Some(br), 2) => {
                        dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(br) + Rq(xr) * 2 + d])
                    }
                    (Some(br), 4) => {
                        dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(br) + Rq(xr) * 4 + d])
                    }
                    (Some(br), _) => {
                        dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(br) + Rq(xr) * 8 + d])
                    }
                    (None, 1) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(xr) + d]),
                    (None, 2) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(xr) * 2 + d]),
                    (None, 4) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(xr) * 4 + d]),
                    (None, _) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(xr) * 8 + d]),
                }
            }
            (Some(b), None, Ok(d)) => match self.host[b] {
                Some(h) => dynasm!(self.ops ; .arch x64 ; lea rdx, [Rq(h) + d]),
                None => {
                    self.load_gpr64(b, false);
                    if d != 0 {
                        dynasm!(self.ops ; .arch x64 ; lea rdx, [rdx + d]);
                    }
                }
            },
            (None, None, Ok(d)) => dynasm!(self.ops ; .arch x64 ; mov rdx, d),
            // A displacement beyond 32 bits (RIP-relative or absolute, far from zero).
            (b, x, Err(_)) => {
                if let Some(x) = x {
                    let shift = i.memory_index_scale().trailing_zeros() as i8;
                    self.load_gpr64(x, true);
                    dynasm!(self.ops ; .arch x64 ; shl rax, shift);
                } else {
                    dynasm!(self.ops ; .arch x64 ; xor eax, eax);
                }
                match b {
                    Some(b) => self.load_gpr64(b, false),
                    None => dynasm!(self.ops ; .arch x64 ; xor edx, edx),
                }
                dynasm!(self.ops
                    ; .arch x64
                    ; add rdx, rax
                    ; mov rax, QWORD disp
                    ; add rdx, rax
                );
            }
        }
        if addr32(i) {
            dynasm!(self.ops ; .arch x64 ; mov edx, edx);
        }
    }

    /// RAX = the memory operand (`size` bytes, zero-extended); with `keep`, its offset
    /// stays in scratch 0 (for a store back to it).
    fn load_mem(&mut self, i: &Instruction, k: u32, size: u32, keep: bool) {
        self.effective_address(i);
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        if keep {
            dynasm!(self.ops ; .arch x64 ; mov [rbx + SCRATCH0], rdx);
        }
        self.mem_load(i, k, seg, size);
    }

    /// RAX = the memory operand of a read-modify-write instruction (`stores_back`), through
    /// one soft-TLB lookup for writing (a writable page is readable too), its host address
    /// kept in scratch 0 for the store. A miss runs the whole instruction on the interpreter
    /// (which fills the entry) and comes back after the store (`store_dest`), with R15
    /// loaded from the flags it left, so flags are pending in R15 after either way.
    fn rmw_load(&mut self, i: &Instruction, k: u32, size: u32) {
        // The interpreter reads RFLAGS (a shift by zero leaves the flags before it, which
        // iced then counts as unwritten).
        self.flush_flags();
        self.effective_address(i);
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        let (slow, back) = self.slow_path_for(
            i,
            k,
            SlowCall::Interpret {
                fill: Some((seg, true)),
            },
            false,
        );
        if written_flags(i) != 0 {
            if let Some(s) = self.slow.last_mut() {
                s.flags_to_r15 = true;
            }
        }
        self.tlb_lookup(seg, size, true, slow);
        dynasm!(self.ops ; .arch x64 ; mov [rbx + SCRATCH0], rsi);
        match size {
            1 => dynasm!(self.ops ; .arch x64 ; movzx eax, BYTE [rsi]),
            2 => dynasm!(self.ops ; .arch x64 ; movzx eax, WORD [rsi]),
            4 => dynasm!(self.ops ; .arch x64 ; mov eax, DWORD [rsi]),
            _ => dynasm!(self.ops ; .arch x64 ; mov rax, QWORD [rsi]),
        }
        self.rmw_back = Some(back);
    }

    /// Stores RAX's low `size` bytes to the memory operand whose offset is in scratch 0.
    fn store_mem(&mut self, i: &Instruction, k: u32, size: u32) {
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        dynasm!(self.ops ; .arch x64 ; mov rdx, [rbx + SCRATCH0]);
        self.mem_store(i, k, seg, size);
    }

    /// RSI = the host address of the `size` bytes at `seg`:RDX, through the soft TLB, or a
    /// jump to `slow` (a miss, a page-crossing access, a store to a page with decoded code).
    /// Keeps RAX and RDX; clobbers RCX and RDI.
    fn tlb_lookup(&mut self, seg: i32, size: u32, write: bool, slow: DynamicLabel) {
        dynasm!(self.ops ; .arch x64 ; mov rsi, rdx);
        if seg == emu_core::interp::cpu::sreg::FS as i32 {
            dynasm!(self.ops ; .arch x64 ; add rsi, [rbx + FS_BASE]);
        } else if seg == emu_core::interp::cpu::sreg::GS as i32 {
            dynasm!(self.ops ; .arch x64 ; add rsi, [rbx + GS_BASE]);
        }
        // RDI = the entry's offset in the table: the page number's low bits, scaled.
        let (mask, shift, last) = (
            ((tlb::ENTRIES - 1) << tlb::ENTRY_SHIFT) as i32,
            (12 - tlb::ENTRY_SHIFT) as i8,
            size as i32 - 1,
        );
        // The tag is compared with the last byte's page, indexed by the first byte's: an
        // access crossing pages can never match (consecutive pages have different indices).
        if seg == emu_core::interp::cpu::sreg::FS as i32
            || seg == emu_core::interp::cpu::sreg::GS as i32
        {
            dynasm!(self.ops ; .arch x64 ; mov rdi, rsi);
        } else {
            dynasm!(self.ops ; .arch x64 ; mov rdi, rdx);
        }
        dynasm!(self.ops
            ; .arch x64
            ; shr rdi, shift
            ; and edi, mask
        );
        if last == 0 {
            dynasm!(self.ops ; .arch x64 ; mov rcx, rsi);
        } else {
            dynasm!(self.ops ; .arch x64 ; lea rcx, [rsi + last]);
        }
        dynasm!(self.ops ; .arch x64 ; and rcx, -4096);
        if write {
            dynasm!(self.ops
                ; .arch x64
                ; cmp rcx, [rbp + rdi + tlb::WRITE_TAG]
                ; jne =>slow
                ; mov rcx, [rbp + rdi + tlb::CODE]
                ; test BYTE [rcx], 1
                ; jnz =>slow
            );
        } else {
            dynasm!(self.ops
                ; .arch x64
                ; cmp rcx, [rbp + rdi + tlb::READ_TAG]
                ; jne =>slow
            );
        }
        dynasm!(self.ops ; .arch x64 ; add rsi, [rbp + rdi + tlb::ADDEND]);
    }

    /// Registers a slow path and returns its label and the label to come back to.
    fn slow_path_for(
        &mut self,
        i: &Instruction,
        k: u32,
        call: SlowCall,
        fault_only: bool,
    ) -> (DynamicLabel, DynamicLabel) {
        let (label, back) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        self.slow.push(Slow {
            label,
            back,
            call,
            instr: *i,
            k,
            before: self.before,
            unmerged: self.unmerged,
            fault_only,
            flags_to_r15: false,
        });
        (label, back)
    }

    /// RAX = the `size` bytes at `seg`:RDX, zero-extended.
    fn mem_load(&mut self, i: &Instruction, k: u32, seg: i32, size: u32) {
        let (slow, back) = self.slow_path_for(i, k, SlowCall::Load { seg, size }, false);
        self.tlb_lookup(seg, size, false, slow);
        match size {
            1 => dynasm!(self.ops ; .arch x64 ; movzx eax, BYTE [rsi]),
            2 => dynasm!(self.ops ; .arch x64 ; movzx eax, WORD [rsi]),
            4 => dynasm!(self.ops ; .arch x64 ; mov eax, DWORD [rsi]),
            _ => dynasm!(self.ops ; .arch x64 ; mov rax, QWORD [rsi]),
        }
        dynasm!(self.ops ; .arch x64 ; =>back);
    }

    /// The `size` bytes at `seg`:RDX = RAX's low bytes.
    fn mem_store(&mut self, i: &Instruction, k: u32, seg: i32, size: u32) {
        let (slow, back) = self.slow_path_for(i, k, SlowCall::Store { seg, size }, false);
        self.tlb_lookup(seg, size, true, slow);
        match size {
            1 => dynasm!(self.ops ; .arch x64 ; mov BYTE [rsi], al),
            2 => dynasm!(self.ops ; .arch x64 ; mov WORD [rsi], ax),
            4 => dynasm!(self.ops ; .arch x64 ; mov DWORD [rsi], eax),
            _ => dynasm!(self.ops ; .arch x64 ; mov QWORD [rsi], rax),
        }
        dynasm!(self.ops ; .arch x64 ; =>back);
    }

    /// PUSH of RAX (8 bytes): RSP moves once the store is done.
    fn push_rax(&mut self, i: &Instruction, k: u32, fault_only: bool) {
        let ss = emu_core::interp::cpu::sreg::SS as i32;
        let (slow, back) = self.slow_path_for(i, k, SlowCall::Push, fault_only);
        self.load_gpr64(4, false);
        dynasm!(self.ops ; .arch x64 ; sub rdx, 8);
        self.tlb_lookup(ss, 8, true, slow);
        dynasm!(self.ops
            ; .arch x64
            ; mov [rsi], rax
            ; mov [r12 + 32], rdx
        );
        if let Some(h) = self.host[4] {
            dynasm!(self.ops ; .arch x64 ; mov Rq(h), rdx);
        }
        dynasm!(self.ops ; .arch x64 ; =>back);
    }

    /// The body of a slow path (after the block's code).
    fn slow_path(&mut self, path: Slow) {
        dynasm!(self.ops ; .arch x64 ; =>path.label);
        match path.call {
            SlowCall::Load { seg, size } => {
                let (size, f) = (size as i32, helpers::load as *const () as usize as i64);
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rdi, rbx
                    ; mov esi, seg
                    ; mov ecx, size
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
            SlowCall::Store { seg, size } => {
                let (size, f) = (size as i32, helpers::store as *const () as usize as i64);
                dynasm!(self.ops
                    ; .arch x64
                    ; mov r8, rax
                    ; mov rdi, rbx
                    ; mov esi, seg
                    ; mov ecx, size
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
            SlowCall::Push => {
                let f = helpers::push as *const () as usize as i64;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rsi, rax
                    ; mov rdi, rbx
                    ; mov edx, 8
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
            SlowCall::Interpret { fill } => {
                let (seg, write) = fill.map_or((-1, false), |(s, w)| (s, w));
                let (at, f, write) = (
                    path.instr.ip() as i64,
                    helpers::interpret_fill as *const () as usize as i64,
                    i32::from(write),
                );
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rax, QWORD at
                    ; mov [r12 + RIP_AT], rax
                    ; mov rdi, rbx
                    ; mov rsi, QWORD i64::from(seg)
                    ; mov ecx, write
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
            SlowCall::Gp => {
                let f = helpers::gp as *const () as usize as i64;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rdi, rbx
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
            SlowCall::Ret => {
                let f = helpers::ret as *const () as usize as i64;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rdi, rbx
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
        }
        // The helper may have changed any guest register (the interpreter ran the
        // instruction, or a push or return moved RSP).
        self.reload_cached();
        let (before, unmerged) = (self.before, self.unmerged);
        (self.before, self.unmerged) = (path.before, path.unmerged);
        if path.fault_only {
            self.check_fault(&path.instr, path.k);
        } else {
            self.check(&path.instr, path.k);
        }
        (self.before, self.unmerged) = (before, unmerged);
        if path.flags_to_r15 {
            // RFLAGS' low byte to bits 8–15, OF to bit 0 (`save_flags`' layout).
            dynasm!(self.ops
                ; .arch x64
                ; mov edi, [r12 + FLAGS_AT]
                ; movzx esi, dil
                ; shl esi, 8
                ; shr edi, 11
                ; and edi, 1
                ; or esi, edi
                ; mov r15d, esi
            );
        }
        dynasm!(self.ops ; .arch x64 ; jmp =>path.back);
    }

    /// RCX = `imm`, in the shortest encoding.
    fn mov_rcx(&mut self, imm: i64) {
        if let Ok(v) = u32::try_from(imm) {
            dynasm!(self.ops ; .arch x64 ; mov ecx, v as i32);
        } else if let Ok(v) = i32::try_from(imm) {
            dynasm!(self.ops ; .arch x64 ; mov rcx, v);
        } else {
            dynasm!(self.ops ; .arch x64 ; mov rcx, QWORD imm);
        }
    }

    /// RAX (`rcx` false) or RCX = register `r`, zero-extended from its size.
    fn load_reg(&mut self, r: Register, rcx: bool) {
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
            4 if std::mem::take(&mut self.rax_zero_extended) => {
                dynasm!(self.ops ; .arch x64 ; mov QWORD [r12 + off], rax)
            }
            4 => dynasm!(self.ops ; .arch x64 ; mov eax, eax ; mov QWORD [r12 + off], rax),
            2 => dynasm!(self.ops ; .arch x64 ; mov WORD [r12 + off], ax),
            _ => dynasm!(self.ops ; .arch x64 ; mov BYTE [r12 + off], al),
        }
        let (idx, _, high) = gpr(r).expect("checked");
        if let Some(h) = self.host[idx] {
            match (size, high) {
                (_, true) => self.refresh(idx),
                (8 | 4, _) => dynasm!(self.ops ; .arch x64 ; mov Rq(h), rax),
                (2, _) => dynasm!(self.ops ; .arch x64 ; mov Rw(h), ax),
                _ => dynasm!(self.ops ; .arch x64 ; mov Rb(h), al),
            }
        }
    }

    /// The host register holding a copy of `r`, if `r` is a whole 32- or 64-bit register
    /// with one.
    fn cached(&self, r: Register) -> Option<u8> {
        match gpr(r) {
            Some((idx, 4 | 8, false)) => self.host[idx],
            _ => None,
        }
    }

    /// A 32- or 64-bit ALU operation on a register with a host copy, as the same host
    /// instruction on that copy (which a 32-bit operation zero-extends, as the guest's
    /// does), then the copy to `Cpu::regs`: no trip through RAX. False (nothing emitted)
    /// for other forms.
    fn direct_alu(&mut self, i: &Instruction, k: u32, m: M, size: u32, imm: Option<i32>) -> bool {
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

    /// The copy `h` of guest register `r` (just written) to `Cpu::regs`.
    fn write_back(&mut self, r: Register, h: u8) {
        let (idx, _, _) = gpr(r).expect("checked");
        let off = 8 * idx as i32;
        dynasm!(self.ops ; .arch x64 ; mov [r12 + off], Rq(h));
    }

    /// MOV to a 32- or 64-bit register with a host copy, straight into the copy. False
    /// (nothing emitted) for other forms.
    fn direct_mov(&mut self, i: &Instruction, k: u32, size: u32) -> bool {
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
    fn direct_unary(&mut self, i: &Instruction, m: M, size: u32) -> bool {
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

    /// After a store straight to guest register `idx` in `Cpu::regs`: its copy again.
    fn refresh(&mut self, idx: usize) {
        if let Some(h) = self.host[idx] {
            let off = 8 * idx as i32;
            dynasm!(self.ops ; .arch x64 ; mov Rq(h), [r12 + off]);
        }
    }

    /// After RAX (zero-extended) went straight to guest register `idx`: its copy too.
    fn wrote_rax_to(&mut self, idx: usize) {
        if let Some(h) = self.host[idx] {
            dynasm!(self.ops ; .arch x64 ; mov Rq(h), rax);
        }
    }

    /// Every copy from `Cpu::regs`: on entry and after helper calls.
    fn reload_cached(&mut self) {
        for idx in 0..16 {
            self.refresh(idx);
        }
    }

    /// RAX (`rcx` false: RDX) = the 64-bit guest register `idx` (an address's base or index).
    fn load_gpr64(&mut self, idx: usize, to_rax: bool) {
        let off = 8 * idx as i32;
        let d = if to_rax { 0 } else { 2 };
        match self.host[idx] {
            Some(h) => dynasm!(self.ops ; .arch x64 ; mov Rq(d), Rq(h)),
            None => dynasm!(self.ops ; .arch x64 ; mov Rq(d), [r12 + off]),
        }
    }

    /// RAX = operand 0 (a register or memory) in `size` bytes.
    fn load_dest(&mut self, i: &Instruction, k: u32, size: u32) {
        match i.op_kind(0) {
            OpKind::Memory if stores_back(i) => self.rmw_load(i, k, size),
            OpKind::Memory => self.load_mem(i, k, size, true),
            _ => self.load_reg(i.op_register(0), false),
        }
    }

    /// Operand 0 = RAX's low `size` bytes.
    fn store_dest(&mut self, i: &Instruction, k: u32, size: u32) {
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
    fn load_src(&mut self, i: &Instruction, k: u32, n: u32, size: u32) {
        match i.op_kind(n) {
            OpKind::Register => self.load_reg(i.op_register(n), true),
            OpKind::Memory => {
                self.load_mem(i, k, size, false);
                dynasm!(self.ops ; .arch x64 ; mov rcx, rax);
            }
            _ => self.mov_rcx(i.immediate(n) as i64),
        }
    }

    /// The guest's status flags in `need` into the host's (for instructions that read
    /// them); the others become undefined. Keeps RAX, RCX and RDX; clobbers RSI and RDI.
    ///
    /// No POPFQ (microcoded, tens of cycles): CF alone is one BT; otherwise SAHF takes SF,
    /// ZF, AF, PF and CF from the low byte of RFLAGS, and OF, where needed, comes from an
    /// addition that overflows exactly when it is set.
    fn load_flags(&mut self, need: u32) {
        if need & !self.unmerged == 0 {
            // All pending in R15: its bits 8-15 are SAHF's AH, and AL (OF: 0 or 1) plus
            // 0x7F overflows exactly when OF is set.
            if need & !CF == 0 {
                dynasm!(self.ops ; .arch x64 ; bt r15d, 8);
                return;
            }
            dynasm!(self.ops ; .arch x64 ; mov rdi, rax ; mov eax, r15d);
            if need & OF != 0 {
                dynasm!(self.ops ; .arch x64 ; add al, 0x7f);
            }
            dynasm!(self.ops ; .arch x64 ; sahf ; mov rax, rdi);
            return;
        }
        self.flush_flags();
        if need & !CF == 0 {
            dynasm!(self.ops ; .arch x64 ; bt DWORD [r12 + FLAGS_AT], 0);
            return;
        }
        dynasm!(self.ops
            ; .arch x64
            ; mov rdi, rax
            ; mov eax, [r12 + FLAGS_AT]
        );
        if need & OF != 0 {
            // 0x80000000 + 0x80000000 overflows; 0 + 0x80000000 does not.
            dynasm!(self.ops
                ; .arch x64
                ; mov esi, eax
                ; shl eax, 8
                ; and esi, OF as i32
                ; shl esi, 20
                ; add esi, i32::MIN
            );
        } else {
            dynasm!(self.ops ; .arch x64 ; shl eax, 8);
        }
        dynasm!(self.ops
            ; .arch x64
            ; sahf
            ; mov rax, rdi
        );
    }

    /// The host's flags into R15 (right after the operation of `i`), pending until merged.
    ///
    /// R15 holds them as LAHF and SETO leave AX — RFLAGS' low byte (SF ZF AF PF CF) in bits
    /// 8–15, OF in bit 0 — which `merge_flags` puts back in RFLAGS' order: a few simple
    /// instructions where PUSHFQ is microcoded. Keeps RAX; clobbers RSI and RDI.
    fn save_flags(&mut self, i: &Instruction) {
        self.capture_flags(i, true);
    }

    /// `save_flags` once RAX is free (the result stored): three instructions, no copies.
    fn save_flags_free_rax(&mut self, i: &Instruction) {
        self.capture_flags(i, false);
    }

    fn capture_flags(&mut self, i: &Instruction, keep_rax: bool) {
        let preloaded = std::mem::take(&mut self.preloaded);
        if self.flags_dead(i) {
            self.flags_in_host = 0;
            return;
        }
        let written = written_flags(i);
        if written == 0 {
            // Nothing to keep (NOT): R15 and RFLAGS stay as they were.
            self.flags_in_host = 0;
            return;
        }
        // The host's flags hold the guest's for these (`preloaded`): R15 is replaced whole.
        let whole = written | preloaded;
        if !keep_rax && self.unmerged & !whole == 0 {
            dynasm!(self.ops
                ; .arch x64
                ; lahf
                ; seto al
                ; movzx r15d, ax
            );
            self.flags_in_host = written;
            self.unmerged = whole;
            return;
        }
        if keep_rax {
            dynasm!(self.ops ; .arch x64 ; mov rsi, rax);
        }
        dynasm!(self.ops
            ; .arch x64
            ; lahf
            ; seto al
            ; movzx edi, ax
        );
        if keep_rax {
            dynasm!(self.ops ; .arch x64 ; mov rax, rsi);
        }
        if self.unmerged & !whole != 0 {
            // Some of the earlier flags survive this instruction: R15 keeps them and takes
            // the new ones (RDI) beside them.
            let new = lahf_bits(whole) as i32;
            dynasm!(self.ops
                ; .arch x64
                ; and edi, new
                ; and r15d, !new
                ; or r15d, edi
            );
            self.flags_in_host = 0;
            self.unmerged |= whole;
        } else {
            dynasm!(self.ops ; .arch x64 ; mov r15, rdi);
            self.flags_in_host = written;
            self.unmerged = whole;
        }
    }

    /// R15 gets all six status flags, as every jump between blocks leaves them: the ones
    /// not pending come from RFLAGS (the pending ones merged there first). A block starts
    /// with them there (`build`; the trampoline loads them on entry from the dispatcher),
    /// so a block whose flags all came from its own instructions passes them on without
    /// touching RFLAGS. Clobbers RAX, RSI and RDI, and the host's flags.
    fn complete_flags(&mut self) {
        if self.unmerged == STATUS_FLAGS {
            return;
        }
        self.merge_flags_free_rax(self.unmerged);
        load_r15_from_rflags(self.ops);
        self.unmerged = STATUS_FLAGS;
    }

    /// The flags of POPCNT, LZCNT or TZCNT (just run by the host, the result stored): ZF
    /// and CF as the host left them, the ones the manual leaves undefined cleared, as the
    /// interpreter does — and LAHF's always-set bit 1 kept (RFLAGS' reserved bit, which
    /// `merge_flags_free_rax` stores with the rest of the byte).
    fn save_bit_count_flags(&mut self, i: &Instruction) {
        self.flags_in_host = 0;
        if self.flags_dead(i) {
            return;
        }
        // Every status flag is written: the pending ones are all replaced.
        dynasm!(self.ops
            ; .arch x64
            ; lahf
            ; seto al
            ; movzx r15d, ax
            ; and r15d, 0x4300
        );
        self.unmerged = written_flags(i);
    }

    /// CMPXCHG with a memory destination as the host's LOCK CMPXCHG on the soft TLB's
    /// host address (atomic whatever the prefix, which the guest cannot tell from a plain
    /// one); a miss or a misaligned operand (see `atomic_operand`) runs the whole instruction
    /// on the interpreter. Flags go to RFLAGS on both ways (pending flags were merged
    /// first).
    fn cmpxchg(&mut self, i: &Instruction, k: u32, size: u32) {
        let back = self.atomic_operand(i, k, size);
        self.load_reg(i.op_register(1), true);
        dynasm!(self.ops ; .arch x64 ; mov rax, [r12]);
        if size == 4 {
            dynasm!(self.ops ; .arch x64 ; lock cmpxchg [rsi], ecx);
        } else {
            dynasm!(self.ops ; .arch x64 ; lock cmpxchg [rsi], rcx);
        }
        // A failed 32-bit compare zero-extends into RAX, as on the guest.
        dynasm!(self.ops
            ; .arch x64
            ; mov rdx, rax
            ; lahf
            ; seto al
            ; movzx edi, ax
            ; mov [r12], rdx
        );
        self.merge_flags_from(written_flags(i), 7);
        dynasm!(self.ops ; .arch x64 ; =>back);
        self.refresh(0);
    }

    /// RSI = the host address of an atomic instruction's memory operand, looked up for
    /// writing and aligned to `size`; else the whole instruction runs on the interpreter
    /// (which fills the soft TLB), coming back to the label returned. A misaligned operand
    /// may straddle cache lines: a split lock on the host (a fault under split-lock
    /// detection, a system-wide stall otherwise), where the interpreter stops the other
    /// vCPUs instead.
    fn atomic_operand(&mut self, i: &Instruction, k: u32, size: u32) -> DynamicLabel {
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        self.effective_address(i);
        let (slow, back) = self.slow_path_for(
            i,
            k,
            SlowCall::Interpret {
                fill: Some((seg, true)),
            },
            false,
        );
        self.tlb_lookup(seg, size, true, slow);
        let mask = size as i32 - 1;
        dynasm!(self.ops ; .arch x64 ; test esi, mask ; jnz =>slow);
        back
    }

    /// XCHG with memory as the host's (always atomic) XCHG on the soft TLB's host address;
    /// a miss or a misaligned operand runs it on the interpreter.
    fn xchg_memory(&mut self, i: &Instruction, k: u32, size: u32) {
        let back = self.atomic_operand(i, k, size);
        self.load_reg(i.op_register(1), false);
        if size == 4 {
            dynasm!(self.ops ; .arch x64 ; xchg [rsi], eax);
        } else {
            dynasm!(self.ops ; .arch x64 ; xchg [rsi], rax);
        }
        self.store_reg(i.op_register(1));
        dynasm!(self.ops ; .arch x64 ; =>back);
    }

    /// Whether the flags `i` writes are dead: the next instruction in the block overwrites
    /// them all with nothing in between that could read them — it reads no flags (not even
    /// as translated: a shift whose count may be zero keeps them), has no memory operand
    /// (no helper, no fault whose exit would need them) and continues the block; and `i`
    /// itself stores nothing to memory (a store into the block's own code would end the
    /// block right after `i`, needing its flags).
    ///
    /// Looks past instructions with nothing but register and immediate operands that
    /// neither read flags nor can fault (see [`flag_transparent`]): the flags are dead when
    /// such instructions, between them, overwrite them all before anything else comes.
    fn flags_dead(&self, i: &Instruction) -> bool {
        if i.op0_kind() == OpKind::Memory {
            return false;
        }
        let mut live = written_flags(i);
        for n in &self.instrs[self.at + 1..] {
            if !flag_transparent(n) {
                return false;
            }
            live &= !written_flags(n);
            if live == 0 {
                return true;
            }
        }
        false
    }

    /// After an instruction whose flags `save_flags` left in the host's flags and nothing
    /// clobbered since (no store to memory): a Jcc, CMOVcc or SETcc right after it that
    /// tests only those reads them there (see [`tests_host_flags`]) — no round trip through
    /// RFLAGS. A Jcc's two ways both merge them.
    fn fuse_with_next(&mut self, stored_to_memory: bool) {
        let live = std::mem::take(&mut self.flags_in_host);
        if !stored_to_memory
            && live != 0
            && self.next.is_some_and(|n| {
                tests_host_flags(&n) && native(&n).is_some() && jcc_flags(&n) & !live == 0
            })
        {
            self.live_flags = live;
        }
    }

    /// The result in RAX to operand 0, the operation's flags pending in R15.
    fn commit(&mut self, i: &Instruction, k: u32, size: u32) {
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

    /// RFLAGS gets the flags pending in R15.
    fn flush_flags(&mut self) {
        self.merge_flags(self.unmerged);
        self.unmerged = 0;
        // Part way through an instruction, its fault exit has nothing left to merge.
        self.before = 0;
    }

    /// `flush_flags` where RAX is free (between instructions, on the way out).
    fn flush_flags_free_rax(&mut self) {
        self.merge_flags_free_rax(self.unmerged);
        self.unmerged = 0;
        self.before = 0;
    }

    /// `merge_flags` where RAX is free: when `which` has all five flags of RFLAGS' low
    /// byte, that byte is R15's bits 8–15 as they are (LAHF's AH), and OF one bit moved —
    /// half the instructions of the general merge. Clobbers RAX, RSI and RDI.
    fn merge_flags_free_rax(&mut self, which: u32) {
        const LOW: u32 = STATUS_FLAGS & 0xff;
        if which & LOW != LOW {
            self.merge_flags(which);
            return;
        }
        dynasm!(self.ops
            ; .arch x64
            ; mov eax, r15d
            ; lea rsi, [r12 + FLAGS_AT]
            ; mov [rsi], ah
        );
        if which & OF != 0 {
            dynasm!(self.ops
                ; .arch x64
                ; shl al, 3
                ; and BYTE [rsi + 1], !8i8
                ; or [rsi + 1], al
            );
        }
    }

    /// RFLAGS = RFLAGS with the flags in `which` from R15 (see `save_flags` for its layout),
    /// which stays as it was: a fault exit may merge flags a flush already merged. Clobbers
    /// RSI and RDI.
    fn merge_flags(&mut self, which: u32) {
        if which != 0 {
            dynasm!(self.ops ; .arch x64 ; mov edi, r15d);
            self.merge_flags_from(which, 7);
        }
    }

    /// RFLAGS = RFLAGS with the flags in `which` from register `src` (R15's layout), which
    /// it clobbers, with RSI.
    fn merge_flags_from(&mut self, which: u32, src: u8) {
        if which == 0 {
            return;
        }
        if which & OF != 0 {
            dynasm!(self.ops
                ; .arch x64
                ; mov esi, Rd(src)
                ; shr esi, 8
                ; and Rd(src), 1
                ; shl Rd(src), 11
                ; or Rd(src), esi
            );
        } else {
            dynasm!(self.ops ; .arch x64 ; shr Rd(src), 8);
        }
        let (keep, take) = (!(which as i32), which as i32);
        dynasm!(self.ops
            ; .arch x64
            ; mov rsi, [r12 + FLAGS_AT]
            ; and rsi, keep
            ; and Rd(src), take
            ; or rsi, Rq(src)
            ; mov [r12 + FLAGS_AT], rsi
        );
    }

    /// RAX = the target of an indirect JMP or CALL, checked to be canonical (else #GP(0)
    /// at the instruction).
    fn indirect_target(&mut self, i: &Instruction, k: u32) {
        self.load_dest(i, k, 8);
        let (gp, back) = self.slow_path_for(i, k, SlowCall::Gp, false);
        dynasm!(self.ops
            ; .arch x64
            ; mov rcx, rax
            ; shl rcx, 16
            ; sar rcx, 16
            ; cmp rcx, rax
            ; jne =>gp
            ; =>back
        );
    }

    /// RIP = RAX with `count` retired, on through the jump cache.
    fn jump_indirect(&mut self, count: u32) {
        let count = count as i32;
        dynasm!(self.ops ; .arch x64 ; add QWORD [rbx + RETIRED], count);
        self.jump_through_cache();
    }

    /// An SSE instruction as host SSE on `Cpu`'s XMM registers (R8 = their base), its
    /// memory operand through the soft TLB; anything else — SSE not usable now (the
    /// interpreter raises #UD or #NM), a misaligned operand (#GP), a TLB miss — runs the
    /// whole instruction through the interpreter.
    fn sse(&mut self, i: &Instruction, k: u32, op: Sse) {
        let mem = (0..i.op_count()).find(|&n| i.op_kind(n) == OpKind::Memory);
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        if mem.is_some() {
            self.effective_address(i);
        }
        let fill = mem.map(|n| (seg, n == 0));
        if matches!(op, Sse::Pcmpistri | Sse::FpCompare) {
            // Its flags replace the pending ones whichever way it runs (see below).
            self.flush_flags();
        }
        let (slow, done) = self.slow_path_for(i, k, SlowCall::Interpret { fill }, false);
        let need = match i.mnemonic() {
            M::Pshufb => SSE_SSSE3,
            M::Pcmpistri => SSE_SSE42,
            _ => SSE_BASE,
        } as i8;
        dynasm!(self.ops
            ; .arch x64
            ; test BYTE [rbx + helpers::SSE_OK], need
            ; jz =>slow
            ; mov r8, [rbx + helpers::XMM]
        );
        // PCMPISTRI's memory operand may be misaligned (unlike the other 16-byte ones).
        let aligned = !matches!(op, Sse::Move { aligned: false } | Sse::Pcmpistri);
        let reg = |n: u32| 16 * xmm_index(i.op_register(n)).unwrap_or(0);
        // XMM1 = the source (operand 1), from a register or memory.
        let load_source = |b: &mut Self| {
            if mem == Some(1) {
                b.tlb_lookup(seg, 16, false, slow);
                if aligned {
                    dynasm!(b.ops ; .arch x64 ; test esi, 15 ; jnz =>slow);
                }
                dynasm!(b.ops ; .arch x64 ; movdqu xmm1, [rsi]);
            } else {
                let s = reg(1);
                dynasm!(b.ops ; .arch x64 ; movdqu xmm1, [r8 + s]);
            }
        };
        match op {
            Sse::Move { .. } if mem == Some(0) => {
                let s = reg(1);
                dynasm!(self.ops ; .arch x64 ; movdqu xmm1, [r8 + s]);
                self.tlb_lookup(seg, 16, true, slow);
                if aligned {
                    dynasm!(self.ops ; .arch x64 ; test esi, 15 ; jnz =>slow);
                }
                dynasm!(self.ops ; .arch x64 ; movdqu [rsi], xmm1);
            }
            Sse::Move { .. } => {
                load_source(self);
                let d = reg(0);
                dynasm!(self.ops ; .arch x64 ; movdqu [r8 + d], xmm1);
            }
            Sse::Binary => {
                load_source(self);
                let d = reg(0);
                dynasm!(self.ops ; .arch x64 ; movdqu xmm0, [r8 + d]);
                self.binary_sse_op(i.mnemonic());
                dynasm!(self.ops ; .arch x64 ; movdqu [r8 + d], xmm0);
            }
            Sse::Pshufd => {
                load_source(self);
                let (d, imm) = (reg(0), i.immediate8() as i8);
                dynasm!(self.ops
                    ; .arch x64
                    ; pshufd xmm0, xmm1, imm
                    ; movdqu [r8 + d], xmm0
                );
            }
            Sse::Pmovmskb => {
                let (s, (r, _, _)) = (reg(1), gpr(i.op_register(0)).expect("checked"));
                let off_r = 8 * r as i32;
                dynasm!(self.ops
                    ; .arch x64
                    ; movdqu xmm1, [r8 + s]
                    ; pmovmskb eax, xmm1
                    ; mov [r12 + off_r], rax
                );
                self.wrote_rax_to(r);
            }
            Sse::ToXmm => {
                let (d, (r, size, _)) = (reg(0), gpr(i.op_register(1)).expect("checked"));
                let off_r = 8 * r as i32;
                if size == 8 {
                    dynasm!(self.ops ; .arch x64 ; mov rax, [r12 + off_r]);
                } else {
                    dynasm!(self.ops ; .arch x64 ; mov eax, [r12 + off_r]);
                }
                dynasm!(self.ops
                    ; .arch x64
                    ; mov [r8 + d], rax
                    ; mov QWORD [r8 + d + 8], 0
                );
            }
            Sse::FromXmm => {
                let (s, (r, size, _)) = (reg(1), gpr(i.op_register(0)).expect("checked"));
                let off_r = 8 * r as i32;
                if size == 8 {
                    dynasm!(self.ops ; .arch x64 ; mov rax, [r8 + s]);
                } else {
                    dynasm!(self.ops ; .arch x64 ; mov eax, [r8 + s]);
                }
                dynasm!(self.ops ; .arch x64 ; mov [r12 + off_r], rax);
                self.wrote_rax_to(r);
            }
            Sse::Scalar { bytes, keeps_rest } => {
                let size = u32::from(bytes);
                match mem {
                    // A store of the source's low bytes.
                    Some(0) => {
                        let s = reg(1);
                        if bytes == 8 {
                            dynasm!(self.ops ; .arch x64 ; mov rax, [r8 + s]);
                        } else {
                            dynasm!(self.ops ; .arch x64 ; mov eax, [r8 + s]);
                        }
                        self.tlb_lookup(seg, size, true, slow);
                        if bytes == 8 {
                            dynasm!(self.ops ; .arch x64 ; mov [rsi], rax);
                        } else {
                            dynasm!(self.ops ; .arch x64 ; mov [rsi], eax);
                        }
                    }
                    // A load: the rest of the destination cleared.
                    Some(_) => {
                        let d = reg(0);
                        self.tlb_lookup(seg, size, false, slow);
                        if bytes == 8 {
                            dynasm!(self.ops ; .arch x64 ; mov rax, [rsi]);
                        } else {
                            dynasm!(self.ops ; .arch x64 ; mov eax, [rsi]);
                        }
                        dynasm!(self.ops
                            ; .arch x64
                            ; mov [r8 + d], rax
                            ; mov QWORD [r8 + d + 8], 0
                        );
                    }
                    None => {
                        let (d, s) = (reg(0), reg(1));
                        match (bytes, keeps_rest) {
                            (8, true) => dynasm!(self.ops
                                ; .arch x64
                                ; mov rax, [r8 + s]
                                ; mov [r8 + d], rax
                            ),
                            (_, true) => dynasm!(self.ops
                                ; .arch x64
                                ; mov eax, [r8 + s]
                                ; mov [r8 + d], eax
                            ),
                            // MOVQ between registers.
                            _ => dynasm!(self.ops
                                ; .arch x64
                                ; mov rax, [r8 + s]
                                ; mov [r8 + d], rax
                                ; mov QWORD [r8 + d + 8], 0
                            ),
                        }
                    }
                }
            }
            Sse::FpScalar | Sse::FpCompare | Sse::IntToFp | Sse::FpToInt => {
                self.fp(i, op, mem, seg, slow);
            }
            Sse::Pcmpistri => {
                // ECX and every status flag: the flags go to RFLAGS before `done`, where
                // the slow path (the interpreter) leaves its own.
                load_source(self);
                let (d, imm) = (reg(0), i.immediate8() as i8);
                dynasm!(self.ops
                    ; .arch x64
                    ; movdqu xmm0, [r8 + d]
                    ; pcmpistri xmm0, xmm1, imm
                    ; mov eax, ecx
                );
                self.save_flags(i);
                self.store_reg(Register::ECX);
                self.flush_flags();
            }
        }
        dynasm!(self.ops ; .arch x64 ; =>done);
    }

    /// Host floating point under the guest's MXCSR: only when it has its reset controls
    /// (every exception masked, round to nearest, no DAZ or FTZ) — the host's own
    /// controls, so the host computes exactly the guest's results — else the interpreter
    /// (`slow`). The host's exception flags are cleared first and ORed into the guest's
    /// after (`mxcsr_leave`). Clobbers RAX.
    fn mxcsr_enter(&mut self, slow: DynamicLabel) {
        dynasm!(self.ops
            ; .arch x64
            ; mov eax, [r8 + MXCSR_FROM_XMM]
            ; and eax, 0xffc0
            ; cmp eax, 0x1f80
            ; jne =>slow
            ; mov DWORD [rbx + SCRATCH1], 0x1f80
            ; ldmxcsr [rbx + SCRATCH1]
        );
    }

    /// The exception flags the host raised into the guest's MXCSR. Clobbers RCX and the
    /// host's flags.
    fn mxcsr_leave(&mut self) {
        dynasm!(self.ops
            ; .arch x64
            ; stmxcsr [rbx + SCRATCH1]
            ; mov ecx, [rbx + SCRATCH1]
            ; and ecx, 0x3f
            ; or [r8 + MXCSR_FROM_XMM], ecx
        );
    }

    /// XMM1 = the scalar source `i`'s operand 1 (an XMM register, or `bytes` from memory,
    /// the rest zero) for [`Self::fp`].
    fn fp_source(&mut self, i: &Instruction, mem: Option<u32>, seg: i32, slow: DynamicLabel) {
        if mem == Some(1) {
            let bytes = i.memory_size().size() as u32;
            self.tlb_lookup(seg, bytes, false, slow);
            if bytes == 8 {
                dynasm!(self.ops ; .arch x64 ; movq xmm1, [rsi]);
            } else {
                dynasm!(self.ops ; .arch x64 ; movd xmm1, [rsi]);
            }
        } else {
            let s = 16 * xmm_index(i.op_register(1)).unwrap_or(0);
            dynasm!(self.ops ; .arch x64 ; movdqu xmm1, [r8 + s]);
        }
    }

    /// The floating-point forms of [`Sse`] (R8 = XMM0's address, the effective address
    /// in RDX for a memory operand).
    fn fp(&mut self, i: &Instruction, op: Sse, mem: Option<u32>, seg: i32, slow: DynamicLabel) {
        self.mxcsr_enter(slow);
        let m = i.mnemonic();
        match op {
            Sse::FpScalar | Sse::FpCompare => {
                self.fp_source(i, mem, seg, slow);
                let d = 16 * xmm_index(i.op_register(0)).unwrap_or(0);
                dynasm!(self.ops ; .arch x64 ; movdqu xmm0, [r8 + d]);
                macro_rules! ops {
                    ($($name:ident => $op:ident),* $(,)?) => {
                        match m {
                            $(M::$name => dynasm!(self.ops ; .arch x64 ; $op xmm0, xmm1),)*
                            _ => unreachable!("checked by sse"),
                        }
                    };
                }
                ops!(
                    Addsd => addsd, Subsd => subsd, Mulsd => mulsd, Divsd => divsd,
                    Minsd => minsd, Maxsd => maxsd, Sqrtsd => sqrtsd,
                    Addss => addss, Subss => subss, Mulss => mulss, Divss => divss,
                    Minss => minss, Maxss => maxss, Sqrtss => sqrtss,
                    Cvtsd2ss => cvtsd2ss, Cvtss2sd => cvtss2sd,
                    Comisd => comisd, Ucomisd => ucomisd, Comiss => comiss, Ucomiss => ucomiss,
                );
                if op == Sse::FpCompare {
                    // The flags before MXCSR's update clobbers them; to RFLAGS before
                    // `done`, where the interpreter leaves its own.
                    self.save_flags(i);
                    self.flags_in_host = 0;
                    self.mxcsr_leave();
                    self.flush_flags();
                } else {
                    dynasm!(self.ops ; .arch x64 ; movdqu [r8 + d], xmm0);
                    self.mxcsr_leave();
                }
            }
            Sse::IntToFp => {
                let wide = if mem == Some(1) {
                    let bytes = i.memory_size().size() as u32;
                    self.tlb_lookup(seg, bytes, false, slow);
                    if bytes == 8 {
                        dynasm!(self.ops ; .arch x64 ; mov rax, [rsi]);
                    } else {
                        dynasm!(self.ops ; .arch x64 ; mov eax, [rsi]);
                    }
                    bytes == 8
                } else {
                    self.load_reg(i.op_register(1), false);
                    reg_slot(i.op_register(1)).expect("checked").1 == 8
                };
                let d = 16 * xmm_index(i.op_register(0)).unwrap_or(0);
                dynasm!(self.ops ; .arch x64 ; movdqu xmm0, [r8 + d]);
                match (m, wide) {
                    (M::Cvtsi2sd, true) => dynasm!(self.ops ; .arch x64 ; cvtsi2sd xmm0, rax),
                    (M::Cvtsi2sd, false) => dynasm!(self.ops ; .arch x64 ; cvtsi2sd xmm0, eax),
                    (_, true) => dynasm!(self.ops ; .arch x64 ; cvtsi2ss xmm0, rax),
                    (_, false) => dynasm!(self.ops ; .arch x64 ; cvtsi2ss xmm0, eax),
                }
                dynasm!(self.ops ; .arch x64 ; movdqu [r8 + d], xmm0);
                self.mxcsr_leave();
            }
            _ => {
                self.fp_source(i, mem, seg, slow);
                let wide = reg_slot(i.op_register(0)).expect("checked").1 == 8;
                match (m, wide) {
                    (M::Cvttsd2si, true) => dynasm!(self.ops ; .arch x64 ; cvttsd2si rax, xmm1),
                    (M::Cvttsd2si, false) => dynasm!(self.ops ; .arch x64 ; cvttsd2si eax, xmm1),
                    (M::Cvtsd2si, true) => dynasm!(self.ops ; .arch x64 ; cvtsd2si rax, xmm1),
                    (M::Cvtsd2si, false) => dynasm!(self.ops ; .arch x64 ; cvtsd2si eax, xmm1),
                    (M::Cvttss2si, true) => dynasm!(self.ops ; .arch x64 ; cvttss2si rax, xmm1),
                    (M::Cvttss2si, false) => dynasm!(self.ops ; .arch x64 ; cvttss2si eax, xmm1),
                    (_, true) => dynasm!(self.ops ; .arch x64 ; cvtss2si rax, xmm1),
                    (_, false) => dynasm!(self.ops ; .arch x64 ; cvtss2si eax, xmm1),
                }
                self.store_reg(i.op_register(0));
                self.mxcsr_leave();
            }
        }
    }

    /// XMM0 = XMM0 op XMM1.
    fn binary_sse_op(&mut self, m: M) {
        macro_rules! ops {
            ($($name:ident => $op:ident),* $(,)?) => {
                match m {
                    $(M::$name => dynasm!(self.ops ; .arch x64 ; $op xmm0, xmm1),)*
                    _ => unreachable!("checked by binary_sse"),
                }
            };
        }
        ops!(
            Pxor => pxor, Por => por, Pand => pand, Pandn => pandn,
            Xorps => xorps, Xorpd => xorpd, Andps => andps, Andpd => andpd,
            Orps => orps, Orpd => orpd, Andnps => andnps, Andnpd => andnpd,
            Pcmpeqb => pcmpeqb, Pcmpeqw => pcmpeqw, Pcmpeqd => pcmpeqd,
            Pcmpgtb => pcmpgtb, Pcmpgtw => pcmpgtw, Pcmpgtd => pcmpgtd,
            Paddb => paddb, Paddw => paddw, Paddd => paddd, Paddq => paddq,
            Psubb => psubb, Psubw => psubw, Psubd => psubd, Psubq => psubq,
            Pminub => pminub, Pmaxub => pmaxub,
            Punpcklbw => punpcklbw, Punpcklwd => punpcklwd, Punpckldq => punpckldq,
            Punpcklqdq => punpcklqdq, Punpckhbw => punpckhbw, Punpckhwd => punpckhwd,
            Punpckhdq => punpckhdq, Punpckhqdq => punpckhqdq, Pshufb => pshufb,
        );
    }

    /// BT on memory: with an immediate, the bit (modulo the operand size) of the operand;
    /// with a register, the bit string starting there — the register's signed value picks
    /// the operand-sized element (its address may be far below or above) and the bit in it.
    fn bit_test_memory(&mut self, i: &Instruction, k: u32, size: u32) {
        let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
        let bits = 8 * size;
        self.effective_address(i);
        if i.op_kind(1) == OpKind::Register {
            let (r, _, _) = gpr(i.op_register(1)).expect("checked");
            let off_r = 8 * r as i32;
            match size {
                2 => dynasm!(self.ops ; .arch x64 ; movsx rax, WORD [r12 + off_r]),
                4 => dynasm!(self.ops ; .arch x64 ; movsxd rax, DWORD [r12 + off_r]),
                _ => dynasm!(self.ops ; .arch x64 ; mov rax, [r12 + off_r]),
            }
            let (shift, mask) = (bits.trailing_zeros() as i8, (bits - 1) as i32);
            dynasm!(self.ops
                ; .arch x64
                ; mov rcx, rax
                ; sar rax, shift
                ; and ecx, mask
                ; mov [rbx + SCRATCH1], rcx
            );
            match size {
                2 => dynasm!(self.ops ; .arch x64 ; lea rdx, [rdx + rax * 2]),
                4 => dynasm!(self.ops ; .arch x64 ; lea rdx, [rdx + rax * 4]),
                _ => dynasm!(self.ops ; .arch x64 ; lea rdx, [rdx + rax * 8]),
            }
            if addr32(i) {
                dynasm!(self.ops ; .arch x64 ; mov edx, edx);
            }
            self.mem_load(i, k, seg, size);
            dynasm!(self.ops ; .arch x64 ; mov rcx, [rbx + SCRATCH1] ; bt rax, rcx);
        } else {
            let bit = (i.immediate8() as u32 & (bits - 1)) as i8;
            self.mem_load(i, k, seg, size);
            dynasm!(self.ops ; .arch x64 ; bt rax, bit);
        }
        self.save_flags(i);
    }

    /// A one-operand multiply's RDX:RAX (AX for bytes) to the guest's registers.
    fn store_product(&mut self, size: u32) {
        match size {
            1 => dynasm!(self.ops ; .arch x64 ; mov [r12], ax),
            2 => dynasm!(self.ops ; .arch x64 ; mov [r12], ax ; mov [r12 + 16], dx),
            // 32-bit results are zero-extended in the host registers already.
            _ => dynasm!(self.ops ; .arch x64 ; mov [r12], rax ; mov [r12 + 16], rdx),
        }
        self.refresh(0);
        self.refresh(2);
    }

    /// DIV: a zero divisor or a quotient too large for its register (#DE) goes to the
    /// interpreter, which raises it; the host divides everything else. The flags are left
    /// as they were (all undefined), as the interpreter does.
    fn divide(&mut self, i: &Instruction, k: u32, size: u32) {
        self.load_dest(i, k, size);
        let (slow, back) = self.slow_path_for(i, k, SlowCall::Interpret { fill: None }, false);
        dynasm!(self.ops ; .arch x64 ; mov rcx, rax);
        match size {
            1 => dynasm!(self.ops
                ; .arch x64
                ; movzx eax, WORD [r12]
                ; test cl, cl
                ; jz =>slow
                ; cmp ah, cl
                ; jae =>slow
                ; div cl
                ; mov [r12], ax
            ),
            2 => dynasm!(self.ops
                ; .arch x64
                ; movzx eax, WORD [r12]
                ; movzx edx, WORD [r12 + 16]
                ; test cx, cx
                ; jz =>slow
                ; cmp dx, cx
                ; jae =>slow
                ; div cx
                ; mov [r12], ax
                ; mov [r12 + 16], dx
            ),
            4 => dynasm!(self.ops
                ; .arch x64
                ; mov eax, [r12]
                ; mov edx, [r12 + 16]
                ; test ecx, ecx
                ; jz =>slow
                ; cmp edx, ecx
                ; jae =>slow
                ; div ecx
                ; mov [r12], rax
                ; mov [r12 + 16], rdx
            ),
            _ => dynasm!(self.ops
                ; .arch x64
                ; mov rax, [r12]
                ; mov rdx, [r12 + 16]
                ; test rcx, rcx
                ; jz =>slow
                ; cmp rdx, rcx
                ; jae =>slow
                ; div rcx
                ; mov [r12], rax
                ; mov [r12 + 16], rdx
            ),
        }
        self.refresh(0);
        self.refresh(2);
        dynasm!(self.ops ; .arch x64 ; =>back);
    }

    /// REP STOS / REP MOVS as the host's own, when DF is clear, the count is at most a page
    /// of elements and the destination (and source) bytes lie inside one page each that the
    /// soft TLB maps (a store: no decoded code there), and a copy's destination does not
    /// start inside its source above it (element order would show); else the interpreter
    /// runs it in place (which may stop part way: then the block ends there).
    fn rep_string(&mut self, i: &Instruction, k: u32, elem: u32, movs: bool) {
        // The interpreter's way may leave the block with RIP at this instruction (a REP it
        // stops part way): pending flags go to RFLAGS first.
        self.flush_flags();
        let (slow, back) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        let (max, shift) = ((0x1000 / elem) as i32, elem.trailing_zeros() as i8);
        let df = 1 << 10;
        self.load_gpr64(1, true);
        // No elements: nothing happens (whatever DF is).
        dynasm!(self.ops
            ; .arch x64
            ; test rax, rax
            ; jz =>back
            ; test DWORD [r12 + FLAGS_AT], df
            ; jnz =>slow
            ; cmp rax, max
            ; ja =>slow
            ; mov [rbx + SCRATCH1], rax
        );
        // RCX = where the last element ends, within the page of the address in RDX.
        let in_page = |b: &mut Self| {
            dynasm!(b.ops
                ; .arch x64
                ; mov ecx, edx
                ; and ecx, 0xfff
                ; shl rax, shift
                ; add rcx, rax
                ; shr rax, shift
                ; cmp rcx, 0x1000
                ; ja =>slow
            );
        };
        self.load_gpr64(7, false);
        in_page(self);
        let es = emu_core::interp::cpu::sreg::ES as i32;
        self.tlb_lookup(es, 1, true, slow);
        if movs {
            dynasm!(self.ops ; .arch x64 ; mov r8, rsi);
            self.load_gpr64(6, false);
            in_page(self);
            let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
            self.tlb_lookup(seg, 1, false, slow);
            // Slow if source < destination < source + bytes.
            dynasm!(self.ops
                ; .arch x64
                ; mov rcx, rax
                ; shl rcx, shift
                ; add rcx, rsi
                ; cmp r8, rsi
                ; jbe >apart
                ; cmp r8, rcx
                ; jb =>slow
                ; apart:
                ; mov rdi, r8
                ; mov rcx, rax
            );
            match elem {
                1 => dynasm!(self.ops ; .arch x64 ; rep movsb),
                2 => dynasm!(self.ops ; .arch x64 ; rep movsw),
                4 => dynasm!(self.ops ; .arch x64 ; rep movsd),
                _ => dynasm!(self.ops ; .arch x64 ; rep movsq),
            }
        } else {
            dynasm!(self.ops ; .arch x64 ; mov rdi, rsi ; mov rcx, rax);
            self.load_gpr64(0, true);
            match elem {
                1 => dynasm!(self.ops ; .arch x64 ; rep stosb),
                2 => dynasm!(self.ops ; .arch x64 ; rep stosw),
                4 => dynasm!(self.ops ; .arch x64 ; rep stosd),
                _ => dynasm!(self.ops ; .arch x64 ; rep stosq),
            }
        }
        // RDI (and RSI) past the elements, RCX = 0.
        dynasm!(self.ops
            ; .arch x64
            ; mov rax, [rbx + SCRATCH1]
            ; shl rax, shift
            ; add [r12 + 56], rax
            ; mov QWORD [r12 + 8], 0
        );
        if movs {
            dynasm!(self.ops ; .arch x64 ; add [r12 + 48], rax);
            self.refresh(6);
        }
        self.refresh(7);
        self.refresh(1);
        dynasm!(self.ops ; .arch x64 ; jmp =>back ; =>slow);
        self.interpret_string(i, k, Some(movs));
        dynasm!(self.ops ; .arch x64 ; =>back);
    }

    /// The instruction at RIP through the interpreter (see [`interpreted`]).
    fn interpret(&mut self, i: &Instruction, k: u32) {
        self.interpret_string(i, k, None);
    }

    /// [`Self::interpret`]; for a REP STOS/MOVS (`string`: whether it is a MOVS), the
    /// soft TLB then gets the pages its destination (and source) started in, so its next
    /// run finds them inline.
    fn interpret_string(&mut self, i: &Instruction, k: u32, string: Option<bool>) {
        let (at, next) = (i.ip() as i64, i.next_ip() as i64);
        dynasm!(self.ops
            ; .arch x64
            ; mov rax, QWORD at
            ; mov [r12 + RIP_AT], rax
            ; mov rdi, rbx
        );
        match string {
            None => {
                let f = helpers::interpret as *const () as usize as i64;
                dynasm!(self.ops ; .arch x64 ; mov rax, QWORD f ; call rax);
            }
            Some(movs) => {
                let f = helpers::interpret_string as *const () as usize as i64;
                let src_seg = if movs {
                    seg_index(i.memory_segment()).unwrap_or(3) as i32
                } else {
                    -1
                };
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rsi, QWORD i64::from(src_seg)
                    ; mov rdx, [r12 + 56]
                    ; mov rcx, [r12 + 48]
                    ; mov rax, QWORD f
                    ; call rax
                );
            }
        }
        self.reload_cached();
        self.interpreting = true;
        self.check(i, k);
        self.interpreting = false;
        // An instruction that did not end at the next one (a REP string instruction the
        // interpreter interrupts part way) leaves the block where it stopped.
        let count = (k + 1) as i32;
        let on = self.ops.new_dynamic_label();
        dynasm!(self.ops
            ; .arch x64
            ; mov rax, QWORD next
            ; cmp [r12 + RIP_AT], rax
            ; je =>on
            ; add QWORD [rbx + RETIRED], count
        );
        self.jmp_exit();
        dynasm!(self.ops ; .arch x64 ; =>on);
    }

    /// Whether the host runs `i` as translated: a bit count needs the model's and the
    /// host's instruction (`BlockEnv::bit_count`).
    fn runs_natively(&self, i: &Instruction) -> bool {
        let need = match i.mnemonic() {
            M::Popcnt => HAS_POPCNT,
            M::Lzcnt => HAS_LZCNT,
            M::Tzcnt => HAS_TZCNT,
            _ => return native(i).is_some(),
        };
        native(i).is_some() && self.env.bit_count & need != 0
    }

    fn instruction(&mut self, i: &Instruction, k: u32) -> Flow {
        // Flags pending from earlier instructions go to RFLAGS first where this one may
        // still fault after computing its own (a memory destination), may read RFLAGS (the
        // interpreter) or leaves the block — except a Jcc testing flags live in the host's.
        let ends = native(i) == Some(Flow::End);
        let natively = self.runs_natively(i);
        self.preloaded = 0;
        self.rax_zero_extended = false;
        // CMP, TEST and BT only read their memory operand: its load faults before their
        // flags exist, and the fault exit merges R15's.
        let writes_memory =
            i.op0_kind() == OpKind::Memory && !matches!(i.mnemonic(), M::Cmp | M::Test | M::Bt);
        if !natively || (writes_memory && written_flags(i) != 0) {
            self.flush_flags_free_rax();
        }
        // A Jcc inside the block (a side exit) completes R15 on its taken way only.
        let side_exit = i.is_jcc_short_or_near() && self.next.is_some();
        if natively && ends && self.live_flags == 0 && !side_exit {
            self.complete_flags();
        }
        if matches!(i.mnemonic(), M::Inc | M::Dec)
            && i.op0_kind() == OpKind::Register
            && self.unmerged & CF != 0
            && !self.flags_dead(i)
        {
            // INC and DEC keep CF: the host's gets the guest's, so the capture has all six.
            dynasm!(self.ops ; .arch x64 ; bt r15d, 8);
            self.preloaded = CF;
        }
        self.before = self.unmerged;
        if !natively {
            self.live_flags = 0;
            self.interpret(i, k);
            return Flow::Next;
        }
        if let Some(op) = sse(i) {
            self.sse(i, k, op);
            return Flow::Next;
        }
        if let Some((elem, movs)) = rep_string(i) {
            self.rep_string(i, k, elem, movs);
            return Flow::Next;
        }
        let size = op_size(i).unwrap_or(8);
        match i.mnemonic() {
            M::Nop | M::Endbr64 | M::Endbr32 => {}
            M::Xchg if i.op_kind(0) == OpKind::Memory => self.xchg_memory(i, k, size),
            M::Xchg => {
                self.load_reg(i.op_register(0), false);
                self.load_reg(i.op_register(1), true);
                self.store_reg(i.op_register(1));
                dynasm!(self.ops ; .arch x64 ; mov rax, rcx);
                self.store_reg(i.op_register(0));
            }
            m @ (M::Mul | M::Imul) if i.op_count() == 1 => {
                // RDX:RAX = RAX * r/m (AX = AL * r/m8).
                self.load_dest(i, k, size);
                dynasm!(self.ops ; .arch x64 ; mov rcx, rax);
                macro_rules! op {
                    ($op:ident) => {
                        match size {
                            1 => dynasm!(self.ops ; .arch x64 ; movzx eax, BYTE [r12] ; $op cl),
                            2 => dynasm!(self.ops ; .arch x64 ; movzx eax, WORD [r12] ; $op cx),
                            4 => dynasm!(self.ops ; .arch x64 ; mov eax, [r12] ; $op ecx),
                            _ => dynasm!(self.ops ; .arch x64 ; mov rax, [r12] ; $op rcx),
                        }
                    };
                }
                if m == M::Mul {
                    op!(mul);
                } else {
                    op!(imul);
                }
                self.save_flags(i);
                self.store_product(size);
            }
            M::Div => self.divide(i, k, size),
            M::Bswap => match self.cached(i.op_register(0)) {
                Some(h) => {
                    if size == 4 {
                        dynasm!(self.ops ; .arch x64 ; bswap Rd(h));
                    } else {
                        dynasm!(self.ops ; .arch x64 ; bswap Rq(h));
                    }
                    self.write_back(i.op_register(0), h);
                }
                None => {
                    self.load_reg(i.op_register(0), false);
                    if size == 4 {
                        dynasm!(self.ops ; .arch x64 ; bswap eax);
                    } else {
                        dynasm!(self.ops ; .arch x64 ; bswap rax);
                    }
                    self.store_reg(i.op_register(0));
                }
            },
            m @ (M::Popcnt | M::Lzcnt | M::Tzcnt) => {
                self.load_src(i, k, 1, size);
                macro_rules! op {
                    ($op:ident) => {
                        if size == 4 {
                            dynasm!(self.ops ; .arch x64 ; $op eax, ecx);
                        } else {
                            dynasm!(self.ops ; .arch x64 ; $op rax, rcx);
                        }
                    };
                }
                match m {
                    M::Popcnt => op!(popcnt),
                    M::Lzcnt => op!(lzcnt),
                    _ => op!(tzcnt),
                }
                self.store_reg(i.op_register(0));
                self.save_bit_count_flags(i);
            }
            M::Cmpxchg => self.cmpxchg(i, k, size),
            m @ (M::Cbw | M::Cwde | M::Cdqe | M::Cwd | M::Cdq | M::Cqo) => {
                match m {
                    M::Cbw => dynasm!(self.ops ; .arch x64 ; movsx ax, BYTE [r12] ; mov [r12], ax),
                    M::Cwde => {
                        dynasm!(self.ops ; .arch x64 ; movsx eax, WORD [r12] ; mov [r12], rax)
                    }
                    M::Cdqe => {
                        dynasm!(self.ops ; .arch x64 ; movsxd rax, DWORD [r12] ; mov [r12], rax)
                    }
                    M::Cwd => {
                        dynasm!(self.ops ; .arch x64 ; mov ax, [r12] ; cwd ; mov [r12 + 16], dx)
                    }
                    M::Cdq => {
                        dynasm!(self.ops ; .arch x64 ; mov eax, [r12] ; cdq ; mov [r12 + 16], rdx)
                    }
                    _ => dynasm!(self.ops ; .arch x64 ; mov rax, [r12] ; cqo ; mov [r12 + 16], rdx),
                }
                self.refresh(0);
                self.refresh(2);
            }
            m @ (M::Bsf | M::Bsr) => {
                self.load_src(i, k, 1, size);
                self.load_reg(i.op_register(0), false);
                match (m, size) {
                    (M::Bsf, 2) => dynasm!(self.ops ; .arch x64 ; bsf ax, cx),
                    (M::Bsf, 4) => dynasm!(self.ops ; .arch x64 ; bsf eax, ecx),
                    (M::Bsf, _) => dynasm!(self.ops ; .arch x64 ; bsf rax, rcx),
                    (_, 2) => dynasm!(self.ops ; .arch x64 ; bsr ax, cx),
                    (_, 4) => dynasm!(self.ops ; .arch x64 ; bsr eax, ecx),
                    _ => dynasm!(self.ops ; .arch x64 ; bsr rax, rcx),
                }
                // A zero source (ZF) leaves the whole register alone, even a 32-bit one.
                self.save_flags(i);
                let skip = self.ops.new_dynamic_label();
                dynasm!(self.ops ; .arch x64 ; jz =>skip);
                self.store_reg(i.op_register(0));
                dynasm!(self.ops ; .arch x64 ; =>skip);
            }
            M::Bt if i.op_kind(0) == OpKind::Memory => self.bit_test_memory(i, k, size),
            m @ (M::Bt | M::Bts | M::Btr | M::Btc) => {
                self.load_src(i, k, 1, size);
                self.load_reg(i.op_register(0), false);
                macro_rules! op {
                    ($op:ident) => {
                        match size {
                            2 => dynasm!(self.ops ; .arch x64 ; $op ax, cx),
                            4 => dynasm!(self.ops ; .arch x64 ; $op eax, ecx),
                            _ => dynasm!(self.ops ; .arch x64 ; $op rax, rcx),
                        }
                    };
                }
                match m {
                    M::Bt => op!(bt),
                    M::Bts => op!(bts),
                    M::Btr => op!(btr),
                    _ => op!(btc),
                }
                self.save_flags(i);
                if m != M::Bt {
                    self.store_reg(i.op_register(0));
                }
            }
            m @ (M::Shld | M::Shrd) => {
                self.load_dest(i, k, size);
                let (r, _, _) = gpr(i.op_register(1)).expect("checked");
                let off_r = 8 * r as i32;
                dynasm!(self.ops ; .arch x64 ; mov rdx, [r12 + off_r]);
                let by_cl = i.op_kind(2) == OpKind::Register;
                let count = (i.immediate8() as u32) & if size == 8 { 63 } else { 31 };
                // A count that may mask to zero leaves the flags alone.
                if by_cl || count == 0 {
                    self.load_flags(STATUS_FLAGS);
                }
                let c = count as i8;
                match (m, size, by_cl) {
                    (M::Shld, 4, true) => {
                        dynasm!(self.ops ; .arch x64 ; mov rcx, [r12 + 8] ; shld eax, edx, cl)
                    }
                    (M::Shld, 4, false) => dynasm!(self.ops ; .arch x64 ; shld eax, edx, c),
                    (M::Shld, _, true) => {
                        dynasm!(self.ops ; .arch x64 ; mov rcx, [r12 + 8] ; shld rax, rdx, cl)
                    }
                    (M::Shld, _, false) => dynasm!(self.ops ; .arch x64 ; shld rax, rdx, c),
                    (_, 4, true) => {
                        dynasm!(self.ops ; .arch x64 ; mov rcx, [r12 + 8] ; shrd eax, edx, cl)
                    }
                    (_, 4, false) => dynasm!(self.ops ; .arch x64 ; shrd eax, edx, c),
                    (_, _, true) => {
                        dynasm!(self.ops ; .arch x64 ; mov rcx, [r12 + 8] ; shrd rax, rdx, cl)
                    }
                    _ => dynasm!(self.ops ; .arch x64 ; shrd rax, rdx, c),
                }
                self.commit(i, k, size);
            }
            M::Imul => {
                // Two operands: dest *= r/m; three: dest = r/m * imm.
                if i.op_count() == 2 {
                    self.load_src(i, k, 1, size);
                    self.load_reg(i.op_register(0), false);
                } else {
                    self.load_src(i, k, 1, size);
                    dynasm!(self.ops ; .arch x64 ; mov rax, rcx);
                    self.mov_rcx(i.immediate(2) as i64);
                }
                match size {
                    2 => dynasm!(self.ops ; .arch x64 ; imul ax, cx),
                    4 => dynasm!(self.ops ; .arch x64 ; imul eax, ecx),
                    _ => dynasm!(self.ops ; .arch x64 ; imul rax, rcx),
                }
                self.save_flags(i);
                self.store_reg(i.op_register(0));
            }
            m if is_setcc(m) => {
                if i.op_kind(0) == OpKind::Memory {
                    self.effective_address(i);
                    dynasm!(self.ops ; .arch x64 ; mov [rbx + SCRATCH0], rdx);
                }
                // The flags of the instruction before, if still in the host's (fused).
                if std::mem::take(&mut self.live_flags) == 0 {
                    self.load_flags(jcc_flags(i));
                }
                // MOV, not XOR: the flags must survive until the CMOV.
                dynasm!(self.ops ; .arch x64 ; mov eax, 0 ; mov ecx, 1);
                self.cmov_cc(i.condition_code());
                self.store_dest(i, k, 1);
            }
            m if is_cmovcc(m) => {
                // The source is read whatever the condition, as on hardware. Fused, it is
                // a register (its load keeps the host's flags).
                let live = std::mem::take(&mut self.live_flags);
                self.load_src(i, k, 1, size);
                if live == 0 {
                    self.load_flags(jcc_flags(i));
                }
                self.load_reg(i.op_register(0), false);
                self.cmov_cc(i.condition_code());
                self.store_reg(i.op_register(0));
            }
            M::Mov if self.direct_mov(i, k, size) => {}
            M::Mov => {
                if i.op_kind(0) == OpKind::Memory {
                    self.load_src(i, k, 1, size);
                    self.effective_address(i);
                    dynasm!(self.ops ; .arch x64 ; mov rax, rcx);
                    let seg = seg_index(i.memory_segment()).unwrap_or(3) as i32;
                    self.mem_store(i, k, seg, size);
                } else if i.op_kind(1) == OpKind::Memory {
                    self.load_mem(i, k, size, false);
                    self.rax_zero_extended = true;
                    self.store_dest(i, k, size);
                } else {
                    self.load_src(i, k, 1, size);
                    dynasm!(self.ops ; .arch x64 ; mov rax, rcx);
                    self.store_dest(i, k, size);
                }
            }
            m
            @ (M::Add | M::Or | M::Adc | M::Sbb | M::And | M::Sub | M::Xor | M::Cmp | M::Test) => {
                // A memory source first (the destination is then a register, whose load
                // keeps RCX).
                // A 32- or 64-bit operation with an immediate uses the host's immediate form
                // (a 64-bit one's immediate is a sign-extended imm32 there too).
                let imm = (!matches!(i.op_kind(1), OpKind::Register | OpKind::Memory)
                    && matches!(size, 4 | 8))
                .then(|| i.immediate(1) as i32);
                if self.direct_alu(i, k, m, size, imm) {
                    return Flow::Next;
                }
                let compare = matches!(m, M::Cmp | M::Test);
                if i.op_kind(1) == OpKind::Memory {
                    self.load_src(i, k, 1, size);
                    self.load_dest(i, k, size);
                } else if compare && i.op_kind(0) == OpKind::Memory {
                    // Nothing is stored back: no offset to keep.
                    self.load_mem(i, k, size, false);
                    if imm.is_none() {
                        self.load_src(i, k, 1, size);
                    }
                } else {
                    self.load_dest(i, k, size);
                    if imm.is_none() {
                        self.load_src(i, k, 1, size);
                    }
                }
                if matches!(m, M::Adc | M::Sbb) {
                    self.load_flags(CF);
                }
                macro_rules! op {
                    ($op:ident) => {
                        match (size, imm) {
                            (4, Some(v)) => dynasm!(self.ops ; .arch x64 ; $op eax, v),
                            (8, Some(v)) => dynasm!(self.ops ; .arch x64 ; $op rax, v),
                            (1, _) => dynasm!(self.ops ; .arch x64 ; $op al, cl),
                            (2, _) => dynasm!(self.ops ; .arch x64 ; $op ax, cx),
                            (4, _) => dynasm!(self.ops ; .arch x64 ; $op eax, ecx),
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
                if compare {
                    self.save_flags_free_rax(i);
                } else {
                    self.save_flags(i);
                    self.store_dest(i, k, size);
                }
                self.fuse_with_next(
                    i.op_kind(0) == OpKind::Memory && !matches!(m, M::Cmp | M::Test),
                );
            }
            m @ (M::Inc
            | M::Dec
            | M::Neg
            | M::Not
            | M::Shl
            | M::Sal
            | M::Shr
            | M::Sar
            | M::Rol
            | M::Ror)
                if self.direct_unary(i, m, size) => {}
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
            m @ (M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr) => {
                self.load_dest(i, k, size);
                let by_cl = i.op_kind(1) == OpKind::Register;
                let count = (i.immediate8() as u32) & if size == 8 { 63 } else { 31 };
                // A count that may mask to zero leaves the flags alone, and RCL/RCR read CF:
                // the host then starts from the guest's flags.
                if by_cl || count == 0 {
                    self.load_flags(STATUS_FLAGS);
                } else if matches!(m, M::Rcl | M::Rcr) {
                    self.load_flags(CF);
                }
                let c = count as i8;
                macro_rules! op {
                    ($op:ident) => {
                        if by_cl {
                            dynasm!(self.ops ; .arch x64 ; mov rcx, [r12 + 8]);
                            match size {
                                1 => dynasm!(self.ops ; .arch x64 ; $op al, cl),
                                2 => dynasm!(self.ops ; .arch x64 ; $op ax, cl),
                                4 => dynasm!(self.ops ; .arch x64 ; $op eax, cl),
                                _ => dynasm!(self.ops ; .arch x64 ; $op rax, cl),
                            }
                        } else {
                            match size {
                                1 => dynasm!(self.ops ; .arch x64 ; $op al, c),
                                2 => dynasm!(self.ops ; .arch x64 ; $op ax, c),
                                4 => dynasm!(self.ops ; .arch x64 ; $op eax, c),
                                _ => dynasm!(self.ops ; .arch x64 ; $op rax, c),
                            }
                        }
                    };
                }
                match m {
                    M::Shr => op!(shr),
                    M::Sar => op!(sar),
                    M::Rol => op!(rol),
                    M::Ror => op!(ror),
                    M::Rcl => op!(rcl),
                    M::Rcr => op!(rcr),
                    _ => op!(shl),
                }
                self.commit(i, k, size);
            }
            M::Lea if matches!(size, 4 | 8) && self.cached(i.op_register(0)).is_some() => {
                let h = self.cached(i.op_register(0)).expect("checked");
                self.effective_address(i);
                if size == 4 {
                    dynasm!(self.ops ; .arch x64 ; mov Rd(h), edx);
                } else {
                    dynasm!(self.ops ; .arch x64 ; mov Rq(h), rdx);
                }
                self.write_back(i.op_register(0), h);
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
                        self.load_mem(i, k, s, false);
                        s
                    }
                };
                // Both loads zero-extend already: MOVZX needs nothing more.
                match (m != M::Movzx, src_size) {
                    (false, _) => self.rax_zero_extended = true,
                    (true, 1) => dynasm!(self.ops ; .arch x64 ; movsx rax, al),
                    (true, 2) => dynasm!(self.ops ; .arch x64 ; movsx rax, ax),
                    (true, _) => dynasm!(self.ops ; .arch x64 ; movsxd rax, eax),
                }
                self.store_dest(i, k, size);
            }
            M::Push => {
                let (r, _, _) = gpr(i.op_register(0)).expect("checked");
                let off_r = 8 * r as i32;
                dynasm!(self.ops ; .arch x64 ; mov rax, [r12 + off_r]);
                self.push_rax(i, k, false);
            }
            M::Pop => {
                let (r, _, _) = gpr(i.op_register(0)).expect("checked");
                let off_r = 8 * r as i32;
                let ss = emu_core::interp::cpu::sreg::SS as i32;
                dynasm!(self.ops ; .arch x64 ; mov rdx, [r12 + 32]);
                self.mem_load(i, k, ss, 8);
                // POP RSP: the loaded value wins over the increment.
                dynasm!(self.ops
                    ; .arch x64
                    ; add QWORD [r12 + 32], 8
                    ; mov [r12 + off_r], rax
                );
                self.refresh(4);
                self.refresh(r);
            }
            M::Jmp if i.op_kind(0) != OpKind::NearBranch64 => {
                self.indirect_target(i, k);
                self.jump_indirect(k + 1);
                return Flow::End;
            }
            M::Call if i.op_kind(0) != OpKind::NearBranch64 => {
                // The target first (a non-canonical one faults before the push).
                self.indirect_target(i, k);
                let next = i.next_ip() as i64;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov [rbx + SCRATCH1], rax
                    ; mov rax, QWORD next
                );
                self.push_rax(i, k, true);
                let count = (k + 1) as i32;
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rax, [rbx + SCRATCH1]
                    ; mov [r12 + RIP_AT], rax
                    ; add QWORD [rbx + RETIRED], count
                    ; cmp QWORD [rbx + STATUS], 0
                );
                // As the direct CALL: a push into the running block's code page leaves.
                let leave = self.merge_exit();
                dynasm!(self.ops ; .arch x64 ; jne =>leave);
                self.jump_through_cache();
                return Flow::End;
            }
            M::Jmp => {
                self.jump_to(i.near_branch64(), k + 1);
                return Flow::End;
            }
            M::Call => {
                let next = i.next_ip() as i64;
                dynasm!(self.ops ; .arch x64 ; mov rax, QWORD next);
                self.push_rax(i, k, true);
                // The push may have written the running block's code page: then on to the
                // target through the dispatcher, which sees the status.
                self.retire_at(i.near_branch64(), k + 1);
                dynasm!(self.ops ; .arch x64 ; cmp QWORD [rbx + STATUS], 0);
                let leave = self.merge_exit();
                dynasm!(self.ops ; .arch x64 ; jne =>leave);
                self.continue_to(i.near_branch64());
                return Flow::End;
            }
            M::Ret => {
                // The target is loaded inline; a TLB miss or a non-canonical target goes to
                // the helper (which raises the #GP at the RET with RSP untouched).
                let ss = emu_core::interp::cpu::sreg::SS as i32;
                let (slow, back) = self.slow_path_for(i, k, SlowCall::Ret, false);
                dynasm!(self.ops ; .arch x64 ; mov rdx, [r12 + 32]);
                self.tlb_lookup(ss, 8, false, slow);
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rax, [rsi]
                    ; mov rcx, rax
                    ; shl rcx, 16
                    ; sar rcx, 16
                    ; cmp rcx, rax
                    ; jne =>slow
                    ; add QWORD [r12 + 32], 8
                    ; =>back
                );
                let done = (k + 1) as i32;
                dynasm!(self.ops ; .arch x64 ; add QWORD [rbx + RETIRED], done);
                self.jump_through_cache();
                return Flow::End;
            }
            _ => {
                // Jcc: on to the target if the condition holds, else the next instruction.
                let live = std::mem::take(&mut self.live_flags);
                if live == 0 {
                    self.load_flags(jcc_flags(i));
                }
                let (before, unmerged) = (self.before, self.unmerged);
                if self.next.is_some() {
                    // A side exit: the block goes on with the next instruction.
                    let on = self.ops.new_dynamic_label();
                    self.jcc(negate(i.condition_code()), on);
                    self.complete_flags();
                    self.jump_to(i.near_branch_target(), k + 1);
                    dynasm!(self.ops ; .arch x64 ; =>on);
                    (self.before, self.unmerged) = (before, unmerged);
                    return Flow::Next;
                }
                let taken = self.ops.new_dynamic_label();
                self.jcc(i.condition_code(), taken);
                self.complete_flags();
                self.jump_to(i.next_ip(), k + 1);
                dynasm!(self.ops ; .arch x64 ; =>taken);
                (self.before, self.unmerged) = (before, unmerged);
                self.complete_flags();
                self.jump_to(i.near_branch_target(), k + 1);
                return Flow::End;
            }
        }
        Flow::Next
    }

    /// A jump to `to` if condition `cc` holds on the host's flags.
    fn jcc(&mut self, cc: ConditionCode, to: DynamicLabel) {
        match cc {
            ConditionCode::o => dynasm!(self.ops ; .arch x64 ; jo =>to),
            ConditionCode::no => dynasm!(self.ops ; .arch x64 ; jno =>to),
            ConditionCode::b => dynasm!(self.ops ; .arch x64 ; jb =>to),
            ConditionCode::ae => dynasm!(self.ops ; .arch x64 ; jae =>to),
            ConditionCode::e => dynasm!(self.ops ; .arch x64 ; je =>to),
            ConditionCode::ne => dynasm!(self.ops ; .arch x64 ; jne =>to),
            ConditionCode::be => dynasm!(self.ops ; .arch x64 ; jbe =>to),
            ConditionCode::a => dynasm!(self.ops ; .arch x64 ; ja =>to),
            ConditionCode::s => dynasm!(self.ops ; .arch x64 ; js =>to),
            ConditionCode::ns => dynasm!(self.ops ; .arch x64 ; jns =>to),
            ConditionCode::p => dynasm!(self.ops ; .arch x64 ; jp =>to),
            ConditionCode::np => dynasm!(self.ops ; .arch x64 ; jnp =>to),
            ConditionCode::l => dynasm!(self.ops ; .arch x64 ; jl =>to),
            ConditionCode::ge => dynasm!(self.ops ; .arch x64 ; jge =>to),
            ConditionCode::le => dynasm!(self.ops ; .arch x64 ; jle =>to),
            _ => dynasm!(self.ops ; .arch x64 ; jg =>to),
        }
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

/// The guest registers (a bit per index) `instrs` may read before writing them whole: a
/// block loads only those host copies on entry (the others get their value from their
/// first write, and `Cpu::regs` stays exact for every exit either way). A 32- or 64-bit
/// write is whole (a 32-bit one zero-extends); a partial or conditional one counts as a
/// read.
fn entry_live(instrs: &[Instruction]) -> u16 {
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
fn negate(cc: ConditionCode) -> ConditionCode {
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
fn choose_cached(instrs: &[Instruction]) -> [Option<u8>; 16] {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Chaining patches the last four bytes of a block's jump to its link stub: dynasm must
    /// emit jumps to labels as JMP rel32, never a short form.
    #[test]
    fn label_jumps_are_rel32() {
        let mut ops = Asm::new(0x1000);
        let near = ops.new_dynamic_label();
        dynasm!(ops ; .arch x64 ; jmp =>near ; =>near);
        let code = ops.finalize().unwrap();
        assert_eq!(code, [0xe9, 0, 0, 0, 0]);
    }
}
