//! Kernels that check the boot information a loader passes (Multiboot, Linux, PVH).

use iced_x86::code_asm::*;

use crate::kit::{check, Kernel, KERNEL_STACK, PASS};

use super::common::*;

/// What [`multiboot_info`] expects the loader to have passed.
#[derive(Clone, Debug)]
pub struct MultibootExpect {
    /// The kernel command line must end with this (the loader puts the kernel path first).
    pub cmdline_suffix: String,
    /// The single module's first bytes.
    pub module_prefix: Vec<u8>,
    /// Guest RAM in bytes (below the PCI hole).
    pub memory: u64,
}

/// Checks the Multiboot information the loader passed: magic, memory sizes, command line,
/// module and memory map.
pub fn multiboot_info(e: MultibootExpect) -> Vec<u8> {
    Kernel::build(move |k| {
        let c = &mut k.c32;
        // EDI = magic, EBP = info (saved by the kit's entry code).
        check(c.a.cmp(edi, 0x2bad_b002u32 as i32));
        c.fail_unless_zero("multiboot: bad magic in EAX\n", 2);
        // flags: memory (0), cmdline (2), mods (3), mmap (6) all set.
        check(c.a.mov(eax, dword_ptr(ebp)));
        check(c.a.and(eax, 0x4d));
        check(c.a.cmp(eax, 0x4d));
        c.fail_unless_zero("multiboot: flags lack mem/cmdline/mods/mmap\n", 3);
        check(c.a.cmp(dword_ptr(ebp + 4), 639));
        c.fail_unless_zero("multiboot: mem_lower is not 639 KiB\n", 4);
        // mem_upper: KiB of RAM from 1 MiB up to the first hole. Firmware may keep a little
        // at the top for itself (QEMU's BIOS does), so accept up to 1 MiB less than RAM.
        let upper = ((e.memory.min(0xc000_0000) - 0x10_0000) / 1024) as i32;
        let (mut bad, mut good) = (c.label(), c.label());
        check(c.a.mov(eax, dword_ptr(ebp + 8)));
        check(c.a.cmp(eax, upper));
        check(c.a.ja(bad));
        check(c.a.cmp(eax, upper - 1024));
        check(c.a.jae(good));
        c.here(&mut bad);
        c.print("multiboot: mem_upper does not match the RAM size: ");
        c.print_eax_hex();
        c.print(" KiB\n");
        c.exit(5);
        c.here(&mut good);
        // Command line: find its end, compare the suffix.
        let mut scan = c.label();
        check(c.a.mov(esi, dword_ptr(ebp + 16)));
        check(c.a.mov(ebx, esi));
        c.here(&mut scan);
        check(c.a.inc(esi));
        check(c.a.cmp(byte_ptr(esi - 1), 0));
        check(c.a.jne(scan));
        check(c.a.sub(esi, (e.cmdline_suffix.len() + 1) as i32));
        check(c.a.cmp(esi, ebx));
        let mut long_enough = c.label();
        check(c.a.jae(long_enough));
        c.print("multiboot: command line too short\n");
        c.exit(6);
        c.here(&mut long_enough);
        compare_bytes(c, e.cmdline_suffix.as_bytes());
        c.fail_unless_zero("multiboot: command line does not end as expected\n", 7);
        // One module with the expected contents.
        check(c.a.cmp(dword_ptr(ebp + 20), 1));
        c.fail_unless_zero("multiboot: mods_count is not 1\n", 8);
        check(c.a.mov(ebx, dword_ptr(ebp + 24)));
        check(c.a.mov(esi, dword_ptr(ebx)));
        check(c.a.mov(eax, dword_ptr(ebx + 4)));
        check(c.a.sub(eax, esi));
        check(c.a.cmp(eax, e.module_prefix.len() as i32));
        let mut big_enough = c.label();
        check(c.a.jae(big_enough));
        c.print("multiboot: module is too small\n");
        c.exit(9);
        c.here(&mut big_enough);
        compare_bytes(c, &e.module_prefix);
        c.fail_unless_zero("multiboot: module contents differ\n", 10);
        // Memory map: first entry is RAM at 0 (size field 20, type 1).
        check(c.a.cmp(dword_ptr(ebp + 44), 24));
        let mut has_map = c.label();
        check(c.a.jae(has_map));
        c.print("multiboot: memory map is empty\n");
        c.exit(11);
        c.here(&mut has_map);
        check(c.a.mov(ebx, dword_ptr(ebp + 48)));
        check(c.a.cmp(dword_ptr(ebx), 20));
        c.fail_unless_zero("multiboot: mmap entry size is not 20\n", 12);
        check(c.a.cmp(dword_ptr(ebx + 4), 0));
        c.fail_unless_zero("multiboot: first mmap entry does not start at 0\n", 13);
        check(c.a.cmp(dword_ptr(ebx + 20), 1));
        c.fail_unless_zero("multiboot: first mmap entry is not RAM\n", 14);
        c.print("multiboot info: ok\n");
        c.exit(PASS);
    })
}

/// Diagnostic: prints the hypervisor CPUID leaves (0x40000000–2, 0x40000200–1) as the PVM
/// synthetic CPUID (`invlpg [0xffffffffff4d5650]; cpuid`) reports them.
pub fn probe_hypervisor_cpuid() -> Vec<u8> {
    Kernel::build(|k| {
        enter_long_mode(k);
        let c = &mut k.c64;
        for leaf in [
            0x4000_0000u32,
            0x4000_0001,
            0x4000_0002,
            0x4000_0100,
            0x4000_0200,
            0x4000_0201,
        ] {
            check(c.a.mov(eax, leaf));
            check(c.a.xor(ecx, ecx));
            check(c.a.db(&[0x0f, 0x01, 0x3c, 0x25, 0x50, 0x56, 0x4d, 0xff, 0x0f, 0xa2]));
            check(c.a.push(rdx));
            check(c.a.push(rcx));
            check(c.a.push(rbx));
            c.print_eax_hex();
            c.print(" ");
            for _ in 0..3 {
                check(c.a.pop(rax));
                c.print_eax_hex();
                c.print(" ");
            }
            c.print("\n");
        }
        c.exit(PASS);
    })
}

/// What [`linux_boot_params`] expects the loader to have passed.
#[derive(Clone, Debug)]
pub struct LinuxExpect {
    pub cmdline: String,
    pub initrd_prefix: Vec<u8>,
    pub initrd_size: u32,
    /// Guest RAM in bytes (below the PCI hole).
    pub memory: u64,
}

/// A bzImage whose 64-bit entry checks `boot_params`: the setup header copy, loader type,
/// command line, initrd location and contents, and the E820 map.
pub fn linux_boot_params(e: LinuxExpect) -> Vec<u8> {
    crate::kit::build_bzimage(move |c| {
        check(c.a.mov(rsp, u64::from(KERNEL_STACK)));
        check(c.a.mov(rbp, rsi)); // boot_params
        check(c.a.cmp(dword_ptr(rbp + 0x202), 0x5372_6448));
        c.fail_unless_zero("boot_params: no HdrS in the setup header copy\n", 2);
        check(c.a.cmp(byte_ptr(rbp + 0x210), 0xff));
        c.fail_unless_zero("boot_params: type_of_loader is not 0xff\n", 3);
        // Command line: exact match including the NUL.
        check(c.a.mov(esi, dword_ptr(rbp + 0x228)));
        let mut cmd = e.cmdline.as_bytes().to_vec();
        cmd.push(0);
        compare_bytes(c, &cmd);
        c.fail_unless_zero("boot_params: the command line differs\n", 4);
        // Initrd.
        check(c.a.cmp(dword_ptr(rbp + 0x21c), e.initrd_size as i32));
        c.fail_unless_zero("boot_params: ramdisk_size is wrong\n", 5);
        check(c.a.mov(esi, dword_ptr(rbp + 0x218)));
        check(c.a.test(esi, 0xfff));
        c.fail_unless_zero("boot_params: initrd is not page-aligned\n", 6);
        compare_bytes(c, &e.initrd_prefix);
        c.fail_unless_zero("boot_params: initrd contents differ\n", 7);
        // E820: at least 4 entries; the first is RAM at 0; one RAM entry spans 1 MiB to the
        // end of low memory.
        check(c.a.cmp(byte_ptr(rbp + 0x1e8), 4));
        let mut enough = c.label();
        check(c.a.jae(enough));
        c.print("boot_params: fewer than 4 E820 entries\n");
        c.exit(8);
        c.here(&mut enough);
        check(c.a.cmp(qword_ptr(rbp + 0x2d0), 0));
        c.fail_unless_zero("boot_params: first E820 entry does not start at 0\n", 9);
        check(c.a.cmp(dword_ptr(rbp + 0x2d0 + 16), 1));
        c.fail_unless_zero("boot_params: first E820 entry is not RAM\n", 10);
        let (mut scan, mut next, mut found) = (c.label(), c.label(), c.label());
        check(c.a.movzx(ecx, byte_ptr(rbp + 0x1e8)));
        check(c.a.lea(rbx, qword_ptr(rbp + 0x2d0)));
        c.here(&mut scan);
        check(c.a.cmp(qword_ptr(rbx), 0x10_0000));
        check(c.a.jne(next));
        check(c.a.mov(rax, e.memory.min(0xc000_0000) - 0x10_0000));
        check(c.a.cmp(qword_ptr(rbx + 8), rax));
        check(c.a.jne(next));
        check(c.a.cmp(dword_ptr(rbx + 16), 1));
        check(c.a.je(found));
        c.here(&mut next);
        check(c.a.add(rbx, 20));
        check(c.a.dec(ecx));
        check(c.a.jne(scan));
        c.print("boot_params: no E820 RAM entry from 1 MiB to the end of memory\n");
        c.exit(11);
        c.here(&mut found);
        c.print("boot_params: ok\n");
        c.exit(PASS);
    })
}

/// What [`pvh_start_info`] expects the loader to have passed.
#[derive(Clone, Debug)]
pub struct PvhExpect {
    pub cmdline: String,
    pub module_prefix: Vec<u8>,
    pub module_size: u32,
}

/// A kernel for the PVH entry (wrap it with `kit::to_pvh_elf`): checks `hvm_start_info` in
/// EBX — magic, version, command line, the initrd as module 0, and the memory map.
pub fn pvh_start_info(e: PvhExpect) -> Vec<u8> {
    Kernel::build(move |k| {
        let c = &mut k.c32;
        // EBP = start_info (saved from EBX by the kit's entry code).
        check(c.a.cmp(dword_ptr(ebp), 0x336e_c578));
        c.fail_unless_zero("pvh: bad hvm_start_info magic\n", 2);
        check(c.a.cmp(dword_ptr(ebp + 4), 1));
        let mut v1 = c.label();
        check(c.a.jae(v1));
        c.print("pvh: start_info version below 1 (no memory map)\n");
        c.exit(3);
        c.here(&mut v1);
        check(c.a.mov(esi, dword_ptr(ebp + 24))); // cmdline_paddr
        let mut cmd = e.cmdline.as_bytes().to_vec();
        cmd.push(0);
        compare_bytes(c, &cmd);
        c.fail_unless_zero("pvh: the command line differs\n", 4);
        check(c.a.cmp(dword_ptr(ebp + 12), 1)); // nr_modules
        c.fail_unless_zero("pvh: nr_modules is not 1\n", 5);
        check(c.a.mov(ebx, dword_ptr(ebp + 16))); // modlist_paddr
        check(c.a.cmp(dword_ptr(ebx + 8), e.module_size as i32));
        c.fail_unless_zero("pvh: module size is wrong\n", 6);
        check(c.a.mov(esi, dword_ptr(ebx)));
        compare_bytes(c, &e.module_prefix);
        c.fail_unless_zero("pvh: module contents differ\n", 7);
        // Memory map: entries of (addr, size, type, reserved); the first is RAM at 0.
        check(c.a.cmp(dword_ptr(ebp + 48), 3));
        let mut has_map = c.label();
        check(c.a.jae(has_map));
        c.print("pvh: memory map has fewer than 3 entries\n");
        c.exit(8);
        c.here(&mut has_map);
        check(c.a.mov(ebx, dword_ptr(ebp + 40)));
        check(c.a.cmp(dword_ptr(ebx), 0));
        c.fail_unless_zero("pvh: first memory map entry does not start at 0\n", 9);
        check(c.a.cmp(dword_ptr(ebx + 16), 1));
        c.fail_unless_zero("pvh: first memory map entry is not RAM\n", 10);
        c.print("pvh start_info: ok\n");
        c.exit(PASS);
    })
}
