//! Feature gates: what the CPU model lacks does not exist (see [`crate::cpu_model`]).

use iced_x86::{Instruction, Mnemonic as M};

use super::cpu::{msr, Mode};
use super::fault::{Fault, Result};
use super::Interp;
use crate::cpu_model::{ebx7, ecx1, ecx81, edx1, edx81};

// CR4 bits whose behaviour the interpreter implements (TSD, PSE, PAE, PGE); the rest
// (VME, PVI, DE, MCE, PCE, OSFXSR, SMEP, …) are #GP until they are built and advertised.
const CR4_TSD: u64 = 1 << 2;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_PGE: u64 = 1 << 7;
const EFER_SCE: u64 = 1;
const EFER_LME: u64 = 1 << 8;
const EFER_NXE: u64 = 1 << 11;

impl Interp {
    /// #UD unless the model has what `i` needs.
    pub(crate) fn require_feature(&self, i: &Instruction) -> Result<()> {
        let m = self.model;
        let ok = match i.mnemonic() {
            M::Cmpxchg8b => m.has_edx1(edx1::CX8),
            M::Cmpxchg16b => m.has_ecx1(ecx1::CX16),
            M::Rdtsc => m.has_edx1(edx1::TSC),
            M::Rdtscp => m.has_edx81(edx81::RDTSCP),
            M::Rdmsr | M::Wrmsr => m.has_edx1(edx1::MSR),
            M::Sysenter | M::Sysexit | M::Sysexitq => m.has_edx1(edx1::SEP),
            M::Syscall | M::Sysret | M::Sysretq => m.has_edx81(edx81::SYSCALL),
            M::Popcnt => m.has_ecx1(ecx1::POPCNT),
            // VEX-encoded: #UD in real and virtual-8086 mode whatever the model.
            M::Andn | M::Bextr | M::Blsi | M::Blsmsk | M::Blsr => {
                m.features.ebx7 & ebx7::BMI1 != 0 && self.vex_allowed()
            }
            M::Bzhi | M::Pdep | M::Pext | M::Mulx | M::Rorx | M::Sarx | M::Shlx | M::Shrx => {
                m.features.ebx7 & ebx7::BMI2 != 0 && self.vex_allowed()
            }
            M::Adcx | M::Adox => m.features.ebx7 & ebx7::ADX != 0,
            M::Movbe => m.has_ecx1(ecx1::MOVBE),
            M::Lahf | M::Sahf => {
                self.cpu.mode() != Mode::Long64 || m.features.ecx81 & ecx81::LAHF_LM != 0
            }
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(Fault::ud().into())
        }
    }

    /// #UD unless the model has leaf-1 EDX feature `bit`.
    pub(crate) fn require_edx1(&self, bit: u32) -> Result<()> {
        if self.model.has_edx1(bit) {
            Ok(())
        } else {
            Err(Fault::ud().into())
        }
    }

    /// VEX encodings exist only in protected, compatibility and 64-bit mode.
    fn vex_allowed(&self) -> bool {
        !matches!(self.cpu.mode(), Mode::Real | Mode::Virtual8086)
    }

    /// Whether LZCNT/TZCNT execute as BSR/BSF because the model lacks LZCNT/BMI1.
    pub(crate) fn runs_as_bit_scan(&self, i: &Instruction) -> bool {
        let f = &self.model.features;
        match i.mnemonic() {
            M::Lzcnt => f.ecx81 & ecx81::LZCNT == 0,
            M::Tzcnt => f.ebx7 & ebx7::BMI1 == 0,
            _ => false,
        }
    }

    /// The CR4 bits a MOV to CR4 may set on this model.
    pub(crate) fn cr4_allowed(&self) -> u64 {
        let m = self.model;
        let mut allowed = 0;
        for (bit, feature) in [
            (CR4_TSD, edx1::TSC),
            (CR4_PSE, edx1::PSE),
            (CR4_PAE, edx1::PAE),
            (CR4_PGE, edx1::PGE),
            (crate::interp::simd::CR4_OSFXSR, edx1::FXSR),
            (crate::interp::simd::CR4_OSXMMEXCPT, edx1::SSE),
        ] {
            if m.has_edx1(feature) {
                allowed |= bit;
            }
        }
        if m.has_ecx1(crate::cpu_model::ecx1::XSAVE) {
            allowed |= crate::interp::simd::xsave::CR4_OSXSAVE;
        }
        allowed
    }

    /// Whether MSR `index` exists on this model (RDMSR/WRMSR of one that does not is #GP).
    pub(crate) fn msr_exists(&self, index: u32) -> bool {
        let m = self.model;
        match index {
            msr::TSC => m.has_edx1(edx1::TSC),
            msr::TSC_ADJUST => m.features.ebx7 & crate::cpu_model::ebx7::TSC_ADJUST != 0,
            msr::SYSENTER_CS | msr::SYSENTER_ESP | msr::SYSENTER_EIP => m.has_edx1(edx1::SEP),
            msr::PAT => m.has_edx1(edx1::PAT),
            msr::EFER => self.efer_writable() != 0,
            msr::STAR | msr::SFMASK => m.has_edx81(edx81::SYSCALL),
            msr::LSTAR | msr::CSTAR | msr::FS_BASE | msr::GS_BASE | msr::KERNEL_GS_BASE => {
                m.has_edx81(edx81::LM)
            }
            msr::TSC_AUX => m.has_edx81(edx81::RDTSCP),
            super::mtrr::CAP..=super::mtrr::DEF_TYPE => {
                m.has_edx1(edx1::MTRR) || self.cpu.msr.mtrrs.read(index).is_none()
            }
            _ => true,
        }
    }

    /// The EFER bits WRMSR may set on this model.
    pub(crate) fn efer_writable(&self) -> u64 {
        let m = self.model;
        let mut w = 0;
        if m.has_edx81(edx81::SYSCALL) {
            w |= EFER_SCE;
        }
        if m.has_edx81(edx81::LM) {
            w |= EFER_LME;
        }
        if m.has_edx81(edx81::NX) {
            w |= EFER_NXE;
        }
        w
    }
}
