//! The software CPU's interrupt hardware: the 8259 pair, the IOAPIC, one local APIC per
//! vCPU and the 8254 on the machine clock, behind emu-core's [`Interrupts`] trait (one view
//! per vCPU, [`SoftIrqChip::cpu`]), and the ISA interrupt lines devices drive.
//!
//! Under KVM the kernel models these; for the software CPU they are ours, wired as QEMU's pc
//! and as the MP table and MADT describe: every ISA line goes to the 8259 and to the IOAPIC
//! pin of the same number, but IRQ 0, which is pin 2. A CPU takes an interrupt from its
//! local APIC first (IOAPIC messages, its timer, IPIs) and otherwise, while its LINT0 is
//! unmasked or its APIC disabled, from the 8259 (QEMU's rule; in practice the boot CPU's).
//! FERR# drives IRQ 13; a write to port 0xf0 clears it and asserts IGNNE#. CPU `n` has APIC
//! ID `n`; the IOAPIC's ID follows the CPUs'. The PIT and the other device timers are polled
//! by the boot CPU; each APIC's timer by its own CPU.

mod cpu;
mod ports;

pub use cpu::{ApicRoute, CpuIrq};
pub use ports::{ChipPorts, IoApicMmio, FERR_PORT};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use devices::clock::{Clock, InstructionClock, Timer};
use devices::ioapic::{Delivery, IoApic};
use devices::lapic::{Ipi, LocalApic};
use devices::pic::PicPair;
use devices::pit::Pit;
use devices::IrqLine;
use emu_core::Startup;
use parking_lot::Mutex;

/// INIT/STARTUP signals kept per CPU at most (a guest flooding them loses the oldest).
const MAX_STARTUP_SIGNALS: usize = 8;

/// One CPU's local APIC and what the chip keeps for it.
struct CpuSlot {
    lapic: Mutex<LocalApic>,
    /// INTR as this CPU sees it (its APIC's, and the 8259's through LINT0), cached for the
    /// between-instructions check.
    intr: Arc<AtomicBool>,
    /// INIT and STARTUP signals not yet taken by the CPU, oldest first.
    startup: Mutex<VecDeque<Startup>>,
    startup_pending: AtomicBool,
    /// Wakes the CPU when it is halted or waiting for STARTUP (set once the vCPU exists).
    wake: OnceLock<Arc<dyn Fn() + Send + Sync>>,
}

impl CpuSlot {
    fn wake(&self) {
        if let Some(w) = self.wake.get() {
            w();
        }
    }
}

pub struct SoftIrqChip {
    pic: Mutex<PicPair>,
    ioapic: Mutex<IoApic>,
    cpus: Box<[CpuSlot]>,
    pit: OnceLock<Arc<Mutex<Pit>>>,
    clock: Arc<dyn Clock>,
    /// Other devices with deadlines on the machine clock (the RTC), polled with the PIT.
    timers: Mutex<Vec<Arc<Mutex<dyn Timer>>>>,
    /// The deterministic clock, when `clock` is one (the vCPU drives it).
    icount: Option<Arc<InstructionClock>>,
    ignne: AtomicBool,
    /// Where the next lowest-priority interrupt starts looking (spreads them over CPUs).
    lowest_next: AtomicUsize,
}

impl SoftIrqChip {
    /// The chip for `cpus` vCPUs and its timer (IRQ 0) on `clock`.
    pub fn new(clock: Arc<dyn Clock>, cpus: usize) -> Arc<SoftIrqChip> {
        Self::build(clock, None, cpus)
    }

    /// The chip for one vCPU on the deterministic clock, which the vCPU advances as it
    /// retires instructions (`-icount`).
    pub fn deterministic(clock: Arc<InstructionClock>) -> Arc<SoftIrqChip> {
        Self::build(clock.clone(), Some(clock), 1)
    }

    fn build(
        clock: Arc<dyn Clock>,
        icount: Option<Arc<InstructionClock>>,
        cpus: usize,
    ) -> Arc<SoftIrqChip> {
        let cpus = (0..cpus.max(1))
            .map(|i| CpuSlot {
                lapic: Mutex::new(LocalApic::new(i as u32, i == 0)),
                intr: Arc::new(AtomicBool::new(false)),
                startup: Mutex::new(VecDeque::new()),
                startup_pending: AtomicBool::new(false),
                wake: OnceLock::new(),
            })
            .collect::<Box<[_]>>();
        let chip = Arc::new(SoftIrqChip {
            pic: Mutex::new(PicPair::new()),
            // The IOAPIC's ID follows the CPUs' in the MP table and MADT.
            ioapic: Mutex::new(IoApic::new(cpus.len() as u32)),
            cpus,
            pit: OnceLock::new(),
            clock: clock.clone(),
            timers: Mutex::new(Vec::new()),
            icount,
            ignne: AtomicBool::new(false),
            lowest_next: AtomicUsize::new(0),
        });
        let pit = Arc::new(Mutex::new(Pit::new(clock, chip.line(0))));
        let _ = chip.pit.set(pit);
        chip
    }

    /// How many CPUs (local APICs) the chip serves.
    pub fn cpus(&self) -> usize {
        self.cpus.len()
    }

    /// CPU `cpu`'s view of the chip (its INTR line, its APIC's MSRs, its signals).
    pub fn cpu(self: &Arc<Self>, cpu: usize) -> Arc<CpuIrq> {
        Arc::new(CpuIrq::new(self.clone(), cpu.min(self.cpus.len() - 1)))
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

    /// Who to wake when CPU `cpu`'s INTR rises or a signal comes while it sleeps.
    pub fn set_waker(&self, cpu: usize, wake: Arc<dyn Fn() + Send + Sync>) {
        if let Some(slot) = self.cpus.get(cpu) {
            let _ = slot.wake.set(wake);
        }
    }

    /// The timer, for the I/O bus (ports 0x40–0x43 and 0x61).
    pub fn pit(&self) -> Arc<Mutex<Pit>> {
        self.pit.get().expect("created with the chip").clone()
    }

    fn with_pic<T>(&self, f: impl FnOnce(&mut PicPair) -> T) -> T {
        let r = f(&mut self.pic.lock());
        self.update_all();
        r
    }

    fn with_lapic<T>(&self, cpu: usize, f: impl FnOnce(&mut LocalApic, u64) -> T) -> T {
        let now = self.clock.now_ns();
        let r = f(&mut self.cpus[cpu].lapic.lock(), now);
        self.update_intr(cpu);
        r
    }

    /// Recomputes CPU `cpu`'s INTR and wakes it when it is up. Never holds two of the
    /// chip's locks at once.
    fn update_intr(&self, cpu: usize) {
        let slot = &self.cpus[cpu];
        let (apic, pass_pic) = {
            let l = slot.lapic.lock();
            (l.pending().is_some(), l.accepts_pic())
        };
        let intr = apic || (pass_pic && self.pic.lock().intr());
        slot.intr.store(intr, Ordering::Release);
        if intr {
            slot.wake();
        }
    }

    /// After the 8259 or the IOAPIC changed: every CPU may be concerned.
    fn update_all(&self) {
        for cpu in 0..self.cpus.len() {
            self.update_intr(cpu);
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
        self.update_all();
    }

    /// The CPUs whose APICs `logical`/`dest` addresses.
    fn destinations(&self, logical: bool, dest: u32) -> Vec<usize> {
        (0..self.cpus.len())
            .filter(|&c| self.cpus[c].lapic.lock().is_destination(logical, dest))
            .collect()
    }

    /// One of `targets` for a lowest-priority interrupt (in turn: every CPU runs at the same
    /// priority as far as the guest can tell).
    fn pick_lowest(&self, targets: &[usize]) -> Option<usize> {
        if targets.is_empty() {
            return None;
        }
        let n = self.lowest_next.fetch_add(1, Ordering::Relaxed);
        Some(targets[n % targets.len()])
    }

    /// IOAPIC messages to the local APIC(s) they address.
    fn deliver(&self, messages: impl IntoIterator<Item = Delivery>) {
        for d in messages {
            let targets = self.destinations(d.logical, u32::from(d.dest));
            let chosen = match d.mode {
                0 => targets,
                1 => self.pick_lowest(&targets).into_iter().collect(),
                mode => {
                    log_once(&format!(
                        "software CPU: IOAPIC delivery mode {mode} is not modelled; dropped"
                    ));
                    Vec::new()
                }
            };
            for c in chosen {
                self.cpus[c].lapic.lock().accept(d.vector, d.level);
                self.update_intr(c);
            }
        }
    }

    /// An IPI from CPU `from`'s ICR to the CPUs it addresses.
    fn send_ipi(&self, from: usize, ipi: Ipi) {
        let all = 0..self.cpus.len();
        let targets: Vec<usize> = match ipi.shorthand {
            1 => vec![from],
            2 => all.collect(),
            3 => all.filter(|&c| c != from).collect(),
            _ => self.destinations(ipi.logical, ipi.dest),
        };
        use devices::lapic::{MODE_FIXED, MODE_INIT, MODE_LOWEST, MODE_STARTUP};
        match ipi.mode {
            MODE_FIXED => {
                for c in targets {
                    self.cpus[c].lapic.lock().accept(ipi.vector, false);
                    self.update_intr(c);
                }
            }
            MODE_LOWEST => {
                if let Some(c) = self.pick_lowest(&targets) {
                    self.cpus[c].lapic.lock().accept(ipi.vector, false);
                    self.update_intr(c);
                }
            }
            // INIT level de-assert only synchronised arbitration IDs on old parts.
            MODE_INIT if ipi.deassert => {}
            MODE_INIT => {
                for c in targets {
                    self.cpus[c].lapic.lock().init();
                    self.update_intr(c);
                    self.signal(c, Startup::Init);
                }
            }
            MODE_STARTUP => {
                for c in targets {
                    self.signal(c, Startup::Sipi(ipi.vector));
                }
            }
            mode => log_once(&format!(
                "software CPU: IPI delivery mode {mode} is not modelled; dropped"
            )),
        }
    }

    /// Queues INIT or STARTUP for CPU `cpu` and wakes it.
    fn signal(&self, cpu: usize, s: Startup) {
        let slot = &self.cpus[cpu];
        {
            let mut q = slot.startup.lock();
            if q.len() >= MAX_STARTUP_SIGNALS {
                q.pop_front();
            }
            q.push_back(s);
            slot.startup_pending.store(true, Ordering::Release);
        }
        slot.wake();
    }

    fn take_startup(&self, cpu: usize) -> Option<Startup> {
        let slot = &self.cpus[cpu];
        if !slot.startup_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut q = slot.startup.lock();
        let s = q.pop_front();
        slot.startup_pending.store(!q.is_empty(), Ordering::Release);
        s
    }

    /// A local-APIC register write's consequences: an IPI to send, a level EOI for the
    /// IOAPIC.
    fn after_apic_write(&self, cpu: usize, (ipi, eoi): (Option<Ipi>, Option<u8>)) {
        if let Some(ipi) = ipi {
            self.send_ipi(cpu, ipi);
        }
        if let Some(vector) = eoi {
            let again = self.ioapic.lock().eoi(vector);
            self.deliver(again);
        }
        self.update_intr(cpu);
    }

    /// A read of CPU `cpu`'s xAPIC page at `offset`.
    fn apic_mmio_read(&self, cpu: usize, offset: u64, data: &mut [u8]) {
        let (reg, shift) = ((offset & !0xf) as u32, (offset & 3) * 8);
        let v = {
            let l = self.cpus[cpu].lapic.lock();
            if l.mmio_base().is_none() {
                data.fill(0xff);
                return;
            }
            l.read(reg, self.clock.now_ns())
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

    /// A write to CPU `cpu`'s xAPIC page at `offset`.
    fn apic_mmio_write(&self, cpu: usize, offset: u64, data: &[u8]) {
        // The registers take aligned 32-bit writes; other sizes are dropped, as QEMU does.
        if data.len() != 4 || offset & 0xf != 0 {
            log_once("software CPU: a local APIC write that is not an aligned dword; dropped");
            return;
        }
        let value = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        if self.cpus[cpu].lapic.lock().mmio_base().is_none() {
            return;
        }
        let effects = self.with_lapic(cpu, |l, now| l.write(offset as u32, value, now));
        self.after_apic_write(cpu, effects);
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

#[cfg(test)]
mod tests {
    use super::*;
    use devices::clock::ManualClock;

    #[test]
    fn timer_interrupts_reach_the_cpu_through_the_pic() {
        let clock = Arc::new(ManualClock::default());
        let board = SoftIrqChip::new(clock.clone(), 1);
        let chip = board.cpu(0);
        let mut ports = ChipPorts(board.clone());
        for (port, v) in [(0x20u64, 0x11u8), (0x21, 0x30), (0x21, 0x04), (0x21, 0x01)] {
            ports.write(port, 0, &[v]);
        }
        ports.write(0x21, 0, &[0xfe]); // only IRQ 0
        let pit = board.pit();
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

    use devices::bus::BusDevice;
    use emu_core::Interrupts;

    fn mmio_write(dev: &mut dyn BusDevice, offset: u64, v: u32) {
        dev.write(0, offset, &v.to_le_bytes());
    }

    fn mmio_read(dev: &mut dyn BusDevice, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        dev.read(0, offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// CPU `n`'s xAPIC page as a bus device, for the tests.
    struct Apic(Arc<SoftIrqChip>, usize);

    impl BusDevice for Apic {
        fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
            self.0.apic_mmio_read(self.1, offset, data)
        }
        fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
            self.0.apic_mmio_write(self.1, offset, data)
        }
    }

    #[test]
    fn ioapic_messages_and_the_apic_timer_reach_the_cpu_through_the_local_apic() {
        let clock = Arc::new(ManualClock::default());
        let board = SoftIrqChip::new(clock.clone(), 1);
        let chip = board.cpu(0);
        let mut lapic = Apic(board.clone(), 0);
        let mut ioapic = IoApicMmio(board.clone());
        assert!(chip.has_local_apic());
        assert_eq!(mmio_read(&mut lapic, 0x20), 0, "APIC ID 0");
        // The OS's APIC setup: software-enable, mask LINT0 (the 8259 is left behind).
        mmio_write(&mut lapic, 0xf0, 0x1ff);
        mmio_write(&mut lapic, 0x350, 0x10700);
        // The UART's IRQ 4 on pin 4, level-triggered, vector 0x34, to APIC 0.
        mmio_write(&mut ioapic, 0, 0x10 + 8);
        mmio_write(&mut ioapic, 0x10, 0x8034);
        let line = board.line(4);
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
        board.line(0).pulse();
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

    #[test]
    fn each_cpu_has_its_own_apic_and_receives_ipis_and_startup_signals() {
        let clock = Arc::new(ManualClock::default());
        let board = SoftIrqChip::new(clock.clone(), 2);
        let (cpu0, cpu1) = (board.cpu(0), board.cpu(1));
        let (mut apic0, mut apic1) = (Apic(board.clone(), 0), Apic(board.clone(), 1));
        assert_eq!(mmio_read(&mut apic0, 0x20) >> 24, 0);
        assert_eq!(mmio_read(&mut apic1, 0x20) >> 24, 1);
        assert_eq!(
            cpu1.read_apic_msr(devices::lapic::MSR_APIC_BASE).unwrap() & (1 << 8),
            0
        );
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = woken.clone();
        board.set_waker(
            1,
            Arc::new(move || {
                w.fetch_add(1, Ordering::Relaxed);
            }),
        );
        // INIT, then STARTUP with vector 0x9a, to APIC 1 (physical), as Linux boots an AP.
        mmio_write(&mut apic0, 0x310, 1 << 24);
        mmio_write(&mut apic0, 0x300, 0x4500);
        mmio_write(&mut apic0, 0x310, 1 << 24);
        mmio_write(&mut apic0, 0x300, 0x469a);
        assert!(cpu1.startup_pending());
        assert!(!cpu0.startup_pending());
        assert_eq!(cpu1.take_startup(), Some(Startup::Init));
        assert_eq!(cpu1.take_startup(), Some(Startup::Sipi(0x9a)));
        assert_eq!(cpu1.take_startup(), None);
        assert!(woken.load(Ordering::Relaxed) >= 2);
        // A fixed IPI to CPU 1 reaches only CPU 1 once its APIC is software-enabled.
        mmio_write(&mut apic1, 0xf0, 0x1ff);
        mmio_write(&mut apic0, 0x310, 1 << 24);
        mmio_write(&mut apic0, 0x300, 0x40f2);
        assert!(cpu1.pending() && !cpu0.pending());
        assert_eq!(cpu1.acknowledge(), 0xf2);
        mmio_write(&mut apic1, 0xb0, 0);
        // All-excluding-self from CPU 1 reaches CPU 0.
        mmio_write(&mut apic0, 0xf0, 0x1ff);
        mmio_write(&mut apic0, 0x350, 0x10700);
        mmio_write(&mut apic1, 0x300, 0xc40f3);
        assert!(cpu0.pending() && !cpu1.pending());
        assert_eq!(cpu0.acknowledge(), 0xf3);
        // The IOAPIC's message for APIC 1 goes to CPU 1; the 8259 reaches neither (LINT0
        // masked on both).
        let mut ioapic = IoApicMmio(board.clone());
        mmio_write(&mut ioapic, 0, 0x10 + 8);
        mmio_write(&mut ioapic, 0x10, 0x35);
        mmio_write(&mut ioapic, 0, 0x10 + 9);
        mmio_write(&mut ioapic, 0x10, 1 << 24);
        board.line(4).pulse();
        assert!(cpu1.pending());
        assert_eq!(cpu1.acknowledge(), 0x35);
        // Each APIC's timer is its own CPU's.
        mmio_write(&mut apic1, 0x320, 0x40041);
        assert!(cpu1.write_apic_msr(devices::lapic::MSR_TSC_DEADLINE, 7_000));
        assert_eq!(
            cpu0.read_apic_msr(devices::lapic::MSR_TSC_DEADLINE),
            Some(0)
        );
        clock.set(7_000);
        cpu1.poll();
        assert!(cpu1.pending());
    }
}
