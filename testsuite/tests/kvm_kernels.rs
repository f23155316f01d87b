//! The kit's mode kernels under the KVM backend, with serial output and exit asserted.
//!
//! Where /dev/kvm cannot be opened every test says so and returns. Under PVM some kernels
//! report `SKIP:` themselves (PVM cannot do what they test); those are listed and must skip,
//! all others must pass.

use std::time::Duration;

use machine::{Accel, KvmKind};
use testsuite::{catalog, harness};

/// Kernels that PVM cannot run, with the reason they print.
const PVM_SKIPS: &[(&str, &str)] = &[
    ("real-mode-a20", "KVM does not model the A20 gate"),
    ("v8086", "legacy (non-long-mode) user code"),
    ("protected32-call-gate", "legacy (non-long-mode) user code"),
    ("protected32-task-switch", "no protected-mode IRET"),
    ("protected32-page-faults", "only 4-level paging"),
    ("protected32-pae-page-faults", "only 4-level paging"),
    (
        "real-mode-interrupts",
        "INT n in real mode does not complete",
    ),
    ("protected32-paging", "only 4-level paging"),
    ("protected32-pae", "only 4-level paging"),
    ("protected32-user", "legacy (non-long-mode) user code"),
    (
        "protected32-double-fault",
        "promotes every double fault to a triple fault",
    ),
    ("protected32-protection-faults", "no protected-mode IRET"),
    ("protected32-tss-faults", "no protected-mode IRET"),
    ("protected32-sysenter", "legacy (non-long-mode) user code"),
    ("protected32-descriptors", "LAR/LSL/VERR/VERW"),
    ("protected32-paging-user", "only 4-level paging"),
    (
        "long64-user-int80",
        "INT 0x80 from user mode arrives as #UD",
    ),
    ("long64-user-syscall", "SYSCALL target runs at CPL 3"),
    (
        "compat32-user-int80",
        "INT 0x80 from user mode arrives as #UD",
    ),
    ("compat32-user-syscall", "SYSCALL target runs at CPL 3"),
];

fn kvm() -> Option<KvmKind> {
    match machine::accel::probe_kvm() {
        KvmKind::Unavailable(why) => {
            eprintln!("SKIP: KVM tests need /dev/kvm: {why}");
            None
        }
        k => Some(k),
    }
}

#[test]
fn mode_kernels_pass_under_kvm() {
    let Some(kind) = kvm() else { return };
    let pvm = matches!(kind, KvmKind::Paravirtual(_));
    let mut failures = Vec::new();
    let (mut passed, mut skipped) = (0, 0);
    for case in catalog::mode_kernels() {
        let path = harness::temp_kernel(case.name, &(case.build)());
        let (cfg, cap) = harness::config(path.path(), Accel::Kvm, 64 << 20);
        let out = match harness::run(&cfg, &cap, Duration::from_secs(30)) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: VM error: {e}", case.name));
                continue;
            }
        };
        let pvm_skip = PVM_SKIPS.iter().find(|(n, _)| *n == case.name);
        match (pvm, pvm_skip) {
            (true, Some((_, why))) => {
                if out.skipped() && out.serial.contains(why) {
                    eprintln!("SKIP: {} under PVM: {}", case.name, out.serial.trim_end());
                    skipped += 1;
                } else {
                    failures.push(format!(
                        "{}: expected a PVM skip ({why}), got {:?} with {:?}",
                        case.name, out.exit, out.serial
                    ));
                }
            }
            _ => {
                if out.passed() && out.serial.contains(case.expect) {
                    passed += 1;
                } else {
                    failures.push(format!(
                        "{}: expected pass with {:?}, got {:?} with serial {:?}",
                        case.name, case.expect, out.exit, out.serial
                    ));
                }
            }
        }
    }
    eprintln!("KVM mode kernels: {passed} passed, {skipped} skipped (PVM limits)");
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn smp_kernel_starts_every_ap_under_kvm() {
    if kvm().is_none() {
        return;
    }
    for cpus in [2, 4] {
        let path = harness::temp_kernel(&format!("smp{cpus}"), &testsuite::kernels::smp(cpus));
        let (mut cfg, cap) = harness::config(path.path(), Accel::Kvm, 64 << 20);
        cfg.vcpus = cpus;
        let out = harness::run(&cfg, &cap, Duration::from_secs(30)).expect("VM runs");
        assert!(out.passed(), "{cpus} CPUs: {out:?}");
        let line = format!("smp: {} application processors started: ok", cpus - 1);
        assert!(out.serial.contains(&line), "{cpus} CPUs: {out:?}");
    }
}

#[test]
fn garbage_on_every_port_and_unclaimed_mmio_is_survived() {
    if kvm().is_none() {
        return;
    }
    let path = harness::temp_kernel("garbage", &testsuite::kernels::garbage_io());
    let (mut cfg, cap) = harness::config(path.path(), Accel::Kvm, 64 << 20);
    cfg.pc_testdev = true;
    cfg.pci_testdev = true;
    let t = std::time::Instant::now();
    let out = harness::run(&cfg, &cap, Duration::from_secs(120)).expect("VM runs");
    eprintln!("garbage I/O run took {:?}", t.elapsed());
    assert!(out.passed(), "{:?}", out.exit);
    assert!(out.serial.contains("garbage I/O survived: ok"));
}
