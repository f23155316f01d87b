//! Kernels for the x87/SSE state: a context switch between two tasks' x87 and SSE state with
//! FXSAVE and XSAVE, each register checked after every restore.

use iced_x86::code_asm::*;

use crate::kit::{check, Code, Kernel, PASS};

use super::common::enter_long_mode;

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
