//! Interrupt lines from devices to whichever interrupt controller the machine wired up.

/// One interrupt input of the platform's interrupt controller (a GSI).
pub trait IrqLine: Send + Sync {
    /// Drives the line's level (level-triggered sources).
    fn set_level(&self, high: bool);
    /// An edge: raise then lower the line (edge-triggered ISA sources such as the UART).
    fn pulse(&self) {
        self.set_level(true);
        self.set_level(false);
    }
}

/// A line that goes nowhere (a device whose interrupt is not wired).
pub struct NoIrq;

impl IrqLine for NoIrq {
    fn set_level(&self, _high: bool) {}
}
