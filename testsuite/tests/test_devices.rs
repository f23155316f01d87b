//! QEMU's test devices, as suites written for QEMU use them, under both backends (KVM skipped
//! without /dev/kvm).

use std::time::Duration;

use machine::{Accel, KvmKind};
use testsuite::{harness, kernels};

#[test]
fn pc_testdev_scratch_ports_mmio_and_irq_lines() {
    let mut backends = vec![Accel::Dbt];
    match machine::accel::probe_kvm() {
        KvmKind::Unavailable(why) => eprintln!("SKIP: the KVM half needs /dev/kvm: {why}"),
        _ => backends.push(Accel::Kvm),
    }
    for accel in backends {
        let file = harness::temp_kernel(&format!("{accel:?}-pc-testdev"), &kernels::pc_testdev());
        let (mut cfg, cap) = harness::config(file.path(), accel, 64 << 20);
        cfg.pc_testdev = true;
        let out = harness::run(&cfg, &cap, Duration::from_secs(30)).expect("VM runs");
        assert!(out.passed(), "{accel:?}: {:?} {}", out.exit, out.serial);
        assert!(out
            .serial
            .contains("pc-testdev: scratch ports and scratch MMIO: ok"));
        // The IRQ-line ports reach KVM's in-kernel PIC and the software CPU's 8259 pair.
        assert!(
            out.serial
                .contains("pc-testdev: IRQ line 5 reaches the PIC: ok"),
            "{accel:?}: {}",
            out.serial
        );
    }
}

#[test]
fn pc_testdev_memory_must_not_overlap_a_16_mib_bios() {
    let file = harness::temp_kernel("rom-16m", &vec![0xf4u8; 16 << 20]);
    let (mut cfg, cap) = harness::config(file.path(), Accel::Dbt, 64 << 20);
    cfg.kernel = None;
    cfg.firmware = Some(file.path().to_owned());
    cfg.pc_testdev = true;
    let err = match harness::run(&cfg, &cap, Duration::from_secs(5)) {
        Err(e) => e.to_string(),
        Ok(out) => panic!("ran: {:?}", out.exit),
    };
    assert!(
        err.contains("pc-testdev") && err.contains("overlap"),
        "{err}"
    );
}

#[test]
fn pci_testdev_bars_and_write_counters() {
    let mut backends = vec![Accel::Dbt];
    if !matches!(machine::accel::probe_kvm(), KvmKind::Unavailable(_)) {
        backends.push(Accel::Kvm);
    }
    for accel in backends {
        let file = harness::temp_kernel(&format!("{accel:?}-pci-testdev"), &kernels::pci_testdev());
        let (mut cfg, cap) = harness::config(file.path(), accel, 64 << 20);
        cfg.pci_testdev = true;
        let out = harness::run(&cfg, &cap, Duration::from_secs(30)).expect("VM runs");
        assert!(out.passed(), "{accel:?}: {:?} {}", out.exit, out.serial);
    }
}
