//! The VM's run state, shared by the vCPU threads, the devices and whoever controls the VM.
//!
//! Devices request a stop (debug-exit, reset, power-off) through [`SystemControl`]; other
//! threads pause, resume and stop. Every change kicks the vCPUs out of their backends so they
//! reach [`VmControl::checkpoint`], where a paused vCPU sleeps and a stopping one leaves.

use std::sync::Arc;
use std::time::Duration;

use devices::{SystemControl, SystemEvent};
use emu_core::VcpuKicker;
use parking_lot::{Condvar, Mutex};

/// Why a VM stopped running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest powered off (ACPI, or KVM's system event).
    Poweroff,
    /// The guest asked for a reset (i8042, port 0xCF9, …).
    Reset,
    /// Triple fault: the CPU shut down (a PC resets).
    TripleFault,
    /// The guest wrote `value` to isa-debug-exit.
    DebugExit(u32),
    /// Stopped from the host (Ctrl-A x, SIGTERM, a management command).
    Stopped,
    /// A vCPU could not continue.
    Error(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunState {
    Running,
    Paused,
    Stopping,
}

/// What a vCPU thread should do at a checkpoint.
#[derive(Debug, PartialEq, Eq)]
pub enum Checkpoint {
    Run,
    Exit,
}

struct Inner {
    state: RunState,
    reason: Option<ExitReason>,
    /// vCPUs currently parked at a checkpoint because of a pause.
    parked: usize,
}

pub struct VmControl {
    inner: Mutex<Inner>,
    changed: Condvar,
    kickers: Mutex<Vec<Arc<dyn VcpuKicker>>>,
}

impl Default for VmControl {
    fn default() -> Self {
        VmControl {
            inner: Mutex::new(Inner {
                state: RunState::Running,
                reason: None,
                parked: 0,
            }),
            changed: Condvar::new(),
            kickers: Mutex::new(Vec::new()),
        }
    }
}

impl VmControl {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_kicker(&self, k: Arc<dyn VcpuKicker>) {
        self.kickers.lock().push(k);
    }

    pub fn kick_all(&self) {
        for k in self.kickers.lock().iter() {
            k.kick();
        }
    }

    /// Ends the VM; the first reason given wins.
    pub fn stop(&self, reason: ExitReason) {
        {
            let mut g = self.inner.lock();
            if g.reason.is_none() {
                log::debug!("VM stopping: {reason:?}");
                g.reason = Some(reason);
            }
            g.state = RunState::Stopping;
        }
        self.changed.notify_all();
        self.kick_all();
    }

    /// Pauses all vCPUs and returns once every one of the `vcpus` running is parked (or the
    /// VM stopped meanwhile).
    pub fn pause(&self, vcpus: usize) {
        {
            let mut g = self.inner.lock();
            if g.state != RunState::Running {
                return;
            }
            g.state = RunState::Paused;
        }
        // A kick that lands just before a vCPU enters the backend can be missed; kick again
        // until all vCPUs have parked.
        loop {
            self.kick_all();
            let mut g = self.inner.lock();
            if g.parked >= vcpus || g.state != RunState::Paused {
                return;
            }
            self.changed.wait_for(&mut g, Duration::from_millis(10));
            if g.parked >= vcpus || g.state != RunState::Paused {
                return;
            }
        }
    }

    pub fn resume(&self) {
        {
            let mut g = self.inner.lock();
            if g.state == RunState::Paused {
                g.state = RunState::Running;
            }
        }
        self.changed.notify_all();
    }

    pub fn is_paused(&self) -> bool {
        self.inner.lock().state == RunState::Paused
    }

    /// Called by a vCPU thread between backend runs: sleeps while paused.
    pub fn checkpoint(&self) -> Checkpoint {
        let mut g = self.inner.lock();
        if g.state == RunState::Paused {
            g.parked += 1;
            self.changed.notify_all();
            while g.state == RunState::Paused {
                self.changed.wait(&mut g);
            }
            g.parked -= 1;
        }
        match g.state {
            RunState::Stopping => Checkpoint::Exit,
            _ => Checkpoint::Run,
        }
    }

    /// Blocks until the VM stops; returns why.
    pub fn wait_for_exit(&self) -> ExitReason {
        let mut g = self.inner.lock();
        loop {
            if let Some(r) = &g.reason {
                return r.clone();
            }
            self.changed.wait(&mut g);
        }
    }

    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.inner.lock().reason.clone()
    }
}

impl SystemControl for VmControl {
    fn request(&self, event: SystemEvent) {
        self.stop(match event {
            SystemEvent::Reset => ExitReason::Reset,
            SystemEvent::Poweroff => ExitReason::Poweroff,
            SystemEvent::DebugExit(v) => ExitReason::DebugExit(v),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct CountKicks(AtomicUsize);
    impl VcpuKicker for CountKicks {
        fn kick(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn first_stop_reason_wins_and_kicks() {
        let c = VmControl::new();
        let k = Arc::new(CountKicks::default());
        c.add_kicker(k.clone());
        c.request(SystemEvent::DebugExit(3));
        c.stop(ExitReason::Stopped);
        assert_eq!(c.wait_for_exit(), ExitReason::DebugExit(3));
        assert!(k.0.load(Ordering::Relaxed) >= 2);
        assert_eq!(c.checkpoint(), Checkpoint::Exit);
    }

    #[test]
    fn pause_parks_a_vcpu_until_resume() {
        let c = Arc::new(VmControl::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let t = {
            let (c, runs) = (c.clone(), runs.clone());
            std::thread::spawn(move || {
                while c.checkpoint() == Checkpoint::Run {
                    runs.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        c.pause(1);
        let frozen = runs.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(runs.load(Ordering::Relaxed), frozen);
        c.resume();
        std::thread::sleep(Duration::from_millis(30));
        assert!(runs.load(Ordering::Relaxed) > frozen);
        c.stop(ExitReason::Stopped);
        t.join().unwrap();
    }
}
