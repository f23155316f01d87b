//! Firmware and boot: how a guest kernel gets into RAM and what it finds there.
//!
//! [`load_kernel`] recognises the image (Linux bzImage, Multiboot v1, ELF with a PVH note, as
//! QEMU's `-kernel` does), loads it with its initrd/modules and command line, writes the boot
//! information the protocol defines (boot_params, Multiboot info, hvm_start_info, each with an
//! E820-style memory map) and returns the CPU state for the entry point.

pub mod boot_cpu;
pub mod e820;
pub mod elf;
pub mod layout;
pub mod linux;
pub mod mptable;
pub mod multiboot;
pub mod pvh;

use std::path::{Path, PathBuf};

use emu_core::CpuState;
use vm_memory::GuestMemoryMmap;

pub use e820::{E820Entry, E820Type, MemoryMap};

/// What to boot.
#[derive(Clone, Debug, Default)]
pub struct KernelConfig {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
}

/// The boot protocol a kernel image was recognised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootProtocol {
    Linux64,
    Linux32,
    Multiboot,
    Pvh,
}

#[derive(Debug)]
pub struct BootInfo {
    pub protocol: BootProtocol,
    /// State of the boot processor at the entry point.
    pub cpu: CpuState,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not load kernel '{path}': {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not load kernel '{0}': not a Linux bzImage, Multiboot kernel or PVH ELF image")]
    UnknownFormat(PathBuf),
    #[error("could not load kernel '{path}': {why}")]
    BadKernel { path: PathBuf, why: String },
    #[error("could not load initrd/module '{path}': {why}")]
    BadInitrd { path: PathBuf, why: String },
    #[error("kernel command line is too long ({len} bytes, the kernel accepts {max})")]
    CmdlineTooLong { len: usize, max: usize },
    #[error("guest memory too small: {0}")]
    NoRoom(String),
    #[error("writing boot data to guest memory failed: {0}")]
    Memory(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })
}

/// Loads the kernel named in `cfg` into `mem` and prepares its boot information.
pub fn load_kernel(mem: &GuestMemoryMmap, map: &MemoryMap, cfg: &KernelConfig) -> Result<BootInfo> {
    let image = read_file(&cfg.kernel)?;
    if linux::is_bzimage(&image) {
        return linux::load(mem, map, cfg, &image);
    }
    if let Some(header) = multiboot::find_header(&image) {
        return multiboot::load(mem, map, cfg, &image, &header);
    }
    if elf::is_elf(&image) {
        return pvh::load(mem, map, cfg, &image);
    }
    Err(Error::UnknownFormat(cfg.kernel.clone()))
}

pub(crate) fn mem_err(e: impl std::fmt::Display) -> Error {
    Error::Memory(e.to_string())
}
