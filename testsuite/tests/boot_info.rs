//! The loaders under both backends: test kernels that check the boot information they
//! receive, under KVM (skipped without /dev/kvm) and under the software CPU.

use std::time::Duration;

use machine::{Accel, KvmKind};
use testsuite::kernels::{self, LinuxExpect, MultibootExpect, PvhExpect};
use testsuite::{harness, kit};

const MEMORY: u64 = 64 << 20;

/// The backends to run on: the software CPU always, KVM when /dev/kvm opens.
fn backends() -> Vec<Accel> {
    let mut v = vec![Accel::Dbt];
    match machine::accel::probe_kvm() {
        KvmKind::Unavailable(why) => eprintln!("SKIP: the KVM half needs /dev/kvm: {why}"),
        _ => v.push(Accel::Kvm),
    }
    v
}

fn run(
    accel: Accel,
    kernel: &[u8],
    name: &str,
    cmdline: &str,
    initrd: Option<(&str, &[u8])>,
) -> harness::Outcome {
    let file = harness::temp_kernel(&format!("{accel:?}-{name}"), kernel);
    let (mut cfg, cap) = harness::config(file.path(), accel, MEMORY);
    let k = cfg.kernel.as_mut().expect("a kernel config");
    k.cmdline = cmdline.into();
    let initrd =
        initrd.map(|(file, data)| harness::temp_kernel(&format!("{accel:?}-{file}"), data));
    k.initrd = initrd.as_ref().map(|f| f.path().to_owned());
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
    for accel in backends() {
        let k = kernels::multiboot_info(multiboot_expect());
        let out = run(
            accel,
            &k,
            "mb-aout",
            "testarg=42 console=ttyS0",
            Some(("mb-aout.mod", &module())),
        );
        assert!(out.passed(), "{accel:?}: {out:?}");
        assert!(
            out.serial.contains("multiboot info: ok"),
            "{accel:?}: {out:?}"
        );
    }
}

#[test]
fn multiboot_elf_kernel_gets_its_info_and_module() {
    for accel in backends() {
        let k = kit::to_multiboot_elf(&kernels::multiboot_info(multiboot_expect()));
        let out = run(
            accel,
            &k,
            "mb-elf",
            "testarg=42 console=ttyS0",
            Some(("mb-elf.mod", &module())),
        );
        assert!(out.passed(), "{accel:?}: {out:?}");
        assert!(
            out.serial.contains("multiboot info: ok"),
            "{accel:?}: {out:?}"
        );
    }
}

#[test]
fn bzimage_gets_boot_params_initrd_and_e820() {
    for accel in backends() {
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
        let out = run(accel, &k, "bzimage", cmdline, Some(("bz.initrd", &initrd)));
        assert!(out.passed(), "{accel:?}: {out:?}");
        assert!(out.serial.contains("boot_params: ok"), "{accel:?}: {out:?}");
    }
}

#[test]
fn pvh_elf_kernel_gets_start_info_module_and_memory_map() {
    for accel in backends() {
        let module = module();
        let cmdline = "pvh=1 console=ttyS0";
        let k = kit::to_pvh_elf(&kernels::pvh_start_info(PvhExpect {
            cmdline: cmdline.into(),
            module_prefix: module[..64].to_vec(),
            module_size: module.len() as u32,
        }));
        let out = run(accel, &k, "pvh", cmdline, Some(("pvh.mod", &module)));
        assert!(out.passed(), "{accel:?}: {out:?}");
        assert!(
            out.serial.contains("pvh start_info: ok"),
            "{accel:?}: {out:?}"
        );
    }
}

#[test]
fn a_firmware_image_runs_from_the_reset_vector() {
    for accel in backends() {
        let file = harness::temp_kernel(&format!("{accel:?}-rom"), &kernels::rom_post());
        let (mut cfg, cap) = harness::config(file.path(), accel, MEMORY);
        cfg.kernel = None;
        cfg.firmware = Some(file.path().to_owned());
        let debugcon = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<u8>::new()));
        cfg.debugcon = Some(machine::DebugConConfig {
            iobase: 0xe9,
            out: debugcon.clone(),
        });
        let out = harness::run(&cfg, &cap, Duration::from_secs(30)).expect("VM runs");
        assert!(out.passed(), "{accel:?}: {:?} {}", out.exit, out.serial);
        assert_eq!(
            out.serial, "rom: running from the reset vector\n",
            "{accel:?}"
        );
        assert_eq!(&*debugcon.lock(), b"POST 01\nPOST 02\n", "{accel:?}");
    }
}

#[test]
fn firmware_images_of_the_wrong_size_are_refused() {
    let file = harness::temp_kernel("rom-odd", &[0x90u8; 1000]);
    let (mut cfg, cap) = harness::config(file.path(), Accel::Dbt, MEMORY);
    cfg.kernel = None;
    cfg.firmware = Some(file.path().to_owned());
    let err = match harness::run(&cfg, &cap, Duration::from_secs(5)) {
        Err(e) => e,
        Ok(out) => panic!("ran: {:?}", out.exit),
    };
    assert!(err.to_string().contains("64 KiB"), "{err}");
}

#[test]
fn fw_cfg_tells_the_guest_its_cpus_and_memory() {
    for accel in backends() {
        let file = harness::temp_kernel(&format!("{accel:?}-fw-cfg"), &kernels::fw_cfg(2, MEMORY));
        let (mut cfg, cap) = harness::config(file.path(), accel, MEMORY);
        cfg.vcpus = 2;
        let out = harness::run(&cfg, &cap, Duration::from_secs(30)).expect("VM runs");
        assert!(out.passed(), "{accel:?}: {:?} {}", out.exit, out.serial);
        assert!(out
            .serial
            .contains("fw_cfg: signature, CPU count and RAM size: ok"));
    }
}

#[test]
fn acpi_tables_are_where_an_os_scans_for_them() {
    for accel in backends() {
        for cpus in [1, 3] {
            let file =
                harness::temp_kernel(&format!("{accel:?}-acpi-{cpus}"), &kernels::acpi_rsdp(cpus));
            let (mut cfg, cap) = harness::config(file.path(), accel, MEMORY);
            cfg.vcpus = cpus;
            let out = harness::run(&cfg, &cap, Duration::from_secs(30)).expect("VM runs");
            assert!(
                out.passed(),
                "{accel:?} {cpus}: {:?} {}",
                out.exit,
                out.serial
            );
        }
    }
}
