//! The kit's kernels under the software CPU (`--accel dbt`): every mode, CPL 0 and 3, SMP
//! start-up aside (it needs the local APIC), and the boot-information kernels.

use std::time::Duration;

use machine::Accel;
use testsuite::{catalog, harness};

#[test]
fn mode_kernels_pass_under_the_software_cpu() {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut failures = Vec::new();
    for case in catalog::mode_kernels() {
        let file = harness::temp_kernel(&format!("dbt-{}", case.name), &(case.build)());
        let (cfg, cap) = harness::config(file.path(), Accel::Dbt, 64 << 20);
        match harness::run(&cfg, &cap, Duration::from_secs(60)) {
            Ok(out) if out.passed() && out.serial.contains(case.expect) => {}
            Ok(out) => failures.push(format!(
                "{}: expected {:?}, got {:?} with serial {:?}",
                case.name, case.expect, out.exit, out.serial
            )),
            Err(e) => failures.push(format!("{}: VM error: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn garbage_on_every_port_is_survived_by_the_software_cpu() {
    let file = harness::temp_kernel("dbt-garbage", &testsuite::kernels::garbage_io());
    let (mut cfg, cap) = harness::config(file.path(), Accel::Dbt, 64 << 20);
    // QEMU's test devices get the garbage too.
    cfg.pc_testdev = true;
    cfg.pci_testdev = true;
    let out = harness::run(&cfg, &cap, Duration::from_secs(120)).expect("VM runs");
    assert!(out.passed(), "{:?}", out.exit);
    assert!(out.serial.contains("garbage I/O survived: ok"));
}

#[test]
fn a_cpu_model_is_what_cpuid_says_and_no_more() {
    let file = harness::temp_kernel("dbt-cpu-pentium", &testsuite::kernels::cpu_model_pentium());
    let (mut cfg, cap) = harness::config(file.path(), Accel::Dbt, 64 << 20);
    cfg.cpu = machine::CpuModel::by_name("pentium");
    let out = harness::run(&cfg, &cap, Duration::from_secs(60)).expect("VM runs");
    assert!(out.passed(), "{:?}: {}", out.exit, out.serial);
    assert!(
        out.serial.contains("cpu model pentium: ok"),
        "{}",
        out.serial
    );

    // The default model is a different CPU: the kernel's first check tells them apart.
    let (cfg, cap) = harness::config(file.path(), Accel::Dbt, 64 << 20);
    let out = harness::run(&cfg, &cap, Duration::from_secs(60)).expect("VM runs");
    assert!(!out.passed(), "{}", out.serial);
    assert!(
        out.serial.contains("CPUID max leaf is not 1"),
        "{}",
        out.serial
    );
}

#[test]
fn a_jump_into_unclaimed_mmio_is_ud_in_the_guest() {
    let file = harness::temp_kernel("dbt-jump-mmio", &testsuite::kernels::jump_into_mmio());
    let (cfg, cap) = harness::config(file.path(), Accel::Dbt, 64 << 20);
    let out = harness::run(&cfg, &cap, Duration::from_secs(60)).expect("VM runs");
    assert!(out.passed(), "{:?}: {}", out.exit, out.serial);
    assert!(
        out.serial.contains("jump into unclaimed MMIO: #UD: ok"),
        "{}",
        out.serial
    );
}

#[test]
fn a_64_bit_kernel_on_a_32_bit_cpu_model_is_a_config_error() {
    let image = testsuite::kernels::linux_boot_params(testsuite::kernels::LinuxExpect {
        cmdline: String::new(),
        initrd_prefix: Vec::new(),
        initrd_size: 0,
        memory: 64 << 20,
    });
    let file = harness::temp_kernel("dbt-bzimage-pentium", &image);
    let (mut cfg, cap) = harness::config(file.path(), Accel::Dbt, 64 << 20);
    cfg.cpu = machine::CpuModel::by_name("pentium3");
    let err = match harness::run(&cfg, &cap, Duration::from_secs(60)) {
        Err(e) => e.to_string(),
        Ok(out) => panic!("ran: {:?}", out.exit),
    };
    assert!(
        err.contains("pentium3") && err.contains("long mode"),
        "{err}"
    );
}
