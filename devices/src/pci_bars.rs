//! PCI base address registers: how a function's BARs size and place its registers, and the
//! host bridge's windows that route CPU accesses to whichever BAR claims them.
//!
//! A BAR is part of the function's configuration space: its low bits are fixed (the space
//! bit, and zeros below the size) and the rest writable, so the standard sizing probe (write
//! all ones, read back) reveals the size. The bridge decodes a BAR only while the function's
//! command register enables its space, and only inside the PCI windows (the hole below 4 GiB
//! for memory, 0xC000–0xFFFF for I/O, where firmware places BARs); an access there that no
//! BAR claims reads all ones, as on a PC.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::bus::BusDevice;

pub const COMMAND: u8 = 0x04;
pub const COMMAND_IO: u16 = 1 << 0;
pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const BAR0: u8 = 0x10;

/// The I/O window firmware allocates I/O BARs from.
pub const IO_WINDOW: (u64, u64) = (0xc000, 0x1_0000);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarSpace {
    Io,
    Memory,
}

/// One BAR's shape: its space and size (a power of two: at least 4 bytes for I/O, 16 for
/// memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarShape {
    pub space: BarSpace,
    pub size: u32,
}

impl BarShape {
    /// The bits of the BAR the guest can write.
    pub fn write_mask(self) -> u32 {
        !(self.size - 1)
    }

    /// The fixed low bits: bit 0 set for I/O; memory BARs are 32-bit, not prefetchable (0).
    pub fn fixed_bits(self) -> u32 {
        match self.space {
            BarSpace::Io => 1,
            BarSpace::Memory => 0,
        }
    }
}

/// A BAR where the function currently decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedBar {
    pub index: usize,
    pub space: BarSpace,
    pub base: u64,
    pub size: u64,
}

/// Where a BAR decodes, given its register value and the command register; `None` while its
/// space is disabled or it is unplaced (zero, as firmware leaves an unassigned BAR).
pub fn decode(index: usize, shape: BarShape, value: u32, command: u16) -> Option<MappedBar> {
    let enabled = match shape.space {
        BarSpace::Io => command & COMMAND_IO != 0,
        BarSpace::Memory => command & COMMAND_MEMORY != 0,
    };
    let base = u64::from(value & shape.write_mask());
    (enabled && base != 0).then_some(MappedBar {
        index,
        space: shape.space,
        base,
        size: u64::from(shape.size),
    })
}

/// A PCI function with BARs, as the bridge's windows see it.
pub trait PciBarDevice: Send {
    /// The BARs it decodes now.
    fn mapped_bars(&self) -> Vec<MappedBar>;
    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]);
}

pub type SharedBarDevice = Arc<Mutex<dyn PciBarDevice>>;

/// One of the bridge's windows (the memory hole or the I/O range), placed on the matching
/// bus: forwards each access to the BAR that contains it.
pub struct PciWindow {
    space: BarSpace,
    devices: Vec<SharedBarDevice>,
}

impl PciWindow {
    pub fn new(space: BarSpace, devices: Vec<SharedBarDevice>) -> Self {
        PciWindow { space, devices }
    }

    /// The device and BAR claiming `addr..addr+len`, and the offset into the BAR.
    fn claim(&self, addr: u64, len: usize) -> Option<(&SharedBarDevice, usize, u64)> {
        self.devices.iter().find_map(|d| {
            d.lock()
                .mapped_bars()
                .into_iter()
                .find(|b| {
                    b.space == self.space
                        && addr >= b.base
                        && addr.saturating_add(len as u64) <= b.base + b.size
                })
                .map(|b| (d, b.index, addr - b.base))
        })
    }
}

impl BusDevice for PciWindow {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        match self.claim(base + offset, data.len()) {
            Some((d, bar, off)) => d.lock().bar_read(bar, off, data),
            None => data.fill(0xff),
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        if let Some((d, bar, off)) = self.claim(base + offset, data.len()) {
            d.lock().bar_write(bar, off, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_and_decoding() {
        let mem = BarShape {
            space: BarSpace::Memory,
            size: 0x1000,
        };
        let io = BarShape {
            space: BarSpace::Io,
            size: 0x100,
        };
        // The sizing probe: all ones written, the size read back.
        assert_eq!(mem.write_mask() | mem.fixed_bits(), 0xffff_f000);
        assert_eq!(io.write_mask() | io.fixed_bits(), 0xffff_ff01);
        let m = decode(0, mem, 0xfebf_0000, COMMAND_MEMORY).unwrap();
        assert_eq!((m.base, m.size), (0xfebf_0000, 0x1000));
        assert_eq!(decode(0, mem, 0xfebf_0000, COMMAND_IO), None);
        assert_eq!(decode(1, io, 0xc001, COMMAND_MEMORY), None);
        assert_eq!(decode(1, io, 0xc001, COMMAND_IO).unwrap().base, 0xc000);
        assert_eq!(decode(1, io, 0x0001, COMMAND_IO), None);
    }
}
