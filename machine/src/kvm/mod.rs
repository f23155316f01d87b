//! The KVM backend: a VM with the in-kernel irqchip and PIT, guest RAM as memory slots, and
//! vCPUs that turn I/O and MMIO exits into calls on the same buses the software CPU uses.

mod irq_routing;
mod kick;
mod regs;
mod vcpu;

use std::sync::Arc;

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

pub use kick::KvmKicker;
pub use vcpu::KvmVcpu;

use crate::{Error, Result};

fn kvm_err(what: &str) -> impl Fn(kvm_ioctls::Error) -> Error + '_ {
    move |e| Error::Kvm(format!("{what}: {e}"))
}

/// An address the guest never uses, below the BIOS flash: KVM on Intel needs three pages for
/// the real-mode TSS and one for the identity map when unrestricted guest is unavailable.
const TSS_ADDRESS: usize = 0xfffb_d000;
const IDENTITY_MAP_ADDRESS: u64 = 0xfffb_c000;

pub struct KvmVm {
    kvm: Kvm,
    vm: Arc<VmFd>,
    /// KVM is PVM: guests are told through Ferrite's CPUID feature leaf.
    pvm: bool,
}

impl KvmVm {
    pub fn new(mem: &GuestMemoryMmap) -> Result<Self> {
        let kvm = Kvm::new().map_err(kvm_err("open /dev/kvm"))?;
        let vm = kvm.create_vm().map_err(kvm_err("create VM"))?;
        if let Err(e) = vm.set_identity_map_address(IDENTITY_MAP_ADDRESS) {
            log::debug!("KVM_SET_IDENTITY_MAP_ADDR: {e} (ignored)");
        }
        if let Err(e) = vm.set_tss_address(TSS_ADDRESS) {
            log::debug!("KVM_SET_TSS_ADDR: {e} (ignored)");
        }
        vm.create_irq_chip()
            .map_err(kvm_err("create in-kernel irqchip"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        vm.create_pit2(pit)
            .map_err(kvm_err("create in-kernel PIT"))?;
        irq_routing::set(&vm)?;
        for (slot, region) in mem.iter().enumerate() {
            let host = mem
                .get_host_address(region.start_addr())
                .map_err(|e| Error::Kvm(format!("guest region has no host mapping: {e}")))?;
            let r = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: the region is a live mapping owned by `mem`, which the Vm keeps alive
            // for as long as the VM fd (and so the slot) exists; it does not overlap another
            // slot because vm-memory regions are disjoint.
            unsafe { vm.set_user_memory_region(r) }.map_err(kvm_err("map guest memory"))?;
        }
        let pvm = matches!(
            crate::accel::probe_kvm(),
            crate::accel::KvmKind::Paravirtual(_)
        );
        Ok(KvmVm {
            kvm,
            vm: Arc::new(vm),
            pvm,
        })
    }

    /// Creates vCPU `id` with the host-supported CPUID, its APIC ID patched in.
    pub fn create_vcpu(&self, id: u32, platform: Arc<dyn emu_core::Platform>) -> Result<KvmVcpu> {
        KvmVcpu::new(&self.kvm, &self.vm, id, platform, self.pvm)
    }

    /// The line for GSI `gsi` of the in-kernel PIC/IOAPIC.
    pub fn irq_line(&self, gsi: u32) -> Arc<dyn devices::IrqLine> {
        Arc::new(KvmIrqLine {
            vm: self.vm.clone(),
            gsi,
        })
    }
}

struct KvmIrqLine {
    vm: Arc<VmFd>,
    gsi: u32,
}

impl devices::IrqLine for KvmIrqLine {
    fn set_level(&self, high: bool) {
        if let Err(e) = self.vm.set_irq_line(self.gsi, high) {
            log::warn!("KVM_IRQ_LINE {} failed: {e}", self.gsi);
        }
    }
}
