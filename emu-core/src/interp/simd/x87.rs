//! The x87 unit: the register stack (TOP, tags, stack faults), control and status words, the
//! environment and save images, and every instruction whose result needs no arithmetic
//! rounding beyond conversions — loads and stores of all formats, integer and BCD loads and
//! stores, the constants, exchanges, sign changes, comparisons, classification, FCMOVcc,
//! FXTRACT, FPREM, FSCALE. Arithmetic lives in `x87_arith`, the transcendental instructions
//! in `x87_trans`.
//!
//! Values are rustc_apfloat's X87DoubleExtended, so nothing depends on the host's FPU.
//! Exceptions: a masked one sets its FSW flag and the instruction delivers the masked response
//! (the indefinite QNaN, the integer indefinite, a rounded value); an unmasked one also sets
//! ES and B and leaves the destination alone, and the next waiting x87 instruction raises #MF.

use iced_x86::{Instruction, Mnemonic as M, OpKind, Register};
use rustc_apfloat::ieee::{Double, Single, X87DoubleExtended as Ext};
use rustc_apfloat::{Float, FloatConvert, Round, Status};

use crate::interp::cpu::{flags, sreg, Mode};
use crate::interp::fault::{vector, Fault, Result};
use crate::interp::Interp;

/// FSW bits.
pub(super) mod sw {
    pub const IE: u16 = 1 << 0;
    pub const DE: u16 = 1 << 1;
    pub const ZE: u16 = 1 << 2;
    pub const OE: u16 = 1 << 3;
    pub const UE: u16 = 1 << 4;
    pub const PE: u16 = 1 << 5;
    pub const SF: u16 = 1 << 6;
    pub const ES: u16 = 1 << 7;
    pub const C0: u16 = 1 << 8;
    pub const C1: u16 = 1 << 9;
    pub const C2: u16 = 1 << 10;
    pub const C3: u16 = 1 << 14;
    pub const B: u16 = 1 << 15;
    pub const CC: u16 = C0 | C1 | C2 | C3;
}

/// The QNaN floating-point indefinite in extended format.
pub(super) const INDEFINITE: u128 = 0xffff_c000_0000_0000_0000;

pub fn handles(m: M) -> bool {
    super::x87_arith::handles(m)
        || super::x87_trans::handles(m)
        || matches!(
            m,
            M::Fninit
                | M::Fnclex
                | M::Wait
                | M::Fnstsw
                | M::Fnstcw
                | M::Fldcw
                | M::Fld
                | M::Fst
                | M::Fstp
                | M::Fild
                | M::Fist
                | M::Fistp
                | M::Fisttp
                | M::Fxch
                | M::Ffree
                | M::Fincstp
                | M::Fdecstp
                | M::Fldz
                | M::Fld1
                | M::Fldpi
                | M::Fldl2e
                | M::Fldl2t
                | M::Fldlg2
                | M::Fldln2
                | M::Ficom
                | M::Ficomp
                | M::Fxtract
                | M::Fscale
                | M::Fprem
                | M::Fprem1
                | M::Fbld
                | M::Fbstp
                | M::Fchs
                | M::Fabs
                | M::Ftst
                | M::Fxam
                | M::Fnop
                | M::Fcom
                | M::Fcomp
                | M::Fcompp
                | M::Fucom
                | M::Fucomp
                | M::Fucompp
                | M::Fcomi
                | M::Fcomip
                | M::Fucomi
                | M::Fucomip
                | M::Fcmovb
                | M::Fcmove
                | M::Fcmovbe
                | M::Fcmovu
                | M::Fcmovnb
                | M::Fcmovne
                | M::Fcmovnbe
                | M::Fcmovnu
                | M::Fnstenv
                | M::Fldenv
                | M::Fnsave
                | M::Frstor
        )
}

/// The control instructions, which leave the last-instruction pointers alone.
fn is_control(m: M) -> bool {
    non_waiting(m) || matches!(m, M::Wait | M::Fldcw | M::Fldenv | M::Frstor)
}

/// The control instructions that do not wait for pending exceptions.
fn non_waiting(m: M) -> bool {
    matches!(
        m,
        M::Fninit | M::Fnclex | M::Fnstsw | M::Fnstcw | M::Fnstenv | M::Fnsave
    )
}

pub(super) fn ext(bits: u128) -> Ext {
    Ext::from_bits(bits)
}

/// The 80-bit encoding of `x`, with a smallest-exponent value that has its integer bit
/// encoded as the normal number it is (apfloat can produce the pseudo-denormal form).
pub(super) fn bits80(x: Ext) -> u128 {
    let v = x.to_bits() & ((1u128 << 80) - 1);
    if (v >> 64) & 0x7fff == 0 && (v >> 63) & 1 == 1 {
        v | 1 << 64
    } else {
        v
    }
}

fn reg_bytes(v: u128) -> [u8; 10] {
    v.to_le_bytes()[..10].try_into().expect("10 bytes")
}

fn reg_value(b: &[u8; 10]) -> u128 {
    let mut w = [0u8; 16];
    w[..10].copy_from_slice(b);
    u128::from_le_bytes(w)
}

/// ST(i) of an instruction's operand `k` (ST0 when absent).
fn st_index(i: &Instruction, k: u32) -> usize {
    if k < i.op_count() && i.op_kind(k) == OpKind::Register {
        let r = i.op_register(k);
        if r.is_st() {
            return r as usize - Register::ST0 as usize;
        }
    }
    0
}

/// An encoding the x87 does not support as an operand (an unnormal, a pseudo-infinity or a
/// pseudo-NaN: a non-zero exponent with the integer bit clear). Using one is invalid.
pub(super) fn unsupported(v: u128) -> bool {
    (v >> 64) & 0x7fff != 0 && (v >> 63) & 1 == 0
}

/// A denormal operand, pseudo-denormals (integer bit set) included: DE.
pub(super) fn denormal(v: u128) -> bool {
    (v >> 64) & 0x7fff == 0 && v as u64 != 0
}

/// The 2-bit tag of an extended value: 0 valid, 1 zero, 2 special (NaN, infinity, denormal,
/// unsupported).
fn full_tag(v: u128) -> u16 {
    let exp = (v >> 64) & 0x7fff;
    let integer_bit = (v >> 63) & 1;
    let sig = v as u64;
    if exp == 0 {
        if sig == 0 {
            1
        } else {
            2
        }
    } else if exp == 0x7fff || integer_bit == 0 {
        2
    } else {
        0
    }
}

/// A single or double value widened to extended, exactly; SNaNs are quieted (raising IE) with
/// their payload kept, denormal sources raise DE.
fn widen<F: Float + FloatConvert<Ext>>(x: F, frac_bits: u32, width: u32, fsw: &mut u16) -> u128 {
    if x.is_nan() {
        if x.is_signaling() {
            *fsw |= sw::IE;
        }
        let b = x.to_bits();
        let sign = (b >> (width - 1)) & 1;
        let frac = b & ((1u128 << frac_bits) - 1);
        let sig = (1u128 << 63) | (1 << 62) | (frac << (63 - frac_bits));
        return sign << 79 | 0x7fff << 64 | sig;
    }
    if x.is_denormal() {
        *fsw |= sw::DE;
    }
    let mut loses = false;
    bits80(x.convert(&mut loses).value)
}

/// What x87 instructions change of the FPU state (not the SSE part): kept to undo a
/// faulting one (copying the whole state, XMM registers included, cost an x87 loop run in
/// place by the translator a percent of its time).
struct X87State {
    fcw: u16,
    fsw: u16,
    ftw: u8,
    fop: u16,
    fip: u64,
    fcs: u16,
    fdp: u64,
    fds: u16,
    st: [[u8; 10]; 8],
}

impl X87State {
    fn of(f: &super::state::FpuState) -> X87State {
        X87State {
            fcw: f.fcw,
            fsw: f.fsw,
            ftw: f.ftw,
            fop: f.fop,
            fip: f.fip,
            fcs: f.fcs,
            fdp: f.fdp,
            fds: f.fds,
            st: f.st,
        }
    }

    fn restore(&self, f: &mut super::state::FpuState) {
        (f.fcw, f.fsw, f.ftw, f.fop) = (self.fcw, self.fsw, self.ftw, self.fop);
        (f.fip, f.fcs, f.fdp, f.fds) = (self.fip, self.fcs, self.fdp, self.fds);
        f.st = self.st;
    }
}

impl Interp {
    fn fpu_round(&self) -> Round {
        match (self.cpu.fpu.fcw >> 10) & 3 {
            0 => Round::NearestTiesToEven,
            1 => Round::TowardNegative,
            2 => Round::TowardPositive,
            _ => Round::TowardZero,
        }
    }

    pub(super) fn fpu_valid(&self, st: usize) -> bool {
        self.valid(st)
    }

    pub(super) fn fpu_get(&self, st: usize) -> u128 {
        self.st_get(st)
    }

    pub(super) fn fpu_put(&mut self, st: usize, v: u128) {
        self.st_set(st, v);
    }

    pub(super) fn fpu_pop(&mut self) {
        self.fpop();
    }

    /// A raw m32/m64/m80 value widened to extended, with the IE/DE its conversion detected.
    pub(super) fn x87_widen(&self, raw: u128, size: u32) -> (u128, u16) {
        let mut fsw = 0;
        let v = match size {
            4 => widen(Single::from_bits(raw), 23, 32, &mut fsw),
            8 => widen(Double::from_bits(raw), 52, 64, &mut fsw),
            _ => raw,
        };
        (v, fsw)
    }

    fn phys(&self, st: usize) -> usize {
        (self.cpu.fpu.top() + st) & 7
    }

    fn valid(&self, st: usize) -> bool {
        self.cpu.fpu.ftw & (1 << self.phys(st)) != 0
    }

    fn st_get(&self, st: usize) -> u128 {
        reg_value(&self.cpu.fpu.st[self.phys(st)])
    }

    fn st_set(&mut self, st: usize, v: u128) {
        let p = self.phys(st);
        self.cpu.fpu.st[p] = reg_bytes(v);
        self.cpu.fpu.ftw |= 1 << p;
    }

    fn set_top(&mut self, top: usize) {
        let f = &mut self.cpu.fpu;
        f.fsw = (f.fsw & !(7 << 11)) | ((top as u16 & 7) << 11);
    }

    fn fpop(&mut self) {
        let p = self.phys(0);
        self.cpu.fpu.ftw &= !(1 << p);
        self.set_top(p + 1);
    }

    /// Records exceptions (an unmasked one also sets ES and B, for #MF at the next waiting
    /// instruction); returns whether the instruction still delivers its result: not after an
    /// unmasked invalid-operation, denormal or divide-by-zero exception (detected before the
    /// computation), but after unmasked precision ones, which come after it.
    pub(super) fn fpu_raise(&mut self, raised: u16) -> bool {
        let f = &mut self.cpu.fpu;
        f.fsw |= raised & 0x7f;
        let unmasked = raised & 0x3f & !f.fcw;
        if unmasked != 0 {
            f.fsw |= sw::ES | sw::B;
        }
        unmasked & (sw::IE | sw::DE | sw::ZE) == 0
    }

    /// A stack underflow (reading an empty register): IE and SF with C1 = 0.
    pub(super) fn underflow(&mut self) -> bool {
        self.cpu.fpu.fsw &= !sw::C1;
        self.fpu_raise(sw::IE | sw::SF)
    }

    /// Pushes `v` (a push onto a valid register is a stack overflow: IE, SF, C1 = 1; masked,
    /// the indefinite is pushed).
    pub(super) fn fpush(&mut self, v: u128) {
        let new_top = (self.cpu.fpu.top() + 7) & 7;
        if self.cpu.fpu.ftw & (1 << new_top) != 0 {
            self.cpu.fpu.fsw |= sw::C1;
            if !self.fpu_raise(sw::IE | sw::SF) {
                return;
            }
            self.set_top(new_top);
            self.st_set(0, INDEFINITE);
            return;
        }
        self.set_top(new_top);
        self.st_set(0, v);
    }

    /// Pushes `v` whatever the register below TOP holds (a stack fault's masked response,
    /// already accounted for).
    pub(super) fn fpush_unchecked(&mut self, v: u128) {
        let top = (self.cpu.fpu.top() + 7) & 7;
        self.set_top(top);
        self.st_set(0, v);
    }

    /// ST(i), or `None` after a stack underflow was handled.
    fn operand_st(&mut self, st: usize) -> Option<u128> {
        if self.valid(st) {
            Some(self.st_get(st))
        } else {
            self.underflow();
            None
        }
    }

    fn fpu_read(&mut self, i: &Instruction, size: u32) -> Result<u128> {
        if !(1..=16).contains(&size) {
            return Err(Fault::ud().into());
        }
        let (seg, off) = self.mem_operand(i, 0);
        let linear = self.seg_linear(seg, off, size, false)?;
        let mut b = [0u8; 16];
        let priv_ = self.privilege();
        self.read_linear(linear, &mut b[..size as usize], priv_)?;
        Ok(u128::from_le_bytes(b))
    }

    fn fpu_write(&mut self, i: &Instruction, size: u32, v: u128) -> Result<()> {
        if !(1..=16).contains(&size) {
            return Err(Fault::ud().into());
        }
        let (seg, off) = self.mem_operand(i, 0);
        let linear = self.seg_linear(seg, off, size, true)?;
        let priv_ = self.privilege();
        self.write_linear(linear, &v.to_le_bytes()[..size as usize], priv_)
    }

    /// A floating-point memory operand (m32, m64, m80) as an extended value, with the
    /// exceptions the conversion detected (IE for an SNaN, DE for a denormal), not yet raised.
    fn load_real_raw(&mut self, i: &Instruction) -> Result<(u128, u16)> {
        let size = i.memory_size().size() as u32;
        let raw = self.fpu_read(i, size)?;
        let mut fsw = 0;
        let v = match size {
            4 => widen(Single::from_bits(raw), 23, 32, &mut fsw),
            8 => widen(Double::from_bits(raw), 52, 64, &mut fsw),
            _ => raw,
        };
        Ok((v, fsw))
    }

    /// [`load_real_raw`] with its exceptions raised; `None` when an unmasked invalid
    /// operation stops the load (a denormal, even unmasked, is still loaded).
    fn load_real(&mut self, i: &Instruction) -> Result<Option<u128>> {
        let (v, fsw) = self.load_real_raw(i)?;
        if fsw != 0 && !self.fpu_raise(fsw) && fsw & sw::IE != 0 {
            return Ok(None);
        }
        Ok(Some(v))
    }

    pub(super) fn x87(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        let pending = self.cpu.fpu.fsw & sw::ES != 0;
        if !non_waiting(m) && pending {
            match self.irq.clone() {
                // CR0.NE clear on a platform with an interrupt controller: the MS-DOS
                // compatible path. FERR# goes to IRQ 13 (unless the platform asserts IGNNE#)
                // and, as QEMU does, the instruction goes on; the interrupt is taken at the
                // next instruction boundary.
                Some(ic) if self.cpu.cr0 & crate::state::bits::CR0_NE == 0 => {
                    if !ic.ignne() {
                        ic.ferr(true);
                    }
                }
                _ => return Err(Fault::new(vector::MF).into()),
            }
        }
        // A fault (a page fault on the operand, say) leaves the unit as it was.
        let saved = X87State::of(&self.cpu.fpu);
        let r = self.x87_inner(i);
        if r.is_err() {
            saved.restore(&mut self.cpu.fpu);
        } else if !is_control(m) {
            self.note_pointers(i);
        }
        // FERR# follows ES: clearing the exceptions (FNCLEX, FNINIT, FLDCW…) drops it.
        if pending && self.cpu.fpu.fsw & sw::ES == 0 {
            if let Some(ic) = &self.irq {
                ic.ferr(false);
            }
        }
        r
    }

    /// Records the last non-control instruction for FNSTENV/FNSAVE/FXSAVE: its address (CS
    /// and offset), its opcode (the escape byte's low three bits and the ModR/M byte) and, if
    /// it has one, its memory operand (segment and offset; instructions without one leave the
    /// data pointer alone, as the parts do).
    fn note_pointers(&mut self, i: &Instruction) {
        let cs = self.cpu.seg[sreg::CS];
        let fop = match self.fop_hint {
            Some((ip, fop)) if ip == i.ip() => fop,
            _ => {
                let mut bytes = [0u8; 15];
                let len = i.len().min(15);
                let priv_ = self.privilege();
                let linear = cs.base.wrapping_add(i.ip());
                match self.read_linear(linear, &mut bytes[..len], priv_) {
                    Ok(()) => crate::interp::x87_opcode(&bytes[..len]),
                    Err(_) => 0,
                }
            }
        };
        let f = &mut self.cpu.fpu;
        f.fop = fop;
        f.fip = i.ip();
        f.fcs = cs.selector;
        if let Some(k) = (0..i.op_count()).find(|&k| Self::is_mem(i, k)) {
            let (seg, off) = self.mem_operand(i, k);
            self.cpu.fpu.fdp = off;
            self.cpu.fpu.fds = self.cpu.seg[seg].selector;
        }
    }

    /// Checks that a memory destination of `size` bytes can be written, before anything is
    /// computed: a store's page fault comes before its floating-point exceptions.
    fn probe_store(&mut self, i: &Instruction, size: u32) -> Result<()> {
        if !(1..=16).contains(&size) {
            return Err(Fault::ud().into());
        }
        let (seg, off) = self.mem_operand(i, 0);
        let linear = self.seg_linear(seg, off, size, true)?;
        let priv_ = self.privilege();
        self.write_probe(linear, priv_)?;
        self.write_probe(linear.wrapping_add(u64::from(size) - 1), priv_)
    }

    fn x87_inner(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        if m == M::Wait {
            return Ok(());
        }
        match m {
            M::Fninit => {
                let f = &mut self.cpu.fpu;
                f.fcw = super::state::FCW_INIT;
                f.fsw = 0;
                f.ftw = 0;
                f.fop = 0;
                f.fip = 0;
                f.fcs = 0;
                f.fdp = 0;
                f.fds = 0;
                Ok(())
            }
            M::Fnclex => {
                self.cpu.fpu.fsw &= !(0xff | sw::B);
                Ok(())
            }
            M::Fnstsw => {
                let v = u64::from(self.cpu.fpu.fsw);
                self.write_op(i, 0, v)
            }
            M::Fnstcw => self.fpu_write(i, 2, u128::from(self.cpu.fpu.fcw)),
            M::Fldcw => {
                let v = self.fpu_read(i, 2)? as u16;
                let f = &mut self.cpu.fpu;
                // Bits 13–15 do not exist; bit 6 reads as one.
                f.fcw = (v & 0x1f7f) | 0x40;
                // Flags that the new masks leave unmasked make an exception pending.
                if f.fsw & 0x3f & !f.fcw != 0 {
                    f.fsw |= sw::ES | sw::B;
                } else {
                    f.fsw &= !(sw::ES | sw::B);
                }
                Ok(())
            }
            M::Fnstenv | M::Fnsave => self.fpu_store_env(i, m == M::Fnsave),
            M::Fldenv | M::Frstor => self.fpu_load_env(i, m == M::Frstor),
            M::Fnop => Ok(()),
            _ => {
                // Most data instructions define C1 (0 unless a stack overflow or a round-up
                // sets it). FCMOVcc leaves it alone, and so do FCOMI and kin on AMD parts and
                // in QEMU (Intel documents it cleared; the interpreter follows the parts it
                // can be checked against). FFREE, undefined on paper, clears it on AMD.
                if !matches!(
                    m,
                    M::Fcomi
                        | M::Fcomip
                        | M::Fucomi
                        | M::Fucomip
                        | M::Fcmovb
                        | M::Fcmove
                        | M::Fcmovbe
                        | M::Fcmovu
                        | M::Fcmovnb
                        | M::Fcmovne
                        | M::Fcmovnbe
                        | M::Fcmovnu
                ) {
                    self.cpu.fpu.fsw &= !sw::C1;
                }
                if super::x87_arith::handles(m) {
                    return self.x87_arith(i);
                }
                if super::x87_trans::handles(m) {
                    return self.x87_trans(m);
                }
                self.x87_data(i)
            }
        }
    }

    fn x87_data(&mut self, i: &Instruction) -> Result<()> {
        let m = i.mnemonic();
        let mem = i.op_count() > 0 && Self::is_mem(i, 0);
        match m {
            M::Fld => {
                // A push onto a register in use is a stack overflow, whatever is loaded.
                let overflow = self.cpu.fpu.ftw & (1 << ((self.cpu.fpu.top() + 7) & 7)) != 0;
                let v = if mem && overflow {
                    self.load_real_raw(i)?;
                    Some(INDEFINITE)
                } else if mem {
                    self.load_real(i)?
                } else if self.valid(st_index(i, 0)) {
                    Some(self.st_get(st_index(i, 0)))
                } else {
                    // An empty source is the one stack fault reported: the indefinite goes
                    // on the stack whether or not the register below TOP is in use.
                    if self.underflow() {
                        let top = (self.cpu.fpu.top() + 7) & 7;
                        self.set_top(top);
                        self.st_set(0, INDEFINITE);
                    }
                    None
                };
                if let Some(v) = v {
                    self.fpush(v);
                }
                Ok(())
            }
            M::Fild => {
                let size = i.memory_size().size() as u32;
                let raw = self.fpu_read(i, size)?;
                let v = match size {
                    2 => i64::from(raw as u16 as i16),
                    4 => i64::from(raw as u32 as i32),
                    _ => raw as u64 as i64,
                };
                let x = Ext::from_i128(i128::from(v)).value;
                self.fpush(bits80(x));
                Ok(())
            }
            M::Fldz => {
                self.fpush(0);
                Ok(())
            }
            M::Fld1 => {
                self.fpush(0x3fff_8000_0000_0000_0000);
                Ok(())
            }
            M::Fldpi | M::Fldl2e | M::Fldl2t | M::Fldlg2 | M::Fldln2 => {
                // The constants to 64 bits, truncated, with whether the bits beyond make
                // round-to-nearest go up; RC picks the neighbour (PC does not apply).
                let (exp, sig, nearest_up): (u128, u64, bool) = match m {
                    M::Fldpi => (0x4000, 0xc90f_daa2_2168_c234, true),
                    M::Fldl2e => (0x3fff, 0xb8aa_3b29_5c17_f0bb, true),
                    M::Fldl2t => (0x4000, 0xd49a_784b_cd1b_8afe, false),
                    M::Fldlg2 => (0x3ffd, 0x9a20_9a84_fbcf_f798, true),
                    _ => (0x3ffe, 0xb172_17f7_d1cf_79ab, true),
                };
                let up = match (self.cpu.fpu.fcw >> 10) & 3 {
                    0 => nearest_up,
                    2 => true,
                    _ => false,
                };
                let sig = sig + u64::from(up);
                self.fpush(exp << 64 | u128::from(sig));
                Ok(())
            }
            M::Ficom | M::Ficomp => {
                let size = i.memory_size().size() as u32;
                let raw = self.fpu_read(i, size)?;
                let v = match size {
                    2 => i128::from(raw as u16 as i16),
                    _ => i128::from(raw as u32 as i32),
                };
                let src = (bits80(Ext::from_i128(v).value), 0);
                let pops = usize::from(m == M::Ficomp);
                self.fpu_compare_with(Some(src), 0, false, pops, false)
            }
            M::Fxtract => self.fxtract(),
            M::Fbld => self.fbld(i),
            M::Fbstp => self.fbstp(i),
            M::Fprem | M::Fprem1 => self.fprem(m == M::Fprem1),
            M::Fscale => self.fscale(),
            M::Fst | M::Fstp => {
                let pop = m == M::Fstp;
                if mem {
                    self.probe_store(i, i.memory_size().size() as u32)?;
                }
                let Some(v) = self.operand_st(0) else {
                    // Masked underflow stores the indefinite.
                    if self.cpu.fpu.fsw & sw::ES == 0 {
                        if mem {
                            let size = i.memory_size().size() as u32;
                            let ind = match size {
                                4 => 0xffc0_0000,
                                8 => 0xfff8_0000_0000_0000,
                                _ => INDEFINITE,
                            };
                            self.fpu_write(i, size, ind)?;
                        } else {
                            self.st_set(st_index(i, 0), INDEFINITE);
                        }
                        if pop {
                            self.fpop();
                        }
                    }
                    return Ok(());
                };
                if mem {
                    let size = i.memory_size().size() as u32;
                    let out = match size {
                        4 => self.narrow::<Single>(v, 32),
                        8 => self.narrow::<Double>(v, 64),
                        _ => Some(v),
                    };
                    let Some(out) = out else { return Ok(()) };
                    self.fpu_write(i, size, out)?;
                } else {
                    self.st_set(st_index(i, 0), v);
                }
                if pop {
                    self.fpop();
                }
                Ok(())
            }
            M::Fist | M::Fistp | M::Fisttp => {
                let size = i.memory_size().size() as u32;
                self.probe_store(i, size)?;
                let pop = m != M::Fist;
                let indefinite = 1u128 << (8 * size - 1);
                let out = match self.operand_st(0) {
                    None => {
                        if self.cpu.fpu.fsw & sw::ES != 0 {
                            return Ok(());
                        }
                        indefinite
                    }
                    Some(v) => {
                        let x = ext(v);
                        let mut exact = false;
                        // FISTTP (SSE3) truncates whatever RC says.
                        let round = if m == M::Fisttp {
                            Round::TowardZero
                        } else {
                            self.fpu_round()
                        };
                        let r = x.to_i128_r(8 * size as usize, round, &mut exact);
                        if x.is_nan() || unsupported(v) || r.status.contains(Status::INVALID_OP) {
                            if !self.fpu_raise(sw::IE) {
                                return Ok(());
                            }
                            indefinite
                        } else {
                            if r.status.contains(Status::INEXACT) {
                                if !self.fpu_raise(sw::PE) {
                                    return Ok(());
                                }
                                // C1: the integer is further from zero than the value.
                                let back = Ext::from_i128(r.value).value;
                                if back.abs() > x.abs() {
                                    self.cpu.fpu.fsw |= sw::C1;
                                }
                            }
                            r.value as u128 & ((1u128 << (8 * size)) - 1)
                        }
                    }
                };
                self.fpu_write(i, size, out)?;
                if pop {
                    self.fpop();
                }
                Ok(())
            }
            M::Fxch => {
                let k = if i.op_count() == 0 {
                    1
                } else {
                    st_index(i, 1).max(st_index(i, 0))
                };
                if !self.valid(0) || !self.valid(k) {
                    // Masked: the empty ones become the indefinite first.
                    if !self.underflow() {
                        return Ok(());
                    }
                    for s in [0, k] {
                        if !self.valid(s) {
                            self.st_set(s, INDEFINITE);
                        }
                    }
                }
                let (a, b) = (self.st_get(0), self.st_get(k));
                self.st_set(0, b);
                self.st_set(k, a);
                Ok(())
            }
            M::Ffree => {
                let p = self.phys(st_index(i, 0));
                self.cpu.fpu.ftw &= !(1 << p);
                Ok(())
            }
            M::Fincstp => {
                self.set_top(self.cpu.fpu.top() + 1);
                Ok(())
            }
            M::Fdecstp => {
                self.set_top(self.cpu.fpu.top() + 7);
                Ok(())
            }
            M::Fchs | M::Fabs => {
                let Some(v) = self.operand_st(0) else {
                    if self.cpu.fpu.fsw & sw::ES == 0 {
                        self.st_set(0, INDEFINITE);
                    }
                    return Ok(());
                };
                let sign = 1u128 << 79;
                let r = if m == M::Fchs { v ^ sign } else { v & !sign };
                self.st_set(0, r);
                Ok(())
            }
            M::Fxam => {
                let f = &mut self.cpu.fpu;
                f.fsw &= !sw::CC;
                let p = (f.top()) & 7;
                let v = reg_value(&f.st[p]);
                if v >> 79 & 1 != 0 {
                    f.fsw |= sw::C1;
                }
                let (c3, c2, c0) = if f.ftw & (1 << p) == 0 {
                    (true, false, true)
                } else {
                    let exp = (v >> 64) & 0x7fff;
                    let integer = (v >> 63) & 1 == 1;
                    let frac = v as u64 & !(1 << 63);
                    match (exp, integer, frac) {
                        (0, false, 0) => (true, false, false),
                        (0, _, _) => (true, true, false),
                        (0x7fff, true, 0) => (false, true, true),
                        (0x7fff, true, _) => (false, false, true),
                        (_, false, _) => (false, false, false),
                        _ => (false, true, false),
                    }
                };
                for (on, bit) in [(c3, sw::C3), (c2, sw::C2), (c0, sw::C0)] {
                    if on {
                        f.fsw |= bit;
                    }
                }
                Ok(())
            }
            // FTST: ST0 against +0.0.
            M::Ftst => self.fpu_compare_with(Some((0, 0)), 0, false, 0, false),
            M::Fcom | M::Fcomp | M::Fcompp | M::Fucom | M::Fucomp | M::Fucompp => {
                let pops = match m {
                    M::Fcomp | M::Fucomp => 1,
                    M::Fcompp | M::Fucompp => 2,
                    _ => 0,
                };
                let quiet = matches!(m, M::Fucom | M::Fucomp | M::Fucompp);
                let src = if mem {
                    Some(self.load_real_raw(i)?)
                } else {
                    None
                };
                let k = if i.op_count() == 0 {
                    1
                } else {
                    st_index(i, 1).max(st_index(i, 0))
                };
                self.fpu_compare_with(src, k, quiet, pops, false)
            }
            M::Fcomi | M::Fcomip | M::Fucomi | M::Fucomip => {
                let pops = usize::from(matches!(m, M::Fcomip | M::Fucomip));
                let quiet = matches!(m, M::Fucomi | M::Fucomip);
                self.fpu_compare_with(None, st_index(i, 1), quiet, pops, true)
            }
            M::Fcmovb
            | M::Fcmove
            | M::Fcmovbe
            | M::Fcmovu
            | M::Fcmovnb
            | M::Fcmovne
            | M::Fcmovnbe
            | M::Fcmovnu => {
                let c = &self.cpu;
                let (cf, zf, pf) = (c.flag(flags::CF), c.flag(flags::ZF), c.flag(flags::PF));
                let take = match m {
                    M::Fcmovb => cf,
                    M::Fcmove => zf,
                    M::Fcmovbe => cf || zf,
                    M::Fcmovu => pf,
                    M::Fcmovnb => !cf,
                    M::Fcmovne => !zf,
                    M::Fcmovnbe => !cf && !zf,
                    _ => !pf,
                };
                let k = st_index(i, 1);
                if !self.valid(0) || !self.valid(k) {
                    if self.underflow() {
                        self.st_set(0, INDEFINITE);
                    }
                    return Ok(());
                }
                if take {
                    let v = self.st_get(k);
                    self.st_set(0, v);
                }
                Ok(())
            }
            _ => Err(Fault::ud().into()),
        }
    }

    /// Compares ST0 with `src` (a loaded value and what its conversion detected) or ST(k):
    /// C3 C2 C0 (or ZF PF CF for FCOMI) 000 greater, 001 less, 100 equal, 111 unordered.
    /// Checked in priority order: an empty register (stack underflow), NaNs (IE for SNaNs,
    /// and for QNaNs unless `quiet`), then denormals (DE). An unmasked IE still sets the
    /// unordered result but pops nothing, and so does an unmasked DE.
    fn fpu_compare_with(
        &mut self,
        src: Option<(u128, u16)>,
        k: usize,
        quiet: bool,
        pops: usize,
        eflags: bool,
    ) -> Result<()> {
        let empty = !self.valid(0) || (src.is_none() && !self.valid(k));
        let mut pops = pops;
        let outcome = if empty {
            // Unmasked, the result is still "unordered", but nothing is popped.
            if !self.underflow() {
                pops = 0;
            }
            None
        } else {
            let (b_bits, load_flags) = src.unwrap_or_else(|| (self.st_get(k), 0));
            let a_bits = self.st_get(0);
            let (a, b) = (ext(a_bits), ext(b_bits));
            let bad = unsupported(a_bits) || unsupported(b_bits);
            let nan = a.is_nan() || b.is_nan() || bad;
            let mut raised = 0;
            if load_flags & sw::IE != 0
                || bad
                || a.is_signaling()
                || b.is_signaling()
                || (!quiet && nan)
            {
                raised |= sw::IE;
            } else if !nan && (load_flags & sw::DE != 0 || denormal(a_bits) || denormal(b_bits)) {
                raised |= sw::DE;
            }
            // Unmasked, the condition codes are still set, but nothing is popped.
            if raised != 0 && !self.fpu_raise(raised) {
                pops = 0;
            }
            if bad {
                None
            } else {
                a.partial_cmp(&b)
            }
        };
        let (c3, c2, c0) = match outcome {
            None => (true, true, true),
            Some(std::cmp::Ordering::Greater) => (false, false, false),
            Some(std::cmp::Ordering::Less) => (false, false, true),
            Some(std::cmp::Ordering::Equal) => (true, false, false),
        };
        if eflags {
            let c = &mut self.cpu;
            c.rflags &= !(flags::ZF | flags::PF | flags::CF | flags::OF | flags::SF | flags::AF);
            for (on, bit) in [(c3, flags::ZF), (c2, flags::PF), (c0, flags::CF)] {
                if on {
                    c.rflags |= bit;
                }
            }
        } else {
            let f = &mut self.cpu.fpu;
            f.fsw &= !(sw::C0 | sw::C2 | sw::C3);
            for (on, bit) in [(c3, sw::C3), (c2, sw::C2), (c0, sw::C0)] {
                if on {
                    f.fsw |= bit;
                }
            }
        }
        for _ in 0..pops {
            self.fpop();
        }
        Ok(())
    }

    /// ST0 rounded to single or double for FST m32/m64 (RC applies, PC does not): OE, UE, PE
    /// and C1 (rounded up); `None` if an unmasked exception stops the store.
    fn narrow<F: Float + FloatConvert<Ext>>(&mut self, v: u128, width: u32) -> Option<u128>
    where
        Ext: FloatConvert<F>,
    {
        let x = ext(v);
        if unsupported(v) {
            if !self.fpu_raise(sw::IE) {
                return None;
            }
            return Some(if width == 32 {
                0xffc0_0000
            } else {
                0xfff8_0000_0000_0000
            });
        }
        if x.is_nan() {
            if x.is_signaling() && !self.fpu_raise(sw::IE) {
                return None;
            }
            let frac_bits = if width == 32 { 23 } else { 52 };
            let exp_bits = width - 1 - frac_bits;
            let sign = (v >> 79) & 1;
            let frac = ((v as u64) >> (63 - frac_bits)) as u128 & ((1 << frac_bits) - 1);
            let quiet = 1u128 << (frac_bits - 1);
            return Some(
                sign << (width - 1) | ((1u128 << exp_bits) - 1) << frac_bits | frac | quiet,
            );
        }
        // FST signals no denormal-operand exception.
        let mut raised = 0;
        let mut loses = false;
        let r = FloatConvert::<F>::convert_r(x, self.fpu_round(), &mut loses);
        let frac_bits = if width == 32 { 23 } else { 52 };
        let emax_plus_1 = 1 << (width - 2 - frac_bits);
        // apfloat reports a directed rounding that stops at the largest finite value as
        // inexact only; x86 calls it overflow.
        let overflow = r.status.contains(Status::OVERFLOW)
            || (r.value.is_largest()
                && r.status.contains(Status::INEXACT)
                && x.ilogb() >= emax_plus_1);
        if overflow {
            raised |= sw::OE;
        }
        let fcw = self.cpu.fpu.fcw;
        // Unmasked, underflow means any tiny result, exact or not (and the store is skipped);
        // masked, a tiny result that is also inexact.
        let smallest: Ext = {
            let mut l = false;
            F::smallest_normalized().convert(&mut l).value
        };
        let tiny = !x.is_zero() && !x.is_infinite() && x.abs() < smallest;
        if tiny && (fcw & sw::UE == 0 || r.status.contains(Status::UNDERFLOW)) {
            raised |= sw::UE;
        }
        let unmasked_range = raised & (sw::OE | sw::UE) & !fcw != 0;
        if r.status.contains(Status::INEXACT) && !unmasked_range {
            raised |= sw::PE;
        }
        if raised != 0 && !self.fpu_raise(raised) {
            return None;
        }
        // An unmasked overflow or underflow stores nothing to memory.
        if unmasked_range {
            return None;
        }
        if r.status.contains(Status::INEXACT) {
            let mut l = false;
            let back: Ext = r.value.convert(&mut l).value;
            if back.abs() > x.abs() {
                self.cpu.fpu.fsw |= sw::C1;
            }
        }
        Some(r.value.to_bits())
    }

    /// FBLD: an 18-digit packed BCD integer (digits low first, the sign in bit 79) pushed as
    /// an exact value. Digits above 9 are undefined by the manual; they count with their
    /// nibble value here.
    fn fbld(&mut self, i: &Instruction) -> Result<()> {
        let raw = self.fpu_read(i, 10)?;
        let magnitude = (0..18)
            .rev()
            .fold(0i128, |acc, k| acc * 10 + ((raw >> (4 * k)) & 0xf) as i128);
        let v = if (raw >> 79) & 1 == 1 {
            -magnitude
        } else {
            magnitude
        };
        let mut bits = bits80(Ext::from_i128(v).value);
        if v == 0 && (raw >> 79) & 1 == 1 {
            bits |= 1 << 79; // -0
        }
        let overflow = self.cpu.fpu.ftw & (1 << ((self.cpu.fpu.top() + 7) & 7)) != 0;
        if overflow {
            self.cpu.fpu.fsw |= sw::C1;
            if self.fpu_raise(sw::IE | sw::SF) {
                let top = (self.cpu.fpu.top() + 7) & 7;
                self.set_top(top);
                self.st_set(0, INDEFINITE);
            }
            return Ok(());
        }
        self.fpush(bits);
        Ok(())
    }

    /// FBSTP: ST0 rounded to an integer (RC) and stored as 18-digit packed BCD, then popped;
    /// a NaN, an infinity or a magnitude of 10^18 or more is invalid (masked: the BCD
    /// indefinite).
    fn fbstp(&mut self, i: &Instruction) -> Result<()> {
        const BCD_INDEFINITE: u128 = 0xffff_c000_0000_0000_0000;
        self.probe_store(i, 10)?;
        let Some(v) = self.operand_st(0) else {
            if self.cpu.fpu.fsw & sw::ES == 0 {
                self.fpu_write(i, 10, BCD_INDEFINITE)?;
                self.fpop();
            }
            return Ok(());
        };
        let x = ext(v);
        let mut exact = false;
        let r = x.to_i128_r(64, self.fpu_round(), &mut exact);
        let limit = 1_000_000_000_000_000_000i128;
        let out = if unsupported(v)
            || x.is_nan()
            || x.is_infinite()
            || r.status.contains(Status::INVALID_OP)
            || r.value.abs() >= limit
        {
            if !self.fpu_raise(sw::IE) {
                return Ok(());
            }
            BCD_INDEFINITE
        } else {
            if r.status.contains(Status::INEXACT) {
                self.fpu_raise(sw::PE);
                let back = Ext::from_i128(r.value).value;
                if back.abs() > x.abs() {
                    self.cpu.fpu.fsw |= sw::C1;
                }
            }
            let mut n = r.value.unsigned_abs();
            let mut bcd = 0u128;
            for k in 0..18 {
                bcd |= (n % 10) << (4 * k);
                n /= 10;
            }
            bcd | u128::from(x.is_negative()) << 79
        };
        self.fpu_write(i, 10, out)?;
        self.fpop();
        Ok(())
    }

    /// FXTRACT: ST0 becomes its exponent (as a value) and its significand is pushed.
    fn fxtract(&mut self) -> Result<()> {
        // An empty ST0, or no room for the push: one stack fault, and (masked) ST0 and the
        // pushed register both hold the indefinite.
        let overflow = self.cpu.fpu.ftw & (1 << ((self.cpu.fpu.top() + 7) & 7)) != 0;
        if !self.valid(0) || overflow {
            let ok = if self.valid(0) {
                self.cpu.fpu.fsw |= sw::C1;
                self.fpu_raise(sw::IE | sw::SF)
            } else {
                self.underflow()
            };
            if ok {
                self.st_set(0, INDEFINITE);
                let top = (self.cpu.fpu.top() + 7) & 7;
                self.set_top(top);
                self.st_set(0, INDEFINITE);
            }
            return Ok(());
        }
        let v = self.st_get(0);
        let x = ext(v);
        let sign = v & (1 << 79);
        let (exponent, significand) = if unsupported(v) || x.is_signaling() {
            if !self.fpu_raise(sw::IE) {
                return Ok(());
            }
            let q = if unsupported(v) {
                INDEFINITE
            } else {
                v | 1 << 62
            };
            (q, q)
        } else if x.is_nan() {
            (v, v)
        } else if x.is_infinite() {
            (0x7fff_8000_0000_0000_0000, v)
        } else if x.is_zero() {
            // Divide-by-zero: the exponent of zero is -infinity.
            if !self.fpu_raise(sw::ZE) {
                return Ok(());
            }
            (0xffff_8000_0000_0000_0000, v)
        } else {
            if denormal(v) && !self.fpu_raise(sw::DE) {
                return Ok(());
            }
            let e = x.ilogb();
            let sig = x.scalbn(-e);
            (
                bits80(Ext::from_i128(i128::from(e)).value),
                sign | (bits80(sig) & !(1 << 79)),
            )
        };
        self.st_set(0, exponent);
        self.fpush(significand);
        Ok(())
    }

    /// FPREM/FPREM1: ST0 becomes its remainder by ST1 (quotient truncated, or rounded to
    /// nearest-even for FPREM1), exactly, with the quotient's low three bits in C0, C3, C1
    /// and C2 clear. When the exponents differ by 64 or more the reduction is partial: ST0 is
    /// reduced by a multiple of ST1 × 2^(D−N) and C2 is set (N = 32 + D mod 32 here; the
    /// manual leaves N to the implementation).
    fn fprem(&mut self, nearest: bool) -> Result<()> {
        // C2 (incomplete reduction) is clear unless a partial remainder says otherwise.
        self.cpu.fpu.fsw &= !sw::C2;
        if !self.valid(0) || !self.valid(1) {
            if self.underflow() {
                self.st_set(0, INDEFINITE);
            }
            return Ok(());
        }
        let (a, b) = (self.st_get(0), self.st_get(1));
        let (x, y) = (ext(a), ext(b));
        let set_cc = |f: &mut super::state::FpuState, c2: bool, q: u64| {
            f.fsw &= !(sw::C0 | sw::C1 | sw::C2 | sw::C3);
            if c2 {
                f.fsw |= sw::C2;
            }
            if q & 4 != 0 {
                f.fsw |= sw::C0;
            }
            if q & 2 != 0 {
                f.fsw |= sw::C3;
            }
            if q & 1 != 0 {
                f.fsw |= sw::C1;
            }
        };
        if unsupported(a) || unsupported(b) {
            if self.fpu_raise(sw::IE) {
                self.st_set(0, INDEFINITE);
            }
            return Ok(());
        }
        if x.is_nan() || y.is_nan() {
            if (x.is_signaling() || y.is_signaling()) && !self.fpu_raise(sw::IE) {
                return Ok(());
            }
            self.st_set(0, super::x87_arith::nan_pick(a, b));
            return Ok(());
        }
        if x.is_infinite() || y.is_zero() {
            if self.fpu_raise(sw::IE) {
                self.st_set(0, INDEFINITE);
            }
            return Ok(());
        }
        if (denormal(a) || denormal(b)) && !self.fpu_raise(sw::DE) {
            return Ok(());
        }
        if x.is_zero() || y.is_infinite() {
            // ST0 unchanged (a pseudo-denormal comes back in its normal encoding).
            self.st_set(0, bits80(x));
            set_cc(&mut self.cpu.fpu, false, 0);
            return Ok(());
        }
        // a = ma × 2^ea, b = mb × 2^eb with 64-bit integer significands.
        let parts = |v: u128| -> (u128, i32) {
            let field = ((v >> 64) & 0x7fff) as i32;
            let sig = v as u64 as u128;
            let e = if field == 0 {
                1 - 16383 - 63
            } else {
                field - 16383 - 63
            };
            // Normalize denormals so the exponent difference is the true one.
            let shift = sig.leading_zeros() as i32 - 64;
            (sig << shift, e - shift)
        };
        let ((ma, ea), (mb, eb)) = (parts(a), parts(b));
        let d = ea - eb;
        let negative = (a >> 79) & 1 == 1;
        let (r, e_r, q, partial) = if d >= 64 {
            // Partial: reduce by ST1 × 2^(d - n).
            let n = 32 + d % 32;
            let scale = d - n;
            let num = ma << n;
            let q = num / mb;
            (num - q * mb, eb + scale, q as u64, true)
        } else if d >= 0 {
            let num = ma << d;
            (num % mb, eb, (num / mb) as u64, false)
        } else {
            // |ST0| < |ST1|: quotient 0 (FPREM1 may still round it to 1 below).
            (ma, ea, 0, false)
        };
        // FPREM1 rounds the quotient to nearest: take one more ST1 when the remainder is
        // more than half of it (or exactly half with an odd quotient).
        let (mut r, mut e_r, mut q, mut flip) = (r, e_r, q, false);
        if nearest && !partial {
            // Compare 2r with mb at a common exponent.
            let (r2, b2) = if e_r >= eb {
                let s = (e_r - eb) as u32;
                if s >= 64 {
                    (u128::MAX, mb)
                } else {
                    ((r << s) << 1, mb)
                }
            } else {
                let s = (eb - e_r) as u32;
                if s >= 64 {
                    (r << 1, u128::MAX)
                } else {
                    (r << 1, mb << s)
                }
            };
            if r2 > b2 || (r2 == b2 && q & 1 == 1) {
                // New remainder: mb·2^eb − r·2^e_r, at the smaller exponent.
                let e = e_r.min(eb);
                let big = mb << (eb - e) as u32;
                let small = r << (e_r - e) as u32;
                r = big - small;
                e_r = e;
                q = q.wrapping_add(1);
                flip = true;
            }
        }
        let sign = negative != flip;
        let mag = if r == 0 {
            0
        } else {
            let v = Ext::from_u128(r).value.scalbn(e_r);
            bits80(v) & !(1 << 79)
        };
        let result = mag | u128::from(sign) << 79;
        // An exact result that is tiny is an underflow only when UE is unmasked.
        if mag != 0 && (mag >> 64) & 0x7fff == 0 && self.cpu.fpu.fcw & sw::UE == 0 {
            self.fpu_raise(sw::UE);
        }
        self.st_set(0, result);
        // A partial reduction reports no quotient bits (as AMD parts do; Intel leaves them
        // undefined).
        set_cc(&mut self.cpu.fpu, partial, if partial { 0 } else { q });
        Ok(())
    }

    /// FSCALE: ST0 × 2^trunc(ST1), rounded as PC and RC say.
    fn fscale(&mut self) -> Result<()> {
        if !self.valid(0) || !self.valid(1) {
            if self.underflow() {
                self.st_set(0, INDEFINITE);
            }
            return Ok(());
        }
        let (a, b) = (self.st_get(0), self.st_get(1));
        let (x, y) = (ext(a), ext(b));
        let r = if unsupported(a) || unsupported(b) {
            self.fpu_raise(sw::IE).then_some(INDEFINITE)
        } else if x.is_nan() || y.is_nan() {
            if (x.is_signaling() || y.is_signaling()) && !self.fpu_raise(sw::IE) {
                None
            } else {
                Some(super::x87_arith::nan_pick(a, b))
            }
        } else if y.is_infinite() {
            // ×2^+inf: infinity (0 is invalid); ×2^-inf: zero (infinity is invalid).
            let grow = !y.is_negative();
            if (grow && x.is_zero()) || (!grow && x.is_infinite()) {
                self.fpu_raise(sw::IE).then_some(INDEFINITE)
            } else if x.is_zero() || x.is_infinite() {
                Some(a)
            } else if (denormal(a) || denormal(b)) && !self.fpu_raise(sw::DE) {
                None
            } else if grow {
                Some(a & (1 << 79) | 0x7fff_8000_0000_0000_0000)
            } else {
                Some(a & (1 << 79))
            }
        } else if (denormal(a) || denormal(b)) && !self.fpu_raise(sw::DE) {
            None
        } else if x.is_zero() || x.is_infinite() {
            Some(a)
        } else {
            let mut exact = false;
            let n = y
                .to_i128_r(32, Round::TowardZero, &mut exact)
                .value
                .clamp(-40_000, 40_000) as i32;
            self.x87_scale(x, n)
        };
        if let Some(r) = r {
            self.st_set(0, r);
        }
        Ok(())
    }

    /// The full 16-bit tag word (2 bits per physical register).
    fn full_tag_word(&self) -> u16 {
        let f = &self.cpu.fpu;
        (0..8).fold(0, |tw, p| {
            let tag = if f.ftw & (1 << p) == 0 {
                3
            } else {
                full_tag(reg_value(&f.st[p]))
            };
            tw | tag << (2 * p)
        })
    }

    /// FNSTENV/FNSAVE (14 bytes with a 16-bit operand size, else 28; the protected-mode or
    /// the real-mode layout);
    /// FNSAVE adds ST0–ST7 and then initializes the unit; FNSTENV masks all exceptions.
    fn fpu_store_env(&mut self, i: &Instruction, save: bool) -> Result<()> {
        let small = i.code().op_code().operand_size() == 16;
        let f = self.cpu.fpu.clone();
        let tw = self.full_tag_word();
        let mut img = Vec::with_capacity(108);
        let word = |img: &mut Vec<u8>, v: u64, small: bool| {
            if small {
                img.extend_from_slice(&(v as u16).to_le_bytes());
            } else {
                img.extend_from_slice(&(v as u32).to_le_bytes());
            }
        };
        word(
            &mut img,
            u64::from(f.fcw) | if small { 0 } else { 0xffff_0000 },
            small,
        );
        word(
            &mut img,
            u64::from(f.fsw) | if small { 0 } else { 0xffff_0000 },
            small,
        );
        word(
            &mut img,
            u64::from(tw) | if small { 0 } else { 0xffff_0000 },
            small,
        );
        if matches!(self.cpu.mode(), Mode::Real | Mode::Virtual8086) {
            // Real-mode layout: linear instruction and data addresses, the opcode beside the
            // instruction address's high bits (SDM Vol. 1, figures 8-10 and 8-12).
            let ip = (u64::from(f.fcs) << 4).wrapping_add(f.fip) & 0xffff_ffff;
            let dp = (u64::from(f.fds) << 4).wrapping_add(f.fdp) & 0xffff_ffff;
            let (hi_ip, hi_dp) = if small {
                ((ip >> 16) & 0xf, (dp >> 16) & 0xf)
            } else {
                (ip >> 16, dp >> 16)
            };
            let reserved = if small { 0 } else { 0xffff_0000 };
            word(&mut img, ip & 0xffff | reserved, small);
            word(&mut img, hi_ip << 12 | u64::from(f.fop & 0x7ff), small);
            word(&mut img, dp & 0xffff | reserved, small);
            word(&mut img, hi_dp << 12, small);
        } else {
            word(&mut img, f.fip, small);
            word(&mut img, u64::from(f.fcs) | u64::from(f.fop) << 16, small);
            word(&mut img, f.fdp, small);
            word(
                &mut img,
                u64::from(f.fds) | if small { 0 } else { 0xffff_0000 },
                small,
            );
        }
        if save {
            for k in 0..8 {
                img.extend_from_slice(&f.st[(f.top() + k) & 7]);
            }
        }
        let (seg, off) = self.mem_operand(i, 0);
        let linear = self.seg_linear(seg, off, img.len() as u32, true)?;
        let priv_ = self.privilege();
        self.write_linear(linear, &img, priv_)?;
        if save {
            let f = &mut self.cpu.fpu;
            f.fcw = super::state::FCW_INIT;
            f.fsw = 0;
            f.ftw = 0;
            f.fop = 0;
            f.fip = 0;
            f.fcs = 0;
            f.fdp = 0;
            f.fds = 0;
        } else {
            // Every exception masked: none is pending any more (ES and B clear, as the parts
            // show).
            self.cpu.fpu.fcw |= 0x3f;
            self.cpu.fpu.fsw &= !(sw::ES | sw::B);
        }
        Ok(())
    }

    fn fpu_load_env(&mut self, i: &Instruction, restore: bool) -> Result<()> {
        let small = i.code().op_code().operand_size() == 16;
        let env_len = if small { 14 } else { 28 };
        let len = env_len + if restore { 80 } else { 0 };
        let (seg, off) = self.mem_operand(i, 0);
        let linear = self.seg_linear(seg, off, len as u32, false)?;
        let mut img = vec![0u8; len];
        let priv_ = self.privilege();
        self.read_linear(linear, &mut img, priv_)?;
        let step = if small { 2 } else { 4 };
        let real = matches!(self.cpu.mode(), Mode::Real | Mode::Virtual8086);
        let field = |k: usize| -> u64 {
            let o = k * step;
            if small {
                u64::from(u16::from_le_bytes([img[o], img[o + 1]]))
            } else {
                u64::from(u32::from_le_bytes(
                    img[o..o + 4].try_into().expect("4 bytes"),
                ))
            }
        };
        let f = &mut self.cpu.fpu;
        f.fcw = (field(0) as u16 & 0x1f7f) | 0x40;
        f.fsw = field(1) as u16;
        let tw = field(2) as u16;
        f.ftw = (0..8).fold(0, |t, p| {
            if (tw >> (2 * p)) & 3 == 3 {
                t
            } else {
                t | 1 << p
            }
        });
        if real {
            // Linear addresses: kept as offsets with zero selectors.
            let hi = |v: u64| {
                if small {
                    (v >> 12) & 0xf
                } else {
                    (v >> 12) & 0xffff
                }
            };
            f.fip = (field(3) & 0xffff) | hi(field(4)) << 16;
            f.fcs = 0;
            f.fop = field(4) as u16 & 0x7ff;
            f.fdp = (field(5) & 0xffff) | hi(field(6)) << 16;
            f.fds = 0;
        } else {
            f.fip = field(3);
            f.fcs = field(4) as u16;
            f.fop = (field(4) >> 16) as u16 & 0x7ff;
            f.fdp = field(5);
            f.fds = field(6) as u16;
        }
        if restore {
            let top = f.top();
            for k in 0..8 {
                let o = env_len + 10 * k;
                f.st[(top + k) & 7].copy_from_slice(&img[o..o + 10]);
            }
        }
        if f.fsw & 0x3f & !f.fcw != 0 {
            f.fsw |= sw::ES | sw::B;
        } else {
            f.fsw &= !(sw::ES | sw::B);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_operand_classes() {
        let one = 0x3fff_8000_0000_0000_0000u128;
        assert_eq!(full_tag(one), 0);
        assert_eq!(full_tag(0), 1);
        assert_eq!(full_tag(1 << 79), 1);
        assert_eq!(full_tag(1), 2); // denormal
        assert_eq!(full_tag(INDEFINITE), 2);
        assert_eq!(full_tag(0x3fff_0000_0000_0000_0001), 2); // unnormal
        assert!(unsupported(0x3fff_0000_0000_0000_0001));
        assert!(unsupported(0x7fff_0000_0000_0000_0000)); // pseudo-infinity
        assert!(!unsupported(one));
        assert!(denormal(0x0000_8000_0000_0000_0001)); // pseudo-denormal
        assert!(!denormal(0));
    }

    #[test]
    fn widening_keeps_nan_payloads_and_flags_snans() {
        let mut fsw = 0;
        let v = widen(Single::from_bits(0x7fa0_0001), 23, 32, &mut fsw);
        assert_eq!(fsw, sw::IE);
        assert_eq!(v, 0x7fff_e000_0100_0000_0000);
        let mut fsw = 0;
        let d = widen(Single::from_bits(1), 23, 32, &mut fsw);
        assert_eq!(fsw, sw::DE);
        assert_eq!(full_tag(d), 0, "a single denormal is normal in extended");
    }
}
