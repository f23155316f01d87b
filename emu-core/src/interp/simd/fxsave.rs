//! MXCSR (LDMXCSR/STMXCSR) and the 512-byte FXSAVE image (FXSAVE/FXRSTOR, with and without
//! REX.W), as an OS's context switch uses them.
//!
//! Image layout (SDM Vol. 1, 10.5.1): FCW, FSW, abridged FTW, FOP, FPU IP and data pointer
//! (32-bit offset and selector, or 64-bit with REX.W), MXCSR and MXCSR_MASK, ST0–ST7 in
//! 16-byte slots from byte 32, XMM0–XMM7 (XMM0–XMM15 in 64-bit mode) from byte 160. Bytes
//! from 416 on (and XMM8–15's slots outside 64-bit mode) are neither written nor read.

use iced_x86::{Instruction, Mnemonic as M};

use super::state::MXCSR_MASK;
use crate::interp::cpu::Mode;
use crate::interp::fault::{Fault, Result};
use crate::interp::Interp;

pub fn handles_mxcsr(m: M) -> bool {
    matches!(m, M::Ldmxcsr | M::Stmxcsr)
}

const IMAGE: usize = 512;

impl Interp {
    pub(super) fn ldmxcsr_stmxcsr(&mut self, i: &Instruction) -> Result<()> {
        if i.mnemonic() == M::Stmxcsr {
            return self.simd_write_mem(i, 0, 4, u128::from(self.cpu.fpu.mxcsr));
        }
        let v = self.simd_read_mem(i, 0, 4)? as u32;
        if v & !MXCSR_MASK != 0 {
            return Err(Fault::gp(0).into());
        }
        self.cpu.fpu.mxcsr = v;
        Ok(())
    }

    /// How many XMM registers the image holds: 16 in 64-bit mode, else 8.
    pub(super) fn fxsave_xmm_count(&self) -> usize {
        if self.cpu.mode() == Mode::Long64 {
            16
        } else {
            8
        }
    }

    pub(super) fn fxsave_fxrstor(&mut self, i: &Instruction) -> Result<()> {
        let save = matches!(i.mnemonic(), M::Fxsave | M::Fxsave64);
        let wide = matches!(i.mnemonic(), M::Fxsave64 | M::Fxrstor64);
        let (seg, off) = self.mem_operand(i, 0);
        let linear = self.seg_linear(seg, off, IMAGE as u32, save)?;
        if linear & 15 != 0 {
            return Err(Fault::gp(0).into());
        }
        let end = 160 + 16 * self.fxsave_xmm_count();
        let priv_ = self.privilege();
        if save {
            let img = self.fxsave_image(wide);
            self.write_linear(linear, &img[..end], priv_)
        } else {
            let mut img = [0u8; IMAGE];
            self.read_linear(linear, &mut img[..end], priv_)?;
            let mxcsr = u32::from_le_bytes(img[24..28].try_into().expect("4 bytes"));
            if mxcsr & !MXCSR_MASK != 0 {
                return Err(Fault::gp(0).into());
            }
            self.fxrstor_image(&img, wide);
            Ok(())
        }
    }

    pub(super) fn fxsave_image(&self, wide: bool) -> [u8; IMAGE] {
        let f = &self.cpu.fpu;
        let mut img = [0u8; IMAGE];
        img[0..2].copy_from_slice(&f.fcw.to_le_bytes());
        img[2..4].copy_from_slice(&f.fsw.to_le_bytes());
        img[4] = f.ftw;
        img[6..8].copy_from_slice(&f.fop.to_le_bytes());
        if wide {
            img[8..16].copy_from_slice(&f.fip.to_le_bytes());
            img[16..24].copy_from_slice(&f.fdp.to_le_bytes());
        } else {
            img[8..12].copy_from_slice(&(f.fip as u32).to_le_bytes());
            img[12..14].copy_from_slice(&f.fcs.to_le_bytes());
            img[16..20].copy_from_slice(&(f.fdp as u32).to_le_bytes());
            img[20..22].copy_from_slice(&f.fds.to_le_bytes());
        }
        img[24..28].copy_from_slice(&f.mxcsr.to_le_bytes());
        img[28..32].copy_from_slice(&MXCSR_MASK.to_le_bytes());
        // Slot k holds ST(k), the physical register TOP + k.
        for k in 0..8 {
            img[32 + 16 * k..42 + 16 * k].copy_from_slice(&f.st[(f.top() + k) & 7]);
        }
        for (k, x) in f.xmm.iter().enumerate() {
            img[160 + 16 * k..176 + 16 * k].copy_from_slice(&x.to_le_bytes());
        }
        img
    }

    pub(super) fn fxrstor_image(&mut self, img: &[u8; IMAGE], wide: bool) {
        let xmm_count = self.fxsave_xmm_count();
        let f = &mut self.cpu.fpu;
        let u16_at = |o: usize| u16::from_le_bytes([img[o], img[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(img[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(img[o..o + 8].try_into().expect("8 bytes"));
        f.fcw = u16_at(0);
        f.fsw = u16_at(2);
        f.ftw = img[4];
        f.fop = u16_at(6) & 0x7ff;
        if wide {
            f.fip = u64_at(8);
            f.fdp = u64_at(16);
        } else {
            f.fip = u64::from(u32_at(8));
            f.fcs = u16_at(12);
            f.fdp = u64::from(u32_at(16));
            f.fds = u16_at(20);
        }
        f.mxcsr = u32_at(24);
        let top = f.top();
        for k in 0..8 {
            f.st[(top + k) & 7].copy_from_slice(&img[32 + 16 * k..42 + 16 * k]);
        }
        for k in 0..xmm_count {
            f.xmm[k] = u128::from_le_bytes(
                img[160 + 16 * k..176 + 16 * k]
                    .try_into()
                    .expect("16 bytes"),
            );
        }
    }
}
