//! The guest CPU, independent of how it is executed.
//!
//! This crate owns the architectural state every backend shares ([`state`]), the trait a CPU
//! uses to reach the platform's buses ([`platform`]) and the trait every execution backend
//! implements ([`vcpu`]). The interpreter (and the software CPU built on it) will live here too;
//! the KVM backend lives in `machine` and implements the same [`vcpu::Vcpu`] trait.

pub mod cpu_model;
pub mod engine;
pub mod interp;
pub mod interrupts;
pub mod paravirt;
pub mod platform;
pub mod soft_vcpu;
pub mod state;
pub mod vcpu;

pub use cpu_model::CpuModel;
pub use interrupts::{Interrupts, Startup};
pub use platform::Platform;
pub use soft_vcpu::SoftVcpu;
pub use state::{CpuState, DescriptorTable, Segment};
pub use vcpu::{Vcpu, VcpuError, VcpuExit, VcpuKicker};
