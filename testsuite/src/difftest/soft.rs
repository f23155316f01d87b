//! The interpreter side: the case runs at CPL 3 in long mode (64-bit or compatibility-mode
//! code), with paging mapping exactly the code and data pages, as in the host child.

use std::sync::Arc;

use emu_core::interp::cpu::{flags, Cpu};
use emu_core::interp::fault::{vector, Stop};
use emu_core::interp::memory::PhysMem;
use emu_core::interp::Interp;
use emu_core::platform::NoDevices;
use emu_core::state::bits::*;
use emu_core::state::{CpuState, DescriptorTable, Segment};
use iced_x86::Instruction;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::case::{Case, Exception, Outcome};
use super::{CODE_ADDR, DATA_ADDR, DATA_SIZE};

const PML4: u64 = 0x1000;
const CODE_PHYS: u64 = 0x10000;
const DATA_PHYS: u64 = 0x11000;
/// The page after the code page (hand-written cases with an instruction crossing into it;
/// generated cases leave it INT3s).
const CODE2_PHYS: u64 = 0x12000;
const GDT: u64 = 0x500;
const RAM: usize = 1 << 20;

/// RFLAGS bits from iced's `RflagsBits`.
pub(crate) fn to_bits(r: u32) -> u64 {
    use iced_x86::RflagsBits;
    {
        let mut b = 0u64;
        for (rf, f) in [
            (RflagsBits::CF, flags::CF),
            (RflagsBits::PF, flags::PF),
            (RflagsBits::AF, flags::AF),
            (RflagsBits::ZF, flags::ZF),
            (RflagsBits::SF, flags::SF),
            (RflagsBits::OF, flags::OF),
            (RflagsBits::DF, flags::DF),
        ] {
            if r & rf != 0 {
                b |= f;
            }
        }
        b
    }
}

/// The flags `i` leaves undefined, and those it leaves defined, given the undefined set
/// before it.
pub(crate) fn flags_after(undef: u64, i: &Instruction) -> u64 {
    let mut undefined = to_bits(i.rflags_undefined());
    // The SDM leaves OF undefined for shifts and rotates by more than 1, which iced
    // cannot know for CL and imm8 counts.
    if is_multi_bit_shift(i) {
        undefined |= flags::OF;
    }
    let defined = to_bits(i.rflags_written() | i.rflags_cleared() | i.rflags_set()) & !undefined;
    (undef & !defined) | undefined
}

/// The flags a sequence leaves undefined: set by an instruction's `rflags_undefined`, made
/// defined again by a later instruction that writes them.
pub fn undefined_flags(executed: &[Instruction]) -> u64 {
    executed.iter().fold(0, flags_after)
}

/// Why executing `i` now depends on what the architecture leaves undefined, if it does:
/// reading a flag an earlier instruction left undefined (a branch on OF after a multi-bit
/// shift), or SHLD/SHRD of a 16-bit operand by more than 16 (result and flags undefined;
/// Intel and AMD parts give different values).
fn depends_on_undefined(
    undef: u64,
    i: &Instruction,
    cpu: &Cpu,
    interp: &mut Interp,
) -> Option<String> {
    use iced_x86::{Mnemonic as M, OpKind};
    if matches!(i.mnemonic(), M::Rcpps | M::Rcpss | M::Rsqrtps | M::Rsqrtss) {
        return Some(format!(
            "{i}: an approximation whose bits each part chooses"
        ));
    }
    if let Some(why) = x87_two_nans(i, interp) {
        return Some(why);
    }
    if let Some(why) = bad_bcd(i, interp) {
        return Some(why);
    }
    if let Some(why) = trans_out_of_domain(i, interp) {
        return Some(why);
    }
    let read = to_bits(i.rflags_read()) & undef;
    if read != 0 {
        return Some(format!("{i} reads flags {read:#x} left undefined"));
    }
    let double_shift = matches!(i.mnemonic(), M::Shld | M::Shrd);
    let word = match i.op0_kind() {
        OpKind::Memory => i.memory_size().size() == 2,
        _ => i.op0_register().size() == 2,
    };
    if double_shift && word {
        let count = match i.op_kind(2) {
            OpKind::Register => cpu.regs[1] & 0x1f, // CL
            _ => i.immediate(2) & 0x1f,
        };
        if count > 16 {
            return Some(format!("{i}: a 16-bit double shift by {count}"));
        }
    }
    None
}

fn is_multi_bit_shift(i: &Instruction) -> bool {
    use iced_x86::{Mnemonic as M, OpKind};
    let shift = matches!(
        i.mnemonic(),
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr | M::Shld | M::Shrd
    );
    if !shift || i.op_count() < 2 {
        return false; // the one-operand forms shift by 1
    }
    let last = i.op_count() - 1;
    !(i.op_kind(last) == OpKind::Immediate8 && i.immediate(last) & 0x1f == 1)
}

pub struct SoftRunner {
    ram: GuestMemoryMmap,
    /// Run cases through the translator (`jit`) too, and report its outcome.
    pub translate: bool,
    /// Guest instructions the translator's blocks retired so far (the rest ran on the
    /// interpreter).
    pub translated: std::cell::Cell<u64>,
}

impl Default for SoftRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftRunner {
    pub fn new() -> Self {
        let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM)]).expect("1 MiB of RAM");
        // PML4 → PDPT → PD → PT, one table per level, mapping the code and data pages (user,
        // writable, executable) at their linear addresses; nothing else.
        let w = |a: u64, v: u64| ram.write_obj(v, GuestAddress(a)).expect("page tables");
        // Both pages share the upper levels (they are in the same GiB) and have their own
        // page table.
        let (pdpt, pd) = (0x2000, 0x3000);
        let entry = |linear: u64, phys: u64, pt: u64| {
            w(PML4 + ((linear >> 39) & 0x1ff) * 8, pdpt | 7);
            w(pdpt + ((linear >> 30) & 0x1ff) * 8, pd | 7);
            w(pd + ((linear >> 21) & 0x1ff) * 8, pt | 7);
            w(pt + ((linear >> 12) & 0x1ff) * 8, phys | 7);
        };
        entry(CODE_ADDR, CODE_PHYS, 0x4000);
        entry(CODE_ADDR + 0x1000, CODE2_PHYS, 0x4000);
        entry(DATA_ADDR, DATA_PHYS, 0x5000);
        // GDT as Linux's: kernel CS 0x10, DS 0x18, user CS32 0x23, DS 0x2b, CS64 0x33.
        let gdt: [u64; 7] = [
            0,
            0x00cf_9b00_0000_ffff,
            0x00af_9b00_0000_ffff,
            0x00cf_9300_0000_ffff,
            0x00cf_fb00_0000_ffff,
            0x00cf_f300_0000_ffff,
            0x00af_fb00_0000_ffff,
        ];
        for (k, d) in gdt.iter().enumerate() {
            w(GDT + 8 * k as u64, *d);
        }
        SoftRunner {
            ram,
            translate: false,
            translated: std::cell::Cell::new(0),
        }
    }

    /// Runs arbitrary bytes (fuzzing): at CPL 0 or 3, stepping over any instruction that
    /// faults, until HLT, shutdown or `max_steps`. Returns how many instructions completed.
    pub fn run_bytes(&self, code: &[u8], compat: bool, cpl0: bool, max_steps: usize) -> u64 {
        let case = Case {
            code: code.to_vec(),
            compat,
            regs: [DATA_ADDR + 0x800; 16],
            rflags: 0,
            data: vec![0; DATA_SIZE],
            instructions: 0,
            xmm: [0; 16],
            mxcsr: 0x1f80,
            mm: [0; 8],
            fpu: None,
        };
        let mut padded = case.code.clone();
        padded.resize(0x1000, 0xf4); // HLT after the bytes
        self.ram
            .write_slice(&padded, GuestAddress(CODE_PHYS))
            .expect("code page");
        let mem = PhysMem::new(self.ram.clone(), Arc::new(NoDevices));
        let mut cpu = self.cpu_for(&case);
        if cpl0 {
            let (cs, ss) = if compat {
                (Segment::flat32(0x08, true), Segment::flat32(0x18, false))
            } else {
                (Segment::code64(0x10), Segment::flat32(0x18, false))
            };
            cpu.seg[emu_core::interp::cpu::sreg::CS] = cs;
            cpu.seg[emu_core::interp::cpu::sreg::SS] = ss;
        }
        let mut interp = Interp::new(cpu, mem);
        // Every unit the interpreter has, advertised or not, gets the random bytes.
        interp.model = &emu_core::cpu_model::MAX;
        for _ in 0..max_steps {
            match interp.execute_one() {
                Ok(()) => {}
                Err(Stop::Fault(_)) | Err(Stop::Trap(_)) => {
                    interp.cpu.rip = interp.cpu.rip.wrapping_add(1);
                }
                Err(Stop::Halt) | Err(Stop::Shutdown) => break,
            }
        }
        interp.stats.instructions
    }

    /// Runs `case` to its final UD2 with no step limit but `max` (benchmarks).
    pub fn run_to_end(&self, case: &Case, max: u64) -> u64 {
        let mut code = case.code.clone();
        code.resize(0x1000, 0xcc);
        self.ram
            .write_slice(&code, GuestAddress(CODE_PHYS))
            .expect("code page");
        let mem = PhysMem::new(self.ram.clone(), Arc::new(NoDevices));
        let mut interp = Interp::new(self.cpu_for(case), mem);
        while interp.stats.instructions < max && interp.execute_one().is_ok() {}
        interp.stats.instructions
    }

    fn cpu_for(&self, case: &Case) -> Cpu {
        let mut s = CpuState::reset();
        let user = |sel: u16, code: bool, long: bool| {
            let mut seg = if long {
                Segment::code64(sel)
            } else {
                Segment::flat32(sel, code)
            };
            seg.dpl = 3;
            seg.type_ = if code { 0xb } else { 0x3 };
            seg
        };
        s.cs = if case.compat {
            user(0x23, true, false)
        } else {
            user(0x33, true, true)
        };
        let ds = user(0x2b, false, false);
        s.ss = ds;
        if case.compat {
            s.ds = ds;
            s.es = ds;
        } else {
            let null = Segment {
                unusable: true,
                ..Default::default()
            };
            s.ds = null;
            s.es = null;
        }
        s.fs = Segment {
            selector: 0,
            unusable: true,
            ..Default::default()
        };
        s.gs = s.fs;
        s.gdt = DescriptorTable {
            base: GDT,
            limit: 7 * 8 - 1,
        };
        s.cr0 = CR0_PE | CR0_PG | CR0_WP | CR0_ET | CR0_NE | CR0_MP | (1 << 18); // AM, as Linux
        s.cr3 = PML4;
        s.cr4 = CR4_PAE;
        s.efer = EFER_LME | EFER_LMA | EFER_NXE | EFER_SCE;
        s.gpr = case.regs;
        s.rip = CODE_ADDR;
        s.rflags = case.rflags | 0x202;
        let mut cpu = Cpu::from_state(&s);
        // As Linux runs user code: CR0.MP/NE, SSE enabled in CR4.
        cpu.cr0 |= CR0_MP | CR0_NE;
        cpu.cr4 |= emu_core::interp::simd::CR4_OSFXSR | emu_core::interp::simd::CR4_OSXMMEXCPT;
        cpu.fpu.xmm = case.xmm;
        cpu.fpu.mxcsr = case.mxcsr;
        for (k, v) in case.mm.iter().enumerate() {
            cpu.fpu.set_mm(k, *v);
        }
        if let Some(init) = &case.fpu {
            cpu.fpu.fcw = init.fcw;
            cpu.fpu.fsw = init.fsw;
            cpu.fpu.ftw = init.ftw;
            let top = cpu.fpu.top();
            for (k, r) in init.st.iter().enumerate() {
                cpu.fpu.st[(top + k) & 7] = *r;
            }
        }
        cpu
    }

    /// Runs `case` on the interpreter, or with [`SoftRunner::translate`] on the translator
    /// (the flags-undefined bookkeeping then comes from an interpreter run: a translator
    /// that took another path shows in the outcome); also returns the instructions the
    /// interpreter executed.
    pub fn run(&self, case: &Case) -> (Outcome, Vec<Instruction>) {
        let (outcome, executed) = self.run_interpreter(case);
        if !self.translate {
            return (outcome, executed);
        }
        let translated = self.run_translated(case);
        (
            Outcome {
                undefined: outcome.undefined,
                ..translated
            },
            executed,
        )
    }

    /// Loads `case`'s code and data pages and makes its CPU.
    fn setup(&self, case: &Case) -> Interp {
        // The second code page exists only for code that needs it (the translator's tests of
        // code crossing pages): the host process maps one page, and a case that reads past
        // it (BT's bit string reaches far) must fault here as it does there.
        let second = if case.code.len() > 0x1000 {
            CODE2_PHYS | 7
        } else {
            0
        };
        self.ram
            .write_obj(
                second,
                GuestAddress(0x4000 + (((CODE_ADDR + 0x1000) >> 12) & 0x1ff) * 8),
            )
            .expect("page table");
        let mut code = case.code.clone();
        code.resize(0x2000, 0xcc);
        self.ram
            .write_slice(&code[..0x1000], GuestAddress(CODE_PHYS))
            .expect("code page");
        self.ram
            .write_slice(&code[0x1000..], GuestAddress(CODE2_PHYS))
            .expect("second code page");
        self.ram
            .write_slice(&case.data, GuestAddress(DATA_PHYS))
            .expect("data page");
        let mem = PhysMem::new(self.ram.clone(), Arc::new(NoDevices));
        let mut interp = Interp::new(self.cpu_for(case), mem);
        interp.model = &emu_core::cpu_model::MAX;
        interp
    }

    /// `case` through the translator, the interpreter running what it declines.
    fn run_translated(&self, case: &Case) -> Outcome {
        use emu_core::engine::ExecEngine;
        let mut jit = jit::Jit::new().expect("translator");
        let mut interp = self.setup(case);
        let mut retired = 0u64;
        let exception = loop {
            if retired > 64 {
                break Exception::Other(0xff);
            }
            match jit.run(&mut interp, 64) {
                Ok(0) => {}
                Ok(n) => {
                    retired += u64::from(n);
                    continue;
                }
                Err(Stop::Fault(f)) => break exception_of(f.vector),
                Err(_) => break Exception::Other(0xfe),
            }
            if interp.peek_instruction().map(|i| i.code()) == Some(iced_x86::Code::Int3) {
                interp.cpu.rip = interp.cpu.rip.wrapping_add(1);
                break Exception::Trap;
            }
            match interp.execute_one() {
                Ok(()) => retired += 1,
                Err(Stop::Trap(_)) => break Exception::Trap,
                Err(Stop::Fault(f)) => break exception_of(f.vector),
                Err(Stop::Halt) | Err(Stop::Shutdown) => break Exception::Other(0xfe),
            }
        };
        self.translated
            .set(self.translated.get() + jit.stats().instructions);
        self.outcome(case, &interp, exception, None)
    }

    /// The state `interp` ended `case` in.
    fn outcome(
        &self,
        case: &Case,
        interp: &Interp,
        exception: Exception,
        undefined: Option<String>,
    ) -> Outcome {
        let mut data = vec![0u8; DATA_SIZE];
        self.ram
            .read_slice(&mut data, GuestAddress(DATA_PHYS))
            .expect("data page");
        let mut regs = interp.cpu.regs;
        if case.compat {
            for v in &mut regs {
                *v &= 0xffff_ffff;
            }
        }
        Outcome {
            regs,
            rip: interp.cpu.rip,
            rflags: interp.cpu.rflags,
            data,
            exception,
            xmm: interp.cpu.fpu.xmm,
            mxcsr: interp.cpu.fpu.mxcsr,
            st: std::array::from_fn(|k| interp.cpu.fpu.st[(interp.cpu.fpu.top() + k) & 7]),
            fcw: interp.cpu.fpu.fcw,
            fsw: interp.cpu.fpu.fsw,
            ftw: interp.cpu.fpu.ftw,
            undefined,
        }
    }

    /// Runs `case` on the interpreter alone.
    fn run_interpreter(&self, case: &Case) -> (Outcome, Vec<Instruction>) {
        let mut interp = self.setup(case);
        let mut executed = Vec::new();
        let (mut undef, mut undefined) = (0u64, None);
        let exception = loop {
            let next = interp.peek_instruction();
            if let Some(i) = &next {
                if undefined.is_none() {
                    let cpu = interp.cpu.clone();
                    undefined = depends_on_undefined(undef, i, &cpu, &mut interp);
                }
                undef = flags_after(undef, i);
                // INT3 at CPL 3: Linux's IDT gate lets it through as #BP (SIGTRAP); the
                // harness's interpreter has no IDT, so take the trap here as the host does.
                if i.code() == iced_x86::Code::Int3 {
                    executed.push(*i);
                    interp.cpu.rip = interp.cpu.rip.wrapping_add(1);
                    break Exception::Trap;
                }
            }
            match interp.execute_one() {
                Ok(()) => {
                    if let Some(i) = next {
                        executed.push(i);
                    }
                    if executed.len() > 64 {
                        break Exception::Other(0xff); // runaway (a branch loop)
                    }
                }
                Err(Stop::Trap(_)) => {
                    // The trapping instruction completed: it counts as executed.
                    if let Some(i) = next {
                        executed.push(i);
                    }
                    break Exception::Trap;
                }
                Err(Stop::Fault(f)) => break exception_of(f.vector),
                Err(Stop::Halt) | Err(Stop::Shutdown) => break Exception::Other(0xfe),
            }
        };
        (self.outcome(case, &interp, exception, undefined), executed)
    }
}

/// What the host's signal for exception `v` says (the oracle sees signals, not vectors).
fn exception_of(v: u8) -> Exception {
    match v {
        vector::DB | vector::BP => Exception::Trap,
        // Linux reports #XM and #MF as SIGFPE, like #DE.
        emu_core::interp::simd::XM | vector::MF => Exception::DivideError,
        vector::UD => Exception::InvalidOpcode,
        vector::DE => Exception::DivideError,
        // Linux reports #BR (BOUND) as SIGSEGV too.
        vector::GP | vector::SS | vector::PF | vector::NP | vector::AC | vector::BR => {
            Exception::Protection
        }
        v => Exception::Other(v),
    }
}

/// x87 arithmetic on two NaNs: Intel returns the one with the larger significand, AMD
/// parts were seen returning ST0's; the interpreter follows Intel's manual.
fn x87_two_nans(i: &Instruction, interp: &mut Interp) -> Option<String> {
    use iced_x86::{Mnemonic as M, OpKind};
    let arith = matches!(
        i.mnemonic(),
        M::Fadd
            | M::Faddp
            | M::Fsub
            | M::Fsubp
            | M::Fsubr
            | M::Fsubrp
            | M::Fmul
            | M::Fmulp
            | M::Fdiv
            | M::Fdivp
            | M::Fdivr
            | M::Fdivrp
            | M::Fyl2x
            | M::Fyl2xp1
            | M::Fpatan
    );
    if !arith {
        return None;
    }
    let f = interp.cpu.fpu.clone();
    let st = |k: usize| -> u128 {
        let mut b = [0u8; 16];
        b[..10].copy_from_slice(&f.st[(f.top() + k) & 7]);
        u128::from_le_bytes(b)
    };
    let is_nan80 = |v: u128| (v >> 64) & 0x7fff == 0x7fff && (v as u64) << 1 != 0;
    let reg = |k: u32| {
        (k < i.op_count() && i.op_kind(k) == OpKind::Register && i.op_register(k).is_st())
            .then(|| i.op_register(k) as usize - iced_x86::Register::ST0 as usize)
    };
    let (a, b) = if let Some(k) = (0..i.op_count()).find(|&k| Interp::is_mem(i, k)) {
        let size = i.memory_size().size();
        let (seg, off) = interp.mem_operand(i, k);
        let mut buf = [0u8; 8];
        let linear = interp.seg_linear(seg, off, size as u32, false).ok()?;
        let priv_ = interp.privilege();
        interp.read_linear(linear, &mut buf[..size], priv_).ok()?;
        let raw = u64::from_le_bytes(buf);
        let nan = match size {
            4 => (raw >> 23) & 0xff == 0xff && raw & 0x7f_ffff != 0,
            8 => (raw >> 52) & 0x7ff == 0x7ff && raw & 0xf_ffff_ffff_ffff != 0,
            _ => false,
        };
        (is_nan80(st(0)), nan)
    } else if i.op_count() == 0 {
        (is_nan80(st(0)), is_nan80(st(1)))
    } else {
        (is_nan80(st(reg(0)?)), is_nan80(st(reg(1)?)))
    };
    (a && b).then(|| format!("{i}: two NaN operands (the part picks which comes back)"))
}

/// F2XM1 outside −1…+1 and FYL2XP1 outside ±(1 − √2/2): the result is undefined (the
/// manual says so; parts compute different things there).
fn trans_out_of_domain(i: &Instruction, interp: &Interp) -> Option<String> {
    use iced_x86::Mnemonic as M;
    let f = &interp.cpu.fpu;
    let top = f.top();
    if f.ftw & (1 << top) == 0 {
        return None; // a stack underflow, defined
    }
    let mut b = [0u8; 16];
    b[..10].copy_from_slice(&f.st[top]);
    let v = u128::from_le_bytes(b);
    let exp = (v >> 64) & 0x7fff;
    let sig = v as u64;
    let nan = exp == 0x7fff && sig << 1 != 0;
    let out = match i.mnemonic() {
        // |x| > 1 (infinities are defined: +inf and −1).
        M::F2xm1 => exp != 0x7fff && (exp > 0x3fff || (exp == 0x3fff && sig != 1 << 63)),
        // |x| > 1 − √2/2 = 0.29289321881345247559… (0x3ffd 95f6_1998_0c43_36f7…).
        M::Fyl2xp1 => !nan && (exp > 0x3ffd || (exp == 0x3ffd && sig > 0x95f6_1998_0c43_36f7)),
        _ => false,
    };
    out.then(|| format!("{i}: an operand outside the instruction's domain"))
}

/// FBLD of a packed BCD value with a digit above 9: undefined.
fn bad_bcd(i: &Instruction, interp: &mut Interp) -> Option<String> {
    if i.mnemonic() != iced_x86::Mnemonic::Fbld {
        return None;
    }
    let (seg, off) = interp.mem_operand(i, 0);
    let linear = interp.seg_linear(seg, off, 10, false).ok()?;
    let mut buf = [0u8; 10];
    let priv_ = interp.privilege();
    interp.read_linear(linear, &mut buf, priv_).ok()?;
    let bad = buf[..9].iter().any(|b| b & 0xf > 9 || b >> 4 > 9);
    bad.then(|| format!("{i}: a BCD digit above 9"))
}

/// Which bits of RFLAGS are compared: the arithmetic flags and DF.
pub const COMPARED_FLAGS: u64 =
    flags::CF | flags::PF | flags::AF | flags::ZF | flags::SF | flags::OF | flags::DF;
