//! QEMU's `isa-debugcon` (Bochs' "port E9" console): each byte written to the port goes to
//! the output; a read returns the readback value (0xe9), which is how guests detect it.

use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::bus::BusDevice;

/// QEMU's defaults: `iobase=0xe9`, `readback=0xe9`.
pub const DEFAULT_IOBASE: u16 = 0xe9;
pub const READBACK: u8 = 0xe9;

pub struct DebugCon {
    out: Arc<Mutex<dyn Write + Send>>,
}

impl DebugCon {
    pub fn new(out: Arc<Mutex<dyn Write + Send>>) -> Self {
        DebugCon { out }
    }
}

impl BusDevice for DebugCon {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        // The device decodes one port: wider reads see the bus float above it.
        data.fill(0xff);
        if let Some(b) = data.first_mut() {
            *b = READBACK;
        }
    }

    fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
        // As QEMU: the low byte of the access is the character.
        let Some(&ch) = data.first() else { return };
        let mut out = self.out.lock();
        // A console that cannot be written (a full disk, a closed pipe) must not stop the
        // guest; the error is reported once by the writer's owner, not per byte.
        let _ = out.write_all(&[ch]).and_then(|_| out.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_go_out_and_reads_give_the_readback_value() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let mut d = DebugCon::new(buf.clone());
        d.write(0xe9, 0, b"h");
        d.write(0xe9, 0, &[b'i', 0x12]);
        assert_eq!(*buf.lock(), b"hi");
        let mut r = [0u8; 2];
        d.read(0xe9, 0, &mut r);
        assert_eq!(r, [0xe9, 0xff]);
    }
}
