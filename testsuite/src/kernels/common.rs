//! Building blocks the kernels share: mode switches, paging, gates, skips.

use crate::kit::{Sym, USER_STACK};
use iced_x86::code_asm::*;

use crate::kit::{
    check, sel, Code, Kernel, IDT_ADDR, KERNEL_STACK, LONG_MODE_ADDR, PAGE_TABLES, REAL_MODE_BASE,
    SKIP, TSS_ADDR,
};

/// Drops from protected mode to 16-bit real mode; checks segment arithmetic, far calls and
/// 16-bit flags, and with `interrupts` a software interrupt through the IVT (which PVM-backed
/// KVM cannot deliver in real mode).
/// From the kit's 32-bit entry to real mode: the 16-bit code (continue in `k.c16`) runs at
/// [`REAL_MODE_BASE`] with CS = DS = ES = SS = 0 and SP = 0x7c00.
pub fn enter_real_mode(k: &mut Kernel) {
    k.copy_real_mode_code();
    check(k.c32.a.jmp_far(sel::CODE16, REAL_MODE_BASE));
    let c = &mut k.c16;
    let entry = c.sym();
    // 16-bit protected mode: load 64 KiB data segments, then clear PE.
    check(c.a.mov(ax, u32::from(sel::DATA16)));
    for s in [ds, es, ss] {
        check(c.a.mov(s, ax));
    }
    check(c.a.mov(eax, cr0));
    check(c.a.and(eax, 0xffff_fffeu32 as i32));
    check(c.a.mov(cr0, eax));
    check(c.a.jmp_far(0, c.addr(entry)));
    c.bind(entry);
    check(c.a.xor(ax, ax));
    for s in [ds, es, ss] {
        check(c.a.mov(s, ax));
    }
    check(c.a.mov(sp, 0x7c00u32));
}

/// `WRMSR` of a constant (ECX, EAX, EDX clobbered).
pub fn wrmsr(c: &mut Code, msr: u32, value: u64) {
    check(c.a.mov(ecx, msr));
    check(c.a.mov(eax, value as u32));
    check(c.a.mov(edx, (value >> 32) as u32));
    check(c.a.wrmsr());
}

/// Under Ferrite's KVM backend (its CPUID signature sits at 0x40000100 there, at 0x40000000
/// under the software CPU), prints `reason` (a `SKIP:` line) and ends with [`SKIP`].
pub fn skip_if_kvm(c: &mut Code, reason: &str) {
    use emu_core::paravirt as pv;
    let mut not_kvm = c.label();
    check(c.a.mov(eax, pv::FERRITE_CPUID_BASE));
    check(c.a.cpuid());
    check(c.a.cmp(ebx, pv::signature_registers().0 as i32));
    check(c.a.jne(not_kvm));
    c.print(reason);
    c.exit(SKIP);
    c.here(&mut not_kvm);
}

/// Under PVM (Ferrite's CPUID feature leaf says so), prints `reason` (a `SKIP:` line) and ends
/// with [`SKIP`]. Works in 16-, 32- and 64-bit code; clobbers EAX, EBX, ECX, EDX.
pub fn skip_if_pvm(c: &mut Code, reason: &str) {
    use emu_core::paravirt as pv;
    let mut not_pvm = c.label();
    check(c.a.mov(eax, pv::FERRITE_CPUID_BASE));
    check(c.a.cpuid());
    check(c.a.cmp(ebx, pv::signature_registers().0 as i32));
    check(c.a.jne(not_pvm));
    check(c.a.mov(eax, pv::FERRITE_CPUID_FEATURES));
    check(c.a.cpuid());
    check(c.a.test(eax, pv::features::PVM as i32));
    check(c.a.je(not_pvm));
    c.print(reason);
    c.exit(SKIP);
    c.here(&mut not_pvm);
}

/// Vectors whose exceptions push an error code.
pub const ERROR_CODE_VECTORS: [u32; 8] = [8, 10, 11, 12, 13, 14, 17, 21];

/// Points IDT vectors 0–31 (64-bit gates, DPL 0) at stubs that print the vector, error code
/// and faulting RIP, then fail with 0x7f: a kernel bug or an unsupported feature shows up as
/// a message, not as a triple fault. Loads the IDT.
pub fn install_exception_handlers64(c: &mut Code) {
    let common = c.sym();
    let stubs: Vec<_> = (0..32).map(|_| c.sym()).collect();
    for (v, stub) in stubs.iter().enumerate() {
        let h = c.addr(*stub);
        let at = IDT_ADDR + v as u32 * 16;
        check(c.a.mov(dword_ptr(at), (h & 0xffff) | (u32::from(sel::CODE64) << 16)));
        check(c.a.mov(dword_ptr(at + 4), (h & 0xffff_0000) | 0x8e00));
        check(c.a.mov(dword_ptr(at + 8), 0u32));
        check(c.a.mov(dword_ptr(at + 12), 0u32));
    }
    load_idt(c, true);
    let mut over = c.label();
    check(c.a.jmp(over));
    for (v, stub) in stubs.iter().enumerate() {
        c.bind(*stub);
        if !ERROR_CODE_VECTORS.contains(&(v as u32)) {
            check(c.a.push(0));
        }
        check(c.a.push(v as i32));
        let target = c.addr(common);
        check(c.a.push(target as i32));
        check(c.a.ret());
    }
    c.bind(common);
    // Stack: vector, error code, RIP, CS, RFLAGS, RSP, SS.
    c.print("unexpected exception: vector ");
    check(c.a.mov(rax, qword_ptr(rsp)));
    c.print_eax_hex();
    c.print(", error code ");
    check(c.a.mov(rax, qword_ptr(rsp + 8)));
    c.print_eax_hex();
    c.print(", at ");
    check(c.a.mov(rax, qword_ptr(rsp + 24)));
    c.print_eax_hex();
    c.print(":");
    check(c.a.mov(rax, qword_ptr(rsp + 16)));
    c.print_eax_hex();
    c.print("\n");
    c.exit(0x7f);
    c.here(&mut over);
}

/// Writes an IDT gate for `vector` to `handler` (DPL 3, so `INT n` works from user mode).
pub fn idt_gate(c: &mut Code, vector: u32, handler: u32, long: bool) {
    let code_sel = u32::from(if long { sel::CODE64 } else { sel::CODE32 });
    let lo = (handler & 0xffff) | (code_sel << 16);
    let hi = (handler & 0xffff_0000) | 0xee00; // present, DPL 3, interrupt gate
    let size = if long { 16 } else { 8 };
    let at = IDT_ADDR + vector * size;
    check(c.a.mov(dword_ptr(at), lo));
    check(c.a.mov(dword_ptr(at + 4), hi));
    if long {
        check(c.a.mov(dword_ptr(at + 8), 0u32));
        check(c.a.mov(dword_ptr(at + 12), 0u32));
    }
}

/// How a 32-bit kernel pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging32 {
    /// Paging off: flat segments only.
    Off,
    /// Two-level 32-bit paging with 4 MiB pages (CR4.PSE).
    Legacy,
    /// PAE: a four-entry PDPT and 2 MiB pages.
    Pae,
}

/// Identity-maps 1 GiB and aliases it at 0x40000000 (to physical 0), turns paging on and
/// checks the alias.
pub fn enable_paging32(c: &mut Code, mode: Paging32) {
    let mut fill = c.label();
    let (entry_size, entries, page, cr4_bit) = match mode {
        Paging32::Off => return,
        Paging32::Legacy => (4, 256u32, 0x40_0000, 0x10),
        Paging32::Pae => (8, 512u32, 0x20_0000, 0x20),
    };
    skip_if_pvm(
        c,
        "SKIP: PVM supports only 4-level paging (CR0.PG faults here)\n",
    );
    let pd = match mode {
        Paging32::Off => unreachable!("returned above"),
        Paging32::Legacy => PAGE_TABLES,
        Paging32::Pae => {
            // PDPT entries 0 and 1 (0 and 1 GiB) both point at the one page directory.
            let pd = PAGE_TABLES + 0x1000;
            check(c.a.mov(dword_ptr(PAGE_TABLES), pd | 1));
            check(c.a.mov(dword_ptr(PAGE_TABLES + 8), pd | 1));
            pd
        }
    };
    check(c.a.mov(edi, pd));
    check(c.a.mov(eax, 0x87u32)); // present, writable, user, large page
    check(c.a.mov(ecx, entries));
    c.here(&mut fill);
    check(c.a.mov(dword_ptr(edi), eax));
    if mode == Paging32::Legacy {
        check(c.a.mov(dword_ptr(edi + 1024), eax)); // PDE 256: the alias
    }
    check(c.a.add(eax, page));
    check(c.a.add(edi, entry_size));
    check(c.a.dec(ecx));
    check(c.a.jne(fill));
    check(c.a.mov(eax, cr4));
    check(c.a.or(eax, cr4_bit));
    check(c.a.mov(cr4, eax));
    check(c.a.mov(eax, PAGE_TABLES));
    check(c.a.mov(cr3, eax));
    check(c.a.mov(eax, cr0));
    check(c.a.or(eax, 0x8000_0000u32 as i32));
    check(c.a.mov(cr0, eax));
    check(c.a.mov(dword_ptr(0x4030_0000u32), 0xcafe_f00du32));
    check(c.a.cmp(dword_ptr(0x30_0000u32), 0xcafe_f00du32 as i32));
    c.fail_unless_zero(
        "paging: a write through the alias did not reach physical memory\n",
        2,
    );
}

/// IRETs from 32-bit ring 0 to `entry` at CPL 3 (the kit's user code and data segments, the
/// user stack, IOPL 0, interrupts off) and binds `entry` right after: continue there in user
/// mode.
pub fn iret_to_user32(c: &mut Code, entry: Sym) {
    check(c.a.push(u32::from(sel::USER_DATA)));
    check(c.a.push(USER_STACK));
    check(c.a.push(0x0002u32));
    check(c.a.push(u32::from(sel::USER_CODE32)));
    check(c.a.push(c.addr(entry)));
    check(c.a.iretd());
    c.bind(entry);
}

/// Work done in user mode, checked by the kernel: sums 1..=1000 into EAX/RAX (500500) and
/// touches the user stack. No port I/O: under PVM, user mode runs on the host CPU, which does
/// not honour the guest's IOPL.
pub fn user_work(c: &mut Code) {
    let mut l = c.label();
    check(c.a.xor(eax, eax));
    check(c.a.mov(ecx, 1000u32));
    c.here(&mut l);
    check(c.a.add(eax, ecx));
    check(c.a.dec(ecx));
    check(c.a.jne(l));
}

/// Switches from the kit's 32-bit entry to 64-bit mode at [`LONG_MODE_ADDR`] (PAE paging
/// identity-mapping 1 GiB, EFER.LME, CR0.PG, far jump) and checks EFER.LMA and 64-bit
/// arithmetic there. Continue in `k.c64`.
pub fn enter_long_mode(k: &mut Kernel) {
    let c = &mut k.c32;
    // PML4 → PDPT → PD of 2 MiB pages mapping 1 GiB.
    let mut fill = c.label();
    check(c.a.mov(dword_ptr(PAGE_TABLES), (PAGE_TABLES + 0x1000) | 7));
    check(c.a.mov(dword_ptr(PAGE_TABLES + 0x1000), (PAGE_TABLES + 0x2000) | 7));
    check(c.a.mov(edi, PAGE_TABLES + 0x2000));
    check(c.a.mov(eax, 0x87u32));
    check(c.a.mov(ecx, 512u32));
    c.here(&mut fill);
    check(c.a.mov(dword_ptr(edi), eax));
    check(c.a.add(eax, 0x20_0000));
    check(c.a.add(edi, 8));
    check(c.a.dec(ecx));
    check(c.a.jne(fill));
    check(c.a.mov(eax, cr4));
    check(c.a.or(eax, 0x20)); // PAE
    check(c.a.mov(cr4, eax));
    check(c.a.mov(eax, PAGE_TABLES));
    check(c.a.mov(cr3, eax));
    check(c.a.mov(ecx, 0xc000_0080u32));
    check(c.a.rdmsr());
    check(c.a.or(eax, 0x100)); // LME
    check(c.a.wrmsr());
    check(c.a.mov(eax, cr0));
    check(c.a.or(eax, 0x8000_0000u32 as i32));
    check(c.a.mov(cr0, eax));
    check(c.a.jmp_far(sel::CODE64, LONG_MODE_ADDR));

    let c = &mut k.c64;
    check(c.a.mov(ax, u32::from(sel::DATA32)));
    for s in [ds, es, ss] {
        check(c.a.mov(s, ax));
    }
    check(c.a.mov(rsp, u64::from(KERNEL_STACK)));
    check(c.a.mov(ecx, 0xc000_0080u32));
    check(c.a.rdmsr());
    check(c.a.and(eax, 0x400));
    check(c.a.cmp(eax, 0x400));
    c.fail_unless_zero("long mode: EFER.LMA is clear\n", 2);
    check(c.a.mov(rax, 0x1_2345_6789u64));
    check(c.a.shl(rax, 8));
    check(c.a.mov(rbx, 0x123_4567_8900u64));
    check(c.a.cmp(rax, rbx));
    c.fail_unless_zero("long mode: 64-bit arithmetic is wrong\n", 3);
}

/// Compares the bytes at ESI (RSI in 64-bit code) with `expect`, which is placed in the
/// kernel's code; ZF set when equal. Clobbers ECX, ESI, EDI.
pub fn compare_bytes(c: &mut Code, expect: &[u8]) {
    let sym = c.sym();
    let mut body = c.label();
    check(c.a.jmp(body));
    c.bind(sym);
    check(c.a.db(expect));
    c.here(&mut body);
    check(c.a.mov(edi, c.addr(sym)));
    check(c.a.mov(ecx, expect.len() as u32));
    check(c.a.cld());
    check(c.a.repe().cmpsb());
}

/// Points IDT vector `vector` (32-bit interrupt gate, DPL 0) at `handler`.
pub fn gate32(c: &mut Code, vector: u32, handler: u32) {
    let at = IDT_ADDR + vector * 8;
    check(c.a.mov(
        dword_ptr(at),
        (handler & 0xffff) | (u32::from(sel::CODE32) << 16),
    ));
    check(c.a.mov(dword_ptr(at + 4), (handler & 0xffff_0000) | 0x8e00));
}

/// Fills the kit's TSS with the ring-0 stack ([`KERNEL_STACK`]; SS0 = the kit's data segment
/// for a 32-bit TSS), no I/O bitmap, and loads TR with it.
pub fn load_tss(c: &mut Code, long: bool) {
    check(c.a.mov(dword_ptr(TSS_ADDR + 4), KERNEL_STACK));
    let second = if long { 0 } else { u32::from(sel::DATA32) }; // RSP0 high / SS0
    check(c.a.mov(dword_ptr(TSS_ADDR + 8), second));
    check(c.a.mov(word_ptr(TSS_ADDR + 0x66), 0x68u32));
    check(c.a.mov(ax, u32::from(sel::TSS)));
    check(c.a.ltr(ax));
}

/// Loads IDTR with the kit's IDT at [`IDT_ADDR`] (256 gates of 8 or 16 bytes); the pointer
/// is emitted inline and jumped over.
pub fn load_idt(c: &mut Code, long: bool) {
    let (ptr_sym, mut over) = (c.sym(), c.label());
    check(c.a.jmp(over));
    c.bind(ptr_sym);
    if long {
        check(c.a.dw(&[0xfff]));
        check(c.a.dq(&[u64::from(IDT_ADDR)]));
    } else {
        check(c.a.dw(&[0x7ff]));
        check(c.a.dd(&[IDT_ADDR]));
    }
    c.here(&mut over);
    check(c.a.lidt(ptr(c.addr(ptr_sym))));
}

/// Initialises the 8259 pair as a PC OS does — master at vector 0x20, slave at 0x28, cascaded
/// on IRQ 2, 8086 mode — and sets the masks (a set bit masks that line).
pub fn init_8259(c: &mut Code, master_mask: u8, slave_mask: u8) {
    for (port, v) in [
        (0x20u32, 0x11u8),
        (0x21, 0x20),
        (0x21, 0x04),
        (0x21, 0x01),
        (0xa0, 0x11),
        (0xa1, 0x28),
        (0xa1, 0x02),
        (0xa1, 0x01),
        (0x21, master_mask),
        (0xa1, slave_mask),
    ] {
        check(c.a.mov(al, u32::from(v)));
        check(c.a.out(port as i32, al));
    }
}
