//! Kernels that check a `-cpu` model: what CPUID reports and that what it leaves out is
//! really absent (#UD for its instructions, #GP for its control bits and MSRs).

use iced_x86::code_asm::*;

use crate::kit::{check, sel, Code, Kernel, PASS};

use super::common::*;

const VEC: u32 = 0x7f00;
const RESUME: u32 = 0x7f08;

/// Installs #UD and #GP handlers that record the vector at [`VEC`] and resume at [`RESUME`].
fn install_probe_handlers(c: &mut Code) {
    let mut over = c.label();
    let handlers: Vec<_> = [6u32, 13].iter().map(|_| c.sym()).collect();
    for (v, h) in [6u32, 13].iter().zip(&handlers) {
        let a = c.addr(*h);
        gate32(c, *v, a);
    }
    load_idt(c, false);
    check(c.a.jmp(over));
    for (v, h) in [6u32, 13].iter().zip(&handlers) {
        c.bind(*h);
        check(c.a.mov(dword_ptr(VEC), *v));
        if *v == 13 {
            check(c.a.add(esp, 4i32)); // the error code
        }
        check(c.a.mov(eax, dword_ptr(RESUME)));
        check(c.a.mov(dword_ptr(esp), eax));
        check(c.a.iretd());
    }
    c.here(&mut over);
}

/// Runs `emit` and checks that it raises `vector` (or, with `None`, nothing).
fn expect(c: &mut Code, n: &mut u32, name: &str, emit: &dyn Fn(&mut Code), vector: Option<u32>) {
    let resume = c.sym();
    let r = c.addr(resume);
    check(c.a.mov(dword_ptr(RESUME), r));
    check(c.a.mov(dword_ptr(VEC), u32::MAX));
    emit(c);
    c.bind(resume);
    check(c.a.mov(ax, u32::from(sel::DATA32)));
    check(c.a.mov(ds, ax));
    let want = vector.unwrap_or(u32::MAX);
    check(c.a.cmp(dword_ptr(VEC), want as i32));
    let what = match vector {
        Some(6) => "#UD",
        Some(13) => "#GP",
        _ => "no fault",
    };
    c.fail_unless_zero(&format!("cpu model: {name}: expected {what}\n"), *n);
    *n += 1;
}

/// For `-cpu pentium`: CPUID says family 5, max leaf 1, TSC and CMPXCHG8B but no CMOV, PAE,
/// PGE, SYSENTER or long mode; CMOV, SYSENTER, POPCNT and ANDN raise #UD, TZCNT runs as BSF,
/// CR4.PAE/PGE and EFER raise #GP, RDTSC and CMPXCHG8B work.
pub fn cpu_model_pentium() -> Vec<u8> {
    Kernel::build(|k| {
        let c = &mut k.c32;
        install_probe_handlers(c);
        let mut n = 2;
        check(c.a.xor(eax, eax));
        check(c.a.cpuid());
        check(c.a.cmp(eax, 1));
        c.fail_unless_zero("cpu model: CPUID max leaf is not 1\n", n);
        n += 1;
        check(c.a.cmp(ebx, u32::from_le_bytes(*b"Genu") as i32));
        c.fail_unless_zero("cpu model: vendor is not GenuineIntel\n", n);
        n += 1;
        check(c.a.mov(eax, 1u32));
        check(c.a.cpuid());
        check(c.a.mov(ecx, eax));
        check(c.a.and(ecx, 0xf00i32));
        check(c.a.cmp(ecx, 0x500i32));
        c.fail_unless_zero("cpu model: CPUID family is not 5\n", n);
        n += 1;
        // TSC (4), MSR (5), CX8 (8) present; PAE (6), SEP (11), PGE (13), CMOV (15) absent.
        check(c.a.and(
            edx,
            (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 11) | (1 << 13) | (1 << 15),
        ));
        check(c.a.cmp(edx, (1 << 4) | (1 << 5) | (1 << 8)));
        c.fail_unless_zero("cpu model: wrong leaf-1 EDX features\n", n);
        n += 1;

        expect(c, &mut n, "CMOVE", &|c| check(c.a.cmove(eax, ebx)), Some(6));
        expect(c, &mut n, "SYSENTER", &|c| check(c.a.sysenter()), Some(6));
        expect(c, &mut n, "RDTSC", &|c| check(c.a.rdtsc()), None);
        expect(
            c,
            &mut n,
            "POPCNT",
            &|c| check(c.a.popcnt(eax, ebx)),
            Some(6),
        );
        expect(
            c,
            &mut n,
            "ANDN",
            &|c| check(c.a.andn(eax, ebx, ecx)),
            Some(6),
        );
        // Without BMI1 the F3 prefix is ignored and TZCNT is BSF: a zero source leaves the
        // destination alone instead of writing 32.
        check(c.a.mov(ebx, 0x1234u32));
        check(c.a.xor(eax, eax));
        check(c.a.tzcnt(ebx, eax));
        check(c.a.cmp(ebx, 0x1234));
        c.fail_unless_zero("cpu model: TZCNT did not run as BSF\n", n);
        n += 1;
        check(c.a.mov(eax, 0x12u32));
        check(c.a.tzcnt(ebx, eax));
        check(c.a.cmp(ebx, 1));
        c.fail_unless_zero(
            "cpu model: TZCNT (as BSF) did not find the lowest set bit\n",
            n,
        );
        n += 1;
        expect(
            c,
            &mut n,
            "CMPXCHG8B",
            &|c| check(c.a.cmpxchg8b(qword_ptr(0x7f10))),
            None,
        );
        for (name, bit) in [("CR4.PAE", 1u32 << 5), ("CR4.PGE", 1 << 7)] {
            expect(
                c,
                &mut n,
                name,
                &|c| {
                    check(c.a.mov(eax, cr4));
                    check(c.a.or(eax, bit as i32));
                    check(c.a.mov(cr4, eax));
                },
                Some(13),
            );
        }
        expect(
            c,
            &mut n,
            "CR4.PSE",
            &|c| {
                check(c.a.mov(eax, cr4));
                check(c.a.or(eax, 1 << 4));
                check(c.a.mov(cr4, eax));
            },
            None,
        );
        expect(
            c,
            &mut n,
            "RDMSR EFER",
            &|c| {
                check(c.a.mov(ecx, 0xc000_0080u32));
                check(c.a.rdmsr());
            },
            Some(13),
        );
        expect(
            c,
            &mut n,
            "RDMSR MTRRcap",
            &|c| {
                check(c.a.mov(ecx, 0xfeu32));
                check(c.a.rdmsr());
            },
            Some(13),
        );
        c.print("cpu model pentium: ok\n");
        c.exit(PASS);
    })
}
