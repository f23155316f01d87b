//! The interpreter: the reference semantics of the software CPU.
//!
//! One instruction at a time: fetch through the MMU, decode with iced-x86 (cached per guest
//! physical page and invalidated by writes to that page), execute. Exceptions are precise:
//! an instruction that faults commits nothing, and RIP points at it.

pub mod alu;
pub mod atomic;
pub mod bcd;
pub mod bitcount;
pub mod bmi2;
pub mod code_pages;
pub mod control;
pub mod cpu;
pub mod cpu_group;
pub mod cpuid;
pub mod decode_cache;
pub mod dispatch;
pub mod fasthash;
pub mod fault;
pub mod features;
pub mod flags_calc;
pub mod interrupt;
pub mod memory;
pub mod mmu;
pub mod mtrr;
pub mod operand;
pub mod segment;
pub mod simd;
pub mod string;
mod string_bulk;
pub mod system;
pub mod task;

use std::collections::HashSet;

use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction, Mnemonic};

use cpu::{sreg, Cpu, Mode};
use decode_cache::DecodeCache;
use fault::{Fault, Result, Stop};
use memory::PhysMem;
use mmu::{Access, Mmu, Privilege};

/// Counters printed on request.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub instructions: u64,
    pub decode_cache_misses: u64,
    pub exceptions: u64,
    pub unimplemented: u64,
    /// External interrupts taken.
    pub interrupts: u64,
}

pub struct Interp {
    pub cpu: Cpu,
    pub mmu: Mmu,
    pub mem: PhysMem,
    icache: DecodeCache,
    /// Mnemonics already reported as unimplemented (each is logged once).
    reported: HashSet<Mnemonic>,
    pub stats: Stats,
    /// Interrupt shadow after STI / MOV SS / POP SS: interrupts wait one instruction.
    pub interrupt_shadow: bool,
    /// The x87 opcode (FOP) of the instruction at this IP, known by whoever decoded it (a
    /// translated block, from its bytes): the FPU's last-instruction pointer then needs
    /// no read of the instruction's bytes (see `note_pointers`).
    pub(crate) fop_hint: Option<(u64, u16)>,
    /// The vCPU's initial APIC ID (CPUID leaves 1 and 0xB).
    pub apic_id: u32,
    /// The CPU model: what CPUID reports and which features exist.
    pub model: &'static crate::cpu_model::CpuModel,
    /// The platform's interrupt controller, where there is one (FERR#/IGNNE# go through it).
    pub irq: Option<std::sync::Arc<dyn crate::Interrupts>>,
    /// When the vCPU started: the time-stamp counter counts from here.
    pub(crate) started: std::time::Instant,
    /// The last code page fetched from: (linear page, physical page, MMU generation, CPL,
    /// A20 mask, the page's code word).
    fetch_page: Option<(u64, u64, u64, u8, u64, u32)>,
    /// What this vCPU shares with the machine's others (code-page generations, the gate
    /// for instructions that must run alone).
    pub(crate) group: std::sync::Arc<cpu_group::CpuGroup>,
    /// This vCPU's hold on the group's gate while it runs a batch (see [`cpu_group`]).
    pub(crate) running: Option<cpu_group::RunGuard>,
    /// A LOCK'ed instruction's memory operand, captured while it executes (see [`atomic`]).
    pub(crate) capture: Option<atomic::Capture>,
    /// A page of bytes for REP MOVS/STOS done a page at a time (see `string_bulk`), kept so
    /// each chunk does not clear a fresh one.
    pub(crate) bulk: Vec<u8>,
    /// Whether other vCPUs run beside this one (the group's, cached for the hot path).
    pub(crate) smp: bool,
    /// Unique among the interpreters of this process, renewed when it joins a group (see
    /// [`Interp::identity`]).
    identity: u64,
}

/// The next [`Interp::identity`].
static NEXT_IDENTITY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_identity() -> u64 {
    NEXT_IDENTITY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Where an instruction's bytes come from, for the decode cache.
impl Interp {
    pub fn new(cpu: Cpu, mem: PhysMem) -> Self {
        let group = std::sync::Arc::new(cpu_group::CpuGroup::new(mem.ram(), 1));
        Interp {
            group,
            running: None,
            capture: None,
            bulk: vec![0; 0x1000],
            smp: false,
            cpu,
            mmu: Mmu::default(),
            mem,
            icache: DecodeCache::default(),
            reported: HashSet::new(),
            stats: Stats::default(),
            interrupt_shadow: false,
            fop_hint: None,
            apic_id: 0,
            model: &crate::cpu_model::MAX,
            irq: None,
            started: std::time::Instant::now(),
            fetch_page: None,
            identity: next_identity(),
        }
    }

    /// Executes one instruction, delivering any exception it raises. Returns `Halt` or
    /// `Shutdown` when the CPU stops.
    pub fn step(&mut self) -> std::result::Result<(), Stop> {
        match self.execute_one() {
            Err(Stop::Fault(f)) | Err(Stop::Trap(f)) => {
                self.stats.exceptions += 1;
                self.raise(f)
            }
            other => other,
        }
    }

    /// Executes one instruction; an exception comes back undelivered, with RIP at the
    /// faulting instruction and nothing committed (the differential harness compares it).
    pub fn execute_one(&mut self) -> std::result::Result<(), Stop> {
        let start_rip = self.cpu.rip;
        // The shadow of an STI / MOV SS covers exactly the instruction after it: the vCPU loop
        // saw it before this step; this instruction may set it again.
        self.interrupt_shadow = false;
        // TF set before an instruction makes it trap (#DB, DR6.BS) once it has completed.
        let single_step = self.cpu.flag(cpu::flags::TF);
        match self.fetch_and_execute() {
            Ok(()) => {
                self.stats.instructions += 1;
                if single_step {
                    self.cpu.dr[6] |= 1 << 14;
                    return Err(Stop::Trap(Fault::new(fault::vector::DB)));
                }
                Ok(())
            }
            Err(Stop::Fault(f)) => {
                self.cpu.rip = start_rip;
                Err(Stop::Fault(f))
            }
            Err(other) => Err(other),
        }
    }

    /// One instruction as [`Interp::execute_one`] does it, for a translator that runs it in
    /// the middle of a translated block: not counted (the block counts it) and never
    /// single-stepped (the translator does not run with TF set).
    pub fn execute_in_block(&mut self) -> std::result::Result<(), Stop> {
        let start_rip = self.cpu.rip;
        self.interrupt_shadow = false;
        match self.fetch_and_execute() {
            Err(Stop::Fault(f)) => {
                self.cpu.rip = start_rip;
                Err(Stop::Fault(f))
            }
            other => other,
        }
    }

    /// As [`Self::execute_in_block`], with the instruction at RIP decoded already (by a
    /// translated block, whose entry checks its code is unchanged).
    /// `fop`: its x87 opcode ([`x87_opcode`] of its bytes) where they are known.
    pub fn execute_decoded_in_block(
        &mut self,
        instr: &Instruction,
        fop: Option<u16>,
    ) -> std::result::Result<(), Stop> {
        self.fop_hint = fop.map(|f| (instr.ip(), f));
        let r = self.execute_decoded(instr);
        self.fop_hint = None;
        r
    }

    fn execute_decoded(&mut self, instr: &Instruction) -> std::result::Result<(), Stop> {
        let start_rip = self.cpu.rip;
        debug_assert_eq!(instr.ip(), start_rip, "a decoded instruction run elsewhere");
        self.interrupt_shadow = false;
        self.cpu.rip = instr.next_ip() & self.ip_mask();
        match self.execute(instr) {
            Err(Stop::Fault(f)) => {
                self.cpu.rip = start_rip;
                Err(Stop::Fault(f))
            }
            other => other,
        }
    }

    /// The instruction at RIP as the interpreter decodes it (for reports and flag masks).
    pub fn peek_instruction(&mut self) -> Option<Instruction> {
        let mut instr = Instruction::default();
        self.fetch(&mut instr).ok().map(|()| instr)
    }

    fn fetch_and_execute(&mut self) -> Result<()> {
        // Fetched into a local through a reference: returning the 40-byte instruction inside
        // a Result made the compiler assemble and re-read it piecewise (store-forwarding
        // stalls on every instruction).
        let mut instr = Instruction::default();
        self.fetch(&mut instr)?;
        if log::log_enabled!(target: "ferrite::trace", log::Level::Trace) {
            log::trace!(target: "ferrite::trace", "{:#x}: {instr}  rax={:#x} rcx={:#x} rdx={:#x} rbx={:#x} rsp={:#x} rsi={:#x} rdi={:#x} fl={:#x}",
                instr.ip(), self.cpu.regs[0], self.cpu.regs[1], self.cpu.regs[2], self.cpu.regs[3], self.cpu.regs[4], self.cpu.regs[6], self.cpu.regs[7], self.cpu.rflags);
        }
        self.cpu.rip = instr.next_ip() & self.ip_mask();
        self.execute(&instr)
    }

    /// Mask for RIP/EIP/IP in the current code size.
    pub fn ip_mask(&self) -> u64 {
        match self.cpu.code_bits() {
            64 => u64::MAX,
            32 => 0xffff_ffff,
            _ => 0xffff,
        }
    }

    fn fetch(&mut self, out: &mut Instruction) -> Result<()> {
        let bits = self.cpu.code_bits();
        let rip = self.cpu.rip;
        let (phys, word) = self.code_location()?;
        if let Some(instr) = self.icache.lookup(phys, bits, word, rip) {
            self.check_code_limit(instr)?;
            *out = *instr;
            return Ok(());
        }
        self.fetch_slow(phys, word, out)
    }

    /// Where the instruction at CS:RIP is: its physical address (translated for execution,
    /// with the faults a fetch raises) and its page's code word (see `code_pages`).
    #[inline]
    pub fn code_location(&mut self) -> Result<(u64, u32)> {
        let bits = self.cpu.code_bits();
        let cs = self.cpu.seg[sreg::CS];
        let rip = self.cpu.rip;
        let linear = if bits == 64 {
            rip
        } else {
            cs.base.wrapping_add(rip) & 0xffff_ffff
        };
        if bits == 64 && !canonical(linear) {
            return Err(Fault::gp(0).into());
        }
        let priv_ = self.privilege();
        let cpl = self.cpu.cpl();
        let a20 = self.mem.a20_mask();
        Ok(match self.fetch_page {
            Some((lp, pp, generation, c, m, w))
                if lp == linear >> 12
                    && generation == self.mmu.generation
                    && c == cpl
                    && m == a20
                    && self.group.code.current(pp) == w =>
            {
                ((pp << 12) | (linear & 0xfff), w)
            }
            _ => {
                let p =
                    self.mmu
                        .translate(&mut self.cpu, &self.mem, linear, Access::Execute, priv_)?;
                let w = self.group.code.current(p >> 12);
                self.fetch_page = Some((linear >> 12, p >> 12, self.mmu.generation, cpl, a20, w));
                (p, w)
            }
        })
    }

    /// Marks the code page `phys` is in as holding decoded code (before its bytes are read);
    /// returns the word decodes of it are valid under, `None` outside RAM.
    pub fn mark_code(&mut self, phys: u64) -> Option<u32> {
        let marked = self.group.code.mark(phys >> 12);
        if let (Some(w), Some(fp)) = (marked, self.fetch_page.as_mut()) {
            if fp.1 == phys >> 12 {
                fp.5 = w;
            }
        }
        marked
    }

    /// The current code word of the page `phys` is in.
    #[inline]
    pub fn code_word(&self, phys: u64) -> u32 {
        self.group.code.current(phys >> 12)
    }

    /// The word of the code page `phys` is in, for code that tests its "decoded code" bit
    /// (bit 0) before every store to the page; `None` outside RAM.
    pub fn code_word_ref(&self, phys: u64) -> Option<&std::sync::atomic::AtomicU32> {
        self.group.code.word_ref(phys >> 12)
    }

    /// This interpreter, with its memory and vCPU group, as an identity no other
    /// interpreter of the process shares (an address could be reused): for caches that
    /// hold host pointers into its RAM and code-page map.
    pub fn identity(&self) -> u64 {
        self.identity
    }

    /// After a data access at `seg:offset` succeeded: its linear page and the physical page
    /// that maps to for a read (or a write), as the MMU's TLB now holds them. `None` when
    /// the access could not be repeated without a fault.
    pub fn data_page(&mut self, seg: usize, offset: u64, write: bool) -> Option<(u64, u64)> {
        let linear = self.wrap_linear(self.seg_linear(seg, offset, 1, write).ok()?);
        let access = if write { Access::Write } else { Access::Read };
        let priv_ = self.privilege();
        let phys = self
            .mmu
            .translate(&mut self.cpu, &self.mem, linear, access, priv_)
            .ok()?;
        Some((linear & !0xfff, phys & !0xfff))
    }

    /// Whether data accesses are checked for alignment now (#AC: CPL 3, CR0.AM, EFLAGS.AC).
    pub fn alignment_checked(&self) -> bool {
        self.cpu.cr0 & (1 << 18) != 0 && self.cpu.flag(cpu::flags::AC) && self.cpu.cpl() == 3
    }

    #[inline(never)]
    fn fetch_slow(&mut self, phys: u64, word: u32, out: &mut Instruction) -> Result<()> {
        let bits = self.cpu.code_bits();
        let rip = self.cpu.rip;
        let linear = if bits == 64 {
            rip
        } else {
            self.cpu.seg[sreg::CS].base.wrapping_add(rip) & 0xffff_ffff
        };
        let priv_ = self.privilege();
        if let Some(instr) = self.icache.get(phys, bits, word, rip) {
            self.check_code_limit(&instr)?;
            *out = instr;
            return Ok(());
        }
        self.stats.decode_cache_misses += 1;
        // The page is marked as holding code before its bytes are read, so a store after the
        // read moves its word (see `code_pages`).
        let marked = self.mark_code(phys);
        // Bytes up to the end of the page; the next page only if the instruction needs it.
        let in_page = (0x1000 - (linear & 0xfff)).min(15) as usize;
        let mut bytes = [0u8; 15];
        self.mem.read(phys, &mut bytes[..in_page]);
        let mut instr = Instruction::default();
        let mut decoder = Decoder::with_ip(bits, &bytes[..in_page], rip, DecoderOptions::NONE);
        decoder.decode_out(&mut instr);
        let mut crosses = false;
        if decoder.last_error() == DecoderError::NoMoreBytes && in_page < 15 {
            let next = linear.wrapping_add(in_page as u64);
            let next = if bits == 64 { next } else { next & 0xffff_ffff };
            let phys2 =
                self.mmu
                    .translate(&mut self.cpu, &self.mem, next, Access::Execute, priv_)?;
            self.mem.read(phys2, &mut bytes[in_page..]);
            let mut decoder = Decoder::with_ip(bits, &bytes, rip, DecoderOptions::NONE);
            decoder.decode_out(&mut instr);
            crosses = true;
        }
        if instr.is_invalid() {
            return Err(Fault::ud().into());
        }
        self.check_code_limit(&instr)?;
        if let (false, Some(w)) = (crosses, marked) {
            self.icache.insert(phys, bits, w, instr);
        }
        *out = instr;
        Ok(())
    }

    fn check_code_limit(&self, instr: &Instruction) -> Result<()> {
        if self.cpu.mode() == Mode::Long64 {
            return Ok(());
        }
        let last = self.cpu.rip.wrapping_add(instr.len() as u64 - 1);
        let cs = &self.cpu.seg[sreg::CS];
        if self.cpu.mode() != Mode::Real && last > u64::from(cs.limit) {
            return Err(Fault::gp(0).into());
        }
        Ok(())
    }

    /// User or supervisor, as the paging checks see the current CPL.
    pub fn privilege(&self) -> Privilege {
        if self.cpu.cpl() == 3 {
            Privilege::User
        } else {
            Privilege::Supervisor
        }
    }

    /// Reports an unimplemented instruction once and raises #UD.
    pub(crate) fn unimplemented(&mut self, instr: &Instruction) -> Result<()> {
        self.stats.unimplemented += 1;
        if self.reported.insert(instr.mnemonic()) {
            log::warn!(
                "software CPU: {:?} ({:?}) is not implemented; the guest gets #UD (reported once)",
                instr.mnemonic(),
                instr.code()
            );
        }
        Err(Fault::ud().into())
    }

    // ----- linear and physical memory -------------------------------------------------

    /// Reads `buf.len()` bytes at a linear address, splitting at page boundaries. All pages
    /// are translated before anything is read.
    pub fn read_linear(&mut self, linear: u64, buf: &mut [u8], priv_: Privilege) -> Result<()> {
        let (p1, n1, p2) = self.translate_span(linear, buf.len(), Access::Read, priv_)?;
        self.mem.read(p1, &mut buf[..n1]);
        if let Some(p2) = p2 {
            self.mem.read(p2, &mut buf[n1..]);
        }
        Ok(())
    }

    /// Writes at a linear address; both pages are translated (and checked) first, so a fault
    /// on the second leaves memory untouched.
    pub fn write_linear(&mut self, linear: u64, buf: &[u8], priv_: Privilege) -> Result<()> {
        let (p1, n1, p2) = self.translate_span(linear, buf.len(), Access::Write, priv_)?;
        self.write_phys(p1, &buf[..n1]);
        if let Some(p2) = p2 {
            self.write_phys(p2, &buf[n1..]);
        }
        Ok(())
    }

    fn translate_span(
        &mut self,
        linear: u64,
        len: usize,
        access: Access,
        priv_: Privilege,
    ) -> Result<(u64, usize, Option<u64>)> {
        let linear = self.wrap_linear(linear);
        let in_page = (0x1000 - (linear & 0xfff)) as usize;
        let p1 = self
            .mmu
            .translate(&mut self.cpu, &self.mem, linear, access, priv_)?;
        if len <= in_page {
            return Ok((p1, len, None));
        }
        let next = self.wrap_linear(linear.wrapping_add(in_page as u64));
        let p2 = self
            .mmu
            .translate(&mut self.cpu, &self.mem, next, access, priv_)?;
        Ok((p1, in_page, Some(p2)))
    }

    /// Linear addresses are 32 bits outside IA-32e mode.
    pub fn wrap_linear(&self, linear: u64) -> u64 {
        if self.cpu.efer & crate::state::bits::EFER_LMA != 0 {
            linear
        } else {
            linear & 0xffff_ffff
        }
    }

    /// Joins `group` (the machine's vCPUs share code-page generations and the exclusive
    /// gate; with more than one, LOCK'ed accesses become host atomics).
    pub fn join(&mut self, group: std::sync::Arc<cpu_group::CpuGroup>) {
        self.smp = group.is_smp();
        self.group = group;
        self.running = None;
        self.fetch_page = None;
        self.identity = next_identity();
    }

    /// Takes this vCPU's shared hold on the group's gate for a batch of instructions
    /// (only SMP groups need it).
    pub fn begin_batch(&mut self) {
        if self.smp && self.running.is_none() {
            self.running = Some(self.group.enter());
        }
    }

    /// Gives the hold up (the end of a batch, a halt, leaving `run`).
    pub fn end_batch(&mut self) {
        self.running = None;
    }

    /// Every store to guest RAM goes here, so decodes of that page (by any vCPU) go stale.
    pub fn write_phys(&mut self, phys: u64, buf: &[u8]) {
        self.mem.write(phys, buf);
        self.group.code.wrote(phys, buf.len());
    }

    /// #AC: at CPL 3 with CR0.AM and EFLAGS.AC set, data accesses must be naturally aligned.
    pub(crate) fn check_alignment(&self, linear: u64, size: u32) -> Result<()> {
        if size > 1 && linear & u64::from(size - 1) != 0 && self.alignment_checked() {
            return Err(Fault::with_code(fault::vector::AC, 0).into());
        }
        Ok(())
    }

    /// Reads a value of `size` bytes from `seg:offset` with segmentation checks.
    pub fn read_mem(&mut self, seg: usize, offset: u64, size: u32) -> Result<u64> {
        let linear = self.seg_linear(seg, offset, size, false)?;
        self.check_alignment(linear, size)?;
        if self.capture.is_some() {
            if let Some(v) = self.captured_read(self.wrap_linear(linear), size) {
                return Ok(v);
            }
        }
        let mut b = [0u8; 8];
        let priv_ = self.privilege();
        self.read_linear(linear, &mut b[..size as usize], priv_)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn write_mem(&mut self, seg: usize, offset: u64, size: u32, value: u64) -> Result<()> {
        let linear = self.seg_linear(seg, offset, size, true)?;
        self.check_alignment(linear, size)?;
        if self.capture.is_some() && self.captured_write(self.wrap_linear(linear), size, value) {
            return Ok(());
        }
        let priv_ = self.privilege();
        self.write_linear(linear, &value.to_le_bytes()[..size as usize], priv_)
    }

    /// Supervisor-privilege access to system structures (GDT, IDT, TSS) by linear address.
    pub fn read_sys(&mut self, linear: u64, size: usize) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_linear(linear, &mut b[..size], Privilege::Supervisor)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn write_sys(&mut self, linear: u64, size: usize, value: u64) -> Result<()> {
        self.write_linear(linear, &value.to_le_bytes()[..size], Privilege::Supervisor)
    }

    /// Checks an access of `size` bytes at `seg:offset` and returns its linear address.
    pub fn seg_linear(&self, seg: usize, offset: u64, size: u32, write: bool) -> Result<u64> {
        let s = &self.cpu.seg[seg];
        let fault = |code| -> Stop {
            if seg == sreg::SS {
                Fault::ss(code).into()
            } else {
                Fault::gp(code).into()
            }
        };
        match self.cpu.mode() {
            Mode::Long64 => {
                let base = if seg == sreg::FS || seg == sreg::GS {
                    s.base
                } else {
                    0
                };
                let linear = base.wrapping_add(offset);
                let last = linear.wrapping_add(u64::from(size) - 1);
                if !canonical(linear) || !canonical(last) {
                    return Err(fault(0));
                }
                Ok(linear)
            }
            Mode::Real | Mode::Virtual8086 => {
                // Real mode keeps the cached limit (unreal mode works); wrap-around past it
                // is #GP (#SS for the stack).
                let last = offset.wrapping_add(u64::from(size) - 1);
                if last > u64::from(s.limit) {
                    return Err(fault(0));
                }
                Ok(s.base.wrapping_add(offset) & 0xffff_ffff)
            }
            Mode::Protected | Mode::Compatibility => {
                if s.unusable || !s.present {
                    return Err(fault(0));
                }
                let code = s.type_ & 0x8 != 0;
                if write && (code || s.type_ & 0x2 == 0) {
                    return Err(fault(0));
                }
                if !write && code && s.type_ & 0x2 == 0 {
                    return Err(fault(0)); // execute-only code segment
                }
                let last = offset.wrapping_add(u64::from(size) - 1);
                let expand_down = !code && s.type_ & 0x4 != 0;
                let ok = if expand_down {
                    let max = if s.db { 0xffff_ffff } else { 0xffff };
                    offset > u64::from(s.limit) && last <= max && last >= offset
                } else {
                    last <= u64::from(s.limit) && last >= offset
                };
                if !ok {
                    return Err(fault(0));
                }
                Ok(s.base.wrapping_add(offset) & 0xffff_ffff)
            }
        }
    }

    // ----- the stack --------------------------------------------------------------------

    pub fn rsp_mask(&self) -> u64 {
        match self.cpu.stack_bytes() {
            8 => u64::MAX,
            4 => 0xffff_ffff,
            _ => 0xffff,
        }
    }

    /// Pushes `size` bytes; RSP changes only once the store succeeded.
    pub fn push(&mut self, value: u64, size: u32) -> Result<()> {
        let mask = self.rsp_mask();
        let rsp = self.cpu.regs[4];
        let new = rsp.wrapping_sub(u64::from(size)) & mask;
        self.write_mem(sreg::SS, new, size, value)?;
        self.cpu.regs[4] = (rsp & !mask) | new;
        Ok(())
    }

    /// Reads the value `depth` bytes above the stack top without popping.
    pub fn stack_read(&mut self, depth: u64, size: u32) -> Result<u64> {
        let mask = self.rsp_mask();
        let off = self.cpu.regs[4].wrapping_add(depth) & mask;
        self.read_mem(sreg::SS, off, size)
    }

    pub fn pop(&mut self, size: u32) -> Result<u64> {
        let v = self.stack_read(0, size)?;
        self.adjust_rsp(i64::from(size));
        Ok(v)
    }

    pub fn adjust_rsp(&mut self, delta: i64) {
        let mask = self.rsp_mask();
        let rsp = self.cpu.regs[4];
        self.cpu.regs[4] = (rsp & !mask) | (rsp.wrapping_add(delta as u64) & mask);
    }
}

/// True if `addr` is canonical for 48-bit linear addresses.
pub fn canonical(addr: u64) -> bool {
    let top = (addr as i64) >> 47;
    top == 0 || top == -1
}

/// The x87 opcode FNSTENV, FNSAVE and FXSAVE report for an instruction with these bytes:
/// the escape byte's (D8–DF, after the prefixes, none of which looks like one) low three
/// bits and the ModR/M byte after it; 0 if there is none.
pub fn x87_opcode(bytes: &[u8]) -> u16 {
    bytes
        .iter()
        .position(|b| (0xd8..=0xdf).contains(b))
        .and_then(|k| {
            let modrm = *bytes.get(k + 1)?;
            Some(u16::from(bytes[k] & 7) << 8 | u16::from(modrm))
        })
        .unwrap_or(0)
}
