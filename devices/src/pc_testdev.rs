//! QEMU's `pc-testdev` (hw/misc/pc-testdev.c), the ISA device kvm-unit-tests' x86 tests use:
//!
//! - ports 0xe0–0xe3: a 32-bit scratch register, accessed at any width and offset;
//! - ports 0xe8–0xeb: the same register, but every access is split into byte accesses
//!   (bytes past 0xeb fall outside the device);
//! - port 0xe4: "flush page": a 4-byte write of a guest-physical address. QEMU drops the
//!   host mapping of that page so KVM has to fault it back in; guest-visible memory does not
//!   change. Nothing in Ferrite caches guest memory incoherently (KVM keeps its own mappings
//!   coherent, and the software CPU's decoded instructions are dropped by every store to
//!   their page), so the write is accepted and has no effect;
//! - ports 0x2000–0x2017: ISA interrupt line N follows the low bit of a byte written to
//!   0x2000 + N (level);
//! - MMIO 0xff000000–0xff00ffff: 64 KiB of scratch memory.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::irq::IrqLine;

pub const SCRATCH_PORT: u16 = 0xe0;
pub const FLUSH_PORT: u16 = 0xe4;
pub const SCRATCH_BYTE_PORT: u16 = 0xe8;
pub const IRQ_PORT: u16 = 0x2000;
pub const IRQ_LINES: u16 = 24;
pub const IOMEM_BASE: u64 = 0xff00_0000;
pub const IOMEM_LEN: u64 = 0x1_0000;

pub struct PcTestDev {
    scratch: u32,
    iomem: Vec<u8>,
    irqs: Vec<Arc<dyn IrqLine>>,
}

impl PcTestDev {
    /// `irqs[n]` is ISA line n (as many as there are, up to [`IRQ_LINES`]).
    pub fn new(irqs: Vec<Arc<dyn IrqLine>>) -> Self {
        PcTestDev {
            scratch: 0,
            iomem: vec![0; IOMEM_LEN as usize],
            irqs,
        }
    }

    /// The register's bytes `offset..offset+len` (offset taken modulo 4, as QEMU does).
    fn scratch_mask(offset: u64, len: usize) -> (u32, u32) {
        let start = ((offset & 3) * 8) as u32;
        let bits = (len as u32 * 8).min(32);
        let mask = (u32::MAX >> (32 - bits)).wrapping_shl(start);
        (mask, start)
    }

    fn scratch_read(&self, offset: u64, len: usize) -> u64 {
        let (mask, start) = Self::scratch_mask(offset, len);
        u64::from((self.scratch & mask) >> start)
    }

    fn scratch_write(&mut self, offset: u64, len: usize, value: u64) {
        let (mask, start) = Self::scratch_mask(offset, len);
        self.scratch = (self.scratch & !mask) | ((value as u32).wrapping_shl(start) & mask);
    }
}

fn le(data: &[u8]) -> u64 {
    crate::bus::le_value(data)
}

impl BusDevice for PcTestDev {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        match base {
            b if b == u64::from(SCRATCH_PORT) && data.len() <= 4 => {
                let v = self.scratch_read(offset, data.len());
                crate::bus::put_le_value(data, v);
            }
            // Split into bytes; those past the four ports are the bus's (unclaimed).
            b if b == u64::from(SCRATCH_BYTE_PORT) => {
                for (i, d) in data.iter_mut().enumerate() {
                    *d = match offset + i as u64 {
                        o @ 0..=3 => self.scratch_read(o, 1) as u8,
                        _ => 0xff,
                    };
                }
            }
            IOMEM_BASE => {
                let start = offset.min(IOMEM_LEN) as usize;
                let end = (start + data.len()).min(IOMEM_LEN as usize);
                data.fill(0);
                data[..end - start].copy_from_slice(&self.iomem[start..end]);
            }
            // The flush and IRQ ports are write-only.
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        match base {
            b if b == u64::from(SCRATCH_PORT) && data.len() <= 4 => {
                self.scratch_write(offset, data.len(), le(data));
            }
            b if b == u64::from(SCRATCH_BYTE_PORT) => {
                for (i, d) in data.iter().enumerate() {
                    if let o @ 0..=3 = offset + i as u64 {
                        self.scratch_write(o, 1, u64::from(*d));
                    }
                }
            }
            b if b == u64::from(FLUSH_PORT) => {
                log::debug!("pc-testdev: flush page {:#x} (nothing to flush)", le(data));
            }
            // One byte per line; wider writes are invalid and dropped, as in QEMU.
            b if b == u64::from(IRQ_PORT) && data.len() == 1 => {
                if let Some(line) = self.irqs.get(offset as usize) {
                    line.set_level(data[0] != 0);
                }
            }
            IOMEM_BASE => {
                let start = offset.min(IOMEM_LEN) as usize;
                let end = (start + data.len()).min(IOMEM_LEN as usize);
                self.iomem[start..end].copy_from_slice(&data[..end - start]);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Line(Mutex<Vec<bool>>);

    impl IrqLine for Line {
        fn set_level(&self, high: bool) {
            self.0.lock().push(high);
        }
    }

    fn dev() -> (PcTestDev, Arc<Line>) {
        let line = Arc::new(Line::default());
        let irqs: Vec<Arc<dyn IrqLine>> = (0..IRQ_LINES)
            .map(|_| line.clone() as Arc<dyn IrqLine>)
            .collect();
        (PcTestDev::new(irqs), line)
    }

    fn read(d: &mut PcTestDev, base: u16, offset: u64, len: usize) -> u64 {
        let mut b = vec![0; len];
        d.read(u64::from(base), offset, &mut b);
        le(&b)
    }

    #[test]
    fn scratch_register_at_every_width_and_offset() {
        let (mut d, _) = dev();
        d.write(0xe0, 0, &0x1234_5678u32.to_le_bytes());
        assert_eq!(read(&mut d, 0xe0, 0, 4), 0x1234_5678);
        assert_eq!(read(&mut d, 0xe0, 1, 1), 0x56);
        assert_eq!(read(&mut d, 0xe0, 2, 2), 0x1234);
        // A dword at offset 2 sees the upper half only, as QEMU's mask arithmetic gives.
        assert_eq!(read(&mut d, 0xe0, 2, 4), 0x1234);
        d.write(0xe0, 1, &[0xab]);
        assert_eq!(read(&mut d, 0xe0, 0, 4), 0x1234_ab78);
        d.write(0xe0, 3, &0xcdefu16.to_le_bytes());
        assert_eq!(read(&mut d, 0xe0, 0, 4), 0xef34_ab78);
        // The byte-split view of the same register.
        assert_eq!(read(&mut d, 0xe8, 0, 4), 0xef34_ab78);
        d.write(0xe8, 2, &0x0102u16.to_le_bytes());
        assert_eq!(read(&mut d, 0xe0, 0, 4), 0x0102_ab78);
        // An access running past port 0xEB: its other bytes go to the unclaimed port 0xEC.
        d.write(0xe8, 3, &0xaabbu16.to_le_bytes());
        assert_eq!(read(&mut d, 0xe0, 0, 4), 0xbb02_ab78);
        assert_eq!(read(&mut d, 0xe8, 3, 2), 0xffbb);
    }

    #[test]
    fn irq_lines_follow_the_written_byte() {
        let (mut d, line) = dev();
        d.write(0x2000, 10, &[1]);
        d.write(0x2000, 10, &[0]);
        d.write(0x2000, 10, &[0x80]);
        d.write(0x2000, 10, &[1, 0]); // not a byte: ignored
        d.write(0x2000, 200, &[1]); // beyond the lines: ignored
        assert_eq!(*line.0.lock(), [true, false, true]);
    }

    #[test]
    fn iomem_is_memory_and_clips_at_its_end() {
        let (mut d, _) = dev();
        d.write(IOMEM_BASE, 0x10, &0x1122_3344_5566_7788u64.to_le_bytes());
        let mut b = [0u8; 8];
        d.read(IOMEM_BASE, 0x10, &mut b);
        assert_eq!(u64::from_le_bytes(b), 0x1122_3344_5566_7788);
        d.write(IOMEM_BASE, 0xfffe, &[1, 2, 3, 4]);
        let mut b = [0xeeu8; 4];
        d.read(IOMEM_BASE, 0xfffe, &mut b);
        assert_eq!(b, [1, 2, 0, 0]);
        d.read(IOMEM_BASE, 0x20000, &mut b);
        assert_eq!(b, [0; 4]);
    }
}
