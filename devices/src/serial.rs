//! The 16550A UART (COM1–COM4), on vm-superio's model.

use std::io::Write;
use std::sync::Arc;

use vm_superio::serial::NoEvents;
use vm_superio::Trigger;

use crate::bus::BusDevice;
use crate::irq::IrqLine;

/// The legacy COM port bases and their ISA IRQs, as every PC BIOS sets them up.
pub const COM_PORTS: [(u16, u32); 4] = [(0x3f8, 4), (0x2f8, 3), (0x3e8, 4), (0x2e8, 3)];
/// Each UART decodes eight ports.
pub const COM_PORT_LEN: u16 = 8;

/// Adapts an [`IrqLine`] to vm-superio's edge trigger.
pub struct IrqTrigger(pub Arc<dyn IrqLine>);

impl Trigger for IrqTrigger {
    type E = std::convert::Infallible;

    fn trigger(&self) -> Result<(), Self::E> {
        self.0.pulse();
        Ok(())
    }
}

/// A UART whose transmitted bytes go to `out` (the terminal, a file, a test buffer).
pub struct Serial {
    uart: vm_superio::Serial<IrqTrigger, NoEvents, Box<dyn Write + Send>>,
    write_failed: bool,
}

impl Serial {
    pub fn new(irq: Arc<dyn IrqLine>, out: Box<dyn Write + Send>) -> Self {
        Serial {
            uart: vm_superio::Serial::new(IrqTrigger(irq), out),
            write_failed: false,
        }
    }

    /// Queues received bytes for the guest; returns how many fitted in the receive FIFO (the
    /// caller retries the rest once the guest has drained it).
    pub fn receive(&mut self, bytes: &[u8]) -> usize {
        let room = self.uart.fifo_capacity();
        let n = room.min(bytes.len());
        if n == 0 {
            return 0;
        }
        self.uart.enqueue_raw_bytes(&bytes[..n]).unwrap_or(0)
    }
}

impl BusDevice for Serial {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        // Registers are byte-wide; a wider access reads the first register and floats the rest.
        data.fill(0xff);
        if let (Some(first), Ok(off)) = (data.first_mut(), u8::try_from(offset)) {
            *first = self.uart.read(off);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        let (Some(&value), Ok(off)) = (data.first(), u8::try_from(offset)) else {
            return;
        };
        if let Err(e) = self.uart.write(off, value) {
            // A closed pipe or full disk must not stop the guest; say it once.
            if !self.write_failed {
                log::warn!("serial output failed, further output is dropped: {e:?}");
                self.write_failed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl IrqLine for Count {
        fn set_level(&self, high: bool) {
            if high {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn transmit_reaches_the_output_and_receive_the_guest() {
        let out = Buf::default();
        let irq = Arc::new(Count::default());
        let mut s = Serial::new(irq.clone(), Box::new(out.clone()));
        s.write(0x3f8, 0, b"h");
        s.write(0x3f8, 0, b"i");
        assert_eq!(&*out.0.lock(), b"hi");
        // Enable the receive interrupt, then receive.
        s.write(0x3f8, 1, &[1]);
        assert_eq!(s.receive(b"xy"), 2);
        assert!(irq.0.load(Ordering::Relaxed) >= 1);
        let mut lsr = [0u8];
        s.read(0x3f8, 5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "data ready");
        let mut b = [0u8];
        s.read(0x3f8, 0, &mut b);
        assert_eq!(b[0], b'x');
    }

    #[test]
    fn a_full_fifo_accepts_only_what_fits() {
        let mut s = Serial::new(Arc::new(crate::irq::NoIrq), Box::new(std::io::sink()));
        let big = vec![b'a'; 1000];
        let n = s.receive(&big);
        assert!(n > 0 && n < 1000);
        assert_eq!(s.receive(&big), 0);
    }
}
