//! Translated blocks by guest physical address and RIP, in one bounded code buffer; the
//! trampoline into them and the dispatcher loop that finds, translates and chains them.
//!
//! A block is valid while its code page's word (emu-core's `CodePages`) is the one it was
//! translated under: any store to the page, by this vCPU or another, moves the word; the
//! dispatcher then translates the block again, and a block reached through a chained jump
//! checks the word itself on entry. The key includes RIP because relative targets depend on
//! the linear address the same physical bytes run at.
//!
//! Chaining: a block's jump to a constant target in its own linear page first goes to a
//! stub that reports the jump to the dispatcher; once the target's block exists (same
//! physical page, same word), the dispatcher patches the jump to go there directly. Only
//! same-page targets are chained, so a chained jump never needs a new address translation:
//! the page's mapping and execute permission are the ones the dispatcher checked when it
//! entered the chain. All blocks of a page go stale together (one word per page), so a
//! stale block only ever chains to stale blocks, whose entry check sends control back.
//!
//! When the buffer passes [`MAX_CODE_BYTES`] or the map [`MAX_BLOCKS`], everything but the
//! trampoline is dropped and translation starts over (the cache never grows without
//! bound, whatever the guest does).

use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi};
use iced_x86::{Decoder, DecoderOptions};

use emu_core::interp::cpu::{flags, sreg, Mode};
use emu_core::interp::fasthash::FastMap;
use emu_core::interp::fault::Stop;
use emu_core::interp::Interp;

use crate::code_buffer::CodeBuffer;
use crate::helpers::{self, Ctx, REGS, TLB};
use crate::translate::{linear_rip, supported, Asm, BlockBuilder, BlockEnv, MAX_BLOCK};
use crate::Stats;

/// The code buffer's size: what a boot of the demo guest and its benchmark fill is about
/// 65 MB (blocks average 750 bytes with their slow paths), and a flush costs translating
/// the whole working set again, so four times that. Only the pages written take memory.
const CAPACITY: usize = 256 << 20;
/// Host code bytes kept at most before the cache starts over (room for the largest block
/// beyond it).
const MAX_CODE_BYTES: usize = CAPACITY - (1 << 20);
/// Blocks (and "cannot translate here" marks) kept at most.
const MAX_BLOCKS: usize = 1 << 18;
/// Instructions decoded for the interpreter in place at most (40 bytes each) before
/// everything is dropped.
const MAX_DECODED: usize = 1 << 20;

#[derive(Clone, Copy)]
struct Block {
    /// The block's executable address; `None`: the instruction here is not translated (the
    /// interpreter runs it).
    entry: Option<usize>,
    /// Where chained jumps from the same code page enter it (see `BlockBuilder::build`):
    /// backward ones through the run's budget check, forward ones past it.
    chain: usize,
    forward: usize,
    /// The code page's word (its address: one per physical page) and its value then.
    word_ptr: usize,
    word: u32,
    /// For a block that is not there: the instruction the interpreter runs instead (for the
    /// statistics), as iced's mnemonic and operand size.
    fallback: (iced_x86::Mnemonic, u8),
    /// A block of one instruction that reaches into the next page: that page.
    page2: Option<Page2>,
}

/// The second page of a block whose instruction crosses into it: its code word (address
/// and value at translation), its linear and physical address, and where the block's stamp
/// (`Ctx::code_stamp` when the mapping was last checked) is and what it holds.
#[derive(Clone, Copy)]
struct Page2 {
    word_ptr: usize,
    word: u32,
    linear: u64,
    phys: u64,
    stamp_at: usize,
    stamp: u64,
}

/// `Ctx::code_stamp` now: the MMU's generation (any mapping may have changed since another),
/// the privilege (execute permission differs) and the A20 gate (it masks every translation
/// and moves no generation).
fn code_stamp(interp: &Interp) -> u64 {
    interp.mmu.generation << 2
        | u64::from(interp.cpu.cpl() == 3) << 1
        | u64::from(interp.mem.a20_mask() & (1 << 20) != 0)
}

/// A jump waiting to be chained: its displacement's address, and the flush epoch, code
/// page (its word's address) and word of the block it is in.
#[derive(Clone, Copy)]
struct Link {
    field: usize,
    /// The jump goes forward in its page (see `translate::FORWARD_LINK`).
    forward: bool,
    epoch: u64,
    word_ptr: usize,
    word: u32,
}

pub struct Cache {
    code: CodeBuffer,
    /// The trampoline: `enter(ctx, block)` and the exit every block jumps to.
    enter: usize,
    exit: usize,
    /// Bytes kept across flushes (the trampoline).
    keep: usize,
    /// Bumped by every flush (a pending link from before one is void).
    epoch: u64,
    /// The interpreter the blocks were made for (they hold pointers into its group's
    /// code-page map): another one empties the cache.
    identity: u64,
    /// By physical address, RIP and code mode (`code_mode`'s key).
    blocks: FastMap<(u64, u64, u64), Block>,
    tlb: crate::tlb::Tlb,
    /// The instructions blocks hand to the interpreter in place, decoded once at
    /// translation (blocks pass their index: `helpers::interpret_decoded`); emptied with
    /// the code.
    decoded: Vec<(iced_x86::Instruction, Option<u16>)>,
}

/// The trampoline's signature: the context and a block's address.
type EnterFn = extern "sysv64" fn(*mut Ctx, usize);

/// The bit-counting instructions translated blocks run on the host (see
/// `BlockEnv::bit_count`).
fn bit_counts(interp: &Interp) -> u8 {
    use crate::translate::{HAS_LZCNT, HAS_POPCNT, HAS_TZCNT};
    use emu_core::cpu_model::{ebx7, ecx1, ecx81};
    let f = &interp.model.features;
    let mut has = 0;
    if f.ecx1 & ecx1::POPCNT != 0 && std::arch::is_x86_feature_detected!("popcnt") {
        has |= HAS_POPCNT;
    }
    if f.ecx81 & ecx81::LZCNT != 0 && std::arch::is_x86_feature_detected!("lzcnt") {
        has |= HAS_LZCNT;
    }
    if f.ebx7 & ebx7::BMI1 != 0 && std::arch::is_x86_feature_detected!("bmi1") {
        has |= HAS_TZCNT;
    }
    has
}

/// The code the translator takes in the current mode, as its bits (64, 32 or 16) and a key
/// for the block map and the jump cache (the bits, and for 16-bit code CS's base: blocks
/// of 16-bit code are specialised on it, their IPs meaning nothing without it).
///
/// - 64-bit code.
/// - 32-bit code (protected or compatibility mode) whose CS, DS, ES and SS are flat — base
///   0, a 4 GiB limit, DS, ES and SS usable, writable and expand-up, a 32-bit stack — so
///   blocks add no segment base but FS's and GS's and check no limit but theirs
///   (`Ctx::seg_ends`): what Linux runs, kernel and user, 32-bit or compatibility.
/// - 16-bit code (real, virtual-8086, or protected mode with a 16-bit CS) with a 16-bit
///   stack and a CS limit covering every IP: blocks add every segment's base and check its
///   limit.
///
/// `None`: the interpreter runs (32-bit code with other segments, 16-bit code with a
/// 32-bit stack).
fn code_mode(cpu: &emu_core::interp::cpu::Cpu) -> Option<(u32, u64)> {
    let cs = &cpu.seg[sreg::CS];
    let sixteen =
        || (!cpu.seg[sreg::SS].db && cs.limit >= 0xffff).then_some((16, 16 | cs.base << 8));
    match cpu.mode() {
        Mode::Long64 => Some((64, 64)),
        Mode::Real | Mode::Virtual8086 => sixteen(),
        Mode::Protected | Mode::Compatibility if !cs.db => sixteen(),
        Mode::Protected | Mode::Compatibility => {
            let flat = |s: &emu_core::state::Segment| s.base == 0 && s.limit == u32::MAX;
            let data = |s: &emu_core::state::Segment| {
                flat(s) && !s.unusable && s.present && s.s && s.type_ & 0xe == 0x2
            };
            (!cs.l
                && flat(cs)
                && [sreg::DS, sreg::ES, sreg::SS]
                    .iter()
                    .all(|&r| data(&cpu.seg[r]))
                && cpu.seg[sreg::SS].db)
                .then_some((32, 32))
        }
    }
}

/// One past the highest offset an access through segment `s` may reach inline, for reads and
/// for writes (see `Ctx::seg_ends`): in real and virtual-8086 mode its limit (the
/// interpreter checks nothing else there); in protected modes the limit of a usable
/// expand-up data segment or readable code segment (0 — the slow path — for anything else,
/// whose checks the interpreter makes).
fn segment_ends(mode: Mode, s: &emu_core::state::Segment) -> [u64; 2] {
    if matches!(mode, Mode::Real | Mode::Virtual8086) {
        return [u64::from(s.limit) + 1; 2];
    }
    if s.unusable || !s.present || !s.s {
        return [0, 0];
    }
    let end = u64::from(s.limit) + 1;
    let code = s.type_ & 0x8 != 0;
    match (code, s.type_ & 0x4 != 0, s.type_ & 0x2 != 0) {
        // Readable code: reads only.
        (true, _, true) => [end, 0],
        (true, _, false) => [0, 0],
        // Expand-down data: the interpreter's.
        (false, true, _) => [0, 0],
        (false, false, writable) => [end, if writable { end } else { 0 }],
    }
}

impl Cache {
    pub fn new() -> std::io::Result<Cache> {
        let mut code = CodeBuffer::new(CAPACITY)?;
        let base = code.next_addr();
        let mut ops = Asm::new(base);
        let exit = ops.new_dynamic_label();
        // Callee-saved registers hold the block's context (see `translate`); the extra 8
        // bytes keep the stack 16-byte aligned at the helpers' call sites.
        dynasm!(ops
            ; .arch x64
            ; push rbx
            ; push rbp
            ; push r12
            ; push r13
            ; push r14
            ; push r15
            ; sub rsp, 8
            ; mov rbx, rdi
            ; mov r12, [rbx + REGS]
            ; mov rbp, [rbx + TLB]
        );
        // Blocks keep the status flags in R15 (see `translate::load_r15_from_rflags`).
        crate::translate::load_r15_from_rflags(&mut ops);
        dynasm!(ops
            ; .arch x64
            ; jmp rsi
            ; =>exit
            ; add rsp, 8
            ; pop r15
            ; pop r14
            ; pop r13
            ; pop r12
            ; pop rbp
            ; pop rbx
            ; ret
        );
        let exit_at = ops
            .labels()
            .resolve_dynamic(exit)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let bytes = ops
            .finalize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let at = code
            .append(&bytes)
            .ok_or_else(|| std::io::Error::other("code buffer too small"))?;
        let keep = code.len();
        Ok(Cache {
            enter: code.addr(at),
            exit: code.addr(at + exit_at.0),
            keep,
            code,
            epoch: 0,
            identity: 0,
            blocks: FastMap::default(),
            tlb: crate::tlb::Tlb::new(),
            decoded: Vec::new(),
        })
    }

    fn flush(&mut self, stats: &mut Stats) {
        self.code.truncate(self.keep);
        self.blocks.clear();
        self.decoded.clear();
        self.tlb.forget_jumps();
        self.epoch += 1;
        stats.flushes += 1;
    }

    /// Translates the block at `phys` (RIP `rip`) of `bits`-bit code (`mode`: `code_mode`'s
    /// key).
    fn translate(
        &mut self,
        interp: &mut Interp,
        phys: u64,
        rip: u64,
        (bits, mode): (u32, u64),
        stats: &mut Stats,
    ) -> Block {
        if self.code.len() > MAX_CODE_BYTES.min(self.code.capacity())
            || self.blocks.len() > MAX_BLOCKS
            || self.decoded.len() > MAX_DECODED
        {
            self.flush(stats);
        }
        let none = |word, fallback| Block {
            entry: None,
            chain: 0,
            forward: 0,
            word_ptr: 0,
            word,
            fallback,
            page2: None,
        };
        // Marked before the bytes are read, so a later store moves the word.
        let (Some(word), Some(word_ptr)) = (
            interp.mark_code(phys),
            interp.code_word_ref(phys).map(|w| w as *const _ as usize),
        ) else {
            return none(0, (iced_x86::Mnemonic::INVALID, 0));
        };
        let mut bytes = vec![0u8; (0x1000 - (phys & 0xfff)) as usize];
        interp.mem.read(phys, &mut bytes);
        let mut decoder = Decoder::with_ip(bits, &bytes, rip, DecoderOptions::NONE);
        let mut instrs = Vec::new();
        let mut fallback = (iced_x86::Mnemonic::INVALID, 0);
        // The first instruction is cut by the end of the page (not invalid within it).
        let mut cut = false;
        while instrs.len() < MAX_BLOCK && decoder.can_decode() {
            let i = decoder.decode();
            // Invalid includes an instruction cut by the end of the page.
            if i.is_invalid() {
                cut = instrs.is_empty()
                    && decoder.last_error() == iced_x86::DecoderError::NoMoreBytes;
                break;
            }
            // EIP wraps at 4 GiB, IP at 64 KiB: the interpreter takes the instructions
            // reaching there.
            if (bits == 32 && i.next_ip() > u64::from(u32::MAX))
                || (bits == 16 && i.next_ip() > 0xffff)
            {
                fallback = crate::kind(&i);
                break;
            }
            match supported(&i) {
                None => {
                    fallback = crate::kind(&i);
                    break;
                }
                Some(flow) => {
                    instrs.push(i);
                    // A Jcc is a side exit: the block goes on with its not-taken way.
                    if flow == crate::translate::Flow::End && !i.is_jcc_short_or_near() {
                        break;
                    }
                }
            }
        }
        // The first instruction reaches into the next page: a block of its own, if that page
        // is mapped, executable and RAM.
        let mut page2 = None;
        if cut {
            if let Some((i, p2)) = Self::crossing(interp, &bytes, rip, bits, mode) {
                instrs.push(i);
                page2 = Some(p2);
            }
        }
        let block = if instrs.is_empty() {
            none(word, fallback)
        } else {
            let env = BlockEnv {
                base: self.code.next_addr(),
                exit: self.exit,
                word_ptr,
                word,
                bit_count: bit_counts(interp),
                bits,
                cs_base: if bits == 16 {
                    interp.cpu.seg[sreg::CS].base
                } else {
                    0
                },
                cmov: interp.model.has_edx1(emu_core::cpu_model::edx1::CMOV),
                sahf64: interp.model.features.ecx81 & emu_core::cpu_model::ecx81::LAHF_LM != 0,
                page2: page2.map(|p: Page2| (p.word_ptr, p.word, p.stamp)),
                decoded_base: self.decoded.len(),
            };
            let mut ops = Asm::new(env.base);
            let entries = BlockBuilder::build(&mut ops, &env, &instrs);
            let code = match ops.finalize() {
                Ok(code) => code,
                Err(e) => {
                    log::warn!(
                        "translator: cannot assemble a block at {rip:#x} ({e}); interpreting"
                    );
                    return none(word, fallback);
                }
            };
            let Some(at) = self.code.append(&code) else {
                // Past the bound's margin (a block larger than 1 MiB cannot happen): start
                // over; the block is translated again at its next lookup.
                self.flush(stats);
                return none(word, fallback);
            };
            // With each instruction its x87 opcode, from the bytes it was decoded from.
            self.decoded.extend(entries.decoded.iter().map(|i| {
                let at = i.ip().wrapping_sub(rip) as usize;
                // (None for one reaching into the next page: the interpreter reads it.)
                let fop = bytes
                    .get(at..at + i.len())
                    .map(emu_core::interp::x87_opcode);
                (*i, fop)
            }));
            stats.blocks += 1;
            stats.translated_instructions += instrs.len() as u64;
            Block {
                entry: Some(self.code.addr(at)),
                chain: self.code.addr(at + entries.chain),
                forward: self.code.addr(at + entries.forward),
                word_ptr,
                word,
                fallback,
                page2: page2.and_then(|p| {
                    Some(Page2 {
                        stamp_at: self.code.addr(at + entries.stamp?),
                        ..p
                    })
                }),
            }
        };
        self.blocks.insert((phys, rip, mode), block);
        block
    }

    /// The instruction at `rip` whose bytes run from `tail` (the rest of its page) into the
    /// next page, if a block may hold it: that page mapped for execution now, RAM, marked as
    /// holding code (before its bytes are read), and the instruction one the translator
    /// takes.
    fn crossing(
        interp: &mut Interp,
        tail: &[u8],
        rip: u64,
        bits: u32,
        mode: u64,
    ) -> Option<(iced_x86::Instruction, Page2)> {
        use emu_core::interp::mmu::Access;
        if tail.len() >= 15 {
            return None;
        }
        let cs_base = if bits == 16 { mode >> 8 } else { 0 };
        let linear = linear_rip(
            bits,
            0,
            (linear_rip(bits, cs_base, rip) | 0xfff).wrapping_add(1),
        );
        let privilege = interp.privilege();
        let phys = interp
            .mmu
            .translate(
                &mut interp.cpu,
                &interp.mem,
                linear,
                Access::Execute,
                privilege,
            )
            .ok()?;
        let word = interp.mark_code(phys)?;
        let word_ptr = interp.code_word_ref(phys)? as *const _ as usize;
        let mut bytes = tail.to_vec();
        let mut next = [0u8; 15];
        interp.mem.read(phys, &mut next[..15 - tail.len()]);
        bytes.extend_from_slice(&next[..15 - tail.len()]);
        let mut decoder = Decoder::with_ip(bits, &bytes, rip, DecoderOptions::NONE);
        let i = decoder.decode();
        let wraps = (bits == 32 && i.next_ip() > u64::from(u32::MAX))
            || (bits == 16 && i.next_ip() > 0xffff);
        if i.is_invalid() || i.len() <= tail.len() || wraps || supported(&i).is_none() {
            return None;
        }
        let page2 = Page2 {
            word_ptr,
            word,
            linear,
            phys,
            stamp_at: 0,
            stamp: code_stamp(interp),
        };
        Some((i, page2))
    }

    /// Runs translated code from the current state until about `budget` instructions have
    /// retired, a block ends on a store into its own code or an exception, or the next
    /// instruction is not translated (then the interpreter takes it; 0 if that was the
    /// first).
    pub fn run(
        &mut self,
        interp: &mut Interp,
        budget: u32,
        stats: &mut Stats,
    ) -> Result<u32, Stop> {
        let mode = {
            let cpu = &interp.cpu;
            match code_mode(cpu) {
                Some(mode) if !cpu.flag(flags::TF) && cpu.dr[7] & 0xff == 0 => mode,
                _ => {
                    stats.declined += 1;
                    return Ok(0);
                }
            }
        };
        if interp.identity() != self.identity {
            if self.identity != 0 {
                self.flush(stats);
            }
            self.identity = interp.identity();
        }
        // The vCPU comes back here right after a run that ended before an instruction no
        // block holds: the interpreter's, without setting up a run.
        if let Ok((phys, word)) = interp.code_location() {
            if let Some(b) = self.blocks.get(&(phys, interp.cpu.rip, mode.1)) {
                if b.word == word
                    && b.entry.is_none()
                    && b.fallback.0 != iced_x86::Mnemonic::INVALID
                {
                    *stats.fallbacks.entry(b.fallback).or_default() += 1;
                    stats.declined += 1;
                    return Ok(0);
                }
            }
        }
        self.tlb.revalidate(interp);
        self.tlb.code_mode(mode.1);
        let cpu = &interp.cpu;
        let cpu_mode = cpu.mode();
        let seg_base = std::array::from_fn(|s| cpu.seg[s].base);
        let seg_ends = std::array::from_fn(|s| segment_ends(cpu_mode, &cpu.seg[s]));
        let cs_base = if mode.0 == 16 {
            cpu.seg[sreg::CS].base
        } else {
            0
        };
        let sse_ok = {
            use crate::translate::{SSE_BASE, SSE_SSE42, SSE_SSSE3};
            use emu_core::cpu_model::{ecx1, edx1};
            use emu_core::interp::simd::{CR0_EM, CR0_TS, CR4_OSFXSR};
            let m = interp.model;
            if cpu.cr0 & (CR0_EM | CR0_TS) == 0
                && cpu.cr4 & CR4_OSFXSR != 0
                && m.has_edx1(edx1::SSE)
                && m.has_edx1(edx1::SSE2)
            {
                // The host runs them as they are: it needs them too.
                let ssse3 = m.has_ecx1(ecx1::SSSE3) && std::arch::is_x86_feature_detected!("ssse3");
                let sse42 =
                    m.has_ecx1(ecx1::SSE42) && std::arch::is_x86_feature_detected!("sse4.2");
                SSE_BASE | if ssse3 { SSE_SSSE3 } else { 0 } | if sse42 { SSE_SSE42 } else { 0 }
            } else {
                0
            }
        };
        let p: *mut Interp = interp;
        let mut ctx = Ctx {
            // SAFETY: field addresses of the live interpreter behind `p`; no reference to it
            // is used while translated code runs (helpers reach it through `ctx.interp`).
            regs: unsafe { std::ptr::addr_of_mut!((*p).cpu.regs) }.cast(),
            status: helpers::OK,
            scratch: [0; 2],
            tlb: self.tlb.base(),
            seg_base,
            seg_ends,
            retired: 0,
            limit: u64::from(budget),
            link: 0,
            jumps: self.tlb.jumps(),
            // SAFETY: as above.
            xmm: unsafe { std::ptr::addr_of_mut!((*p).cpu.fpu.xmm) }.cast(),
            sse_ok: u64::from(sse_ok),
            interp: p,
            interpreted: 0,
            interpreted_kinds: log::log_enabled!(target: "ferrite::stats", log::Level::Info)
                .then(|| std::mem::take(&mut stats.interpreted_kinds)),
            tlb_owner: &mut self.tlb,
            fault: None,
            code_word: std::ptr::null(),
            word: 0,
            code_stamp: code_stamp(interp),
            decoded: self.decoded.as_ptr(),
            decoded_len: self.decoded.len(),
        };
        let mut link: Option<Link> = None;
        // Instructions the interpreter ran in the loop (counted in its statistics already),
        // and how such a one stopped the vCPU (none of these instructions should).
        let mut stepped = 0u64;
        let mut stop = None;
        let result = loop {
            // SAFETY: no translated code runs now; the reference ends before the next run.
            let interp = unsafe { &mut *p };
            // A fetch fault is the interpreter's to raise.
            let Ok((phys, word)) = interp.code_location() else {
                break Ok(());
            };
            let rip = interp.cpu.rip;
            let block = match self.blocks.get(&(phys, rip, mode.1)) {
                Some(b)
                    if b.word == word
                        && b.page2.is_none_or(|p| interp.code_word(p.phys) == p.word) =>
                {
                    *b
                }
                stale => {
                    if stale.is_some() {
                        stats.invalidated += 1;
                    }
                    self.translate(interp, phys, rip, mode, stats)
                }
            };
            // A block reaching into the next page runs under this run's stamp only if that
            // page still maps where it did (else it is translated again).
            let block = match block.page2 {
                Some(p) if p.stamp != ctx.code_stamp => {
                    use emu_core::interp::mmu::Access;
                    let privilege = interp.privilege();
                    let now = interp.mmu.translate(
                        &mut interp.cpu,
                        &interp.mem,
                        p.linear,
                        Access::Execute,
                        privilege,
                    );
                    if matches!(now, Ok(at) if at == p.phys) {
                        self.code.patch(p.stamp_at, &ctx.code_stamp.to_le_bytes());
                        let b = Block {
                            page2: Some(Page2 {
                                stamp: ctx.code_stamp,
                                ..p
                            }),
                            ..block
                        };
                        self.blocks.insert((phys, rip, mode.1), b);
                        b
                    } else {
                        stats.invalidated += 1;
                        self.translate(interp, phys, rip, mode, stats)
                    }
                }
                _ => block,
            };
            let Some(entry) = block.entry else {
                *stats.fallbacks.entry(block.fallback).or_default() += 1;
                // An instruction a block could hold but this one cannot (it crosses into the
                // next page) runs here, without leaving the run; anything else is the
                // vCPU loop's.
                let crossing = block.fallback.0 == iced_x86::Mnemonic::INVALID
                    && interp
                        .peek_instruction()
                        .is_some_and(|i| supported(&i).is_some());
                if !crossing {
                    break Ok(());
                }
                // A jump waiting to be chained to this RIP has no block to go to.
                link = None;
                match interp.execute_one() {
                    Ok(()) => {
                        stepped += 1;
                        if ctx.retired + stepped >= u64::from(budget) {
                            break Ok(());
                        }
                        continue;
                    }
                    Err(Stop::Fault(f)) => break Err(Some(f)),
                    Err(e) => {
                        stop = Some(e);
                        break Ok(());
                    }
                }
            };
            if let Some(l) = link.take() {
                if l.epoch == self.epoch && l.word_ptr == block.word_ptr && l.word == block.word {
                    let to = if l.forward {
                        block.forward
                    } else {
                        block.chain
                    };
                    let rel = (to as i64 - (l.field as i64 + 4)) as i32;
                    self.code.patch(l.field, &rel.to_le_bytes());
                    stats.chained += 1;
                }
            }
            let linear = linear_rip(mode.0, cs_base, rip);
            self.tlb
                .remember_jump(rip, entry, interp.mmu.is_global(linear));
            ctx.tlb_owner = &mut self.tlb;
            ctx.tlb = self.tlb.base();
            ctx.jumps = self.tlb.jumps();
            (ctx.decoded, ctx.decoded_len) = (self.decoded.as_ptr(), self.decoded.len());
            // SAFETY: `self.enter` is the trampoline emitted into this buffer with the
            // `EnterFn` signature, and `entry` a block emitted for the current flush epoch
            // (the map is cleared at every flush), both in the executable view, which stays
            // mapped while `self` lives. The context's pointers are valid for the call.
            let enter: EnterFn = unsafe { std::mem::transmute(self.enter) };
            enter(&mut ctx, entry);
            stats.dispatches += 1;
            match ctx.status {
                helpers::FAULT => break Err(ctx.fault.take()),
                helpers::CODE_WRITTEN | helpers::LEAVE => break Ok(()),
                _ => {}
            }
            if ctx.link != 0 {
                link = Some(Link {
                    field: (ctx.link & !crate::translate::FORWARD_LINK) as usize,
                    forward: ctx.link & crate::translate::FORWARD_LINK != 0,
                    epoch: self.epoch,
                    word_ptr: ctx.code_word as usize,
                    word: ctx.word,
                });
                ctx.link = 0;
            }
            if ctx.retired >= u64::from(budget) {
                break Ok(());
            }
        };
        let retired = ctx.retired;
        stats.instructions += retired;
        stats.stepped += stepped;
        stats.interpreted += ctx.interpreted;
        if let Some(kinds) = ctx.interpreted_kinds.take() {
            stats.interpreted_kinds = kinds;
        }
        interp.stats.instructions += retired;
        if let Some(e) = stop {
            return Err(e);
        }
        let retired = retired + stepped;
        if retired > 0 {
            interp.interrupt_shadow = false;
        } else if result.is_ok() {
            stats.declined += 1;
        }
        match result {
            Ok(()) => Ok(retired as u32),
            Err(fault) => {
                stats.faults += 1;
                interp.interrupt_shadow = false;
                Err(Stop::Fault(
                    fault.unwrap_or_else(|| emu_core::interp::fault::Fault::gp(0)),
                ))
            }
        }
    }
}
