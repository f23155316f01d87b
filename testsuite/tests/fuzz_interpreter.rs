//! Random bytes through the interpreter, at CPL 0 and 3, in 64-bit and compatibility mode:
//! garbage code must give the guest exceptions, never panic the host (bounded for CI).

use testsuite::difftest::gen::Rng;
use testsuite::difftest::soft::SoftRunner;

#[test]
fn random_bytes_never_panic_the_interpreter() {
    let runner = SoftRunner::new();
    let mut executed = 0;
    // CI runs a bounded amount; FERRITE_FUZZ_ROUNDS runs a longer campaign (debug builds also
    // catch arithmetic overflow on guest values).
    let rounds: u32 = std::env::var("FERRITE_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let seed = std::env::var("FERRITE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = Rng::new(seed);
    for round in 0..rounds {
        let len = 1 + rng.below(48) as usize;
        let code: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let compat = round % 2 == 1;
        let cpl0 = round % 4 >= 2;
        executed += runner.run_bytes(&code, compat, cpl0, 200);
    }
    eprintln!("fuzz: {executed} instructions completed over {rounds} random snippets");
    assert!(executed > 1000, "the fuzzer barely executed anything");
}

/// Random bytes behind the SIMD and x87 escapes (0F, 0F 38, 0F 3A with the 66/F2/F3
/// prefixes, D8–DF), where byte-level fuzzing rarely lands: every SSE-family and x87
/// instruction the decoder knows reaches the interpreter with random operands.
#[test]
fn random_simd_and_x87_encodings_never_panic_the_interpreter() {
    let runner = SoftRunner::new();
    let rounds: u32 = std::env::var("FERRITE_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let mut rng = Rng::new(0x51d);
    let escapes: [&[u8]; 12] = [
        &[0x0f],
        &[0x66, 0x0f],
        &[0xf2, 0x0f],
        &[0xf3, 0x0f],
        &[0x0f, 0x38],
        &[0x66, 0x0f, 0x38],
        &[0xf2, 0x0f, 0x38],
        &[0x66, 0x0f, 0x3a],
        &[0x0f, 0x3a],
        &[0x66, 0x48, 0x0f, 0x3a],
        &[0xd9],
        &[0xdd],
    ];
    let mut executed = 0;
    for round in 0..rounds {
        let mut code = Vec::new();
        for _ in 0..1 + rng.below(4) {
            code.extend_from_slice(escapes[rng.below(escapes.len() as u64) as usize]);
            let tail = 1 + rng.below(6);
            code.extend((0..tail).map(|_| rng.next_u64() as u8));
        }
        let compat = round % 2 == 1;
        let cpl0 = round % 4 >= 2;
        executed += runner.run_bytes(&code, compat, cpl0, 50);
    }
    eprintln!("simd fuzz: {executed} instructions completed over {rounds} snippets");
    assert!(executed > 1000, "the fuzzer barely executed anything");
}

/// System registers loaded with extreme values, then used: selector and address arithmetic
/// on them must wrap as the hardware's does, never overflow in the host.
#[test]
fn extreme_system_register_values_never_panic_the_interpreter() {
    use iced_x86::code_asm::*;
    let runner = SoftRunner::new();
    let wrmsr = |a: &mut CodeAssembler, msr: u32, v: u64| {
        a.mov(ecx, msr).unwrap();
        a.mov(eax, v as u32).unwrap();
        a.mov(edx, (v >> 32) as u32).unwrap();
        a.wrmsr().unwrap();
    };
    type Snippet = Box<dyn Fn(&mut CodeAssembler)>;
    let snippets: Vec<Snippet> = vec![
        // SYSRET and SYSCALL with STAR's selectors at the top of the range.
        Box::new(move |a| {
            wrmsr(a, 0xc000_0081, 0xffff_fffc_0000_0000);
            a.sysretq().unwrap();
        }),
        Box::new(move |a| {
            wrmsr(a, 0xc000_0081, 0xffff_fffc_0000_0000);
            a.sysret().unwrap();
        }),
        Box::new(move |a| {
            wrmsr(a, 0xc000_0081, 0xffff_fffc_0000_0000);
            a.syscall().unwrap();
        }),
        // SYSENTER/SYSEXIT with SYSENTER_CS = 0xfffc.
        Box::new(move |a| {
            wrmsr(a, 0x174, 0xfffc);
            a.sysexitq().unwrap();
        }),
        Box::new(move |a| {
            wrmsr(a, 0x174, 0xfffc);
            a.sysenter().unwrap();
        }),
        // An IDT and a GDT at the very top of the address space, then a fault and a load.
        Box::new(|a| {
            a.mov(rax, 0xffff_ffff_ffff_fff0u64).unwrap();
            a.push(rax).unwrap();
            a.push(0xffff).unwrap();
            a.lidt(ptr(rsp + 6)).unwrap();
            a.ud2().unwrap();
        }),
        Box::new(|a| {
            a.mov(rax, 0xffff_ffff_ffff_fff8u64).unwrap();
            a.push(rax).unwrap();
            a.push(0xffff).unwrap();
            a.lgdt(ptr(rsp + 6)).unwrap();
            a.mov(ax, 0x18).unwrap();
            a.lldt(ax).unwrap();
            a.mov(ds, ax).unwrap();
        }),
        // CMPXCHG16B at the top of the address space.
        Box::new(|a| {
            a.mov(rsi, 0xffff_ffff_ffff_fff0u64).unwrap();
            a.cmpxchg16b(xmmword_ptr(rsi)).unwrap();
        }),
    ];
    for (k, emit) in snippets.iter().enumerate() {
        let mut a = CodeAssembler::new(64).unwrap();
        emit(&mut a);
        let code = a.assemble(0x1000_0000).unwrap();
        runner.run_bytes(&code, false, true, 50);
        eprintln!("extreme values: snippet {k} survived");
    }
}
