//! Conformance and system tests for Ferrite.
//!
//! [`kit`] generates small guest kernels with iced-x86's assembler (no external toolchain);
//! [`kernels`] holds the kernels themselves; [`harness`] runs one on a [`machine::Vm`] and
//! collects its serial output and exit reason.

pub mod catalog;
pub mod difftest;
pub mod harness;
pub mod kernels;
pub mod kit;
