//! Firmware and boot: how a guest kernel gets into RAM and what it finds there.
//!
//! [`load_kernel`] recognises the image (Linux bzImage, Multiboot v1, ELF with a PVH note, as
//! QEMU's `-kernel` does), loads it with its initrd/modules and command line, writes the boot
//! information the protocol defines (boot_params, Multiboot info, hvm_start_info, each with an
//! E820-style memory map) and returns the CPU state for the entry point.

pub mod acpi;
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
    // QEMU's order: a Linux setup header, then a Multiboot header (Multiboot kernels may be
    // ELF files too), then an ELF with a PVH entry note.
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

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    fn mem() -> (GuestMemoryMmap, MemoryMap) {
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
        (
            m,
            MemoryMap {
                low_end: 16 << 20,
                high_size: 0,
            },
        )
    }

    fn load_bytes(name: &str, bytes: &[u8]) -> Result<BootInfo> {
        let path = std::env::temp_dir().join(format!("ferrite-bios-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let (m, map) = mem();
        let cfg = KernelConfig {
            kernel: path.clone(),
            ..Default::default()
        };
        let r = load_kernel(&m, &map, &cfg);
        std::fs::remove_file(path).ok();
        r
    }

    #[test]
    fn missing_garbage_and_truncated_kernels_are_named_errors() {
        let (m, map) = mem();
        let missing = KernelConfig {
            kernel: "/nonexistent/kernel".into(),
            ..Default::default()
        };
        let e = load_kernel(&m, &map, &missing).unwrap_err().to_string();
        assert!(
            e.contains("could not load kernel '/nonexistent/kernel'"),
            "{e}"
        );

        let e = load_bytes("garbage", &[0x5a; 4096])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a Linux bzImage, Multiboot kernel or PVH ELF image"),
            "{e}"
        );
        assert!(load_bytes("empty", &[]).is_err());

        // A bzImage header whose payload is missing, and one with a bad protocol version.
        let mut bz = vec![0u8; 0x300];
        bz[0x1f1] = 1;
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        bz[0x211] = 1;
        bz[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
        let e = load_bytes("truncated-bz", &bz).unwrap_err().to_string();
        assert!(e.starts_with("could not load kernel"), "{e}");
        bz[0x206..0x208].copy_from_slice(&0x0100u16.to_le_bytes());
        assert!(load_bytes("old-bz", &bz).is_err());

        // An ELF file with neither PVH nor Multiboot.
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        let e = load_bytes("plain-elf", &elf).unwrap_err().to_string();
        assert!(e.starts_with("could not load kernel"), "{e}");
    }

    #[test]
    fn truncated_prefixes_of_a_multiboot_kernel_never_panic() {
        let flags = 1u32 << 16;
        let mut k = Vec::new();
        for v in [
            multiboot::HEADER_MAGIC,
            flags,
            0u32.wrapping_sub(multiboot::HEADER_MAGIC.wrapping_add(flags)),
            0x10_0000,
            0x10_0000,
            0x10_0100,
            0x10_0200,
            0x10_0020,
        ] {
            k.extend_from_slice(&v.to_le_bytes());
        }
        k.resize(0x100, 0x90);
        for n in 0..k.len() {
            let _ = load_bytes("prefix", &k[..n]);
        }
        assert!(load_bytes("whole", &k).is_ok());
    }
}
