//! Random bytes through the interpreter, at CPL 0 and 3, in 64-bit and compatibility mode:
//! garbage code must give the guest exceptions, never panic the host (bounded for CI).

use testsuite::difftest::gen::Rng;
use testsuite::difftest::soft::SoftRunner;

#[test]
fn random_bytes_never_panic_the_interpreter() {
    let runner = SoftRunner::new();
    let mut rng = Rng::new(0x5eed);
    let mut executed = 0;
    for round in 0..4000 {
        let len = 1 + rng.below(48) as usize;
        let code: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let compat = round % 2 == 1;
        let cpl0 = round % 4 >= 2;
        executed += runner.run_bytes(&code, compat, cpl0, 200);
    }
    eprintln!("fuzz: {executed} instructions completed over 4000 random snippets");
    assert!(executed > 1000, "the fuzzer barely executed anything");
}
