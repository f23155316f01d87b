//! The i8042 keyboard controller, as far as the reset line (command 0xFE on port 0x64).
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
}

impl I8042 {
    pub fn new(control: Arc<dyn SystemControl>) -> Self {
        I8042 {
            dev: I8042Device::new(ResetTrigger(control)),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        let off = (base + offset).wrapping_sub(u64::from(DATA_PORT)) as u8;
        data.fill(self.dev.read(off));
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let off = (base + offset).wrapping_sub(u64::from(DATA_PORT)) as u8;
        if let Some(&v) = data.first() {
            let _ = self.dev.write(off, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::Record;

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
