//! The chip's registers on the machine's buses: the IOAPIC's MMIO window and the 8259's
//! ports (with the FPU error port).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use devices::bus::BusDevice;

use super::{log_once, SoftIrqChip};

/// The FPU error port: a write acknowledges FERR# (IRQ 13) and asserts IGNNE#.
pub const FERR_PORT: u16 = 0xf0;

/// The IOAPIC's registers (0xFEC00000: IOREGSEL, IOWIN, EOI) on the MMIO bus.
pub struct IoApicMmio(pub Arc<SoftIrqChip>);

impl BusDevice for IoApicMmio {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        let v = self.0.ioapic.lock().read(offset & !3);
        let bytes = (v >> ((offset & 3) * 8)).to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(i).copied().unwrap_or(0);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        if data.len() != 4 || offset & 3 != 0 {
            log_once("software CPU: an IOAPIC write that is not an aligned dword; dropped");
            return;
        }
        let value = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let out = self.0.ioapic.lock().write(offset, value);
        self.0.deliver(out);
        self.0.update_all();
    }
}

/// The PIC's ports (0x20–0x21, 0xa0–0xa1, 0x4d0–0x4d1) and port 0xf0, on the I/O bus.
pub struct ChipPorts(pub Arc<SoftIrqChip>);

impl BusDevice for ChipPorts {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        if base + offset == u64::from(FERR_PORT) {
            data.fill(0xff);
            return;
        }
        self.0.with_pic(|p| BusDevice::read(p, base, offset, data));
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        if base + offset == u64::from(FERR_PORT) {
            self.0.ignne.store(true, Ordering::Release);
            self.0.with_pic(|p| p.set_irq(13, false));
            return;
        }
        self.0.with_pic(|p| BusDevice::write(p, base, offset, data));
    }
}
