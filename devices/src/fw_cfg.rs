//! QEMU's firmware configuration interface (fw_cfg), I/O-port form: a 16-bit selector
//! written to port 0x510 picks an item, and port 0x511 reads it out byte by byte from the
//! start; reads past the end give 0. Writes to the data port are ignored (as QEMU since 2.4),
//! and there is no DMA interface (the ID item says so). Test suites and firmware use it to
//! learn the CPU count, the RAM size and the command line.

use std::collections::BTreeMap;

use crate::bus::{le_value, BusDevice};

pub const SELECTOR_PORT: u16 = 0x510;
/// The selector and data ports.
pub const PORTS_LEN: u16 = 2;

/// Item keys, from QEMU's `fw_cfg_keys.h`.
pub mod key {
    pub const SIGNATURE: u16 = 0x00;
    pub const ID: u16 = 0x01;
    pub const RAM_SIZE: u16 = 0x03;
    pub const NOGRAPHIC: u16 = 0x04;
    pub const NB_CPUS: u16 = 0x05;
    pub const MAX_CPUS: u16 = 0x0f;
    pub const CMDLINE_SIZE: u16 = 0x14;
    pub const CMDLINE_DATA: u16 = 0x15;
    pub const FILE_DIR: u16 = 0x19;
}

/// What the machine tells the guest.
pub struct FwCfgInfo {
    pub ram_size: u64,
    pub cpus: u16,
    /// The kernel command line (sent NUL-terminated, as QEMU does).
    pub cmdline: String,
}

pub struct FwCfg {
    items: BTreeMap<u16, Vec<u8>>,
    selected: u16,
    offset: usize,
}

impl FwCfg {
    pub fn new(info: &FwCfgInfo) -> Self {
        let mut items = BTreeMap::new();
        items.insert(key::SIGNATURE, b"QEMU".to_vec());
        // Bit 0: the traditional I/O interface; no DMA (bit 1).
        items.insert(key::ID, 1u32.to_le_bytes().to_vec());
        items.insert(key::RAM_SIZE, info.ram_size.to_le_bytes().to_vec());
        items.insert(key::NOGRAPHIC, 1u16.to_le_bytes().to_vec());
        items.insert(key::NB_CPUS, info.cpus.to_le_bytes().to_vec());
        items.insert(key::MAX_CPUS, info.cpus.to_le_bytes().to_vec());
        let mut cmdline = info.cmdline.as_bytes().to_vec();
        if !cmdline.is_empty() {
            cmdline.push(0);
        }
        items.insert(
            key::CMDLINE_SIZE,
            (cmdline.len() as u32).to_le_bytes().to_vec(),
        );
        items.insert(key::CMDLINE_DATA, cmdline);
        // No named files yet: a directory with a (big-endian) count of zero.
        items.insert(key::FILE_DIR, 0u32.to_be_bytes().to_vec());
        FwCfg {
            items,
            selected: 0,
            offset: 0,
        }
    }

    fn next_byte(&mut self) -> u8 {
        // The top bits of the selector are flags (write, architecture-specific); the item is
        // the low 14 bits.
        let b = self
            .items
            .get(&(self.selected & 0x3fff))
            .and_then(|item| item.get(self.offset).copied())
            .unwrap_or(0);
        self.offset = self.offset.saturating_add(1);
        b
    }
}

impl BusDevice for FwCfg {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        if offset == 1 {
            for b in data.iter_mut() {
                *b = self.next_byte();
            }
        } else {
            data.fill(0);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        if offset == 0 {
            self.selected = le_value(data) as u16;
            self.offset = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_item(d: &mut FwCfg, key: u16, len: usize) -> Vec<u8> {
        d.write(0x510, 0, &key.to_le_bytes());
        (0..len)
            .map(|_| {
                let mut b = [0u8];
                d.read(0x510, 1, &mut b);
                b[0]
            })
            .collect()
    }

    #[test]
    fn items_read_out_from_the_start_after_each_select() {
        let mut d = FwCfg::new(&FwCfgInfo {
            ram_size: 64 << 20,
            cpus: 2,
            cmdline: "console=ttyS0".into(),
        });
        assert_eq!(read_item(&mut d, key::SIGNATURE, 4), b"QEMU");
        assert_eq!(read_item(&mut d, key::NB_CPUS, 2), [2, 0]);
        assert_eq!(
            read_item(&mut d, key::RAM_SIZE, 8),
            (64u64 << 20).to_le_bytes()
        );
        assert_eq!(read_item(&mut d, key::CMDLINE_SIZE, 4), 14u32.to_le_bytes());
        assert_eq!(
            read_item(&mut d, key::CMDLINE_DATA, 15),
            b"console=ttyS0\0\0"
        );
        assert_eq!(
            read_item(&mut d, 0x1234, 3),
            [0, 0, 0],
            "unknown items read as zero"
        );
    }
}
