//! Multiboot v1 (the GNU Multiboot Specification 0.6.96), as QEMU's `-kernel` loads it: ELF or
//! a.out-kludge images, modules (`-initrd "mod1 args,mod2"`), and the boot information
//! structure with the memory map.

use emu_core::state::reg;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::{
    boot_cpu, elf, layout, mem_err, read_file, BootInfo, BootProtocol, Error, KernelConfig,
    MemoryMap, Result,
};

pub const HEADER_MAGIC: u32 = 0x1bad_b002;
pub const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;
/// The header must sit in the first 8 KiB, 4-byte aligned.
const SEARCH_LIMIT: usize = 8192;
const FLAG_AOUT_KLUDGE: u32 = 1 << 16;

pub mod info_flags {
    pub const MEMORY: u32 = 1 << 0;
    pub const CMDLINE: u32 = 1 << 2;
    pub const MODS: u32 = 1 << 3;
    pub const MMAP: u32 = 1 << 6;
    pub const LOADER_NAME: u32 = 1 << 9;
}

/// The fixed part of the Multiboot header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub offset: usize,
    pub flags: u32,
    pub header_addr: u32,
    pub load_addr: u32,
    pub load_end_addr: u32,
    pub bss_end_addr: u32,
    pub entry_addr: u32,
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// Finds a Multiboot header whose checksum is right.
pub fn find_header(image: &[u8]) -> Option<Header> {
    let limit = image.len().min(SEARCH_LIMIT);
    (0..limit.saturating_sub(11)).step_by(4).find_map(|o| {
        let magic = u32_at(image, o)?;
        let flags = u32_at(image, o + 4)?;
        let sum = u32_at(image, o + 8)?;
        if magic != HEADER_MAGIC || magic.wrapping_add(flags).wrapping_add(sum) != 0 {
            return None;
        }
        let f = |i: usize| u32_at(image, o + 12 + 4 * i).unwrap_or(0);
        Some(Header {
            offset: o,
            flags,
            header_addr: f(0),
            load_addr: f(1),
            load_end_addr: f(2),
            bss_end_addr: f(3),
            entry_addr: f(4),
        })
    })
}

/// Copies `[paddr, paddr + memsz)` from `data` (zero-filling past it) after checking it lies in
/// low RAM above the boot data.
fn place(
    mem: &GuestMemoryMmap,
    map: &MemoryMap,
    paddr: u64,
    data: &[u8],
    memsz: u64,
) -> std::result::Result<(), String> {
    let end = paddr
        .checked_add(memsz)
        .ok_or("segment wraps around the address space")?;
    if paddr < layout::HIGH_MEMORY || end > map.low_end {
        return Err(format!(
            "segment {paddr:#x}-{end:#x} is outside guest RAM from 1 MiB to {:#x}",
            map.low_end
        ));
    }
    mem.write_slice(data, GuestAddress(paddr))
        .map_err(|e| e.to_string())?;
    let zero = vec![0u8; (memsz - data.len() as u64) as usize];
    mem.write_slice(&zero, GuestAddress(paddr + data.len() as u64))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Loads the image; returns (entry, end of the loaded image).
fn load_image(
    mem: &GuestMemoryMmap,
    map: &MemoryMap,
    image: &[u8],
    h: &Header,
) -> std::result::Result<(u64, u64), String> {
    if h.flags & FLAG_AOUT_KLUDGE != 0 {
        // File offset of load_addr: the header's own offset minus its distance from load_addr.
        let start = (h.offset as u64)
            .checked_sub(u64::from(h.header_addr.wrapping_sub(h.load_addr)))
            .filter(|_| h.header_addr >= h.load_addr)
            .ok_or("header_addr/load_addr do not match the header's position")?;
        let file_len = if h.load_end_addr == 0 {
            image.len() as u64 - start
        } else {
            u64::from(h.load_end_addr)
                .checked_sub(u64::from(h.load_addr))
                .ok_or("load_end_addr below load_addr")?
        };
        let data = image
            .get(start as usize..(start + file_len) as usize)
            .ok_or("load_end_addr runs past the end of the file")?;
        let end = if h.bss_end_addr == 0 {
            u64::from(h.load_addr) + file_len
        } else {
            u64::from(h.bss_end_addr).max(u64::from(h.load_addr) + file_len)
        };
        place(
            mem,
            map,
            u64::from(h.load_addr),
            data,
            end - u64::from(h.load_addr),
        )?;
        return Ok((u64::from(h.entry_addr), end));
    }
    let e = elf::parse(image)?;
    let mut end = 0;
    let mut entry = e.entry;
    for s in &e.segments {
        let data = &image[s.offset as usize..(s.offset + s.filesz) as usize];
        place(mem, map, s.paddr, data, s.memsz)?;
        end = end.max(s.paddr + s.memsz);
        // The entry is a virtual address; run it at the physical address it was loaded to.
        if s.vaddr != s.paddr && (s.vaddr..s.vaddr + s.memsz).contains(&e.entry) {
            entry = e.entry - s.vaddr + s.paddr;
        }
    }
    Ok((entry, end))
}

/// Accumulates the boot-information area (strings, module list, memory map).
struct InfoArea {
    bytes: Vec<u8>,
}

impl InfoArea {
    fn addr(&self) -> u64 {
        layout::BOOT_INFO + self.bytes.len() as u64
    }

    fn push(&mut self, data: &[u8]) -> u32 {
        let a = self.addr() as u32;
        self.bytes.extend_from_slice(data);
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
        a
    }

    fn push_str(&mut self, s: &str) -> u32 {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.push(&v)
    }
}

pub fn load(
    mem: &GuestMemoryMmap,
    map: &MemoryMap,
    cfg: &KernelConfig,
    image: &[u8],
    h: &Header,
) -> Result<BootInfo> {
    let (entry, kernel_end) = load_image(mem, map, image, h).map_err(|why| Error::BadKernel {
        path: cfg.kernel.clone(),
        why: format!("Multiboot image: {why}"),
    })?;
    let entry = u32::try_from(entry).map_err(|_| Error::BadKernel {
        path: cfg.kernel.clone(),
        why: "Multiboot entry point above 4 GiB".into(),
    })?;

    // The info structure itself is 88 bytes at the start of the area; the rest follows.
    let mut area = InfoArea {
        bytes: vec![0u8; 88],
    };
    let mut flags = info_flags::MEMORY | info_flags::LOADER_NAME | info_flags::MMAP;
    let mut mbi = [0u32; 22];
    mbi[1] = (layout::EBDA / 1024) as u32; // mem_lower
    mbi[2] = map.upper_kib().min(u64::from(u32::MAX)) as u32; // mem_upper

    // Kernel command line: the kernel's path first, as GRUB and QEMU pass it.
    let cmdline = if cfg.cmdline.is_empty() {
        cfg.kernel.display().to_string()
    } else {
        format!("{} {}", cfg.kernel.display(), cfg.cmdline)
    };
    mbi[4] = area.push_str(&cmdline); // cmdline (offset 16)
    flags |= info_flags::CMDLINE;

    // Modules: `-initrd "file args,file2"` (a literal comma is written ",,").
    let mut next = kernel_end.next_multiple_of(0x1000);
    let mut mod_list = Vec::new();
    if let Some(spec) = &cfg.initrd {
        let spec = spec.to_string_lossy().replace(",,", "\u{0}");
        for m in spec.split(',').filter(|s| !s.is_empty()) {
            let m = m.replace('\u{0}', ",");
            let path = std::path::PathBuf::from(m.split(' ').next().unwrap_or_default());
            let data = read_file(&path).map_err(|e| Error::BadInitrd {
                path: path.clone(),
                why: e.to_string(),
            })?;
            let end = next + data.len() as u64;
            if end > map.low_end {
                return Err(Error::BadInitrd {
                    path,
                    why: "module does not fit in guest RAM".into(),
                });
            }
            mem.write_slice(&data, GuestAddress(next))
                .map_err(mem_err)?;
            let s = area.push_str(&m);
            mod_list.push([next as u32, end as u32, s, 0]);
            next = end.next_multiple_of(0x1000);
        }
    }
    if !mod_list.is_empty() {
        let bytes: Vec<u8> = mod_list
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        mbi[5] = mod_list.len() as u32; // mods_count (offset 20)
        mbi[6] = area.push(&bytes); // mods_addr (offset 24)
        flags |= info_flags::MODS;
    }

    // Memory map: entries of (size = 20, base, length, type).
    let mut mmap = Vec::new();
    for e in map.e820() {
        mmap.extend_from_slice(&20u32.to_le_bytes());
        mmap.extend_from_slice(&e.addr.to_le_bytes());
        mmap.extend_from_slice(&e.size.to_le_bytes());
        mmap.extend_from_slice(&(e.kind as u32).to_le_bytes());
    }
    mbi[11] = mmap.len() as u32; // mmap_length (offset 44)
    mbi[12] = area.push(&mmap); // mmap_addr (offset 48)
    mbi[16] = area.push_str("Ferrite"); // boot_loader_name (offset 64)
    mbi[0] = flags;

    if area.bytes.len() as u64 > layout::BOOT_INFO_SIZE {
        return Err(Error::NoRoom(
            "Multiboot information (command line and module names) exceeds 4 KiB".into(),
        ));
    }
    let header: Vec<u8> = mbi.iter().flat_map(|v| v.to_le_bytes()).collect();
    area.bytes[..88].copy_from_slice(&header);
    mem.write_slice(&area.bytes, GuestAddress(layout::BOOT_INFO))
        .map_err(mem_err)?;

    let mut cpu = boot_cpu::protected_mode_entry(mem, entry)?;
    cpu.gpr[reg::RAX] = u64::from(BOOTLOADER_MAGIC);
    cpu.gpr[reg::RBX] = layout::BOOT_INFO;
    log::info!(
        "Multiboot kernel: entry {entry:#x}, image ends at {kernel_end:#x}, {} module(s)",
        mod_list.len()
    );
    Ok(BootInfo {
        protocol: BootProtocol::Multiboot,
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aout_kernel(code: &[u8]) -> Vec<u8> {
        let load = 0x10_0000u32;
        let mut img = Vec::new();
        let flags = FLAG_AOUT_KLUDGE;
        for v in [
            HEADER_MAGIC,
            flags,
            0u32.wrapping_sub(HEADER_MAGIC.wrapping_add(flags)),
            load,
            load,
            0,
            load + 0x2000,
            load + 32,
        ] {
            img.extend_from_slice(&v.to_le_bytes());
        }
        img.extend_from_slice(code);
        img
    }

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

    #[test]
    fn aout_kludge_kernel_with_a_module() {
        let dir = std::env::temp_dir().join(format!("ferrite-mb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let k = dir.join("k.bin");
        let m = dir.join("mod.txt");
        std::fs::write(&k, aout_kernel(&[0xf4; 16])).unwrap();
        std::fs::write(&m, b"module data").unwrap();
        let (mem, map) = mem();
        let cfg = KernelConfig {
            kernel: k.clone(),
            initrd: Some(format!("{} arg1", m.display()).into()),
            cmdline: "hello".into(),
        };
        let img = std::fs::read(&k).unwrap();
        let h = find_header(&img).unwrap();
        let b = load(&mem, &map, &cfg, &img, &h).unwrap();
        assert_eq!(b.cpu.rip, 0x10_0020);
        assert_eq!(b.cpu.gpr[reg::RAX], u64::from(BOOTLOADER_MAGIC));
        let info: [u32; 22] = {
            let mut raw = [0u8; 88];
            mem.read_slice(&mut raw, GuestAddress(b.cpu.gpr[reg::RBX]))
                .unwrap();
            std::array::from_fn(|i| u32::from_le_bytes(raw[4 * i..4 * i + 4].try_into().unwrap()))
        };
        assert_eq!(info[0] & info_flags::MODS, info_flags::MODS);
        assert_eq!(info[2], (15 << 20) / 1024);
        assert_eq!(info[5], 1, "mods_count at offset 20");
        let mut entry = [0u8; 16];
        mem.read_slice(&mut entry, GuestAddress(u64::from(info[6])))
            .unwrap();
        let start = u32::from_le_bytes(entry[0..4].try_into().unwrap());
        let end = u32::from_le_bytes(entry[4..8].try_into().unwrap());
        assert_eq!(start, 0x10_2000, "modules follow the BSS, page-aligned");
        assert_eq!(end - start, 11);
        // BSS is zeroed and the code is in place.
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x10_0020)).unwrap(), 0xf4);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn header_needs_a_valid_checksum() {
        let mut img = aout_kernel(&[0; 4]);
        assert!(find_header(&img).is_some());
        img[8] ^= 1;
        assert!(find_header(&img).is_none());
        assert!(find_header(&img[..10]).is_none());
    }

    #[test]
    fn a_kernel_outside_ram_is_refused() {
        let (mem, map) = mem();
        let mut img = aout_kernel(&[0; 4]);
        // bss_end far beyond RAM.
        img[24..28].copy_from_slice(&0x4000_0000u32.to_le_bytes());
        let h = find_header(&img).unwrap();
        let cfg = KernelConfig::default();
        assert!(matches!(
            load(&mem, &map, &cfg, &img, &h),
            Err(Error::BadKernel { .. })
        ));
    }
}
