//! Guest instructions to host code.
//!
//! A block is up to [`MAX_BLOCK`] instructions of 64-bit code in one page: instructions with
//! host code of their own (`classify::native`, and the SSE ones in `sse`) and instructions
//! the interpreter runs in place (`classify::interpreted`); it ends before anything else, at
//! an unconditional branch, or at the end of its page (a Jcc inside is a side exit).
//! ARCHITECTURE.md ("The translator") describes the design. The builder's parts: `classify`
//! (what a block takes), `flags`, `registers` (operands and the host copies), `memory`
//! (the soft TLB and slow paths), `sse`, `compound` (atomics, BT on memory, MUL/DIV) and
//! `strings` (REP STOS/MOVS, the interpreter in place); this module builds the block and
//! its exits and dispatches each instruction.
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
    self, JUMPS, LIMIT, LINK, RETIRED, SCRATCH0, SCRATCH1, SEG_BASE, SEG_ENDS, STATUS,
};

mod classify;
mod compound;
mod flags;
mod memory;
mod registers;
mod sse;
mod strings;

use classify::*;
use flags::*;
use sse::*;

pub use classify::supported;
pub use flags::load_r15_from_rflags;
pub use sse::{SSE_BASE, SSE_SSE42, SSE_SSSE3};

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

/// The status flags iced says `i` writes (set, cleared, computed or left undefined).
/// Set in a link stub's `Ctx::link`: the jump goes forward in its page, so the dispatcher
/// chains it past the target's budget check (see `BlockBuilder::build`).
pub const FORWARD_LINK: u64 = 1 << 63;

/// What a memory access's slow path calls (the interpreter's full path).
#[derive(Clone, Copy)]
enum SlowCall {
    /// `load(ctx, seg, RDX, size)` into RAX.
    Load { seg: i32, size: u32 },
    /// `store(ctx, seg, RDX, size, RAX)`.
    Store { seg: i32, size: u32 },
    /// `push(ctx, RAX, word)`: the store and RSP's update.
    Push,
    /// `ret(ctx, word)` into RAX: the load, the canonical check and RSP's update.
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
    /// The dirty copies where the fast path branched off (flushed before the helper).
    dirty: u16,
    /// Flags whose capture was left to the slow paths (see `BlockBuilder::remat`): how to
    /// compute them again before the helper, whose fault exit needs them.
    remat: Option<Remat>,
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
    /// 64: 64-bit code; 32: flat 32-bit code: 32-bit addresses, EIP and ESP, FS and GS
    /// with their bases and limits (`Ctx::seg_ends`); 16: 16-bit code: IP and SP, every
    /// segment with its base and limit (see `cache::code_mode`).
    pub bits: u32,
    /// CS's base (16-bit code's linear addresses are IP plus it; 0 in 32- and 64-bit code).
    pub cs_base: u64,
    /// The guest's model has CMOV (every 64-bit one does; a Pentium's 32-bit code raises
    /// #UD, which the interpreter in place does).
    pub cmov: bool,
    /// The guest's model has LAHF/SAHF in 64-bit code (LAHF_LM; 32- and 16-bit code always
    /// have them).
    pub sahf64: bool,
    /// For a block of one instruction that reaches into the next page: that page's code
    /// word (address, value) and the stamp (`Ctx::code_stamp`) its mapping was checked
    /// under. Every entry checks both (the stamp is patched by the dispatcher when it finds
    /// the mapping unchanged under a new one).
    pub page2: Option<(usize, u32, u64)>,
    /// Where the block's instructions for the interpreter in place go in the cache's
    /// decoded instructions (`Entries::decoded` is appended there).
    pub decoded_base: usize,
}

/// Where a block was emitted: its chain entries (backward and forward jumps) and, for a
/// block reaching into the next page, the offset of its stamp (an imm64).
pub struct Entries {
    pub chain: usize,
    pub forward: usize,
    pub stamp: Option<usize>,
    /// The instructions the block hands to the interpreter in place, by index from
    /// `BlockEnv::decoded_base`.
    pub decoded: Vec<Instruction>,
}

/// The linear address of `rip` in `bits`-bit code whose CS has base `cs_base` (0 outside
/// 16-bit code): below 4 GiB outside 64-bit code.
pub fn linear_rip(bits: u32, cs_base: u64, rip: u64) -> u64 {
    if bits == 64 {
        rip
    } else {
        cs_base.wrapping_add(rip) & 0xffff_ffff
    }
}

impl BlockEnv {
    /// The linear address of `rip` (16-bit code's IP is an offset into CS).
    pub fn linear(&self, rip: u64) -> u64 {
        linear_rip(self.bits, self.cs_base, rip)
    }
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
    /// Guest registers (bits by index) whose copy is newer than `Cpu::regs`: copies are
    /// written back lazily. Instructions whose code reads and writes guest registers only
    /// through the copies (`keeps_copies`) leave them dirty; everything else — another
    /// instruction, a helper call (a slow path flushes the set it branched off with), a
    /// jump out of the block — flushes them first, so `Cpu::regs` is exact wherever
    /// anything but the copies could look at it.
    dirty: u16,
    /// The instructions run by the interpreter in place (see `Entries::decoded`).
    decoded: Vec<Instruction>,
    /// The flags of an ALU operation on register copies that only a fault could see (the
    /// instructions after it overwrite them all before anything reads them, and between
    /// them only the memory accesses of simple loads and stores could fault): not
    /// captured, but computed again in the slow paths of those accesses, up to the
    /// instruction index that ends the window. The capture was a tenth of gzip's
    /// translated time.
    remat: Option<(Remat, usize)>,
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
    pub fn build(ops: &'a mut Asm, env: &'a BlockEnv, instrs: &[Instruction]) -> Entries {
        let mut b = BlockBuilder {
            ops,
            env,
            page: instrs.first().map_or(0, |i| env.linear(i.ip()) >> 12),
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
            dirty: 0,
            decoded: Vec::new(),
            remat: None,
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
        // An instruction reaching into the next page: that page's word, and the stamp of
        // its mapping (whatever way the block was entered).
        let mut stamp_at = None;
        if let Some((ptr2, word2, stamp)) = env.page2 {
            let (ptr2, word2, stamp) = (ptr2 as i64, word2 as i32, stamp as i64);
            dynasm!(b.ops
                ; .arch x64
                ; mov rax, QWORD ptr2
                ; cmp DWORD [rax], word2
                ; jne =>refuse
                ; mov rax, QWORD stamp
            );
            stamp_at = Some(b.ops.offset().0 - 8);
            dynasm!(b.ops
                ; .arch x64
                ; cmp rax, [rbx + helpers::CODE_STAMP]
                ; jne =>refuse
            );
        }
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
        // Everything after the body starts where `Cpu::regs` was exact: a slow path
        // flushes the set it recorded, exits follow helper calls (which were preceded by
        // flushes), link stubs follow jumps out (which flush).
        debug_assert_eq!(b.dirty, 0, "a block ends with dirty copies");
        b.dirty = 0;
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
        Entries {
            chain: chain_entry,
            forward: forward_entry,
            stamp: stamp_at,
            decoded: b.decoded,
        }
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
        self.flush_dirty();
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
        self.flush_dirty();
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
        self.flush_dirty();
        let count = count as i32;
        dynasm!(self.ops ; .arch x64 ; add QWORD [rbx + RETIRED], count);
        self.continue_to(rip);
    }

    /// On to the constant `rip` (its instructions counted; RIP is stored only if the jump
    /// goes back to the dispatcher).
    fn continue_to(&mut self, rip: u64) {
        if self.env.linear(rip) >> 12 != self.page {
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

    /// RAX = the target of an indirect JMP or CALL, checked to be canonical (else #GP(0)
    /// at the instruction); in 32-bit code any (zero-extended) target is within CS.
    fn indirect_target(&mut self, i: &Instruction, k: u32) {
        if self.env.bits != 64 {
            self.load_dest(i, k, self.env.bits / 8);
            return;
        }
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

    /// Whether the host runs `i` as translated: a bit count needs the model's and the
    /// host's instruction (`BlockEnv::bit_count`).
    fn runs_natively(&self, i: &Instruction) -> bool {
        let need = match i.mnemonic() {
            M::Popcnt => HAS_POPCNT,
            M::Lzcnt => HAS_LZCNT,
            M::Tzcnt => HAS_TZCNT,
            m if is_cmovcc(m) => return self.env.cmov && native(i).is_some(),
            M::Sahf => return self.env.bits != 64 || self.env.sahf64,
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
        if self.remat.is_some_and(|(_, end)| self.at > end) {
            self.remat = None;
        }
        if !(natively && keeps_copies(i)) {
            self.flush_dirty();
        }
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
            if self.env.bits == 16 {
                // Offsets into segments with bases: the interpreter's.
                self.flush_flags();
                self.interpret_string(i, k, Some(movs));
            } else {
                self.rep_string(i, k, elem, movs);
            }
            return Flow::Next;
        }
        let size = op_size(i).unwrap_or(8);
        match i.mnemonic() {
            M::Nop | M::Endbr64 | M::Endbr32 => {}
            M::Cld => dynasm!(self.ops ; .arch x64 ; and DWORD [r12 + FLAGS_AT], !0x400),
            M::Std => dynasm!(self.ops ; .arch x64 ; or DWORD [r12 + FLAGS_AT], 0x400),
            M::Sahf => {
                // SF ZF AF PF CF from AH, straight into RFLAGS (bit 1 stays set), as an
                // instruction the interpreter runs leaves them: pending flags merged first,
                // none pending after.
                self.flush_flags_free_rax();
                self.live_flags = 0;
                dynasm!(self.ops
                    ; .arch x64
                    ; movzx eax, BYTE [r12 + 1]
                    ; and eax, 0xd5
                    ; or eax, 2
                    ; mov [r12 + FLAGS_AT], al
                );
            }
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
                            self.load_guest_rcx();
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
                match i.op_kind(0) {
                    OpKind::Register => {
                        let (r, _, _) = gpr(i.op_register(0)).expect("checked");
                        let off_r = 8 * r as i32;
                        dynasm!(self.ops ; .arch x64 ; mov rax, [r12 + off_r]);
                    }
                    // Its address from RSP before the push, as the guest computes it.
                    OpKind::Memory => self.load_mem(i, k, self.env.bits / 8, false),
                    _ => {
                        // Sign-extended to the stack's word (only its low bytes are stored).
                        let v = i.immediate(0) as i64;
                        match i32::try_from(v) {
                            Ok(v) => dynasm!(self.ops ; .arch x64 ; mov rax, v),
                            Err(_) => dynasm!(self.ops ; .arch x64 ; mov rax, QWORD v),
                        }
                    }
                }
                self.push_rax(i, k, false);
            }
            M::Pop if self.env.bits != 64 => {
                let word = self.env.bits / 8;
                let ss = emu_core::interp::cpu::sreg::SS as i32;
                self.load_sp();
                self.mem_load(i, k, ss, word);
                // Again: the slow path's call does not keep RDX.
                self.load_sp();
                self.step_sp(word as i32);
                self.store_sp();
                // POP ESP (SP): the loaded value wins (a 32-bit write zero-extends, a 16-bit
                // one keeps the rest).
                self.store_reg(i.op_register(0));
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
            M::Jmp if !is_direct(i) => {
                self.indirect_target(i, k);
                self.jump_indirect(k + 1);
                return Flow::End;
            }
            M::Call if !is_direct(i) => {
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
                self.jump_to(i.near_branch_target(), k + 1);
                return Flow::End;
            }
            M::Call => {
                let next = i.next_ip() as i64;
                dynasm!(self.ops ; .arch x64 ; mov rax, QWORD next);
                self.push_rax(i, k, true);
                // The push may have written the running block's code page: then on to the
                // target through the dispatcher, which sees the status.
                self.retire_at(i.near_branch_target(), k + 1);
                dynasm!(self.ops ; .arch x64 ; cmp QWORD [rbx + STATUS], 0);
                let leave = self.merge_exit();
                dynasm!(self.ops ; .arch x64 ; jne =>leave);
                self.continue_to(i.near_branch_target());
                return Flow::End;
            }
            M::Ret if self.env.bits != 64 => {
                // 32- and 16-bit code: any target is within CS (see `cache::code_mode`).
                let word = self.env.bits / 8;
                let ss = emu_core::interp::cpu::sreg::SS as i32;
                let (slow, back) = self.slow_path_for(i, k, SlowCall::Ret, false);
                self.load_sp();
                self.tlb_lookup(ss, word, false, slow);
                if word == 2 {
                    dynasm!(self.ops ; .arch x64 ; movzx eax, WORD [rsi]);
                } else {
                    dynasm!(self.ops ; .arch x64 ; mov eax, [rsi]);
                }
                self.step_sp(word as i32);
                self.store_sp();
                dynasm!(self.ops ; .arch x64 ; =>back);
                let done = (k + 1) as i32;
                dynasm!(self.ops ; .arch x64 ; add QWORD [rbx + RETIRED], done);
                self.jump_through_cache();
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
                let (before, unmerged, dirty) = (self.before, self.unmerged, self.dirty);
                if self.next.is_some() {
                    // A side exit: the block goes on with the next instruction (the taken
                    // way flushes the dirty copies; the other keeps them).
                    let on = self.ops.new_dynamic_label();
                    self.jcc(negate(i.condition_code()), on);
                    self.complete_flags();
                    self.jump_to(i.near_branch_target(), k + 1);
                    dynasm!(self.ops ; .arch x64 ; =>on);
                    (self.before, self.unmerged, self.dirty) = (before, unmerged, dirty);
                    return Flow::Next;
                }
                let taken = self.ops.new_dynamic_label();
                self.jcc(i.condition_code(), taken);
                self.complete_flags();
                self.jump_to(i.next_ip(), k + 1);
                dynasm!(self.ops ; .arch x64 ; =>taken);
                (self.before, self.unmerged, self.dirty) = (before, unmerged, dirty);
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
