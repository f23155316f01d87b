//! The Intel MultiProcessor Specification 1.4 table: how a guest that reads no ACPI finds its
//! CPUs, the IOAPIC and the ISA interrupt routing (Linux uses it when ACPI is absent).
//!
//! The floating pointer sits at the start of the BIOS area (0xF0000, which every MP-aware
//! kernel scans and the E820 map reserves), the configuration table right after it. The 1 KiB
//! EBDA would hold only about 40 processors. A firmware image (`-bios`) owns that area and
//! writes its own tables instead.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::{layout, mem_err, Error, Result};

pub const LAPIC_ADDR: u32 = 0xfee0_0000;
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
pub(crate) const PIT_PIN: u8 = 2;
/// ISA IRQs routed through the IOAPIC (IRQ 0, the PIT, arrives on INTIN2 as on every PC).
const ISA_IRQS: u8 = 16;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
/// Address of the BDA word holding the EBDA segment.
const BDA_EBDA_SEGMENT: u64 = 0x40e;
/// The room the BIOS area gives the tables (the ACPI tables follow, at
/// [`acpi::RSDP_ADDR`](crate::acpi::RSDP_ADDR)).
const ROOM: u64 = crate::acpi::RSDP_ADDR - layout::BIOS_ROM;

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// Builds the table for `cpus` processors (CPU 0 the bootstrap processor).
pub fn build(cpus: u8) -> Vec<u8> {
    let table_addr = layout::BIOS_ROM as u32 + 16;
    let ioapic_id = cpus;
    let mut entries = Vec::new();
    let mut count = 0u16;
    for id in 0..cpus {
        let flags = 1 | if id == 0 { 2 } else { 0 }; // enabled, BSP
        entries.extend_from_slice(&[0, id, APIC_VERSION, flags]);
        entries.extend_from_slice(&0x0000_0600u32.to_le_bytes()); // family 6 signature
        entries.extend_from_slice(&0x0000_0201u32.to_le_bytes()); // FPU, APIC
        entries.extend_from_slice(&[0; 8]);
        count += 1;
    }
    entries.extend_from_slice(&[1, 0]);
    entries.extend_from_slice(b"ISA   ");
    count += 1;
    entries.extend_from_slice(&[2, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    count += 1;
    // I/O interrupts: INTIN0 is the 8259's ExtINT; ISA IRQ n on INTIN n, but IRQ 0 on INTIN2.
    let io_int = |kind: u8, irq: u8, pin: u8| [3, kind, 0, 0, 0, irq, ioapic_id, pin];
    entries.extend_from_slice(&io_int(3, 0, 0));
    count += 1;
    for irq in 0..ISA_IRQS {
        if irq == 2 {
            continue; // the cascade
        }
        let pin = if irq == 0 { PIT_PIN } else { irq };
        entries.extend_from_slice(&io_int(0, irq, pin));
        count += 1;
    }
    // Local interrupts: ExtINT on LINT0, NMI on LINT1, for every local APIC (0xff).
    entries.extend_from_slice(&[4, 3, 0, 0, 0, 0, 0xff, 0]);
    entries.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0xff, 1]);
    count += 2;

    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"PCMP");
    header.extend_from_slice(&((44 + entries.len()) as u16).to_le_bytes());
    header.push(4); // spec revision 1.4
    header.push(0); // checksum, below
    header.extend_from_slice(b"FERRITE ");
    header.extend_from_slice(b"PC          ");
    header.extend_from_slice(&0u32.to_le_bytes()); // OEM table
    header.extend_from_slice(&0u16.to_le_bytes());
    header.extend_from_slice(&count.to_le_bytes());
    header.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes()); // extended table length
    header.push(0); // extended table checksum
    header.push(0);
    let mut table = header;
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut fp = Vec::with_capacity(16);
    fp.extend_from_slice(b"_MP_");
    fp.extend_from_slice(&table_addr.to_le_bytes());
    fp.push(1); // length in 16-byte units
    fp.push(4);
    fp.push(0); // checksum, below
    fp.extend_from_slice(&[0; 5]); // feature bytes: a configuration table is present
    fp[10] = checksum(&fp);
    fp.extend_from_slice(&table);
    fp
}

/// Writes the floating pointer and table in the BIOS area and records the EBDA segment in the
/// BDA, as a BIOS would.
pub fn write(mem: &GuestMemoryMmap, cpus: u32) -> Result<()> {
    let cpus = u8::try_from(cpus)
        .ok()
        .filter(|&c| c > 0 && c < 255)
        .ok_or_else(|| Error::NoRoom(format!("{cpus} CPUs do not fit an MP table")))?;
    let bytes = build(cpus);
    if bytes.len() as u64 > ROOM {
        return Err(Error::NoRoom(format!(
            "MP table for {cpus} CPUs exceeds the BIOS area"
        )));
    }
    mem.write_slice(&bytes, GuestAddress(layout::BIOS_ROM))
        .map_err(mem_err)?;
    mem.write_obj((layout::EBDA >> 4) as u16, GuestAddress(BDA_EBDA_SEGMENT))
        .map_err(mem_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn checksums_and_counts() {
        let t = build(4);
        assert_eq!(&t[..4], b"_MP_");
        assert_eq!(sum(&t[..16]), 0);
        let table = &t[16..];
        assert_eq!(&table[..4], b"PCMP");
        let len = u16::from_le_bytes([table[4], table[5]]) as usize;
        assert_eq!(len, table.len());
        assert_eq!(sum(table), 0);
        // 4 processors + bus + IOAPIC + ExtINT + 15 ISA IRQs + 2 local interrupts.
        assert_eq!(
            u16::from_le_bytes([table[34], table[35]]),
            4 + 1 + 1 + 1 + 15 + 2
        );
        // The first processor is the enabled BSP.
        assert_eq!(table[44], 0);
        assert_eq!(table[44 + 3], 3);
        assert_eq!(table[64 + 3], 1);
    }

    #[test]
    fn absurd_cpu_counts_are_refused() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        assert!(write(&mem, 0).is_err());
        assert!(write(&mem, 300).is_err());
        write(&mem, 254).unwrap();
    }
}
