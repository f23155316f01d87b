//! Kernels for the x87/SSE state: a context switch between two tasks' SSE state with FXSAVE
//! and XSAVE, each register checked after every restore.

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

/// Two tasks' SSE state (XMM0–15, MXCSR) saved and restored across a "switch": task A's with
/// FXSAVE64, task B's with XSAVE64, then each restored (FXRSTOR64, XRSTOR64) and checked;
/// XSAVE's header records both components, and an XRSTOR whose header marks SSE as in its
/// initial state clears the XMM registers. Also checks CPUID (OSXSAVE, leaf 0xD's size) and
/// XGETBV.
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
        check(c.a.mov(dword_ptr(MXCSR_A), 0x3f80u32)); // round down
        check(c.a.mov(dword_ptr(MXCSR_B), 0x5f80u32)); // round up
                                                       // Task A runs, and is switched out with FXSAVE.
        load_all(c, PATTERN_A);
        check(c.a.ldmxcsr(dword_ptr(MXCSR_A)));
        check(c.a.fxsave64(ptr(FXSAVE_AREA)));
        // Task B runs, and is switched out with XSAVE (x87 and SSE requested).
        load_all(c, PATTERN_B);
        check(c.a.ldmxcsr(dword_ptr(MXCSR_B)));
        check(c.a.mov(eax, 3));
        check(c.a.xor(edx, edx));
        check(c.a.xsave64(ptr(XSAVE_AREA)));
        check(c.a.cmp(qword_ptr(XSAVE_AREA + 512), 3));
        c.fail_unless_zero("xsave: XSTATE_BV does not record x87 and SSE\n", 5);
        // Back to A, then to B.
        check(c.a.fxrstor64(ptr(FXSAVE_AREA)));
        check_all(c, PATTERN_A, 0x3f80, "FXRSTOR", 6);
        check(c.a.mov(eax, 3));
        check(c.a.xor(edx, edx));
        check(c.a.xrstor64(ptr(XSAVE_AREA)));
        check_all(c, PATTERN_B, 0x5f80, "XRSTOR", 8);
        // SSE marked as in its initial state: the XMM registers come back zero, MXCSR still
        // from memory.
        check(c.a.mov(qword_ptr(XSAVE_AREA + 512), 1));
        check(c.a.mov(eax, 3));
        check(c.a.xor(edx, edx));
        check(c.a.xrstor64(ptr(XSAVE_AREA)));
        check_all(c, ZEROS, 0x5f80, "XRSTOR of the initial state", 10);
        c.print("sse context switch with FXSAVE and XSAVE: ok\n");
        c.exit(PASS);
    })
}
