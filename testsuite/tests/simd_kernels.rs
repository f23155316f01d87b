//! The x87/SSE state kernels under the software CPU and KVM (PVM may skip, saying why).

use std::time::Duration;

use machine::{Accel, KvmKind};
use testsuite::{harness, kernels};

#[test]
fn sse_state_survives_a_context_switch_with_fxsave_and_xsave() {
    let mut backends = vec![Accel::Dbt];
    let kind = machine::accel::probe_kvm();
    match &kind {
        KvmKind::Unavailable(why) => eprintln!("SKIP: the KVM half needs /dev/kvm: {why}"),
        _ => backends.push(Accel::Kvm),
    }
    for accel in backends {
        let file = harness::temp_kernel(
            &format!("{accel:?}-sse-switch"),
            &kernels::sse_context_switch(),
        );
        let (cfg, cap) = harness::config(file.path(), accel, 64 << 20);
        let out = harness::run(&cfg, &cap, Duration::from_secs(60)).expect("VM runs");
        let pvm = accel == Accel::Kvm && matches!(kind, KvmKind::Paravirtual(_));
        if pvm && out.skipped() {
            assert!(out.serial.contains("XGETBV"), "{}", out.serial);
            eprintln!("SKIP: under PVM: {}", out.serial.trim_end());
            continue;
        }
        assert!(out.passed(), "{accel:?}: {:?} {}", out.exit, out.serial);
        assert!(out
            .serial
            .contains("sse context switch with FXSAVE and XSAVE: ok"));
    }
}

#[test]
fn malformed_simd_state_gets_gp() {
    let file = harness::temp_kernel("simd-bad-state", &kernels::simd_bad_state());
    let (cfg, cap) = harness::config(file.path(), Accel::Dbt, 64 << 20);
    let out = harness::run(&cfg, &cap, Duration::from_secs(60)).expect("VM runs");
    assert!(out.passed(), "{:?} {}", out.exit, out.serial);
    assert!(out.serial.contains("simd bad state gets #GP: ok"));
}

#[test]
fn x87_errors_reach_irq13_with_ne_clear() {
    let file = harness::temp_kernel("x87-ferr", &kernels::x87_ferr_irq13());
    let (cfg, cap) = harness::config(file.path(), Accel::Dbt, 64 << 20);
    let out = harness::run(&cfg, &cap, Duration::from_secs(60)).expect("VM runs");
    assert!(out.passed(), "{:?} {}", out.exit, out.serial);
    assert!(out
        .serial
        .contains("x87 FERR# reaches IRQ 13 with CR0.NE clear: ok"));
}
