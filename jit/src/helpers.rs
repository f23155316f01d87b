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

/// The block's view of the vCPU. Translated code reads the first fields at fixed offsets.
#[repr(C)]
pub struct Ctx {
    /// `Cpu::regs` (blocks reach `Cpu::rip` and `Cpu::rflags` at fixed offsets from it).
    pub regs: *mut u64,
    /// [`OK`], [`FAULT`] or [`CODE_WRITTEN`].
    pub status: u64,
    /// Scratch slots kept across helper calls.
    pub scratch: [u64; 2],
    /// The soft TLB's entries, and the FS and GS bases (the only segment bases 64-bit code
    /// adds).
    pub tlb: *mut crate::tlb::Entry,
    pub fs_base: u64,
    pub gs_base: u64,
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
    pub interp: *mut Interp,
    /// Instructions the interpreter ran inside blocks (for the statistics), and, when the
    /// statistics are logged, which (by mnemonic and operand size).
    pub interpreted: u64,
    pub interpreted_kinds:
        Option<emu_core::interp::fasthash::FastMap<(iced_x86::Mnemonic, u8), u64>>,
    /// The soft TLB the slow paths fill.
    pub tlb_owner: *mut crate::tlb::Tlb,
    pub fault: Option<Fault>,
}

// The fields translated code reads, by offset.
pub const REGS: i32 = offset_of!(Ctx, regs) as i32;
pub const STATUS: i32 = offset_of!(Ctx, status) as i32;
pub const SCRATCH0: i32 = offset_of!(Ctx, scratch) as i32;
pub const SCRATCH1: i32 = SCRATCH0 + 8;
pub const TLB: i32 = offset_of!(Ctx, tlb) as i32;
pub const FS_BASE: i32 = offset_of!(Ctx, fs_base) as i32;
pub const GS_BASE: i32 = offset_of!(Ctx, gs_base) as i32;
pub const RETIRED: i32 = offset_of!(Ctx, retired) as i32;
pub const LIMIT: i32 = offset_of!(Ctx, limit) as i32;
pub const LINK: i32 = offset_of!(Ctx, link) as i32;
pub const JUMPS: i32 = offset_of!(Ctx, jumps) as i32;
pub const XMM: i32 = offset_of!(Ctx, xmm) as i32;
pub const SSE_OK: i32 = offset_of!(Ctx, sse_ok) as i32;
pub const CODE_WORD: i32 = offset_of!(Ctx, code_word) as i32;
pub const WORD: i32 = offset_of!(Ctx, word) as i32;

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
            let top = i.cpu.regs[4];
            fill(c, i, emu_core::interp::cpu::sreg::SS as u64, top, true);
        }
        Err(stop) => failed(c, stop),
    }
}

/// RET's target: popped only if it is canonical (else #GP at the RET, RSP untouched, as
/// the interpreter's near jumps do).
pub extern "sysv64" fn ret(ctx: *mut Ctx) -> u64 {
    // SAFETY: called only by translated code, with the context it was given.
    let (c, i) = unsafe { parts(ctx) };
    match i.stack_read(0, 8) {
        Ok(target) if emu_core::interp::canonical(target) => {
            let top = i.cpu.regs[4];
            fill(c, i, emu_core::interp::cpu::sreg::SS as u64, top, false);
            i.adjust_rsp(8);
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
        Ok(()) => after_store(c),
        Err(stop) => failed(c, stop),
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
