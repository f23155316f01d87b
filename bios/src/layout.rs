//! Where boot data lives in low guest memory.
//!
//! Everything sits in conventional memory below the EBDA, away from where kernels load
//! (1 MiB and up) and from the real-mode IVT/BDA (0–0x4ff).

/// The boot GDT (see [`boot_cpu`](crate::boot_cpu)).
pub const GDT: u64 = 0x500;
/// An empty IDT: until the kernel installs its own, any exception is a triple fault.
pub const IDT: u64 = 0x580;
/// Multiboot info / PVH start info and their tables and strings (4 KiB).
pub const BOOT_INFO: u64 = 0x6000;
pub const BOOT_INFO_SIZE: u64 = 0x1000;
/// Linux's zero page (`struct boot_params`).
pub const ZERO_PAGE: u64 = 0x7000;
/// Identity-mapping page tables for a 64-bit entry: PML4, PDPT, and four page directories.
pub const PML4: u64 = 0x9000;
pub const PDPT: u64 = 0xa000;
pub const PD: u64 = 0xb000;
/// Stack for 32-bit entry points that want one (below the page tables).
pub const BOOT_STACK_TOP: u64 = 0x8ff0;
/// Kernel command line (Linux accepts up to 2 KiB on x86; we allow 64 KiB for others).
pub const CMDLINE: u64 = 0x20000;
pub const CMDLINE_MAX: usize = 0x10000;
/// Start of the extended BIOS data area; conventional RAM ends here.
pub const EBDA: u64 = 0x9fc00;
/// The BIOS area that stays reserved (system ROM).
pub const BIOS_ROM: u64 = 0xf0000;
pub const HIGH_MEMORY: u64 = 0x10_0000;
