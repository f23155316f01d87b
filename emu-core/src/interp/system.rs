//! System instructions: control and debug registers, descriptor tables, task register, MSRs,
//! SYSCALL/SYSRET, SWAPGS, TSC, CPUID, HLT and the interrupt flag.

use iced_x86::{Instruction, Mnemonic, Register};

use super::cpu::{flags::*, msr, sreg, Mode};
use super::fault::{Fault, Result, Stop};
use super::operand::seg_index;
use super::segment::{null_segment, parse_descriptor};
use super::Interp;
use crate::state::bits::*;

const CR4_PSE: u64 = 1 << 4;
const CR4_PGE: u64 = 1 << 7;
const CR4_TSD: u64 = 1 << 2;

impl Interp {
    fn require_cpl0(&self) -> Result<()> {
        if self.cpu.cpl() != 0 {
            return Err(Fault::gp(0).into());
        }
        Ok(())
    }

    pub(crate) fn mov_special(&mut self, i: &Instruction) -> Result<()> {
        let dst = i.op_register(0);
        let src = if i.op_count() > 1 {
            i.op_register(1)
        } else {
            Register::None
        };
        if let Some(s) = seg_index(dst) {
            // MOV Sreg, r/m16
            if s == sreg::CS {
                return Err(Fault::ud().into());
            }
            let sel = self.read_op(i, 1)? as u16;
            self.load_segment(s, sel)?;
            if s == sreg::SS {
                self.interrupt_shadow = true;
            }
            return Ok(());
        }
        if seg_index(src).is_some() {
            // MOV r/m, Sreg: a 16-bit store to memory; to a register, zero-extended.
            let v = self.get_reg(src);
            if Self::is_mem(i, 0) {
                let (seg, off) = self.mem_operand(i, 0);
                return self.write_mem(seg, off, 2, v);
            }
            self.set_reg(dst, v);
            return Ok(());
        }
        self.require_cpl0()?;
        let cr = |r: Register| (r as u32).wrapping_sub(Register::CR0 as u32);
        let dr = |r: Register| (r as u32).wrapping_sub(Register::DR0 as u32);
        if (Register::CR0..=Register::CR15).contains(&src) {
            let v = match cr(src) {
                0 => self.cpu.cr0,
                2 => self.cpu.cr2,
                3 => self.cpu.cr3,
                4 => self.cpu.cr4,
                8 => self.cpu.cr8,
                _ => return Err(Fault::ud().into()),
            };
            self.set_reg(dst, v);
            return Ok(());
        }
        if (Register::CR0..=Register::CR15).contains(&dst) {
            let v = self.get_reg(src);
            return self.write_cr(cr(dst), v);
        }
        if (Register::DR0..=Register::DR15).contains(&src) {
            let n = dr(src) as usize;
            let v = match n {
                0..=3 | 6 | 7 => self.cpu.dr[n],
                4 | 5 => self.cpu.dr[n + 2],
                _ => return Err(Fault::ud().into()),
            };
            self.set_reg(dst, v);
            return Ok(());
        }
        if (Register::DR0..=Register::DR15).contains(&dst) {
            let n = dr(dst) as usize;
            let v = self.get_reg(src);
            match n {
                0..=3 => self.cpu.dr[n] = v,
                4 | 6 => self.cpu.dr[6] = (v & 0xf00f) | 0xffff_0ff0,
                5 | 7 => self.cpu.dr[7] = (v & 0xffff_2bff) | 0x400,
                _ => return Err(Fault::ud().into()),
            }
            return Ok(());
        }
        self.unimplemented(i)
    }

    pub fn write_cr(&mut self, n: u32, v: u64) -> Result<()> {
        match n {
            0 => {
                let v = v | CR0_ET;
                if v >> 32 != 0 || (v & CR0_PG != 0 && v & CR0_PE == 0) {
                    return Err(Fault::gp(0).into());
                }
                if v & (1 << 29) != 0 && v & (1 << 30) == 0 {
                    return Err(Fault::gp(0).into()); // NW without CD
                }
                let old = self.cpu.cr0;
                let turning_on = v & CR0_PG != 0 && old & CR0_PG == 0;
                let turning_off = v & CR0_PG == 0 && old & CR0_PG != 0;
                if turning_on && self.cpu.efer & EFER_LME != 0 {
                    if self.cpu.cr4 & CR4_PAE == 0 || self.cpu.seg[sreg::CS].l {
                        return Err(Fault::gp(0).into());
                    }
                    self.cpu.efer |= EFER_LMA;
                }
                if turning_off && self.cpu.efer & EFER_LMA != 0 {
                    if self.cpu.mode() == Mode::Long64 {
                        return Err(Fault::gp(0).into());
                    }
                    self.cpu.efer &= !EFER_LMA;
                }
                self.cpu.cr0 = v;
                if (old ^ v) & (CR0_PG | CR0_WP | CR0_PE) != 0 {
                    self.mmu.flush_all();
                }
            }
            2 => self.cpu.cr2 = v,
            3 => {
                let long = self.cpu.efer & EFER_LMA != 0;
                if long && v >> super::mmu::PHYS_ADDR_BITS != 0 {
                    return Err(Fault::gp(0).into());
                }
                self.cpu.cr3 = if long { v } else { v & 0xffff_ffff };
                self.mmu.flush_non_global(self.cpu.cr4);
            }
            4 => {
                if v & !self.cr4_allowed() != 0 {
                    return Err(Fault::gp(0).into());
                }
                if self.cpu.efer & EFER_LMA != 0 && v & CR4_PAE == 0 {
                    return Err(Fault::gp(0).into());
                }
                let old = self.cpu.cr4;
                self.cpu.cr4 = v;
                if (old ^ v) & (CR4_PAE | CR4_PSE | CR4_PGE) != 0 {
                    self.mmu.flush_all();
                }
            }
            8 => {
                if v > 15 {
                    return Err(Fault::gp(0).into());
                }
                self.cpu.cr8 = v;
            }
            _ => return Err(Fault::ud().into()),
        }
        Ok(())
    }

    /// LGDT LIDT SGDT SIDT.
    pub(crate) fn descriptor_table(&mut self, i: &Instruction) -> Result<()> {
        let (seg, off) = self.mem_operand(i, 0);
        let long64 = self.cpu.mode() == Mode::Long64;
        let base_size = if long64 { 8 } else { 4 };
        match i.mnemonic() {
            Mnemonic::Lgdt | Mnemonic::Lidt => {
                self.require_cpl0()?;
                let limit = self.read_mem(seg, off, 2)? as u16;
                let mut base = self.read_mem(seg, off.wrapping_add(2), base_size)?;
                if !long64 && i.code().op_code().operand_size() == 16 {
                    base &= 0xff_ffff;
                }
                if long64 && !super::canonical(base) {
                    return Err(Fault::gp(0).into());
                }
                let t = crate::state::DescriptorTable { base, limit };
                if i.mnemonic() == Mnemonic::Lgdt {
                    self.cpu.gdtr = t;
                } else {
                    self.cpu.idtr = t;
                }
            }
            _ => {
                let t = if i.mnemonic() == Mnemonic::Sgdt {
                    self.cpu.gdtr
                } else {
                    self.cpu.idtr
                };
                self.write_mem(seg, off, 2, u64::from(t.limit))?;
                self.write_mem(seg, off.wrapping_add(2), base_size, t.base)?;
            }
        }
        Ok(())
    }

    /// LLDT LTR SLDT STR.
    pub(crate) fn system_segment(&mut self, i: &Instruction) -> Result<()> {
        let mode = self.cpu.mode();
        if matches!(mode, Mode::Real | Mode::Virtual8086) {
            return Err(Fault::ud().into());
        }
        match i.mnemonic() {
            Mnemonic::Sldt | Mnemonic::Str => {
                let sel = if i.mnemonic() == Mnemonic::Sldt {
                    self.cpu.ldtr.selector
                } else {
                    self.cpu.tr.selector
                };
                // A register destination takes the selector zero-extended; a memory one is
                // 16 bits, which is how iced sizes it.
                self.write_op(i, 0, u64::from(sel))
            }
            _ => {
                self.require_cpl0()?;
                let sel = self.read_op(i, 0)? as u16;
                let ltr = i.mnemonic() == Mnemonic::Ltr;
                if sel & 4 != 0 {
                    return Err(Fault::gp(u32::from(sel & !3)).into());
                }
                if sel & !3 == 0 {
                    if ltr {
                        return Err(Fault::gp(0).into());
                    }
                    self.cpu.ldtr = null_segment(sel);
                    return Ok(());
                }
                let (raw, hi) = self.read_descriptor(sel)?;
                let mut d = parse_descriptor(sel, raw);
                let err = u32::from(sel & !3);
                let ok_type = if ltr {
                    d.type_ == 0x9 || (d.type_ == 0x1 && mode == Mode::Protected)
                } else {
                    d.type_ == 0x2
                };
                if d.s || !ok_type {
                    return Err(Fault::gp(err).into());
                }
                if !d.present {
                    return Err(Fault::np(err).into());
                }
                if self.cpu.efer & EFER_LMA != 0 {
                    d.base |= (hi & 0xffff_ffff) << 32;
                }
                if ltr {
                    // Mark the TSS busy in the GDT.
                    let addr = self.cpu.gdtr.base.wrapping_add(u64::from(sel & !7)) + 5;
                    self.write_sys(addr, 1, ((raw >> 40) & 0xff) | 0x2)?;
                    d.type_ |= 0x2;
                    self.cpu.tr = d;
                } else {
                    self.cpu.ldtr = d;
                }
                Ok(())
            }
        }
    }

    /// The platform's local APIC, if it has one and `index` is one of its MSRs.
    fn apic_msr_owner(&self, index: u32) -> Option<std::sync::Arc<dyn crate::Interrupts>> {
        let ic = self.irq.as_ref().filter(|ic| ic.has_local_apic())?;
        matches!(index, msr::APIC_BASE | msr::TSC_DEADLINE | 0x800..=0x8ff).then(|| ic.clone())
    }

    fn read_msr(&mut self, index: u32) -> Result<u64> {
        if let Some(ic) = self.apic_msr_owner(index) {
            let v = ic.read_apic_msr(index).ok_or(Fault::gp(0))?;
            // The APIC keeps the deadline on the machine clock; the guest sees its TSC.
            return Ok(if index == msr::TSC_DEADLINE && v != 0 {
                v.wrapping_add(self.cpu.msr.tsc_offset)
            } else {
                v
            });
        }
        if !self.msr_exists(index) {
            return Err(Fault::gp(0).into());
        }
        let m = &self.cpu.msr;
        Ok(match index {
            msr::TSC => self.tsc(),
            msr::TSC_ADJUST => m.tsc_adjust,
            msr::APIC_BASE => m.apic_base,
            // Microcode revision 1 (as QEMU reports): Linux reads it on Intel models.
            msr::UCODE_REV => 1 << 32,
            msr::SYSENTER_CS => m.sysenter_cs,
            msr::SYSENTER_ESP => m.sysenter_esp,
            msr::SYSENTER_EIP => m.sysenter_eip,
            msr::MISC_ENABLE => m.misc_enable,
            msr::PAT => m.pat,
            msr::EFER => self.cpu.efer,
            msr::STAR => m.star,
            msr::LSTAR => m.lstar,
            msr::CSTAR => m.cstar,
            msr::SFMASK => m.sfmask,
            msr::FS_BASE => self.cpu.seg[sreg::FS].base,
            msr::GS_BASE => self.cpu.seg[sreg::GS].base,
            msr::KERNEL_GS_BASE => m.kernel_gs_base,
            msr::TSC_AUX => m.tsc_aux,
            _ if m.mtrrs.read(index).is_some() => m.mtrrs.read(index).unwrap_or(0),
            _ => {
                log::debug!("software CPU: RDMSR of unknown MSR {index:#x}: #GP");
                return Err(Fault::gp(0).into());
            }
        })
    }

    fn write_msr(&mut self, index: u32, v: u64) -> Result<()> {
        if let Some(ic) = self.apic_msr_owner(index) {
            let v = if index == msr::TSC_DEADLINE && v != 0 {
                // A deadline already past stays past (not 0, which would disarm).
                v.wrapping_sub(self.cpu.msr.tsc_offset).max(1)
            } else {
                v
            };
            return if ic.write_apic_msr(index, v) {
                Ok(())
            } else {
                Err(Fault::gp(0).into())
            };
        }
        if !self.msr_exists(index) {
            return Err(Fault::gp(0).into());
        }
        let canonical_or_gp = |v: u64| -> Result<u64> {
            if super::canonical(v) {
                Ok(v)
            } else {
                Err(Fault::gp(0).into())
            }
        };
        match index {
            msr::TSC => {
                // A TSC write moves TSC_ADJUST by the same amount (SDM 17.17.3).
                let delta = v.wrapping_sub(self.tsc());
                self.cpu.msr.tsc_adjust = self.cpu.msr.tsc_adjust.wrapping_add(delta);
                self.cpu.msr.tsc_offset = v.wrapping_sub(self.tsc_raw());
            }
            msr::TSC_ADJUST => {
                let delta = v.wrapping_sub(self.cpu.msr.tsc_adjust);
                self.cpu.msr.tsc_offset = self.cpu.msr.tsc_offset.wrapping_add(delta);
                self.cpu.msr.tsc_adjust = v;
            }
            msr::APIC_BASE => self.cpu.msr.apic_base = v,
            // Writing it (software clears it before CPUID) changes nothing here.
            msr::UCODE_REV => {}
            msr::SYSENTER_CS => self.cpu.msr.sysenter_cs = v & 0xffff,
            msr::SYSENTER_ESP => self.cpu.msr.sysenter_esp = canonical_or_gp(v)?,
            msr::SYSENTER_EIP => self.cpu.msr.sysenter_eip = canonical_or_gp(v)?,
            msr::MISC_ENABLE => self.cpu.msr.misc_enable = v,
            msr::PAT => self.cpu.msr.pat = v,
            msr::EFER => {
                let writable = self.efer_writable();
                if v & !(writable | EFER_LMA) != 0 {
                    return Err(Fault::gp(0).into());
                }
                let lme_changed = (v ^ self.cpu.efer) & EFER_LME != 0;
                if lme_changed && self.cpu.paging() {
                    return Err(Fault::gp(0).into());
                }
                let old = self.cpu.efer;
                self.cpu.efer = (v & writable) | (old & EFER_LMA);
                if (old ^ self.cpu.efer) & EFER_NXE != 0 {
                    self.mmu.flush_all();
                }
            }
            msr::STAR => self.cpu.msr.star = v,
            msr::LSTAR => self.cpu.msr.lstar = canonical_or_gp(v)?,
            msr::CSTAR => self.cpu.msr.cstar = canonical_or_gp(v)?,
            msr::SFMASK => self.cpu.msr.sfmask = v & 0xffff_ffff,
            msr::FS_BASE => self.cpu.seg[sreg::FS].base = canonical_or_gp(v)?,
            msr::GS_BASE => self.cpu.seg[sreg::GS].base = canonical_or_gp(v)?,
            msr::KERNEL_GS_BASE => self.cpu.msr.kernel_gs_base = canonical_or_gp(v)?,
            msr::TSC_AUX => self.cpu.msr.tsc_aux = v & 0xffff_ffff,
            _ => match self.cpu.msr.mtrrs.write(index, v) {
                Some(true) => {}
                Some(false) => return Err(Fault::gp(0).into()),
                None => {
                    log::debug!("software CPU: WRMSR of unknown MSR {index:#x}: #GP");
                    return Err(Fault::gp(0).into());
                }
            },
        }
        Ok(())
    }

    /// Time-stamp counter before the guest's offset: a 1 GHz counter of the machine clock
    /// (so the TSC and the timers agree, and the deterministic clock drives both), or of
    /// host time since the vCPU started where there is no platform clock.
    fn tsc_raw(&self) -> u64 {
        match &self.irq {
            Some(ic) => ic.now_ns(),
            None => self.started.elapsed().as_nanos() as u64,
        }
    }

    fn tsc(&self) -> u64 {
        self.tsc_raw().wrapping_add(self.cpu.msr.tsc_offset)
    }

    /// CPUID leaf 1's APIC bit (the APIC globally enabled, as parts report it) and
    /// TSC-deadline bit, where the platform gives this CPU a local APIC.
    fn cpuid_apic_bits(&self, leaf: u32, ecx: u32, edx: u32) -> (u32, u32) {
        let Some(ic) = self.irq.as_ref().filter(|ic| ic.has_local_apic()) else {
            return (ecx, edx);
        };
        if leaf != 1 {
            return (ecx, edx);
        }
        let enabled = ic
            .read_apic_msr(msr::APIC_BASE)
            .is_some_and(|b| b & (1 << 11) != 0);
        let apic = if enabled {
            crate::cpu_model::edx1::APIC
        } else {
            0
        };
        (ecx | crate::cpu_model::ecx1::TSC_DEADLINE, edx | apic)
    }

    pub(crate) fn system(&mut self, i: &Instruction) -> Result<()> {
        self.require_feature(i)?;
        match i.mnemonic() {
            Mnemonic::Hlt => {
                self.require_cpl0()?;
                Err(Stop::Halt)
            }
            Mnemonic::Cli | Mnemonic::Sti => {
                if self.cpu.mode() != Mode::Real && self.cpu.cpl() > self.cpu.iopl() {
                    return Err(Fault::gp(0).into());
                }
                let sti = i.mnemonic() == Mnemonic::Sti;
                if sti && !self.cpu.flag(IF) {
                    self.interrupt_shadow = true;
                }
                self.cpu.set_flag(IF, sti);
                Ok(())
            }
            Mnemonic::Clc => {
                self.cpu.set_flag(CF, false);
                Ok(())
            }
            Mnemonic::Stc => {
                self.cpu.set_flag(CF, true);
                Ok(())
            }
            Mnemonic::Cmc => {
                let c = self.cpu.flag(CF);
                self.cpu.set_flag(CF, !c);
                Ok(())
            }
            Mnemonic::Cld => {
                self.cpu.set_flag(DF, false);
                Ok(())
            }
            Mnemonic::Std => {
                self.cpu.set_flag(DF, true);
                Ok(())
            }
            Mnemonic::Rdmsr => {
                self.require_cpl0()?;
                let v = self.read_msr(self.cpu.regs[1] as u32)?;
                self.set_reg(Register::EAX, v & 0xffff_ffff);
                self.set_reg(Register::EDX, v >> 32);
                Ok(())
            }
            Mnemonic::Wrmsr => {
                self.require_cpl0()?;
                let v = (self.cpu.regs[2] << 32) | (self.cpu.regs[0] & 0xffff_ffff);
                self.write_msr(self.cpu.regs[1] as u32, v)
            }
            Mnemonic::Rdtsc | Mnemonic::Rdtscp => {
                if self.cpu.cr4 & CR4_TSD != 0 && self.cpu.cpl() != 0 {
                    return Err(Fault::gp(0).into());
                }
                let t = self.tsc();
                if i.mnemonic() == Mnemonic::Rdtscp {
                    self.set_reg(Register::ECX, self.cpu.msr.tsc_aux);
                }
                self.set_reg(Register::EAX, t & 0xffff_ffff);
                self.set_reg(Register::EDX, t >> 32);
                Ok(())
            }
            Mnemonic::Cpuid => {
                let (a, b, c, d) = super::cpuid::cpuid_with(
                    self.model,
                    self.cpu.regs[0] as u32,
                    self.cpu.regs[1] as u32,
                    self.apic_id,
                    self.cpu.cr4,
                    self.cpu.xcr0,
                );
                let (c, d) = self.cpuid_apic_bits(self.cpu.regs[0] as u32, c, d);
                self.set_reg(Register::EAX, u64::from(a));
                self.set_reg(Register::EBX, u64::from(b));
                self.set_reg(Register::ECX, u64::from(c));
                self.set_reg(Register::EDX, u64::from(d));
                Ok(())
            }
            Mnemonic::Invlpg => {
                self.require_cpl0()?;
                let (seg, off) = self.mem_operand(i, 0);
                let base = if self.cpu.mode() == Mode::Long64 && seg != sreg::FS && seg != sreg::GS
                {
                    0
                } else {
                    self.cpu.seg[seg].base
                };
                self.mmu.invlpg(self.wrap_linear(base.wrapping_add(off)));
                Ok(())
            }
            Mnemonic::Wbinvd | Mnemonic::Invd => self.require_cpl0(),
            Mnemonic::Clts => {
                self.require_cpl0()?;
                self.cpu.cr0 &= !(1 << 3);
                Ok(())
            }
            Mnemonic::Smsw => {
                let v = self.cpu.cr0 & 0xffff;
                if Self::is_mem(i, 0) {
                    let (seg, off) = self.mem_operand(i, 0);
                    self.write_mem(seg, off, 2, v)
                } else {
                    self.write_op(i, 0, self.cpu.cr0)
                }
            }
            Mnemonic::Lmsw => {
                self.require_cpl0()?;
                let v = self.read_op(i, 0)? & 0xf;
                // LMSW sets PE but cannot clear it.
                let new = (self.cpu.cr0 & !0xe) | v | (self.cpu.cr0 & CR0_PE);
                self.write_cr(0, new)
            }
            Mnemonic::Swapgs => {
                if self.cpu.mode() != Mode::Long64 {
                    return Err(Fault::ud().into());
                }
                self.require_cpl0()?;
                std::mem::swap(
                    &mut self.cpu.seg[sreg::GS].base,
                    &mut self.cpu.msr.kernel_gs_base,
                );
                Ok(())
            }
            Mnemonic::Syscall => self.syscall(),
            Mnemonic::Sysret | Mnemonic::Sysretq => self.sysret(i),
            Mnemonic::Sysenter => self.sysenter(),
            Mnemonic::Sysexit | Mnemonic::Sysexitq => self.sysexit(i),
            _ => self.unimplemented(i),
        }
    }

    fn syscall(&mut self) -> Result<()> {
        let mode = self.cpu.mode();
        if self.cpu.efer & EFER_SCE == 0 || !matches!(mode, Mode::Long64 | Mode::Compatibility) {
            return Err(Fault::ud().into());
        }
        let star = self.cpu.msr.star;
        let cs_sel = ((star >> 32) & 0xfffc) as u16;
        self.cpu.regs[1] = self.cpu.rip;
        self.cpu.regs[11] = self.cpu.rflags & !RF;
        self.cpu.rflags &= !(self.cpu.msr.sfmask | RF);
        self.cpu.rflags |= 2;
        let mut cs = crate::state::Segment::code64(cs_sel);
        cs.type_ = 0xb;
        self.cpu.seg[sreg::CS] = cs;
        let mut ss = crate::state::Segment::flat32(cs_sel.wrapping_add(8), false);
        ss.dpl = 0;
        self.cpu.seg[sreg::SS] = ss;
        self.cpu.rip = if mode == Mode::Long64 {
            self.cpu.msr.lstar
        } else {
            self.cpu.msr.cstar
        };
        Ok(())
    }

    /// SYSENTER: to CPL 0 with the flat segments SYSENTER_CS implies (it reads no
    /// descriptor), at SYSENTER_EIP with SYSENTER_ESP.
    fn sysenter(&mut self) -> Result<()> {
        let mode = self.cpu.mode();
        let cs_sel = (self.cpu.msr.sysenter_cs & 0xfffc) as u16;
        if mode == Mode::Real || cs_sel == 0 {
            return Err(Fault::gp(0).into());
        }
        let long = self.cpu.efer & EFER_LMA != 0;
        self.cpu.rflags &= !(VM | IF | RF);
        self.cpu.seg[sreg::CS] = if long {
            crate::state::Segment::code64(cs_sel)
        } else {
            crate::state::Segment::flat32(cs_sel, true)
        };
        self.cpu.seg[sreg::SS] = crate::state::Segment::flat32(cs_sel.wrapping_add(8), false);
        self.cpu.rip = if long {
            self.cpu.msr.sysenter_eip
        } else {
            self.cpu.msr.sysenter_eip & 0xffff_ffff
        };
        self.cpu.regs[4] = if long {
            self.cpu.msr.sysenter_esp
        } else {
            self.cpu.msr.sysenter_esp & 0xffff_ffff
        };
        Ok(())
    }

    /// SYSEXIT: back to CPL 3 at EDX/RDX with ECX/RCX as the stack (REX.W: to 64-bit code).
    fn sysexit(&mut self, i: &Instruction) -> Result<()> {
        let cs_base = (self.cpu.msr.sysenter_cs & 0xfffc) as u16;
        if self.cpu.mode() == Mode::Real || cs_base == 0 {
            return Err(Fault::gp(0).into());
        }
        self.require_cpl0()?;
        let to64 = i.code().op_code().operand_size() == 64;
        let (cs_sel, ss_sel) = if to64 {
            (cs_base.wrapping_add(32), cs_base.wrapping_add(40))
        } else {
            (cs_base.wrapping_add(16), cs_base.wrapping_add(24))
        };
        let mut cs = if to64 {
            crate::state::Segment::code64(cs_sel | 3)
        } else {
            crate::state::Segment::flat32(cs_sel | 3, true)
        };
        cs.dpl = 3;
        let mut ss = crate::state::Segment::flat32(ss_sel | 3, false);
        ss.dpl = 3;
        let (rip, rsp) = (self.cpu.regs[2], self.cpu.regs[1]);
        if to64 && !super::canonical(rip) {
            return Err(Fault::gp(0).into());
        }
        self.cpu.seg[sreg::CS] = cs;
        self.cpu.seg[sreg::SS] = ss;
        self.cpu.rip = if to64 { rip } else { rip & 0xffff_ffff };
        self.cpu.regs[4] = if to64 { rsp } else { rsp & 0xffff_ffff };
        Ok(())
    }

    fn sysret(&mut self, i: &Instruction) -> Result<()> {
        if self.cpu.efer & EFER_SCE == 0 || self.cpu.mode() != Mode::Long64 {
            return Err(Fault::ud().into());
        }
        self.require_cpl0()?;
        let to64 = i.code().op_code().operand_size() == 64;
        let base = ((self.cpu.msr.star >> 48) & 0xffff) as u16;
        let rip = self.cpu.regs[1];
        if to64 && !super::canonical(rip) {
            return Err(Fault::gp(0).into());
        }
        let mut cs = if to64 {
            crate::state::Segment::code64(base.wrapping_add(16) | 3)
        } else {
            crate::state::Segment::flat32(base | 3, true)
        };
        cs.dpl = 3;
        self.cpu.seg[sreg::CS] = cs;
        let mut ss = crate::state::Segment::flat32(base.wrapping_add(8) | 3, false);
        ss.dpl = 3;
        self.cpu.seg[sreg::SS] = ss;
        self.cpu.rip = if to64 { rip } else { rip & 0xffff_ffff };
        self.cpu.rflags = (self.cpu.regs[11] & !(RF | VM)) | 2;
        Ok(())
    }
}
