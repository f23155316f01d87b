//! Port 0x80: the POST-code port. Firmware and kernels write progress codes (and Linux uses it
//! as an I/O delay); it is a sink that remembers the last code for diagnostics.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::bus::BusDevice;

#[derive(Default)]
pub struct PostCode {
    last: Arc<AtomicU8>,
}

impl PostCode {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last code written, readable from other threads.
    pub fn last_code(&self) -> Arc<AtomicU8> {
        self.last.clone()
    }
}

impl BusDevice for PostCode {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        data.fill(self.last.load(Ordering::Relaxed));
    }

    fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
        if let Some(&code) = data.first() {
            log::trace!("POST code {code:#04x}");
            self.last.store(code, Ordering::Relaxed);
        }
    }
}
