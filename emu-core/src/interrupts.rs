//! How the software CPU reaches the platform's interrupt controller and timers.
//!
//! KVM brings its own; the software CPU asks this trait between instructions whether INTR is
//! asserted, runs the interrupt-acknowledge cycle when it takes one, lets the timers catch up
//! with the clock, and learns how long a halted CPU may sleep.

/// What the APIC bus tells a CPU besides interrupts: the signals that start application
/// processors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Startup {
    /// INIT: the CPU resets (keeping its MSRs and x87/SSE state); an application processor
    /// then waits for a STARTUP IPI.
    Init,
    /// STARTUP (SIPI) with its vector: a waiting CPU starts in real mode at `vector << 12`.
    Sipi(u8),
}

pub trait Interrupts: Send + Sync {
    /// Whether the INTR line is asserted (cheap: asked between instructions).
    fn pending(&self) -> bool;
    /// The flag behind [`Interrupts::pending`], if there is one: the CPU then reads it
    /// directly between instructions instead of calling through the trait.
    fn intr_line(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        None
    }
    /// The interrupt-acknowledge cycle: the vector to deliver.
    fn acknowledge(&self) -> u8;
    /// Lets the timers raise what is due; returns the next deadline on the machine clock (ns).
    fn poll(&self) -> Option<u64>;
    /// The machine clock (ns since the machine started); the TSC counts it too.
    fn now_ns(&self) -> u64;
    /// `instructions` more have retired (the deterministic clock counts them; the host's
    /// clock ignores this).
    fn retired(&self, _instructions: u64) {}
    /// A halted CPU with nothing pending until `deadline`: a deterministic clock jumps there
    /// (returns `true`); on the host's clock the CPU sleeps instead (`false`).
    fn skip_idle_to(&self, _deadline: u64) -> bool {
        false
    }
    /// FERR#: the x87 signals a pending unmasked exception with CR0.NE clear (`true`), or
    /// its exception flags were cleared (`false`). The PC routes it to IRQ 13.
    fn ferr(&self, asserted: bool);
    /// IGNNE#: the platform asks the x87 to ignore pending exceptions (after the IRQ 13
    /// handler's write to port 0xf0).
    fn ignne(&self) -> bool;
    /// Whether the CPU has a local APIC behind this trait (CPUID's APIC and TSC-deadline
    /// bits, and the MSRs below, follow it).
    fn has_local_apic(&self) -> bool {
        false
    }
    /// RDMSR of a local-APIC MSR (IA32_APIC_BASE, IA32_TSC_DEADLINE in machine-clock ns,
    /// the x2APIC range); `None` means #GP.
    fn read_apic_msr(&self, _msr: u32) -> Option<u64> {
        None
    }
    /// WRMSR of a local-APIC MSR; `false` means #GP.
    fn write_apic_msr(&self, _msr: u32, _value: u64) -> bool {
        false
    }
    /// Whether INIT or STARTUP signals wait for [`Interrupts::take_startup`] (cheap).
    fn startup_pending(&self) -> bool {
        false
    }
    /// The oldest INIT or STARTUP signal sent to this CPU not yet taken.
    fn take_startup(&self) -> Option<Startup> {
        None
    }
}
