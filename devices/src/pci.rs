//! PCI configuration mechanism #1 (ports 0xCF8–0xCFF) and the i440FX-like host bridge.
//!
//! Byte access to 0xCF9 is not part of the address register: on PIIX chipsets it is the reset
//! control register, which Linux uses to reboot.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::bus::{le_value, put_le_value, BusDevice};
use crate::system::{SystemControl, SystemEvent};

pub const CONFIG_ADDRESS: u16 = 0xcf8;
/// 0xCF8–0xCFF: address register, reset control at 0xCF9, data window at 0xCFC.
pub const CONFIG_PORTS_LEN: u16 = 8;
const RESET_CONTROL: u64 = 1;
const DATA_OFFSET: u64 = 4;

/// A PCI function's 256-byte configuration space.
pub trait PciFunction: Send {
    fn config_read(&mut self, offset: u8, data: &mut [u8]);
    fn config_write(&mut self, offset: u8, data: &[u8]);
}

/// A function shared with another part of the board (its BARs' window).
impl<T: PciFunction> PciFunction for Arc<parking_lot::Mutex<T>> {
    fn config_read(&mut self, offset: u8, data: &mut [u8]) {
        self.lock().config_read(offset, data);
    }

    fn config_write(&mut self, offset: u8, data: &[u8]) {
        self.lock().config_write(offset, data);
    }
}

/// A function whose configuration space is a byte array with a per-byte write mask.
pub struct StaticConfig {
    space: [u8; 256],
    writable: [u8; 256],
}

impl StaticConfig {
    pub fn new(vendor: u16, device: u16, class: u32, revision: u8, header_type: u8) -> Self {
        let mut space = [0u8; 256];
        put_le_value(&mut space[0..2], u64::from(vendor));
        put_le_value(&mut space[2..4], u64::from(device));
        space[8] = revision;
        put_le_value(&mut space[9..12], u64::from(class));
        space[0x0e] = header_type;
        let mut writable = [0u8; 256];
        // Command register (I/O, memory, bus master, …), cache line size, latency timer.
        writable[4] = 0xff;
        writable[5] = 0x07;
        writable[0x0c] = 0xff;
        writable[0x0d] = 0xff;
        StaticConfig { space, writable }
    }

    /// Sets bytes of the space (values the guest cannot change unless made writable).
    pub fn with_bytes(mut self, offset: usize, bytes: &[u8]) -> Self {
        let end = (offset + bytes.len()).min(256);
        self.space[offset.min(end)..end].copy_from_slice(&bytes[..end - offset.min(end)]);
        self
    }

    /// Lets the guest write the bits of `mask` in the bytes at `offset` (a BAR's address bits).
    pub fn with_write_mask(mut self, offset: usize, mask: &[u8]) -> Self {
        let end = (offset + mask.len()).min(256);
        self.writable[offset.min(end)..end].copy_from_slice(&mask[..end - offset.min(end)]);
        self
    }

    /// The little-endian dword at `offset` (4-byte aligned).
    pub fn dword(&self, offset: u8) -> u32 {
        let o = usize::from(offset & 0xfc);
        u32::from_le_bytes(self.space[o..o + 4].try_into().expect("4 bytes"))
    }

    /// Lets the guest write `len` bytes at `offset` (chipset registers such as PAM).
    pub fn allow_writes(mut self, offset: usize, len: usize) -> Self {
        let end = (offset + len).min(256);
        self.writable[offset.min(end)..end].fill(0xff);
        self
    }
}

impl PciFunction for StaticConfig {
    fn config_read(&mut self, offset: u8, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = self.space[(usize::from(offset) + i) & 0xff];
        }
    }

    fn config_write(&mut self, offset: u8, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let o = (usize::from(offset) + i) & 0xff;
            let m = self.writable[o];
            self.space[o] = (self.space[o] & !m) | (b & m);
        }
    }
}

/// The i440FX host bridge at 00:00.0 (as QEMU's `pc` machine has it).
pub fn i440fx_host_bridge() -> StaticConfig {
    // PAM0–6 (0x59–0x5f) and SMRAM (0x72) are writable chipset registers firmware touches.
    StaticConfig::new(0x8086, 0x1237, 0x06_00_00, 0x02, 0x00)
        .allow_writes(0x59, 7)
        .allow_writes(0x72, 1)
}

/// The PIIX3 PCI-to-ISA bridge at 00:01.0.
pub fn piix3_isa_bridge() -> StaticConfig {
    // PIRQ route control registers 0x60–0x63.
    StaticConfig::new(0x8086, 0x7000, 0x06_01_00, 0x00, 0x80).allow_writes(0x60, 4)
}

/// Bus 0 of the PCI hierarchy, reached through configuration mechanism #1.
pub struct PciRoot {
    address: u32,
    /// Keyed by devfn (device << 3 | function).
    functions: BTreeMap<u8, Box<dyn PciFunction>>,
    control: Arc<dyn SystemControl>,
    reset_control: u8,
}

impl PciRoot {
    pub fn new(control: Arc<dyn SystemControl>) -> Self {
        PciRoot {
            address: 0,
            functions: BTreeMap::new(),
            control,
            reset_control: 0,
        }
    }

    /// Places `function` at `device.function` on bus 0.
    pub fn add(&mut self, device: u8, function: u8, f: Box<dyn PciFunction>) {
        self.functions
            .insert(((device & 0x1f) << 3) | (function & 7), f);
    }

    /// The enabled function and register offset that CONFIG_ADDRESS selects, if any.
    fn selected(&mut self, byte: u64) -> Option<(&mut Box<dyn PciFunction>, u8)> {
        let a = self.address;
        if a & 0x8000_0000 == 0 || (a >> 16) & 0xff != 0 {
            return None; // disabled, or a bus that does not exist
        }
        let devfn = ((a >> 8) & 0xff) as u8;
        let offset = (a & 0xfc) as u8 | (byte & 3) as u8;
        self.functions.get_mut(&devfn).map(|f| (f, offset))
    }
}

impl BusDevice for PciRoot {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        match offset {
            0 if data.len() == 4 => put_le_value(data, u64::from(self.address)),
            RESET_CONTROL if data.len() == 1 => data[0] = self.reset_control,
            DATA_OFFSET..=7 => match self.selected(offset - DATA_OFFSET) {
                Some((f, reg)) => f.config_read(reg, data),
                None => data.fill(0xff),
            },
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        match offset {
            0 if data.len() == 4 => self.address = le_value(data) as u32,
            RESET_CONTROL if data.len() == 1 => {
                // Bit 2 (RST_CPU) set performs the reset chosen by bit 1 (hard/soft); both
                // are a platform reset for us.
                if data[0] & 0x04 != 0 {
                    log::info!("pci: guest requested reset through port 0xcf9");
                    self.control.request(SystemEvent::Reset);
                }
                self.reset_control = data[0] & 0x0a;
            }
            DATA_OFFSET..=7 => {
                if let Some((f, reg)) = self.selected(offset - DATA_OFFSET) {
                    f.config_write(reg, data);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::Record;

    fn cfg_read(root: &mut PciRoot, devfn: u32, reg: u32) -> u32 {
        root.write(0xcf8, 0, &(0x8000_0000 | devfn << 8 | reg).to_le_bytes());
        let mut d = [0u8; 4];
        root.read(0xcf8, 4, &mut d);
        u32::from_le_bytes(d)
    }

    #[test]
    fn enumerates_the_host_bridge_and_nothing_else() {
        let rec = Arc::new(Record::default());
        let mut root = PciRoot::new(rec.clone());
        root.add(0, 0, Box::new(i440fx_host_bridge()));
        assert_eq!(cfg_read(&mut root, 0, 0), 0x1237_8086);
        assert_eq!(cfg_read(&mut root, 0, 8) >> 8, 0x06_00_00);
        assert_eq!(cfg_read(&mut root, 1 << 3, 0), 0xffff_ffff);
        // Vendor ID is read-only; the command register is writable.
        root.write(0xcf8, 0, &0x8000_0000u32.to_le_bytes());
        root.write(0xcf8, 4, &0xdead_beefu32.to_le_bytes());
        assert_eq!(cfg_read(&mut root, 0, 0), 0x1237_8086);
        root.write(0xcf8, 0, &0x8000_0004u32.to_le_bytes());
        root.write(0xcf8, 4, &0xdead_0007u32.to_le_bytes());
        assert_eq!(cfg_read(&mut root, 0, 4) & 0xffff, 0x0007);
        // A byte read of the data window at offset 2 returns the device ID's low byte.
        root.write(0xcf8, 0, &0x8000_0000u32.to_le_bytes());
        let mut b = [0u8; 1];
        root.read(0xcf8, 6, &mut b);
        assert_eq!(b[0], 0x37);
        assert!(rec.0.lock().is_empty());
    }

    #[test]
    fn cf9_resets() {
        let rec = Arc::new(Record::default());
        let mut root = PciRoot::new(rec.clone());
        root.write(0xcf8, 1, &[0x02]);
        assert!(rec.0.lock().is_empty());
        root.write(0xcf8, 1, &[0x06]);
        assert_eq!(*rec.0.lock(), vec![SystemEvent::Reset]);
    }
}
