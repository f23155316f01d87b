//! What translated code calls: guest memory and stack accesses through the interpreter (its
//! segmentation, paging, MMIO and code-page tracking), reporting faults and stores into the
//! block's own code page through the context.

use std::mem::offset_of;

use emu_core::interp::fault::{Fault, Stop};
use emu_core::interp::Interp;

/// `Ctx::status` values.
pub const OK: u64 = 0;
/// A helper raised an exception (`Ctx::fault`): the block stops before the instruction.
pub const FAULT: u64 = 1;
/// A store changed the block's own code page: the block stops after the instruction.
pub const CODE_WRITTEN: u64 = 2;
/// The instruction the interpreter ran in place may have raised an interrupt line (FERR#:
/// an x87 exception pending with CR0.NE clear): the block stops after it and the run ends,
/// so the vCPU takes the interrupt at the next instruction boundary, as the interpreter
/// alone does.
pub const LEAVE: u64 = 3;
/// FSW.ES: an unmasked x87 exception is pending.
const FSW_ES: u16 = 1 << 7;

/// The block's view of the vCPU. Translated code reads the first fields at fixed offsets.
#[repr(C)]
pub struct Ctx {
    /// `Cpu::regs` (blocks reach `Cpu::rip` and `Cpu::rflags` at fixed offsets from it).
    pub regs: *mut u64,
    /// [`OK`], [`FAULT`], [`CODE_WRITTEN`] or [`LEAVE`].
    pub status: u64,
    /// Scratch slots kept across helper calls.
    pub scratch: [u64; 2],
    /// The soft TLB's entries.
    pub tlb: *mut crate::tlb::Entry,
    /// The segment bases, by emu-core's `sreg` index (64-bit code adds only FS's and GS's;
    /// 32-bit code FS's and GS's, its others being 0; 16-bit code every one).
    pub seg_base: [u64; 6],
    /// One past the highest offset each segment admits inline, for reads and for writes
    /// (0: none — an unusable, absent or read-only segment: its accesses take the slow
    /// path, where the interpreter raises the fault). Read by 16-bit code for every
    /// segment, by 32-bit code for FS and GS; unused in 64-bit code.
    pub seg_ends: [[u64; 2]; 6],
    /// Guest instructions retired in this run; blocks stop chaining once it reaches
    /// `limit`.
    pub retired: u64,
    pub limit: u64,
    /// Set by an unchained jump's stub: the address of the jump's displacement, for the
    /// dispatcher to patch once it knows the target's block.
    pub link: u64,
    /// The jump cache: RIP tag and block address per entry.
    pub jumps: *mut [u64; 2],
    /// XMM0–15, and whether SSE instructions may run as host SSE in this run (nonzero when
    /// CR0.EM and TS are clear, CR4.OSFXSR is set and the CPU model has SSE and SSE2; else
    /// the interpreter runs them and raises what they raise).
    pub xmm: *mut u128,
    pub sse_ok: u64,
    /// The running block's code-page word and the value it was translated under (every
    /// block's entry stores its own, so a block reached through a chain or the jump cache
    /// checks its own page).
    pub code_word: *const std::sync::atomic::AtomicU32,
    pub word: u32,
    /// The MMU's generation, CPL 3 and the A20 gate this run (`cache::code_stamp`): a block
    /// whose instruction reaches into the next page runs only under the stamp its mapping
    /// of that page was checked under (see `Cache::run`).
    pub code_stamp: u64,
    pub interp: *mut Interp,
    /// Instructions the interpreter ran inside blocks (for the statistics), and, when the
    /// statistics are logged, which (by mnemonic and operand size).
    pub interpreted: u64,
    pub interpreted_kinds:
        Option<emu_core::interp::fasthash::FastMap<(iced_x86::Mnemonic, u8), u64>>,
    /// The soft TLB the slow paths fill.
    pub tlb_owner: *mut crate::tlb::Tlb,
    pub fault: Option<Fault>,
    /// The cache's decoded instructions (`Cache::decoded`), for
    /// [`interpret_decoded`]: refreshed before every entry into translated code (the
    /// vector only grows or empties in the dispatcher).
    pub decoded: *const (iced_x86::Instruction, Option<u16>),
    pub decoded_len: usize,
}

// The fields translated code reads, by offset.
pub const REGS: i32 = offset_of!(Ctx, regs) as i32;
pub const STATUS: i32 = offset_of!(Ctx, status) as i32;
pub const SCRATCH0: i32 = offset_of!(Ctx, scratch) as i32;
pub const SCRATCH1: i32 = SCRATCH0 + 8;
pub const TLB: i32 = offset_of!(Ctx, tlb) as i32;
/// Segment `s`'s base is at `SEG_BASE + 8 * s`; its read and write ends at `SEG_ENDS + 16 * s`
/// and 8 bytes on.
pub const SEG_BASE: i32 = offset_of!(Ctx, seg_base) as i32;
pub const SEG_ENDS: i32 = offset_of!(Ctx, seg_ends) as i32;
pub const RETIRED: i32 = offset_of!(Ctx, retired) as i32;
pub const LIMIT: i32 = offset_of!(Ctx, limit) as i32;
pub const LINK: i32 = offset_of!(Ctx, link) as i32;
pub const JUMPS: i32 = offset_of!(Ctx, jumps) as i32;
pub const XMM: i32 = offset_of!(Ctx, xmm) as i32;
pub const SSE_OK: i32 = offset_of!(Ctx, sse_ok) as i32;
pub const CODE_WORD: i32 = offset_of!(Ctx, code_word) as i32;
pub const WORD: i32 = offset_of!(Ctx, word) as i32;
pub const CODE_STAMP: i32 = offset_of!(Ctx, code_stamp) as i32;

/// The context behind `ctx` and its interpreter.
///
/// # Safety
/// `ctx` must be the context `Cache::run` passed to the block now running: valid, and its
/// `interp` the vCPU's interpreter, which nothing else uses while the block runs.
unsafe fn parts<'a>(ctx: *mut Ctx) -> (&'a mut Ctx, &'a mut Interp) {
    // SAFETY: the caller's contract; the interpreter is reached through the context's raw
    // pointer only for the duration of the helper.
    unsafe {
        let c = &mut *ctx;
        let i = &mut *c.interp;
        (c, i)
    }
}

/// Enters the page of the access just done into the soft TLB.
fn fill(c: &mut Ctx, i: &mut Interp, seg: u64, offset: u64, write: bool) {
    // SAFETY: `tlb_owner` is the vCPU's table, which `Cache::run` lends the running block
    // and nothing else touches meanwhile.
    let tlb = unsafe { &mut *c.tlb_owner };
    tlb.fill(i, seg as usize, offset, write);
}

fn failed(c: &mut Ctx, stop: Stop) {
    c.status = FAULT;
    c.fault = Some(match stop {
        Stop::Fault(f) | Stop::Trap(f) => f,
        // Memory accesses raise exceptions only; anything else would be a bug: #GP(0)
        // keeps the guest's state consistent.
        _ => Fault::gp(0),
    });
}

fn after_store(c: &mut Ctx) {
    // SAFETY: a block's entry stored its page's word, which lives in the vCPU group's
    // `CodePages` as long as the interpreter does.
    let now = unsafe { &*c.code_word }.load(std::sync::atomic::Ordering::Acquire);
    if now != c.word {
        c.status = CODE_WRITTEN;
    }
}

/// Loads `size` bytes at `seg:offset`.
pub extern "sysv64" fn load(ctx: *mut Ctx, seg: u64, offset: u64, size: u64) -> u64 {
    // SAFETY: called only by translated code, with the context it was given.
    let (c, i) = unsafe { parts(ctx) };
    match i.read_mem(seg as usize, offset, size as u32) {
        Ok(v) => {
            fill(c, i, seg, offset, false);
            v
        }
        Err(stop) => {
            failed(c, stop);
            0
        }
    }
}

/// Stores the low `size` bytes of `value` at `seg:offset`.
pub extern "sysv64" fn store(ctx: *mut Ctx, seg: u64, offset: u64, size: u64, value: u64) {
    // SAFETY: called only by translated code, with the context it was given.
    let (c, i) = unsafe { parts(ctx) };
    match i.write_mem(seg as usize, offset, size as u32, value) {
        Ok(()) => {
            after_store(c);
            fill(c, i, seg, offset, true);
        }
        Err(stop) => failed(c, stop),
    }
}

/// PUSH of `size` bytes.
pub extern "sysv64" fn push(ctx: *mut Ctx, value: u64, size: u64) {
    // SAFETY: called only by translated code, with the context it was given.
    let (c, i) = unsafe { parts(ctx) };
    match i.push(value, size as u32) {
        Ok(()) => {
            after_store(c);
            let top = i.cpu.regs[4] & i.rsp_mask();
            fill(c, i, emu_core::interp::cpu::sreg::SS as u64, top, true);
        }
        Err(stop) => failed(c, stop),
    }
}

/// RET's target (`size` bytes: 8 in 64-bit code, 4 in 32-bit code, whose flat code
/// segment admits any target): popped only if it is canonical (else #GP at the RET, RSP
/// untouched, as the interpreter's near jumps do).
pub extern "sysv64" fn ret(ctx: *mut Ctx, size: u64) -> u64 {
    // SAFETY: called only by translated code, with the context it was given.
    let (c, i) = unsafe { parts(ctx) };
    match i.stack_read(0, size as u32) {
        Ok(target) if emu_core::interp::canonical(target) => {
            let top = i.cpu.regs[4] & i.rsp_mask();
            fill(c, i, emu_core::interp::cpu::sreg::SS as u64, top, false);
            i.adjust_rsp(size as i64);
            target
        }
        Ok(_) => {
            failed(c, Stop::Fault(Fault::gp(0)));
            0
        }
        Err(stop) => {
            failed(c, stop);
            0
        }
    }
}

/// Runs the instruction at RIP (which the block set) through the interpreter, inside the
/// block: everything the translator does not emit itself but that cannot change what the
/// block relies on (see `translate::interpreted`).
pub extern "sysv64" fn interpret(ctx: *mut Ctx) {
    // SAFETY: called only by translated code, with the context it was given.
    let (c, i) = unsafe { parts(ctx) };
    c.interpreted += 1;
    if let Some(kinds) = &mut c.interpreted_kinds {
        if let Some(instr) = i.peek_instruction() {
            *kinds.entry(crate::kind(&instr)).or_default() += 1;
        }
    }
    match i.execute_in_block() {
        Ok(()) => after_interpreted(c, i),
        Err(stop) => failed(c, stop),
    }
}

/// Runs the instruction at RIP (which the block set), decoded at translation (`index` into
/// `Ctx::decoded`), through the interpreter, as [`interpret`] does without fetching and
/// decoding it again: the block's entry checked its code page's word, and its mapping holds
/// while the block runs (anything changing it ends the block).
pub extern "sysv64" fn interpret_decoded(ctx: *mut Ctx, index: u64) {
    // SAFETY: called only by translated code, with the context it was given.
    let (c, i) = unsafe { parts(ctx) };
    let Some(index) = usize::try_from(index).ok().filter(|&k| k < c.decoded_len) else {
        return interpret(ctx);
    };
    // SAFETY: `decoded` and `decoded_len` describe the cache's vector as the dispatcher
    // left it before entering translated code; nothing changes it while blocks run.
    let (instr, fop) = unsafe { *c.decoded.add(index) };
    c.interpreted += 1;
    if let Some(kinds) = &mut c.interpreted_kinds {
        *kinds.entry(crate::kind(&instr)).or_default() += 1;
    }
    match i.execute_decoded_in_block(&instr, fop) {
        Ok(()) => after_interpreted(c, i),
        Err(stop) => failed(c, stop),
    }
}

/// After the interpreter ran an instruction in place: a store into the block's code, or
/// an x87 exception that raises FERR# (see [`LEAVE`]), ends the block.
fn after_interpreted(c: &mut Ctx, i: &mut Interp) {
    after_store(c);
    let ferr = i.cpu.cr0 & emu_core::state::bits::CR0_NE == 0 && i.cpu.fpu.fsw & FSW_ES != 0;
    if ferr && c.status == OK {
        c.status = LEAVE;
    }
}

/// Runs the instruction at RIP (which the block set) through the interpreter, as
/// [`interpret`], then enters the page of its memory operand at `seg:offset` into the soft
/// TLB (`seg` negative: none), so the next run of the block finds it inline.
pub extern "sysv64" fn interpret_fill(ctx: *mut Ctx, seg: i64, offset: u64, write: u64) {
    interpret(ctx);
    // SAFETY: called only by translated code, with the context it was given.
    let (c, i) = unsafe { parts(ctx) };
    if c.status == OK && seg >= 0 {
        fill(c, i, seg as u64, offset, write != 0);
    }
}

/// Runs the REP STOS/MOVS at RIP through the interpreter, as [`interpret`], then enters
/// the pages its destination (ES:`rdi`, for a write) and source (`src_seg`:`rsi`, if
/// `src_seg` is not negative) started in into the soft TLB.
pub extern "sysv64" fn interpret_string(ctx: *mut Ctx, src_seg: i64, rdi: u64, rsi: u64) {
    interpret(ctx);
    // SAFETY: called only by translated code, with the context it was given.
    let (c, i) = unsafe { parts(ctx) };
    if c.status == OK {
        fill(c, i, emu_core::interp::cpu::sreg::ES as u64, rdi, true);
        if src_seg >= 0 {
            fill(c, i, src_seg as u64, rsi, false);
        }
    }
}

/// #GP(0) at the current instruction (a non-canonical indirect target).
pub extern "sysv64" fn gp(ctx: *mut Ctx) {
    // SAFETY: called only by translated code, with the context it was given.
    let (c, _) = unsafe { parts(ctx) };
    failed(c, Stop::Fault(Fault::gp(0)));
}
