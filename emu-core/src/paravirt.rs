//! Ferrite's paravirtual identification, as guests see it through CPUID.
//!
//! Ferrite's leaves sit at the first 0x100-aligned hypervisor leaf that is free: under KVM,
//! 0x40000000 belongs to KVM's own paravirtual interface, so Ferrite uses 0x40000100.
//!
//! * `FERRITE_CPUID_BASE`: EAX = the highest Ferrite leaf; EBX, ECX, EDX = "FerriteVMM\0\0".
//! * `FERRITE_CPUID_BASE + 1`: EAX = feature bits ([`features`]); EBX, ECX, EDX reserved (0).

pub const FERRITE_CPUID_BASE: u32 = 0x4000_0100;
pub const FERRITE_CPUID_FEATURES: u32 = FERRITE_CPUID_BASE + 1;
pub const FERRITE_SIGNATURE: [u8; 12] = *b"FerriteVMM\0\0";

pub mod features {
    /// The vCPU runs on PVM (KVM without hardware virtualization), which differs from x86 in
    /// ways a test guest must know: paging must be 4-level (CR0.PG faults with 32-bit or PAE
    /// paging), `INT n` from user mode arrives as #UD, the SYSCALL target runs at CPL 3, user
    /// mode ignores IOPL, and real-mode `INT n` does not complete. Exceptions from user mode
    /// are delivered through the IDT as usual.
    pub const PVM: u32 = 1 << 0;
}

/// (EBX, ECX, EDX) of the signature leaf.
pub fn signature_registers() -> (u32, u32, u32) {
    let w = |i: usize| {
        u32::from_le_bytes([
            FERRITE_SIGNATURE[i],
            FERRITE_SIGNATURE[i + 1],
            FERRITE_SIGNATURE[i + 2],
            FERRITE_SIGNATURE[i + 3],
        ])
    };
    (w(0), w(4), w(8))
}
