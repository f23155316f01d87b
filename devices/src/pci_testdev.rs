//! QEMU's `pci-testdev` (hw/misc/pci-testdev.c, PCI 1b36:0005), which kvm-unit-tests use to
//! check port-I/O and MMIO write paths.
//!
//! BAR0 is 4 KiB of memory, BAR1 256 I/O ports. Both hold the same registers: writing N to
//! byte 0 selects test N of that BAR's kind (0 "no-eventfd", 1 "wildcard-eventfd",
//! 2 "datamatch-eventfd"; anything else deselects); the selected test's header then reads at
//! offset 0 (`test`, `width`, `offset`, `data`, `count`, `name`), and every one-byte write at
//! its `offset` (matching `data`, except for the wildcard test) adds one to `count`. Accesses
//! are split into bytes, as QEMU implements them. QEMU under KVM hands the eventfd tests'
//! writes to ioeventfds, which leaves `count` at 0; suites accept 0 or the number written,
//! and here (no ioeventfds) the count is always the number written.

use crate::pci::{PciFunction, StaticConfig};
use crate::pci_bars::{self, BarShape, BarSpace, MappedBar, PciBarDevice};

pub const VENDOR: u16 = 0x1b36;
pub const DEVICE: u16 = 0x0005;

const BARS: [BarShape; 2] = [
    BarShape {
        space: BarSpace::Memory,
        size: 2 * MEM_SIZE,
    },
    BarShape {
        space: BarSpace::Io,
        size: 2 * IO_SIZE,
    },
];
const MEM_SIZE: u32 = 2048;
const IO_SIZE: u32 = 128;
const TESTS: [&str; 3] = ["no-eventfd", "wildcard-eventfd", "datamatch-eventfd"];
const DATA_MATCH: u8 = 0xfa;
const NO_MATCH: u8 = 0xce;
/// Header layout: test, width, pad[2], offset (u32), data, pad[3], count (u32), name.
const COUNT_OFFSET: usize = 12;
const HEADER_LEN: usize = 16;

/// One test's header, as the guest reads it.
struct IoTest {
    header: Vec<u8>,
    offset: u64,
    data: u8,
    match_data: bool,
}

impl IoTest {
    /// Test `t` of 0..6: the first three in memory (BAR0), the others in I/O (BAR1).
    fn new(t: usize) -> Self {
        let (kind, size) = if t < TESTS.len() {
            ("mmio", MEM_SIZE)
        } else {
            ("portio", IO_SIZE)
        };
        let test = TESTS[t % TESTS.len()];
        let match_data = test != "wildcard-eventfd";
        let offset = size + t as u32;
        let data = if match_data { DATA_MATCH } else { NO_MATCH };
        let mut header = vec![0u8; HEADER_LEN];
        header[0] = t as u8;
        header[1] = 1; // width
        header[4..8].copy_from_slice(&offset.to_le_bytes());
        header[8] = data;
        header.extend_from_slice(format!("{kind}-{test}").as_bytes());
        header.push(0);
        IoTest {
            header,
            offset: u64::from(offset),
            data,
            match_data,
        }
    }

    fn count(&self) -> u32 {
        u32::from_le_bytes(
            self.header[COUNT_OFFSET..COUNT_OFFSET + 4]
                .try_into()
                .expect("4 bytes"),
        )
    }

    fn set_count(&mut self, n: u32) {
        self.header[COUNT_OFFSET..COUNT_OFFSET + 4].copy_from_slice(&n.to_le_bytes());
    }
}

pub struct PciTestDev {
    config: StaticConfig,
    tests: Vec<IoTest>,
    current: Option<usize>,
}

impl Default for PciTestDev {
    fn default() -> Self {
        Self::new()
    }
}

impl PciTestDev {
    pub fn new() -> Self {
        // Class 0x00ff (QEMU's PCI_CLASS_OTHERS in the 16-bit class field), revision 0, no
        // interrupt pin; QEMU's default subsystem IDs.
        let mut config = StaticConfig::new(VENDOR, DEVICE, 0x00_ff_00, 0, 0)
            .with_bytes(0x2c, &[0xf4, 0x1a, 0x00, 0x11]);
        for (i, bar) in BARS.iter().enumerate() {
            let offset = usize::from(pci_bars::BAR0) + 4 * i;
            config = config
                .with_bytes(offset, &bar.fixed_bits().to_le_bytes())
                .with_write_mask(offset, &bar.write_mask().to_le_bytes());
        }
        PciTestDev {
            config,
            tests: (0..2 * TESTS.len()).map(IoTest::new).collect(),
            current: None,
        }
    }

    /// Places the BARs and enables decoding, as firmware does at boot.
    pub fn assign(&mut self, mem_base: u32, io_base: u16) {
        self.config
            .config_write(pci_bars::BAR0, &mem_base.to_le_bytes());
        self.config
            .config_write(pci_bars::BAR0 + 4, &u32::from(io_base).to_le_bytes());
        let command = pci_bars::COMMAND_IO | pci_bars::COMMAND_MEMORY;
        self.config
            .config_write(pci_bars::COMMAND, &command.to_le_bytes());
    }

    fn write_byte(&mut self, io: bool, addr: u64, value: u8) {
        if addr == 0 {
            self.current = usize::from(value)
                .lt(&TESTS.len())
                .then(|| usize::from(io) * TESTS.len() + usize::from(value));
            if let Some(t) = self.current {
                self.tests[t].set_count(0);
            }
            return;
        }
        let Some(t) = self.current else { return };
        let test = &mut self.tests[t];
        if addr == test.offset && (!test.match_data || value == test.data) {
            let n = test.count().wrapping_add(1);
            test.set_count(n);
        }
    }

    fn read_byte(&self, addr: u64) -> u8 {
        let Some(t) = self.current else { return 0 };
        let header = &self.tests[t].header;
        // As QEMU: the byte before the end (the name's NUL) and anything beyond read 0.
        if addr + 1 >= header.len() as u64 {
            return 0;
        }
        header[addr as usize]
    }
}

impl PciFunction for PciTestDev {
    fn config_read(&mut self, offset: u8, data: &mut [u8]) {
        self.config.config_read(offset, data);
    }

    fn config_write(&mut self, offset: u8, data: &[u8]) {
        self.config.config_write(offset, data);
    }
}

impl PciBarDevice for PciTestDev {
    fn mapped_bars(&self) -> Vec<MappedBar> {
        let command = self.config.dword(pci_bars::COMMAND) as u16;
        BARS.iter()
            .enumerate()
            .filter_map(|(i, shape)| {
                let value = self.config.dword(pci_bars::BAR0 + 4 * i as u8);
                pci_bars::decode(i, *shape, value, command)
            })
            .collect()
    }

    fn bar_read(&mut self, _bar: usize, offset: u64, data: &mut [u8]) {
        for (i, d) in data.iter_mut().enumerate() {
            *d = self.read_byte(offset + i as u64);
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        for (i, d) in data.iter().enumerate() {
            self.write_byte(bar == 1, offset + i as u64, *d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(d: &mut PciTestDev, offset: u8) -> u32 {
        let mut b = [0u8; 4];
        d.config_read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn read32(d: &mut PciTestDev, bar: usize, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        d.bar_read(bar, offset, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn identity_and_bar_sizing() {
        let mut d = PciTestDev::new();
        assert_eq!(cfg(&mut d, 0), 0x0005_1b36);
        assert_eq!(cfg(&mut d, 8) >> 8, 0x00_ff_00); // base class 0, subclass 0xff
        assert!(d.mapped_bars().is_empty());
        d.config_write(0x10, &[0xff; 4]);
        d.config_write(0x14, &[0xff; 4]);
        assert_eq!(cfg(&mut d, 0x10), 0xffff_f000);
        assert_eq!(cfg(&mut d, 0x14), 0xffff_ff01);
        d.assign(0xfebf_0000, 0xc000);
        assert_eq!(cfg(&mut d, 0x10), 0xfebf_0000);
        assert_eq!(cfg(&mut d, 0x14), 0xc001);
        let bars = d.mapped_bars();
        assert_eq!(bars.len(), 2);
        assert_eq!((bars[0].base, bars[0].size), (0xfebf_0000, 0x1000));
        assert_eq!((bars[1].base, bars[1].size), (0xc000, 0x100));
    }

    /// kvm-unit-tests' pci_testdev_one: select, check the header, write 16 times, count.
    #[test]
    fn the_kvm_unit_tests_protocol() {
        let mut d = PciTestDev::new();
        for (bar, kind, size) in [(0, "mmio", 2048), (1, "portio", 128)] {
            for t in 0..3u8 {
                d.bar_write(bar, 0, &[t]);
                assert_eq!(read32(&mut d, bar, 12), 0, "count starts at 0");
                let mut width = [0u8];
                d.bar_read(bar, 1, &mut width);
                assert_eq!(width[0], 1);
                let sig = read32(&mut d, bar, 8) as u8;
                let off = read32(&mut d, bar, 4);
                assert_eq!(off, size + u32::from(t) + 3 * bar as u32);
                for _ in 0..16 {
                    d.bar_write(bar, u64::from(off), &[sig]);
                }
                // A wrong value counts only for the wildcard test.
                d.bar_write(bar, u64::from(off), &[sig ^ 1]);
                let want = if t == 1 { 17 } else { 16 };
                assert_eq!(read32(&mut d, bar, 12), want, "{kind} test {t}");
                let mut name = [0u8; 32];
                d.bar_read(bar, 16, &mut name);
                let name = std::str::from_utf8(&name).unwrap().trim_end_matches('\0');
                assert!(name.starts_with(kind), "{name}");
            }
            // Past the last test: deselected, everything reads 0.
            d.bar_write(bar, 0, &[3]);
            assert_eq!(read32(&mut d, bar, 0), 0);
        }
    }

    /// The bridge's window follows the BAR wherever the guest moves it, and stops decoding
    /// when the command register turns the space off.
    #[test]
    fn windows_follow_the_bars() {
        use crate::bus::BusDevice;
        use crate::pci_bars::{PciWindow, SharedBarDevice};
        use parking_lot::Mutex;
        use std::sync::Arc;

        let dev = Arc::new(Mutex::new(PciTestDev::new()));
        dev.lock().assign(0xfebf_0000, 0xc000);
        let shared: SharedBarDevice = dev.clone();
        let mut io = PciWindow::new(BarSpace::Io, vec![shared]);
        let port = |io: &mut PciWindow, p: u64| {
            let mut b = [0u8];
            io.read(0xc000, p - 0xc000, &mut b);
            b[0]
        };
        io.write(0xc000, 0, &[0]);
        assert_eq!(port(&mut io, 0xc001), 1, "the header's width");
        dev.lock().config_write(0x14, &0xd000u32.to_le_bytes());
        assert_eq!(port(&mut io, 0xc001), 0xff, "nothing at the old place");
        assert_eq!(port(&mut io, 0xd001), 1);
        dev.lock().config_write(0x04, &[0, 0]);
        assert_eq!(port(&mut io, 0xd001), 0xff, "decoding off");
    }
}
