//! The PC's pair of Intel 8259A programmable interrupt controllers: the master at ports
//! 0x20–0x21 with the slave cascaded on its IRQ 2 at 0xa0–0xa1, and the edge/level control
//! registers (ELCR) at 0x4d0–0x4d1.
//!
//! The model follows the 8259A datasheet as QEMU's hw/intc/i8259.c implements it: ICW1–ICW4,
//! the mask (OCW1), non-specific, specific and rotating EOIs and priority setting (OCW2),
//! register reads, poll mode and special mask mode (OCW3), automatic EOI, special fully
//! nested mode, edge- and level-triggered inputs, and the spurious IRQ 7/15 of an interrupt
//! acknowledge that finds nothing.

use crate::bus::BusDevice;

pub const MASTER_PORT: u16 = 0x20;
pub const SLAVE_PORT: u16 = 0xa0;
pub const ELCR_PORT: u16 = 0x4d0;

/// One 8259A.
#[derive(Clone, Debug, Default)]
struct Chip {
    /// Input levels as last seen (edge detection).
    last_irr: u8,
    irr: u8,
    imr: u8,
    isr: u8,
    /// The input with the highest priority is `priority_add` (rotation).
    priority_add: u8,
    irq_base: u8,
    read_isr: bool,
    poll: bool,
    special_mask: bool,
    /// 0: operational; 1–3: expecting ICW2–ICW4.
    init_state: u8,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested: bool,
    init4: bool,
    single: bool,
    /// Level-triggered inputs (ELCR).
    elcr: u8,
    elcr_mask: u8,
    master: bool,
}

impl Chip {
    fn new(master: bool) -> Self {
        Chip {
            master,
            // IRQ 0, 1, 2 (master) and 8, 13 (slave) are always edge-triggered.
            elcr_mask: if master { 0xf8 } else { 0xde },
            ..Default::default()
        }
    }

    fn reset(&mut self) {
        let (elcr, elcr_mask, master) = (self.elcr, self.elcr_mask, self.master);
        let irr = self.irr & elcr;
        *self = Chip {
            elcr,
            elcr_mask,
            master,
            irr,
            ..Default::default()
        };
    }

    fn set_irq(&mut self, irq: u8, level: bool) {
        let mask = 1 << irq;
        if self.elcr & mask != 0 {
            if level {
                self.irr |= mask;
                self.last_irr |= mask;
            } else {
                self.irr &= !mask;
                self.last_irr &= !mask;
            }
        } else if level {
            if self.last_irr & mask == 0 {
                self.irr |= mask;
            }
            self.last_irr |= mask;
        } else {
            self.last_irr &= !mask;
        }
    }

    /// The priority (0 highest) of the best input in `mask`, 8 if none.
    fn priority(&self, mask: u8) -> u8 {
        if mask == 0 {
            return 8;
        }
        let mut p = 0;
        while mask & (1 << ((p + self.priority_add) & 7)) == 0 {
            p += 1;
        }
        p
    }

    /// The input to signal, if any beats what is in service.
    fn pending(&self) -> Option<u8> {
        let p = self.priority(self.irr & !self.imr);
        if p == 8 {
            return None;
        }
        let mut in_service = self.isr;
        if self.special_mask {
            in_service &= !self.imr;
        }
        if self.special_fully_nested && self.master {
            in_service &= !(1 << 2);
        }
        (p < self.priority(in_service)).then_some((p + self.priority_add) & 7)
    }

    fn acknowledge(&mut self, irq: u8) {
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.priority_add = (irq + 1) & 7;
            }
        } else {
            self.isr |= 1 << irq;
        }
        // An edge-triggered request is consumed; a level one stays while the line is high.
        if self.elcr & (1 << irq) == 0 {
            self.irr &= !(1 << irq);
        }
    }

    fn write(&mut self, addr: u8, val: u8) {
        if addr == 0 {
            if val & 0x10 != 0 {
                // ICW1
                self.reset();
                self.init_state = 1;
                self.init4 = val & 1 != 0;
                self.single = val & 2 != 0;
                if val & 0x08 != 0 {
                    log::debug!("8259: ICW1 level-triggered mode is not supported (use ELCR)");
                }
            } else if val & 0x08 != 0 {
                // OCW3
                if val & 0x04 != 0 {
                    self.poll = true;
                }
                if val & 0x02 != 0 {
                    self.read_isr = val & 1 != 0;
                }
                if val & 0x40 != 0 {
                    self.special_mask = val & 0x20 != 0;
                }
            } else {
                // OCW2
                match val >> 5 {
                    0 | 4 => self.rotate_on_auto_eoi = val >> 7 != 0,
                    cmd @ (1 | 5) => {
                        let p = self.priority(self.isr);
                        if p != 8 {
                            let irq = (p + self.priority_add) & 7;
                            self.isr &= !(1 << irq);
                            if cmd == 5 {
                                self.priority_add = (irq + 1) & 7;
                            }
                        }
                    }
                    3 => self.isr &= !(1 << (val & 7)),
                    6 => self.priority_add = (val + 1) & 7,
                    7 => {
                        let irq = val & 7;
                        self.isr &= !(1 << irq);
                        self.priority_add = (irq + 1) & 7;
                    }
                    _ => {}
                }
            }
        } else {
            match self.init_state {
                0 => self.imr = val,
                1 => {
                    self.irq_base = val & 0xf8;
                    self.init_state = match (self.single, self.init4) {
                        (true, true) => 3,
                        (true, false) => 0,
                        (false, _) => 2,
                    };
                }
                2 => self.init_state = if self.init4 { 3 } else { 0 },
                _ => {
                    self.special_fully_nested = val & 0x10 != 0;
                    self.auto_eoi = val & 0x02 != 0;
                    self.init_state = 0;
                }
            }
        }
    }

    fn read(&mut self, addr: u8) -> u8 {
        if self.poll {
            self.poll = false;
            return match self.pending() {
                Some(irq) => {
                    self.acknowledge(irq);
                    0x80 | irq
                }
                None => 0,
            };
        }
        if addr == 0 {
            if self.read_isr {
                self.isr
            } else {
                self.irr
            }
        } else {
            self.imr
        }
    }
}

/// The cascaded pair, as the rest of the machine sees it: sixteen inputs, an INTR output and
/// the interrupt-acknowledge cycle.
#[derive(Clone, Debug)]
pub struct PicPair {
    master: Chip,
    slave: Chip,
}

impl Default for PicPair {
    fn default() -> Self {
        Self::new()
    }
}

impl PicPair {
    pub fn new() -> Self {
        PicPair {
            master: Chip::new(true),
            slave: Chip::new(false),
        }
    }

    /// Drives input `irq` (0–15) to `level`.
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        match irq {
            0..=7 => self.master.set_irq(irq, level),
            8..=15 => self.slave.set_irq(irq - 8, level),
            _ => return,
        }
        self.cascade();
    }

    /// The slave's output is the master's IRQ 2.
    fn cascade(&mut self) {
        let slave_out = self.slave.pending().is_some();
        self.master.set_irq(2, slave_out);
    }

    /// The INTR line to the CPU.
    pub fn intr(&self) -> bool {
        self.master.pending().is_some()
    }

    /// The interrupt-acknowledge cycle: the vector the CPU takes. With nothing to signal it
    /// is the spurious IRQ 7 (or 15, when the slave withdrew its request).
    pub fn acknowledge(&mut self) -> u8 {
        let vector = match self.master.pending() {
            Some(2) => {
                let v = match self.slave.pending() {
                    Some(irq) => {
                        self.slave.acknowledge(irq);
                        self.slave.irq_base + irq
                    }
                    None => self.slave.irq_base + 7,
                };
                self.master.acknowledge(2);
                v
            }
            Some(irq) => {
                self.master.acknowledge(irq);
                self.master.irq_base + irq
            }
            None => self.master.irq_base + 7,
        };
        self.cascade();
        vector
    }

    fn chip(&mut self, slave: bool) -> &mut Chip {
        if slave {
            &mut self.slave
        } else {
            &mut self.master
        }
    }

    /// A byte written to port `port` (0x20/0x21, 0xa0/0xa1, 0x4d0/0x4d1); other ports are
    /// ignored.
    pub fn write_port(&mut self, port: u16, val: u8) {
        match port {
            0x20 | 0x21 | 0xa0 | 0xa1 => {
                let slave = port & 0x80 != 0;
                self.chip(slave).write((port & 1) as u8, val);
            }
            0x4d0 | 0x4d1 => {
                let c = self.chip(port == 0x4d1);
                c.elcr = val & c.elcr_mask;
            }
            _ => {}
        }
        self.cascade();
    }

    pub fn read_port(&mut self, port: u16) -> u8 {
        let v = match port {
            0x20 | 0x21 | 0xa0 | 0xa1 => {
                let slave = port & 0x80 != 0;
                // Polling the master for the cascade input polls the slave.
                self.chip(slave).read((port & 1) as u8)
            }
            0x4d0 => self.master.elcr,
            0x4d1 => self.slave.elcr,
            _ => 0xff,
        };
        self.cascade();
        v
    }
}

/// The pair's ports on the I/O bus (registered at 0x20, 0xa0 and 0x4d0, two ports each).
impl BusDevice for PicPair {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        crate::bus::bytewise_read((base + offset) as u16, data, |p| self.read_port(p));
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        crate::bus::bytewise_write((base + offset) as u16, data, |p, v| self.write_port(p, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The initialization Linux and BIOSes use: vectors 0x20/0x28, cascade on IRQ 2, 8086
    /// mode, everything unmasked.
    fn initialized() -> PicPair {
        let mut p = PicPair::new();
        for (port, v) in [
            (0x20, 0x11),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x01),
            (0xa0, 0x11),
            (0xa1, 0x28),
            (0xa1, 0x02),
            (0xa1, 0x01),
            (0x21, 0x00),
            (0xa1, 0x00),
        ] {
            p.write_port(port, v);
        }
        p
    }

    #[test]
    fn edge_requests_priorities_and_eoi() {
        let mut p = initialized();
        assert!(!p.intr());
        p.set_irq(4, true);
        p.set_irq(1, true);
        assert!(p.intr());
        assert_eq!(p.acknowledge(), 0x21); // IRQ 1 beats IRQ 4
                                           // IRQ 4 waits while IRQ 1 is in service.
        assert!(!p.intr());
        p.write_port(0x20, 0x20); // non-specific EOI
        assert!(p.intr());
        assert_eq!(p.acknowledge(), 0x24);
        p.write_port(0x20, 0x20);
        // An edge is consumed: the line still high does not request again.
        assert!(!p.intr());
        p.set_irq(4, false);
        p.set_irq(4, true);
        assert!(p.intr());
    }

    #[test]
    fn slave_cascade_mask_and_spurious() {
        let mut p = initialized();
        p.set_irq(12, true);
        assert!(p.intr());
        assert_eq!(p.acknowledge(), 0x2c);
        // In service on both chips until both get an EOI.
        p.write_port(0xa0, 0x20);
        p.write_port(0x20, 0x20);
        // Masked: no request.
        p.write_port(0x21, 0x01);
        p.set_irq(0, true);
        assert!(!p.intr());
        assert_eq!(p.read_port(0x20), 0x01); // IRR shows it
                                             // Nothing pending: the acknowledge is spurious IRQ 7.
        assert_eq!(p.acknowledge(), 0x27);
    }

    #[test]
    fn level_triggered_inputs_follow_the_line() {
        let mut p = initialized();
        p.write_port(0x4d1, 0x0e); // IRQ 9–11 level-triggered
        assert_eq!(p.read_port(0x4d1), 0x0e);
        p.set_irq(10, true);
        assert_eq!(p.acknowledge(), 0x2a);
        p.write_port(0xa0, 0x20);
        p.write_port(0x20, 0x20);
        // Still high: requests again.
        assert!(p.intr());
        // Dropped before the acknowledge: the master latched the cascade's edge, so the CPU
        // gets the slave's spurious IRQ 15, as on the real pair.
        p.set_irq(10, false);
        assert_eq!(p.acknowledge(), 0x2f);
        assert!(!p.intr());
    }

    #[test]
    fn rotation_poll_and_isr_reads() {
        let mut p = initialized();
        p.set_irq(3, true);
        p.set_irq(5, true);
        // Poll mode: OCW3 with P set, then a read acknowledges.
        p.write_port(0x20, 0x0c);
        assert_eq!(p.read_port(0x20), 0x83);
        p.write_port(0x20, 0x0b); // read ISR
        assert_eq!(p.read_port(0x20), 0x08);
        // Rotate on non-specific EOI: IRQ 3 becomes the lowest priority.
        p.write_port(0x20, 0xa0);
        assert_eq!(p.read_port(0x20), 0x00);
        p.set_irq(3, false);
        p.set_irq(3, true);
        // IRQ 5 now beats IRQ 3.
        assert_eq!(p.acknowledge(), 0x25);
        // Auto-EOI (ICW4 bit 1): nothing stays in service.
        let mut q = PicPair::new();
        for (port, v) in [(0x20, 0x11), (0x21, 0x08), (0x21, 0x04), (0x21, 0x03)] {
            q.write_port(port, v);
        }
        q.write_port(0x21, 0);
        q.set_irq(0, true);
        assert_eq!(q.acknowledge(), 0x08);
        q.write_port(0x20, 0x0b);
        assert_eq!(q.read_port(0x20), 0);
    }
}
