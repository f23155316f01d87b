//! The PC board: guest RAM, the I/O buses and their devices, interrupt routing, vCPU threads,
//! accelerator selection and the VM lifecycle.
//!
//! A [`Vm`] is built from a [`VmConfig`]; [`Vm::run`] starts one thread per vCPU and returns the
//! [`ExitReason`] once the guest powers off, resets, hits the debug-exit port or fails. A
//! [`VmHandle`] pauses, resumes and stops it from another thread.

pub mod accel;
pub mod config;
pub mod control;
pub mod firmware;
pub mod io;
pub mod kvm;
pub mod memory;
pub mod soft_irq;
pub mod vm;

pub use accel::{Accel, KvmKind};
pub use config::{DebugConConfig, DebugExitConfig, SerialOutput, VmConfig};
pub use control::{ExitReason, VmControl};
pub use emu_core::CpuModel;

/// QEMU's names of the CPU features `-cpu MODEL,+name,-name` can change.
pub fn cpu_feature_names() -> impl Iterator<Item = &'static str> {
    emu_core::cpu_model::FEATURE_NAMES.iter().map(|f| f.0)
}

/// Every CPU model `-cpu` accepts.
pub fn cpu_models() -> &'static [&'static CpuModel] {
    &emu_core::cpu_model::MODELS
}
pub use vm::{SerialInput, Vm, VmHandle};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("guest memory: {0}")]
    Memory(String),
    #[error(transparent)]
    Boot(#[from] bios::Error),
    #[error("KVM: {0}")]
    Kvm(String),
    #[error("{0}")]
    Accel(String),
    #[error("device setup: {0}")]
    Device(String),
    #[error("starting a vCPU thread failed: {0}")]
    Thread(std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
