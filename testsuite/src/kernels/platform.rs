//! Kernels for the platform around the CPU: SMP start-up, the A20 gate, hostile I/O, and a
//! guest that never ends.

use iced_x86::code_asm::*;

use crate::kit::{check, Code, Kernel, PASS, REAL_MODE_BASE};

use super::common::*;

/// Where [`smp`]'s APs count themselves in.
const AP_COUNTER: u32 = 0x7ff0;

/// Starts every application processor with INIT-SIPI-SIPI through the local APIC (xAPIC MMIO);
/// each AP, in real mode at [`REAL_MODE_BASE`], adds itself to a counter with a locked add and
/// halts. The BSP waits for `cpus - 1` arrivals.
pub fn smp(cpus: u32) -> Vec<u8> {
    Kernel::build(move |k| {
        k.copy_real_mode_code();
        let c = &mut k.c32;
        const ICR_LOW: u32 = 0xfee0_0300;
        const ICR_HIGH: u32 = 0xfee0_0310;
        let delay = |c: &mut Code| {
            let mut l = c.label();
            check(c.a.mov(ecx, 100_000u32));
            c.here(&mut l);
            check(c.a.dec(ecx));
            check(c.a.jne(l));
        };
        check(c.a.mov(dword_ptr(AP_COUNTER), 0u32));
        check(c.a.mov(dword_ptr(ICR_HIGH), 0u32));
        // INIT, level assert, to all but self.
        check(c.a.mov(dword_ptr(ICR_LOW), 0x000c_4500u32));
        delay(c);
        for _ in 0..2 {
            // STARTUP with vector REAL_MODE_BASE >> 12.
            check(c.a.mov(dword_ptr(ICR_LOW), 0x000c_4600u32 | (REAL_MODE_BASE >> 12)));
            delay(c);
        }
        // Wait for the APs (bounded: a missing AP fails instead of hanging).
        let (mut wait, mut arrived) = (c.label(), c.label());
        check(c.a.mov(edx, 2_000_000u32));
        c.here(&mut wait);
        check(c.a.cmp(dword_ptr(AP_COUNTER), (cpus - 1) as i32));
        check(c.a.je(arrived));
        check(c.a.pause());
        check(c.a.dec(edx));
        check(c.a.jne(wait));
        check(c.a.mov(eax, dword_ptr(AP_COUNTER)));
        c.print("smp: APs arrived: ");
        c.print_eax_hex();
        c.print(", expected more\n");
        c.exit(2);
        c.here(&mut arrived);
        c.print(&format!(
            "smp: {} application processors started: ok\n",
            cpus - 1
        ));
        c.exit(PASS);

        let ap = &mut k.c16;
        let mut halt = ap.label();
        check(ap.a.cli());
        check(ap.a.xor(ax, ax));
        check(ap.a.mov(ds, ax));
        check(ap.a.lock().add(dword_ptr(AP_COUNTER), 1));
        ap.here(&mut halt);
        check(ap.a.hlt());
        check(ap.a.jmp(halt));
    })
}

/// Prints a dot, waits a little, forever: a guest for pause, resume and stop.
pub fn ticker() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        let (mut again, mut delay) = (c.label(), c.label());
        c.here(&mut again);
        c.print(".");
        check(c.a.mov(ecx, 20_000u32));
        c.here(&mut delay);
        check(c.a.dec(ecx));
        check(c.a.jne(delay));
        check(c.a.jmp(again));
    })
}

/// Ports [`garbage_io`] leaves alone because a write there legitimately ends the run or
/// pulls memory from under the kernel: the i8042 (reset line, output port), port 0x92 (fast
/// reset, A20), the PIIX reset control, the kit's debug-exit port.
pub const GARBAGE_EXCLUDED_PORTS: [std::ops::RangeInclusive<u16>; 4] = [
    0x64..=0x64,
    0x92..=0x92,
    0xcf9..=0xcf9,
    crate::kit::DEBUG_EXIT_PORT..=(crate::kit::DEBUG_EXIT_PORT + 3),
];

/// Writes and reads every I/O port (bytes and dwords of junk), and junk to unclaimed MMIO
/// (the PCI hole and above the top of RAM), then reports: the host must survive all of it.
pub fn garbage_io() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        let (mut next, mut skip) = (c.label(), c.label());
        check(c.a.xor(edx, edx));
        c.here(&mut next);
        for r in GARBAGE_EXCLUDED_PORTS {
            let mut not_here = c.label();
            check(c.a.cmp(dx, i32::from(*r.start())));
            check(c.a.jb(not_here));
            check(c.a.cmp(dx, i32::from(*r.end())));
            check(c.a.jbe(skip));
            c.here(&mut not_here);
        }
        check(c.a.mov(eax, edx));
        check(c.a.imul_3(eax, eax, 0x9e37_79b1u32 as i32));
        check(c.a.out(dx, al));
        check(c.a.in_(al, dx));
        check(c.a.out(dx, eax));
        check(c.a.in_(eax, dx));
        c.here(&mut skip);
        check(c.a.inc(edx));
        check(c.a.cmp(edx, 0x1_0000));
        check(c.a.jne(next));
        // Unclaimed MMIO: the PCI hole and far above RAM (64-bit guests could reach more; a
        // 32-bit kernel without paging reaches 4 GiB).
        for addr in [0xc000_0000u32, 0xd123_4568, 0xfeb0_0000, 0xfff0_0000] {
            check(c.a.mov(dword_ptr(addr), 0xdead_beefu32));
            check(c.a.mov(eax, dword_ptr(addr)));
            check(c.a.mov(byte_ptr(addr + 3), 0x55u32));
        }
        // The junk reprogrammed COM1 too (loopback, divisor latch…): set it up again.
        for (port, value) in [(3u32, 0x03u32), (1, 0), (4, 0x03), (2, 0x07)] {
            check(c.a.mov(dx, u32::from(crate::kit::COM1) + port));
            check(c.a.mov(al, value));
            check(c.a.out(dx, al));
        }
        c.print("garbage I/O survived: ok\n");
        c.exit(PASS);
    })
}

/// The A20 gate in real mode: with it open, FFFF:7E10 (linear 0x107E00) and 0000:7E00 are
/// different bytes; closed through port 0x92 they are the same byte; opened again through the
/// keyboard controller's output port (command 0xD1) they differ again.
pub fn a20_gate() -> Vec<u8> {
    Kernel::build(|k| {
        enter_real_mode(k);
        let c = &mut k.c16;
        skip_if_kvm(c, "SKIP: KVM does not model the A20 gate\n");
        check(c.a.mov(ax, 0xffffu32));
        check(c.a.mov(es, ax));
        check(c.a.mov(byte_ptr(0x7e00u32), 0x11u32));
        check(c.a.mov(byte_ptr(0x7e10u32).es(), 0x22u32));
        check(c.a.cmp(byte_ptr(0x7e00u32), 0x11));
        c.fail_unless_zero("A20: open, but FFFF:7E10 wrapped to 0000:7E00\n", 2);
        // Close it through port 0x92 (bit 1).
        check(c.a.in_(al, 0x92));
        check(c.a.and(al, 0xfd_u32 as i32));
        check(c.a.out(0x92, al));
        check(c.a.cmp(byte_ptr(0x7e10u32).es(), 0x11));
        c.fail_unless_zero(
            "A20: closed through port 0x92, but FFFF:7E10 did not wrap\n",
            3,
        );
        check(c.a.mov(byte_ptr(0x7e10u32).es(), 0x33u32));
        check(c.a.cmp(byte_ptr(0x7e00u32), 0x33));
        c.fail_unless_zero(
            "A20: closed, but a write to FFFF:7E10 missed 0000:7E00\n",
            4,
        );
        // Open it through the i8042 output port (bit 1 A20, bit 0 not in reset).
        check(c.a.mov(al, 0xd1u32));
        check(c.a.out(0x64, al));
        check(c.a.mov(al, 0x03u32));
        check(c.a.out(0x60, al));
        check(c.a.cmp(byte_ptr(0x7e10u32).es(), 0x22));
        c.fail_unless_zero(
            "A20: opened through the i8042, but FFFF:7E10 still wraps\n",
            5,
        );
        c.print("A20 gate: ok\n");
        c.exit(PASS);
    })
}

/// Jumps into unclaimed MMIO (the PCI hole). Nothing answers there, so the fetch reads the
/// bus's all-ones bytes (`FF FF …`, an invalid encoding): the guest must get #UD and the host
/// must carry on. Software CPU only: QEMU stops the whole VM when code runs outside RAM/ROM,
/// and KVM reports an emulation failure.
pub fn jump_into_mmio() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        const VEC: u32 = 0x7f00;
        let handlers: Vec<_> = (0..32u32).map(|_| c.sym()).collect();
        for (v, h) in handlers.iter().enumerate() {
            let a = c.addr(*h);
            gate32(c, v as u32, a);
        }
        load_idt(c, false);
        let report = c.sym();
        check(c.a.mov(eax, 0xc000_0000u32));
        check(c.a.jmp(eax));
        for (v, h) in handlers.iter().enumerate() {
            c.bind(*h);
            check(c.a.mov(dword_ptr(VEC), v as u32));
            check(c.a.jmp(c.addr(report) as u64));
        }
        c.bind(report);
        check(c.a.cmp(dword_ptr(VEC), 6));
        c.fail_unless_zero("jump into MMIO: not #UD\n", 2);
        c.print("jump into unclaimed MMIO: #UD: ok\n");
        c.exit(PASS);
    })
}

/// Detects QEMU's debug console (a read of port 0xE9 gives 0xE9) and writes a line to it,
/// then one to COM1 so the serial log shows the kernel ran.
pub fn debugcon() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        check(c.a.in_(al, 0xe9));
        check(c.a.cmp(al, 0xe9));
        c.fail_unless_zero("debugcon: port 0xE9 does not read back 0xE9\n", 2);
        for b in b"hello on port E9\n" {
            check(c.a.mov(al, u32::from(*b)));
            check(c.a.out(0xe9, al));
        }
        c.print("debugcon: written\n");
        c.exit(PASS);
    })
}

/// A firmware image (`-bios`): from the reset vector it reports POST codes 0x01 and 0x02 on
/// port 0x80 and, as text, on the debug console (port 0xE9), says where it runs on COM1, and
/// passes through isa-debug-exit. Real mode, no RAM needed.
pub fn rom_post() -> Vec<u8> {
    crate::kit::build_rom(|c| {
        let out_text = |c: &mut Code, port: u16, text: &str| {
            check(c.a.mov(dx, u32::from(port)));
            for b in text.bytes() {
                check(c.a.mov(al, u32::from(b)));
                check(c.a.out(dx, al));
            }
        };
        for code in [0x01u32, 0x02] {
            check(c.a.mov(al, code));
            check(c.a.out(0x80, al));
            out_text(c, 0xe9, &format!("POST {code:02x}\n"));
        }
        out_text(c, crate::kit::COM1, "rom: running from the reset vector\n");
        check(c.a.xor(eax, eax));
        check(c.a.mov(dx, u32::from(crate::kit::DEBUG_EXIT_PORT)));
        check(c.a.out(dx, eax));
        check(c.a.hlt());
    })
}

/// Reads QEMU's fw_cfg interface (selector port 0x510, data port 0x511) and checks the
/// signature "QEMU", the CPU count and the RAM size the machine was given.
pub fn fw_cfg(cpus: u16, ram: u64) -> Vec<u8> {
    Kernel::build(move |k| {
        let c = &mut k.c32;
        let select = |c: &mut Code, key: u16| {
            check(c.a.mov(dx, 0x510u32));
            check(c.a.mov(ax, u32::from(key)));
            check(c.a.out(dx, ax));
            check(c.a.mov(dx, 0x511u32));
        };
        // Reads `n` bytes (n ≤ 4) little-endian into EBX.
        let read = |c: &mut Code, n: u32| {
            check(c.a.xor(ebx, ebx));
            for k in 0..n {
                check(c.a.in_(al, dx));
                check(c.a.movzx(eax, al));
                check(c.a.shl(eax, 8 * k));
                check(c.a.or(ebx, eax));
            }
        };
        select(c, 0);
        read(c, 4);
        check(c.a.cmp(ebx, u32::from_le_bytes(*b"QEMU") as i32));
        c.fail_unless_zero("fw_cfg: no QEMU signature\n", 2);
        select(c, 5);
        read(c, 2);
        check(c.a.cmp(ebx, u32::from(cpus) as i32));
        c.fail_unless_zero("fw_cfg: wrong CPU count\n", 3);
        select(c, 3);
        read(c, 4);
        check(c.a.cmp(ebx, ram as u32 as i32));
        c.fail_unless_zero("fw_cfg: wrong RAM size (low half)\n", 4);
        read(c, 4);
        check(c.a.cmp(ebx, (ram >> 32) as u32 as i32));
        c.fail_unless_zero("fw_cfg: wrong RAM size (high half)\n", 5);
        c.print("fw_cfg: signature, CPU count and RAM size: ok\n");
        c.exit(PASS);
    })
}

/// Exercises QEMU's pc-testdev (`-device pc-testdev`): the scratch register through the
/// dword ports at 0xE0 and the byte ports at 0xE8, the flush-page port, the scratch MMIO at
/// 0xFF000000, and, where the machine has an 8259 PIC, an IRQ-line port: raising line 5
/// through port 0x2005 sets bit 5 of the master PIC's IRR.
pub fn pc_testdev() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        check(c.a.mov(dx, 0xe0u32));
        check(c.a.mov(eax, 0x1234_5678u32));
        check(c.a.out(dx, eax));
        check(c.a.in_(al, 0xe1));
        check(c.a.cmp(al, 0x56));
        c.fail_unless_zero("pc-testdev: byte 1 of the scratch register is wrong\n", 2);
        check(c.a.in_(ax, 0xe2));
        check(c.a.cmp(ax, 0x1234));
        c.fail_unless_zero("pc-testdev: word 1 of the scratch register is wrong\n", 3);
        check(c.a.mov(dx, 0xe8u32));
        check(c.a.in_(eax, dx));
        check(c.a.cmp(eax, 0x1234_5678));
        c.fail_unless_zero("pc-testdev: the byte ports do not show the register\n", 4);
        check(c.a.mov(al, 0xabu32));
        check(c.a.out(0xeb, al));
        check(c.a.in_(eax, 0xe0));
        check(c.a.cmp(eax, 0xab34_5678u32 as i32));
        c.fail_unless_zero(
            "pc-testdev: a byte write at 0xEB did not land in byte 3\n",
            5,
        );
        check(c.a.mov(eax, crate::kit::LOAD_ADDR));
        check(c.a.out(0xe4, eax));
        check(c.a.mov(dword_ptr(0xff00_0000u32), 0xdead_beefu32));
        check(c.a.mov(dword_ptr(0xff00_fffcu32), 0x1122_3344u32));
        check(c.a.mov(eax, dword_ptr(0xff00_0000u32)));
        check(c.a.cmp(eax, 0xdead_beefu32 as i32));
        c.fail_unless_zero(
            "pc-testdev: scratch MMIO at 0xFF000000 did not keep a dword\n",
            6,
        );
        check(c.a.mov(al, byte_ptr(0xff00_fffdu32)));
        check(c.a.cmp(al, 0x33));
        c.fail_unless_zero(
            "pc-testdev: the last dword of the scratch MMIO is wrong\n",
            7,
        );
        c.print("pc-testdev: scratch ports and scratch MMIO: ok\n");
        // An 8259 answers with the IMR it was given; an absent one floats.
        let (mut no_pic, mut done) = (c.label(), c.label());
        check(c.a.mov(al, 0xfbu32));
        check(c.a.out(0x21, al));
        check(c.a.in_(al, 0x21));
        check(c.a.cmp(al, 0xfb));
        check(c.a.jne(no_pic));
        check(c.a.mov(dx, 0x2005u32));
        check(c.a.mov(al, 1u32));
        check(c.a.out(dx, al));
        check(c.a.mov(al, 0x0au32)); // OCW3: read the IRR
        check(c.a.out(0x20, al));
        check(c.a.in_(al, 0x20));
        check(c.a.test(al, 0x20));
        check(c.a.setz(al));
        check(c.a.test(al, al));
        c.fail_unless_zero(
            "pc-testdev: raising line 5 did not reach the PIC's IRR\n",
            8,
        );
        check(c.a.mov(al, 0u32));
        check(c.a.out(dx, al));
        c.print("pc-testdev: IRQ line 5 reaches the PIC: ok\n");
        check(c.a.jmp(done));
        c.here(&mut no_pic);
        c.print("pc-testdev: no 8259 PIC here, IRQ lines not checked\n");
        c.here(&mut done);
        c.exit(PASS);
    })
}

/// Finds the ACPI RSDP by scanning the BIOS area (0xE0000–0xFFFFF, 16-byte steps) as an OS
/// does, checks its checksum, follows the XSDT (or, in an ACPI 1.0 RSDP, the RSDT) to the MADT and counts its
/// enabled local APICs, which must be `cpus`.
pub fn acpi_rsdp(cpus: u32) -> Vec<u8> {
    Kernel::build(move |k| {
        let c = &mut k.c32;
        let (mut scan, mut next, mut found) = (c.label(), c.label(), c.label());
        check(c.a.mov(esi, 0xe_0000u32));
        c.here(&mut scan);
        check(c.a.cmp(dword_ptr(esi), 0x2044_5352)); // "RSD "
        check(c.a.jne(next));
        check(c.a.cmp(dword_ptr(esi + 4), 0x2052_5450)); // "PTR "
        check(c.a.je(found));
        c.here(&mut next);
        check(c.a.add(esi, 16));
        check(c.a.cmp(esi, 0x10_0000));
        check(c.a.jb(scan));
        check(c.a.or(esi, esi)); // ZF clear
        c.fail_unless_zero("acpi: no RSDP in the BIOS area\n", 2);
        c.here(&mut found);
        let mut sum = c.label();
        check(c.a.xor(eax, eax));
        check(c.a.xor(ecx, ecx));
        c.here(&mut sum);
        check(c.a.add(al, byte_ptr(esi + ecx)));
        check(c.a.inc(ecx));
        check(c.a.cmp(ecx, 20));
        check(c.a.jb(sum));
        check(c.a.test(al, al));
        c.fail_unless_zero("acpi: the RSDP checksum is wrong\n", 3);
        // Revision 2 and up: the XSDT (64-bit entries, below 4 GiB on a PC); revision 0
        // (ACPI 1.0, as QEMU's firmware gives): the RSDT (32-bit entries).
        let (mut v1, mut root, mut entry) = (c.label(), c.label(), c.label());
        check(c.a.cmp(byte_ptr(esi + 15), 2));
        check(c.a.jb(v1));
        check(c.a.mov(ebx, dword_ptr(esi + 24)));
        check(c.a.mov(ebp, 8));
        check(c.a.cmp(dword_ptr(ebx), 0x5444_5358)); // "XSDT"
        check(c.a.jmp(root));
        c.here(&mut v1);
        check(c.a.mov(ebx, dword_ptr(esi + 16)));
        check(c.a.mov(ebp, 4));
        check(c.a.cmp(dword_ptr(ebx), 0x5444_5352)); // "RSDT"
        c.here(&mut root);
        c.fail_unless_zero("acpi: the RSDP points to no XSDT/RSDT\n", 5);
        check(c.a.mov(ecx, dword_ptr(ebx + 4)));
        check(c.a.add(ecx, ebx));
        check(c.a.lea(edi, ptr(ebx + 36)));
        c.here(&mut entry);
        check(c.a.cmp(edi, ecx));
        check(c.a.setae(al));
        check(c.a.test(al, al));
        c.fail_unless_zero("acpi: the root table lists no MADT\n", 6);
        check(c.a.mov(edx, dword_ptr(edi)));
        check(c.a.add(edi, ebp));
        check(c.a.cmp(dword_ptr(edx), 0x4349_5041)); // "APIC"
        check(c.a.jne(entry));
        // MADT structures from offset 44: count enabled local APICs (type 0, flags bit 0).
        let (mut walk, mut not_cpu, mut end) = (c.label(), c.label(), c.label());
        check(c.a.mov(ecx, dword_ptr(edx + 4)));
        check(c.a.add(ecx, edx));
        check(c.a.lea(edi, ptr(edx + 44)));
        check(c.a.xor(eax, eax));
        c.here(&mut walk);
        check(c.a.cmp(edi, ecx));
        check(c.a.jae(end));
        check(c.a.cmp(byte_ptr(edi), 0));
        check(c.a.jne(not_cpu));
        check(c.a.test(byte_ptr(edi + 4), 1));
        check(c.a.jz(not_cpu));
        check(c.a.inc(eax));
        c.here(&mut not_cpu);
        check(c.a.movzx(ebx, byte_ptr(edi + 1)));
        check(c.a.add(edi, ebx));
        check(c.a.test(ebx, ebx));
        check(c.a.jnz(walk));
        check(c.a.or(edi, edi));
        c.fail_unless_zero("acpi: a MADT structure of length 0\n", 7);
        c.here(&mut end);
        check(c.a.cmp(eax, cpus as i32));
        c.fail_unless_zero(
            &format!("acpi: the MADT does not list {cpus} enabled CPUs\n"),
            8,
        );
        c.print("acpi: RSDP, root table and MADT: ok\n");
        c.exit(PASS);
    })
}

/// Finds QEMU's pci-testdev (1b36:0005) on bus 0, checks its BAR0 size with the sizing probe,
/// and runs kvm-unit-tests' protocol on each of its tests through both BARs: select test N,
/// check the header (count 0, width 1), write the signature 16 times at the test's offset,
/// and read the count back (16, or 0 where a hypervisor's ioeventfd took the writes).
pub fn pci_testdev() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        // EBX: the CF8 address of the function's register 0.
        let cfg_read = |c: &mut Code, reg: i32| {
            check(c.a.lea(eax, ptr(ebx + reg)));
            check(c.a.mov(dx, 0xcf8u32));
            check(c.a.out(dx, eax));
            check(c.a.mov(dx, 0xcfcu32));
            check(c.a.in_(eax, dx));
        };
        let (mut scan, mut found) = (c.label(), c.label());
        check(c.a.mov(ebx, 0x8000_0000u32));
        c.here(&mut scan);
        cfg_read(c, 0);
        check(c.a.cmp(eax, 0x0005_1b36));
        check(c.a.je(found));
        check(c.a.add(ebx, 0x800));
        check(c.a.cmp(ebx, 0x8001_0000u32 as i32));
        check(c.a.jb(scan));
        check(c.a.or(ebx, ebx));
        c.fail_unless_zero("pci-testdev: not found on bus 0\n", 2);
        c.here(&mut found);
        // BAR0: save, size, restore.
        cfg_read(c, 0x10);
        check(c.a.mov(esi, eax));
        check(c.a.lea(eax, ptr(ebx + 0x10)));
        check(c.a.mov(dx, 0xcf8u32));
        check(c.a.out(dx, eax));
        check(c.a.mov(dx, 0xcfcu32));
        check(c.a.mov(eax, 0xffff_ffffu32));
        check(c.a.out(dx, eax));
        check(c.a.in_(eax, dx));
        check(c.a.mov(ecx, eax));
        check(c.a.mov(eax, esi));
        check(c.a.out(dx, eax));
        check(c.a.cmp(ecx, 0xffff_f000u32 as i32));
        c.fail_unless_zero("pci-testdev: BAR0 does not size as 4 KiB of memory\n", 3);
        cfg_read(c, 0x14);
        check(c.a.mov(edi, eax));
        check(c.a.and(edi, !3));
        check(c.a.and(esi, !0xf));
        cfg_read(c, 0x04);
        check(c.a.and(eax, 3));
        check(c.a.cmp(eax, 3));
        c.fail_unless_zero("pci-testdev: I/O and memory decoding are not enabled\n", 4);
        // Memory tests through BAR0 (ESI), then port tests through BAR1 (EDI).
        for io in [false, true] {
            let size = if io { 128 } else { 2048 };
            for t in 0..3i32 {
                let fail = 16 + i32::from(io) * 8 + t * 2;
                // One helper per access shape: byte write, dword/byte read at `off`.
                if io {
                    check(c.a.mov(edx, edi));
                    check(c.a.mov(al, t as u32));
                    check(c.a.out(dx, al));
                    check(c.a.lea(edx, ptr(edi + 12)));
                    check(c.a.in_(eax, dx));
                } else {
                    check(c.a.mov(byte_ptr(esi), t as u32));
                    check(c.a.mov(eax, dword_ptr(esi + 12)));
                }
                check(c.a.test(eax, eax));
                c.fail_unless_zero(
                    &format!("pci-testdev: test {t} (io={io}) does not start at count 0\n"),
                    fail as u32,
                );
                if io {
                    check(c.a.lea(edx, ptr(edi + 1)));
                    check(c.a.in_(al, dx));
                    check(c.a.movzx(ebp, al));
                    check(c.a.lea(edx, ptr(edi + 8)));
                    check(c.a.in_(al, dx));
                    check(c.a.movzx(ecx, al));
                    check(c.a.lea(edx, ptr(edi + 4)));
                    check(c.a.in_(eax, dx));
                } else {
                    check(c.a.movzx(ebp, byte_ptr(esi + 1)));
                    check(c.a.movzx(ecx, byte_ptr(esi + 8)));
                    check(c.a.mov(eax, dword_ptr(esi + 4)));
                }
                check(c.a.cmp(ebp, 1));
                c.fail_unless_zero("pci-testdev: a test's width is not 1\n", fail as u32);
                check(c.a.cmp(eax, size + t + if io { 3 } else { 0 }));
                c.fail_unless_zero(
                    &format!("pci-testdev: test {t} (io={io}) has the wrong offset\n"),
                    fail as u32,
                );
                // 16 writes of the signature (CL) at the offset (EAX).
                let mut again = c.label();
                check(c.a.mov(ebp, 16));
                c.here(&mut again);
                if io {
                    check(c.a.lea(edx, ptr(edi + eax)));
                    check(c.a.push(eax));
                    check(c.a.mov(al, cl));
                    check(c.a.out(dx, al));
                    check(c.a.pop(eax));
                } else {
                    check(c.a.mov(byte_ptr(esi + eax), cl));
                }
                check(c.a.dec(ebp));
                check(c.a.jnz(again));
                if io {
                    check(c.a.lea(edx, ptr(edi + 12)));
                    check(c.a.in_(eax, dx));
                } else {
                    check(c.a.mov(eax, dword_ptr(esi + 12)));
                }
                let mut counted = c.label();
                check(c.a.test(eax, eax));
                check(c.a.jz(counted));
                check(c.a.cmp(eax, 16));
                c.fail_unless_zero(
                    &format!("pci-testdev: test {t} (io={io}) did not count 16 writes\n"),
                    fail as u32 + 1,
                );
                c.here(&mut counted);
            }
        }
        c.print("pci-testdev: BAR sizing, MMIO and port tests: ok\n");
        c.exit(PASS);
    })
}

/// Why the 32-bit interrupt-driven kernels SKIP under PVM.
const PVM_STOPS_ON_IRQ_SETUP: &str =
    "SKIP: PVM's emulator stops on this 32-bit kernel's interrupt setup (KVM internal error)\n";

/// Where [`pit_timing`]'s IRQ 0 handler counts ticks.
const TICKS: u32 = 0x7fe0;

/// Time as the guest sees it: the PIT at 1 kHz on IRQ 0 through the 8259, two ticks waited in
/// HLT (an idle CPU), then a loop counting its own iterations until three more ticks, and the
/// TSC over those three. Prints both counts; the kit accepts any value, and under the
/// deterministic clock (`-icount`) two runs print the same ones.
pub fn pit_timing() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        skip_if_pvm(c, PVM_STOPS_ON_IRQ_SETUP);
        count_irq0(c, TICKS);
        // Channel 0, lobyte/hibyte, mode 2 (rate generator), divisor 1193: 1 kHz.
        check(c.a.mov(al, 0x34u32));
        check(c.a.out(0x43, al));
        check(c.a.mov(al, (1193 & 0xff) as u32));
        check(c.a.out(0x40, al));
        check(c.a.mov(al, (1193 >> 8) as u32));
        check(c.a.out(0x40, al));
        check(c.a.sti());
        let mut idle = c.label();
        c.here(&mut idle);
        check(c.a.hlt());
        check(c.a.cmp(dword_ptr(TICKS), 2));
        check(c.a.jb(idle));
        check(c.a.rdtsc());
        check(c.a.mov(edi, eax));
        check(c.a.xor(ebx, ebx));
        let mut spin = c.label();
        c.here(&mut spin);
        check(c.a.inc(ebx));
        check(c.a.cmp(dword_ptr(TICKS), 5));
        check(c.a.jb(spin));
        check(c.a.rdtsc());
        check(c.a.sub(eax, edi));
        check(c.a.cli());
        check(c.a.mov(edi, eax));
        c.print("pit-timing: loop iterations over 3 ticks ");
        check(c.a.mov(eax, ebx));
        c.print_eax_hex();
        c.print(", TSC delta ");
        check(c.a.mov(eax, edi));
        c.print_eax_hex();
        c.print("\n");
        // Three ticks are 3 ms of machine time: the TSC must have moved.
        check(c.a.test(edi, edi));
        let mut moved = c.label();
        check(c.a.jne(moved));
        c.print("pit-timing: the TSC stood still over three timer ticks\n");
        c.exit(2);
        c.here(&mut moved);
        c.print("pit timing: ok\n");
        c.exit(PASS);
    })
}

/// A guest that floods itself with interrupts: the PIT at divisor 1 on IRQ 0 through the
/// 8259, never acknowledged, and the local APIC's timer periodic with a count of 1 (every
/// nanosecond), acknowledged every time. It prints "interrupt flood on" and then "alive" after
/// every 200,000 loop iterations: the host must stay responsive and stop it on a signal.
pub fn interrupt_flood() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        const APIC: u32 = 0xfee0_0000;
        // Only IRQ 0 open.
        init_8259(c, 0xfe, 0xff);
        let (pic_handler, apic_handler) = (c.sym(), c.sym());
        let h = c.addr(pic_handler);
        gate32(c, 0x20, h);
        let h = c.addr(apic_handler);
        gate32(c, 0x40, h);
        load_idt(c, false);
        let mut over = c.label();
        check(c.a.jmp(over));
        // IRQ 0: never acknowledged, so the 8259 holds it in service for good.
        c.bind(pic_handler);
        check(c.a.iretd());
        // The APIC timer: EOI every time, so it comes back as fast as it can.
        c.bind(apic_handler);
        check(c.a.mov(dword_ptr(APIC + 0xb0), 0u32));
        check(c.a.iretd());
        c.here(&mut over);
        // PIT channel 0, mode 2, divisor 1.
        check(c.a.mov(al, 0x34u32));
        check(c.a.out(0x43, al));
        check(c.a.mov(al, 1u32));
        check(c.a.out(0x40, al));
        check(c.a.xor(al, al));
        check(c.a.out(0x40, al));
        // The APIC: software-enabled, timer periodic, vector 0x40, divide by 1, count 1.
        check(c.a.mov(dword_ptr(APIC + 0xf0), 0x1ffu32));
        check(c.a.mov(dword_ptr(APIC + 0x3e0), 0xbu32));
        check(c.a.mov(dword_ptr(APIC + 0x320), 0x20040u32));
        check(c.a.mov(dword_ptr(APIC + 0x380), 1u32));
        check(c.a.sti());
        c.print("interrupt flood on\n");
        let (mut again, mut spin) = (c.label(), c.label());
        c.here(&mut again);
        check(c.a.mov(ecx, 200_000u32));
        c.here(&mut spin);
        check(c.a.dec(ecx));
        check(c.a.jne(spin));
        c.print("alive\n");
        check(c.a.jmp(again));
    })
}

/// Where [`rtc_periodic`]'s IRQ 8 handler counts periodic interrupts.
const RTC_COUNT: u32 = 0x7fd0;

/// The CMOS RTC's periodic interrupt: 1024 Hz (register A's default rate) on IRQ 8 through the
/// slave 8259, enabled with register B's PIE; the handler reads register C (which acknowledges
/// it) and counts the PF flags, the CPU halts between them. Four must arrive.
pub fn rtc_periodic() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        skip_if_pvm(c, PVM_STOPS_ON_IRQ_SETUP);
        // Only the cascade and IRQ 8 open.
        init_8259(c, 0xfb, 0xfe);
        let handler = c.sym();
        let h = c.addr(handler);
        gate32(c, 0x28, h);
        load_idt(c, false);
        let mut over = c.label();
        check(c.a.jmp(over));
        c.bind(handler);
        check(c.a.push(eax));
        check(c.a.mov(al, 0x0cu32));
        check(c.a.out(0x70, al));
        check(c.a.in_(al, 0x71));
        check(c.a.test(al, 0x40)); // PF
        let mut not_periodic = c.label();
        check(c.a.je(not_periodic));
        check(c.a.inc(dword_ptr(RTC_COUNT)));
        c.here(&mut not_periodic);
        check(c.a.mov(al, 0x20u32));
        check(c.a.out(0xa0, al));
        check(c.a.out(0x20, al));
        check(c.a.pop(eax));
        check(c.a.iretd());
        c.here(&mut over);
        check(c.a.mov(dword_ptr(RTC_COUNT), 0u32));
        // Register C first (a stale flag would hold IRQ 8 high), then PIE in register B.
        check(c.a.mov(al, 0x0cu32));
        check(c.a.out(0x70, al));
        check(c.a.in_(al, 0x71));
        check(c.a.mov(al, 0x0bu32));
        check(c.a.out(0x70, al));
        check(c.a.in_(al, 0x71));
        check(c.a.or(al, 0x40));
        check(c.a.mov(ah, al));
        check(c.a.mov(al, 0x0bu32));
        check(c.a.out(0x70, al));
        check(c.a.mov(al, ah));
        check(c.a.out(0x71, al));
        check(c.a.sti());
        let mut wait = c.label();
        c.here(&mut wait);
        check(c.a.hlt());
        check(c.a.cmp(dword_ptr(RTC_COUNT), 4));
        check(c.a.jb(wait));
        check(c.a.cli());
        c.print("rtc: periodic interrupts on IRQ 8: ok\n");
        c.exit(PASS);
    })
}

/// The master 8259 at vector 0x20 with only IRQ 0 open (the slave masked) and a handler that
/// counts IRQ 0s at `counter` (zeroed here) and acknowledges them.
fn count_irq0(c: &mut Code, counter: u32) {
    init_8259(c, 0xfe, 0xff);
    let handler = c.sym();
    let h = c.addr(handler);
    gate32(c, 0x20, h);
    load_idt(c, false);
    let mut over = c.label();
    check(c.a.jmp(over));
    c.bind(handler);
    check(c.a.push(eax));
    check(c.a.inc(dword_ptr(counter)));
    check(c.a.mov(al, 0x20u32));
    check(c.a.out(0x20, al));
    check(c.a.pop(eax));
    check(c.a.iretd());
    c.here(&mut over);
    check(c.a.mov(dword_ptr(counter), 0u32));
}

/// Where [`hpet_legacy`]'s interrupt handler counts.
const HPET_COUNT: u32 = 0x7fc0;
const HPET: u32 = 0xfed0_0000;

/// The HPET in legacy-replacement mode as Linux boots with it: timer 0 periodic every 10 ms
/// (1,000,000 counts of 10 ns) on IRQ 0 through the 8259; four interrupts, with the main
/// counter past four periods by then.
pub fn hpet_legacy() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        skip_if_pvm(c, PVM_STOPS_ON_IRQ_SETUP);
        // The capabilities: a 10 ns period and legacy replacement.
        let mut bad_caps = c.label();
        check(c.a.mov(eax, dword_ptr(HPET + 4)));
        check(c.a.cmp(eax, 10_000_000));
        check(c.a.jne(bad_caps));
        check(c.a.test(dword_ptr(HPET), 1 << 15));
        check(c.a.je(bad_caps));
        count_irq0(c, HPET_COUNT);
        // Timer 0 as Linux sets it: enabled, periodic, SETVAL, 32-bit; the first comparator,
        // then the period.
        check(c.a.mov(dword_ptr(HPET + 0x100), 0x14cu32));
        for _ in 0..2 {
            check(c.a.mov(dword_ptr(HPET + 0x108), 1_000_000u32));
        }
        // Enabled, legacy replacement.
        check(c.a.mov(dword_ptr(HPET + 0x10), 3u32));
        check(c.a.sti());
        let mut wait = c.label();
        c.here(&mut wait);
        check(c.a.hlt());
        check(c.a.cmp(dword_ptr(HPET_COUNT), 4));
        check(c.a.jb(wait));
        check(c.a.cli());
        let mut slow = c.label();
        check(c.a.cmp(dword_ptr(HPET + 0xf0), 4_000_000u32));
        check(c.a.jb(slow));
        check(c.a.mov(dword_ptr(HPET + 0x10), 0u32));
        c.print("hpet: legacy periodic timer 0 on IRQ 0: ok\n");
        c.exit(PASS);
        c.here(&mut slow);
        c.print("hpet: four interrupts before four periods had passed\n");
        c.exit(2);
        c.here(&mut bad_caps);
        c.print("hpet: unexpected capabilities ");
        check(c.a.mov(eax, dword_ptr(HPET)));
        c.print_eax_hex();
        c.print("\n");
        c.exit(3);
    })
}
