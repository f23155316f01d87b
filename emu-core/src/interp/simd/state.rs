//! The x87/SSE register state: XMM0–15 and MXCSR, and the x87 unit's registers as FXSAVE
//! lays them out (the x87 instructions themselves come later; FXSAVE/FXRSTOR already carry
//! their state, so an OS's context switch keeps it).

/// MXCSR after reset: all exceptions masked, round to nearest.
pub const MXCSR_RESET: u32 = 0x1f80;
/// The MXCSR bits that exist (flags, DAZ, masks, rounding, FZ); FXSAVE reports it as
/// MXCSR_MASK and setting any other bit is #GP.
pub const MXCSR_MASK: u32 = 0xffff;
/// FCW after FNINIT and reset: all exceptions masked, 64-bit precision, round to nearest.
pub const FCW_INIT: u16 = 0x037f;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FpuState {
    pub xmm: [u128; 16],
    pub mxcsr: u32,
    pub fcw: u16,
    pub fsw: u16,
    /// The abridged tag word (one bit per register, 1 = valid), as FXSAVE stores it.
    pub ftw: u8,
    pub fop: u16,
    pub fip: u64,
    pub fcs: u16,
    pub fdp: u64,
    pub fds: u16,
    /// The physical registers R0–R7, 80 bits each (ST(i) is R[(TOP + i) mod 8]; MMi is
    /// the low 64 bits of Ri).
    pub st: [[u8; 10]; 8],
}

impl FpuState {
    /// The top-of-stack field of FSW.
    pub fn top(&self) -> usize {
        usize::from((self.fsw >> 11) & 7)
    }

    /// MMi.
    pub fn mm(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.st[i][..8].try_into().expect("8 bytes"))
    }

    /// What every MMX instruction but EMMS does to the x87 state: TOP = 0, all tags valid.
    pub fn mmx_transition(&mut self) {
        self.fsw &= !(7 << 11);
        self.ftw = 0xff;
    }

    /// Writes MMi: the significand takes the value, sign and exponent become all ones.
    pub fn set_mm(&mut self, i: usize, v: u64) {
        self.st[i][..8].copy_from_slice(&v.to_le_bytes());
        self.st[i][8] = 0xff;
        self.st[i][9] = 0xff;
    }
}

impl Default for FpuState {
    fn default() -> Self {
        FpuState {
            xmm: [0; 16],
            mxcsr: MXCSR_RESET,
            fcw: FCW_INIT,
            fsw: 0,
            ftw: 0,
            fop: 0,
            fip: 0,
            fcs: 0,
            fdp: 0,
            fds: 0,
            st: [[0; 10]; 8],
        }
    }
}
