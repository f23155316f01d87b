//! Kernels that provoke exceptions and check their delivery: page faults, protection
//! faults, double faults.

use iced_x86::code_asm::*;

use crate::kit::{check, sel, Code, Kernel, IDT_ADDR, KERNEL_STACK, PAGE_TABLES, PASS, TSS_ADDR};

use super::common::*;

/// Where the page-fault handlers record the error code and CR2, and where they resume.
const PF_ERR: u32 = 0x7f00;
const PF_CR2: u32 = 0x7f08;
const PF_RESUME: u32 = 0x7f10;

/// Where the protected-mode fault handlers of [`fault_handlers32`] record the vector and the
/// error code, and where they resume.
const FAULT_VEC: u32 = 0x7f00;
const FAULT_ERR: u32 = 0x7f04;
const FAULT_RESUME: u32 = 0x7f08;

/// 32-bit handlers for `vectors` (each with an error code) that record the vector and error
/// code at [`FAULT_VEC`]/[`FAULT_ERR`] and resume at [`FAULT_RESUME`]; installs the gates
/// and loads the IDT. With `reload_ds`, a handler first reloads DS (the faulting code may
/// have left it null); without, it keeps the interrupted code's DS, which must be usable.
fn fault_handlers32(c: &mut Code, vectors: &[u32], reload_ds: bool) {
    let mut over = c.label();
    let handlers: Vec<_> = vectors.iter().map(|_| c.sym()).collect();
    for (v, h) in vectors.iter().zip(&handlers) {
        let a = c.addr(*h);
        gate32(c, *v, a);
    }
    load_idt(c, false);
    check(c.a.jmp(over));
    for (v, h) in vectors.iter().zip(&handlers) {
        c.bind(*h);
        if reload_ds {
            check(c.a.mov(ax, u32::from(sel::DATA32)));
            check(c.a.mov(ds, ax));
        }
        check(c.a.mov(dword_ptr(FAULT_VEC), *v));
        check(c.a.pop(eax));
        check(c.a.mov(dword_ptr(FAULT_ERR), eax));
        check(c.a.mov(eax, dword_ptr(FAULT_RESUME)));
        check(c.a.mov(dword_ptr(esp), eax));
        check(c.a.iretd());
    }
    c.here(&mut over);
}

/// Runs `emit` at ring 0 and checks it faults with `vector` and `error`, through the handlers
/// of [`fault_handlers32`]; failures exit with `*n`, `*n + 1` or `*n + 2`, and `*n` advances.
fn expect_fault(
    c: &mut Code,
    n: &mut u32,
    what: &str,
    emit: &dyn Fn(&mut Code),
    vector: u32,
    error: u32,
) {
    let resume = c.sym();
    let r = c.addr(resume);
    check(c.a.mov(dword_ptr(FAULT_RESUME), r));
    check(c.a.mov(dword_ptr(FAULT_VEC), u32::MAX));
    emit(c);
    c.print(&format!("{what}: no fault\n"));
    c.exit(*n);
    c.bind(resume);
    // Reload what a test may have left null.
    check(c.a.mov(ax, u32::from(sel::DATA32)));
    check(c.a.mov(ds, ax));
    check(c.a.mov(es, ax));
    check(c.a.cmp(dword_ptr(FAULT_VEC), vector as i32));
    c.fail_unless_zero(&format!("{what}: wrong vector\n"), *n + 1);
    check(c.a.cmp(dword_ptr(FAULT_ERR), error as i32));
    c.fail_unless_zero(&format!("{what}: wrong error code\n"), *n + 2);
    *n += 3;
}

/// Emits one faulting access (`emit`) and checks the #PF it must raise: the handler records
/// the error code and CR2 at [`PF_ERR`]/[`PF_CR2`] and resumes at [`PF_RESUME`]. Works in
/// 32- and 64-bit code.
fn expect_page_fault(c: &mut Code, name: &str, emit: &dyn Fn(&mut Code), code: u32, addr: u32) {
    let resume = c.sym();
    let r = c.addr(resume);
    check(c.a.mov(dword_ptr(PF_RESUME), r));
    check(c.a.mov(dword_ptr(PF_RESUME + 4), 0u32));
    check(c.a.mov(dword_ptr(PF_ERR), u32::MAX));
    emit(c);
    c.print(&format!("page-fault: {name}: no #PF\n"));
    c.exit(3);
    c.bind(resume);
    let mut code_ok = c.label();
    check(c.a.cmp(dword_ptr(PF_ERR), code as i32));
    check(c.a.je(code_ok));
    c.print(&format!(
        "page-fault: {name}: wrong error code (expected {code:#x}): "
    ));
    check(c.a.mov(eax, dword_ptr(PF_ERR)));
    c.print_eax_hex();
    c.print("\n");
    c.exit(4);
    c.here(&mut code_ok);
    check(c.a.cmp(dword_ptr(PF_CR2), addr as i32));
    c.fail_unless_zero(&format!("page-fault: {name}: wrong CR2\n"), 5);
}

/// The faults every page-fault kernel provokes in its window (page 0 not present, page 1
/// read-only; with `nx_and_reserved`, page 2 NX and page 3 a reserved bit).
fn window_faults(c: &mut Code, window: u32, long: bool, nx_and_reserved: bool) {
    expect_page_fault(
        c,
        "read, not present",
        &|c| check(c.a.mov(eax, dword_ptr(window + 0x10))),
        0,
        window + 0x10,
    );
    expect_page_fault(
        c,
        "write, not present",
        &|c| check(c.a.mov(dword_ptr(window + 0x20), 1u32)),
        2,
        window + 0x20,
    );
    expect_page_fault(
        c,
        "write, read-only, CR0.WP",
        &|c| check(c.a.mov(dword_ptr(window + 0x1008), 1u32)),
        3,
        window + 0x1008,
    );
    if nx_and_reserved {
        expect_page_fault(
            c,
            "fetch, NX",
            &|c| {
                check(c.a.mov(eax, window + 0x2000));
                if long {
                    check(c.a.call(rax));
                } else {
                    check(c.a.call(eax));
                }
            },
            0x11,
            window + 0x2000,
        );
        expect_page_fault(
            c,
            "read, reserved bit",
            &|c| check(c.a.mov(eax, dword_ptr(window + 0x3004))),
            9,
            window + 0x3004,
        );
    }
    // The read-only page is still readable.
    check(c.a.mov(eax, dword_ptr(window + 0x1000)));
}

/// Page faults in long mode: not present (read and write), a write to a read-only page with
/// CR0.WP, an instruction fetch from an NX page, a reserved bit, and an instruction cut off
/// by a not-present page. Each must arrive as #PF,
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

        // The #PF handler records the error code and CR2, then resumes at [PF_RESUME].
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
        check(c.a.mov(qword_ptr(PF_ERR), rax));
        check(c.a.mov(rax, cr2));
        check(c.a.mov(qword_ptr(PF_CR2), rax));
        check(c.a.mov(rax, qword_ptr(PF_RESUME)));
        check(c.a.mov(qword_ptr(rsp), rax));
        check(c.a.iretq());
        c.here(&mut over);

        // Before the window faults, whose reserved-bit case QEMU gets wrong. Page 4
        // executable, page 5 not present: a MOV EAX, imm32 whose first two bytes end
        // page 4 faults on fetching the rest, with CR2 at page 5 and the fetch bit set.
        check(c.a.mov(dword_ptr(PT + 32), (FRAME + 0x4000) | 0x7));
        check(c.a.mov(dword_ptr(PT + 36), 0u32));
        check(c.a.mov(dword_ptr(PT + 40), 0u32));
        check(c.a.mov(dword_ptr(PT + 44), 0u32));
        check(c.a.mov(word_ptr(WINDOW + 0x4ffe), 0x00b8u32));
        expect_page_fault(
            c,
            "fetch, instruction truncated at a page edge",
            &|c| {
                check(c.a.mov(eax, WINDOW + 0x4ffe));
                check(c.a.call(rax));
            },
            0x10,
            WINDOW + 0x5000,
        );
        window_faults(c, WINDOW, true, true);
        c.print("page faults: ok\n");
        c.exit(PASS);
    })
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
        // #NP, #SS, #GP record (vector, error code) and resume.
        fault_handlers32(c, &[11, 12, 13], true);
        let mut n = 2;
        let mut probe = |c: &mut Code, name: &str, emit: &dyn Fn(&mut Code), vec: u32, err: u32| {
            expect_fault(c, &mut n, &format!("protection: {name}"), emit, vec, err);
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
        let df = c.sym();
        // The IDT is zero (not present) except #DF.
        let h = c.addr(df);
        gate32(c, 8, h);
        load_idt(c, false);
        check(c.a.int(0x40));
        c.print("double fault: INT 0x40 returned\n");
        c.exit(2);
        c.bind(df);
        check(c.a.pop(eax));
        check(c.a.test(eax, eax));
        c.fail_unless_zero("double fault: error code is not 0\n", 3);
        c.print("double fault: ok\n");
        c.exit(PASS);
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
        let (handler, mut over) = (c.sym(), c.label());
        let h = c.addr(handler);
        gate32(c, 14, h);
        load_idt(c, false);
        check(c.a.jmp(over));
        c.bind(handler);
        check(c.a.pop(eax));
        check(c.a.mov(dword_ptr(PF_ERR), eax));
        check(c.a.mov(eax, cr2));
        check(c.a.mov(dword_ptr(PF_CR2), eax));
        check(c.a.mov(eax, dword_ptr(PF_RESUME)));
        check(c.a.mov(dword_ptr(esp), eax));
        check(c.a.iretd());
        c.here(&mut over);

        window_faults(c, WINDOW, false, pae);
        c.print(if pae {
            "PAE page faults: ok\n"
        } else {
            "32-bit page faults: ok\n"
        });
        c.exit(PASS);
    })
}

/// Code that a probe runs.
type Emit = dyn Fn(&mut Code);

/// Task-switch faults and the TSS I/O permission bitmap, in 32-bit protected mode.
///
/// Ring 0: JMP to a TSS whose limit is below 0x67 is #TS(sel), to a not-present TSS #NP(sel),
/// to a busy TSS #GP(sel). Ring 3 with IOPL 0, on a TSS whose bitmap allows only port 0x80:
/// `IN` from 0x80 works, from 0x81 is #GP(0), and a word from 0x7f (which spans 0x7f–0x80)
/// is #GP(0) because every byte's bit must be clear.
pub fn tss_faults() -> Vec<u8> {
    Kernel::build(|k| {
        let spare = k.gdt_entry(sel::SPARE);
        let c = &mut k.c32;
        skip_if_pvm(
            c,
            "SKIP: PVM cannot return from a legacy protected-mode handler (KVM's emulator has no protected-mode IRET)\n",
        );
        /// Where the user-mode probes store the vector each one saw.
        const USER_RESULTS: u32 = 0x7f20;
        /// The TSS with the I/O bitmap; the bitmap follows the 0x68-byte TSS.
        const IO_TSS: u32 = 0x19_0000;
        const BITMAP: u32 = IO_TSS + 0x68;

        // #TS, #NP, #GP record (vector, error code) and resume at [RESUME], ring 0 or 3;
        // #UD ends the user-mode part.
        // The user-mode part keeps its DS (flat, DPL 3) in the handlers.
        fault_handlers32(c, &[10, 11, 13], false);
        let user_done = c.sym();
        let a = c.addr(user_done);
        gate32(c, 6, a);
        load_tss(c, false);

        let mut n = 2;
        let mut probe = |c: &mut Code, name: &str, lo: u32, hi: u32, vec: u32, err: u32| {
            check(c.a.mov(dword_ptr(spare), lo));
            check(c.a.mov(dword_ptr(spare + 4), hi));
            let jump = |c: &mut Code| check(c.a.jmp_far(sel::SPARE, 0));
            expect_fault(c, &mut n, &format!("tss: {name}"), &jump, vec, err);
        };
        // A TSS at IO_TSS: base 15:0 in the low word's high half, base 23:16 in the high
        // dword's low byte (IO_TSS < 16 MiB, so base 31:24 is 0).
        let lo = |limit: u32| limit | ((IO_TSS & 0xffff) << 16);
        let hi = |access: u32| ((IO_TSS >> 16) & 0xff) | (access << 8);
        let err = u32::from(sel::SPARE);
        probe(
            c,
            "JMP to a TSS below the minimum limit",
            lo(0x60),
            hi(0x89),
            10,
            err,
        );
        probe(c, "JMP to a not-present TSS", lo(0x67), hi(0x09), 11, err);
        probe(c, "JMP to a busy TSS", lo(0x67), hi(0x8b), 13, err);
        c.print("tss: task-switch faults: ok\n");

        // The I/O TSS: ring-0 stack, bitmap at 0x68 denying every port but 0x80, then the
        // terminating 0xff byte.
        check(c.a.mov(dword_ptr(IO_TSS + 4), KERNEL_STACK));
        check(c.a.mov(dword_ptr(IO_TSS + 8), u32::from(sel::DATA32)));
        check(c.a.mov(word_ptr(IO_TSS + 0x66), 0x68u32));
        check(c.a.mov(edi, BITMAP));
        check(c.a.mov(ecx, 0x2000u32 / 4 + 1));
        check(c.a.mov(eax, u32::MAX));
        check(c.a.cld());
        check(c.a.rep().stosd());
        check(c.a.mov(byte_ptr(BITMAP + 0x80 / 8), 0xfeu32));
        check(c.a.mov(dword_ptr(spare), lo(0x68 + 0x2000)));
        check(c.a.mov(dword_ptr(spare + 4), hi(0x89)));
        check(c.a.mov(ax, u32::from(sel::SPARE)));
        check(c.a.ltr(ax));

        let user_entry = c.sym();
        iret_to_user32(c, user_entry);
        check(c.a.mov(ax, u32::from(sel::USER_DATA)));
        check(c.a.mov(ds, ax));
        let user_probes: [(&str, &Emit); 3] = [
            ("IN AL, 0x80 (allowed)", &|c| check(c.a.in_(al, 0x80))),
            ("IN AL, 0x81 (denied)", &|c| check(c.a.in_(al, 0x81))),
            ("IN AX, DX=0x7f (one byte denied)", &|c| {
                check(c.a.mov(dx, 0x7fu32));
                check(c.a.in_(ax, dx));
            }),
        ];
        for (k, (_, emit)) in user_probes.iter().enumerate() {
            let resume = c.sym();
            let r = c.addr(resume);
            check(c.a.mov(dword_ptr(FAULT_RESUME), r));
            check(c.a.mov(dword_ptr(FAULT_VEC), u32::MAX));
            check(c.a.mov(dword_ptr(FAULT_ERR), u32::MAX));
            emit(c);
            c.bind(resume);
            check(c.a.mov(eax, dword_ptr(FAULT_VEC)));
            check(c.a.mov(dword_ptr(USER_RESULTS + 8 * k as u32), eax));
            check(c.a.mov(eax, dword_ptr(FAULT_ERR)));
            check(c.a.mov(dword_ptr(USER_RESULTS + 8 * k as u32 + 4), eax));
        }
        check(c.a.ud2());

        c.bind(user_done);
        check(c.a.mov(ax, u32::from(sel::DATA32)));
        check(c.a.mov(ds, ax));
        let expected = [(u32::MAX, u32::MAX), (13, 0), (13, 0)];
        for (k, ((name, _), (vec, err))) in user_probes.iter().zip(expected).enumerate() {
            check(c.a.cmp(dword_ptr(USER_RESULTS + 8 * k as u32), vec as i32));
            c.fail_unless_zero(&format!("tss: {name}: wrong vector\n"), n);
            check(c.a.cmp(dword_ptr(USER_RESULTS + 8 * k as u32 + 4), err as i32));
            c.fail_unless_zero(&format!("tss: {name}: wrong error code\n"), n + 1);
            n += 2;
        }
        c.print("tss: I/O permission bitmap: ok\n");
        c.exit(PASS);
    })
}
