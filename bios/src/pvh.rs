//! The PVH boot protocol (Xen's direct boot of an ELF kernel with an XEN_ELFNOTE_PHYS32_ENTRY
//! note): linux-loader finds the entry; we write `hvm_start_info` and its tables by hand.

use std::io::Cursor;

use emu_core::state::reg;
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::{Elf, KernelLoader};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::{
    boot_cpu, layout, mem_err, read_file, BootInfo, BootProtocol, Error, KernelConfig, MemoryMap,
    Result,
};

const HVM_START_MAGIC: u32 = 0x336e_c578;
const START_INFO_SIZE: u64 = 56;
const MODLIST_ENTRY_SIZE: u64 = 32;
const MEMMAP_ENTRY_SIZE: u64 = 24;

pub fn load(
    mem: &GuestMemoryMmap,
    map: &MemoryMap,
    cfg: &KernelConfig,
    image: &[u8],
) -> Result<BootInfo> {
    let bad = |why: String| Error::BadKernel {
        path: cfg.kernel.clone(),
        why,
    };
    let loaded = Elf::load(
        mem,
        None,
        &mut Cursor::new(image),
        Some(GuestAddress(layout::HIGH_MEMORY)),
    )
    .map_err(|e| bad(format!("ELF image: {e}")))?;
    let PvhBootCapability::PvhEntryPresent(entry) = loaded.pvh_boot_cap else {
        return Err(bad(
            "ELF image without a PVH entry note (and no Multiboot header)".into(),
        ));
    };
    let entry = u32::try_from(entry.0).map_err(|_| bad("PVH entry above 4 GiB".into()))?;

    let mut cmdline = cfg.cmdline.as_bytes().to_vec();
    cmdline.push(0);
    if cmdline.len() > layout::CMDLINE_MAX {
        return Err(Error::CmdlineTooLong {
            len: cfg.cmdline.len(),
            max: layout::CMDLINE_MAX - 1,
        });
    }
    mem.write_slice(&cmdline, GuestAddress(layout::CMDLINE))
        .map_err(mem_err)?;

    let info = layout::BOOT_INFO;
    let modlist = info + START_INFO_SIZE.next_multiple_of(8);
    let mut nr_modules = 0u32;
    if let Some(path) = &cfg.initrd {
        let data = read_file(path)?;
        let addr = loaded.kernel_end.next_multiple_of(0x1000);
        if addr + data.len() as u64 > map.low_end {
            return Err(Error::BadInitrd {
                path: path.clone(),
                why: "does not fit in guest RAM after the kernel".into(),
            });
        }
        mem.write_slice(&data, GuestAddress(addr))
            .map_err(mem_err)?;
        let mut m = Vec::new();
        m.extend_from_slice(&addr.to_le_bytes());
        m.extend_from_slice(&(data.len() as u64).to_le_bytes());
        m.extend_from_slice(&[0u8; 16]);
        mem.write_slice(&m, GuestAddress(modlist))
            .map_err(mem_err)?;
        nr_modules = 1;
    }
    let memmap = modlist + MODLIST_ENTRY_SIZE;
    let e820 = map.e820();
    for (i, e) in e820.iter().enumerate() {
        let mut b = Vec::new();
        b.extend_from_slice(&e.addr.to_le_bytes());
        b.extend_from_slice(&e.size.to_le_bytes());
        b.extend_from_slice(&(e.kind as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        mem.write_slice(&b, GuestAddress(memmap + i as u64 * MEMMAP_ENTRY_SIZE))
            .map_err(mem_err)?;
    }
    let mut s = Vec::new();
    s.extend_from_slice(&HVM_START_MAGIC.to_le_bytes());
    s.extend_from_slice(&1u32.to_le_bytes()); // version 1: has the memory map
    s.extend_from_slice(&0u32.to_le_bytes()); // flags
    s.extend_from_slice(&nr_modules.to_le_bytes());
    s.extend_from_slice(&if nr_modules > 0 { modlist } else { 0 }.to_le_bytes());
    s.extend_from_slice(&layout::CMDLINE.to_le_bytes());
    s.extend_from_slice(&0u64.to_le_bytes()); // rsdp_paddr: found by scanning instead
    s.extend_from_slice(&memmap.to_le_bytes());
    s.extend_from_slice(&(e820.len() as u32).to_le_bytes());
    s.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(s.len() as u64, START_INFO_SIZE);
    mem.write_slice(&s, GuestAddress(info)).map_err(mem_err)?;

    let mut cpu = boot_cpu::protected_mode_entry(mem, entry)?;
    cpu.gpr[reg::RBX] = info;
    log::info!("PVH boot: entry at {entry:#x}");
    Ok(BootInfo {
        protocol: BootProtocol::Pvh,
        cpu,
    })
}
