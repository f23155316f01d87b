//! Requests from devices to the machine itself.

/// What a device can ask of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemEvent {
    /// Reset the platform (i8042 pulse, port 0xCF9, triple fault …).
    Reset,
    /// Power off (ACPI S5).
    Poweroff,
    /// The isa-debug-exit device was written: the process should exit with `(value << 1) | 1`.
    DebugExit(u32),
}

/// Implemented by the machine; devices call it from the vCPU thread during an I/O access.
pub trait SystemControl: Send + Sync {
    fn request(&self, event: SystemEvent);
}
