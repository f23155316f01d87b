//! The loaders under KVM: test kernels that check the boot information they receive.

use std::time::Duration;

use machine::{Accel, KvmKind};
use testsuite::kernels::{self, LinuxExpect, MultibootExpect, PvhExpect};
use testsuite::{harness, kit};

const MEMORY: u64 = 64 << 20;

fn kvm_available() -> bool {
    match machine::accel::probe_kvm() {
        KvmKind::Unavailable(why) => {
            eprintln!("SKIP: KVM tests need /dev/kvm: {why}");
            false
        }
        _ => true,
    }
}

fn run(
    kernel: &[u8],
    name: &str,
    cmdline: &str,
    initrd: Option<(&str, &[u8])>,
) -> harness::Outcome {
    let file = harness::temp_kernel(name, kernel);
    let (mut cfg, cap) = harness::config(file.path(), Accel::Kvm, MEMORY);
    cfg.kernel.cmdline = cmdline.into();
    let initrd = initrd.map(|(name, data)| harness::temp_kernel(name, data));
    cfg.kernel.initrd = initrd.as_ref().map(|f| f.path().to_owned());
    harness::run(&cfg, &cap, Duration::from_secs(30)).expect("VM runs")
}

fn module() -> Vec<u8> {
    let mut m = b"FERRITE-MODULE".to_vec();
    m.extend((0..5000u32).map(|i| i as u8));
    m
}

fn multiboot_expect() -> MultibootExpect {
    MultibootExpect {
        cmdline_suffix: "testarg=42 console=ttyS0".into(),
        module_prefix: module()[..64].to_vec(),
        memory: MEMORY,
    }
}

#[test]
fn multiboot_aout_kernel_gets_its_info_and_module() {
    if !kvm_available() {
        return;
    }
    let k = kernels::multiboot_info(multiboot_expect());
    let out = run(
        &k,
        "mb-aout",
        "testarg=42 console=ttyS0",
        Some(("mb-aout.mod", &module())),
    );
    assert!(out.passed(), "{out:?}");
    assert!(out.serial.contains("multiboot info: ok"), "{out:?}");
}

#[test]
fn multiboot_elf_kernel_gets_its_info_and_module() {
    if !kvm_available() {
        return;
    }
    let k = kit::to_multiboot_elf(&kernels::multiboot_info(multiboot_expect()));
    let out = run(
        &k,
        "mb-elf",
        "testarg=42 console=ttyS0",
        Some(("mb-elf.mod", &module())),
    );
    assert!(out.passed(), "{out:?}");
    assert!(out.serial.contains("multiboot info: ok"), "{out:?}");
}

#[test]
fn bzimage_gets_boot_params_initrd_and_e820() {
    if !kvm_available() {
        return;
    }
    let initrd: Vec<u8> = b"FERRITE-INITRD"
        .iter()
        .copied()
        .chain((0..100_000u32).map(|i| (i * 7) as u8))
        .collect();
    let cmdline = "console=ttyS0 root=/dev/ram0 ferrite.test=1";
    let k = kernels::linux_boot_params(LinuxExpect {
        cmdline: cmdline.into(),
        initrd_prefix: initrd[..256].to_vec(),
        initrd_size: initrd.len() as u32,
        memory: MEMORY,
    });
    let out = run(&k, "bzimage", cmdline, Some(("bz.initrd", &initrd)));
    assert!(out.passed(), "{out:?}");
    assert!(out.serial.contains("boot_params: ok"), "{out:?}");
}

#[test]
fn pvh_elf_kernel_gets_start_info_module_and_memory_map() {
    if !kvm_available() {
        return;
    }
    let module = module();
    let cmdline = "pvh=1 console=ttyS0";
    let k = kit::to_pvh_elf(&kernels::pvh_start_info(PvhExpect {
        cmdline: cmdline.into(),
        module_prefix: module[..64].to_vec(),
        module_size: module.len() as u32,
    }));
    let out = run(&k, "pvh", cmdline, Some(("pvh.mod", &module)));
    assert!(out.passed(), "{out:?}");
    assert!(out.serial.contains("pvh start_info: ok"), "{out:?}");
}
