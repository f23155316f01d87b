//! The machine's clock: one time base (nanoseconds since the machine started) for every
//! timer, so the PIT, the RTC and the TSC agree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub trait Clock: Send + Sync {
    /// Nanoseconds since the machine started; never goes backwards.
    fn now_ns(&self) -> u64;
}

/// A device with deadlines on the machine clock that the platform polls (the RTC).
pub trait Timer: Send {
    /// Raises what is due; returns when the next poll is needed (ns), if ever.
    fn poll(&mut self) -> Option<u64>;
}

/// The host's monotonic clock.
pub struct HostClock {
    start: Instant,
}

impl HostClock {
    pub fn new() -> Self {
        HostClock {
            start: Instant::now(),
        }
    }
}

impl Default for HostClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for HostClock {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// A clock that moves only when told to (tests, and the base of a deterministic mode).
#[derive(Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn set(&self, ns: u64) {
        self.0.fetch_max(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The deterministic clock (QEMU's `-icount shift=N`): time advances by 2^N ns for every
/// instruction the vCPU retires, and jumps to the next timer deadline while the vCPU is
/// halted, so two runs of the same guest see the same time at the same instruction.
pub struct InstructionClock {
    ns: AtomicU64,
    shift: u32,
}

/// The largest `shift` accepted: 2^10 ns per instruction is already a 1 MIPS machine.
pub const MAX_ICOUNT_SHIFT: u32 = 10;

impl InstructionClock {
    pub fn new(shift: u32) -> Self {
        InstructionClock {
            ns: AtomicU64::new(0),
            shift: shift.min(MAX_ICOUNT_SHIFT),
        }
    }

    /// `instructions` more have retired.
    pub fn retire(&self, instructions: u64) {
        self.ns
            .fetch_add(instructions << self.shift, Ordering::SeqCst);
    }

    /// A halted CPU skips the idle time up to `ns` (never backwards).
    pub fn skip_to(&self, ns: u64) {
        self.ns.fetch_max(ns, Ordering::SeqCst);
    }
}

impl Clock for InstructionClock {
    fn now_ns(&self) -> u64 {
        self.ns.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_clock_counts_instructions_and_skips_idle_time() {
        let c = InstructionClock::new(3);
        assert_eq!(c.now_ns(), 0);
        c.retire(10);
        assert_eq!(c.now_ns(), 80);
        c.skip_to(50); // the past: no effect
        assert_eq!(c.now_ns(), 80);
        c.skip_to(1_000);
        c.retire(1);
        assert_eq!(c.now_ns(), 1_008);
    }

    #[test]
    fn host_clock_never_goes_backwards() {
        let c = HostClock::new();
        let a = c.now_ns();
        let b = c.now_ns();
        assert!(b >= a);
    }
}
