//! The interpreter's architectural register state and the mode it implies.

use crate::state::{bits::*, CpuState, DescriptorTable, Segment};

/// Segment register indices (the x86 encoding order).
pub mod sreg {
    pub const ES: usize = 0;
    pub const CS: usize = 1;
    pub const SS: usize = 2;
    pub const DS: usize = 3;
    pub const FS: usize = 4;
    pub const GS: usize = 5;
}

pub mod flags {
    pub const CF: u64 = 1 << 0;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    pub const TF: u64 = 1 << 8;
    pub const IF: u64 = 1 << 9;
    pub const DF: u64 = 1 << 10;
    pub const OF: u64 = 1 << 11;
    pub const IOPL: u64 = 3 << 12;
    pub const NT: u64 = 1 << 14;
    pub const RF: u64 = 1 << 16;
    pub const VM: u64 = 1 << 17;
    pub const AC: u64 = 1 << 18;
    pub const VIF: u64 = 1 << 19;
    pub const VIP: u64 = 1 << 20;
    pub const ID: u64 = 1 << 21;
    /// The arithmetic status flags.
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
}

pub mod msr {
    pub const TSC: u32 = 0x10;
    pub const TSC_ADJUST: u32 = 0x3b;
    pub const APIC_BASE: u32 = 0x1b;
    pub const TSC_DEADLINE: u32 = 0x6e0;
    /// IA32_BIOS_SIGN_ID: the microcode revision (high half) after a CPUID(1).
    pub const UCODE_REV: u32 = 0x8b;
    pub const SYSENTER_CS: u32 = 0x174;
    pub const SYSENTER_ESP: u32 = 0x175;
    pub const SYSENTER_EIP: u32 = 0x176;
    pub const MISC_ENABLE: u32 = 0x1a0;
    pub const PAT: u32 = 0x277;
    pub const EFER: u32 = 0xc000_0080;
    pub const STAR: u32 = 0xc000_0081;
    pub const LSTAR: u32 = 0xc000_0082;
    pub const CSTAR: u32 = 0xc000_0083;
    pub const SFMASK: u32 = 0xc000_0084;
    pub const FS_BASE: u32 = 0xc000_0100;
    pub const GS_BASE: u32 = 0xc000_0101;
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    pub const TSC_AUX: u32 = 0xc000_0103;
}

/// Model-specific registers that have no other home.
#[derive(Clone, Debug)]
pub struct Msrs {
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub sfmask: u64,
    pub kernel_gs_base: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub apic_base: u64,
    pub pat: u64,
    pub tsc_offset: u64,
    /// IA32_TSC_ADJUST: the part of `tsc_offset` software has written (through it or
    /// through the TSC itself).
    pub tsc_adjust: u64,
    pub tsc_aux: u64,
    pub misc_enable: u64,
    pub mtrrs: super::mtrr::Mtrrs,
}

impl Default for Msrs {
    fn default() -> Self {
        Msrs {
            star: 0,
            lstar: 0,
            cstar: 0,
            sfmask: 0,
            kernel_gs_base: 0,
            sysenter_cs: 0,
            sysenter_esp: 0,
            sysenter_eip: 0,
            apic_base: 0xfee0_0900, // enabled, BSP
            pat: 0x0007_0406_0007_0406,
            tsc_offset: 0,
            tsc_adjust: 0,
            tsc_aux: 0,
            misc_enable: 1, // fast strings
            mtrrs: Default::default(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Cpu {
    pub regs: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub seg: [Segment; 6],
    pub ldtr: Segment,
    pub tr: Segment,
    pub gdtr: DescriptorTable,
    pub idtr: DescriptorTable,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cr8: u64,
    pub efer: u64,
    pub dr: [u64; 8],
    pub msr: Msrs,
    /// x87/SSE state (`simd`).
    pub fpu: super::simd::FpuState,
    /// XCR0: the state components XSAVE manages (x87 always).
    pub xcr0: u64,
}

/// The processor's operating mode, from CR0.PE, EFLAGS.VM, EFER.LMA and CS.L.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Real,
    Protected,
    Virtual8086,
    /// IA-32e with a 16/32-bit code segment.
    Compatibility,
    Long64,
}

impl Cpu {
    pub fn from_state(s: &CpuState) -> Self {
        let mut seg = [Segment::default(); 6];
        seg[sreg::ES] = s.es;
        seg[sreg::CS] = s.cs;
        seg[sreg::SS] = s.ss;
        seg[sreg::DS] = s.ds;
        seg[sreg::FS] = s.fs;
        seg[sreg::GS] = s.gs;
        Cpu {
            regs: s.gpr,
            rip: s.rip,
            rflags: s.rflags | RFLAGS_FIXED,
            seg,
            ldtr: s.ldt,
            tr: s.tr,
            gdtr: s.gdt,
            idtr: s.idt,
            cr0: s.cr0,
            cr2: s.cr2,
            cr3: s.cr3,
            cr4: s.cr4,
            cr8: 0,
            efer: s.efer,
            dr: [0, 0, 0, 0, 0xffff_0ff0, 0xffff_0ff0, 0xffff_0ff0, 0x400],
            msr: Msrs::default(),
            fpu: Default::default(),
            xcr0: super::simd::xsave::XCR0_X87,
        }
    }

    pub fn to_state(&self) -> CpuState {
        CpuState {
            gpr: self.regs,
            rip: self.rip,
            rflags: self.rflags,
            cs: self.seg[sreg::CS],
            ds: self.seg[sreg::DS],
            es: self.seg[sreg::ES],
            fs: self.seg[sreg::FS],
            gs: self.seg[sreg::GS],
            ss: self.seg[sreg::SS],
            ldt: self.ldtr,
            tr: self.tr,
            gdt: self.gdtr,
            idt: self.idtr,
            cr0: self.cr0,
            cr2: self.cr2,
            cr3: self.cr3,
            cr4: self.cr4,
            efer: self.efer,
        }
    }

    pub fn mode(&self) -> Mode {
        if self.cr0 & CR0_PE == 0 {
            Mode::Real
        } else if self.efer & EFER_LMA != 0 {
            if self.seg[sreg::CS].l {
                Mode::Long64
            } else {
                Mode::Compatibility
            }
        } else if self.rflags & flags::VM != 0 {
            Mode::Virtual8086
        } else {
            Mode::Protected
        }
    }

    /// The current privilege level: CS.DPL in protected modes (SS.DPL equals it), 0 in real
    /// mode, 3 in virtual-8086 mode.
    pub fn cpl(&self) -> u8 {
        match self.mode() {
            Mode::Real => 0,
            Mode::Virtual8086 => 3,
            _ => self.seg[sreg::CS].dpl,
        }
    }

    /// Default code size in bits: 16, 32 or 64.
    pub fn code_bits(&self) -> u32 {
        match self.mode() {
            Mode::Long64 => 64,
            Mode::Real | Mode::Virtual8086 => 16,
            _ => {
                if self.seg[sreg::CS].db {
                    32
                } else {
                    16
                }
            }
        }
    }

    /// Stack pointer width in bytes: 8 in 64-bit mode, else SS.B.
    pub fn stack_bytes(&self) -> u32 {
        match self.mode() {
            Mode::Long64 => 8,
            Mode::Real | Mode::Virtual8086 => 2,
            _ => {
                if self.seg[sreg::SS].db {
                    4
                } else {
                    2
                }
            }
        }
    }

    pub fn paging(&self) -> bool {
        self.cr0 & CR0_PG != 0 && self.cr0 & CR0_PE != 0
    }

    pub fn flag(&self, f: u64) -> bool {
        self.rflags & f != 0
    }

    pub fn set_flag(&mut self, f: u64, on: bool) {
        if on {
            self.rflags |= f;
        } else {
            self.rflags &= !f;
        }
    }

    pub fn iopl(&self) -> u8 {
        ((self.rflags >> 12) & 3) as u8
    }
}
