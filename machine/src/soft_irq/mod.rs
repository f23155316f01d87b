//! The software CPU's interrupt hardware: the 8259 pair, the IOAPIC, the boot CPU's local
//! APIC and the 8254 on the machine clock, behind emu-core's [`Interrupts`] trait, and the
//! ISA interrupt lines devices drive.
//!
//! Under KVM the kernel models these; for the software CPU they are ours, wired as QEMU's pc
//! and as the MP table and MADT describe: every ISA line goes to the 8259 and to the IOAPIC
//! pin of the same number, but IRQ 0, which is pin 2. The CPU takes an interrupt from its
//! local APIC first (IOAPIC messages, its timer, self-IPIs) and otherwise, while LINT0 is
//! unmasked or the APIC disabled, from the 8259 (QEMU's rule). FERR# drives IRQ 13; a write
//! to port 0xf0 clears it and asserts IGNNE#. Only the boot CPU has a local APIC so far
//! (SMP on the software CPU is still to come).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use devices::bus::BusDevice;
use devices::clock::{Clock, InstructionClock, Timer};
use devices::ioapic::{Delivery, IoApic};
use devices::lapic::{Ipi, LocalApic};
use devices::pic::PicPair;
use devices::pit::Pit;
use devices::IrqLine;
use emu_core::Interrupts;
use parking_lot::Mutex;

/// The FPU error port: a write acknowledges FERR# (IRQ 13) and asserts IGNNE#.
pub const FERR_PORT: u16 = 0xf0;

pub struct SoftIrqChip {
    pic: Mutex<PicPair>,
    ioapic: Mutex<IoApic>,
    /// The boot CPU's local APIC.
    lapic: Mutex<LocalApic>,
    pit: OnceLock<Arc<Mutex<Pit>>>,
    clock: Arc<dyn Clock>,
    /// Other devices with deadlines on the machine clock (the RTC), polled with the PIT.
    timers: Mutex<Vec<Arc<Mutex<dyn Timer>>>>,
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
            // The IOAPIC's ID follows the CPUs' in the MP table and MADT; one CPU here.
            ioapic: Mutex::new(IoApic::new(1)),
            lapic: Mutex::new(LocalApic::new(0, true)),
            pit: OnceLock::new(),
            clock: clock.clone(),
            timers: Mutex::new(Vec::new()),
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

    /// Polls `timer` with the PIT (between instruction batches and while the CPU halts).
    pub fn add_timer(&self, timer: Arc<Mutex<dyn Timer>>) {
        self.timers.lock().push(timer);
    }

    /// The IOAPIC's APIC ID: after the CPUs', as the MP table and MADT say.
    pub fn set_ioapic_id(&self, id: u32) {
        *self.ioapic.lock() = IoApic::new(id);
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
        let r = f(&mut self.pic.lock());
        self.update_intr();
        r
    }

    fn with_lapic<T>(&self, f: impl FnOnce(&mut LocalApic, u64) -> T) -> T {
        let now = self.clock.now_ns();
        let r = f(&mut self.lapic.lock(), now);
        self.update_intr();
        r
    }

    /// Recomputes the CPU's INTR (cached for the between-instructions check) and wakes a
    /// halted CPU when it is up. Never holds two of the chip's locks at once.
    fn update_intr(&self) {
        let (apic, pass_pic) = {
            let l = self.lapic.lock();
            (l.pending().is_some(), l.accepts_pic())
        };
        let intr = apic || (pass_pic && self.pic.lock().intr());
        self.intr.store(intr, Ordering::Release);
        if intr {
            if let Some(w) = self.wake.get() {
                w();
            }
        }
    }

    /// ISA line `irq` at `high`: to the 8259 and to its IOAPIC pin.
    fn set_isa_irq(&self, irq: u8, high: bool) {
        self.pic.lock().set_irq(irq, high);
        let pin = match irq {
            0 => Some(2),
            2 => None, // the cascade: no ISA device drives it
            n => Some(usize::from(n)),
        };
        if let Some(pin) = pin {
            let d = self.ioapic.lock().set_irq(pin, high);
            self.deliver(d);
        }
        self.update_intr();
    }

    /// IOAPIC messages to the local APIC(s) they address.
    fn deliver(&self, messages: impl IntoIterator<Item = Delivery>) {
        for d in messages {
            let mut l = self.lapic.lock();
            match d.mode {
                // Fixed and lowest priority: the one CPU, if it is addressed.
                0 | 1 => {
                    if l.is_destination(d.logical, u32::from(d.dest)) {
                        l.accept(d.vector, d.level);
                    }
                }
                mode => log_once(&format!(
                    "software CPU: IOAPIC delivery mode {mode} is not modelled; dropped"
                )),
            }
        }
    }

    /// An IPI from the boot CPU's ICR: only this CPU exists to receive it.
    fn send_ipi(&self, ipi: Ipi) {
        let mut l = self.lapic.lock();
        let to_self = match ipi.shorthand {
            1 | 2 => true,
            3 => false,
            _ => l.is_destination(ipi.logical, ipi.dest),
        };
        match ipi.mode {
            devices::lapic::MODE_FIXED | devices::lapic::MODE_LOWEST if to_self => {
                l.accept(ipi.vector, false)
            }
            devices::lapic::MODE_FIXED | devices::lapic::MODE_LOWEST => {}
            devices::lapic::MODE_INIT | devices::lapic::MODE_STARTUP => log_once(
                "software CPU: INIT/SIPI to other CPUs: there is only the boot CPU (SMP is not \
                 modelled on the software CPU yet)",
            ),
            mode => log_once(&format!(
                "software CPU: IPI delivery mode {mode} is not modelled; dropped"
            )),
        }
    }

    /// A local-APIC register write's consequences: an IPI to send, a level EOI for the
    /// IOAPIC.
    fn after_apic_write(&self, (ipi, eoi): (Option<Ipi>, Option<u8>)) {
        if let Some(ipi) = ipi {
            self.send_ipi(ipi);
        }
        if let Some(vector) = eoi {
            let again = self.ioapic.lock().eoi(vector);
            self.deliver(again);
        }
        self.update_intr();
    }
}

/// Logs `msg` once per process (a guest may repeat what is not modelled in a loop).
fn log_once(msg: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.iter().any(|m| m == msg) {
        log::warn!("{msg}");
        seen.push(msg.to_string());
    }
}

struct PicLine {
    chip: Weak<SoftIrqChip>,
    irq: u8,
}

impl IrqLine for PicLine {
    fn set_level(&self, high: bool) {
        if let Some(chip) = self.chip.upgrade() {
            chip.set_isa_irq(self.irq, high);
        }
    }
}

impl Interrupts for SoftIrqChip {
    fn pending(&self) -> bool {
        self.intr.load(Ordering::Acquire)
    }

    fn acknowledge(&self) -> u8 {
        let vector = {
            let mut l = self.lapic.lock();
            if l.pending().is_some() {
                Some(l.acknowledge())
            } else if l.accepts_pic() {
                None
            } else {
                // INTR was seen but is gone: the APIC's spurious vector.
                Some(l.acknowledge())
            }
        };
        match vector {
            Some(v) => {
                self.update_intr();
                v
            }
            None => self.with_pic(|p| p.acknowledge()),
        }
    }

    fn poll(&self) -> Option<u64> {
        let pit = self.pit().lock().poll();
        let now = self.clock.now_ns();
        let apic = self.lapic.lock().poll(now, now);
        // A timer raising its line takes the chip's other locks, never this list's.
        let others = self
            .timers
            .lock()
            .iter()
            .filter_map(|t| t.lock().poll())
            .min();
        self.update_intr();
        [pit, apic, others].into_iter().flatten().min()
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

    fn has_local_apic(&self) -> bool {
        true
    }

    fn read_apic_msr(&self, msr: u32) -> Option<u64> {
        let l = self.lapic.lock();
        match msr {
            devices::lapic::MSR_APIC_BASE => Some(l.base_msr()),
            devices::lapic::MSR_TSC_DEADLINE => Some(l.tsc_deadline()),
            _ => l.read_msr(msr, self.clock.now_ns()).ok(),
        }
    }

    fn write_apic_msr(&self, msr: u32, value: u64) -> bool {
        match msr {
            devices::lapic::MSR_APIC_BASE => {
                let ok = self.with_lapic(|l, _| l.set_base_msr(value).is_ok());
                if ok && self.lapic.lock().mmio_base() != Some(devices::lapic::DEFAULT_BASE) {
                    log_once(
                        "software CPU: the local APIC was moved or disabled; its registers stay \
                         decoded at 0xfee00000 only",
                    );
                }
                ok
            }
            devices::lapic::MSR_TSC_DEADLINE => {
                self.with_lapic(|l, _| l.set_tsc_deadline(value));
                true
            }
            _ => match self.with_lapic(|l, now| l.write_msr(msr, value, now)) {
                Ok(effects) => {
                    self.after_apic_write(effects);
                    true
                }
                Err(_) => false,
            },
        }
    }
}

/// The boot CPU's local APIC registers (xAPIC MMIO at 0xFEE00000) on the MMIO bus.
pub struct LapicMmio(pub Arc<SoftIrqChip>);

impl BusDevice for LapicMmio {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        let chip = &self.0;
        let (reg, shift) = ((offset & !0xf) as u32, (offset & 3) * 8);
        let v = {
            let l = chip.lapic.lock();
            if l.mmio_base().is_none() {
                data.fill(0xff);
                return;
            }
            l.read(reg, chip.clock.now_ns())
        };
        // Registers sit in the low dword of each 16-byte slot; narrower reads take bytes.
        let bytes = (u64::from(v) >> shift).to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = if (offset & 0xf) < 4 {
                bytes.get(i).copied().unwrap_or(0)
            } else {
                0
            };
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        // The registers take aligned 32-bit writes; other sizes are dropped, as QEMU does.
        if data.len() != 4 || offset & 0xf != 0 {
            log_once("software CPU: a local APIC write that is not an aligned dword; dropped");
            return;
        }
        let value = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let chip = &self.0;
        if chip.lapic.lock().mmio_base().is_none() {
            return;
        }
        let effects = chip.with_lapic(|l, now| l.write(offset as u32, value, now));
        chip.after_apic_write(effects);
    }
}

/// The IOAPIC's registers (0xFEC00000: IOREGSEL, IOWIN, EOI) on the MMIO bus.
pub struct IoApicMmio(pub Arc<SoftIrqChip>);

impl BusDevice for IoApicMmio {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        let v = self.0.ioapic.lock().read(offset & !3);
        let bytes = (v >> ((offset & 3) * 8)).to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(i).copied().unwrap_or(0);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        if data.len() != 4 || offset & 3 != 0 {
            log_once("software CPU: an IOAPIC write that is not an aligned dword; dropped");
            return;
        }
        let value = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let out = self.0.ioapic.lock().write(offset, value);
        self.0.deliver(out);
        self.0.update_intr();
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

    fn mmio_write(dev: &mut dyn BusDevice, offset: u64, v: u32) {
        dev.write(0, offset, &v.to_le_bytes());
    }

    fn mmio_read(dev: &mut dyn BusDevice, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        dev.read(0, offset, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn ioapic_messages_and_the_apic_timer_reach_the_cpu_through_the_local_apic() {
        let clock = Arc::new(ManualClock::default());
        let chip = SoftIrqChip::new(clock.clone());
        chip.set_ioapic_id(1);
        let mut lapic = LapicMmio(chip.clone());
        let mut ioapic = IoApicMmio(chip.clone());
        assert!(chip.has_local_apic());
        assert_eq!(mmio_read(&mut lapic, 0x20), 0, "APIC ID 0");
        // The OS's APIC setup: software-enable, mask LINT0 (the 8259 is left behind).
        mmio_write(&mut lapic, 0xf0, 0x1ff);
        mmio_write(&mut lapic, 0x350, 0x10700);
        // The UART's IRQ 4 on pin 4, level-triggered, vector 0x34, to APIC 0.
        mmio_write(&mut ioapic, 0, 0x10 + 8);
        mmio_write(&mut ioapic, 0x10, 0x8034);
        let line = chip.line(4);
        line.set_level(true);
        assert!(chip.pending());
        assert_eq!(chip.acknowledge(), 0x34);
        assert!(!chip.pending(), "remote IRR holds the level line");
        // EOI with the line still high delivers again; lowered, nothing more.
        mmio_write(&mut lapic, 0xb0, 0);
        assert!(chip.pending());
        assert_eq!(chip.acknowledge(), 0x34);
        line.set_level(false);
        mmio_write(&mut lapic, 0xb0, 0);
        assert!(!chip.pending());
        // The PIT's IRQ 0 arrives on pin 2 (the MADT's override).
        mmio_write(&mut ioapic, 0, 0x10 + 4);
        mmio_write(&mut ioapic, 0x10, 0x30);
        chip.line(0).pulse();
        assert_eq!(chip.acknowledge(), 0x30);
        mmio_write(&mut lapic, 0xb0, 0);
        // The TSC-deadline timer, through the MSRs, with the machine clock.
        mmio_write(&mut lapic, 0x320, 0x40041);
        assert!(chip.write_apic_msr(devices::lapic::MSR_TSC_DEADLINE, 5_000));
        assert_eq!(chip.poll(), Some(5_000));
        assert!(!chip.pending());
        clock.set(5_000);
        chip.poll();
        assert_eq!(chip.acknowledge(), 0x41);
        // A self-IPI through the ICR.
        mmio_write(&mut lapic, 0xb0, 0);
        mmio_write(&mut lapic, 0x300, 0x4_4050);
        assert_eq!(chip.acknowledge(), 0x50);
        // Bad accesses: a byte write is dropped, an x2APIC MSR outside x2APIC mode is #GP.
        lapic.write(0, 0x80, &[0x70]);
        assert_eq!(mmio_read(&mut lapic, 0x80), 0, "TPR unchanged");
        assert_eq!(chip.read_apic_msr(0x802), None);
    }
}
