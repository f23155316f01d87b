//! The port-I/O and MMIO buses as the CPU backends see them.

use std::collections::HashSet;

use devices::Bus;
use emu_core::Platform;
use parking_lot::Mutex;

/// At most this many distinct unclaimed addresses are reported; a guest scanning the address
/// space must not flood the log or grow memory.
const MAX_REPORTED: usize = 256;

#[derive(Default)]
pub struct IoBuses {
    pub pio: Bus,
    pub mmio: Bus,
    reported: Mutex<HashSet<(bool, u64)>>,
}

impl IoBuses {
    pub fn new(pio: Bus, mmio: Bus) -> Self {
        IoBuses {
            pio,
            mmio,
            reported: Mutex::default(),
        }
    }

    fn unclaimed(&self, is_pio: bool, addr: u64, what: &str, len: usize) {
        let mut seen = self.reported.lock();
        if seen.len() < MAX_REPORTED && seen.insert((is_pio, addr)) {
            let space = if is_pio { "port" } else { "MMIO address" };
            log::warn!("guest {what} of {len} byte(s) at unclaimed {space} {addr:#x} (further accesses there are not reported)");
        }
    }
}

impl Platform for IoBuses {
    fn pio_read(&self, port: u16, data: &mut [u8]) {
        if !self.pio.read(u64::from(port), data) {
            data.fill(0xff);
            self.unclaimed(true, u64::from(port), "read", data.len());
        }
    }

    fn pio_write(&self, port: u16, data: &[u8]) {
        if !self.pio.write(u64::from(port), data) {
            self.unclaimed(true, u64::from(port), "write", data.len());
        }
    }

    fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        if !self.mmio.read(addr, data) {
            data.fill(0xff);
            self.unclaimed(false, addr, "read", data.len());
        }
    }

    fn mmio_write(&self, addr: u64, data: &[u8]) {
        if !self.mmio.write(addr, data) {
            self.unclaimed(false, addr, "write", data.len());
        }
    }
}
