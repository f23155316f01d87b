//! The i8042 keyboard controller, as far as the system lines go: the reset line (command
//! 0xFE on port 0x64) and the output port (command 0xD1, then a data byte: bit 0 low resets,
//! bit 1 is the A20 gate; 0xDD/0xDF close/open A20; 0xD0 reads the output port).
//!
//! It sits at two single ports, 0x60 and 0x64, because port 0x61 between them belongs to the
//! system-control port B.

use std::sync::Arc;

use vm_superio::{I8042Device, Trigger};

use crate::bus::BusDevice;
use crate::system::{SystemControl, SystemEvent};

pub const DATA_PORT: u16 = 0x60;
pub const COMMAND_PORT: u16 = 0x64;

struct ResetTrigger(Arc<dyn SystemControl>);

impl Trigger for ResetTrigger {
    type E = std::convert::Infallible;

    fn trigger(&self) -> Result<(), Self::E> {
        log::info!("i8042: guest pulsed the reset line");
        self.0.request(SystemEvent::Reset);
        Ok(())
    }
}

pub struct I8042 {
    dev: I8042Device<ResetTrigger>,
    control: Arc<dyn SystemControl>,
    a20: Option<crate::a20::A20Gate>,
    /// The last command awaits its data byte on port 0x60 (0xD1: write output port).
    pending_command: Option<u8>,
    /// A byte for the next read of port 0x60 (the output port after 0xD0).
    output: Option<u8>,
}

const CMD_READ_OUTPUT_PORT: u8 = 0xd0;
const CMD_WRITE_OUTPUT_PORT: u8 = 0xd1;
const CMD_A20_OFF: u8 = 0xdd;
const CMD_A20_ON: u8 = 0xdf;
/// Status: output buffer full.
const STATUS_OBF: u8 = 0x01;

impl I8042 {
    pub fn new(control: Arc<dyn SystemControl>) -> Self {
        I8042 {
            dev: I8042Device::new(ResetTrigger(control.clone())),
            control,
            a20: None,
            pending_command: None,
            output: None,
        }
    }

    /// Wires the output port's A20 line to `gate`.
    pub fn with_a20(mut self, gate: crate::a20::A20Gate) -> Self {
        self.a20 = Some(gate);
        self
    }

    fn output_port(&self) -> u8 {
        // Bit 0: not in reset; bit 1: A20.
        1 | (u8::from(self.a20.as_ref().is_none_or(|g| g.enabled())) << 1)
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        let port = base + offset;
        let value = if port == u64::from(DATA_PORT) {
            self.output.take().unwrap_or_else(|| self.dev.read(0))
        } else {
            let status = self.dev.read(4);
            if self.output.is_some() {
                status | STATUS_OBF
            } else {
                status
            }
        };
        data.fill(value);
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let port = base + offset;
        let Some(&v) = data.first() else { return };
        if port == u64::from(DATA_PORT) {
            if self.pending_command.take() == Some(CMD_WRITE_OUTPUT_PORT) {
                if let Some(g) = &self.a20 {
                    g.set(v & 2 != 0);
                }
                if v & 1 == 0 {
                    log::info!("i8042: guest pulled the reset line through the output port");
                    self.control.request(SystemEvent::Reset);
                }
                return;
            }
            let _ = self.dev.write(0, v);
            return;
        }
        self.pending_command = None;
        match v {
            CMD_WRITE_OUTPUT_PORT => self.pending_command = Some(v),
            CMD_READ_OUTPUT_PORT => self.output = Some(self.output_port()),
            CMD_A20_OFF | CMD_A20_ON => {
                if let Some(g) = &self.a20 {
                    g.set(v == CMD_A20_ON);
                }
            }
            _ => {
                let _ = self.dev.write(4, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::Record;

    #[test]
    fn output_port_switches_a20_and_reads_back() {
        let rec = Arc::new(Record::default());
        let gate = crate::a20::A20Gate::new(true);
        let mut k = I8042::new(rec.clone()).with_a20(gate.clone());
        k.write(0x64, 0, &[0xd1]);
        k.write(0x60, 0, &[0x01]);
        assert!(!gate.enabled());
        k.write(0x64, 0, &[0xd0]);
        let mut b = [0];
        k.read(0x64, 0, &mut b);
        assert_eq!(b[0] & 1, 1, "output buffer full");
        k.read(0x60, 0, &mut b);
        assert_eq!(b[0], 0x01);
        k.write(0x64, 0, &[0xdf]);
        assert!(gate.enabled());
        assert!(rec.0.lock().is_empty());
        k.write(0x64, 0, &[0xd1]);
        k.write(0x60, 0, &[0x02]);
        assert_eq!(*rec.0.lock(), vec![SystemEvent::Reset]);
    }

    #[test]
    fn command_fe_resets_and_other_writes_do_not() {
        let rec = Arc::new(Record::default());
        let mut k = I8042::new(rec.clone());
        k.write(0x64, 0, &[0xaa]);
        k.write(0x60, 0, &[0xfe]);
        assert!(rec.0.lock().is_empty());
        k.write(0x64, 0, &[0xfe]);
        assert_eq!(*rec.0.lock(), vec![SystemEvent::Reset]);
    }
}
