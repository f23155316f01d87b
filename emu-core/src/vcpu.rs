//! The contract between the machine and an execution backend (KVM or the software CPU).
//!
//! A backend handles port I/O and MMIO itself, synchronously, through the
//! [`Platform`](crate::Platform) it was built with, so devices never learn which backend drives
//! them. `run` returns only for what the machine must act on.

use crate::state::CpuState;

/// Why [`Vcpu::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuExit {
    /// [`VcpuKicker::kick`] was called (or a signal arrived): the machine wants control, for
    /// example to pause or stop. Calling `run` again resumes the guest.
    Interrupted,
    /// The guest executed HLT and no interrupt controller inside the backend will wake it.
    Halted,
    /// Triple fault, or another condition the architecture calls shutdown.
    Shutdown,
    /// The backend saw the guest ask for a reset it handles itself (e.g. KVM's system event).
    Reset,
    /// The backend saw the guest power off (e.g. KVM's system event).
    Poweroff,
}

/// A backend failure: the host could not continue running this vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("the backend rejected the CPU state: {0}")]
    SetState(String),
    #[error("reading the CPU state failed: {0}")]
    GetState(String),
    #[error("running the vCPU failed: {0}")]
    Run(String),
    #[error("the guest did something the backend cannot handle: {0}")]
    Unhandled(String),
}

/// One virtual CPU. It lives on its own thread; `run` blocks while the guest executes.
pub trait Vcpu: Send {
    /// Loads architectural state (used at boot and reset).
    fn set_state(&mut self, state: &CpuState) -> Result<(), VcpuError>;
    /// Reads the architectural state back.
    fn state(&self) -> Result<CpuState, VcpuError>;
    /// Runs the guest until something the machine must handle.
    fn run(&mut self) -> Result<VcpuExit, VcpuError>;
    /// A handle other threads use to make `run` return [`VcpuExit::Interrupted`].
    fn kicker(&self) -> std::sync::Arc<dyn VcpuKicker>;
}

/// Interrupts a running vCPU from another thread.
///
/// A kick is sticky: one that arrives while the vCPU is outside `run` makes the next `run`
/// return `Interrupted` at once (so a kick is never lost in the gap before re-entry).
pub trait VcpuKicker: Send + Sync {
    fn kick(&self);
}
