//! `-bios FILE`: a firmware image in place of the kernel loader, as on a real PC.
//!
//! The image occupies the top of the 4 GiB space (so the reset vector F000:FFF0, linear
//! 0xFFFFFFF0, is its last 16 bytes), and its last 128 KiB are also copied below 1 MiB
//! (0xE0000–0xFFFFF), where real-mode code reaches it after its first far jump. QEMU's `pc`
//! machine lays it out the same way. The region is guest RAM, so a guest that writes to its
//! ROM sees the write (real flash would ignore it).

use std::path::Path;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::memory::FOUR_GIB;
use crate::{Error, Result};

/// QEMU's rule: a non-empty multiple of 64 KiB. Ferrite also caps it at 16 MiB.
pub const ROM_GRANULE: u64 = 64 << 10;
pub const ROM_MAX: u64 = 16 << 20;
/// How much of the image's end appears below 1 MiB.
const LOW_ALIAS: u64 = 128 << 10;

/// Reads the image at `path` and checks its size.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let image =
        std::fs::read(path).map_err(|e| Error::Config(format!("-bios {}: {e}", path.display())))?;
    let len = image.len() as u64;
    if len == 0 || !len.is_multiple_of(ROM_GRANULE) || len > ROM_MAX {
        return Err(Error::Config(format!(
            "-bios {}: {len} bytes; a firmware image must be a multiple of 64 KiB, at most 16 MiB",
            path.display()
        )));
    }
    Ok(image)
}

/// Where the image starts in guest-physical memory.
pub fn base(len: u64) -> u64 {
    FOUR_GIB - len
}

/// Copies `image` to the top of 4 GiB and its end below 1 MiB.
pub fn install(mem: &GuestMemoryMmap, image: &[u8]) -> Result<()> {
    let len = image.len() as u64;
    let write = |addr: u64, bytes: &[u8]| {
        mem.write_slice(bytes, GuestAddress(addr))
            .map_err(|e| Error::Memory(format!("placing the firmware at {addr:#x}: {e}")))
    };
    write(base(len), image)?;
    let alias = len.min(LOW_ALIAS);
    write(0x10_0000 - alias, &image[(len - alias) as usize..])
}
