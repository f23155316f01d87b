//! The interpreter's speed beside the host's on the same CPU-bound loop, in one run.
//!
//! The loop (64-bit, integer only) runs natively in a traced child process and on the
//! interpreter; the report gives guest instructions per second and the ratio.
//! Usage: bench-interpreter [ITERATIONS]

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn main() {
    use std::time::Instant;
    use testsuite::difftest::host::HostOracle;
    use testsuite::difftest::soft::SoftRunner;
    use testsuite::difftest::{Case, DATA_SIZE};

    let iterations: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    // loop: imul rax,rax,0x5851f42d; add rax,rbx; xor rdx,rax; rol rdx,13; add [r15],edx;
    //       dec ecx; jnz loop; ud2   (7 instructions per iteration)
    let mut code = vec![0xb9];
    code.extend_from_slice(&(iterations as u32).to_le_bytes()); // mov ecx, N
    let body: &[u8] = &[
        0x48, 0x69, 0xc0, 0x2d, 0xf4, 0x51, 0x58, // imul rax, rax, 0x5851f42d
        0x48, 0x01, 0xd8, // add rax, rbx
        0x48, 0x31, 0xc2, // xor rdx, rax
        0x48, 0xc1, 0xc2, 0x0d, // rol rdx, 13
        0x41, 0x01, 0x17, // add [r15], edx
        0xff, 0xc9, // dec ecx
    ];
    code.extend_from_slice(body);
    let back = -((body.len() + 2) as i8);
    code.extend_from_slice(&[0x75, back as u8, 0x0f, 0x0b]); // jnz loop; ud2
    let mut regs = [0u64; 16];
    regs[0] = 1;
    regs[3] = 0x9e37_79b9;
    regs[15] = testsuite::difftest::DATA_BASE;
    regs[4] = testsuite::difftest::STACK_TOP;
    let case = Case {
        code,
        compat: false,
        regs,
        rflags: 0,
        data: vec![0; DATA_SIZE],
        instructions: 0,
        xmm: [0; 16],
        mxcsr: 0x1f80,
        mm: [0; 8],
        fpu: None,
    };
    let instructions = 1 + iterations * 7;

    let mut host = HostOracle::new().unwrap_or_else(|e| {
        eprintln!("cannot start the native runner: {e}");
        std::process::exit(1);
    });
    let t = Instant::now();
    let (native, _) = host.run(&case).expect("native run");
    let native_s = t.elapsed().as_secs_f64();

    let soft = SoftRunner::new();
    let t = Instant::now();
    let executed = soft.run_to_end(&case, u64::MAX);
    let interp_s = t.elapsed().as_secs_f64();

    assert_eq!(
        native.regs[1] & 0xffff_ffff,
        0,
        "the native loop did not finish"
    );
    println!("CPU-bound loop, {iterations} iterations, 7 instructions each:");
    println!(
        "  native (host CPU)   {:>8.3} s  {:>10.1} M instructions/s",
        native_s,
        instructions as f64 / native_s / 1e6
    );
    println!(
        "  interpreter         {:>8.3} s  {:>10.1} M instructions/s  ({executed} executed)",
        interp_s,
        executed as f64 / interp_s / 1e6
    );
    println!("  native / interpreter: {:.0}x", interp_s / native_s);
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn main() {
    eprintln!("bench-interpreter needs an x86-64 Linux host to run the loop natively");
}
