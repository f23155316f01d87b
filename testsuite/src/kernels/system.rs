//! Kernels for system instructions and structures: SYSENTER, descriptor queries, call
//! gates, task switches.

use iced_x86::code_asm::*;

use crate::kit::{check, sel, Code, Kernel, KERNEL_STACK, PASS, TSS_ADDR, USER_STACK};

use super::common::*;

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

/// A far CALL from CPL 3 through a call gate (DPL 3, one parameter) to ring 0: the stack
/// switches to TSS.ESP0 with the caller's SS:ESP, the parameter and CS:EIP on it; RETF 4
/// returns to CPL 3 and drops the parameter.
pub fn call_gate() -> Vec<u8> {
    Kernel::build(|k| {
        let gate_entry = k.gdt_entry(sel::SPARE);
        let c = &mut k.c32;
        skip_if_pvm(c, "SKIP: PVM cannot run legacy (non-long-mode) user code\n");
        let (user, target, done) = (c.sym(), c.sym(), c.sym());
        load_tss(c, false);
        // The call gate: present, DPL 3, 32-bit (type 0xC), one dword parameter.
        let t = c.addr(target);
        check(c.a.mov(
            dword_ptr(gate_entry),
            (t & 0xffff) | (u32::from(sel::CODE32) << 16),
        ));
        check(c.a.mov(dword_ptr(gate_entry + 4), (t & 0xffff_0000) | 0xec01));
        let d = c.addr(done);
        idt_gate(c, 6, d, false);
        load_idt(c, false);
        iret_to_user32(c, user);
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
