//! Kernels for each CPU mode, at CPL 0 and CPL 3.

use iced_x86::code_asm::*;

use crate::kit::{check, sel, Kernel, KERNEL_STACK, PASS, REAL_MODE_BASE, USER_STACK};

use super::common::*;

/// Prints a line in 32-bit protected mode and passes: the smallest end-to-end check.
pub fn hello32() -> Vec<u8> {
    Kernel::build(|k| {
        k.c32.print("hello from protected mode\n");
        k.c32.exit(PASS);
    })
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
        let (user_entry, handler, trap_insn) = (c.sym(), c.sym(), c.sym());
        // TSS: ESP0/SS0 for the ring change, no I/O bitmap.
        load_tss(c, false);
        let h = c.addr(handler);
        idt_gate(c, 6, h, false); // #UD: the way back from user mode
        load_idt(c, false);
        // IRET to CPL 3.
        iret_to_user32(c, user_entry);
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
    })
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
        load_tss(c, true);
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

/// Virtual-8086 mode: IRETD with EFLAGS.VM to code at 0000:8000 (IOPL 3), which checks
/// real-mode segment arithmetic at CPL 3 and returns with INT 0x80 through a ring-0 gate;
/// the handler checks the v8086 frame (VM set, the data segments saved, CS 0).
pub fn v8086() -> Vec<u8> {
    Kernel::build(|k| {
        k.copy_real_mode_code();
        let c = &mut k.c32;
        skip_if_pvm(c, "SKIP: PVM cannot run legacy (non-long-mode) user code\n");
        let handler = c.sym();
        // TSS: ESP0/SS0 for the ring change out of v8086 mode.
        load_tss(c, false);
        let h = c.addr(handler);
        idt_gate(c, 0x80, h, false);
        load_idt(c, false);
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
