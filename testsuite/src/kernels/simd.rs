//! Kernels for the x87/SSE state: a context switch between two tasks' x87 and SSE state with
//! FXSAVE and XSAVE, each register checked after every restore.

use iced_x86::code_asm::*;

use crate::kit::{check, sel, Code, Kernel, IDT_ADDR, PASS};

use super::common::{enter_long_mode, gate32, init_8259, install_exception_handlers64, load_idt};

/// Scratch memory (identity-mapped, zero at boot): the two tasks' register patterns, their
/// MXCSR values, a zero block, and the save areas (FXSAVE 16-byte, XSAVE 64-byte aligned).
const PATTERN_A: u32 = 0x30_0000;
const PATTERN_B: u32 = 0x30_0100;
const ZEROS: u32 = 0x30_0200;
const MXCSR_A: u32 = 0x30_0300;
const MXCSR_B: u32 = 0x30_0304;
const MXCSR_OUT: u32 = 0x30_0308;
const ST_A: u32 = 0x30_0400;
const ST_B: u32 = 0x30_0500;
const ST_OUT: u32 = 0x30_0600;
const FCW_OUT: u32 = 0x30_0700;
const GP_HIT: u32 = 0x30_0800;
const GP_ERR: u32 = 0x30_0808;
const GP_RESUME: u32 = 0x30_0810;
const FXSAVE_AREA: u32 = 0x30_1000;
const XSAVE_AREA: u32 = 0x30_2000;

fn xmm(k: usize) -> AsmRegisterXmm {
    [
        xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13,
        xmm14, xmm15,
    ][k]
}

/// Task `t`'s pattern: byte j of XMMk is (16k + j) ^ t.
fn pattern_qword(t: u8, k: usize, half: usize) -> u64 {
    (0..8).fold(0u64, |v, j| {
        v | u64::from((16 * k + 8 * half + j) as u8 ^ t) << (8 * j)
    })
}

fn load_all(c: &mut Code, base: u32) {
    for k in 0..16 {
        check(c.a.movdqu(xmm(k), xmmword_ptr(base + 16 * k as u32)));
    }
}

/// Task `t`'s x87 register k: an extended value (exponent 0x3fff + k, a pattern significand
/// with the integer bit), as 10 bytes.
fn st_value(t: u8, k: usize) -> (u64, u16) {
    (pattern_qword(t, k, 0) | 1 << 63, 0x3fff + k as u16)
}

/// Loads task `t`'s eight values (ST0 = value 0) and FCW `fcw`.
fn load_x87(c: &mut Code, base: u32, fcw: u16) {
    check(c.a.fninit());
    check(c.a.mov(word_ptr(FCW_OUT), fcw as u32));
    check(c.a.fldcw(word_ptr(FCW_OUT)));
    for k in (0..8).rev() {
        check(c.a.fld(tword_ptr(base + 16 * k as u32)));
    }
}

/// Fails with `code` unless FCW is `fcw` and the stack holds the eight values at `base`
/// (popping them all).
fn check_x87(c: &mut Code, base: u32, fcw: u16, what: &str, code: u32) {
    check(c.a.fnstcw(word_ptr(FCW_OUT)));
    check(c.a.cmp(word_ptr(FCW_OUT), fcw as u32));
    c.fail_unless_zero(&format!("xsave: FCW wrong after {what}\n"), code);
    for k in 0..8u32 {
        check(c.a.fstp(tword_ptr(ST_OUT + 16 * k)));
    }
    for k in 0..8u32 {
        check(c.a.mov(rax, qword_ptr(ST_OUT + 16 * k)));
        check(c.a.cmp(rax, qword_ptr(base + 16 * k)));
        c.fail_unless_zero(
            &format!("xsave: ST{k} significand wrong after {what}\n"),
            code + 1,
        );
        check(c.a.mov(ax, word_ptr(ST_OUT + 16 * k + 8)));
        check(c.a.cmp(ax, word_ptr(base + 16 * k + 8)));
        c.fail_unless_zero(
            &format!("xsave: ST{k} exponent wrong after {what}\n"),
            code + 1,
        );
    }
}

/// Fails with `code` unless XMM0–15 equal the 16-byte blocks at `base`, and MXCSR `mxcsr`.
fn check_all(c: &mut Code, base: u32, mxcsr: u32, what: &str, code: u32) {
    for k in 0..16 {
        check(c.a.pcmpeqb(xmm(k), xmmword_ptr(base + 16 * k as u32)));
        check(c.a.pmovmskb(eax, xmm(k)));
        check(c.a.cmp(eax, 0xffff));
        c.fail_unless_zero(&format!("xsave: XMM{k} wrong after {what}\n"), code);
    }
    check(c.a.stmxcsr(dword_ptr(MXCSR_OUT)));
    check(c.a.cmp(dword_ptr(MXCSR_OUT), mxcsr as i32));
    c.fail_unless_zero(&format!("xsave: MXCSR wrong after {what}\n"), code + 1);
}

/// Two tasks' x87 and SSE state (ST0–7 and FCW, XMM0–15, MXCSR) saved and restored across a
/// "switch": task A's with FXSAVE64, task B's with XSAVE64, then each restored (FXRSTOR64,
/// XRSTOR64) and checked; XSAVE's header records both components, and an XRSTOR whose header
/// marks a component as in its initial state initializes it (SSE: XMM registers zero; x87:
/// FNINIT's state, an empty stack). Also checks CPUID (OSXSAVE, leaf 0xD's size) and XGETBV.
pub fn sse_context_switch() -> Vec<u8> {
    Kernel::build(|k| {
        enter_long_mode(k);
        let c = &mut k.c64;
        super::common::skip_if_pvm(
            c,
            "SKIP: PVM runs kernel mode through KVM's instruction emulator, which lacks XGETBV \
             and the SSE instructions\n",
        );
        // SSE on: CR0.EM and TS clear, MP set; CR4.OSFXSR, OSXMMEXCPT, OSXSAVE; XCR0 = x87|SSE.
        check(c.a.mov(rax, cr0));
        check(c.a.and(rax, !0xci32)); // EM and TS off
        check(c.a.or(rax, 2));
        check(c.a.mov(cr0, rax));
        check(c.a.mov(rax, cr4));
        check(c.a.or(eax, (1 << 9) | (1 << 10) | (1 << 18)));
        check(c.a.mov(cr4, rax));
        check(c.a.xor(ecx, ecx));
        check(c.a.xor(edx, edx));
        check(c.a.mov(eax, 3));
        check(c.a.xsetbv());
        check(c.a.xor(ecx, ecx));
        check(c.a.xgetbv());
        check(c.a.cmp(eax, 3));
        c.fail_unless_zero("xsave: XGETBV does not return XCR0 = 3\n", 2);
        check(c.a.mov(eax, 1));
        check(c.a.cpuid());
        check(c.a.bt(ecx, 27));
        check(c.a.setnc(al));
        check(c.a.test(al, al));
        c.fail_unless_zero(
            "xsave: CPUID.1:ECX.OSXSAVE is clear with CR4.OSXSAVE set\n",
            3,
        );
        check(c.a.mov(eax, 0xd));
        check(c.a.xor(ecx, ecx));
        check(c.a.cpuid());
        check(c.a.cmp(ebx, 576));
        c.fail_unless_zero("xsave: CPUID.0xD:EBX is not 576 for x87+SSE\n", 4);
        // The patterns and MXCSR values in memory.
        for (t, base) in [(0xa5u8, PATTERN_A), (0x5a, PATTERN_B)] {
            for reg in 0..16 {
                for half in 0..2 {
                    check(c.a.mov(rax, pattern_qword(t, reg, half)));
                    let at = base + 16 * reg as u32 + 8 * half as u32;
                    check(c.a.mov(qword_ptr(at), rax));
                }
            }
        }
        for (t, base) in [(0xa5u8, ST_A), (0x5a, ST_B)] {
            for k in 0..8 {
                let (sig, exp) = st_value(t, k);
                check(c.a.mov(rax, sig));
                check(c.a.mov(qword_ptr(base + 16 * k as u32), rax));
                check(c.a.mov(word_ptr(base + 16 * k as u32 + 8), u32::from(exp)));
            }
        }
        check(c.a.mov(dword_ptr(MXCSR_A), 0x3f80u32)); // round down
        check(c.a.mov(dword_ptr(MXCSR_B), 0x5f80u32)); // round up
                                                       // Task A runs, and is switched out with FXSAVE.
        load_all(c, PATTERN_A);
        load_x87(c, ST_A, 0x0f7f); // round toward zero
        check(c.a.ldmxcsr(dword_ptr(MXCSR_A)));
        check(c.a.fxsave64(ptr(FXSAVE_AREA)));
        // Task B runs, and is switched out with XSAVE (x87 and SSE requested).
        load_all(c, PATTERN_B);
        load_x87(c, ST_B, 0x077f); // round down
        check(c.a.ldmxcsr(dword_ptr(MXCSR_B)));
        check(c.a.mov(eax, 3));
        check(c.a.xor(edx, edx));
        check(c.a.xsave64(ptr(XSAVE_AREA)));
        check(c.a.cmp(qword_ptr(XSAVE_AREA + 512), 3));
        c.fail_unless_zero("xsave: XSTATE_BV does not record x87 and SSE\n", 5);
        // Back to A, then to B.
        check(c.a.fxrstor64(ptr(FXSAVE_AREA)));
        check_all(c, PATTERN_A, 0x3f80, "FXRSTOR", 6);
        check_x87(c, ST_A, 0x0f7f, "FXRSTOR", 12);
        check(c.a.mov(eax, 3));
        check(c.a.xor(edx, edx));
        check(c.a.xrstor64(ptr(XSAVE_AREA)));
        check_all(c, PATTERN_B, 0x5f80, "XRSTOR", 8);
        check_x87(c, ST_B, 0x077f, "XRSTOR", 14);
        // SSE marked as in its initial state: the XMM registers come back zero, MXCSR still
        // from memory.
        check(c.a.mov(qword_ptr(XSAVE_AREA + 512), 1));
        check(c.a.mov(eax, 3));
        check(c.a.xor(edx, edx));
        check(c.a.xrstor64(ptr(XSAVE_AREA)));
        check_all(c, ZEROS, 0x5f80, "XRSTOR of the initial state", 10);
        check_x87(c, ST_B, 0x077f, "XRSTOR with SSE initial", 16);
        // x87 marked as in its initial state: FCW 0x37f and an empty stack (FXAM: empty).
        check(c.a.mov(qword_ptr(XSAVE_AREA + 512), 2));
        check(c.a.mov(eax, 3));
        check(c.a.xor(edx, edx));
        check(c.a.xrstor64(ptr(XSAVE_AREA)));
        check(c.a.fnstcw(word_ptr(FCW_OUT)));
        check(c.a.cmp(word_ptr(FCW_OUT), 0x37f));
        c.fail_unless_zero(
            "xsave: FCW is not 0x37f after XRSTOR of the x87 initial state\n",
            18,
        );
        check(c.a.fxam());
        check(c.a.fnstsw(ax));
        check(c.a.and(ax, 0x4500));
        check(c.a.cmp(ax, 0x4100));
        c.fail_unless_zero(
            "xsave: ST0 is not empty after XRSTOR of the x87 initial state\n",
            19,
        );
        c.print("x87 and sse context switch with FXSAVE and XSAVE: ok\n");
        c.exit(PASS);
    })
}

/// Turns SSE and XSAVE on: CR0.EM and TS clear, MP set; CR4.OSFXSR, OSXMMEXCPT, OSXSAVE;
/// XCR0 = x87|SSE.
fn enable_sse_and_xsave(c: &mut Code) {
    check(c.a.mov(rax, cr0));
    check(c.a.and(rax, !0xci32));
    check(c.a.or(rax, 2));
    check(c.a.mov(cr0, rax));
    check(c.a.mov(rax, cr4));
    check(c.a.or(eax, (1 << 9) | (1 << 10) | (1 << 18)));
    check(c.a.mov(cr4, rax));
    check(c.a.xor(ecx, ecx));
    check(c.a.xor(edx, edx));
    check(c.a.mov(eax, 3));
    check(c.a.xsetbv());
}

/// Runs `emit` and checks it raises #GP(0) (through the handler [`simd_bad_state`] installs);
/// failures exit with `code` (no fault) or `code + 1` (a non-zero error code).
fn expect_gp(c: &mut Code, what: &str, emit: &dyn Fn(&mut Code), code: u32) {
    let resume = c.sym();
    let r = c.addr(resume);
    check(c.a.mov(qword_ptr(GP_RESUME), r as i32));
    check(c.a.mov(qword_ptr(GP_HIT), 0));
    emit(c);
    c.print(&format!("simd-bad-state: {what}: no #GP\n"));
    c.exit(code);
    c.bind(resume);
    check(c.a.cmp(qword_ptr(GP_ERR), 0));
    c.fail_unless_zero(
        &format!("simd-bad-state: {what}: #GP error code not 0\n"),
        code + 1,
    );
}

/// Malformed SIMD state from the guest gets the architectural #GP(0), and the state is left
/// as it was: reserved MXCSR bits through LDMXCSR and through an FXRSTOR image, XRSTOR of a
/// component XCR0 does not enable, of a header with reserved bytes set, and of a misaligned
/// area, and XSETBV of an XCR0 without x87 or with an unsupported component.
pub fn simd_bad_state() -> Vec<u8> {
    Kernel::build(|k| {
        enter_long_mode(k);
        let c = &mut k.c64;
        super::common::skip_if_pvm(
            c,
            "SKIP: PVM runs kernel mode through KVM's instruction emulator, which lacks XGETBV \
             and the SSE instructions\n",
        );
        install_exception_handlers64(c);
        // #GP: record the error code, resume at [GP_RESUME].
        let gp = c.sym();
        let h = c.addr(gp);
        let at = IDT_ADDR + 13 * 16;
        check(c.a.mov(dword_ptr(at), (h & 0xffff) | (u32::from(sel::CODE64) << 16)));
        check(c.a.mov(dword_ptr(at + 4), (h & 0xffff_0000) | 0x8e00));
        let mut over = c.label();
        check(c.a.jmp(over));
        c.bind(gp);
        check(c.a.pop(rax));
        check(c.a.mov(qword_ptr(GP_ERR), rax));
        check(c.a.mov(qword_ptr(GP_HIT), 1));
        check(c.a.mov(rax, qword_ptr(GP_RESUME)));
        check(c.a.mov(qword_ptr(rsp), rax));
        check(c.a.iretq());
        c.here(&mut over);
        enable_sse_and_xsave(c);
        check(c.a.mov(dword_ptr(MXCSR_A), 0x1f80u32));
        check(c.a.ldmxcsr(dword_ptr(MXCSR_A)));
        // LDMXCSR with bit 16 (reserved on every part without DAZ's neighbours) set.
        check(c.a.mov(dword_ptr(MXCSR_B), 0x1_1f80u32));
        expect_gp(
            c,
            "LDMXCSR reserved bit",
            &|c| check(c.a.ldmxcsr(dword_ptr(MXCSR_B))),
            2,
        );
        // FXRSTOR of an image whose MXCSR has bit 31 set.
        check(c.a.fxsave64(ptr(FXSAVE_AREA)));
        check(c.a.mov(dword_ptr(FXSAVE_AREA + 24), 0x8000_1f80u32));
        expect_gp(
            c,
            "FXRSTOR reserved MXCSR bit",
            &|c| check(c.a.fxrstor64(ptr(FXSAVE_AREA))),
            4,
        );
        // XRSTOR: XSTATE_BV naming AVX, which XCR0 does not enable.
        let xrstor = |c: &mut Code, area: u32| {
            check(c.a.mov(eax, 3));
            check(c.a.xor(edx, edx));
            check(c.a.xrstor64(ptr(area)));
        };
        check(c.a.mov(eax, 3));
        check(c.a.xor(edx, edx));
        check(c.a.xsave64(ptr(XSAVE_AREA)));
        check(c.a.mov(qword_ptr(XSAVE_AREA + 512), 7));
        expect_gp(
            c,
            "XRSTOR of a component XCR0 lacks",
            &|c| xrstor(c, XSAVE_AREA),
            6,
        );
        // XRSTOR: a reserved header byte set.
        check(c.a.mov(qword_ptr(XSAVE_AREA + 512), 3));
        check(c.a.mov(qword_ptr(XSAVE_AREA + 512 + 24), 1));
        expect_gp(
            c,
            "XRSTOR with reserved header bytes",
            &|c| xrstor(c, XSAVE_AREA),
            8,
        );
        check(c.a.mov(qword_ptr(XSAVE_AREA + 512 + 24), 0));
        // XRSTOR of an area that is not 64-byte aligned.
        expect_gp(c, "XRSTOR misaligned", &|c| xrstor(c, XSAVE_AREA + 16), 10);
        // XSETBV: x87 cleared; an unsupported component (AVX without its state here).
        let xsetbv = |v: u32| {
            move |c: &mut Code| {
                check(c.a.xor(ecx, ecx));
                check(c.a.xor(edx, edx));
                check(c.a.mov(eax, v));
                check(c.a.xsetbv());
            }
        };
        expect_gp(c, "XSETBV without x87", &xsetbv(2), 12);
        expect_gp(c, "XSETBV of a reserved bit", &xsetbv(3 | 1 << 10), 14);
        // Nothing changed: MXCSR and XCR0 as before.
        check(c.a.stmxcsr(dword_ptr(MXCSR_OUT)));
        check(c.a.cmp(dword_ptr(MXCSR_OUT), 0x1f80));
        c.fail_unless_zero("simd-bad-state: MXCSR changed by a faulting load\n", 16);
        check(c.a.xor(ecx, ecx));
        check(c.a.xgetbv());
        check(c.a.cmp(eax, 3));
        c.fail_unless_zero("simd-bad-state: XCR0 changed by a faulting XSETBV\n", 17);
        // And a well-formed XRSTOR still works.
        xrstor(c, XSAVE_AREA);
        c.print("simd bad state gets #GP: ok\n");
        c.exit(PASS);
    })
}

const FERR_FLAG: u32 = 0x30_0900;
const FERR_CW: u32 = 0x30_0904;

/// The MS-DOS-compatible x87 error path: with CR0.NE clear, an unmasked exception pending at
/// a waiting instruction (FWAIT after a division by zero) asserts FERR#, which the PC routes to
/// IRQ 13 through the slave 8259; the handler acknowledges it on port 0xf0 and clears the
/// exception with FNCLEX. (With NE set the same FWAIT raises #MF, which other kernels check.)
pub fn x87_ferr_irq13() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        // The PICs at vectors 0x20/0x28, cascaded; only IRQ 2 and IRQ 13 unmasked.
        init_8259(c, 0xfb, 0xdf);
        let handler = c.sym();
        let h = c.addr(handler);
        gate32(c, 0x2d, h);
        load_idt(c, false);
        let mut over = c.label();
        check(c.a.jmp(over));
        c.bind(handler);
        check(c.a.push(eax));
        check(c.a.xor(eax, eax));
        check(c.a.out(0xf0, al)); // acknowledge FERR#
        check(c.a.fnclex());
        check(c.a.mov(al, 0x20u32));
        check(c.a.out(0xa0, al));
        check(c.a.out(0x20, al));
        check(c.a.mov(dword_ptr(FERR_FLAG), 1u32));
        check(c.a.pop(eax));
        check(c.a.iretd());
        c.here(&mut over);
        // x87 on, CR0.NE clear (EM and TS clear too).
        check(c.a.mov(eax, cr0));
        check(c.a.and(eax, !0x2ci32));
        check(c.a.or(eax, 2));
        check(c.a.mov(cr0, eax));
        check(c.a.mov(dword_ptr(FERR_FLAG), 0u32));
        check(c.a.fninit());
        check(c.a.mov(word_ptr(FERR_CW), 0x037bu32)); // ZE unmasked
        check(c.a.fldcw(word_ptr(FERR_CW)));
        check(c.a.fldz());
        check(c.a.fld1());
        check(c.a.fdiv_2(st0, st1)); // 1/0: ZE pending
        check(c.a.sti());
        check(c.a.wait());
        check(c.a.nop());
        check(c.a.nop());
        check(c.a.cli());
        check(c.a.cmp(dword_ptr(FERR_FLAG), 1));
        c.fail_unless_zero(
            "x87-ferr: no IRQ 13 after FWAIT with an exception pending\n",
            2,
        );
        check(c.a.fnstsw(ax));
        check(c.a.test(ax, 0x80));
        c.fail_unless_zero("x87-ferr: ES still set after the handler's FNCLEX\n", 3);
        c.print("x87 FERR# reaches IRQ 13 with CR0.NE clear: ok\n");
        c.exit(PASS);
    })
}
