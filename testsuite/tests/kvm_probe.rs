use std::time::Duration;
use testsuite::{harness, kernels};

#[test]
fn probe_hello32() {
    let p = harness::temp_kernel("hello32.bin", &kernels::hello32());
    let (cfg, cap) = harness::config(&p, machine::Accel::Kvm, 64 << 20);
    let t = std::time::Instant::now();
    let out = harness::run(&cfg, &cap, Duration::from_secs(20));
    eprintln!("{:?} in {:?}", out, t.elapsed());
}
