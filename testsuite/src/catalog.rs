//! Every kernel of the kit with what a passing run prints, so the backends' tests and the
//! command-line runner iterate over one list.

use crate::kernels::{self, Paging32, UserMode, UserReturn};

/// A test kernel and the serial line that proves it passed.
pub struct Case {
    pub name: &'static str,
    pub build: fn() -> Vec<u8>,
    /// Printed on COM1 by a passing run.
    pub expect: &'static str,
}

/// The mode kernels: every CPU mode at CPL 0, and CPL 3 where the mode has one.
pub fn mode_kernels() -> Vec<Case> {
    vec![
        Case {
            name: "real-mode",
            build: || kernels::real_mode(false),
            expect: "real mode: ok",
        },
        Case {
            name: "real-mode-interrupts",
            build: || kernels::real_mode(true),
            expect: "real mode: INT through the IVT: ok",
        },
        Case {
            name: "real-mode-a20",
            build: kernels::a20_gate,
            expect: "A20 gate: ok",
        },
        Case {
            name: "v8086",
            build: kernels::v8086,
            expect: "virtual-8086 mode: ok",
        },
        Case {
            name: "protected32",
            build: || kernels::protected32(Paging32::Off, false),
            expect: "protected mode, no paging: ok",
        },
        Case {
            name: "protected32-paging",
            build: || kernels::protected32(Paging32::Legacy, false),
            expect: "protected mode, 32-bit paging: ok",
        },
        Case {
            name: "protected32-pae",
            build: || kernels::protected32(Paging32::Pae, false),
            expect: "protected mode, PAE paging: ok",
        },
        Case {
            name: "protected32-page-faults",
            build: || kernels::page_faults32(Paging32::Legacy),
            expect: "32-bit page faults: ok",
        },
        Case {
            name: "protected32-pae-page-faults",
            build: || kernels::page_faults32(Paging32::Pae),
            expect: "PAE page faults: ok",
        },
        Case {
            name: "protected32-user",
            build: || kernels::protected32(Paging32::Off, true),
            expect: "32-bit user mode (CPL 3): ok",
        },
        Case {
            name: "protected32-paging-user",
            build: || kernels::protected32(Paging32::Legacy, true),
            expect: "32-bit user mode (CPL 3): ok",
        },
        Case {
            name: "protected32-protection-faults",
            build: kernels::protection_faults,
            expect: "protection faults: ok",
        },
        Case {
            name: "protected32-tss-faults",
            build: kernels::tss_faults,
            expect: "tss: I/O permission bitmap: ok",
        },
        Case {
            name: "protected32-double-fault",
            build: kernels::double_fault,
            expect: "double fault: ok",
        },
        Case {
            name: "protected32-sysenter",
            build: kernels::sysenter,
            expect: "SYSEXIT to CPL 3 and SYSENTER back: ok",
        },
        Case {
            name: "protected32-descriptors",
            build: kernels::descriptor_instructions,
            expect: "descriptor instructions: ok",
        },
        Case {
            name: "protected32-call-gate",
            build: kernels::call_gate,
            expect: "call gate: CPL 3 to 0 and back with a parameter: ok",
        },
        Case {
            name: "protected32-task-switch",
            build: kernels::task_switch,
            expect: "task switch: CALL to a TSS and IRET back: ok",
        },
        Case {
            name: "long64",
            build: || kernels::long64(UserMode::None),
            expect: "long mode: ok",
        },
        Case {
            name: "long64-rip-relative",
            build: kernels::rip_relative,
            expect: "rip-relative: ok",
        },
        Case {
            name: "long64-page-faults",
            build: kernels::page_faults,
            expect: "page faults: ok",
        },
        Case {
            name: "long64-tlb-flushes",
            build: kernels::tlb_flushes,
            expect: "tlb flushes: ok",
        },
        Case {
            name: "long64-user",
            build: || kernels::long64(UserMode::Long(UserReturn::Exception)),
            expect: "64-bit user mode (CPL 3): ok, back through #UD",
        },
        Case {
            name: "long64-user-int80",
            build: || kernels::long64(UserMode::Long(UserReturn::Interrupt)),
            expect: "64-bit user mode (CPL 3): ok, back through INT 0x80",
        },
        Case {
            name: "long64-user-syscall",
            build: || kernels::long64(UserMode::Long(UserReturn::Syscall)),
            expect: "back through SYSCALL\nSYSRET to CPL 3: ok",
        },
        Case {
            name: "compat32-user",
            build: || kernels::long64(UserMode::Compat(UserReturn::Exception)),
            expect: "compatibility-mode user code (CPL 3): ok, back through #UD",
        },
        Case {
            name: "compat32-user-int80",
            build: || kernels::long64(UserMode::Compat(UserReturn::Interrupt)),
            expect: "compatibility-mode user code (CPL 3): ok, back through INT 0x80",
        },
        Case {
            name: "compat32-user-syscall",
            build: || kernels::long64(UserMode::Compat(UserReturn::Syscall)),
            expect: "compatibility-mode user code (CPL 3): ok, back through SYSCALL\nSYSRET to CPL 3: ok",
        },
    ]
}

/// Kernels for a particular device or configuration, run by their own tests; listed here so
/// `write-kernels` writes them too. Each passes only with what its note says.
pub fn other_kernels() -> Vec<Case> {
    vec![
        Case {
            name: "debugcon",
            build: kernels::debugcon,
            expect: "debugcon: written", // with -debugcon
        },
        Case {
            name: "cpu-model-pentium",
            build: kernels::cpu_model_pentium,
            expect: "cpu model pentium: ok", // with -cpu pentium
        },
        Case {
            name: "jump-into-mmio",
            build: kernels::jump_into_mmio,
            expect: "jump into unclaimed MMIO: #UD: ok", // software CPU only
        },
        Case {
            name: "rom-post",
            build: kernels::rom_post,
            expect: "rom: running from the reset vector", // a -bios image
        },
        Case {
            name: "fw-cfg",
            build: || kernels::fw_cfg(2, 64 << 20),
            expect: "fw_cfg: signature, CPU count and RAM size: ok", // with -smp 2 -m 64
        },
        Case {
            name: "pc-testdev",
            build: kernels::pc_testdev,
            expect: "pc-testdev: scratch ports and scratch MMIO: ok", // with -device pc-testdev
        },
        Case {
            name: "pci-testdev",
            build: kernels::pci_testdev,
            expect: "pci-testdev: BAR sizing, MMIO and port tests: ok", // with -device pci-testdev
        },
        Case {
            name: "acpi-rsdp",
            build: || kernels::acpi_rsdp(2),
            expect: "acpi: RSDP, root table and MADT: ok", // with -smp 2
        },
        Case {
            name: "smp-2",
            build: || kernels::smp(2),
            expect: "smp: 1 application processors started: ok", // with -smp 2
        },
        Case {
            name: "smp-4",
            build: || kernels::smp(4),
            expect: "smp: 3 application processors started: ok", // with -smp 4
        },
        Case {
            name: "sse-context-switch",
            build: kernels::sse_context_switch,
            expect: "sse context switch with FXSAVE and XSAVE: ok",
        },
        Case {
            name: "x87-ferr-irq13",
            build: kernels::x87_ferr_irq13,
            expect: "x87 FERR# reaches IRQ 13 with CR0.NE clear: ok",
        },
        Case {
            name: "rtc-periodic",
            build: kernels::rtc_periodic,
            expect: "rtc: periodic interrupts on IRQ 8: ok",
        },
        Case {
            name: "hpet-legacy",
            build: kernels::hpet_legacy,
            expect: "hpet: legacy periodic timer 0 on IRQ 0: ok",
        },
        Case {
            name: "pit-timing",
            build: kernels::pit_timing,
            expect: "pit timing: ok",
        },
        Case {
            name: "simd-bad-state",
            build: kernels::simd_bad_state,
            expect: "simd bad state gets #GP: ok",
        },
        Case {
            name: "garbage-io",
            build: kernels::garbage_io,
            expect: "garbage I/O survived: ok",
        },
    ]
}

/// The options a kernel of [`other_kernels`] needs beyond the kit's machine (COM1 and
/// isa-debug-exit at 0xf4), in `ferrite run`/QEMU spelling, and whether it is a firmware
/// image (`-bios`) rather than a kernel.
pub fn run_options(name: &str) -> (&'static str, bool) {
    match name {
        "debugcon" => ("-debugcon stdio", false),
        "cpu-model-pentium" => ("-cpu pentium", false),
        "rom-post" => ("-debugcon stdio", true),
        "fw-cfg" => ("-smp 2 -m 64", false),
        "pc-testdev" => ("-device pc-testdev", false),
        "acpi-rsdp" => ("-smp 2", false),
        "smp-2" => ("-smp 2", false),
        "smp-4" => ("-smp 4", false),
        "pci-testdev" => ("-device pci-testdev", false),
        // The test devices get the garbage too.
        "garbage-io" => ("-device pc-testdev -device pci-testdev", false),
        _ => ("", false),
    }
}
