//! One KVM vCPU and its run loop.

use std::sync::Arc;

use emu_core::{CpuState, Platform, Vcpu, VcpuError, VcpuExit, VcpuKicker};
use kvm_bindings::{
    kvm_cpuid_entry2, kvm_fpu, CpuId, KVM_MAX_CPUID_ENTRIES, KVM_SYSTEM_EVENT_RESET,
    KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{Kvm, VcpuExit as KvmExit, VcpuFd, VmFd};

use super::kick::{install_handler, KvmKicker};
use super::regs;
use crate::{Error, Result};

/// Local APIC register offsets and LVT delivery modes, for the virtual-wire setup.
const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_EXTINT: u32 = 0x7;
const APIC_MODE_NMI: u32 = 0x4;

pub struct KvmVcpu {
    fd: VcpuFd,
    id: u32,
    platform: Arc<dyn Platform>,
    kicker: Arc<KvmKicker>,
    bound: bool,
}

fn set_lvt_mode(lapic: &mut kvm_bindings::kvm_lapic_state, reg: usize, mode: u32) {
    let mut raw = [0u8; 4];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = lapic.regs[reg + i] as u8;
    }
    let v = (u32::from_le_bytes(raw) & !0x700) | (mode << 8);
    for (i, b) in v.to_le_bytes().iter().enumerate() {
        lapic.regs[reg + i] = *b as _;
    }
}

/// Appends Ferrite's signature and feature leaves (see `emu_core::paravirt`).
fn add_ferrite_leaves(cpuid: &mut CpuId, pvm: bool) -> std::result::Result<(), String> {
    use emu_core::paravirt::{self, features};
    let (ebx, ecx, edx) = paravirt::signature_registers();
    let leaves = [
        (
            paravirt::FERRITE_CPUID_BASE,
            paravirt::FERRITE_CPUID_FEATURES,
            ebx,
            ecx,
            edx,
        ),
        (
            paravirt::FERRITE_CPUID_FEATURES,
            if pvm { features::PVM } else { 0 },
            0,
            0,
            0,
        ),
    ];
    for (function, eax, ebx, ecx, edx) in leaves {
        cpuid
            .push(kvm_cpuid_entry2 {
                function,
                eax,
                ebx,
                ecx,
                edx,
                ..Default::default()
            })
            .map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}

impl KvmVcpu {
    pub(super) fn new(
        kvm: &Kvm,
        vm: &VmFd,
        id: u32,
        platform: Arc<dyn Platform>,
        pvm: bool,
    ) -> Result<Self> {
        let err = |what: &'static str| {
            move |e: kvm_ioctls::Error| Error::Kvm(format!("vCPU {id}: {what}: {e}"))
        };
        let fd = vm.create_vcpu(u64::from(id)).map_err(err("create"))?;
        let mut cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(err("KVM_GET_SUPPORTED_CPUID"))?;
        for e in cpuid.as_mut_slice() {
            match e.function {
                // Initial APIC ID in EBX[31:24].
                1 => e.ebx = (e.ebx & 0x00ff_ffff) | (id << 24),
                // x2APIC ID of this logical processor.
                0xb | 0x1f => e.edx = id,
                _ => {}
            }
        }
        add_ferrite_leaves(&mut cpuid, pvm)
            .map_err(|e| Error::Kvm(format!("vCPU {id}: CPUID: {e}")))?;
        fd.set_cpuid2(&cpuid).map_err(err("KVM_SET_CPUID2"))?;
        let fpu = kvm_fpu {
            fcw: 0x37f,
            mxcsr: 0x1f80,
            ..Default::default()
        };
        fd.set_fpu(&fpu).map_err(err("KVM_SET_FPU"))?;
        // Virtual-wire mode: the PIC's INTR reaches the BSP through LINT0, NMI through LINT1.
        match fd.get_lapic() {
            Ok(mut lapic) => {
                set_lvt_mode(&mut lapic, APIC_LVT0, APIC_MODE_EXTINT);
                set_lvt_mode(&mut lapic, APIC_LVT1, APIC_MODE_NMI);
                fd.set_lapic(&lapic).map_err(err("KVM_SET_LAPIC"))?;
            }
            Err(e) => log::debug!("vCPU {id}: KVM_GET_LAPIC: {e} (LINT setup skipped)"),
        }
        install_handler();
        Ok(KvmVcpu {
            fd,
            id,
            platform,
            kicker: Arc::new(KvmKicker::default()),
            bound: false,
        })
    }
}

/// Serves an exit on the platform's buses; returns what the machine must see, if anything.
fn exit_from(
    platform: &dyn Platform,
    exit: KvmExit<'_>,
) -> std::result::Result<Option<VcpuExit>, VcpuError> {
    {
        match exit {
            KvmExit::IoIn(port, data) => platform.pio_read(port, data),
            KvmExit::IoOut(port, data) => platform.pio_write(port, data),
            KvmExit::MmioRead(addr, data) => platform.mmio_read(addr, data),
            KvmExit::MmioWrite(addr, data) => platform.mmio_write(addr, data),
            KvmExit::Hlt => return Ok(Some(VcpuExit::Halted)),
            KvmExit::Shutdown => return Ok(Some(VcpuExit::Shutdown)),
            KvmExit::Intr => return Ok(Some(VcpuExit::Interrupted)),
            KvmExit::SystemEvent(kind, _) => {
                return Ok(Some(match kind {
                    KVM_SYSTEM_EVENT_RESET => VcpuExit::Reset,
                    KVM_SYSTEM_EVENT_SHUTDOWN => VcpuExit::Poweroff,
                    other => return Err(VcpuError::Unhandled(format!("KVM system event {other}"))),
                }))
            }
            KvmExit::FailEntry(reason, cpu) => {
                return Err(VcpuError::Run(format!(
                    "VM entry failed (hardware reason {reason:#x}, cpu {cpu})"
                )))
            }
            KvmExit::InternalError => {
                return Err(VcpuError::Run(
                    "KVM internal error (emulation failure)".into(),
                ))
            }
            other => return Err(VcpuError::Unhandled(format!("KVM exit {other:?}"))),
        }
        Ok(None)
    }
}

impl Vcpu for KvmVcpu {
    fn set_state(&mut self, s: &CpuState) -> std::result::Result<(), VcpuError> {
        let e = |e: kvm_ioctls::Error| VcpuError::SetState(e.to_string());
        let mut sregs = self.fd.get_sregs().map_err(e)?;
        regs::apply_sregs(s, &mut sregs);
        self.fd.set_sregs(&sregs).map_err(e)?;
        self.fd.set_regs(&regs::to_kvm_regs(s)).map_err(e)
    }

    fn state(&self) -> std::result::Result<CpuState, VcpuError> {
        let e = |e: kvm_ioctls::Error| VcpuError::GetState(e.to_string());
        let r = self.fd.get_regs().map_err(e)?;
        let s = self.fd.get_sregs().map_err(e)?;
        Ok(regs::from_kvm(&r, &s))
    }

    fn run(&mut self) -> std::result::Result<VcpuExit, VcpuError> {
        if !self.bound {
            self.kicker.bind_current_thread();
            self.bound = true;
        }
        loop {
            if self.kicker.take() {
                return Ok(VcpuExit::Interrupted);
            }
            match self.fd.run() {
                Ok(exit) => {
                    if let Some(e) = exit_from(self.platform.as_ref(), exit)? {
                        return Ok(e);
                    }
                }
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    self.fd.set_kvm_immediate_exit(0);
                    return Ok(VcpuExit::Interrupted);
                }
                Err(e) => return Err(VcpuError::Run(format!("vCPU {}: KVM_RUN: {e}", self.id))),
            }
        }
    }

    fn kicker(&self) -> Arc<dyn VcpuKicker> {
        self.kicker.clone()
    }
}

impl Drop for KvmVcpu {
    fn drop(&mut self) {
        self.kicker.unbind();
    }
}
