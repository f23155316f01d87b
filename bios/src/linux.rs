//! The Linux x86 boot protocol (Documentation/arch/x86/boot.rst): bzImage through linux-loader,
//! the zero page, initrd placement, and the 64-bit (or, for old kernels, 32-bit) entry.

use std::io::Cursor;

use emu_core::state::reg;
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::{BzImage, KernelLoader};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::{
    boot_cpu, layout, mem_err, read_file, BootInfo, BootProtocol, Error, KernelConfig, MemoryMap,
    Result,
};

const HDRS_OFFSET: usize = 0x202;
/// `xloadflags`: the kernel has a 64-bit entry point at `load address + 0x200`.
const XLF_KERNEL_64: u16 = 1 << 0;
/// `loadflags`: the heap_end_ptr field is valid.
const CAN_USE_HEAP: u8 = 0x80;
const LOADER_TYPE_UNDEFINED: u8 = 0xff;

pub fn is_bzimage(image: &[u8]) -> bool {
    image.get(HDRS_OFFSET..HDRS_OFFSET + 4) == Some(b"HdrS")
}

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
    let loaded = BzImage::load(
        mem,
        None,
        &mut Cursor::new(image),
        Some(GuestAddress(layout::HIGH_MEMORY)),
    )
    .map_err(|e| bad(format!("{e} (guest RAM {} MiB)", map.low_end >> 20)))?;
    let hdr_in = loaded
        .setup_header
        .ok_or_else(|| bad("no setup header".into()))?;
    let mut params = boot_params {
        hdr: hdr_in,
        ..Default::default()
    };
    let version = params.hdr.version;

    // Command line.
    let max_cmdline = if version >= 0x206 {
        params.hdr.cmdline_size as usize
    } else {
        255
    };
    if cfg.cmdline.len() > max_cmdline {
        return Err(Error::CmdlineTooLong {
            len: cfg.cmdline.len(),
            max: max_cmdline,
        });
    }
    let mut cmdline = cfg.cmdline.as_bytes().to_vec();
    cmdline.push(0);
    mem.write_slice(&cmdline, GuestAddress(layout::CMDLINE))
        .map_err(mem_err)?;
    params.hdr.cmd_line_ptr = layout::CMDLINE as u32;

    // Initrd: as high as the kernel allows, below the PCI hole, page-aligned.
    if let Some(path) = &cfg.initrd {
        let data = read_file(path)?;
        let max_addr = if version >= 0x203 {
            u64::from(params.hdr.initrd_addr_max)
        } else {
            0x37ff_ffff
        };
        let limit = max_addr.min(map.low_end - 1) + 1;
        let addr = limit
            .checked_sub(data.len() as u64)
            .map(|a| a & !0xfff)
            .filter(|&a| a >= loaded.kernel_end)
            .ok_or_else(|| Error::BadInitrd {
                path: path.clone(),
                why: format!(
                    "{} bytes do not fit between the kernel and {limit:#x}; give the guest more memory",
                    data.len()
                ),
            })?;
        mem.write_slice(&data, GuestAddress(addr))
            .map_err(mem_err)?;
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = data.len() as u32;
        log::debug!("initrd at {addr:#x}, {} bytes", data.len());
    }

    params.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    params.hdr.loadflags |= CAN_USE_HEAP;
    params.hdr.heap_end_ptr = 0xfe00;
    let e820 = map.e820();
    params.e820_entries = e820.len() as u8;
    for (slot, e) in params.e820_table.iter_mut().zip(&e820) {
        *slot = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.kind as u32,
        };
    }
    mem.write_obj(params, GuestAddress(layout::ZERO_PAGE))
        .map_err(mem_err)?;

    let load = loaded.kernel_load.0;
    let (protocol, mut cpu) = if version >= 0x20c && params.hdr.xloadflags & XLF_KERNEL_64 != 0 {
        (
            BootProtocol::Linux64,
            boot_cpu::long_mode_entry(mem, load + 0x200)?,
        )
    } else {
        (
            BootProtocol::Linux32,
            boot_cpu::protected_mode_entry(mem, params.hdr.code32_start)?,
        )
    };
    cpu.gpr[reg::RSI] = layout::ZERO_PAGE;
    log::info!(
        "Linux boot protocol {}.{:02}: kernel at {load:#x}, {protocol:?} entry at {:#x}",
        version >> 8,
        version & 0xff,
        cpu.rip
    );
    Ok(BootInfo { protocol, cpu })
}
