//! The ACPI tables a PC's firmware leaves for the OS: the RSDP in the BIOS area (where every
//! ACPI OS and test suite scans for it, 0xE0000–0xFFFFF) pointing to an RSDT and an XSDT,
//! both listing the MADT.
//!
//! The MADT says what the MP table says (see [`mptable`](crate::mptable)): the local APICs,
//! the IOAPIC, the PIT's IRQ 0 on IOAPIC pin 2 and NMI on LINT1. The FADT describes the ACPI
//! PM hardware (devices::acpi_pm: PM1a blocks, PM timer, SCI on IRQ 9) and points at the FACS
//! and a DSDT whose only object is `_S5`, so an OS can power the machine off. A firmware image
//! (`-bios`) writes its own tables instead.

use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::xsdt::XSDT;
use acpi_tables::{Aml, AmlSink};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use zerocopy::{Immutable, IntoBytes};

use crate::mptable::{IOAPIC_ADDR, LAPIC_ADDR, PIT_PIN};
use crate::{layout, mem_err, Error, Result};

/// Where the RSDP goes: 16-byte aligned in the reserved BIOS area, above the MP table.
pub const RSDP_ADDR: u64 = layout::BIOS_ROM + 0x8000;
/// The end of the room the tables have (the end of the BIOS area).
const END: u64 = layout::HIGH_MEMORY;

const OEM_ID: [u8; 6] = *b"FERRIT";
const OEM_TABLE_ID: [u8; 8] = *b"FERRITPC";
const OEM_REVISION: u32 = 1;
/// MADT flags: PCAT_COMPAT, the machine also has the dual 8259s.
const PCAT_COMPAT: u32 = 1;
/// Offsets in an ACPI table header.
const CHECKSUM_OFFSET: usize = 9;
const MADT_FLAGS_OFFSET: usize = 40;

/// MADT type 2: an ISA IRQ that arrives on another global system interrupt.
#[repr(C, packed)]
#[derive(Clone, Copy, IntoBytes, Immutable)]
struct InterruptSourceOverride {
    r#type: u8,
    length: u8,
    bus: u8,
    source: u8,
    gsi: u32,
    flags: u16,
}

/// MADT type 4: which LINT pin of a local APIC (0xff: all) is wired to NMI.
#[repr(C, packed)]
#[derive(Clone, Copy, IntoBytes, Immutable)]
struct LocalApicNmi {
    r#type: u8,
    length: u8,
    processor_uid: u8,
    flags: u16,
    lint: u8,
}

impl Aml for InterruptSourceOverride {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.as_bytes());
    }
}

impl Aml for LocalApicNmi {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.as_bytes());
    }
}

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

fn bytes(table: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    table.to_aml_bytes(&mut v);
    v
}

/// The MADT for `cpus` processors (APIC IDs 0..cpus, the IOAPIC's ID after them, as in the
/// MP table).
fn madt(cpus: u8) -> Vec<u8> {
    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        LocalInterruptController::Address(LAPIC_ADDR),
    );
    for id in 0..cpus {
        madt.add_structure(ProcessorLocalApic::new(id, id, EnabledStatus::Enabled));
    }
    madt.add_structure(IoApic::new(cpus, IOAPIC_ADDR, 0));
    madt.add_structure(InterruptSourceOverride {
        r#type: 2,
        length: 10,
        bus: 0,
        source: 0,
        gsi: u32::from(PIT_PIN),
        flags: 0, // bus-conforming polarity and trigger (edge, active high)
    });
    madt.add_structure(LocalApicNmi {
        r#type: 4,
        length: 6,
        processor_uid: 0xff,
        flags: 0,
        lint: 1,
    });
    let mut v = bytes(&madt);
    v[MADT_FLAGS_OFFSET..MADT_FLAGS_OFFSET + 4].copy_from_slice(&PCAT_COMPAT.to_le_bytes());
    v[CHECKSUM_OFFSET] = 0;
    v[CHECKSUM_OFFSET] = checksum(&v);
    v
}

/// An RSDT (ACPI 1.0's root table, 32-bit pointers), which acpi_tables does not build.
fn rsdt(entries: &[u32]) -> Vec<u8> {
    let body: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    table(b"RSDT", 1, &body)
}

/// A table acpi_tables does not build: Ferrite's header (`signature`, `revision`, the OEM
/// fields), then `body`, with the length and checksum filled in.
fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(36 + body.len());
    t.extend_from_slice(signature);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum, below
    t.extend_from_slice(&OEM_ID);
    t.extend_from_slice(&OEM_TABLE_ID);
    t.extend_from_slice(&OEM_REVISION.to_le_bytes());
    t.extend_from_slice(&acpi_tables::CREATOR_ID);
    t.extend_from_slice(&acpi_tables::CREATOR_REVISION);
    t.extend_from_slice(body);
    t[CHECKSUM_OFFSET] = checksum(&t);
    t
}

/// The ACPI PM block's ports, as the board decodes them (devices::acpi_pm, QEMU's PIIX4
/// addresses): PM1a event block, PM1a control block, PM timer; and the SCI's IRQ.
const PM1A_EVT_BLK: u32 = 0x600;
const PM1A_CNT_BLK: u32 = 0x604;
const PM_TMR_BLK: u32 = 0x608;
const SCI_INT: u16 = 9;
/// IA-PC boot architecture flags: legacy (ISA) devices, an 8042.
const IAPC_LEGACY_DEVICES: u16 = 1 << 0;
const IAPC_8042: u16 = 1 << 1;
/// The FADT's RTC century register index (CMOS 0x32).
const CENTURY: u8 = 0x32;

/// The FADT: the PM hardware above, no SMI command port (the hardware is in ACPI mode from
/// reset), the DSDT and FACS. Revision 6.5 with both 32- and 64-bit block addresses.
fn fadt(facs: u64, dsdt: u64) -> Vec<u8> {
    use acpi_tables::fadt::{FADTBuilder, Flags};
    use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
    let mut f = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .flag(Flags::Wbinvd)
        .flag(Flags::ProcC1)
        // No fixed power or sleep button: they would be SCI events, which never come.
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    f.firmware_ctrl = (facs as u32).into();
    f.dsdt = (dsdt as u32).into();
    f.x_firmware_ctrl = facs.into();
    f.x_dsdt = dsdt.into();
    f.sci_int = SCI_INT.into();
    f.pm1a_evt_blk = PM1A_EVT_BLK.into();
    f.pm1a_cnt_blk = PM1A_CNT_BLK.into();
    f.pm_tmr_blk = PM_TMR_BLK.into();
    f.pm1_evt_len = 4;
    f.pm1_cnt_len = 2;
    f.pm_tmr_len = 4;
    // No C2/C3 (latencies above 100 and 1000 us say so).
    f.p_lvl2_lat = 101.into();
    f.p_lvl3_lat = 1001.into();
    f.century = CENTURY;
    f.iapc_boot_arch = (IAPC_LEGACY_DEVICES | IAPC_8042).into();
    let io = |addr: u32, bits: u8| {
        GAS::new(
            AddressSpace::SystemIo,
            bits,
            0,
            AccessSize::Undefined,
            u64::from(addr),
        )
    };
    f.x_pm1a_evt_blk = io(PM1A_EVT_BLK, 32);
    f.x_pm1a_cnt_blk = io(PM1A_CNT_BLK, 16);
    f.x_pm_tmr_blk = io(PM_TMR_BLK, 32);
    bytes(&f.finalize())
}

/// Where the HPET is, and its event-timer block ID (devices::hpet's GCAP_ID low half:
/// revision 1, three timers, 64-bit, legacy replacement, vendor 0x8086; the machine crate
/// checks at compile time that the two agree).
pub const HPET_ADDR: u64 = 0xfed0_0000;
pub const HPET_BLOCK_ID: u32 = 0x8086_a201;

/// The HPET table: the timer block's ID, its base address (system memory), HPET number 0,
/// a minimum periodic tick of 128 counts, no page protection.
fn hpet() -> Vec<u8> {
    let mut body = Vec::with_capacity(20);
    body.extend_from_slice(&HPET_BLOCK_ID.to_le_bytes());
    // Generic address structure: memory space, 64-bit registers, offset 0, access size
    // undefined, the address.
    body.extend_from_slice(&[0, 64, 0, 0]);
    body.extend_from_slice(&HPET_ADDR.to_le_bytes());
    body.push(0);
    body.extend_from_slice(&128u16.to_le_bytes());
    body.push(0);
    table(b"HPET", 1, &body)
}

/// The DSDT: only `Name (_S5, Package () { 0, 0, 0, 0 })`, the sleep-type values the OS
/// writes to PM1a_CNT to power off (QEMU's PIIX4 value). No devices: the OS finds the ISA
/// devices at their legacy addresses and PCI by probing.
fn dsdt() -> Vec<u8> {
    const S5: [u8; 12] = [
        0x08, b'_', b'S', b'5', b'_', // NameOp "_S5_"
        0x12, 0x06, 0x04, // PackageOp, PkgLength 6, 4 elements
        0x00, 0x00, 0x00, 0x00, // ZeroOp x4
    ];
    // Revision 2: 64-bit AML integers.
    table(b"DSDT", 2, &S5)
}

/// The tables as they sit from [`RSDP_ADDR`] on: RSDP, RSDT, XSDT, FADT, MADT, HPET, FACS,
/// DSDT. The RSDP is ACPI 2.0's, with both root tables, so ACPI 1.0 readers (which take the
/// RSDT) and later ones (the XSDT) find the same FADT, MADT and HPET.
pub fn build(cpus: u8) -> Vec<u8> {
    // Each table 16-byte aligned, as firmware lays them out; the FACS 64-byte aligned.
    let align = |a: u64, to: u64| a.div_ceil(to) * to;
    let rsdt_addr = align(RSDP_ADDR + Rsdp::len() as u64, 16);
    let rsdt_len = 36 + 4 * 3;
    let xsdt_addr = align(rsdt_addr + rsdt_len, 16);
    // The XSDT's size is known before its entries: a header and three 8-byte pointers.
    let xsdt_len = 36 + 8 * 3;
    let fadt_addr = align(xsdt_addr + xsdt_len, 16);
    let madt_addr = align(fadt_addr + acpi_tables::fadt::FADT::len() as u64, 16);
    let madt = madt(cpus);
    let hpet_addr = align(madt_addr + madt.len() as u64, 16);
    let hpet = hpet();
    let facs_addr = align(hpet_addr + hpet.len() as u64, 64);
    let facs = bytes(&acpi_tables::facs::FACS::new());
    let dsdt_addr = align(facs_addr + facs.len() as u64, 16);

    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    xsdt.add_entry(hpet_addr);
    let mut rsdp = bytes(&Rsdp::new(OEM_ID, xsdt_addr));
    // acpi_tables leaves the RSDT address 0: fill it in and redo both checksums.
    rsdp[16..20].copy_from_slice(&(rsdt_addr as u32).to_le_bytes());
    rsdp[8] = 0;
    rsdp[8] = checksum(&rsdp[..20]);
    rsdp[32] = 0;
    rsdp[32] = checksum(&rsdp[..36]);
    let mut out = rsdp;
    let place = |out: &mut Vec<u8>, addr: u64, table: &[u8]| {
        out.resize((addr - RSDP_ADDR) as usize, 0);
        out.extend_from_slice(table);
    };
    place(
        &mut out,
        rsdt_addr,
        &rsdt(&[fadt_addr as u32, madt_addr as u32, hpet_addr as u32]),
    );
    place(&mut out, xsdt_addr, &bytes(&xsdt));
    place(&mut out, fadt_addr, &fadt(facs_addr, dsdt_addr));
    place(&mut out, madt_addr, &madt);
    place(&mut out, hpet_addr, &hpet);
    place(&mut out, facs_addr, &facs);
    place(&mut out, dsdt_addr, &dsdt());
    out
}

/// Writes the tables for `cpus` processors.
pub fn write(mem: &GuestMemoryMmap, cpus: u32) -> Result<()> {
    let cpus = u8::try_from(cpus)
        .ok()
        .filter(|&c| c > 0 && c < 255)
        .ok_or_else(|| Error::NoRoom(format!("{cpus} CPUs do not fit the MADT")))?;
    let tables = build(cpus);
    if RSDP_ADDR + tables.len() as u64 > END {
        return Err(Error::NoRoom(format!(
            "ACPI tables for {cpus} CPUs exceed the BIOS area"
        )));
    }
    mem.write_slice(&tables, GuestAddress(RSDP_ADDR))
        .map_err(mem_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// Walks the tables as an OS does, from the RSDP, checking every checksum.
    #[test]
    fn an_os_finds_the_fadt_and_madt_from_the_rsdp() {
        let t = build(4);
        assert_eq!(&t[..8], b"RSD PTR ");
        assert_eq!(RSDP_ADDR % 16, 0);
        assert_eq!(sum(&t[..20]), 0, "RSDP v1 checksum");
        assert_eq!(sum(&t[..36]), 0, "RSDP extended checksum");
        assert_eq!(t[15], 2, "ACPI 2.0+ RSDP");
        let at = |addr: u64| (addr - RSDP_ADDR) as usize;
        let rsdt = at(u64::from(u32_at(&t, 16)));
        assert_eq!(&t[rsdt..rsdt + 4], b"RSDT");
        assert_eq!(sum(&t[rsdt..rsdt + 48]), 0);
        let xsdt = at(u64_at(&t, 24));
        assert_eq!(&t[xsdt..xsdt + 4], b"XSDT");
        let xsdt_len = u32_at(&t, xsdt + 4) as usize;
        assert_eq!(sum(&t[xsdt..xsdt + xsdt_len]), 0);
        assert_eq!(xsdt_len, 60);
        let fadt = at(u64_at(&t, xsdt + 36));
        let madt = at(u64_at(&t, xsdt + 44));
        let hpet = at(u64_at(&t, xsdt + 52));
        assert_eq!(
            [rsdt + 36, rsdt + 40, rsdt + 44].map(|e| at(u64::from(u32_at(&t, e)))),
            [fadt, madt, hpet],
            "both roots list the same tables"
        );
        // The HPET: its block ID as the device reports it, at 0xFED00000 in memory space.
        assert_eq!(&t[hpet..hpet + 4], b"HPET");
        assert_eq!(u32_at(&t, hpet + 4), 56);
        assert_eq!(sum(&t[hpet..hpet + 56]), 0);
        assert_eq!(u32_at(&t, hpet + 36), HPET_BLOCK_ID);
        assert_eq!(t[hpet + 40], 0, "system memory");
        assert_eq!(u64_at(&t, hpet + 44), HPET_ADDR);
        // The FADT: PM blocks at 0x600, SCI 9, FACS and DSDT in both widths.
        assert_eq!(&t[fadt..fadt + 4], b"FACP");
        let fadt_len = u32_at(&t, fadt + 4) as usize;
        assert_eq!(sum(&t[fadt..fadt + fadt_len]), 0);
        assert_eq!(
            u16::from_le_bytes([t[fadt + 46], t[fadt + 47]]),
            9,
            "SCI_INT"
        );
        assert_eq!(u32_at(&t, fadt + 48), 0, "no SMI_CMD: ACPI mode from reset");
        assert_eq!(u32_at(&t, fadt + 56), 0x600, "PM1a_EVT_BLK");
        assert_eq!(u32_at(&t, fadt + 64), 0x604, "PM1a_CNT_BLK");
        assert_eq!(u32_at(&t, fadt + 76), 0x608, "PM_TMR_BLK");
        assert_eq!((t[fadt + 88], t[fadt + 89], t[fadt + 91]), (4, 2, 4));
        let facs = at(u64::from(u32_at(&t, fadt + 36)));
        let dsdt = at(u64::from(u32_at(&t, fadt + 40)));
        assert_eq!(at(u64_at(&t, fadt + 132)), facs, "X_FIRMWARE_CTRL");
        assert_eq!(at(u64_at(&t, fadt + 140)), dsdt, "X_DSDT");
        assert_eq!(&t[facs..facs + 4], b"FACS");
        assert_eq!((RSDP_ADDR as usize + facs) % 64, 0, "FACS 64-byte aligned");
        assert_eq!(&t[dsdt..dsdt + 4], b"DSDT");
        let dsdt_len = u32_at(&t, dsdt + 4) as usize;
        assert_eq!(sum(&t[dsdt..dsdt + dsdt_len]), 0);
        assert_eq!(&t[dsdt + 36..dsdt + 41], b"\x08_S5_", "the _S5 object");
        assert_eq!(dsdt + dsdt_len, t.len());
        assert_eq!(&t[madt..madt + 4], b"APIC");
        let madt_len = u32_at(&t, madt + 4) as usize;
        assert_eq!(sum(&t[madt..madt + madt_len]), 0);
        assert_eq!(u32_at(&t, madt + 36), LAPIC_ADDR);
        assert_eq!(u32_at(&t, madt + 40), PCAT_COMPAT);
        // The structures: 4 local APICs, the IOAPIC, the IRQ 0 override, the NMI.
        let mut kinds = Vec::new();
        let mut p = madt + 44;
        while p < madt + madt_len {
            let (kind, len) = (t[p], t[p + 1] as usize);
            assert!(len >= 2);
            match kind {
                0 => assert_eq!(t[p + 3] as usize, kinds.len(), "APIC IDs in order"),
                1 => {
                    assert_eq!(t[p + 2], 4, "IOAPIC ID after the CPUs");
                    assert_eq!(u32_at(&t, p + 4), IOAPIC_ADDR);
                }
                2 => assert_eq!((t[p + 3], u32_at(&t, p + 4)), (0, 2)),
                4 => assert_eq!((t[p + 2], t[p + 5]), (0xff, 1)),
                k => panic!("unexpected MADT structure {k}"),
            }
            kinds.push(kind);
            p += len;
        }
        assert_eq!(kinds, [0, 0, 0, 0, 1, 2, 4]);
    }

    #[test]
    fn the_largest_machine_fits() {
        assert!(RSDP_ADDR + build(254).len() as u64 <= END);
    }
}
