//! XSAVE: XCR0 (XGETBV/XSETBV) and the XSAVE/XRSTOR family for the two state components the
//! CPU has, x87 (bit 0) and SSE (bit 1), both in the 512-byte legacy region laid out as
//! FXSAVE's, followed by the 64-byte XSAVE header (SDM Vol. 1, chapter 13).
//!
//! The CPU treats both components as always in use (XINUSE = 3): XSAVE records them in
//! XSTATE_BV whenever they are requested, and XSAVEOPT, whose optimizations are optional,
//! behaves as XSAVE. XSAVEC writes the compacted form, which for these two components has
//! the same layout with XCOMP_BV bit 63 set.

use iced_x86::{Instruction, Mnemonic as M};

use super::state::{FpuState, FCW_INIT, MXCSR_MASK};
use crate::interp::cpu::Mode;
use crate::interp::fault::{Fault, Result};
use crate::interp::Interp;

/// XCR0 bits: x87 and SSE.
pub const XCR0_X87: u64 = 1 << 0;
pub const XCR0_SSE: u64 = 1 << 1;
pub const XCR0_SUPPORTED: u64 = XCR0_X87 | XCR0_SSE;
/// The XSAVE area: legacy region and header.
pub const AREA_SIZE: u32 = 512 + 64;
const HEADER: usize = 512;
pub const CR4_OSXSAVE: u64 = 1 << 18;

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::Xsave
            | M::Xsave64
            | M::Xsaveopt
            | M::Xsaveopt64
            | M::Xsavec
            | M::Xsavec64
            | M::Xrstor
            | M::Xrstor64
            | M::Xgetbv
            | M::Xsetbv
    )
}

/// CPUID leaf 0xD for `xcr0`: subleaf 0 sizes and supported components, subleaf 1 the
/// XSAVEOPT and XSAVEC bits and the compacted size.
pub fn cpuid_leaf_d(subleaf: u32, xcr0: u64) -> (u32, u32, u32, u32) {
    let _ = xcr0;
    match subleaf {
        0 => (XCR0_SUPPORTED as u32, AREA_SIZE, AREA_SIZE, 0),
        1 => (0b11, AREA_SIZE, 0, 0),
        _ => (0, 0, 0, 0),
    }
}

impl Interp {
    pub(super) fn xsave_family(&mut self, i: &Instruction) -> Result<()> {
        match i.mnemonic() {
            M::Xgetbv => {
                // Only XCR0 exists (no XGETBV with ECX=1).
                if self.cpu.regs[1] as u32 != 0 {
                    return Err(Fault::gp(0).into());
                }
                let v = self.cpu.xcr0;
                self.cpu.regs[0] = v & 0xffff_ffff;
                self.cpu.regs[2] = v >> 32;
                Ok(())
            }
            M::Xsetbv => {
                let v = (self.cpu.regs[2] & 0xffff_ffff) << 32 | (self.cpu.regs[0] & 0xffff_ffff);
                let bad = self.cpu.cpl() != 0
                    || self.cpu.regs[1] as u32 != 0
                    || v & !XCR0_SUPPORTED != 0
                    || v & XCR0_X87 == 0;
                if bad {
                    return Err(Fault::gp(0).into());
                }
                self.cpu.xcr0 = v;
                Ok(())
            }
            M::Xrstor | M::Xrstor64 => self.xrstor(i),
            m => {
                let compact = matches!(m, M::Xsavec | M::Xsavec64);
                self.xsave(i, compact)
            }
        }
    }

    /// The requested-feature bitmap: XCR0 and EDX:EAX.
    fn rfbm(&self) -> u64 {
        let mask = (self.cpu.regs[2] & 0xffff_ffff) << 32 | (self.cpu.regs[0] & 0xffff_ffff);
        self.cpu.xcr0 & mask
    }

    fn xsave_area(&mut self, i: &Instruction, write: bool) -> Result<u64> {
        let (seg, off) = self.mem_operand(i, 0);
        let linear = self.seg_linear(seg, off, AREA_SIZE, write)?;
        if linear & 63 != 0 {
            return Err(Fault::gp(0).into());
        }
        Ok(linear)
    }

    fn xsave(&mut self, i: &Instruction, compact: bool) -> Result<()> {
        let linear = self.xsave_area(i, true)?;
        let rfbm = self.rfbm();
        let wide = matches!(i.mnemonic(), M::Xsave64 | M::Xsaveopt64 | M::Xsavec64);
        let priv_ = self.privilege();
        // Read the area first: XSAVE changes only what it saves.
        let mut area = vec![0u8; AREA_SIZE as usize];
        self.read_linear(linear, &mut area, priv_)?;
        let image = self.fxsave_image(wide);
        let xmm_end = 160 + 16 * self.fxsave_xmm_count();
        if rfbm & XCR0_X87 != 0 {
            area[0..24].copy_from_slice(&image[0..24]);
            area[32..160].copy_from_slice(&image[32..160]);
        }
        if rfbm & XCR0_SSE != 0 {
            area[24..32].copy_from_slice(&image[24..32]);
            area[160..xmm_end].copy_from_slice(&image[160..xmm_end]);
        }
        let old_bv = u64::from_le_bytes(area[HEADER..HEADER + 8].try_into().expect("8 bytes"));
        let bv = if compact {
            rfbm
        } else {
            (old_bv & !rfbm) | (XCR0_SUPPORTED & rfbm)
        };
        area[HEADER..HEADER + 8].copy_from_slice(&bv.to_le_bytes());
        if compact {
            let comp = (1u64 << 63) | rfbm;
            area[HEADER + 8..HEADER + 16].copy_from_slice(&comp.to_le_bytes());
        }
        self.write_linear(linear, &area, priv_)
    }

    fn xrstor(&mut self, i: &Instruction) -> Result<()> {
        let linear = self.xsave_area(i, false)?;
        let rfbm = self.rfbm();
        let wide = i.mnemonic() == M::Xrstor64;
        let priv_ = self.privilege();
        let mut area = [0u8; AREA_SIZE as usize];
        self.read_linear(linear, &mut area, priv_)?;
        let u64_at = |o: usize| u64::from_le_bytes(area[o..o + 8].try_into().expect("8 bytes"));
        let (bv, comp) = (u64_at(HEADER), u64_at(HEADER + 8));
        let compacted = comp & (1 << 63) != 0;
        // The header's checks (SDM Vol. 1, 13.8): reserved bytes zero, no unknown components.
        let reserved_ok = area[HEADER + 16..].iter().all(|&b| b == 0);
        let ok = if compacted {
            reserved_ok && comp & !(1 << 63) & !self.cpu.xcr0 == 0 && bv & !comp == 0
        } else {
            reserved_ok && comp == 0 && bv & !self.cpu.xcr0 == 0
        };
        if !ok {
            return Err(Fault::gp(0).into());
        }
        let mxcsr = u32::from_le_bytes(area[24..28].try_into().expect("4 bytes"));
        if rfbm & XCR0_SSE != 0 && mxcsr & !MXCSR_MASK != 0 {
            return Err(Fault::gp(0).into());
        }
        let mut img = [0u8; 512];
        img.copy_from_slice(&area[..512]);
        let saved = self.cpu.fpu.clone();
        // Everything from the image, then put back what is not to be restored and reset what
        // the header says is in its initial state.
        self.fxrstor_image(&img, wide);
        let loaded = std::mem::replace(&mut self.cpu.fpu, saved);
        let n = if self.cpu.mode() == Mode::Long64 {
            16
        } else {
            8
        };
        let f = &mut self.cpu.fpu;
        let init = FpuState::default();
        if rfbm & XCR0_X87 != 0 {
            let src = if bv & XCR0_X87 != 0 { &loaded } else { &init };
            f.fcw = src.fcw;
            f.fsw = src.fsw;
            f.ftw = src.ftw;
            f.fop = src.fop;
            f.fip = src.fip;
            f.fcs = src.fcs;
            f.fdp = src.fdp;
            f.fds = src.fds;
            f.st = src.st;
            debug_assert_eq!(init.fcw, FCW_INIT);
        }
        if rfbm & XCR0_SSE != 0 {
            // MXCSR always comes from memory when SSE is requested.
            f.mxcsr = loaded.mxcsr;
            for k in 0..n {
                f.xmm[k] = if bv & XCR0_SSE != 0 { loaded.xmm[k] } else { 0 };
            }
        }
        Ok(())
    }
}
