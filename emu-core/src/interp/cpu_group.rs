//! What the vCPUs of one machine share: the code-page generations (so a store by one drops
//! the others' stale decodes) and a gate for the instructions that must run alone.
//!
//! The gate is QEMU's "exclusive" section: every vCPU holds it shared while it runs a batch
//! of instructions (never while halted or outside `run`), and an atomic access the host
//! cannot do as one compare-and-swap (a LOCK'ed access split across cache lines or pages,
//! CMPXCHG16B, a locked access to MMIO) takes it exclusively, so the other vCPUs stand at
//! their batch boundaries until it is done.

use std::sync::Arc;

use parking_lot::{lock_api::ArcRwLockReadGuard, RawRwLock, RwLock};
use vm_memory::GuestMemoryMmap;

use super::code_pages::CodePages;

/// A vCPU's shared hold on the gate while it runs a batch.
pub type RunGuard = ArcRwLockReadGuard<RawRwLock, ()>;

pub struct CpuGroup {
    pub(crate) code: CodePages,
    cpus: usize,
    gate: Arc<RwLock<()>>,
}

impl CpuGroup {
    /// The group of `cpus` vCPUs on `ram`.
    pub fn new(ram: &GuestMemoryMmap, cpus: usize) -> Self {
        CpuGroup {
            code: CodePages::new(ram),
            cpus,
            gate: Arc::new(RwLock::new(())),
        }
    }

    /// Whether other vCPUs may run at the same time (LOCK'ed accesses must then be atomic
    /// on the host).
    pub fn is_smp(&self) -> bool {
        self.cpus > 1
    }

    /// The shared hold a vCPU keeps while it runs instructions.
    pub fn enter(&self) -> RunGuard {
        self.gate.read_arc()
    }

    /// Runs `f` with every other vCPU of the group stopped between instructions. The caller
    /// must have given up its own [`RunGuard`] first.
    pub fn exclusive<T>(&self, f: impl FnOnce() -> T) -> T {
        let _alone = self.gate.write();
        f()
    }
}
