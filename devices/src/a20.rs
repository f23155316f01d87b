//! The A20 gate: whether physical address bit 20 passes through. A PC starts with it closed
//! (8086 wrap-around at 1 MiB); firmware and boot loaders open it through the i8042's output
//! port or the "fast A20" bit of port 0x92.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::bus::BusDevice;
use crate::system::{SystemControl, SystemEvent};

/// The gate's state, shared by the devices that switch it and the CPU that applies it.
#[derive(Clone, Debug)]
pub struct A20Gate(Arc<AtomicBool>);

impl A20Gate {
    pub fn new(enabled: bool) -> Self {
        A20Gate(Arc::new(AtomicBool::new(enabled)))
    }

    /// The flag itself, for a CPU that applies the gate (it knows no devices).
    pub fn shared(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }

    pub fn enabled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, enabled: bool) {
        if self.0.swap(enabled, Ordering::Relaxed) != enabled {
            log::debug!("A20 gate {}", if enabled { "opened" } else { "closed" });
        }
    }

    /// The mask to apply to physical addresses.
    pub fn mask(&self) -> u64 {
        if self.enabled() {
            u64::MAX
        } else {
            !(1 << 20)
        }
    }
}

/// Port 0x92, system control port A: bit 1 is the A20 gate, bit 0 a fast reset.
pub struct Port92 {
    gate: A20Gate,
    control: Arc<dyn SystemControl>,
}

pub const PORT92: u16 = 0x92;

impl Port92 {
    pub fn new(gate: A20Gate, control: Arc<dyn SystemControl>) -> Self {
        Port92 { gate, control }
    }
}

impl BusDevice for Port92 {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = u8::from(self.gate.enabled()) << 1;
        }
    }

    fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        self.gate.set(v & 2 != 0);
        if v & 1 != 0 {
            log::info!("port 0x92: guest requested a fast reset");
            self.control.request(SystemEvent::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Record;

    #[test]
    fn port92_switches_the_gate_and_resets() {
        let gate = A20Gate::new(true);
        let rec = Arc::new(Record::default());
        let mut p = Port92::new(gate.clone(), rec.clone());
        p.write(0x92, 0, &[0]);
        assert!(!gate.enabled());
        assert_eq!(gate.mask(), !(1 << 20));
        let mut b = [0xff];
        p.read(0x92, 0, &mut b);
        assert_eq!(b[0], 0);
        p.write(0x92, 0, &[2]);
        assert!(gate.enabled());
        assert!(rec.0.lock().is_empty());
        p.write(0x92, 0, &[3]);
        assert_eq!(*rec.0.lock(), vec![SystemEvent::Reset]);
    }
}
