//! SSE and SSE2 on XMM registers: the state (`state`), the checks every SSE instruction makes
//! (CR0.EM, CR4.OSFXSR, CR0.TS, the model's CPUID bits), operand access with the 16-byte
//! alignment rule, and the instructions — data movement, shuffles, the bitwise operations
//! and SSE2's packed integer arithmetic (`integer`, `moves`), floating point on a software
//! float independent of the host (`float`, `softfp`), MXCSR and FXSAVE/FXRSTOR (`fxsave`),
//! XSAVE (`xsave`), MMX (`mmx`), and the x87 unit (`x87`, `x87_arith`, `x87_trans`, with the
//! 128-bit working float `wide`).

mod aes;
mod clmul;
mod float;
mod fxsave;
mod integer;
pub mod lanes;
mod mmx;
mod moves;
pub mod softfp;
mod sse41;
mod sse41_float;
mod sse42;
mod ssse3;
pub mod state;
mod wide;
pub mod x87;
mod x87_arith;
mod x87_trans;
pub mod xsave;

use iced_x86::{Instruction, Mnemonic as M, OpKind, Register};

use super::fault::{vector, Fault, Result};
use super::Interp;
use crate::cpu_model::edx1;

pub use float::XM;
pub use state::FpuState;

pub const CR0_MP: u64 = 1 << 1;
pub const CR0_EM: u64 = 1 << 2;
pub const CR0_TS: u64 = 1 << 3;
pub const CR4_OSFXSR: u64 = 1 << 9;
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;

/// The register number of an XMM register.
pub fn xmm_index(r: Register) -> Option<usize> {
    r.is_xmm().then(|| r as usize - Register::XMM0 as usize)
}

/// What kind of instruction the SIMD unit runs, for its checks.
/// A CPUID feature bit: leaf 1 EDX or ECX.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Feature {
    Edx1(u32),
    Ecx1(u32),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// An SSE, SSE2 or SSE3 instruction on XMM registers; the CPUID bit it needs.
    Sse { feature: Feature },
    /// FXSAVE/FXRSTOR: only CR0.TS/EM and the FXSR bit matter.
    Fxsr,
    /// MOVNTI: an SSE2 instruction on general registers (no FPU-state checks).
    Integer,
    /// CRC32: SSE4.2's instruction on general registers (no FPU-state checks).
    Crc32,
    /// XSAVE and its kin, XGETBV/XSETBV: the XSAVE bit and CR4.OSXSAVE (checked there).
    Xsave,
    /// An instruction with an MMX register operand; `feature` is the CPUID bit that brought
    /// it (MMX, or SSE/SSE2/SSSE3 for their additions); `sse` for the SSE conversions, which
    /// also need CR4.OSFXSR.
    Mmx { feature: Feature, sse: bool },
    /// An x87 instruction (and WAIT).
    X87,
}

/// The SIMD class of `i`. It depends on the instruction's code alone, so it is worked out
/// once per code: the interpreter asks for every instruction it runs.
fn class(i: &Instruction) -> Option<Class> {
    static TABLE: std::sync::OnceLock<Vec<Option<Class>>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        iced_x86::Code::values()
            .map(|code| {
                let mut probe = Instruction::default();
                probe.set_code(code);
                class_of_code(&probe)
            })
            .collect()
    });
    table.get(i.code() as usize).copied().flatten()
}

/// [`class`] from the instruction's code (its mnemonic, encoding, operand kinds, features).
fn class_of_code(i: &Instruction) -> Option<Class> {
    if i.encoding() != iced_x86::EncodingKind::Legacy {
        return None; // VEX forms are not implemented yet
    }
    let m = i.mnemonic();
    if x87::handles(m) {
        return Some(Class::X87);
    }
    // An MMX form by its encoding (an MMX operand may be a memory one).
    let has_mmx = {
        use iced_x86::OpCodeOperandKind as K;
        let op = i.op_code();
        (0..op.op_count()).any(|k| matches!(op.op_kind(k), K::mm_reg | K::mm_rm | K::mm_or_mem))
    };
    if has_mmx || m == M::Emms {
        use iced_x86::CpuidFeature as F;
        if m != M::Emms && !mmx::handles(m) {
            return None;
        }
        let features = i.cpuid_features();
        let feature = if features.contains(&F::SSSE3) {
            Feature::Ecx1(crate::cpu_model::ecx1::SSSE3)
        } else if features.contains(&F::SSE2) {
            Feature::Edx1(edx1::SSE2)
        } else if features.contains(&F::SSE) {
            Feature::Edx1(edx1::SSE)
        } else if features.iter().all(|f| *f == F::MMX) {
            Feature::Edx1(edx1::MMX)
        } else {
            return None;
        };
        let sse = matches!(
            m,
            M::Cvtpi2ps | M::Cvtps2pi | M::Cvttps2pi | M::Cvtpi2pd | M::Cvtpd2pi | M::Cvttpd2pi
        );
        return Some(Class::Mmx { feature, sse });
    }
    if matches!(m, M::Fxsave | M::Fxsave64 | M::Fxrstor | M::Fxrstor64) {
        return Some(Class::Fxsr);
    }
    if m == M::Movnti {
        return Some(Class::Integer);
    }
    if m == M::Crc32 {
        return Some(Class::Crc32);
    }
    if xsave::handles(m) {
        return Some(Class::Xsave);
    }
    let implemented = integer::handles(m)
        || moves::handles(m)
        || float::handles(m)
        || ssse3::handles(m)
        || sse41::handles(m)
        || sse41_float::handles(m)
        || sse42::handles(m)
        || aes::handles(m)
        || m == M::Pclmulqdq
        || fxsave::handles_mxcsr(m);
    // MOVSD and CMPSD are string instructions too: only forms with XMM operands are SSE.
    let string_form = matches!(m, M::Movsd | M::Cmpsd) && {
        use iced_x86::OpCodeOperandKind as K;
        let op = i.op_code();
        !(0..op.op_count()).any(|k| matches!(op.op_kind(k), K::xmm_reg | K::xmm_rm | K::xmm_or_mem))
    };
    if !implemented || string_form {
        return None;
    }
    // Forms of these mnemonics from later extensions (SSE4.1's PEXTRW m16, say) are not
    // implemented yet.
    use iced_x86::CpuidFeature as F;
    let features = i.cpuid_features();
    if features.iter().any(|f| {
        !matches!(
            f,
            F::SSE | F::SSE2 | F::SSE3 | F::SSSE3 | F::SSE4_1 | F::SSE4_2 | F::AES | F::PCLMULQDQ
        )
    }) {
        return None;
    }
    let feature = if features.contains(&F::AES) {
        Feature::Ecx1(crate::cpu_model::ecx1::AES)
    } else if features.contains(&F::PCLMULQDQ) {
        Feature::Ecx1(crate::cpu_model::ecx1::PCLMULQDQ)
    } else if features.contains(&F::SSE4_2) {
        Feature::Ecx1(crate::cpu_model::ecx1::SSE42)
    } else if features.contains(&F::SSE4_1) {
        Feature::Ecx1(crate::cpu_model::ecx1::SSE41)
    } else if features.contains(&F::SSSE3) {
        Feature::Ecx1(crate::cpu_model::ecx1::SSSE3)
    } else if features.contains(&F::SSE3) {
        Feature::Ecx1(crate::cpu_model::ecx1::SSE3)
    } else if features.contains(&F::SSE2) {
        Feature::Edx1(edx1::SSE2)
    } else {
        Feature::Edx1(edx1::SSE)
    };
    Some(Class::Sse { feature })
}

/// MOVUPS and its kin take any address; every other legacy SSE instruction with a 128-bit
/// memory operand wants it 16-byte aligned (#GP otherwise).
fn unaligned_ok(m: M) -> bool {
    matches!(
        m,
        M::Movups
            | M::Movupd
            | M::Movdqu
            | M::Lddqu
            | M::Pcmpestri
            | M::Pcmpestrm
            | M::Pcmpistri
            | M::Pcmpistrm
    )
}

impl Interp {
    /// Runs `i` if it is an SSE instruction this unit implements; `None` otherwise.
    pub(crate) fn simd(&mut self, i: &Instruction) -> Option<Result<()>> {
        let class = class(i)?;
        Some(self.simd_checks(class, i).and_then(|()| match class {
            Class::Fxsr => self.fxsave_fxrstor(i),
            Class::Integer => self.movnti(i),
            Class::Crc32 => self.crc32(i),
            Class::Xsave => self.xsave_family(i),
            Class::Mmx { .. } if i.mnemonic() == M::Emms => {
                // Every register empty; TOP stays.
                self.cpu.fpu.ftw = 0;
                Ok(())
            }
            Class::Mmx { .. } => self.simd_mmx(i),
            Class::X87 => self.x87(i),
            Class::Sse { feature } => {
                let sse41 = feature == Feature::Ecx1(crate::cpu_model::ecx1::SSE41);
                if feature == Feature::Ecx1(crate::cpu_model::ecx1::AES) {
                    self.simd_aes(i)
                } else if feature == Feature::Ecx1(crate::cpu_model::ecx1::PCLMULQDQ) {
                    self.pclmulqdq(i)
                } else if feature == Feature::Ecx1(crate::cpu_model::ecx1::SSE42) {
                    self.simd_sse42(i)
                } else if sse41 && sse41_float::handles(i.mnemonic()) {
                    self.simd_sse41_float(i)
                } else if sse41 {
                    // Includes PEXTRW's SSE4.1 form with a memory destination.
                    self.simd_sse41(i)
                } else if fxsave::handles_mxcsr(i.mnemonic()) {
                    self.ldmxcsr_stmxcsr(i)
                } else if moves::handles(i.mnemonic()) {
                    self.simd_move(i)
                } else if float::handles(i.mnemonic()) {
                    self.simd_float(i)
                } else if ssse3::handles(i.mnemonic()) {
                    self.simd_ssse3(i)
                } else {
                    self.simd_integer(i)
                }
            }
        }))
    }

    /// The checks in the order the SDM gives them (Vol. 2, 2.5 and Table 23-?): #UD for a
    /// missing feature, CR0.EM or a clear CR4.OSFXSR, then #NM for CR0.TS.
    fn simd_checks(&self, class: Class, i: &Instruction) -> Result<()> {
        let m = self.model;
        let (cr0, cr4) = (self.cpu.cr0, self.cpu.cr4);
        let nm = || Err(Fault::new(vector::NM).into());
        match class {
            Class::X87 => {
                // WAIT faults only when CR0.MP and TS are both set; the others on EM or TS.
                if i.mnemonic() == M::Wait {
                    if cr0 & CR0_MP != 0 && cr0 & CR0_TS != 0 {
                        return nm();
                    }
                } else {
                    if cr0 & (CR0_EM | CR0_TS) != 0 {
                        return nm();
                    }
                    if !m.has_edx1(edx1::FPU)
                        || (i.mnemonic() == M::Fisttp && !m.has_ecx1(crate::cpu_model::ecx1::SSE3))
                    {
                        return Err(Fault::ud().into());
                    }
                }
            }
            Class::Mmx { feature, sse } => {
                let has = match feature {
                    Feature::Edx1(b) => m.has_edx1(b),
                    Feature::Ecx1(b) => m.has_ecx1(b),
                };
                if !has || cr0 & CR0_EM != 0 || (sse && cr4 & CR4_OSFXSR == 0) {
                    return Err(Fault::ud().into());
                }
                if cr0 & CR0_TS != 0 {
                    return nm();
                }
            }
            Class::Xsave => {
                use crate::cpu_model::ecx1;
                if !m.has_ecx1(ecx1::XSAVE) || cr4 & xsave::CR4_OSXSAVE == 0 {
                    return Err(Fault::ud().into());
                }
                // XGETBV/XSETBV ignore CR0.TS; the saves and restores raise #NM.
                let state_access = !matches!(i.mnemonic(), M::Xgetbv | M::Xsetbv);
                if state_access && cr0 & CR0_TS != 0 {
                    return nm();
                }
            }
            Class::Integer => {
                if !m.has_edx1(edx1::SSE2) {
                    return Err(Fault::ud().into());
                }
            }
            Class::Crc32 => {
                if !m.has_ecx1(crate::cpu_model::ecx1::SSE42) {
                    return Err(Fault::ud().into());
                }
            }
            Class::Fxsr => {
                if !m.has_edx1(edx1::FXSR) {
                    return Err(Fault::ud().into());
                }
                if cr0 & (CR0_TS | CR0_EM) != 0 {
                    return nm();
                }
            }
            Class::Sse { feature } => {
                let has = match feature {
                    Feature::Edx1(b) => m.has_edx1(b),
                    Feature::Ecx1(b) => m.has_ecx1(b),
                };
                if !has || cr0 & CR0_EM != 0 || cr4 & CR4_OSFXSR == 0 {
                    return Err(Fault::ud().into());
                }
                if cr0 & CR0_TS != 0 {
                    return nm();
                }
            }
        }
        Ok(())
    }

    /// The linear address of memory operand `k`, `size` bytes, checked for the segment and,
    /// where the instruction wants it, 16-byte alignment.
    fn simd_linear(&mut self, i: &Instruction, k: u32, size: u32, write: bool) -> Result<u64> {
        // Operand sizes come from the decoder: 1 to 16 bytes for everything routed here.
        if !(1..=16).contains(&size) {
            return Err(Fault::ud().into());
        }
        let (seg, off) = self.mem_operand(i, k);
        let linear = self.seg_linear(seg, off, size, write)?;
        if size == 16 && !unaligned_ok(i.mnemonic()) && linear & 15 != 0 {
            return Err(Fault::gp(0).into());
        }
        if size < 16 {
            self.check_alignment(linear, size)?;
        }
        Ok(linear)
    }

    /// Reads `size` bytes (at most 16) of memory operand `k`, zero-extended.
    fn simd_read_mem(&mut self, i: &Instruction, k: u32, size: u32) -> Result<u128> {
        let linear = self.simd_linear(i, k, size, false)?;
        let mut b = [0u8; 16];
        let priv_ = self.privilege();
        self.read_linear(linear, &mut b[..size as usize], priv_)?;
        Ok(u128::from_le_bytes(b))
    }

    fn simd_write_mem(&mut self, i: &Instruction, k: u32, size: u32, v: u128) -> Result<()> {
        let linear = self.simd_linear(i, k, size, true)?;
        let priv_ = self.privilege();
        self.write_linear(linear, &v.to_le_bytes()[..size as usize], priv_)
    }

    /// Operand `k` as 128 bits: an XMM register, a general register (zero-extended) or
    /// memory of the operand's size.
    fn simd_read(&mut self, i: &Instruction, k: u32) -> Result<u128> {
        match i.op_kind(k) {
            OpKind::Register => {
                let r = i.op_register(k);
                Ok(match xmm_index(r) {
                    Some(x) => self.cpu.fpu.xmm[x],
                    None => u128::from(self.get_reg(r)),
                })
            }
            OpKind::Immediate8 => Ok(u128::from(i.immediate8())),
            _ => {
                let size = i.memory_size().size() as u32;
                self.simd_read_mem(i, k, size)
            }
        }
    }

    /// The XMM register of operand `k` (#UD should an encoding ever put something else there).
    fn xmm(&self, i: &Instruction, k: u32) -> Result<usize> {
        xmm_index(i.op_register(k)).ok_or_else(|| Fault::ud().into())
    }

    /// MOVNTI m32/m64, r: a store with a non-temporal hint.
    fn movnti(&mut self, i: &Instruction) -> Result<()> {
        let v = self.read_op(i, 1)?;
        self.write_op(i, 0, v)
    }
}
