//! The I/O APIC: 24 input pins, each with a redirection entry (vector, delivery mode,
//! destination, trigger mode, mask), at the architectural address 0xFEC00000 (IOREGSEL at
//! +0x00, IOWIN at +0x10, and the EOI register of version 0x20 parts at +0x40).
//!
//! Edge-triggered pins deliver on a rising edge; level-triggered ones while the line is
//! high and the remote IRR is clear, which the local APIC's EOI (or a write to the EOI
//! register) clears — a line still high then delivers again. Deliveries go out as
//! [`Delivery`] values for the machine to route to local APICs. As QEMU models them, lines
//! are active high whatever the polarity bit says.

pub const DEFAULT_BASE: u64 = 0xfec0_0000;
pub const MMIO_LEN: u64 = 0x100;
pub const PINS: usize = 24;
/// Version 0x20 (with the EOI register, as QEMU's default), 24 entries.
const VERSION: u32 = 0x20 | ((PINS as u32 - 1) << 16);

const MASKED: u64 = 1 << 16;
const LEVEL: u64 = 1 << 15;
const REMOTE_IRR: u64 = 1 << 14;
const DELIVERY_STATUS: u64 = 1 << 12;
/// Bits a guest may write: vector, delivery mode, destination mode, polarity, trigger,
/// mask and the destination byte.
const WRITABLE: u64 = 0xff | (7 << 8) | (1 << 11) | (1 << 13) | LEVEL | MASKED | (0xff << 56);

/// One interrupt message from a pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub vector: u8,
    /// Delivery mode: 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT.
    pub mode: u8,
    pub logical: bool,
    pub dest: u8,
    pub level: bool,
}

pub struct IoApic {
    id: u32,
    select: u32,
    table: [u64; PINS],
    /// The lines' levels as the devices drive them.
    lines: u32,
}

impl Default for IoApic {
    fn default() -> Self {
        Self::new(0)
    }
}

impl IoApic {
    /// An IOAPIC with APIC ID `id`, every pin masked.
    pub fn new(id: u32) -> Self {
        IoApic {
            id: id & 0xf,
            select: 0,
            table: [MASKED; PINS],
            lines: 0,
        }
    }

    fn delivery(entry: u64) -> Delivery {
        Delivery {
            vector: entry as u8,
            mode: ((entry >> 8) & 7) as u8,
            logical: entry & (1 << 11) != 0,
            dest: (entry >> 56) as u8,
            level: entry & LEVEL != 0,
        }
    }

    /// What pin `pin` sends now, if anything; sets the remote IRR of a level entry.
    fn service(&mut self, pin: usize) -> Option<Delivery> {
        let e = self.table[pin];
        if e & MASKED != 0 || self.lines & (1 << pin) == 0 {
            return None;
        }
        if e & LEVEL != 0 {
            if e & REMOTE_IRR != 0 {
                return None;
            }
            self.table[pin] |= REMOTE_IRR;
        }
        Some(Self::delivery(e))
    }

    /// A device drives `pin` to `high`; returns the message to deliver, if any.
    pub fn set_irq(&mut self, pin: usize, high: bool) -> Option<Delivery> {
        if pin >= PINS {
            return None;
        }
        let was = self.lines & (1 << pin) != 0;
        if high {
            self.lines |= 1 << pin;
        } else {
            self.lines &= !(1 << pin);
        }
        let level = self.table[pin] & LEVEL != 0;
        if high && (level || !was) {
            self.service(pin)
        } else {
            None
        }
    }

    /// A level-triggered `vector` was EOI'd by a local APIC (or through the EOI register):
    /// clears the matching remote IRRs; lines still high deliver again.
    pub fn eoi(&mut self, vector: u8) -> Vec<Delivery> {
        let mut out = Vec::new();
        for pin in 0..PINS {
            let e = self.table[pin];
            if e & REMOTE_IRR != 0 && e as u8 == vector {
                self.table[pin] &= !REMOTE_IRR;
                out.extend(self.service(pin));
            }
        }
        out
    }

    /// A 32-bit read at `offset` in the MMIO window.
    pub fn read(&self, offset: u64) -> u32 {
        match offset {
            0x00 => self.select,
            0x10 => self.read_register(self.select),
            _ => 0,
        }
    }

    fn read_register(&self, index: u32) -> u32 {
        match index {
            0 => self.id << 24,
            1 => VERSION,
            2 => self.id << 24, // arbitration ID
            0x10..=0x3f => {
                let e = self.table[((index - 0x10) / 2) as usize] & !DELIVERY_STATUS;
                if index.is_multiple_of(2) {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    /// A 32-bit write at `offset`; returns what an unmasked, asserted level pin now sends
    /// (and what the EOI register's write releases).
    pub fn write(&mut self, offset: u64, value: u32) -> Vec<Delivery> {
        match offset {
            0x00 => self.select = value & 0xff,
            0x10 => return self.write_register(self.select, value),
            0x40 => return self.eoi(value as u8),
            _ => {}
        }
        Vec::new()
    }

    fn write_register(&mut self, index: u32, value: u32) -> Vec<Delivery> {
        match index {
            0 => self.id = (value >> 24) & 0xf,
            0x10..=0x3f => {
                let pin = ((index - 0x10) / 2) as usize;
                let old = self.table[pin];
                let new = if index.is_multiple_of(2) {
                    (old & !0xffff_ffff) | u64::from(value)
                } else {
                    (old & 0xffff_ffff) | (u64::from(value) << 32)
                };
                // Read-only bits (remote IRR, delivery status) keep their state; an entry
                // switched to edge forgets its remote IRR.
                let mut e = (new & WRITABLE) | (old & REMOTE_IRR);
                if e & LEVEL == 0 {
                    e &= !REMOTE_IRR;
                }
                self.table[pin] = e;
                // Unmasking a level pin whose line is high delivers now.
                if e & LEVEL != 0 {
                    return self.service(pin).into_iter().collect();
                }
            }
            _ => {}
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(io: &mut IoApic, pin: u32, entry: u64) -> Vec<Delivery> {
        io.write(0, 0x10 + 2 * pin + 1);
        io.write(0x10, (entry >> 32) as u32);
        io.write(0, 0x10 + 2 * pin);
        io.write(0x10, entry as u32)
    }

    #[test]
    fn identity_and_version() {
        let mut io = IoApic::new(4);
        io.write(0, 0);
        assert_eq!(io.read(0x10), 4 << 24);
        io.write(0, 1);
        assert_eq!(io.read(0x10), 0x0017_0020);
        io.write(0, 0x10);
        assert_eq!(io.read(0x10), MASKED as u32, "every pin masked at reset");
    }

    #[test]
    fn edge_pins_deliver_on_rising_edges_only() {
        let mut io = IoApic::new(0);
        program(&mut io, 2, (1u64 << 56) | 0x30);
        let d = io.set_irq(2, true).unwrap();
        assert_eq!(
            (d.vector, d.dest, d.level, d.logical),
            (0x30, 1, false, false)
        );
        assert_eq!(io.set_irq(2, true), None, "no edge");
        io.set_irq(2, false);
        assert!(io.set_irq(2, true).is_some());
    }

    #[test]
    fn masked_pins_send_nothing() {
        let mut io = IoApic::new(0);
        program(&mut io, 4, MASKED | 0x34);
        assert_eq!(io.set_irq(4, true), None);
        assert_eq!(io.set_irq(99, true), None, "pins past 23 do not exist");
    }

    #[test]
    fn level_pins_hold_remote_irr_until_eoi_and_redeliver_while_high() {
        let mut io = IoApic::new(0);
        program(&mut io, 9, LEVEL | 0x39);
        assert!(io.set_irq(9, true).is_some());
        io.write(0, 0x10 + 18);
        assert_ne!(io.read(0x10) as u64 & REMOTE_IRR, 0);
        assert_eq!(io.set_irq(9, true), None, "remote IRR holds it");
        // Still high at the EOI: delivered again.
        assert_eq!(io.eoi(0x39).len(), 1);
        io.set_irq(9, false);
        assert!(io.eoi(0x39).is_empty());
        // The EOI register does the same as a local APIC's broadcast.
        assert!(io.set_irq(9, true).is_some());
        assert_eq!(io.write(0x40, 0x39).len(), 1, "released, still high: again");
    }

    #[test]
    fn unmasking_an_asserted_level_pin_delivers() {
        let mut io = IoApic::new(0);
        program(&mut io, 10, MASKED | LEVEL | 0x3a);
        assert_eq!(io.set_irq(10, true), None);
        let d = program(&mut io, 10, LEVEL | 0x3a);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].vector, 0x3a);
    }
}
