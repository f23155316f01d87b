//! The processor state boot protocols promise: a boot GDT, identity page tables, and the
//! register state of a 32-bit flat or 64-bit entry.
//!
//! Selectors follow the Linux boot protocol (`__BOOT_CS` = 0x10 for 32-bit code, `__BOOT_DS` =
//! 0x18), which Multiboot and PVH kernels accept too; 0x08 holds a 64-bit code segment.

use emu_core::state::bits::*;
use emu_core::{CpuState, DescriptorTable, Segment};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::{layout, mem_err, Result};

pub const SEL_CODE64: u16 = 0x08;
pub const SEL_CODE32: u16 = 0x10;
pub const SEL_DATA: u16 = 0x18;
pub const SEL_TSS: u16 = 0x20;

fn tss() -> Segment {
    Segment::tss(SEL_TSS, 0, 0x67)
}

/// Writes the boot GDT and the empty IDT.
pub fn write_gdt(mem: &GuestMemoryMmap) -> Result<DescriptorTable> {
    let entries: [u64; 6] = [
        0,
        Segment::code64(SEL_CODE64).to_descriptor(),
        Segment::flat32(SEL_CODE32, true).to_descriptor(),
        Segment::flat32(SEL_DATA, false).to_descriptor(),
        tss().to_descriptor(),
        0, // upper half of the 64-bit TSS descriptor (base bits 32–63)
    ];
    for (i, e) in entries.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(layout::GDT + 8 * i as u64))
            .map_err(mem_err)?;
    }
    mem.write_obj(0u64, GuestAddress(layout::IDT))
        .map_err(mem_err)?;
    Ok(DescriptorTable {
        base: layout::GDT,
        limit: (entries.len() * 8 - 1) as u16,
    })
}

/// Identity-maps the first 4 GiB with 2 MiB pages; returns CR3.
pub fn write_identity_page_tables(mem: &GuestMemoryMmap) -> Result<u64> {
    const P_RW: u64 = 0x3;
    const PS: u64 = 0x80;
    mem.write_obj(layout::PDPT | P_RW, GuestAddress(layout::PML4))
        .map_err(mem_err)?;
    for gib in 0..4u64 {
        let pd = layout::PD + gib * 0x1000;
        mem.write_obj(pd | P_RW, GuestAddress(layout::PDPT + gib * 8))
            .map_err(mem_err)?;
        for i in 0..512u64 {
            let addr = (gib << 30) | (i << 21);
            mem.write_obj(addr | P_RW | PS, GuestAddress(pd + i * 8))
                .map_err(mem_err)?;
        }
    }
    Ok(layout::PML4)
}

fn idt() -> DescriptorTable {
    DescriptorTable {
        base: layout::IDT,
        limit: 0,
    }
}

/// 32-bit flat protected mode, paging off, at `entry`.
pub fn protected_mode_entry(mem: &GuestMemoryMmap, entry: u32) -> Result<CpuState> {
    let mut s = CpuState::flat_protected(entry);
    s.cs = Segment::flat32(SEL_CODE32, true);
    let data = Segment::flat32(SEL_DATA, false);
    (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data);
    s.tr = tss();
    s.gdt = write_gdt(mem)?;
    s.idt = idt();
    Ok(s)
}

/// 64-bit long mode at `entry` with the low 4 GiB identity-mapped.
pub fn long_mode_entry(mem: &GuestMemoryMmap, entry: u64) -> Result<CpuState> {
    let mut s = protected_mode_entry(mem, 0)?;
    s.rip = entry;
    s.cs = Segment::code64(SEL_CODE64);
    s.cr3 = write_identity_page_tables(mem)?;
    s.cr4 = CR4_PAE;
    s.cr0 = CR0_PE | CR0_ET | CR0_PG;
    s.efer = EFER_LME | EFER_LMA;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tables_identity_map_4g() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let s = long_mode_entry(&mem, 0x100200).unwrap();
        assert!(s.is_long_mode());
        let pml4e: u64 = mem.read_obj(GuestAddress(s.cr3)).unwrap();
        let pdpte: u64 = mem
            .read_obj(GuestAddress((pml4e & !0xfff) + 3 * 8))
            .unwrap();
        let pde: u64 = mem
            .read_obj(GuestAddress((pdpte & !0xfff) + 511 * 8))
            .unwrap();
        assert_eq!(pde & !0xfff, 0xffe0_0000);
        assert_eq!(pde & 0x81, 0x81);
    }
}
