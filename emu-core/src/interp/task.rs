//! Hardware task switching (32-bit TSS): JMP or CALL to a TSS or task gate, an interrupt
//! through a task gate, and IRET with NT set.

use super::cpu::{flags::*, sreg, Mode};
use super::fault::{Fault, Result};
use super::segment::{null_segment, parse_descriptor};
use super::Interp;
use crate::state::bits::CR0_PG;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskSwitch {
    Jmp,
    Call,
    /// An interrupt or exception through a task gate, with its error code.
    Interrupt(Option<u32>),
    Iret,
}

/// Offsets in a 32-bit TSS.
mod tss {
    pub const BACK_LINK: u64 = 0x00;
    pub const CR3: u64 = 0x1c;
    pub const EIP: u64 = 0x20;
    pub const EFLAGS: u64 = 0x24;
    pub const EAX: u64 = 0x28;
    pub const ES: u64 = 0x48;
    pub const LDTR: u64 = 0x60;
    pub const MIN_LIMIT: u32 = 0x67;
}

const TYPE_TSS32_AVAILABLE: u8 = 0x9;
const TYPE_TSS32_BUSY: u8 = 0xb;

impl Interp {
    /// Switches to the task whose TSS `selector` names.
    pub(crate) fn task_switch(&mut self, selector: u16, why: TaskSwitch) -> Result<()> {
        if self.cpu.efer & crate::state::bits::EFER_LMA != 0 {
            return Err(Fault::gp(u32::from(selector & !3)).into()); // no tasks in IA-32e mode
        }
        let err = u32::from(selector & !3);
        if selector & 4 != 0 {
            return Err(Fault::ts(err).into());
        }
        let (raw, _) = self.read_descriptor(selector)?;
        let new = parse_descriptor(selector, raw);
        let want = if why == TaskSwitch::Iret {
            TYPE_TSS32_BUSY
        } else {
            TYPE_TSS32_AVAILABLE
        };
        if new.s || new.type_ != want {
            if !new.s && (new.type_ == 1 || new.type_ == 3) {
                log::warn!("software CPU: 16-bit TSS task switches are not implemented");
            }
            return Err(Fault::gp(err).into());
        }
        if !new.present {
            return Err(Fault::np(err).into());
        }
        if new.limit < tss::MIN_LIMIT {
            return Err(Fault::ts(err).into());
        }
        // Save the outgoing task.
        let old = self.cpu.tr;
        let mut flags = self.cpu.rflags;
        if why == TaskSwitch::Iret {
            flags &= !NT;
        }
        let w = |s: &mut Interp, off: u64, size: usize, v: u64| {
            s.write_sys(old.base.wrapping_add(off), size, v)
        };
        w(self, tss::EIP, 4, self.cpu.rip)?;
        w(self, tss::EFLAGS, 4, flags)?;
        for r in 0..8 {
            w(self, tss::EAX + 4 * r as u64, 4, self.cpu.regs[r])?;
        }
        for s in 0..6 {
            w(
                self,
                tss::ES + 4 * s as u64,
                2,
                u64::from(self.cpu.seg[s].selector),
            )?;
        }
        // Busy bits: the old task stays busy only when it is nested (CALL, interrupt).
        if matches!(why, TaskSwitch::Jmp | TaskSwitch::Iret) {
            self.set_tss_busy(old.selector, false)?;
        }
        if why != TaskSwitch::Iret {
            self.set_tss_busy(selector, true)?;
        }
        // Read the incoming task.
        let r =
            |s: &mut Interp, off: u64, size: usize| s.read_sys(new.base.wrapping_add(off), size);
        if matches!(why, TaskSwitch::Call | TaskSwitch::Interrupt(_)) {
            self.write_sys(
                new.base.wrapping_add(tss::BACK_LINK),
                2,
                u64::from(old.selector),
            )?;
        }
        let cr3 = r(self, tss::CR3, 4)?;
        let eip = r(self, tss::EIP, 4)?;
        let mut eflags = r(self, tss::EFLAGS, 4)?;
        let mut regs = [0u64; 8];
        for (k, v) in regs.iter_mut().enumerate() {
            *v = r(self, tss::EAX + 4 * k as u64, 4)?;
        }
        let mut sels = [0u16; 6];
        for (k, v) in sels.iter_mut().enumerate() {
            *v = r(self, tss::ES + 4 * k as u64, 2)? as u16;
        }
        let ldtr = r(self, tss::LDTR, 2)? as u16;
        if matches!(why, TaskSwitch::Call | TaskSwitch::Interrupt(_)) {
            eflags |= NT;
        }
        // Commit: TR, CR3, registers, then the segments (faults there are #TS in the new task).
        let mut tr = new;
        tr.type_ = TYPE_TSS32_BUSY;
        self.cpu.tr = tr;
        if self.cpu.cr0 & CR0_PG != 0 {
            self.cpu.cr3 = cr3 & 0xffff_ffff;
            self.mmu.flush_non_global(self.cpu.cr4);
        }
        self.cpu.rip = eip;
        self.cpu.rflags = (eflags & 0x3f_7fd5) | 2;
        for (k, v) in regs.iter().enumerate() {
            self.cpu.regs[k] = *v;
        }
        self.cpu.cr0 |= 1 << 3; // TS: the FPU state belongs to the previous task
        if self.cpu.rflags & VM != 0 {
            for (s, sel) in sels.iter().enumerate() {
                let mut seg = crate::state::Segment::real_mode(*sel, s == sreg::CS);
                seg.dpl = 3;
                self.cpu.seg[s] = seg;
            }
            return Ok(());
        }
        self.load_task_segments(sels, ldtr)?;
        if let TaskSwitch::Interrupt(Some(code)) = why {
            let size = if self.cpu.seg[sreg::SS].db { 4 } else { 2 };
            self.push(u64::from(code), size)?;
        }
        Ok(())
    }

    fn set_tss_busy(&mut self, selector: u16, busy: bool) -> Result<()> {
        let at = self.cpu.gdtr.base.wrapping_add(u64::from(selector & !7)) + 5;
        let access = self.read_sys(at, 1)?;
        let v = if busy { access | 2 } else { access & !2 };
        self.write_sys(at, 1, v)
    }

    /// The new task's LDTR, CS and SS, then the data segments, each checked; a bad one is #TS.
    fn load_task_segments(&mut self, sels: [u16; 6], ldtr: u16) -> Result<()> {
        let ts = |sel: u16| -> super::fault::Stop { Fault::ts(u32::from(sel & !3)).into() };
        if ldtr & !3 == 0 {
            self.cpu.ldtr = null_segment(ldtr);
        } else {
            let (raw, _) = self.read_descriptor(ldtr).map_err(|_| ts(ldtr))?;
            let d = parse_descriptor(ldtr, raw);
            if d.s || d.type_ != 2 || !d.present {
                return Err(ts(ldtr));
            }
            self.cpu.ldtr = d;
        }
        // CS: its RPL is the new CPL.
        let cs = sels[sreg::CS];
        if cs & !3 == 0 {
            return Err(ts(cs));
        }
        let (raw, _) = self.read_descriptor(cs).map_err(|_| ts(cs))?;
        let d = parse_descriptor(cs, raw);
        if !d.s || d.type_ & 0x8 == 0 {
            return Err(ts(cs));
        }
        if !d.present {
            return Err(Fault::np(u32::from(cs & !3)).into());
        }
        let mut code = d;
        code.dpl = (cs & 3) as u8;
        self.cpu.seg[sreg::CS] = code;
        debug_assert!(self.cpu.mode() == Mode::Protected);
        for s in [sreg::SS, sreg::ES, sreg::DS, sreg::FS, sreg::GS] {
            self.load_segment(s, sels[s]).map_err(|e| match e {
                super::fault::Stop::Fault(f) if f.vector == super::fault::vector::GP => ts(sels[s]),
                other => other,
            })?;
        }
        Ok(())
    }
}
