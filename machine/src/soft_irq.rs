//! The software CPU's interrupt hardware: the 8259 pair and the 8254 on the machine clock,
//! behind emu-core's [`Interrupts`] trait, and the ISA interrupt lines devices drive.
//!
//! Under KVM the kernel models these; for the software CPU they are ours. The boot CPU's INTR
//! line is the master PIC's output (the local APIC and IOAPIC are not modelled yet, so the
//! firmware tables' APIC entries are not backed and Linux keeps to the PIC: "APIC: Keep in
//! PIC mode(8259)"). FERR# drives IRQ 13; a write to port 0xf0 clears it and asserts IGNNE#.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use devices::bus::BusDevice;
use devices::clock::{Clock, InstructionClock};
use devices::pic::PicPair;
use devices::pit::Pit;
use devices::IrqLine;
use emu_core::Interrupts;
use parking_lot::Mutex;

/// The FPU error port: a write acknowledges FERR# (IRQ 13) and asserts IGNNE#.
pub const FERR_PORT: u16 = 0xf0;

pub struct SoftIrqChip {
    pic: Mutex<PicPair>,
    pit: OnceLock<Arc<Mutex<Pit>>>,
    clock: Arc<dyn Clock>,
    /// The deterministic clock, when `clock` is one (the vCPU drives it).
    icount: Option<Arc<InstructionClock>>,
    /// The master's output, cached for the CPU's between-instruction check.
    intr: AtomicBool,
    ignne: AtomicBool,
    /// Wakes the halted boot CPU when a line rises (set once the vCPU exists).
    wake: OnceLock<Arc<dyn Fn() + Send + Sync>>,
}

impl SoftIrqChip {
    /// The chip and its timer (IRQ 0) on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<SoftIrqChip> {
        Self::build(clock, None)
    }

    /// The chip on the deterministic clock, which the vCPU advances as it retires
    /// instructions (`-icount`).
    pub fn deterministic(clock: Arc<InstructionClock>) -> Arc<SoftIrqChip> {
        Self::build(clock.clone(), Some(clock))
    }

    fn build(clock: Arc<dyn Clock>, icount: Option<Arc<InstructionClock>>) -> Arc<SoftIrqChip> {
        let chip = Arc::new(SoftIrqChip {
            pic: Mutex::new(PicPair::new()),
            pit: OnceLock::new(),
            clock: clock.clone(),
            icount,
            intr: AtomicBool::new(false),
            ignne: AtomicBool::new(false),
            wake: OnceLock::new(),
        });
        let pit = Arc::new(Mutex::new(Pit::new(clock, chip.line(0))));
        let _ = chip.pit.set(pit);
        chip
    }

    /// ISA interrupt line `irq` (0–15; others go nowhere).
    pub fn line(self: &Arc<Self>, irq: u32) -> Arc<dyn IrqLine> {
        match u8::try_from(irq) {
            Ok(irq) if irq < 16 => Arc::new(PicLine {
                chip: Arc::downgrade(self),
                irq,
            }),
            _ => Arc::new(devices::irq::NoIrq),
        }
    }

    /// Who to wake when a line rises while the CPU is halted.
    pub fn set_waker(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        let _ = self.wake.set(wake);
    }

    /// The timer, for the I/O bus (ports 0x40–0x43 and 0x61).
    pub fn pit(&self) -> Arc<Mutex<Pit>> {
        self.pit.get().expect("created with the chip").clone()
    }

    fn with_pic<T>(&self, f: impl FnOnce(&mut PicPair) -> T) -> T {
        let mut pic = self.pic.lock();
        let r = f(&mut pic);
        let intr = pic.intr();
        drop(pic);
        self.intr.store(intr, Ordering::Release);
        if intr {
            if let Some(w) = self.wake.get() {
                w();
            }
        }
        r
    }
}

struct PicLine {
    chip: Weak<SoftIrqChip>,
    irq: u8,
}

impl IrqLine for PicLine {
    fn set_level(&self, high: bool) {
        if let Some(chip) = self.chip.upgrade() {
            chip.with_pic(|p| p.set_irq(self.irq, high));
        }
    }
}

impl Interrupts for SoftIrqChip {
    fn pending(&self) -> bool {
        self.intr.load(Ordering::Acquire)
    }

    fn acknowledge(&self) -> u8 {
        self.with_pic(|p| p.acknowledge())
    }

    fn poll(&self) -> Option<u64> {
        self.pit().lock().poll()
    }

    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    fn retired(&self, instructions: u64) {
        if let Some(c) = &self.icount {
            c.retire(instructions);
        }
    }

    fn skip_idle_to(&self, deadline: u64) -> bool {
        match &self.icount {
            Some(c) => {
                c.skip_to(deadline);
                true
            }
            None => false,
        }
    }

    fn ferr(&self, asserted: bool) {
        if !asserted {
            self.ignne.store(false, Ordering::Release);
        }
        self.with_pic(|p| p.set_irq(13, asserted));
    }

    fn ignne(&self) -> bool {
        self.ignne.load(Ordering::Acquire)
    }
}

/// The PIC's ports (0x20–0x21, 0xa0–0xa1, 0x4d0–0x4d1) and port 0xf0, on the I/O bus.
pub struct ChipPorts(pub Arc<SoftIrqChip>);

impl BusDevice for ChipPorts {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        if base + offset == u64::from(FERR_PORT) {
            data.fill(0xff);
            return;
        }
        self.0.with_pic(|p| BusDevice::read(p, base, offset, data));
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        if base + offset == u64::from(FERR_PORT) {
            self.0.ignne.store(true, Ordering::Release);
            self.0.with_pic(|p| p.set_irq(13, false));
            return;
        }
        self.0.with_pic(|p| BusDevice::write(p, base, offset, data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devices::clock::ManualClock;

    #[test]
    fn timer_interrupts_reach_the_cpu_through_the_pic() {
        let clock = Arc::new(ManualClock::default());
        let chip = SoftIrqChip::new(clock.clone());
        let mut ports = ChipPorts(chip.clone());
        for (port, v) in [(0x20u64, 0x11u8), (0x21, 0x30), (0x21, 0x04), (0x21, 0x01)] {
            ports.write(port, 0, &[v]);
        }
        ports.write(0x21, 0, &[0xfe]); // only IRQ 0
        let pit = chip.pit();
        pit.lock().write_port(0x43, 0x34);
        pit.lock().write_port(0x40, 0x9c); // 11932: 10 ms
        pit.lock().write_port(0x40, 0x2e);
        assert!(!chip.pending());
        let due = chip.poll().expect("deadline");
        clock.set(due);
        chip.poll();
        assert!(chip.pending());
        assert_eq!(chip.acknowledge(), 0x30);
        assert!(!chip.pending());
        ports.write(0x20, 0, &[0x20]);
        // FERR# on IRQ 13 is masked here (slave not set up); port 0xf0 sets IGNNE#.
        chip.ferr(true);
        ports.write(0xf0, 0, &[0]);
        assert!(chip.ignne());
        chip.ferr(false);
        assert!(!chip.ignne());
    }
}
