//! PC device models behind one bus-device trait.
//!
//! Devices see only [`BusDevice`] accesses, raise interrupts through [`IrqLine`] and ask the
//! machine for resets and power-off through [`SystemControl`]; they never learn which CPU
//! backend drives them.

pub mod a20;
pub mod acpi_pm;
pub mod bus;
pub mod clock;
pub mod cmos;
pub mod debug_exit;
pub mod debugcon;
pub mod fw_cfg;
pub mod hpet;
pub mod i8042;
pub mod ioapic;
pub mod irq;
pub mod lapic;
pub mod pc_testdev;
pub mod pci;
pub mod pci_bars;
pub mod pci_testdev;
pub mod pic;
pub mod pit;
pub mod post;
pub mod ps2;
pub mod serial;
pub mod system;

pub use bus::{Bus, BusDevice, BusError};

#[cfg(test)]
pub(crate) mod testing;
pub use irq::IrqLine;
pub use system::{SystemControl, SystemEvent};
