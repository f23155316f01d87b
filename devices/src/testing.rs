//! Helpers for the device tests.

use parking_lot::Mutex;

use crate::system::{SystemControl, SystemEvent};

/// A machine stand-in that records what devices ask of it.
#[derive(Default)]
pub struct Record(pub Mutex<Vec<SystemEvent>>);

impl SystemControl for Record {
    fn request(&self, event: SystemEvent) {
        self.0.lock().push(event);
    }
}
