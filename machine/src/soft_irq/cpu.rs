//! One vCPU's view of the software interrupt chip: its INTR line and acknowledge cycle, its
//! local APIC's MSRs and timer, its INIT/STARTUP signals, and its xAPIC page.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use emu_core::{Interrupts, Platform, Startup};

use super::{log_once, SoftIrqChip};

/// CPU `cpu`'s [`Interrupts`]: what emu-core's software vCPU asks between instructions.
pub struct CpuIrq {
    chip: Arc<SoftIrqChip>,
    cpu: usize,
}

impl CpuIrq {
    pub(super) fn new(chip: Arc<SoftIrqChip>, cpu: usize) -> Self {
        CpuIrq { chip, cpu }
    }
}

impl Interrupts for CpuIrq {
    fn pending(&self) -> bool {
        self.chip.cpus[self.cpu].intr.load(Ordering::Acquire)
    }

    fn intr_line(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        Some(self.chip.cpus[self.cpu].intr.clone())
    }

    fn acknowledge(&self) -> u8 {
        let chip = &self.chip;
        let vector = {
            let mut l = chip.cpus[self.cpu].lapic.lock();
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
                chip.update_intr(self.cpu);
                v
            }
            None => chip.with_pic(|p| p.acknowledge()),
        }
    }

    fn poll(&self) -> Option<u64> {
        let chip = &self.chip;
        // The boot CPU polls the machine's timers; every CPU its own APIC's.
        let (pit, others) = if self.cpu == 0 {
            let pit = chip.pit().lock().poll();
            // A timer raising its line takes the chip's other locks, never this list's.
            let others = chip
                .timers
                .lock()
                .iter()
                .filter_map(|t| t.lock().poll())
                .min();
            (pit, others)
        } else {
            (None, None)
        };
        let now = chip.clock.now_ns();
        let apic = chip.cpus[self.cpu].lapic.lock().poll(now, now);
        chip.update_intr(self.cpu);
        [pit, apic, others].into_iter().flatten().min()
    }

    fn now_ns(&self) -> u64 {
        self.chip.clock.now_ns()
    }

    fn retired(&self, instructions: u64) {
        if let Some(c) = &self.chip.icount {
            c.retire(instructions);
        }
    }

    fn skip_idle_to(&self, deadline: u64) -> bool {
        match &self.chip.icount {
            Some(c) => {
                c.skip_to(deadline);
                true
            }
            None => false,
        }
    }

    fn ferr(&self, asserted: bool) {
        if !asserted {
            self.chip.ignne.store(false, Ordering::Release);
        }
        self.chip.with_pic(|p| p.set_irq(13, asserted));
    }

    fn ignne(&self) -> bool {
        self.chip.ignne.load(Ordering::Acquire)
    }

    fn has_local_apic(&self) -> bool {
        true
    }

    fn read_apic_msr(&self, msr: u32) -> Option<u64> {
        let l = self.chip.cpus[self.cpu].lapic.lock();
        match msr {
            devices::lapic::MSR_APIC_BASE => Some(l.base_msr()),
            devices::lapic::MSR_TSC_DEADLINE => Some(l.tsc_deadline()),
            _ => l.read_msr(msr, self.chip.clock.now_ns()).ok(),
        }
    }

    fn write_apic_msr(&self, msr: u32, value: u64) -> bool {
        let (chip, cpu) = (&self.chip, self.cpu);
        match msr {
            devices::lapic::MSR_APIC_BASE => {
                let ok = chip.with_lapic(cpu, |l, _| l.set_base_msr(value).is_ok());
                let base = chip.cpus[cpu].lapic.lock().mmio_base();
                if ok && base.is_some_and(|b| b != devices::lapic::DEFAULT_BASE) {
                    log_once(
                        "software CPU: a local APIC was moved; its registers stay decoded at \
                         0xfee00000 only",
                    );
                }
                ok
            }
            devices::lapic::MSR_TSC_DEADLINE => {
                chip.with_lapic(cpu, |l, _| l.set_tsc_deadline(value));
                true
            }
            _ => match chip.with_lapic(cpu, |l, now| l.write_msr(msr, value, now)) {
                Ok(effects) => {
                    chip.after_apic_write(cpu, effects);
                    true
                }
                Err(_) => false,
            },
        }
    }

    fn startup_pending(&self) -> bool {
        self.chip.cpus[self.cpu]
            .startup_pending
            .load(Ordering::Acquire)
    }

    fn take_startup(&self) -> Option<Startup> {
        self.chip.take_startup(self.cpu)
    }
}

/// A vCPU's buses: the machine's, with the xAPIC page (0xFEE00000) going to that CPU's own
/// local APIC, which the shared MMIO bus could not tell apart.
pub struct ApicRoute {
    buses: Arc<dyn Platform>,
    chip: Arc<SoftIrqChip>,
    cpu: usize,
}

impl ApicRoute {
    pub fn new(buses: Arc<dyn Platform>, chip: Arc<SoftIrqChip>, cpu: usize) -> Self {
        ApicRoute { buses, chip, cpu }
    }

    fn is_apic(addr: u64) -> bool {
        addr & !0xfff == devices::lapic::DEFAULT_BASE
    }
}

impl Platform for ApicRoute {
    fn pio_read(&self, port: u16, data: &mut [u8]) {
        self.buses.pio_read(port, data)
    }

    fn pio_write(&self, port: u16, data: &[u8]) {
        self.buses.pio_write(port, data)
    }

    fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        if Self::is_apic(addr) {
            self.chip.apic_mmio_read(self.cpu, addr & 0xfff, data)
        } else {
            self.buses.mmio_read(addr, data)
        }
    }

    fn mmio_write(&self, addr: u64, data: &[u8]) {
        if Self::is_apic(addr) {
            self.chip.apic_mmio_write(self.cpu, addr & 0xfff, data)
        } else {
            self.buses.mmio_write(addr, data)
        }
    }
}
