//! Memory-type range registers.
//!
//! The interpreter has no caches, so memory types change nothing it does; the registers exist
//! because firmware and kernels program them and read them back (Linux checks that they are
//! consistent across CPUs and sizes its PAT/MTRR logic from MTRRcap). Writes with reserved bits
//! or undefined memory types raise #GP, as on hardware.

use super::mmu::PHYS_ADDR_BITS;

pub const CAP: u32 = 0xfe;
pub const PHYS_BASE0: u32 = 0x200;
pub const FIX64K_00000: u32 = 0x250;
pub const FIX16K_80000: u32 = 0x258;
pub const FIX16K_A0000: u32 = 0x259;
pub const FIX4K_C0000: u32 = 0x268;
pub const FIX4K_F8000: u32 = 0x26f;
pub const DEF_TYPE: u32 = 0x2ff;

/// Variable ranges offered (MTRRcap.VCNT).
const VARIABLE: usize = 8;
/// MTRRcap: VCNT, fixed ranges (bit 8), write-combining (bit 10).
const CAP_VALUE: u64 = VARIABLE as u64 | (1 << 8) | (1 << 10);

#[derive(Clone, Debug, Default)]
pub struct Mtrrs {
    /// PHYSBASEn, PHYSMASKn pairs.
    variable: [[u64; 2]; VARIABLE],
    /// The eleven fixed-range registers, in MSR order (64K, 16K×2, 4K×8).
    fixed: [u64; 11],
    def_type: u64,
}

/// UC, WC, WT, WP, WB: the types a register may hold.
fn valid_type(t: u64) -> bool {
    matches!(t, 0 | 1 | 4 | 5 | 6)
}

fn fixed_slot(index: u32) -> Option<usize> {
    match index {
        FIX64K_00000 => Some(0),
        FIX16K_80000 => Some(1),
        FIX16K_A0000 => Some(2),
        FIX4K_C0000..=FIX4K_F8000 => Some(3 + (index - FIX4K_C0000) as usize),
        _ => None,
    }
}

fn variable_slot(index: u32) -> Option<(usize, usize)> {
    let off = index.checked_sub(PHYS_BASE0)? as usize;
    (off < 2 * VARIABLE).then_some((off / 2, off % 2))
}

impl Mtrrs {
    /// The MSR's value, or `None` if `index` is not an MTRR.
    pub fn read(&self, index: u32) -> Option<u64> {
        match index {
            CAP => Some(CAP_VALUE),
            DEF_TYPE => Some(self.def_type),
            _ => fixed_slot(index)
                .map(|s| self.fixed[s])
                .or_else(|| variable_slot(index).map(|(n, k)| self.variable[n][k])),
        }
    }

    /// Writes the MSR. `None` if `index` is not an MTRR; `Some(false)` if the value is
    /// invalid (the caller raises #GP).
    pub fn write(&mut self, index: u32, v: u64) -> Option<bool> {
        let phys_mask = (1u64 << PHYS_ADDR_BITS) - 1;
        let ok = match index {
            CAP => false, // read-only
            DEF_TYPE => {
                // Type (bits 7:0), FE (10), E (11).
                let ok = v & !0xcff == 0 && valid_type(v & 0xff);
                if ok {
                    self.def_type = v;
                }
                ok
            }
            _ => {
                if let Some(s) = fixed_slot(index) {
                    let ok = (0..8).all(|b| valid_type((v >> (b * 8)) & 0xff));
                    if ok {
                        self.fixed[s] = v;
                    }
                    ok
                } else {
                    let (n, k) = variable_slot(index)?;
                    let ok = if k == 0 {
                        // PHYSBASE: type in 7:0, base in 12..MAXPHYADDR.
                        v & !(phys_mask & !0xfff | 0xff) == 0 && valid_type(v & 0xff)
                    } else {
                        // PHYSMASK: valid bit 11, mask in 12..MAXPHYADDR.
                        v & !(phys_mask & !0xfff | 0x800) == 0
                    };
                    if ok {
                        self.variable[n][k] = v;
                    }
                    ok
                }
            }
        };
        Some(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_read_back_and_reject_reserved_values() {
        let mut m = Mtrrs::default();
        assert_eq!(m.read(CAP), Some(0x508));
        assert_eq!(m.write(DEF_TYPE, 0xc06), Some(true));
        assert_eq!(m.read(DEF_TYPE), Some(0xc06));
        assert_eq!(m.write(DEF_TYPE, 0x2), Some(false), "type 2 is reserved");
        assert_eq!(m.write(0x203, 0xffff_f000 | 0x800), Some(true));
        assert_eq!(m.read(0x203), Some(0xffff_f800));
        assert_eq!(m.write(0x202, 0x1), Some(true));
        assert_eq!(m.write(0x202, 1 << 63), Some(false));
        assert_eq!(m.write(FIX4K_F8000, 0x0606_0606_0606_0606), Some(true));
        assert_eq!(m.read(FIX4K_F8000), Some(0x0606_0606_0606_0606));
        assert_eq!(m.write(FIX16K_A0000, 0x0303), Some(false));
        assert_eq!(m.write(CAP, 0), Some(false));
        assert_eq!(m.read(0x210), None);
        assert_eq!(m.write(0x210, 0), None);
    }
}
