//! An address space of devices: the port-I/O bus and the MMIO bus are both a [`Bus`].

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// A read of byte-wide ports as the ISA bus does it: a wider access is one byte access
/// per consecutive port (the 8259's and 8254's registers are bytes).
pub fn bytewise_read(port: u16, data: &mut [u8], mut read: impl FnMut(u16) -> u8) {
    for (k, b) in data.iter_mut().enumerate() {
        *b = read(port.wrapping_add(k as u16));
    }
}

/// The write side of [`bytewise_read`].
pub fn bytewise_write(port: u16, data: &[u8], mut write: impl FnMut(u16, u8)) {
    for (k, b) in data.iter().enumerate() {
        write(port.wrapping_add(k as u16), *b);
    }
}

/// A device that claims a range of a bus.
///
/// `base` is the start of the range the access hit and `offset` the distance into it, so one
/// device type can sit at several bases (COM1–COM4). `data.len()` is 1, 2, 4 or 8.
pub trait BusDevice: Send {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]);
    fn write(&mut self, base: u64, offset: u64, data: &[u8]);
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("range {base:#x}+{len:#x} is empty or wraps around")]
    BadRange { base: u64, len: u64 },
    #[error("range {base:#x}+{len:#x} overlaps {other_base:#x}+{other_len:#x}")]
    Overlap {
        base: u64,
        len: u64,
        other_base: u64,
        other_len: u64,
    },
}

type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Ordered, non-overlapping ranges of devices.
#[derive(Default, Clone)]
pub struct Bus {
    ranges: BTreeMap<u64, (u64, SharedDevice)>,
}

impl Bus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Claims `[base, base + len)` for `device`; refuses overlaps with an existing range.
    pub fn insert(&mut self, device: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        if len == 0 || base.checked_add(len - 1).is_none() {
            return Err(BusError::BadRange { base, len });
        }
        let last = base + (len - 1);
        // The range starting at or below `last` with the highest start is the only one that
        // can overlap from below; ranges starting inside ours overlap too.
        if let Some((&other_base, &(other_len, _))) = self.ranges.range(..=last).next_back() {
            if other_base + (other_len - 1) >= base {
                return Err(BusError::Overlap {
                    base,
                    len,
                    other_base,
                    other_len,
                });
            }
        }
        self.ranges.insert(base, (len, device));
        Ok(())
    }

    /// The device covering `addr`, with the base of its range.
    pub fn resolve(&self, addr: u64) -> Option<(u64, &SharedDevice)> {
        let (&base, (len, dev)) = self.ranges.range(..=addr).next_back()?;
        (addr - base < *len).then_some((base, dev))
    }

    /// Dispatches a read; returns false (and leaves `data` untouched) if nobody claims `addr`.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr) {
            Some((base, dev)) => {
                dev.lock().read(base, addr - base, data);
                true
            }
            None => false,
        }
    }

    /// Dispatches a write; returns false if nobody claims `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.resolve(addr) {
            Some((base, dev)) => {
                dev.lock().write(base, addr - base, data);
                true
            }
            None => false,
        }
    }
}

/// Reads a little-endian value of `data.len()` bytes (at most 8).
pub fn le_value(data: &[u8]) -> u64 {
    data.iter()
        .take(8)
        .enumerate()
        .fold(0, |v, (i, &b)| v | (u64::from(b) << (8 * i)))
}

/// Stores the low `data.len()` bytes of `value`, little-endian.
pub fn put_le_value(data: &mut [u8], value: u64) {
    for (i, b) in data.iter_mut().enumerate().take(8) {
        *b = (value >> (8 * i)) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(u8);
    impl BusDevice for Echo {
        fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
            data.fill(self.0.wrapping_add(offset as u8));
        }
        fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
            self.0 = data[0];
        }
    }

    fn dev(v: u8) -> SharedDevice {
        Arc::new(Mutex::new(Echo(v)))
    }

    #[test]
    fn overlaps_are_refused_and_neighbours_accepted() {
        let mut bus = Bus::new();
        bus.insert(dev(0), 0x100, 0x10).unwrap();
        assert!(matches!(
            bus.insert(dev(0), 0x10f, 1),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(dev(0), 0xf0, 0x11),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(dev(0), 0x0, 0x1000),
            Err(BusError::Overlap { .. })
        ));
        bus.insert(dev(0), 0xf0, 0x10).unwrap();
        bus.insert(dev(0), 0x110, 0x10).unwrap();
        assert_eq!(
            bus.insert(dev(0), 5, 0),
            Err(BusError::BadRange { base: 5, len: 0 })
        );
        assert!(bus.insert(dev(0), u64::MAX, 2).is_err());
        bus.insert(dev(0), u64::MAX, 1).unwrap();
    }

    #[test]
    fn accesses_reach_the_device_with_its_offset() {
        let mut bus = Bus::new();
        bus.insert(dev(7), 0x3f8, 8).unwrap();
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fa, &mut b));
        assert_eq!(b[0], 9);
        assert!(bus.write(0x3f8, &[40]));
        assert!(bus.read(0x3f8, &mut b));
        assert_eq!(b[0], 40);
        assert!(!bus.read(0x400, &mut b));
        assert!(!bus.write(0x3f7, &[1]));
    }

    #[test]
    fn le_helpers_round_trip() {
        let mut d = [0u8; 4];
        put_le_value(&mut d, 0x1234_5678);
        assert_eq!(d, [0x78, 0x56, 0x34, 0x12]);
        assert_eq!(le_value(&d), 0x1234_5678);
    }
}
