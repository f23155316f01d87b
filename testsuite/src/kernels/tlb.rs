//! A kernel that remaps pages under running code and checks what a CR3 load and INVLPG
//! must make visible: a CR3 load flushes every non-global translation — data and code, in
//! whatever caches translations outside the TLB (the translator's soft TLB and jump cache
//! keep global pages across one) — and INVLPG flushes a global page too.

use iced_x86::code_asm::*;

use crate::kit::{check, Code, Kernel, PAGE_TABLES, PASS};

use super::common::*;

/// The 4 KiB pages at the second GiB, their page table and the frames behind them.
const WINDOW: u32 = 0x4000_0000;
const PT: u32 = PAGE_TABLES + 0x4000;
const PD1: u32 = PAGE_TABLES + 0x3000;
const FRAME: u32 = 0x30_0000;
/// Page-table entry bits: present and writable; global.
const PRESENT_RW: u32 = 0x3;
const GLOBAL: u32 = 0x100;

/// Reads window pages 0 (non-global) and 1 (global) into R8D/R9D and calls the code in
/// pages 2 (non-global) and 3 (global) into R10D/R11D, three times: the loop runs
/// translated, its accesses and calls then through the soft TLB and the jump cache.
fn touch_window(c: &mut Code) {
    let mut again = c.label();
    check(c.a.mov(ecx, 3u32));
    c.here(&mut again);
    check(c.a.mov(r8d, dword_ptr(WINDOW)));
    check(c.a.mov(r9d, dword_ptr(WINDOW + 0x1000)));
    check(c.a.mov(eax, WINDOW + 0x2000));
    check(c.a.call(rax));
    check(c.a.mov(r10d, eax));
    check(c.a.mov(eax, WINDOW + 0x3000));
    check(c.a.call(rax));
    check(c.a.mov(r11d, eax));
    check(c.a.dec(ecx));
    check(c.a.jne(again));
}

/// Maps window page `page` to `frame` with `bits`.
fn map(c: &mut Code, page: u32, frame: u32, bits: u32) {
    check(c.a.mov(dword_ptr(PT + 8 * page), frame | bits));
}

pub fn tlb_flushes() -> Vec<u8> {
    Kernel::build(|k| {
        enter_long_mode(k);
        let c = &mut k.c64;
        install_exception_handlers64(c);
        // Frames: data 0x1111, 0x2222, 0x3333; code returning 1 and 2.
        check(c.a.mov(dword_ptr(FRAME), 0x1111u32));
        check(c.a.mov(dword_ptr(FRAME + 0x1000), 0x2222u32));
        check(c.a.mov(dword_ptr(FRAME + 0x2000), 0x3333u32));
        for (at, value) in [(FRAME + 0x3000, 1u32), (FRAME + 0x4000, 2)] {
            // MOV EAX, value; RET
            check(c.a.mov(byte_ptr(at), 0xb8u32));
            check(c.a.mov(dword_ptr(at + 1), value));
            check(c.a.mov(byte_ptr(at + 5), 0xc3u32));
        }
        check(c.a.mov(rax, cr4));
        check(c.a.or(eax, 0x80)); // PGE
        check(c.a.mov(cr4, rax));
        check(c.a.mov(dword_ptr(PAGE_TABLES + 0x1000 + 8), PD1 | 7)); // PDPT[1]
        check(c.a.mov(dword_ptr(PD1), PT | 7));
        map(c, 0, FRAME, PRESENT_RW);
        map(c, 1, FRAME + 0x1000, PRESENT_RW | GLOBAL);
        map(c, 2, FRAME + 0x3000, PRESENT_RW);
        map(c, 3, FRAME + 0x3000, PRESENT_RW | GLOBAL);
        check(c.a.mov(rax, cr3));
        check(c.a.mov(cr3, rax));
        touch_window(c);
        check(c.a.cmp(r8d, 0x1111));
        c.fail_unless_zero("tlb: first mapping of a non-global page not seen\n", 2);
        check(c.a.cmp(r10d, 1));
        c.fail_unless_zero("tlb: first mapping of non-global code not run\n", 3);

        // Every page to the other frame; a CR3 load must show the non-global ones' new
        // frames (the global ones may keep the old).
        map(c, 0, FRAME + 0x2000, PRESENT_RW);
        map(c, 1, FRAME + 0x2000, PRESENT_RW | GLOBAL);
        map(c, 2, FRAME + 0x4000, PRESENT_RW);
        map(c, 3, FRAME + 0x4000, PRESENT_RW | GLOBAL);
        check(c.a.mov(rax, cr3));
        check(c.a.mov(cr3, rax));
        touch_window(c);
        check(c.a.cmp(r8d, 0x3333));
        c.fail_unless_zero("tlb: a CR3 load kept a non-global data page\n", 4);
        check(c.a.cmp(r10d, 2));
        c.fail_unless_zero("tlb: a CR3 load kept a non-global code page\n", 5);

        // INVLPG flushes the global ones.
        check(c.a.mov(eax, WINDOW + 0x1000));
        check(c.a.invlpg(byte_ptr(rax)));
        check(c.a.mov(eax, WINDOW + 0x3000));
        check(c.a.invlpg(byte_ptr(rax)));
        touch_window(c);
        check(c.a.cmp(r9d, 0x3333));
        c.fail_unless_zero("tlb: INVLPG kept a global data page\n", 6);
        check(c.a.cmp(r11d, 2));
        c.fail_unless_zero("tlb: INVLPG kept a global code page\n", 7);
        check(c.a.cmp(r8d, 0x3333));
        c.fail_unless_zero("tlb: the non-global data page went back\n", 8);
        c.print("tlb flushes: ok\n");
        c.exit(PASS);
    })
}
