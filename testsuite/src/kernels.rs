//! The kernels of the test-kernel kit, one function each. Each prints what it checked on COM1
//! and passes by writing [`PASS`] to the debug-exit port; a failed check prints why and exits
//! with a distinct non-zero value.

use iced_x86::code_asm::*;

use crate::kit::{
    check, sel, Code, Kernel, IDT_ADDR, KERNEL_STACK, LONG_MODE_ADDR, PAGE_TABLES, PASS,
    REAL_MODE_BASE, SKIP, TSS_ADDR, USER_STACK,
};

/// Prints a line in 32-bit protected mode and passes: the smallest end-to-end check.
pub fn hello32() -> Vec<u8> {
    Kernel::build(|k| {
        k.c32.print("hello from protected mode\n");
        k.c32.exit(PASS);
    })
}

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

pub fn real_mode(interrupts: bool) -> Vec<u8> {
    Kernel::build(move |k| {
        enter_real_mode(k);
        let c = &mut k.c16;
        let (handler, ivtr, far_fn) = (c.sym(), c.sym(), c.sym());
        check(c.a.lidt(ptr(c.addr(ivtr))));
        c.print("real mode: entered\n");
        if interrupts {
            skip_if_pvm(c, "SKIP: under PVM, INT n in real mode does not complete\n");
            // An interrupt through the IVT.
            check(c.a.mov(word_ptr(0x81u32 * 4), c.addr(handler)));
            check(c.a.mov(word_ptr(0x81u32 * 4 + 2), 0u32));
            check(c.a.xor(bx, bx));
            check(c.a.int(0x81));
            check(c.a.cmp(bx, 0x1234));
            c.fail_unless_zero("real mode: INT 0x81 did not reach its IVT handler\n", 2);
            c.print("real mode: INT through the IVT: ok\n");
        }
        // A far call and return across segments (CS = 0x0700 maps the code at 0x7000 + IP).
        check(c.a.xor(cx, cx));
        check(c.a.call_far(0, c.addr(far_fn)));
        check(c.a.cmp(cx, 0x4321));
        c.fail_unless_zero("real mode: far call/return failed\n", 7);
        // Segment arithmetic: 0x1001:0000 is linear 0x10010.
        check(c.a.mov(byte_ptr(0x10u32), 0u32));
        check(c.a.mov(ax, 0x1000u32));
        check(c.a.mov(es, ax));
        check(c.a.mov(byte_ptr(0x10u32).es(), 0x5au32));
        check(c.a.mov(ax, 0x1001u32));
        check(c.a.mov(ds, ax));
        check(c.a.cmp(byte_ptr(0u32), 0x5a));
        check(c.a.mov(ax, 0u32));
        check(c.a.mov(ds, ax));
        c.fail_unless_zero("real mode: segment base is not selector * 16\n", 3);
        check(c.a.cmp(byte_ptr(0x10u32), 0));
        c.fail_unless_zero(
            "real mode: a write through ES landed in the wrong place\n",
            4,
        );
        // 16-bit arithmetic wraps and carries at 16 bits.
        check(c.a.mov(ax, 0xffffu32));
        check(c.a.add(ax, 1));
        let mut carried = c.label();
        check(c.a.jc(carried));
        c.print("real mode: 16-bit add did not carry\n");
        c.exit(5);
        c.here(&mut carried);
        check(c.a.test(ax, ax));
        c.fail_unless_zero("real mode: 16-bit add did not wrap\n", 6);
        c.print("real mode: ok\n");
        c.exit(PASS);

        c.bind(handler);
        check(c.a.mov(bx, 0x1234u32));
        check(c.a.iret());
        c.bind(far_fn);
        check(c.a.mov(cx, 0x4321u32));
        check(c.a.retf());
        c.bind(ivtr);
        check(c.a.dw(&[0x3ff, 0, 0]));
    })
}

/// `WRMSR` of a constant (ECX, EAX, EDX clobbered).
fn wrmsr(c: &mut Code, msr: u32, value: u64) {
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
const ERROR_CODE_VECTORS: [u32; 8] = [8, 10, 11, 12, 13, 14, 17, 21];

/// Points IDT vectors 0–31 (64-bit gates, DPL 0) at stubs that print the vector, error code
/// and faulting RIP, then fail with 0x7f: a kernel bug or an unsupported feature shows up as
/// a message, not as a triple fault. Loads the IDT.
pub fn install_exception_handlers64(c: &mut Code) {
    let (common, idtr) = (c.sym(), c.sym());
    let stubs: Vec<_> = (0..32).map(|_| c.sym()).collect();
    for (v, stub) in stubs.iter().enumerate() {
        let h = c.addr(*stub);
        let at = IDT_ADDR + v as u32 * 16;
        check(c.a.mov(dword_ptr(at), (h & 0xffff) | (u32::from(sel::CODE64) << 16)));
        check(c.a.mov(dword_ptr(at + 4), (h & 0xffff_0000) | 0x8e00));
        check(c.a.mov(dword_ptr(at + 8), 0u32));
        check(c.a.mov(dword_ptr(at + 12), 0u32));
    }
    check(c.a.lidt(ptr(c.addr(idtr))));
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
    c.bind(idtr);
    check(c.a.dw(&[0xfff]));
    check(c.a.dq(&[u64::from(IDT_ADDR)]));
    c.here(&mut over);
}

/// Writes an IDT gate for `vector` to `handler` (DPL 3, so `INT n` works from user mode).
fn idt_gate(c: &mut Code, vector: u32, handler: u32, long: bool) {
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
fn enable_paging32(c: &mut Code, mode: Paging32) {
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

/// Work done in user mode, checked by the kernel: sums 1..=1000 into EAX/RAX (500500) and
/// touches the user stack. No port I/O: under PVM, user mode runs on the host CPU, which does
/// not honour the guest's IOPL.
fn user_work(c: &mut Code) {
    let mut l = c.label();
    check(c.a.xor(eax, eax));
    check(c.a.mov(ecx, 1000u32));
    c.here(&mut l);
    check(c.a.add(eax, ecx));
    check(c.a.dec(ecx));
    check(c.a.jne(l));
}

/// 32-bit protected mode with paging; with `user`, drops to CPL 3 through IRET and comes back
/// through an interrupt gate with a stack switch from the TSS.
pub fn protected32(paging: Paging32, user: bool) -> Vec<u8> {
    Kernel::build(move |k| {
        let c = &mut k.c32;
        enable_paging32(c, paging);
        c.print(match paging {
            Paging32::Off => "protected mode, no paging: ok\n",
            Paging32::Legacy => "protected mode, 32-bit paging: ok\n",
            Paging32::Pae => "protected mode, PAE paging: ok\n",
        });
        if !user {
            c.exit(PASS);
            return;
        }
        skip_if_pvm(c, "SKIP: PVM cannot run legacy (non-long-mode) user code\n");
        let (user_entry, handler, idtr, trap_insn) = (c.sym(), c.sym(), c.sym(), c.sym());
        // TSS: ESP0/SS0 for the ring change, no I/O bitmap.
        check(c.a.mov(dword_ptr(TSS_ADDR + 4), KERNEL_STACK));
        check(c.a.mov(dword_ptr(TSS_ADDR + 8), u32::from(sel::DATA32)));
        check(c.a.mov(word_ptr(TSS_ADDR + 0x66), 0x68u32));
        check(c.a.mov(ax, u32::from(sel::TSS)));
        check(c.a.ltr(ax));
        let h = c.addr(handler);
        idt_gate(c, 6, h, false); // #UD: the way back from user mode
        check(c.a.lidt(ptr(c.addr(idtr))));
        // IRET to CPL 3.
        check(c.a.push(u32::from(sel::USER_DATA)));
        check(c.a.push(USER_STACK));
        check(c.a.push(0x0002u32));
        check(c.a.push(u32::from(sel::USER_CODE32)));
        check(c.a.push(c.addr(user_entry)));
        check(c.a.iretd());

        c.bind(user_entry);
        check(c.a.mov(ax, u32::from(sel::USER_DATA)));
        check(c.a.mov(ds, ax));
        check(c.a.mov(es, ax));
        check(c.a.mov(ax, cs));
        check(c.a.and(ax, 3));
        check(c.a.cmp(ax, 3));
        let mut cpl3 = c.label();
        check(c.a.je(cpl3));
        check(c.a.xor(eax, eax)); // the kernel reports the wrong CPL
        check(c.a.ud2());
        c.here(&mut cpl3);
        user_work(c);
        c.bind(trap_insn);
        check(c.a.ud2());
        let mut spin = c.label();
        c.here(&mut spin);
        check(c.a.jmp(spin)); // the kernel never returns here

        c.bind(handler);
        // Stack: EIP, CS, EFLAGS, ESP, SS of the faulting user code.
        check(c.a.cmp(dword_ptr(esp), c.addr(trap_insn) as i32));
        c.fail_unless_zero("kernel: saved user EIP is wrong\n", 9);
        check(c.a.mov(ebx, dword_ptr(esp + 4)));
        check(c.a.and(ebx, 3));
        check(c.a.cmp(ebx, 3));
        c.fail_unless_zero("kernel: interrupted CS is not CPL 3\n", 5);
        check(c.a.cmp(dword_ptr(esp + 12), USER_STACK as i32));
        c.fail_unless_zero("kernel: saved user ESP is wrong\n", 6);
        check(c.a.cmp(esp, (KERNEL_STACK - 20) as i32));
        c.fail_unless_zero("kernel: no stack switch to TSS.ESP0\n", 7);
        check(c.a.cmp(eax, 500_500));
        c.fail_unless_zero(
            "kernel: user mode did not run at CPL 3 or computed a wrong sum\n",
            8,
        );
        c.print("32-bit user mode (CPL 3): ok, back through #UD\n");
        c.exit(PASS);

        c.bind(idtr);
        check(c.a.dw(&[0x7ff]));
        check(c.a.dd(&[IDT_ADDR]));
    })
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

/// How user-mode code in [`long64`] gets back to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserReturn {
    /// `UD2`: a fault through a DPL-0 gate, with RSP0 from the TSS. Works under every
    /// backend, PVM included.
    Exception,
    /// `INT 0x80` through a DPL-3 interrupt gate, with RSP0 from the TSS.
    Interrupt,
    /// `SYSCALL` to LSTAR (64-bit user code) or CSTAR (32-bit compatibility-mode user code).
    Syscall,
}

/// Which user mode [`long64`] drops to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserMode {
    None,
    /// 64-bit code at CPL 3.
    Long(UserReturn),
    /// 32-bit code in a compatibility-mode segment at CPL 3.
    Compat(UserReturn),
}

/// Long mode through the architectural sequence (PAE, EFER.LME, CR0.PG, far jump); then,
/// as `user` says, IRETQ to CPL 3 and back to the kernel.
pub fn long64(user: UserMode) -> Vec<u8> {
    Kernel::build(move |k| {
        enter_long_mode(k);
        let c = &mut k.c64;
        c.print("long mode: ok\n");
        let (ret, compat) = match user {
            UserMode::None => {
                c.exit(PASS);
                return;
            }
            UserMode::Long(r) => (r, false),
            UserMode::Compat(r) => (r, true),
        };
        let (user_entry, handler, trap_insn) = (c.sym(), c.sym(), c.sym());
        let user_cs = if compat {
            sel::USER_CODE32
        } else {
            sel::USER_CODE64
        };
        if ret == UserReturn::Syscall {
            // EFER.SCE; STAR (see `sel::STAR`); LSTAR/CSTAR: the handler, for 64-bit and
            // compatibility-mode callers; SFMASK: nothing masked.
            check(c.a.mov(ecx, 0xc000_0080u32));
            check(c.a.rdmsr());
            check(c.a.or(eax, 1));
            check(c.a.wrmsr());
            wrmsr(c, 0xc000_0081, sel::STAR);
            let h = u64::from(c.addr(handler));
            wrmsr(c, 0xc000_0082, h);
            wrmsr(c, 0xc000_0083, h);
            wrmsr(c, 0xc000_0084, 0);
        }
        match ret {
            UserReturn::Exception => {}
            UserReturn::Interrupt => skip_if_pvm(
                c,
                "SKIP: under PVM, INT 0x80 from user mode arrives as #UD\n",
            ),
            UserReturn::Syscall => {
                skip_if_pvm(c, "SKIP: under PVM, the SYSCALL target runs at CPL 3\n")
            }
        }
        check(c.a.mov(dword_ptr(TSS_ADDR + 4), KERNEL_STACK)); // RSP0 low
        check(c.a.mov(dword_ptr(TSS_ADDR + 8), 0u32)); // RSP0 high
        check(c.a.mov(word_ptr(TSS_ADDR + 0x66), 0x68u32));
        check(c.a.mov(ax, u32::from(sel::TSS)));
        check(c.a.ltr(ax));
        // TSS.RSP0 for the stack switch; the IDT with the return path's gate.
        install_exception_handlers64(c);
        let h = c.addr(handler);
        match ret {
            UserReturn::Exception => idt_gate(c, 6, h, true),
            UserReturn::Interrupt => idt_gate(c, 0x80, h, true),
            UserReturn::Syscall => {}
        }
        check(c.a.push(i32::from(sel::USER_DATA)));
        check(c.a.push(USER_STACK as i32));
        check(c.a.push(0x0002i32));
        check(c.a.push(i32::from(user_cs)));
        check(c.a.push(c.addr(user_entry) as i32));
        check(c.a.iretq());

        // The user code: 64-bit, or 32-bit for a compatibility-mode segment. Its encoding is
        // the same in both for what it does (no REX prefixes), apart from the return.
        c.bind(user_entry);
        check(c.a.mov(ax, cs));
        check(c.a.and(ax, 3));
        check(c.a.cmp(ax, 3));
        let mut cpl3 = c.label();
        check(c.a.je(cpl3));
        check(c.a.xor(edx, edx)); // the kernel reports the wrong CPL
        c.here(&mut cpl3);
        user_work(c);
        // EDX = 0x5a5a marks the end of the work (no REX: identical in 32-bit code).
        check(c.a.mov(edx, 0x5a5au32));
        c.bind(trap_insn);
        match ret {
            UserReturn::Exception => check(c.a.ud2()),
            UserReturn::Interrupt => check(c.a.int(0x80)),
            UserReturn::Syscall => check(c.a.syscall()),
        }
        let mut spin = c.label();
        c.here(&mut spin);
        check(c.a.jmp(spin));

        c.bind(handler);
        match ret {
            UserReturn::Exception | UserReturn::Interrupt => {
                // Stack: RIP, CS, RFLAGS, RSP, SS. A fault saves the faulting RIP, INT n the
                // RIP after it.
                let rip = c.addr(trap_insn) + if ret == UserReturn::Interrupt { 2 } else { 0 };
                check(c.a.cmp(qword_ptr(rsp), rip as i32));
                c.fail_unless_zero("kernel: saved user RIP is wrong\n", 5);
                check(c.a.mov(rbx, qword_ptr(rsp + 8)));
                check(c.a.cmp(rbx, i32::from(user_cs)));
                c.fail_unless_zero("kernel: interrupted CS is not the user segment\n", 6);
                check(c.a.cmp(qword_ptr(rsp + 24), USER_STACK as i32));
                c.fail_unless_zero("kernel: saved user RSP is wrong\n", 7);
                check(c.a.cmp(rsp, (KERNEL_STACK - 40) as i32));
                c.fail_unless_zero("kernel: no stack switch to TSS.RSP0\n", 8);
            }
            UserReturn::Syscall => {
                // SYSCALL: CS from STAR, RSP unchanged (still the user stack).
                check(c.a.mov(bx, cs));
                check(c.a.cmp(bx, i32::from(sel::CODE64)));
                c.fail_unless_zero("kernel: SYSCALL did not load CS from STAR\n", 6);
                check(c.a.cmp(rsp, USER_STACK as i32));
                c.fail_unless_zero("kernel: RSP changed across SYSCALL\n", 7);
                check(c.a.mov(rsp, u64::from(KERNEL_STACK)));
            }
        }
        check(c.a.cmp(edx, 0x5a5a));
        c.fail_unless_zero("kernel: user mode did not run at CPL 3\n", 9);
        check(c.a.cmp(eax, 500_500));
        c.fail_unless_zero("kernel: user mode computed a wrong sum\n", 10);
        c.print(&format!(
            "{} (CPL 3): ok, back through {}\n",
            if compat {
                "compatibility-mode user code"
            } else {
                "64-bit user mode"
            },
            match ret {
                UserReturn::Exception => "#UD",
                UserReturn::Interrupt => "INT 0x80",
                UserReturn::Syscall => "SYSCALL",
            }
        ));
        if ret != UserReturn::Syscall {
            c.exit(PASS);
            return;
        }
        // SYSRET back to CPL 3 (to 64-bit code with REX.W, else to compatibility mode); the
        // user code there ends with UD2, whose handler checks where it came from.
        let (after, ud) = (c.sym(), c.sym());
        let h = c.addr(ud);
        idt_gate(c, 6, h, true);
        check(c.a.mov(ecx, c.addr(after)));
        check(c.a.mov(r11d, 0x2u32));
        check(c.a.mov(rsp, u64::from(USER_STACK)));
        if compat {
            check(c.a.sysret());
        } else {
            check(c.a.sysretq());
        }
        c.bind(after);
        check(c.a.ud2());
        c.bind(ud);
        check(c.a.mov(rbx, qword_ptr(rsp + 8)));
        check(c.a.cmp(rbx, i32::from(user_cs)));
        c.fail_unless_zero("kernel: SYSRET did not return to the user segment\n", 12);
        check(c.a.mov(rbx, qword_ptr(rsp)));
        check(c.a.cmp(ebx, c.addr(after) as i32));
        c.fail_unless_zero("kernel: SYSRET did not return to RCX\n", 13);
        c.print("SYSRET to CPL 3: ok\n");
        c.exit(PASS);
    })
}

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

/// Compares the bytes at ESI (RSI in 64-bit code) with `expect`, which is placed in the
/// kernel's code; ZF set when equal. Clobbers ECX, ESI, EDI.
fn compare_bytes(c: &mut Code, expect: &[u8]) {
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

/// RIP-relative addressing in 64-bit code: loads a string's address with `lea rsi, [rip+d]`
/// and reads data with `mov eax, [rip+d]`.
pub fn rip_relative() -> Vec<u8> {
    Kernel::build(|k| {
        enter_long_mode(k);
        let c = &mut k.c64;
        let (mut text, mut word, mut after) = (c.label(), c.label(), c.label());
        check(c.a.jmp(after));
        c.here(&mut text);
        check(c.a.db(b"rip-relative: ok\n\0"));
        c.here(&mut word);
        check(c.a.dd(&[0x1234_5678]));
        c.here(&mut after);
        check(c.a.mov(eax, dword_ptr(word)));
        check(c.a.cmp(eax, 0x1234_5678));
        c.fail_unless_zero("rip-relative: a load read the wrong value\n", 2);
        check(c.a.lea(rsi, ptr(text)));
        check(c.a.call(c.print_fn()));
        c.exit(PASS);
    })
}

/// Page faults in long mode: not present (read and write), a write to a read-only page with
/// CR0.WP, an instruction fetch from an NX page, and a reserved bit. Each must arrive as #PF,
/// on the IST1 stack the gate names, with the architectural error code and CR2, and resume
/// after the faulting instruction.
pub fn page_faults() -> Vec<u8> {
    Kernel::build(|k| {
        enter_long_mode(k);
        let c = &mut k.c64;
        install_exception_handlers64(c);
        // A 4 KiB page table for the 2 MiB at 0x40000000 (PD entry 0 of the second GiB): page
        // 0 not present, page 1 read-only, page 2 NX, page 3 with a reserved address bit.
        const PT: u32 = PAGE_TABLES + 0x4000;
        const PD1: u32 = PAGE_TABLES + 0x3000;
        const WINDOW: u32 = 0x4000_0000;
        const FRAME: u32 = 0x30_0000;
        check(c.a.mov(dword_ptr(PAGE_TABLES + 0x1000 + 8), PD1 | 7)); // PDPT[1]
        check(c.a.mov(dword_ptr(PD1), PT | 7));
        check(c.a.mov(dword_ptr(PT), 0u32)); // not present
        check(c.a.mov(dword_ptr(PT + 8), (FRAME + 0x1000) | 0x5)); // present, read-only
        check(c.a.mov(dword_ptr(PT + 16), (FRAME + 0x2000) | 0x7));
        check(c.a.mov(dword_ptr(PT + 20), 0x8000_0000u32)); // NX
        check(c.a.mov(dword_ptr(PT + 24), (FRAME + 0x3000) | 0x7));
        check(c.a.mov(dword_ptr(PT + 28), 0x000f_0000u32)); // address bit 51: reserved
                                                            // EFER.NXE and CR0.WP.
        check(c.a.mov(ecx, 0xc000_0080u32));
        check(c.a.rdmsr());
        check(c.a.or(eax, 0x800));
        check(c.a.wrmsr());
        check(c.a.mov(rax, cr0));
        check(c.a.or(eax, 0x1_0000));
        check(c.a.mov(cr0, rax));
        check(c.a.mov(rax, cr3));
        check(c.a.mov(cr3, rax)); // flush

        // The #PF handler records the error code and CR2, then resumes at [RESUME].
        const ERR: u32 = 0x7f00;
        const CR2: u32 = 0x7f08;
        const RESUME: u32 = 0x7f10;
        let (handler, mut over) = (c.sym(), c.label());
        let h = c.addr(handler);
        // The #PF gate uses IST1: its handler runs on a stack of its own from the TSS.
        const IST1: u32 = 0x16_f000;
        check(c.a.mov(dword_ptr(TSS_ADDR + 0x24), IST1));
        check(c.a.mov(dword_ptr(TSS_ADDR + 0x28), 0u32));
        check(c.a.mov(word_ptr(TSS_ADDR + 0x66), 0x68u32));
        check(c.a.mov(ax, u32::from(sel::TSS)));
        check(c.a.ltr(ax));
        let at = IDT_ADDR + 14 * 16;
        check(c.a.mov(dword_ptr(at), (h & 0xffff) | (u32::from(sel::CODE64) << 16)));
        check(c.a.mov(dword_ptr(at + 4), (h & 0xffff_0000) | 0x8e01));
        check(c.a.jmp(over));
        c.bind(handler);
        check(c.a.cmp(rsp, (IST1 - 48) as i32));
        c.fail_unless_zero("page-fault: the handler is not on the IST1 stack\n", 6);
        check(c.a.pop(rax)); // error code
        check(c.a.mov(qword_ptr(ERR), rax));
        check(c.a.mov(rax, cr2));
        check(c.a.mov(qword_ptr(CR2), rax));
        check(c.a.mov(rax, qword_ptr(RESUME)));
        check(c.a.mov(qword_ptr(rsp), rax));
        check(c.a.iretq());
        c.here(&mut over);

        // (what, the faulting access, expected error code, expected CR2)
        let probe = |c: &mut Code, name: &str, emit: &dyn Fn(&mut Code), code: u32, addr: u32| {
            let resume = c.sym();
            let r = c.addr(resume);
            check(c.a.mov(dword_ptr(RESUME), r));
            check(c.a.mov(dword_ptr(RESUME + 4), 0u32));
            check(c.a.mov(qword_ptr(ERR), -1));
            emit(c);
            c.print(&format!("page-fault: {name}: no #PF\n"));
            c.exit(3);
            c.bind(resume);
            let mut code_ok = c.label();
            check(c.a.cmp(qword_ptr(ERR), code as i32));
            check(c.a.je(code_ok));
            c.print(&format!(
                "page-fault: {name}: wrong error code (expected {code:#x}): "
            ));
            check(c.a.mov(rax, qword_ptr(ERR)));
            c.print_eax_hex();
            c.print("\n");
            c.exit(4);
            c.here(&mut code_ok);
            check(c.a.mov(eax, addr));
            check(c.a.cmp(qword_ptr(CR2), rax));
            c.fail_unless_zero(&format!("page-fault: {name}: wrong CR2\n"), 5);
        };
        probe(
            c,
            "read, not present",
            &|c| check(c.a.mov(eax, dword_ptr(WINDOW + 0x10))),
            0,
            WINDOW + 0x10,
        );
        probe(
            c,
            "write, not present",
            &|c| check(c.a.mov(dword_ptr(WINDOW + 0x20), 1u32)),
            2,
            WINDOW + 0x20,
        );
        probe(
            c,
            "write, read-only, CR0.WP",
            &|c| check(c.a.mov(dword_ptr(WINDOW + 0x1008), 1u32)),
            3,
            WINDOW + 0x1008,
        );
        probe(
            c,
            "fetch, NX",
            &|c| {
                check(c.a.mov(eax, WINDOW + 0x2000));
                check(c.a.call(rax));
            },
            0x11,
            WINDOW + 0x2000,
        );
        probe(
            c,
            "read, reserved bit",
            &|c| check(c.a.mov(eax, dword_ptr(WINDOW + 0x3004))),
            9,
            WINDOW + 0x3004,
        );
        // The read-only page is still readable.
        check(c.a.mov(eax, dword_ptr(WINDOW + 0x1000)));
        c.print("page faults: ok\n");
        c.exit(PASS);
    })
}

/// Points IDT vector `vector` (32-bit interrupt gate, DPL 0) at `handler`.
fn gate32(c: &mut Code, vector: u32, handler: u32) {
    let at = IDT_ADDR + vector * 8;
    check(c.a.mov(
        dword_ptr(at),
        (handler & 0xffff) | (u32::from(sel::CODE32) << 16),
    ));
    check(c.a.mov(dword_ptr(at + 4), (handler & 0xffff_0000) | 0x8e00));
}

/// Protection faults in 32-bit protected mode: segment loads that must raise #NP, #SS or
/// #GP with the selector as error code, a limit violation and a null-segment access (#GP(0)).
/// Each fault is caught, its vector and error code checked, and execution resumes.
pub fn protection_faults() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        skip_if_pvm(
            c,
            "SKIP: PVM cannot return from a legacy protected-mode handler (KVM's emulator has no protected-mode IRET)\n",
        );
        const VEC: u32 = 0x7f00;
        const ERR: u32 = 0x7f04;
        const RESUME: u32 = 0x7f08;
        // #NP, #SS, #GP record (vector, error code) and resume at [RESUME].
        let (idtr, mut over) = (c.sym(), c.label());
        let handlers: Vec<_> = [11u32, 12, 13].iter().map(|_| c.sym()).collect();
        for (v, h) in [11u32, 12, 13].iter().zip(&handlers) {
            let a = c.addr(*h);
            gate32(c, *v, a);
        }
        check(c.a.lidt(ptr(c.addr(idtr))));
        check(c.a.jmp(over));
        for (v, h) in [11u32, 12, 13].iter().zip(&handlers) {
            c.bind(*h);
            // The faulting code may have left DS null: reload it before storing.
            check(c.a.mov(ax, u32::from(sel::DATA32)));
            check(c.a.mov(ds, ax));
            check(c.a.mov(dword_ptr(VEC), *v));
            check(c.a.pop(eax));
            check(c.a.mov(dword_ptr(ERR), eax));
            check(c.a.mov(eax, dword_ptr(RESUME)));
            check(c.a.mov(dword_ptr(esp), eax));
            check(c.a.iretd());
        }
        c.bind(idtr);
        check(c.a.dw(&[0x7ff]));
        check(c.a.dd(&[IDT_ADDR]));
        c.here(&mut over);

        let mut n = 2;
        let mut probe = |c: &mut Code, name: &str, emit: &dyn Fn(&mut Code), vec: u32, err: u32| {
            let resume = c.sym();
            let r = c.addr(resume);
            check(c.a.mov(dword_ptr(RESUME), r));
            check(c.a.mov(dword_ptr(VEC), u32::MAX));
            emit(c);
            c.print(&format!("protection: {name}: no fault\n"));
            c.exit(n);
            c.bind(resume);
            // Reload what a test may have left null.
            check(c.a.mov(ax, u32::from(sel::DATA32)));
            check(c.a.mov(ds, ax));
            check(c.a.mov(es, ax));
            check(c.a.cmp(dword_ptr(VEC), vec as i32));
            c.fail_unless_zero(&format!("protection: {name}: wrong vector\n"), n + 1);
            check(c.a.cmp(dword_ptr(ERR), err as i32));
            c.fail_unless_zero(&format!("protection: {name}: wrong error code\n"), n + 2);
            n += 3;
        };
        let load = |s: AsmRegisterSegment, selector: u16| {
            move |c: &mut Code| {
                check(c.a.mov(ax, u32::from(selector)));
                check(c.a.mov(s, ax));
            }
        };
        probe(
            c,
            "DS not present",
            &load(ds, sel::NOT_PRESENT),
            11,
            u32::from(sel::NOT_PRESENT),
        );
        probe(
            c,
            "SS not present",
            &load(ss, sel::NOT_PRESENT),
            12,
            u32::from(sel::NOT_PRESENT),
        );
        probe(
            c,
            "SS read-only",
            &load(ss, sel::READ_ONLY),
            13,
            u32::from(sel::READ_ONLY),
        );
        probe(
            c,
            "DS execute-only",
            &load(ds, sel::EXEC_ONLY),
            13,
            u32::from(sel::EXEC_ONLY),
        );
        probe(
            c,
            "DS beyond the GDT",
            &load(ds, sel::BEYOND_GDT),
            13,
            u32::from(sel::BEYOND_GDT),
        );
        probe(c, "SS null", &load(ss, 0), 13, 0);
        // QEMU's TCG does not check segments on data accesses (type, null, limit): these go
        // last, so QEMU still checks every segment load above.
        probe(
            c,
            "write to read-only DS",
            &|c: &mut Code| {
                check(c.a.mov(ax, u32::from(sel::READ_ONLY)));
                check(c.a.mov(ds, ax));
                check(c.a.mov(dword_ptr(0x7f20u32), 1u32));
            },
            13,
            0,
        );
        probe(
            c,
            "access through null DS",
            &|c: &mut Code| {
                check(c.a.xor(eax, eax));
                check(c.a.mov(ds, ax));
                check(c.a.mov(eax, dword_ptr(0x1000u32)));
            },
            13,
            0,
        );
        probe(
            c,
            "beyond a 64 KiB limit",
            &|c: &mut Code| {
                check(c.a.mov(ax, u32::from(sel::DATA16)));
                check(c.a.mov(es, ax));
                check(c.a.mov(eax, dword_ptr(0x1_0000u32).es()));
            },
            13,
            0,
        );
        c.print("protection faults: ok\n");
        c.exit(PASS);
    })
}

/// A fault while delivering a fault: INT 0x40 through a not-present gate raises #NP, whose
/// own gate is not present either, so the processor raises #DF (error code 0).
pub fn double_fault() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        skip_if_pvm(
            c,
            "SKIP: PVM promotes every double fault to a triple fault\n",
        );
        let (idtr, df) = (c.sym(), c.sym());
        // The IDT is zero (not present) except #DF.
        let h = c.addr(df);
        gate32(c, 8, h);
        check(c.a.lidt(ptr(c.addr(idtr))));
        check(c.a.int(0x40));
        c.print("double fault: INT 0x40 returned\n");
        c.exit(2);
        c.bind(df);
        check(c.a.pop(eax));
        check(c.a.test(eax, eax));
        c.fail_unless_zero("double fault: error code is not 0\n", 3);
        c.print("double fault: ok\n");
        c.exit(PASS);
        c.bind(idtr);
        check(c.a.dw(&[0x7ff]));
        check(c.a.dd(&[IDT_ADDR]));
    })
}

/// SYSEXIT to CPL 3 and SYSENTER back, in 32-bit protected mode (SYSENTER_CS = 0x10: the
/// kit's GDT then gives user CS 0x23 and SS 0x2b, as the instructions derive them).
pub fn sysenter() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        skip_if_pvm(c, "SKIP: PVM cannot run legacy (non-long-mode) user code\n");
        let (entry, user) = (c.sym(), c.sym());
        for (msr, v) in [
            (0x174u32, 0x10u32),
            (0x175, KERNEL_STACK),
            (0x176, c.addr(entry)),
        ] {
            check(c.a.mov(ecx, msr));
            check(c.a.mov(eax, v));
            check(c.a.xor(edx, edx));
            check(c.a.wrmsr());
        }
        check(c.a.mov(edx, c.addr(user)));
        check(c.a.mov(ecx, USER_STACK));
        check(c.a.sysexit());

        c.bind(user);
        check(c.a.mov(ax, cs));
        check(c.a.mov(bx, ax));
        check(c.a.mov(ax, ss));
        check(c.a.mov(si, ax));
        user_work(c);
        check(c.a.sysenter());

        c.bind(entry);
        // EBX/ESI hold the user CS and SS seen at CPL 3; EAX the user's sum.
        check(c.a.cmp(bx, 0x23));
        c.fail_unless_zero("sysenter: SYSEXIT did not load CS 0x23\n", 2);
        check(c.a.cmp(si, 0x2b));
        c.fail_unless_zero("sysenter: SYSEXIT did not load SS 0x2b\n", 3);
        check(c.a.cmp(eax, 500_500));
        c.fail_unless_zero("sysenter: user mode computed a wrong sum\n", 4);
        check(c.a.mov(ax, cs));
        check(c.a.cmp(ax, 0x10));
        c.fail_unless_zero("sysenter: SYSENTER did not load CS from SYSENTER_CS\n", 5);
        check(c.a.cmp(esp, KERNEL_STACK as i32));
        c.fail_unless_zero("sysenter: SYSENTER did not load ESP\n", 6);
        check(c.a.mov(ax, u32::from(sel::DATA32)));
        check(c.a.mov(ds, ax));
        c.print("SYSEXIT to CPL 3 and SYSENTER back: ok\n");
        c.exit(PASS);
    })
}

/// LAR, LSL, VERR, VERW and LDS/LSS against the kit's GDT, in 32-bit protected mode.
pub fn descriptor_instructions() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        skip_if_pvm(
            c,
            "SKIP: PVM cannot emulate LAR/LSL/VERR/VERW in kernel mode (KVM's emulator lacks them)\n",
        );
        // LAR: access rights of the 32-bit code segment (accessed: it is CS).
        check(c.a.mov(ecx, u32::from(sel::CODE32)));
        check(c.a.lar(eax, ecx));
        c.fail_unless_zero("descriptors: LAR of the code segment cleared ZF\n", 2);
        check(c.a.cmp(eax, 0x00c0_9b00));
        c.fail_unless_zero("descriptors: LAR returned wrong access rights\n", 3);
        // LSL: page-granular 4 GiB, and the TSS's byte limit.
        check(c.a.lsl(eax, ecx));
        check(c.a.cmp(eax, -1));
        c.fail_unless_zero("descriptors: LSL of a flat segment is not 0xffffffff\n", 4);
        check(c.a.mov(ecx, u32::from(sel::TSS)));
        check(c.a.lsl(eax, ecx));
        check(c.a.cmp(eax, 0x67));
        c.fail_unless_zero("descriptors: LSL of the TSS is not 0x67\n", 5);
        // A null selector and one beyond the GDT are not visible: ZF clear.
        for (s, code) in [(0u32, 6), (u32::from(sel::BEYOND_GDT), 7)] {
            check(c.a.mov(ecx, s));
            check(c.a.mov(eax, 0x1234u32));
            check(c.a.lar(eax, ecx));
            let mut clear = c.label();
            check(c.a.jne(clear));
            c.print("descriptors: LAR of an invalid selector set ZF\n");
            c.exit(code);
            c.here(&mut clear);
            check(c.a.cmp(eax, 0x1234));
            c.fail_unless_zero(
                "descriptors: a failed LAR changed its destination\n",
                code + 10,
            );
        }
        // VERR/VERW: readable code yes, execute-only no; writable data yes, read-only no.
        let verify = |c: &mut Code, write: bool, s: u16, expect: bool, code: u32| {
            check(c.a.mov(ecx, u32::from(s)));
            if write {
                check(c.a.verw(cx));
            } else {
                check(c.a.verr(cx));
            }
            let mut ok = c.label();
            if expect {
                check(c.a.je(ok));
            } else {
                check(c.a.jne(ok));
            }
            c.print(&format!(
                "descriptors: {} {s:#x} gave the wrong answer\n",
                if write { "VERW" } else { "VERR" }
            ));
            c.exit(code);
            c.here(&mut ok);
        };
        verify(c, false, sel::CODE32, true, 20);
        verify(c, false, sel::EXEC_ONLY, false, 21);
        verify(c, true, sel::DATA32, true, 22);
        verify(c, true, sel::READ_ONLY, false, 23);
        verify(c, false, sel::USER_DATA, true, 24);
        // LDS and LSS load a far pointer from memory.
        const PTR: u32 = 0x7f40;
        check(c.a.mov(dword_ptr(PTR), 0x1234_5678u32));
        check(c.a.mov(word_ptr(PTR + 4), u32::from(sel::DATA32)));
        check(c.a.mov(ax, 0u32));
        check(c.a.mov(es, ax));
        check(c.a.les(ebx, ptr(PTR)));
        check(c.a.cmp(ebx, 0x1234_5678));
        c.fail_unless_zero("descriptors: LES loaded the wrong offset\n", 30);
        check(c.a.mov(ax, es));
        check(c.a.cmp(ax, i32::from(sel::DATA32)));
        c.fail_unless_zero("descriptors: LES loaded the wrong selector\n", 31);
        check(c.a.mov(dword_ptr(PTR), KERNEL_STACK - 0x100));
        check(c.a.lss(esp, ptr(PTR)));
        check(c.a.cmp(esp, (KERNEL_STACK - 0x100) as i32));
        c.fail_unless_zero("descriptors: LSS loaded the wrong stack pointer\n", 32);
        c.print("descriptor instructions: ok\n");
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

/// Virtual-8086 mode: IRETD with EFLAGS.VM to code at 0000:8000 (IOPL 3), which checks
/// real-mode segment arithmetic at CPL 3 and returns with INT 0x80 through a ring-0 gate;
/// the handler checks the v8086 frame (VM set, the data segments saved, CS 0).
pub fn v8086() -> Vec<u8> {
    Kernel::build(|k| {
        k.copy_real_mode_code();
        let c = &mut k.c32;
        skip_if_pvm(c, "SKIP: PVM cannot run legacy (non-long-mode) user code\n");
        let (handler, idtr) = (c.sym(), c.sym());
        // TSS: ESP0/SS0 for the ring change out of v8086 mode.
        check(c.a.mov(dword_ptr(TSS_ADDR + 4), KERNEL_STACK));
        check(c.a.mov(dword_ptr(TSS_ADDR + 8), u32::from(sel::DATA32)));
        check(c.a.mov(word_ptr(TSS_ADDR + 0x66), 0x68u32));
        check(c.a.mov(ax, u32::from(sel::TSS)));
        check(c.a.ltr(ax));
        let h = c.addr(handler);
        idt_gate(c, 0x80, h, false);
        check(c.a.lidt(ptr(c.addr(idtr))));
        // The v8086 IRET frame: GS FS DS ES SS ESP EFLAGS CS EIP.
        for v in [0x40u32, 0x30, 0x20, 0x10, 0, 0x7c00] {
            check(c.a.push(v));
        }
        check(c.a.push(0x0002_3002u32)); // VM, IOPL 3
        check(c.a.push(0u32));
        check(c.a.push(REAL_MODE_BASE));
        check(c.a.iretd());

        c.bind(handler);
        // Stack: EIP CS EFLAGS ESP SS ES DS FS GS (the v8086 selectors).
        check(c.a.mov(ax, u32::from(sel::DATA32)));
        check(c.a.mov(ds, ax));
        check(c.a.test(dword_ptr(esp + 8), 0x0002_0000));
        let mut vm = c.label();
        check(c.a.jne(vm));
        c.print("v8086: the interrupted EFLAGS lack VM\n");
        c.exit(2);
        c.here(&mut vm);
        check(c.a.cmp(dword_ptr(esp + 4), 0));
        c.fail_unless_zero("v8086: the interrupted CS is not 0\n", 3);
        check(c.a.cmp(dword_ptr(esp + 20), 0x10));
        c.fail_unless_zero("v8086: ES was not saved in the frame\n", 4);
        check(c.a.cmp(dword_ptr(esp + 32), 0x40));
        c.fail_unless_zero("v8086: GS was not saved in the frame\n", 5);
        check(c.a.cmp(ebx, 0x5a5a));
        c.fail_unless_zero("v8086: the v8086 code did not finish its checks\n", 6);
        c.print("virtual-8086 mode: ok\n");
        c.exit(PASS);
        c.bind(idtr);
        check(c.a.dw(&[0x7ff]));
        check(c.a.dd(&[IDT_ADDR]));

        // The v8086 code (real-mode addressing at CPL 3).
        let v = &mut k.c16;
        check(v.a.mov(ax, 0x1000u32));
        check(v.a.mov(es, ax));
        check(v.a.mov(byte_ptr(0x10u32).es(), 0x5au32)); // linear 0x10010
        check(v.a.mov(ax, 0x1001u32));
        check(v.a.mov(ds, ax));
        check(v.a.xor(bx, bx));
        check(v.a.cmp(byte_ptr(0u32), 0x5a));
        let mut bad = v.label();
        check(v.a.jne(bad));
        check(v.a.mov(bx, 0x5a5au32));
        v.here(&mut bad);
        check(v.a.mov(ax, 0x10u32));
        check(v.a.mov(es, ax));
        check(v.a.int(0x80));
        let mut spin = v.label();
        v.here(&mut spin);
        check(v.a.jmp(spin));
    })
}

/// A far CALL from CPL 3 through a call gate (DPL 3, one parameter) to ring 0: the stack
/// switches to TSS.ESP0 with the caller's SS:ESP, the parameter and CS:EIP on it; RETF 4
/// returns to CPL 3 and drops the parameter.
pub fn call_gate() -> Vec<u8> {
    Kernel::build(|k| {
        let gate_entry = k.gdt_entry(sel::SPARE);
        let c = &mut k.c32;
        skip_if_pvm(c, "SKIP: PVM cannot run legacy (non-long-mode) user code\n");
        let (user, target, done, idtr) = (c.sym(), c.sym(), c.sym(), c.sym());
        check(c.a.mov(dword_ptr(TSS_ADDR + 4), KERNEL_STACK));
        check(c.a.mov(dword_ptr(TSS_ADDR + 8), u32::from(sel::DATA32)));
        check(c.a.mov(word_ptr(TSS_ADDR + 0x66), 0x68u32));
        check(c.a.mov(ax, u32::from(sel::TSS)));
        check(c.a.ltr(ax));
        // The call gate: present, DPL 3, 32-bit (type 0xC), one dword parameter.
        let t = c.addr(target);
        check(c.a.mov(
            dword_ptr(gate_entry),
            (t & 0xffff) | (u32::from(sel::CODE32) << 16),
        ));
        check(c.a.mov(dword_ptr(gate_entry + 4), (t & 0xffff_0000) | 0xec01));
        let d = c.addr(done);
        idt_gate(c, 6, d, false);
        check(c.a.lidt(ptr(c.addr(idtr))));
        check(c.a.push(u32::from(sel::USER_DATA)));
        check(c.a.push(USER_STACK));
        check(c.a.push(0x0002u32));
        check(c.a.push(u32::from(sel::USER_CODE32)));
        check(c.a.push(c.addr(user)));
        check(c.a.iretd());

        c.bind(user);
        check(c.a.mov(ax, u32::from(sel::USER_DATA)));
        check(c.a.mov(ds, ax));
        check(c.a.push(0x1234u32));
        check(c.a.call_far(sel::SPARE | 3, 0));
        check(c.a.ud2());

        c.bind(target);
        // Ring 0 through the gate. Stack: EIP CS param ESP SS of the caller.
        check(c.a.mov(bx, cs));
        check(c.a.cmp(bx, i32::from(sel::CODE32)));
        c.fail_unless_zero("call gate: CS is not the gate's ring-0 segment\n", 2);
        check(c.a.cmp(dword_ptr(esp + 4), i32::from(sel::USER_CODE32)));
        c.fail_unless_zero("call gate: the caller's CS is not on the stack\n", 3);
        check(c.a.cmp(dword_ptr(esp + 8), 0x1234));
        c.fail_unless_zero("call gate: the parameter was not copied\n", 4);
        check(c.a.cmp(dword_ptr(esp + 12), (USER_STACK - 4) as i32));
        c.fail_unless_zero("call gate: the caller's ESP is not on the stack\n", 5);
        check(c.a.cmp(dword_ptr(esp + 16), i32::from(sel::USER_DATA)));
        c.fail_unless_zero("call gate: the caller's SS is not on the stack\n", 6);
        check(c.a.cmp(esp, (KERNEL_STACK - 20) as i32));
        c.fail_unless_zero("call gate: no switch to TSS.ESP0\n", 7);
        check(c.a.mov(eax, 0xbeefu32));
        check(c.a.retf_1(4));

        c.bind(done);
        // Back at CPL 3 after RETF 4, the UD2 brings us here: check what the user saw.
        check(c.a.cmp(dword_ptr(esp + 4), i32::from(sel::USER_CODE32)));
        c.fail_unless_zero("call gate: RETF did not return to CPL 3\n", 8);
        check(c.a.cmp(dword_ptr(esp + 12), USER_STACK as i32));
        c.fail_unless_zero("call gate: RETF 4 did not drop the parameter\n", 9);
        check(c.a.cmp(eax, 0xbeef));
        c.fail_unless_zero("call gate: the ring-0 result was lost\n", 10);
        check(c.a.mov(ax, u32::from(sel::DATA32)));
        check(c.a.mov(ds, ax));
        c.print("call gate: CPL 3 to 0 and back with a parameter: ok\n");
        c.exit(PASS);
        c.bind(idtr);
        check(c.a.dw(&[0x7ff]));
        check(c.a.dd(&[IDT_ADDR]));
    })
}

/// A hardware task switch: CALL to a TSS (task B runs with the registers its TSS holds, NT
/// set and the back link pointing at task A), then IRET back to task A, whose registers come
/// back from its own TSS.
pub fn task_switch() -> Vec<u8> {
    Kernel::build(|k| {
        let tss_b_entry = k.gdt_entry(sel::SPARE);
        let c = &mut k.c32;
        skip_if_pvm(c, "SKIP: PVM cannot return from a legacy protected-mode task (KVM's emulator has no protected-mode IRET)\n");
        const TSS_B: u32 = TSS_ADDR + 0x200;
        let task_b = c.sym();
        // Task A runs on the kit's TSS.
        check(c.a.mov(word_ptr(TSS_ADDR + 0x66), 0x68u32));
        check(c.a.mov(ax, u32::from(sel::TSS)));
        check(c.a.ltr(ax));
        // Task B's TSS and its descriptor in the spare GDT slot (available 32-bit TSS).
        let b = c.addr(task_b);
        for (off, v) in [
            (0x1cu32, 0u32),
            (0x20, b),
            (0x24, 0x2),
            (0x28, 0x7777),
            (0x38, KERNEL_STACK - 0x1000),
            (0x48, u32::from(sel::DATA32)),
            (0x4c, u32::from(sel::CODE32)),
            (0x50, u32::from(sel::DATA32)),
            (0x54, u32::from(sel::DATA32)),
            (0x58, u32::from(sel::DATA32)),
            (0x5c, u32::from(sel::DATA32)),
            (0x60, 0),
        ] {
            check(c.a.mov(dword_ptr(TSS_B + off), v));
        }
        check(c.a.mov(dword_ptr(tss_b_entry), 0x67 | ((TSS_B & 0xffff) << 16)));
        check(c.a.mov(
            dword_ptr(tss_b_entry + 4),
            ((TSS_B >> 16) & 0xff) | 0x8900 | (TSS_B & 0xff00_0000),
        ));
        check(c.a.mov(eax, 0x1111u32));
        check(c.a.mov(ebx, 0x2222u32));
        check(c.a.call_far(sel::SPARE, 0));
        // Back in task A.
        check(c.a.cmp(eax, 0x1111));
        c.fail_unless_zero("task switch: task A's EAX was not restored\n", 2);
        check(c.a.cmp(ebx, 0x2222));
        c.fail_unless_zero("task switch: task A's EBX was not restored\n", 3);
        check(c.a.str(ax));
        check(c.a.cmp(ax, i32::from(sel::TSS)));
        c.fail_unless_zero("task switch: TR is not task A's after IRET\n", 4);
        check(c.a.cmp(ecx, 0xb0b0));
        c.fail_unless_zero("task switch: task B did not run its checks\n", 5);
        c.print("task switch: CALL to a TSS and IRET back: ok\n");
        c.exit(PASS);

        c.bind(task_b);
        // Task B: what its TSS held, NT set, TR and the back link.
        check(c.a.cmp(eax, 0x7777));
        c.fail_unless_zero("task switch: task B's EAX is not from its TSS\n", 6);
        check(c.a.str(ax));
        check(c.a.cmp(ax, i32::from(sel::SPARE)));
        c.fail_unless_zero("task switch: TR is not task B's\n", 7);
        check(c.a.pushfd());
        check(c.a.pop(eax));
        check(c.a.test(eax, 0x4000));
        let mut nt = c.label();
        check(c.a.jne(nt));
        c.print("task switch: NT is clear in the called task\n");
        c.exit(8);
        c.here(&mut nt);
        check(c.a.cmp(word_ptr(TSS_B), i32::from(sel::TSS)));
        c.fail_unless_zero("task switch: the back link is not task A\n", 9);
        // ECX survives into task A only if task A's saved ECX is overwritten: mark in memory.
        check(c.a.mov(dword_ptr(TSS_ADDR + 0x2c), 0xb0b0u32));
        check(c.a.iretd());
    })
}

/// Page faults under 32-bit paging or PAE: not present (read, write), a write to a
/// read-only page with CR0.WP, and under PAE an NX fetch and a reserved bit; each checked for
/// its error code and CR2, and resumed after.
pub fn page_faults32(mode: Paging32) -> Vec<u8> {
    Kernel::build(move |k| {
        let c = &mut k.c32;
        enable_paging32(c, mode);
        const WINDOW: u32 = 0x4000_0000;
        const FRAME: u32 = 0x30_0000;
        const PT: u32 = PAGE_TABLES + 0x4000;
        const PD1: u32 = PAGE_TABLES + 0x3000;
        const ERR: u32 = 0x7f00;
        const CR2: u32 = 0x7f08;
        const RESUME: u32 = 0x7f10;
        let pae = mode == Paging32::Pae;
        // A 4 KiB page table for the window: page 0 not present, 1 read-only, 2 NX, 3 a
        // reserved address bit (PAE only: legacy 32-bit entries have neither).
        if pae {
            check(c.a.mov(dword_ptr(PAGE_TABLES + 8), PD1 | 1)); // PDPT[1]
            check(c.a.mov(dword_ptr(PD1), PT | 7));
            check(c.a.mov(dword_ptr(PT), 0u32));
            check(c.a.mov(dword_ptr(PT + 8), (FRAME + 0x1000) | 5));
            check(c.a.mov(dword_ptr(PT + 16), (FRAME + 0x2000) | 7));
            check(c.a.mov(dword_ptr(PT + 20), 0x8000_0000u32));
            check(c.a.mov(dword_ptr(PT + 24), (FRAME + 0x3000) | 7));
            check(c.a.mov(dword_ptr(PT + 28), 0x000f_0000u32));
            check(c.a.mov(ecx, 0xc000_0080u32)); // EFER.NXE
            check(c.a.rdmsr());
            check(c.a.or(eax, 0x800));
            check(c.a.wrmsr());
        } else {
            check(c.a.mov(dword_ptr(PAGE_TABLES + 256 * 4), PT | 7)); // PDE 256
            check(c.a.mov(dword_ptr(PT), 0u32));
            check(c.a.mov(dword_ptr(PT + 4), (FRAME + 0x1000) | 5));
        }
        check(c.a.mov(eax, cr0));
        check(c.a.or(eax, 0x1_0000)); // WP
        check(c.a.mov(cr0, eax));
        check(c.a.mov(eax, cr3)); // reload: PAE caches its PDPTEs at CR3 loads
        check(c.a.mov(cr3, eax));
        let (handler, idtr, mut over) = (c.sym(), c.sym(), c.label());
        let h = c.addr(handler);
        gate32(c, 14, h);
        check(c.a.lidt(ptr(c.addr(idtr))));
        check(c.a.jmp(over));
        c.bind(handler);
        check(c.a.pop(eax));
        check(c.a.mov(dword_ptr(ERR), eax));
        check(c.a.mov(eax, cr2));
        check(c.a.mov(dword_ptr(CR2), eax));
        check(c.a.mov(eax, dword_ptr(RESUME)));
        check(c.a.mov(dword_ptr(esp), eax));
        check(c.a.iretd());
        c.bind(idtr);
        check(c.a.dw(&[0x7ff]));
        check(c.a.dd(&[IDT_ADDR]));
        c.here(&mut over);

        let mut n = 10;
        let mut probe =
            |c: &mut Code, name: &str, emit: &dyn Fn(&mut Code), code: u32, addr: u32| {
                let resume = c.sym();
                let r = c.addr(resume);
                check(c.a.mov(dword_ptr(RESUME), r));
                check(c.a.mov(dword_ptr(ERR), u32::MAX));
                emit(c);
                c.print(&format!("page-fault: {name}: no #PF\n"));
                c.exit(n);
                c.bind(resume);
                check(c.a.cmp(dword_ptr(ERR), code as i32));
                c.fail_unless_zero(&format!("page-fault: {name}: wrong error code\n"), n + 1);
                check(c.a.cmp(dword_ptr(CR2), addr as i32));
                c.fail_unless_zero(&format!("page-fault: {name}: wrong CR2\n"), n + 2);
                n += 3;
            };
        probe(
            c,
            "read, not present",
            &|c| check(c.a.mov(eax, dword_ptr(WINDOW + 0x10))),
            0,
            WINDOW + 0x10,
        );
        probe(
            c,
            "write, not present",
            &|c| check(c.a.mov(dword_ptr(WINDOW + 0x20), 1u32)),
            2,
            WINDOW + 0x20,
        );
        probe(
            c,
            "write, read-only, CR0.WP",
            &|c| check(c.a.mov(dword_ptr(WINDOW + 0x1008), 1u32)),
            3,
            WINDOW + 0x1008,
        );
        if pae {
            probe(
                c,
                "fetch, NX",
                &|c| {
                    check(c.a.mov(eax, WINDOW + 0x2000));
                    check(c.a.call(eax));
                },
                0x11,
                WINDOW + 0x2000,
            );
            probe(
                c,
                "read, reserved bit",
                &|c| check(c.a.mov(eax, dword_ptr(WINDOW + 0x3004))),
                9,
                WINDOW + 0x3004,
            );
        }
        check(c.a.mov(eax, dword_ptr(WINDOW + 0x1000)));
        c.print(if pae {
            "PAE page faults: ok\n"
        } else {
            "32-bit page faults: ok\n"
        });
        c.exit(PASS);
    })
}
