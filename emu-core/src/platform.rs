//! How a CPU reaches the rest of the machine.
//!
//! A backend calls these synchronously, from the vCPU thread, for every port I/O and MMIO
//! access. Guest RAM is not behind this trait: backends reach it directly.

/// The port-I/O and MMIO buses as a CPU sees them.
///
/// Implementations must accept any guest-supplied port, address and size without panicking:
/// an access nobody claims reads as all ones and is dropped on write.
pub trait Platform: Send + Sync {
    /// `IN`: fills `data` (1, 2 or 4 bytes) from I/O port `port`.
    fn pio_read(&self, port: u16, data: &mut [u8]);
    /// `OUT`: writes `data` to I/O port `port`.
    fn pio_write(&self, port: u16, data: &[u8]);
    /// A load from a guest-physical address that is not RAM.
    fn mmio_read(&self, addr: u64, data: &mut [u8]);
    /// A store to a guest-physical address that is not RAM.
    fn mmio_write(&self, addr: u64, data: &[u8]);
}

/// A machine with no devices: reads are all ones, writes are dropped (test harnesses and
/// snippets that must not reach any device).
pub struct NoDevices;

impl Platform for NoDevices {
    fn pio_read(&self, _port: u16, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn pio_write(&self, _port: u16, _data: &[u8]) {}
    fn mmio_read(&self, _addr: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn mmio_write(&self, _addr: u64, _data: &[u8]) {}
}
