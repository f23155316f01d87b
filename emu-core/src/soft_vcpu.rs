//! The software CPU as a [`Vcpu`]: the interpreter behind the same trait KVM implements.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use vm_memory::GuestMemoryMmap;

use crate::interp::cpu::{flags, Cpu};
use crate::interp::fault::Stop;
use crate::interp::memory::PhysMem;
use crate::interp::Interp;
use crate::state::CpuState;
use crate::vcpu::{Vcpu, VcpuError, VcpuExit, VcpuKicker};
use crate::{Interrupts, Platform};

/// Instructions between two looks at the kick flag (and the timers), interpreting.
const BATCH: u32 = 256;
/// The same with an engine: translated code runs tens of times faster, so a batch of this
/// many still ends within tens of microseconds (interrupts wait no longer than that), and
/// the looks at the clock and the interrupt lines each batch starts with cost next to
/// nothing.
const ENGINE_BATCH: u32 = 8192;

#[derive(Default)]
pub struct SoftKicker {
    kicked: AtomicBool,
    /// A [`SoftKicker::notify`] not yet seen by a sleep (so one that comes between the
    /// CPU's last look at its interrupt line and its sleep is not lost).
    notified: Mutex<bool>,
    wake: Condvar,
}

impl VcpuKicker for SoftKicker {
    fn kick(&self) {
        self.kicked.store(true, Ordering::Release);
        let _g = self.notified.lock();
        self.wake.notify_all();
    }
}

impl SoftKicker {
    fn take(&self) -> bool {
        self.kicked.swap(false, Ordering::AcqRel)
    }

    /// Sleeps until kicked (nothing else can wake a halted CPU without an interrupt
    /// controller).
    fn wait(&self) {
        let mut g = self.notified.lock();
        while !self.kicked.load(Ordering::Acquire) {
            self.wake.wait_for(&mut g, Duration::from_millis(100));
        }
    }

    /// Sleeps at most `timeout`, or until kicked or [`SoftKicker::notify`]d.
    fn sleep(&self, timeout: Duration) {
        let mut notified = self.notified.lock();
        if !*notified && !self.kicked.load(Ordering::Acquire) {
            self.wake.wait_for(&mut notified, timeout);
        }
        *notified = false;
    }

    /// Wakes a halted CPU to look at its interrupt line again (not a kick: `run` goes on).
    pub fn notify(&self) {
        *self.notified.lock() = true;
        self.wake.notify_all();
    }
}

/// The longest a halted CPU sleeps before looking at its interrupt line again (a device
/// on another thread normally wakes it sooner through [`SoftKicker::notify`]).
const MAX_HALT_SLEEP: Duration = Duration::from_millis(50);

pub struct SoftVcpu {
    interp: Interp,
    kicker: Arc<SoftKicker>,
    /// An application processor waits for a STARTUP IPI (after power-on or an INIT).
    waiting_for_sipi: bool,
    /// An application processor halted with interrupts off: only INIT resumes it.
    parked: bool,
    /// The translator, when there is one: asked before the interpreter at every boundary.
    engine: Option<Box<dyn crate::engine::ExecEngine>>,
    /// The interrupt chip's INTR flag for this CPU, read between instructions.
    intr: Option<Arc<AtomicBool>>,
    /// When the vCPU was made (for the statistics on drop).
    created: std::time::Instant,
}

impl SoftVcpu {
    /// A vCPU on `ram` and `platform`; `a20` is the platform's A20 gate, if it has one.
    pub fn new(
        id: u32,
        ram: GuestMemoryMmap,
        platform: Arc<dyn Platform>,
        a20: Option<Arc<std::sync::atomic::AtomicBool>>,
    ) -> Self {
        let mut mem = PhysMem::new(ram, platform);
        if let Some(gate) = a20 {
            mem = mem.with_a20(gate);
        }
        let mut interp = Interp::new(Cpu::from_state(&CpuState::reset()), mem);
        interp.apic_id = id;
        SoftVcpu {
            interp,
            kicker: Arc::new(SoftKicker::default()),
            waiting_for_sipi: id != 0,
            parked: false,
            engine: None,
            intr: None,
            created: std::time::Instant::now(),
        }
    }

    /// Makes this vCPU a `model` (CPUID identity and feature set); the default is `max`.
    pub fn with_model(mut self, model: &'static crate::cpu_model::CpuModel) -> Self {
        self.interp.model = model;
        self
    }

    /// Connects the platform's interrupt controller and timers (the boot CPU's INTR line).
    pub fn with_interrupts(mut self, irq: Arc<dyn Interrupts>) -> Self {
        self.intr = irq.intr_line();
        self.interp.irq = Some(irq);
        self
    }

    /// Joins the machine's vCPU group (shared code-page generations; with more than one
    /// vCPU, atomic LOCK'ed accesses and the exclusive gate).
    pub fn with_group(mut self, group: Arc<crate::interp::cpu_group::CpuGroup>) -> Self {
        self.interp.join(group);
        self
    }

    /// Runs guest code through `engine` where it can (the translator), the interpreter
    /// elsewhere.
    pub fn with_engine(mut self, engine: Box<dyn crate::engine::ExecEngine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// The kicker, concretely: a device thread uses [`SoftKicker::notify`] to wake the CPU.
    pub fn soft_kicker(&self) -> Arc<SoftKicker> {
        self.kicker.clone()
    }

    /// Takes a pending external interrupt if the CPU can (IF set, no STI/MOV SS shadow).
    fn take_interrupt(&mut self) -> Result<bool, Stop> {
        let Some(ic) = &self.interp.irq else {
            return Ok(false);
        };
        let pending = match &self.intr {
            Some(line) => line.load(Ordering::Acquire),
            None => ic.pending(),
        };
        if !pending || !self.interp.cpu.flag(flags::IF) || self.interp.interrupt_shadow {
            return Ok(false);
        }
        let vector = ic.acknowledge();
        self.interp.interrupt(vector)?;
        Ok(true)
    }

    /// HLT with interrupts enabled: sleeps until an interrupt is pending (a timer's deadline
    /// or a device's line) or the machine kicks the CPU. Returns whether it was kicked (or
    /// an INIT/STARTUP signal came: `run` must look at it).
    fn halt(&mut self) -> bool {
        // A halted CPU must not hold up another's exclusive instruction.
        self.interp.end_batch();
        let Some(ic) = self.interp.irq.clone() else {
            self.kicker.wait();
            return true;
        };
        loop {
            if self.kicker.take() || ic.startup_pending() {
                return true;
            }
            let next = ic.poll();
            if ic.pending() {
                self.interp.begin_batch();
                return false;
            }
            if let Some(t) = next {
                // The deterministic clock does not sleep: it jumps to the deadline.
                if ic.skip_idle_to(t) {
                    continue;
                }
            }
            let now = ic.now_ns();
            let wait = next.map_or(MAX_HALT_SLEEP, |t| {
                Duration::from_nanos(t.saturating_sub(now)).min(MAX_HALT_SLEEP)
            });
            self.kicker.sleep(wait);
        }
    }

    /// HLT with interrupts disabled on an application processor: sleeps until the machine
    /// kicks it or an INIT/STARTUP signal comes (NMIs are not delivered).
    /// Returns whether it was kicked (`run` must return to the vCPU loop).
    fn park(&mut self) -> bool {
        self.interp.end_batch();
        let Some(ic) = self.interp.irq.clone() else {
            return false;
        };
        while !ic.startup_pending() {
            if self.kicker.take() {
                return true;
            }
            self.kicker.sleep(MAX_HALT_SLEEP);
        }
        false
    }

    /// Takes the INIT and STARTUP signals sent to this CPU, in order.
    fn take_startup_signals(&mut self) {
        let Some(ic) = self.interp.irq.clone() else {
            return;
        };
        while let Some(signal) = ic.take_startup() {
            match signal {
                crate::Startup::Init => self.init(),
                crate::Startup::Sipi(vector) if self.waiting_for_sipi => self.start_at(vector),
                // A CPU that is not waiting ignores STARTUP.
                crate::Startup::Sipi(_) => {}
            }
        }
    }

    /// INIT: the reset state with MSRs and x87/SSE state kept (SDM 9.1.1); an application
    /// processor then waits for STARTUP, the boot CPU starts at the reset vector.
    fn init(&mut self) {
        self.parked = false;
        self.load(&CpuState::reset());
        self.waiting_for_sipi = self.interp.apic_id != 0;
    }

    /// STARTUP with `vector`: real mode at `vector << 12` (CS = vector << 8, IP = 0).
    fn start_at(&mut self, vector: u8) {
        let mut s = CpuState::reset();
        s.cs = crate::Segment::real_mode(u16::from(vector) << 8, true);
        s.rip = 0;
        self.load(&s);
        self.waiting_for_sipi = false;
    }

    /// Loads `state`, keeping what INIT and SIPI keep (MSRs, x87/SSE state).
    fn load(&mut self, state: &CpuState) {
        let msr = self.interp.cpu.msr.clone();
        let fpu = self.interp.cpu.fpu.clone();
        self.interp.cpu = Cpu::from_state(state);
        self.interp.cpu.msr = msr;
        self.interp.cpu.fpu = fpu;
        self.interp.mmu.flush_all();
        self.interp.interrupt_shadow = false;
    }

    pub fn stats(&self) -> &crate::interp::Stats {
        &self.interp.stats
    }
}

impl Vcpu for SoftVcpu {
    fn set_state(&mut self, state: &CpuState) -> Result<(), VcpuError> {
        let keep = self.interp.cpu.msr.clone();
        self.interp.cpu = Cpu::from_state(state);
        self.interp.cpu.msr = keep;
        self.interp.mmu.flush_all();
        self.waiting_for_sipi = false;
        Ok(())
    }

    fn state(&self) -> Result<CpuState, VcpuError> {
        Ok(self.interp.cpu.to_state())
    }

    fn run(&mut self) -> Result<VcpuExit, VcpuError> {
        loop {
            if self.kicker.take() {
                return Ok(VcpuExit::Interrupted);
            }
            self.take_startup_signals();
            if self.parked {
                // Back to sleep after a kick: nothing but INIT ends the park.
                if self.park() {
                    return Ok(VcpuExit::Interrupted);
                }
                continue;
            }
            if self.waiting_for_sipi {
                match &self.interp.irq {
                    // The chip's waker notifies the kicker when a signal comes.
                    Some(ic) if !ic.startup_pending() => self.kicker.sleep(MAX_HALT_SLEEP),
                    Some(_) => {}
                    // Nothing can start this CPU: sleep until the machine kicks it.
                    None => self.kicker.wait(),
                }
                continue;
            }
            if let Some(ic) = &self.interp.irq {
                ic.poll();
            }
            let before = self.interp.stats.instructions;
            let batch = self.run_batch();
            if let Some(ic) = &self.interp.irq {
                ic.retired(self.interp.stats.instructions - before);
            }
            match batch {
                Ok(None) => {}
                Ok(Some(exit)) => return Ok(exit),
                Err(e) => return Err(e),
            }
        }
    }

    fn kicker(&self) -> Arc<dyn VcpuKicker> {
        self.kicker.clone()
    }
}

impl SoftVcpu {
    /// Up to [`BATCH`] instructions (and the interrupts that arrive meanwhile); `Some` when
    /// the vCPU must leave `run`.
    fn run_batch(&mut self) -> Result<Option<VcpuExit>, VcpuError> {
        self.interp.begin_batch();
        let r = self.run_batch_held();
        self.interp.end_batch();
        r
    }

    fn run_batch_held(&mut self) -> Result<Option<VcpuExit>, VcpuError> {
        {
            let mut left = if self.engine.is_some() {
                ENGINE_BATCH
            } else {
                BATCH
            };
            while left > 0 {
                // Instructions this round retired (at least one: an interrupt's delivery
                // counts as one).
                let mut retired = 1;
                let stepped = match self.take_interrupt() {
                    Ok(true) => Ok(()),
                    Ok(false) => match &mut self.engine {
                        Some(engine) => match engine.run(&mut self.interp, left) {
                            Ok(0) => self.interp.step(),
                            Ok(n) => {
                                retired = n;
                                Ok(())
                            }
                            Err(Stop::Fault(f)) => {
                                self.interp.stats.exceptions += 1;
                                self.interp.raise(f)
                            }
                            Err(e) => Err(e),
                        },
                        None => self.interp.step(),
                    },
                    Err(e) => Err(e),
                };
                left = left.saturating_sub(retired);
                match stepped {
                    Ok(()) => {}
                    Err(Stop::Halt) => {
                        if !self.interp.cpu.flag(flags::IF) {
                            // An application processor parks so (Linux stops CPUs with CLI;
                            // HLT): only INIT wakes it. The boot CPU doing it ends the run.
                            if self.interp.apic_id != 0 && self.interp.irq.is_some() {
                                self.parked = true;
                                // Kicked or signalled, `run` looks at why next.
                                let _ = self.park();
                                return Ok(Some(VcpuExit::Interrupted));
                            }
                            return Ok(Some(VcpuExit::Halted));
                        }
                        if self.halt() {
                            return Ok(Some(VcpuExit::Interrupted));
                        }
                    }
                    Err(Stop::Shutdown) => return Ok(Some(VcpuExit::Shutdown)),
                    Err(Stop::Fault(f)) | Err(Stop::Trap(f)) => {
                        // `step` delivers faults itself; one escaping is a bug worth naming.
                        return Err(VcpuError::Unhandled(format!("undelivered {f:?}")));
                    }
                }
            }
        }
        Ok(None)
    }
}

impl Drop for SoftVcpu {
    /// What the vCPU did, for `RUST_LOG=ferrite::stats=info` (speed work reads this).
    fn drop(&mut self) {
        if let Some(engine) = &self.engine {
            log::info!(target: "ferrite::stats", "vCPU {}: {}", self.interp.apic_id, engine.summary());
        }
        let s = &self.interp.stats;
        let secs = self.created.elapsed().as_secs_f64();
        log::info!(
            target: "ferrite::stats",
            "vCPU {}: {} instructions in {secs:.1} s ({:.1} M/s), {} decode-cache misses, {} exceptions, {} interrupts",
            self.interp.apic_id,
            s.instructions,
            s.instructions as f64 / secs.max(1e-9) / 1e6,
            s.decode_cache_misses,
            s.exceptions,
            s.interrupts
        );
    }
}
