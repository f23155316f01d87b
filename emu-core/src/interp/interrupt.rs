//! Delivering exceptions and interrupts (IVT in real mode, IDT gates in protected and IA-32e
//! mode, with stack switches from the TSS and IST), the double- and triple-fault rules, and
//! IRET.

use super::cpu::{flags::*, sreg, Mode};
use super::fault::{vector, Fault, Result, Stop};
use super::mmu::Privilege;
use super::operand::mask;
use super::segment::{null_segment, parse_descriptor};
use super::Interp;

/// What raised the event: its origin decides the IDT privilege check and the saved RIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A fault or trap raised by the processor (RIP as the caller set it).
    Exception,
    /// INT n / INT3 / INTO: the gate's DPL must allow the CPL.
    Software,
    /// An external interrupt (sets the EXT bit in error codes).
    External,
}

impl Interp {
    /// Delivers exception `f`, escalating to #DF and to shutdown as the SDM's Table 6-5 says.
    pub fn raise(&mut self, f: Fault) -> std::result::Result<(), Stop> {
        let mut current = f;
        for _ in 0..3 {
            match self.deliver(
                current.vector,
                current.error_code,
                EventKind::Exception,
                current.cr2,
            ) {
                Ok(()) => return Ok(()),
                Err(Stop::Fault(next)) => {
                    if current.vector == vector::DF {
                        log::warn!("software CPU: triple fault ({next:?} while delivering #DF)");
                        return Err(Stop::Shutdown);
                    }
                    let benign_pair = !(current.is_contributory() && next.is_contributory()
                        || current.vector == vector::PF
                            && (next.is_contributory() || next.vector == vector::PF));
                    current = if benign_pair {
                        next
                    } else {
                        Fault::with_code(vector::DF, 0)
                    };
                }
                Err(other) => return Err(other),
            }
        }
        Err(Stop::Shutdown)
    }

    /// Takes external interrupt `vec` (from the interrupt controller) at an instruction
    /// boundary: delivered like an exception without error code and without the DPL check of
    /// software interrupts; a fault while delivering it is delivered in turn.
    pub fn interrupt(&mut self, vec: u8) -> std::result::Result<(), Stop> {
        self.stats.interrupts += 1;
        match self.deliver(vec, None, EventKind::External, None) {
            Ok(()) => Ok(()),
            Err(Stop::Fault(f)) => self.raise(f),
            Err(other) => Err(other),
        }
    }

    /// Delivers vector `vec` through the IVT or IDT.
    pub fn deliver(
        &mut self,
        vec: u8,
        error_code: Option<u32>,
        kind: EventKind,
        cr2: Option<u64>,
    ) -> Result<()> {
        if let Some(addr) = cr2 {
            self.cpu.cr2 = addr;
        }
        match self.cpu.mode() {
            Mode::Real => self.deliver_real(vec),
            Mode::Long64 | Mode::Compatibility => self.deliver_long(vec, error_code, kind),
            Mode::Protected | Mode::Virtual8086 => self.deliver_protected(vec, error_code, kind),
        }
    }

    fn deliver_real(&mut self, vec: u8) -> Result<()> {
        let entry = u64::from(vec) * 4;
        if entry + 3 > u64::from(self.cpu.idtr.limit) {
            return Err(Fault::gp(0).into());
        }
        let ivt = self.cpu.idtr.base.wrapping_add(entry);
        let target = self.read_sys(ivt, 4)?;
        let flags = self.cpu.rflags & 0xffff;
        let cs = u64::from(self.cpu.seg[sreg::CS].selector);
        let ip = self.cpu.rip & 0xffff;
        let sp = self.cpu.regs[4];
        let pushed = self
            .push(flags, 2)
            .and_then(|_| self.push(cs, 2))
            .and_then(|_| self.push(ip, 2));
        if let Err(e) = pushed {
            self.cpu.regs[4] = sp;
            return Err(e);
        }
        self.cpu.rflags &= !(IF | TF | AC | RF);
        let sel = (target >> 16) as u16;
        let c = &mut self.cpu.seg[sreg::CS];
        c.selector = sel;
        c.base = u64::from(sel) << 4;
        self.cpu.rip = target & 0xffff;
        Ok(())
    }

    /// Error code for a fault about IDT entry `vec` (IDT bit set, EXT for external events).
    fn idt_error(vec: u8, kind: EventKind) -> u32 {
        u32::from(vec) * 8 + 2 + u32::from(kind == EventKind::External)
    }

    fn deliver_protected(
        &mut self,
        vec: u8,
        error_code: Option<u32>,
        kind: EventKind,
    ) -> Result<()> {
        let idt_err = Self::idt_error(vec, kind);
        let entry = u64::from(vec) * 8;
        if entry + 7 > u64::from(self.cpu.idtr.limit) {
            return Err(Fault::gp(idt_err).into());
        }
        let gate = self.read_sys(self.cpu.idtr.base.wrapping_add(entry), 8)?;
        let gate_type = ((gate >> 40) & 0xf) as u8;
        let gate_dpl = ((gate >> 45) & 3) as u8;
        let present = (gate >> 47) & 1 != 0;
        let (is32, is_trap) = match gate_type {
            0x6 => (false, false),
            0x7 => (false, true),
            0xe => (true, false),
            0xf => (true, true),
            0x5 => (false, false), // task gate: handled below, after the common checks
            _ => return Err(Fault::gp(idt_err).into()),
        };
        let cpl = self.cpu.cpl();
        if kind == EventKind::Software && gate_dpl < cpl {
            return Err(Fault::gp(idt_err).into());
        }
        if !present {
            return Err(Fault::np(idt_err).into());
        }
        if gate_type == 0x5 {
            let tss = ((gate >> 16) & 0xffff) as u16;
            return self.task_switch(tss, super::task::TaskSwitch::Interrupt(error_code));
        }
        let sel = ((gate >> 16) & 0xffff) as u16;
        let offset = (gate & 0xffff) | ((gate >> 32) & 0xffff_0000);
        let ext = u32::from(kind == EventKind::External);
        if sel & !3 == 0 {
            return Err(Fault::gp(ext).into());
        }
        let (raw, _) = self.read_descriptor(sel)?;
        let d = parse_descriptor(sel, raw);
        let sel_err = u32::from(sel & !3) | ext;
        if !d.s || d.type_ & 0x8 == 0 || d.dpl > cpl {
            return Err(Fault::gp(sel_err).into());
        }
        if !d.present {
            return Err(Fault::np(sel_err).into());
        }
        let conforming = d.type_ & 0x4 != 0;
        let v86 = self.cpu.mode() == Mode::Virtual8086;
        let size: u32 = if is32 { 4 } else { 2 };
        let old_flags = self.cpu.rflags;
        let old_cs = u64::from(self.cpu.seg[sreg::CS].selector);
        let old_ip = self.cpu.rip;
        let mut frame: Vec<u64> = Vec::new();
        let (new_ss, new_sp, new_cpl) = if !conforming && d.dpl < cpl {
            if v86 && d.dpl != 0 {
                return Err(Fault::gp(sel_err).into());
            }
            let (ss, sp) = self.tss_stack(d.dpl)?;
            let old_ss = u64::from(self.cpu.seg[sreg::SS].selector);
            if v86 {
                for s in [sreg::GS, sreg::FS, sreg::DS, sreg::ES] {
                    frame.push(u64::from(self.cpu.seg[s].selector));
                }
            }
            frame.push(old_ss);
            frame.push(self.cpu.regs[4]);
            (Some(ss), sp, d.dpl)
        } else {
            if v86 {
                return Err(Fault::gp(sel_err).into());
            }
            (None, self.cpu.regs[4], cpl)
        };
        frame.push(old_flags);
        frame.push(old_cs);
        frame.push(old_ip);
        if let Some(code) = error_code {
            frame.push(u64::from(code));
        }
        // Write the frame on the (new) stack before changing any register.
        let ss_seg = match new_ss {
            Some((_, seg)) => seg,
            None => self.cpu.seg[sreg::SS],
        };
        let sp_mask = if ss_seg.db { 0xffff_ffff } else { 0xffff };
        let mut sp = new_sp;
        let priv_ = if new_cpl == 3 {
            Privilege::User
        } else {
            Privilege::Supervisor
        };
        for v in &frame {
            sp = sp.wrapping_sub(u64::from(size)) & sp_mask;
            let linear = ss_seg.base.wrapping_add(sp) & 0xffff_ffff;
            self.write_linear(linear, &v.to_le_bytes()[..size as usize], priv_)?;
        }
        if let Some((_, seg)) = new_ss {
            self.cpu.seg[sreg::SS] = seg;
        }
        self.cpu.regs[4] = (self.cpu.regs[4] & !sp_mask) | sp;
        if v86 {
            for s in [sreg::ES, sreg::DS, sreg::FS, sreg::GS] {
                self.cpu.seg[s] = null_segment(0);
            }
        }
        let mut cs = d;
        cs.selector = (sel & !3) | u16::from(new_cpl);
        cs.dpl = new_cpl;
        self.cpu.seg[sreg::CS] = cs;
        self.cpu.rip = offset & if is32 { 0xffff_ffff } else { 0xffff };
        self.cpu.rflags &= !(TF | NT | RF | VM);
        if !is_trap {
            self.cpu.rflags &= !IF;
        }
        Ok(())
    }

    /// SS:ESP for privilege `dpl` from the current 16- or 32-bit TSS, with the new SS checked.
    pub(crate) fn tss_stack(&mut self, dpl: u8) -> Result<((u16, crate::state::Segment), u64)> {
        let tr = self.cpu.tr;
        let ts_err = u32::from(tr.selector & !3);
        let is32 = tr.type_ & 0x8 != 0;
        let (sp_off, ss_off, width) = if is32 {
            (4 + 8 * u64::from(dpl), 8 + 8 * u64::from(dpl), 4)
        } else {
            (2 + 4 * u64::from(dpl), 4 + 4 * u64::from(dpl), 2)
        };
        if ss_off + 1 > u64::from(tr.limit) {
            return Err(Fault::ts(ts_err).into());
        }
        let sp = self.read_sys(tr.base.wrapping_add(sp_off), width)?;
        let ss = self.read_sys(tr.base.wrapping_add(ss_off), 2)? as u16;
        let ss_err = u32::from(ss & !3);
        if ss & !3 == 0 {
            return Err(Fault::ts(ss_err).into());
        }
        let (raw, _) = self
            .read_descriptor(ss)
            .map_err(|_| Stop::Fault(Fault::ts(ss_err)))?;
        let d = parse_descriptor(ss, raw);
        let writable_data = d.s && d.type_ & 0x8 == 0 && d.type_ & 0x2 != 0;
        if (ss & 3) as u8 != dpl || d.dpl != dpl || !writable_data {
            return Err(Fault::ts(ss_err).into());
        }
        if !d.present {
            return Err(Fault::ss(ss_err).into());
        }
        Ok(((ss, d), sp))
    }

    fn deliver_long(&mut self, vec: u8, error_code: Option<u32>, kind: EventKind) -> Result<()> {
        let idt_err = Self::idt_error(vec, kind);
        let entry = u64::from(vec) * 16;
        if entry + 15 > u64::from(self.cpu.idtr.limit) {
            return Err(Fault::gp(idt_err).into());
        }
        let base = self.cpu.idtr.base.wrapping_add(entry);
        let lo = self.read_sys(base, 8)?;
        let hi = self.read_sys(base.wrapping_add(8), 8)?;
        let gate_type = ((lo >> 40) & 0xf) as u8;
        let gate_dpl = ((lo >> 45) & 3) as u8;
        let is_trap = match gate_type {
            0xe => false,
            0xf => true,
            _ => return Err(Fault::gp(idt_err).into()),
        };
        let cpl = self.cpu.cpl();
        if kind == EventKind::Software && gate_dpl < cpl {
            return Err(Fault::gp(idt_err).into());
        }
        if (lo >> 47) & 1 == 0 {
            return Err(Fault::np(idt_err).into());
        }
        let sel = ((lo >> 16) & 0xffff) as u16;
        let offset = (lo & 0xffff) | ((lo >> 32) & 0xffff_0000) | (hi << 32);
        let ist = (lo >> 32) & 7;
        let ext = u32::from(kind == EventKind::External);
        if sel & !3 == 0 {
            return Err(Fault::gp(ext).into());
        }
        let (raw, _) = self.read_descriptor(sel)?;
        let d = parse_descriptor(sel, raw);
        let sel_err = u32::from(sel & !3) | ext;
        if !d.s || d.type_ & 0x8 == 0 || d.dpl > cpl || !d.l || d.db {
            return Err(Fault::gp(sel_err).into());
        }
        if !d.present {
            return Err(Fault::np(sel_err).into());
        }
        if !super::canonical(offset) {
            return Err(Fault::gp(ext).into());
        }
        let conforming = d.type_ & 0x4 != 0;
        let new_cpl = if !conforming && d.dpl < cpl {
            d.dpl
        } else {
            cpl
        };
        let tr = self.cpu.tr;
        let mut rsp = if ist != 0 {
            self.read_sys(tr.base.wrapping_add(0x24 + 8 * (ist - 1)), 8)?
        } else if new_cpl < cpl {
            self.read_sys(tr.base.wrapping_add(4 + 8 * u64::from(new_cpl)), 8)?
        } else {
            self.cpu.regs[4]
        };
        if !super::canonical(rsp) {
            return Err(Fault::ss(0).into());
        }
        rsp &= !0xf;
        let mut frame = vec![
            u64::from(self.cpu.seg[sreg::SS].selector),
            self.cpu.regs[4],
            self.cpu.rflags,
            u64::from(self.cpu.seg[sreg::CS].selector),
            self.cpu.rip,
        ];
        if let Some(code) = error_code {
            frame.push(u64::from(code));
        }
        let priv_ = if new_cpl == 3 {
            Privilege::User
        } else {
            Privilege::Supervisor
        };
        for v in &frame {
            rsp = rsp.wrapping_sub(8);
            self.write_linear(rsp, &v.to_le_bytes(), priv_)?;
        }
        if new_cpl < cpl {
            self.cpu.seg[sreg::SS] = null_segment(u16::from(new_cpl));
            self.cpu.seg[sreg::SS].dpl = new_cpl;
        }
        self.cpu.regs[4] = rsp;
        let mut cs = d;
        cs.selector = (sel & !3) | u16::from(new_cpl);
        cs.dpl = new_cpl;
        self.cpu.seg[sreg::CS] = cs;
        self.cpu.rip = offset;
        self.cpu.rflags &= !(TF | NT | RF | VM);
        if !is_trap {
            self.cpu.rflags &= !IF;
        }
        Ok(())
    }

    /// INT n, INT3, INTO, INT1: software events with the return address after the instruction.
    pub(crate) fn software_interrupt(&mut self, vec: u8) -> Result<()> {
        if self.cpu.mode() == Mode::Virtual8086 && self.cpu.iopl() < 3 {
            return Err(Fault::gp(0).into());
        }
        self.deliver(vec, None, EventKind::Software, None)
    }

    /// IRET / IRETD / IRETQ with operand size `size`.
    pub(crate) fn iret(&mut self, size: u32) -> Result<()> {
        let mode = self.cpu.mode();
        if mode == Mode::Real || (mode == Mode::Virtual8086 && self.cpu.iopl() == 3) {
            let ip = self.stack_read(0, size)?;
            let cs = self.stack_read(u64::from(size), size)? as u16;
            let fl = self.stack_read(2 * u64::from(size), size)?;
            self.adjust_rsp(3 * i64::from(size));
            let c = &mut self.cpu.seg[sreg::CS];
            c.selector = cs;
            c.base = u64::from(cs) << 4;
            self.cpu.rip = ip & mask(size);
            let mut changeable = STATUS | TF | IF | DF | NT | AC | ID | RF;
            if mode == Mode::Real {
                changeable |= IOPL;
            }
            if size == 2 {
                changeable &= 0xffff;
            }
            self.cpu.rflags = (self.cpu.rflags & !changeable) | (fl & changeable) | 2;
            return Ok(());
        }
        if mode == Mode::Virtual8086 {
            return Err(Fault::gp(0).into());
        }
        if self.cpu.flag(NT) && mode == Mode::Protected {
            // Return to the task that called this one: the back link of the current TSS.
            let back = self.read_sys(self.cpu.tr.base, 2)? as u16;
            return self.task_switch(back, super::task::TaskSwitch::Iret);
        }
        let ip = self.stack_read(0, size)?;
        let sel = self.stack_read(u64::from(size), size)? as u16;
        let fl = self.stack_read(2 * u64::from(size), size)?;
        let cpl = self.cpu.cpl();
        if mode == Mode::Protected && fl & VM != 0 && cpl == 0 && size == 4 {
            return self.iret_to_v86(ip, sel, fl);
        }
        let err = u32::from(sel & !3);
        if sel & !3 == 0 {
            return Err(Fault::gp(0).into());
        }
        let (raw, _) = self.read_descriptor(sel)?;
        let d = parse_descriptor(sel, raw);
        let rpl = (sel & 3) as u8;
        if !d.s || d.type_ & 0x8 == 0 || rpl < cpl {
            return Err(Fault::gp(err).into());
        }
        let conforming = d.type_ & 0x4 != 0;
        if (conforming && d.dpl > rpl) || (!conforming && d.dpl != rpl) {
            return Err(Fault::gp(err).into());
        }
        if !d.present {
            return Err(Fault::np(err).into());
        }
        let long = self.cpu.efer & crate::state::bits::EFER_LMA != 0;
        if long && d.l && d.db {
            return Err(Fault::gp(err).into());
        }
        // In 64-bit mode IRET always pops SS:RSP; elsewhere only towards an outer level.
        let pops_stack = mode == Mode::Long64 || rpl > cpl;
        let (new_sp, new_ss) = if pops_stack {
            (
                self.stack_read(3 * u64::from(size), size)?,
                self.stack_read(4 * u64::from(size), size)? as u16,
            )
        } else {
            (0, 0)
        };
        let target_64 = long && d.l;
        if target_64 && !super::canonical(ip) {
            return Err(Fault::gp(0).into());
        }
        if !target_64 && (ip & mask(size)) > u64::from(d.limit) {
            return Err(Fault::gp(0).into());
        }
        let old_cpl = cpl;
        let mut cs = d;
        cs.dpl = rpl;
        let saved_cs = self.cpu.seg[sreg::CS];
        self.cpu.seg[sreg::CS] = cs;
        if pops_stack {
            if let Err(e) = self.load_stack_for_return(new_ss, new_sp, rpl, size, 0) {
                self.cpu.seg[sreg::CS] = saved_cs;
                return Err(e);
            }
        } else {
            self.adjust_rsp(3 * i64::from(size));
        }
        self.cpu.rip = if target_64 { ip } else { ip & mask(size) };
        let mut changeable = STATUS | TF | DF | NT | AC | ID | RF;
        if old_cpl == 0 {
            changeable |= IOPL | VIF | VIP;
        }
        if old_cpl <= self.cpu.iopl() {
            changeable |= IF;
        }
        if size == 2 {
            changeable &= 0xffff;
        }
        self.cpu.rflags = (self.cpu.rflags & !changeable) | (fl & changeable) | 2;
        if rpl > old_cpl {
            self.null_outer_data_segments(rpl);
        }
        Ok(())
    }

    fn iret_to_v86(&mut self, ip: u64, cs: u16, fl: u64) -> Result<()> {
        let mut vals = [0u64; 6];
        for (k, v) in vals.iter_mut().enumerate() {
            *v = self.stack_read(12 + 4 * k as u64, 4)?;
        }
        let [esp, ss, es, ds, fs, gs] = vals;
        self.cpu.rflags = (fl & 0x3f_7fd5) | 2;
        let mut load = |s: usize, sel: u64| {
            let mut seg = crate::state::Segment::real_mode(sel as u16, s == sreg::CS);
            seg.dpl = 3;
            self.cpu.seg[s] = seg;
        };
        load(sreg::CS, u64::from(cs));
        load(sreg::SS, ss);
        load(sreg::ES, es);
        load(sreg::DS, ds);
        load(sreg::FS, fs);
        load(sreg::GS, gs);
        self.cpu.regs[4] = esp & 0xffff_ffff;
        self.cpu.rip = ip & 0xffff;
        Ok(())
    }
}
