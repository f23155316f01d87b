//! QEMU's `isa-debug-exit`: a write of V ends the VM with exit status `(V << 1) | 1`.

use std::sync::Arc;

use crate::bus::{le_value, BusDevice};
use crate::system::{SystemControl, SystemEvent};

/// QEMU's defaults: `iobase=0x501,iosize=0x02`.
pub const DEFAULT_IOBASE: u16 = 0x501;
pub const DEFAULT_IOSIZE: u16 = 2;

pub struct DebugExit {
    control: Arc<dyn SystemControl>,
}

impl DebugExit {
    pub fn new(control: Arc<dyn SystemControl>) -> Self {
        DebugExit { control }
    }
}

impl BusDevice for DebugExit {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        // QEMU's device has no readable state: reads float high.
        data.fill(0xff);
    }

    fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
        // As QEMU: the value is the access as written (a 1-, 2- or 4-byte OUT), whatever the
        // offset within the device.
        let value = le_value(data) as u32;
        log::info!("isa-debug-exit: guest wrote {value:#x}");
        self.control.request(SystemEvent::DebugExit(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::Record;

    #[test]
    fn write_width_is_the_value_width() {
        let rec = Arc::new(Record::default());
        let mut d = DebugExit::new(rec.clone());
        d.write(0xf4, 0, &[0x10, 0, 0, 0]);
        d.write(0xf4, 2, &[0x31]);
        assert_eq!(
            *rec.0.lock(),
            vec![SystemEvent::DebugExit(0x10), SystemEvent::DebugExit(0x31)]
        );
    }
}
