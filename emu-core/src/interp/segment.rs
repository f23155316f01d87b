//! Descriptors and segment registers: fetching descriptors from the GDT/LDT, the checks of
//! MOV/POP to a segment register, and far JMP, CALL and RET between code segments.

use super::cpu::{sreg, Mode};
use super::fault::{Fault, Result};
use super::Interp;
use crate::state::Segment;

/// Descriptor-type bits (the low nibble of the access byte).
const TYPE_CODE: u8 = 0x8;
const TYPE_CONFORMING: u8 = 0x4; // code
const TYPE_READABLE: u8 = 0x2; // code
const TYPE_WRITABLE: u8 = 0x2; // data
const TYPE_ACCESSED: u8 = 0x1;

/// Parses an 8-byte descriptor into a segment cache for `selector`.
pub fn parse_descriptor(selector: u16, raw: u64) -> Segment {
    let limit_raw = ((raw & 0xffff) | ((raw >> 32) & 0xf_0000)) as u32;
    let g = (raw >> 55) & 1 != 0;
    Segment {
        selector,
        base: ((raw >> 16) & 0xff_ffff) | (((raw >> 56) & 0xff) << 24),
        limit: if g {
            (limit_raw << 12) | 0xfff
        } else {
            limit_raw
        },
        type_: ((raw >> 40) & 0xf) as u8,
        s: (raw >> 44) & 1 != 0,
        dpl: ((raw >> 45) & 3) as u8,
        present: (raw >> 47) & 1 != 0,
        avl: (raw >> 52) & 1 != 0,
        l: (raw >> 53) & 1 != 0,
        db: (raw >> 54) & 1 != 0,
        g,
        unusable: false,
    }
}

/// A null selector as DS/ES/FS/GS (or SS in 64-bit mode) hold it: unusable.
pub fn null_segment(selector: u16) -> Segment {
    Segment {
        selector,
        unusable: true,
        ..Default::default()
    }
}

impl Interp {
    /// The linear address of `selector`'s descriptor, checked against the GDT/LDT limit;
    /// `#GP(selector)` (or `fault`) beyond it.
    fn descriptor_address(&self, selector: u16, wide: bool) -> Result<u64> {
        let (base, limit) = if selector & 4 != 0 {
            if self.cpu.ldtr.unusable || self.cpu.ldtr.selector & !3 == 0 {
                return Err(Fault::gp(u32::from(selector & !3)).into());
            }
            (self.cpu.ldtr.base, self.cpu.ldtr.limit)
        } else {
            (self.cpu.gdtr.base, u32::from(self.cpu.gdtr.limit))
        };
        let index = u64::from(selector & !7);
        let last = index + if wide { 15 } else { 7 };
        if last > u64::from(limit) {
            return Err(Fault::gp(u32::from(selector & !3)).into());
        }
        Ok(base.wrapping_add(index))
    }

    /// Reads the descriptor for `selector`: the 8-byte form and, for system descriptors in
    /// IA-32e mode, the upper half.
    pub fn read_descriptor(&mut self, selector: u16) -> Result<(u64, u64)> {
        let addr = self.descriptor_address(selector, false)?;
        let lo = self.read_sys(addr, 8)?;
        let system = (lo >> 44) & 1 == 0;
        let hi = if system && self.cpu.efer & crate::state::bits::EFER_LMA != 0 {
            self.descriptor_address(selector, true)?;
            self.read_sys(addr.wrapping_add(8), 8)?
        } else {
            0
        };
        Ok((lo, hi))
    }

    /// Sets the accessed bit of a descriptor the CPU just loaded.
    fn mark_accessed(&mut self, selector: u16, raw: u64) -> Result<()> {
        if (raw >> 40) & u64::from(TYPE_ACCESSED) == 0 {
            let addr = self.descriptor_address(selector, false)?;
            self.write_sys(
                addr.wrapping_add(5),
                1,
                ((raw >> 40) & 0xff) | u64::from(TYPE_ACCESSED),
            )?;
        }
        Ok(())
    }

    /// MOV/POP to a segment register other than CS, with the protected-mode checks.
    pub fn load_segment(&mut self, seg: usize, selector: u16) -> Result<()> {
        let mode = self.cpu.mode();
        if matches!(mode, Mode::Real | Mode::Virtual8086) {
            let s = &mut self.cpu.seg[seg];
            s.selector = selector;
            s.base = u64::from(selector) << 4;
            if mode == Mode::Virtual8086 {
                *s = Segment::real_mode(selector, false);
                s.dpl = 3;
            }
            return Ok(());
        }
        let cpl = self.cpu.cpl();
        let rpl = (selector & 3) as u8;
        let err = u32::from(selector & !3);
        if selector & !3 == 0 {
            if seg == sreg::SS && !(mode == Mode::Long64 && cpl < 3 && rpl == cpl) {
                return Err(Fault::gp(0).into());
            }
            self.cpu.seg[seg] = null_segment(selector);
            if seg == sreg::SS {
                self.cpu.seg[seg].dpl = cpl;
            }
            return Ok(());
        }
        let (raw, _) = self.read_descriptor(selector)?;
        let d = parse_descriptor(selector, raw);
        if seg == sreg::SS {
            let writable_data = d.s && d.type_ & TYPE_CODE == 0 && d.type_ & TYPE_WRITABLE != 0;
            if rpl != cpl || d.dpl != cpl || !writable_data {
                return Err(Fault::gp(err).into());
            }
            if !d.present {
                return Err(Fault::ss(err).into());
            }
        } else {
            let code = d.type_ & TYPE_CODE != 0;
            let readable = !code || d.type_ & TYPE_READABLE != 0;
            if !d.s || !readable {
                return Err(Fault::gp(err).into());
            }
            let conforming = code && d.type_ & TYPE_CONFORMING != 0;
            if !conforming && (rpl > d.dpl || cpl > d.dpl) {
                return Err(Fault::gp(err).into());
            }
            if !d.present {
                return Err(Fault::np(err).into());
            }
        }
        self.mark_accessed(selector, raw)?;
        self.cpu.seg[seg] = d;
        Ok(())
    }

    /// Checks a code-segment descriptor as the target of a far JMP or CALL at the current
    /// privilege; returns the cache to load (with RPL = CPL).
    fn check_far_target(&mut self, selector: u16, offset: u64) -> Result<Segment> {
        let err = u32::from(selector & !3);
        if selector & !3 == 0 {
            return Err(Fault::gp(0).into());
        }
        let (raw, _) = self.read_descriptor(selector)?;
        let d = parse_descriptor(selector, raw);
        let cpl = self.cpu.cpl();
        let rpl = (selector & 3) as u8;
        if !d.s || d.type_ & TYPE_CODE == 0 {
            return Err(Fault::gp(err).into());
        }
        if d.type_ & TYPE_CONFORMING != 0 {
            if d.dpl > cpl {
                return Err(Fault::gp(err).into());
            }
        } else if rpl > cpl || d.dpl != cpl {
            return Err(Fault::gp(err).into());
        }
        if !d.present {
            return Err(Fault::np(err).into());
        }
        let long = self.cpu.efer & crate::state::bits::EFER_LMA != 0;
        if long && d.l && d.db {
            return Err(Fault::gp(err).into());
        }
        let target_64 = long && d.l;
        if !target_64 && offset > u64::from(d.limit) {
            return Err(Fault::gp(0).into());
        }
        if target_64 && !super::canonical(offset) {
            return Err(Fault::gp(0).into());
        }
        self.mark_accessed(selector, raw)?;
        let mut cs = d;
        cs.selector = (selector & !3) | u16::from(cpl);
        cs.dpl = if d.type_ & TYPE_CONFORMING != 0 {
            cpl
        } else {
            d.dpl
        };
        Ok(cs)
    }

    pub fn far_jump(&mut self, selector: u16, offset: u64, op32: bool) -> Result<()> {
        match self.cpu.mode() {
            Mode::Real | Mode::Virtual8086 => {
                let cs = &mut self.cpu.seg[sreg::CS];
                cs.selector = selector;
                cs.base = u64::from(selector) << 4;
                self.cpu.rip = if op32 {
                    offset & 0xffff_ffff
                } else {
                    offset & 0xffff
                };
                Ok(())
            }
            _ => {
                if let Some(target) = self.task_target(selector)? {
                    return self.task_switch(target, super::task::TaskSwitch::Jmp);
                }
                if let Some(gate) = self.call_gate(selector)? {
                    return self.through_call_gate(selector, gate, false, 0);
                }
                let cs = self.check_far_target(selector, offset)?;
                self.cpu.seg[sreg::CS] = cs;
                self.cpu.rip = offset;
                Ok(())
            }
        }
    }

    /// The descriptor of `selector` if it is a call gate; a task gate or TSS switches tasks
    /// (`Err(Stop::...)` carries any fault; `Ok(Some)` means "call gate").
    fn call_gate(&mut self, selector: u16) -> Result<Option<(u64, u64)>> {
        if selector & !3 == 0 {
            return Ok(None);
        }
        let (raw, hi) = self.read_descriptor(selector)?;
        let d = parse_descriptor(selector, raw);
        if d.s {
            return Ok(None);
        }
        match d.type_ {
            0x4 | 0xc => Ok(Some((raw, hi))),
            _ => Ok(None),
        }
    }

    /// If `selector` names a TSS or a task gate (with the privilege to use it), the TSS
    /// selector to switch to.
    fn task_target(&mut self, selector: u16) -> Result<Option<u16>> {
        if selector & !3 == 0 || self.cpu.efer & crate::state::bits::EFER_LMA != 0 {
            return Ok(None);
        }
        let (raw, _) = self.read_descriptor(selector)?;
        let d = parse_descriptor(selector, raw);
        let err = u32::from(selector & !3);
        if d.s || !matches!(d.type_, 0x5 | 0x9 | 0xb | 0x1 | 0x3) {
            return Ok(None);
        }
        let cpl = self.cpu.cpl();
        if d.dpl < cpl.max((selector & 3) as u8) {
            return Err(Fault::gp(err).into());
        }
        if !d.present {
            return Err(Fault::np(err).into());
        }
        Ok(Some(if d.type_ == 0x5 {
            ((raw >> 16) & 0xffff) as u16 // the gate's TSS selector
        } else {
            selector
        }))
    }

    /// Far JMP or CALL through a call gate; a CALL to a more privileged non-conforming
    /// segment switches to the TSS's stack for that level and copies the gate's parameters
    /// (none in IA-32e mode).
    fn through_call_gate(
        &mut self,
        gate_sel: u16,
        gate: (u64, u64),
        call: bool,
        _size: u32,
    ) -> Result<()> {
        let (raw, hi) = gate;
        let gate_err = u32::from(gate_sel & !3);
        let long = self.cpu.efer & crate::state::bits::EFER_LMA != 0;
        let g = parse_descriptor(gate_sel, raw);
        let cpl = self.cpu.cpl();
        let rpl = (gate_sel & 3) as u8;
        if g.dpl < cpl.max(rpl) || (long && g.type_ != 0xc) {
            return Err(Fault::gp(gate_err).into());
        }
        if !g.present {
            return Err(Fault::np(gate_err).into());
        }
        let gate32 = g.type_ == 0xc;
        let target_sel = ((raw >> 16) & 0xffff) as u16;
        let mut offset = (raw & 0xffff) | if gate32 { (raw >> 32) & 0xffff_0000 } else { 0 };
        if long {
            offset |= (hi & 0xffff_ffff) << 32;
        }
        let params = if long { 0 } else { ((raw >> 32) & 0x1f) as u32 };
        let t_err = u32::from(target_sel & !3);
        if target_sel & !3 == 0 {
            return Err(Fault::gp(0).into());
        }
        let (traw, _) = self.read_descriptor(target_sel)?;
        let t = parse_descriptor(target_sel, traw);
        if !t.s || t.type_ & TYPE_CODE == 0 || t.dpl > cpl || (long && (!t.l || t.db)) {
            return Err(Fault::gp(t_err).into());
        }
        let conforming = t.type_ & TYPE_CONFORMING != 0;
        if !call && !conforming && t.dpl != cpl {
            return Err(Fault::gp(t_err).into());
        }
        if !t.present {
            return Err(Fault::np(t_err).into());
        }
        let new_cpl = if call && !conforming && t.dpl < cpl {
            t.dpl
        } else {
            cpl
        };
        let mut cs = t;
        cs.selector = (target_sel & !3) | u16::from(new_cpl);
        cs.dpl = new_cpl;
        if !call {
            self.cpu.seg[sreg::CS] = cs;
            self.cpu.rip = offset;
            return Ok(());
        }
        let size: u32 = if long {
            8
        } else if gate32 {
            4
        } else {
            2
        };
        let saved_regs = self.cpu.regs;
        let saved_ss = self.cpu.seg[sreg::SS];
        let saved_cs = self.cpu.seg[sreg::CS];
        let ret_ip = self.cpu.rip;
        let result = (|| -> Result<()> {
            if new_cpl < cpl {
                let old_ss = u64::from(self.cpu.seg[sreg::SS].selector);
                let old_sp = self.cpu.regs[4];
                // The caller's parameters, read before the stack changes.
                let mut copied = Vec::new();
                for k in 0..params {
                    copied.push(self.stack_read(u64::from(k * size), size)?);
                }
                if long {
                    let rsp = self
                        .read_sys(self.cpu.tr.base.wrapping_add(4 + 8 * u64::from(new_cpl)), 8)?;
                    self.cpu.seg[sreg::SS] = null_segment(u16::from(new_cpl));
                    self.cpu.seg[sreg::SS].dpl = new_cpl;
                    self.cpu.regs[4] = rsp;
                } else {
                    let ((ss_sel, ss), sp) = self.tss_stack(new_cpl)?;
                    let _ = ss_sel;
                    self.cpu.seg[sreg::SS] = ss;
                    self.cpu.regs[4] = sp;
                }
                // The frame is written at the new privilege level.
                self.cpu.seg[sreg::CS] = cs;
                self.push(old_ss, size)?;
                self.push(old_sp, size)?;
                for v in copied.iter().rev() {
                    self.push(*v, size)?;
                }
            } else {
                self.cpu.seg[sreg::CS] = cs;
            }
            self.push(u64::from(saved_cs.selector), size)?;
            self.push(ret_ip, size)?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.cpu.rip = offset;
                Ok(())
            }
            Err(e) => {
                self.cpu.regs = saved_regs;
                self.cpu.seg[sreg::SS] = saved_ss;
                self.cpu.seg[sreg::CS] = saved_cs;
                Err(e)
            }
        }
    }

    /// Far CALL: pushes CS and the return IP (each `size` bytes), then jumps.
    pub fn far_call(&mut self, selector: u16, offset: u64, size: u32) -> Result<()> {
        let ret_ip = self.cpu.rip;
        let ret_cs = self.cpu.seg[sreg::CS].selector;
        let rsp = self.cpu.regs[4];
        match self.cpu.mode() {
            Mode::Real | Mode::Virtual8086 => {
                self.push(u64::from(ret_cs), size)?;
                if let Err(e) = self.push(ret_ip, size) {
                    self.cpu.regs[4] = rsp;
                    return Err(e);
                }
                self.far_jump(selector, offset, size >= 4)
            }
            _ => {
                if let Some(target) = self.task_target(selector)? {
                    return self.task_switch(target, super::task::TaskSwitch::Call);
                }
                if let Some(gate) = self.call_gate(selector)? {
                    return self.through_call_gate(selector, gate, true, size);
                }
                let cs = self.check_far_target(selector, offset)?;
                let pushed = self
                    .push(u64::from(ret_cs), size)
                    .and_then(|_| self.push(ret_ip, size));
                if let Err(e) = pushed {
                    self.cpu.regs[4] = rsp;
                    return Err(e);
                }
                self.cpu.seg[sreg::CS] = cs;
                self.cpu.rip = offset;
                Ok(())
            }
        }
    }

    /// Far RET [imm]: pops IP and CS; to an outer privilege level, SS:SP too.
    pub fn far_return(&mut self, size: u32, imm: u64) -> Result<()> {
        let ip = self.stack_read(0, size)?;
        let sel = self.stack_read(u64::from(size), size)? as u16;
        match self.cpu.mode() {
            Mode::Real | Mode::Virtual8086 => {
                self.adjust_rsp(2 * i64::from(size) + imm as i64);
                let cs = &mut self.cpu.seg[sreg::CS];
                cs.selector = sel;
                cs.base = u64::from(sel) << 4;
                self.cpu.rip = ip & super::operand::mask(size);
                Ok(())
            }
            _ => {
                let err = u32::from(sel & !3);
                if sel & !3 == 0 {
                    return Err(Fault::gp(0).into());
                }
                let (raw, _) = self.read_descriptor(sel)?;
                let d = parse_descriptor(sel, raw);
                let cpl = self.cpu.cpl();
                let rpl = (sel & 3) as u8;
                if !d.s || d.type_ & TYPE_CODE == 0 || rpl < cpl {
                    return Err(Fault::gp(err).into());
                }
                let conforming = d.type_ & TYPE_CONFORMING != 0;
                if (conforming && d.dpl > rpl) || (!conforming && d.dpl != rpl) {
                    return Err(Fault::gp(err).into());
                }
                if !d.present {
                    return Err(Fault::np(err).into());
                }
                let mut cs = d;
                cs.dpl = rpl;
                if rpl == cpl {
                    self.adjust_rsp(2 * i64::from(size) + imm as i64);
                    self.cpu.seg[sreg::CS] = cs;
                    self.cpu.rip = ip;
                    return Ok(());
                }
                // To an outer level: SS:SP follow the return address and the parameters.
                let at = 2 * u64::from(size) + imm;
                let new_sp = self.stack_read(at, size)?;
                let new_ss = self.stack_read(at.wrapping_add(u64::from(size)), size)? as u16;
                self.cpu.seg[sreg::CS] = cs;
                self.cpu.rip = ip;
                self.load_stack_for_return(new_ss, new_sp, rpl, size, imm)?;
                self.null_outer_data_segments(rpl);
                Ok(())
            }
        }
    }

    /// Loads SS:SP while returning to privilege `rpl` (RET/IRET to an outer level).
    pub fn load_stack_for_return(
        &mut self,
        ss: u16,
        sp: u64,
        rpl: u8,
        size: u32,
        imm: u64,
    ) -> Result<()> {
        let err = u32::from(ss & !3);
        let long64 = self.cpu.mode() == Mode::Long64;
        if ss & !3 == 0 {
            if !(long64 && rpl != 3) {
                return Err(Fault::gp(0).into());
            }
            self.cpu.seg[sreg::SS] = null_segment(ss);
            self.cpu.seg[sreg::SS].dpl = rpl;
        } else {
            let (raw, _) = self.read_descriptor(ss)?;
            let d = parse_descriptor(ss, raw);
            let writable_data = d.s && d.type_ & TYPE_CODE == 0 && d.type_ & TYPE_WRITABLE != 0;
            if (ss & 3) as u8 != rpl || d.dpl != rpl || !writable_data {
                return Err(Fault::gp(err).into());
            }
            if !d.present {
                return Err(Fault::ss(err).into());
            }
            self.mark_accessed(ss, raw)?;
            self.cpu.seg[sreg::SS] = d;
        }
        let m = super::operand::mask(self.cpu.stack_bytes().max(size));
        self.cpu.regs[4] = sp.wrapping_add(imm) & m;
        Ok(())
    }

    /// After a return to an outer level, data segments the new CPL may not use become null.
    pub fn null_outer_data_segments(&mut self, cpl: u8) {
        for s in [sreg::ES, sreg::DS, sreg::FS, sreg::GS] {
            let d = self.cpu.seg[s];
            let conforming_code = d.type_ & TYPE_CODE != 0 && d.type_ & TYPE_CONFORMING != 0;
            if !d.unusable && !conforming_code && d.dpl < cpl {
                self.cpu.seg[s] = null_segment(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_parse() {
        let d = parse_descriptor(0x10, 0x00cf_9b00_0000_ffff);
        assert_eq!(d.limit, 0xffff_ffff);
        assert!(d.db && d.g && d.s && d.present);
        assert_eq!(d.type_, 0xb);
        let d = parse_descriptor(0x33, 0x00af_fb00_0000_ffff);
        assert!(d.l && !d.db);
        assert_eq!(d.dpl, 3);
        assert_eq!(
            Segment::flat32(0x08, true).to_descriptor(),
            0x00cf_9b00_0000_ffff
        );
    }
}

impl Interp {
    /// The descriptor `selector` names if LAR/LSL/VERR/VERW may look at it from the current
    /// privilege: (low, high) dwords as one u64, or None (ZF = 0).
    fn visible_descriptor(&mut self, selector: u16, kind: DescriptorQuery) -> Result<Option<u64>> {
        if selector & !3 == 0 {
            return Ok(None);
        }
        let raw = match self.read_descriptor(selector) {
            Ok((raw, _)) => raw,
            Err(super::fault::Stop::Fault(f)) if f.vector == super::fault::vector::GP => {
                return Ok(None); // beyond the table: not visible
            }
            Err(e) => return Err(e),
        };
        let d = parse_descriptor(selector, raw);
        let long = self.cpu.efer & crate::state::bits::EFER_LMA != 0;
        let type_ok = if d.s {
            let code = d.type_ & TYPE_CODE != 0;
            match kind {
                DescriptorQuery::AccessRights | DescriptorQuery::Limit => true,
                DescriptorQuery::Readable => !code || d.type_ & TYPE_READABLE != 0,
                DescriptorQuery::Writable => !code && d.type_ & TYPE_WRITABLE != 0,
            }
        } else {
            let t = d.type_;
            match kind {
                DescriptorQuery::AccessRights if long => matches!(t, 2 | 9 | 0xb | 0xc),
                DescriptorQuery::AccessRights => matches!(t, 1..=5 | 9 | 0xb | 0xc),
                DescriptorQuery::Limit if long => matches!(t, 2 | 9 | 0xb),
                DescriptorQuery::Limit => matches!(t, 1 | 2 | 3 | 9 | 0xb),
                _ => false,
            }
        };
        if !type_ok {
            return Ok(None);
        }
        // Conforming code is visible from any level; everything else needs DPL ≥ CPL and RPL.
        let conforming = d.s && d.type_ & TYPE_CODE != 0 && d.type_ & TYPE_CONFORMING != 0;
        let rpl = (selector & 3) as u8;
        if !conforming && d.dpl < self.cpu.cpl().max(rpl) {
            return Ok(None);
        }
        Ok(Some(raw))
    }

    /// LAR LSL VERR VERW.
    pub(crate) fn descriptor_query(&mut self, i: &iced_x86::Instruction) -> Result<()> {
        use iced_x86::Mnemonic;
        if matches!(self.cpu.mode(), Mode::Real | Mode::Virtual8086) {
            return Err(Fault::ud().into());
        }
        let src = if matches!(i.mnemonic(), Mnemonic::Verr | Mnemonic::Verw) {
            0
        } else {
            1
        };
        let selector = self.read_op(i, src)? as u16;
        let kind = match i.mnemonic() {
            Mnemonic::Lar => DescriptorQuery::AccessRights,
            Mnemonic::Lsl => DescriptorQuery::Limit,
            Mnemonic::Verr => DescriptorQuery::Readable,
            _ => DescriptorQuery::Writable,
        };
        let found = self.visible_descriptor(selector, kind)?;
        self.cpu.set_flag(super::cpu::flags::ZF, found.is_some());
        if let Some(raw) = found {
            match kind {
                DescriptorQuery::AccessRights => {
                    let size = self.op_size(i, 0);
                    // The second dword masked by 00FxFF00h: the limit bits 19:16 read as 0.
                    let ar = (raw >> 32) & if size == 2 { 0xff00 } else { 0x00f0_ff00 };
                    self.write_op(i, 0, ar)?;
                }
                DescriptorQuery::Limit => {
                    let limit = u64::from(parse_descriptor(selector, raw).limit);
                    self.write_op(i, 0, limit)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// LDS LES LFS LGS LSS: a far pointer into a segment register and a general register.
    pub(crate) fn load_far_pointer(&mut self, i: &iced_x86::Instruction) -> Result<()> {
        use iced_x86::Mnemonic;
        let seg = match i.mnemonic() {
            Mnemonic::Lds => sreg::DS,
            Mnemonic::Les => sreg::ES,
            Mnemonic::Lfs => sreg::FS,
            Mnemonic::Lgs => sreg::GS,
            _ => sreg::SS,
        };
        let (mseg, off) = self.mem_operand(i, 1);
        let osz = self.op_size(i, 0);
        let offset = self.read_mem(mseg, off, osz)?;
        let selector = self.read_mem(mseg, off.wrapping_add(u64::from(osz)), 2)? as u16;
        self.load_segment(seg, selector)?;
        if seg == sreg::SS {
            self.interrupt_shadow = true;
        }
        self.write_op(i, 0, offset)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DescriptorQuery {
    AccessRights,
    Limit,
    Readable,
    Writable,
}
