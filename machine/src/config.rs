//! What a VM is made of. The frontend fills this from the command line (or, later, a VM
//! definition file); nothing here knows about argument syntax or terminals.

use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::accel::Accel;

/// Where a UART's transmitted bytes go; shared so a VM rebuilt after a reset keeps writing to
/// the same place.
pub type SerialOutput = Arc<Mutex<dyn Write + Send>>;

/// QEMU's `-device isa-debug-exit,iobase=…,iosize=…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebugExitConfig {
    pub iobase: u16,
    pub iosize: u16,
}

impl Default for DebugExitConfig {
    fn default() -> Self {
        DebugExitConfig {
            iobase: devices::debug_exit::DEFAULT_IOBASE,
            iosize: devices::debug_exit::DEFAULT_IOSIZE,
        }
    }
}

/// QEMU's `-device isa-debugcon,iobase=…`: bytes written to the port go to `out`.
#[derive(Clone)]
pub struct DebugConConfig {
    pub iobase: u16,
    pub out: SerialOutput,
}

#[derive(Clone)]
pub struct VmConfig {
    /// Guest RAM in bytes.
    pub memory: u64,
    pub vcpus: u32,
    pub accel: Accel,
    /// The kernel to load; `None` when `firmware` boots the machine instead.
    pub kernel: Option<bios::KernelConfig>,
    /// `-bios`: a firmware image started at the reset vector instead of a kernel.
    pub firmware: Option<std::path::PathBuf>,
    /// COM1, COM2, … in order; `None` leaves that UART out.
    pub serials: Vec<Option<SerialOutput>>,
    pub debug_exit: Option<DebugExitConfig>,
    /// QEMU's `isa-debugcon` (`-debugcon`): the debug console's port and output.
    pub debugcon: Option<DebugConConfig>,
    /// `-cpu`: a software-CPU model. `None` is the backend's default (the host's CPUID under
    /// KVM, `max` on the software CPU).
    pub cpu: Option<&'static emu_core::CpuModel>,
    /// `-icount shift=N`: the deterministic clock (2^N ns of guest time per instruction;
    /// software CPU only). `None`: the host's monotonic clock.
    pub icount_shift: Option<u32>,
    /// The software CPU runs guest code through the translator (`jit`) where it can; `false`
    /// runs the interpreter alone.
    pub translate: bool,
    /// QEMU's `-device pc-testdev` (kvm-unit-tests' scratch ports, IRQ-line ports and
    /// scratch MMIO).
    pub pc_testdev: bool,
    /// QEMU's `-device pci-testdev`, placed at 00:02.0 with its BARs assigned as firmware
    /// would.
    pub pci_testdev: bool,
}

impl VmConfig {
    /// A VM with `memory` bytes, one vCPU, automatic accelerator choice and no devices beyond
    /// the board's own.
    pub fn new(memory: u64, kernel: bios::KernelConfig) -> Self {
        VmConfig {
            memory,
            vcpus: 1,
            accel: Accel::Auto,
            kernel: Some(kernel),
            firmware: None,
            serials: Vec::new(),
            debug_exit: None,
            debugcon: None,
            cpu: None,
            icount_shift: None,
            translate: true,
            pc_testdev: false,
            pci_testdev: false,
        }
    }
}
