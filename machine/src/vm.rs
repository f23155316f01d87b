//! Building the board from a [`VmConfig`] and running it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use devices::{Bus, BusDevice};
use emu_core::{Vcpu, VcpuExit};
use parking_lot::Mutex;
use vm_memory::GuestMemoryMmap;

use crate::accel::{self, Accel, Backend};
use crate::control::{Checkpoint, ExitReason, VmControl};
use crate::io::IoBuses;
use crate::kvm::KvmVm;
use crate::{memory, Error, Result, VmConfig};

// The firmware tables describe the HPET the board has.
const _: () = assert!(
    bios::acpi::HPET_BLOCK_ID == devices::hpet::BLOCK_ID
        && bios::acpi::HPET_ADDR == devices::hpet::DEFAULT_BASE
);

/// The deterministic clock's time of day at power-on (2026-01-01 00:00:00 UTC): a run that
/// must repeat cannot start from the host's date.
const ICOUNT_EPOCH: i64 = 1_767_225_600;

/// Polls `timer` from a host thread named `name` until it is dropped or the VM stops (the
/// KVM backend, whose vCPU threads sit in KVM_RUN).
fn spawn_timer_thread<T: devices::clock::Timer + 'static>(
    name: &str,
    timer: std::sync::Weak<Mutex<T>>,
    clock: Arc<dyn devices::clock::Clock>,
    control: Arc<VmControl>,
) {
    const LONGEST: Duration = Duration::from_millis(50);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || loop {
            let Some(t) = timer.upgrade() else { return };
            if control.exit_reason().is_some() {
                return;
            }
            let next = t.lock().poll();
            drop(t);
            let wait = next.map_or(LONGEST, |n| {
                Duration::from_nanos(n.saturating_sub(clock.now_ns())).min(LONGEST)
            });
            std::thread::sleep(wait.max(Duration::from_micros(100)));
        })
        .map(drop)
        .unwrap_or_else(|e| log::warn!("no {name} timer thread ({e}): its interrupts are off"));
}

/// The sending side of a UART, for the frontend's input thread.
#[derive(Clone)]
pub struct SerialInput(Arc<Mutex<devices::serial::Serial>>);

impl SerialInput {
    /// Hands bytes to the guest; returns how many the UART's FIFO took.
    pub fn send(&self, bytes: &[u8]) -> usize {
        self.0.lock().receive(bytes)
    }
}

/// Controls a running VM from other threads.
#[derive(Clone)]
pub struct VmHandle {
    control: Arc<VmControl>,
    vcpus: usize,
}

impl VmHandle {
    pub fn pause(&self) {
        self.control.pause(self.vcpus);
    }
    pub fn resume(&self) {
        self.control.resume();
    }
    pub fn stop(&self) {
        self.control.stop(ExitReason::Stopped);
    }
    pub fn is_paused(&self) -> bool {
        self.control.is_paused()
    }
}

pub struct Vm {
    control: Arc<VmControl>,
    vcpus: Vec<Box<dyn Vcpu>>,
    serial_inputs: Vec<Option<SerialInput>>,
    /// Kept alive for the backend, which maps it.
    _mem: GuestMemoryMmap,
    _kvm: Option<KvmVm>,
}

fn add(
    bus: &mut Bus,
    dev: Arc<Mutex<dyn BusDevice>>,
    base: u16,
    len: u16,
    what: &str,
) -> Result<()> {
    bus.insert(dev, u64::from(base), u64::from(len))
        .map_err(|e| Error::Device(format!("{what}: {e}")))
}

/// Where the pci-testdev's BARs go: the top of the PCI hole below the IOAPIC and the start
/// of the I/O window, as SeaBIOS places the first BARs.
const PCI_TESTDEV_MEM: u32 = 0xfebf_0000;
const PCI_TESTDEV_IO: u16 = 0xc000;
/// The bridge's memory window: the PCI hole up to the IOAPIC.
const PCI_MEM_WINDOW_END: u64 = 0xfec0_0000;

/// QEMU's pci-testdev at 00:02.0, with the bridge's windows that route its BARs.
fn add_pci_testdev(pci: &mut devices::pci::PciRoot, pio: &mut Bus, mmio: &mut Bus) -> Result<()> {
    use devices::pci_bars::{BarSpace, PciWindow, SharedBarDevice, IO_WINDOW};
    let mut dev = devices::pci_testdev::PciTestDev::new();
    dev.assign(PCI_TESTDEV_MEM, PCI_TESTDEV_IO);
    let dev = Arc::new(Mutex::new(dev));
    pci.add(2, 0, Box::new(dev.clone()));
    let shared: SharedBarDevice = dev;
    let window = |space| -> Arc<Mutex<dyn BusDevice>> {
        Arc::new(Mutex::new(PciWindow::new(space, vec![shared.clone()])))
    };
    let start = crate::memory::PCI_HOLE_START;
    mmio.insert(window(BarSpace::Memory), start, PCI_MEM_WINDOW_END - start)
        .map_err(|e| Error::Device(format!("PCI memory window: {e}")))?;
    pio.insert(window(BarSpace::Io), IO_WINDOW.0, IO_WINDOW.1 - IO_WINDOW.0)
        .map_err(|e| Error::Device(format!("PCI I/O window (0xc000-0xffff): {e}")))
}

/// QEMU's pc-testdev: one device at four port ranges and a window of MMIO just below the
/// firmware's 16 MiB at the top of 4 GiB.
fn add_pc_testdev(
    pio: &mut Bus,
    mmio: &mut Bus,
    irq: &dyn Fn(u32) -> Arc<dyn devices::IrqLine>,
    rom_len: u64,
) -> Result<()> {
    use devices::pc_testdev::*;
    if (1u64 << 32) - rom_len < IOMEM_BASE + IOMEM_LEN {
        return Err(Error::Config(format!(
            "pc-testdev: its memory at {IOMEM_BASE:#x} would overlap the {} KiB -bios image",
            rom_len >> 10
        )));
    }
    let lines = (0..u32::from(IRQ_LINES)).map(irq).collect();
    let dev: Arc<Mutex<dyn BusDevice>> = Arc::new(Mutex::new(PcTestDev::new(lines)));
    for (base, len) in [
        (SCRATCH_PORT, 4),
        (FLUSH_PORT, 4),
        (SCRATCH_BYTE_PORT, 4),
        (IRQ_PORT, IRQ_LINES),
    ] {
        add(pio, dev.clone(), base, len, "pc-testdev")?;
    }
    mmio.insert(dev, IOMEM_BASE, IOMEM_LEN)
        .map_err(|e| Error::Device(format!("pc-testdev: {e}")))
}

impl Vm {
    pub fn new(cfg: &VmConfig) -> Result<Vm> {
        if cfg.vcpus == 0 || cfg.vcpus > 255 {
            return Err(Error::Config(format!(
                "{} vCPUs asked for; 1 to 255 are supported",
                cfg.vcpus
            )));
        }
        if cfg.serials.len() > devices::serial::COM_PORTS.len() {
            return Err(Error::Config(format!(
                "{} serial ports asked for; the PC has {}",
                cfg.serials.len(),
                devices::serial::COM_PORTS.len()
            )));
        }
        // Guest RAM first: a bad size is the user's error whatever the accelerator.
        let rom = match &cfg.firmware {
            Some(path) => Some(crate::firmware::read(path)?),
            None => None,
        };
        let rom_len = rom.as_ref().map_or(0, |r| r.len() as u64);
        let (mem, map) = memory::create(cfg.memory, rom_len)?;
        // A CPU model is the software CPU's: automatic choice honours it by picking that.
        let model = cfg
            .cpu
            .filter(|m| !std::ptr::eq(*m, &emu_core::cpu_model::MAX));
        let requested = match (cfg.accel, model) {
            (Accel::Auto, Some(m)) => {
                log::info!(
                    "-cpu {}: CPU models need the software CPU; using it",
                    m.name
                );
                Accel::Dbt
            }
            (a, _) => a,
        };
        let backend = accel::select(requested).map_err(Error::Accel)?;
        if let (Backend::Kvm, Some(m)) = (backend, model) {
            return Err(Error::Config(format!(
                "-cpu {}: CPU models are implemented by the software CPU only; under KVM the \
                 guest sees the host's CPUID (use --accel dbt, or -cpu host)",
                m.name
            )));
        }
        if let (Backend::Software, Some(_), 2..) = (backend, cfg.icount_shift, cfg.vcpus) {
            return Err(Error::Config(format!(
                "-icount with -smp {}: the deterministic clock needs one vCPU (the software \
                 CPU runs each vCPU on its own host thread, whose interleaving is not \
                 repeatable); use -smp 1",
                cfg.vcpus
            )));
        }
        if let (Backend::Kvm, Some(_)) = (backend, cfg.icount_shift) {
            return Err(Error::Config(
                "-icount: the deterministic clock counts the software CPU's instructions; \
                 under KVM the guest runs on the host's clock (use --accel dbt)"
                    .into(),
            ));
        }
        let kvm = match backend {
            Backend::Kvm => Some(KvmVm::new(&mem)?),
            Backend::Software => None,
        };
        let control = Arc::new(VmControl::new());
        // Interrupt lines: KVM's in-kernel PIC/IOAPIC, or the software CPU's 8259 pair (with
        // the 8254 on IRQ 0).
        let icount = cfg
            .icount_shift
            .map(|shift| Arc::new(devices::clock::InstructionClock::new(shift)));
        // One machine clock for the timers, the TSC (software CPU) and the PM timer.
        let clock: Arc<dyn devices::clock::Clock> = match &icount {
            Some(c) => c.clone(),
            None => Arc::new(devices::clock::HostClock::new()),
        };
        let soft_irq = kvm.is_none().then(|| match &icount {
            Some(c) => crate::soft_irq::SoftIrqChip::deterministic(c.clone()),
            None => crate::soft_irq::SoftIrqChip::new(clock.clone(), cfg.vcpus as usize),
        });
        let irq = |gsi: u32| -> Arc<dyn devices::IrqLine> {
            match (&kvm, &soft_irq) {
                (Some(k), _) => k.irq_line(gsi),
                (None, Some(chip)) => chip.line(gsi),
                (None, None) => Arc::new(devices::irq::NoIrq),
            }
        };

        let mut pio = Bus::new();
        if let Some(chip) = &soft_irq {
            let ports: Arc<Mutex<dyn BusDevice>> =
                Arc::new(Mutex::new(crate::soft_irq::ChipPorts(chip.clone())));
            add(
                &mut pio,
                ports.clone(),
                devices::pic::MASTER_PORT,
                2,
                "8259 PIC",
            )?;
            add(
                &mut pio,
                ports.clone(),
                devices::pic::SLAVE_PORT,
                2,
                "8259 PIC",
            )?;
            add(
                &mut pio,
                ports.clone(),
                devices::pic::ELCR_PORT,
                2,
                "8259 ELCR",
            )?;
            add(
                &mut pio,
                ports,
                crate::soft_irq::FERR_PORT,
                1,
                "FPU error port",
            )?;
            let pit: Arc<Mutex<dyn BusDevice>> = chip.pit();
            add(&mut pio, pit.clone(), devices::pit::PIT_PORT, 4, "8254 PIT")?;
            add(&mut pio, pit, devices::pit::PORT_61, 1, "port 0x61")?;
        }
        let mut serial_inputs = Vec::new();
        for (i, out) in cfg.serials.iter().enumerate() {
            let Some(out) = out else {
                serial_inputs.push(None);
                continue;
            };
            let (base, gsi) = devices::serial::COM_PORTS[i];
            let uart = Arc::new(Mutex::new(devices::serial::Serial::new(
                irq(gsi),
                Box::new(SharedWriter(out.clone())),
            )));
            add(
                &mut pio,
                uart.clone(),
                base,
                devices::serial::COM_PORT_LEN,
                &format!("COM{}", i + 1),
            )?;
            serial_inputs.push(Some(SerialInput(uart)));
        }
        let cmos = match &icount {
            // Deterministic time of day too: a fixed date plus the guest's elapsed time.
            Some(clock) => {
                let clock = clock.clone();
                devices::cmos::Cmos::with_clock(map.low_end, map.high_size, move || {
                    use devices::clock::Clock;
                    ICOUNT_EPOCH + (clock.now_ns() / 1_000_000_000) as i64
                })
            }
            None => devices::cmos::Cmos::new(map.low_end, map.high_size),
        };
        let cmos = Arc::new(Mutex::new(cmos.with_interrupts(clock.clone(), irq(8))));
        match &soft_irq {
            Some(chip) => chip.add_timer(cmos.clone()),
            // Under KVM no vCPU loop polls device timers: a thread does, on the host's time.
            None => {
                spawn_timer_thread("rtc", Arc::downgrade(&cmos), clock.clone(), control.clone())
            }
        }
        add(&mut pio, cmos, devices::cmos::INDEX_PORT, 2, "CMOS RTC")?;
        let pm = Arc::new(Mutex::new(devices::acpi_pm::AcpiPm::new(
            clock.clone(),
            control.clone(),
        )));
        add(
            &mut pio,
            pm,
            devices::acpi_pm::PM_BASE,
            devices::acpi_pm::PM_LEN,
            "ACPI PM",
        )?;
        // The A20 gate starts open: a kernel loaded directly expects what firmware leaves.
        let a20 = devices::a20::A20Gate::new(true);
        let i8042 = Arc::new(Mutex::new(
            devices::i8042::I8042::new(
                control.clone(),
                irq(devices::i8042::KBD_IRQ),
                irq(devices::i8042::AUX_IRQ),
            )
            .with_a20(a20.clone()),
        ));
        add(
            &mut pio,
            i8042.clone(),
            devices::i8042::DATA_PORT,
            1,
            "i8042",
        )?;
        add(&mut pio, i8042, devices::i8042::COMMAND_PORT, 1, "i8042")?;
        let mut pci = devices::pci::PciRoot::new(control.clone());
        pci.add(0, 0, Box::new(devices::pci::i440fx_host_bridge()));
        pci.add(1, 0, Box::new(devices::pci::piix3_isa_bridge()));
        let mut mmio = Bus::new();
        if cfg.pci_testdev {
            add_pci_testdev(&mut pci, &mut pio, &mut mmio)?;
        }
        add(
            &mut pio,
            Arc::new(Mutex::new(pci)),
            devices::pci::CONFIG_ADDRESS,
            devices::pci::CONFIG_PORTS_LEN,
            "PCI host bridge",
        )?;
        add(
            &mut pio,
            Arc::new(Mutex::new(devices::post::PostCode::new())),
            0x80,
            1,
            "POST port",
        )?;
        let port92 = devices::a20::Port92::new(a20.clone(), control.clone());
        add(
            &mut pio,
            Arc::new(Mutex::new(port92)),
            devices::a20::PORT92,
            1,
            "port 0x92",
        )?;
        if let Some(d) = cfg.debug_exit {
            if d.iosize == 0 {
                return Err(Error::Config("isa-debug-exit: iosize must not be 0".into()));
            }
            let dev = Arc::new(Mutex::new(devices::debug_exit::DebugExit::new(
                control.clone(),
            )));
            add(&mut pio, dev, d.iobase, d.iosize, "isa-debug-exit")?;
        }
        // fw_cfg, as on QEMU's pc: firmware and test suites read the machine's shape there.
        let fw_cfg = devices::fw_cfg::FwCfg::new(&devices::fw_cfg::FwCfgInfo {
            ram_size: cfg.memory,
            cpus: u16::try_from(cfg.vcpus).unwrap_or(u16::MAX),
            cmdline: cfg
                .kernel
                .as_ref()
                .map(|k| k.cmdline.clone())
                .unwrap_or_default(),
        });
        add(
            &mut pio,
            Arc::new(Mutex::new(fw_cfg)),
            devices::fw_cfg::SELECTOR_PORT,
            devices::fw_cfg::PORTS_LEN,
            "fw_cfg",
        )?;
        if let Some(d) = &cfg.debugcon {
            let dev = Arc::new(Mutex::new(devices::debugcon::DebugCon::new(d.out.clone())));
            add(&mut pio, dev, d.iobase, 1, "isa-debugcon")?;
        }
        if cfg.pc_testdev {
            add_pc_testdev(&mut pio, &mut mmio, &irq, rom_len)?;
        }
        if let Some(chip) = &soft_irq {
            // The IOAPIC at its architectural address (KVM has its own); each software vCPU
            // reaches its own local APIC through its `ApicRoute`.
            mmio.insert(
                Arc::new(Mutex::new(crate::soft_irq::IoApicMmio(chip.clone()))),
                devices::ioapic::DEFAULT_BASE,
                devices::ioapic::MMIO_LEN,
            )
            .map_err(|e| Error::Device(format!("IOAPIC: {e}")))?;
        }
        // The HPET (QEMU's pc has one on both accelerators; KVM has no in-kernel HPET).
        let hpet_lines: Vec<(u32, Arc<dyn devices::IrqLine>)> = [0, 8, 10, 11]
            .into_iter()
            .map(|gsi| (gsi, irq(gsi)))
            .collect();
        let hpet = Arc::new(Mutex::new(devices::hpet::Hpet::new(
            clock.clone(),
            move |gsi| {
                hpet_lines
                    .iter()
                    .find(|(g, _)| *g == gsi)
                    .map_or_else(|| Arc::new(devices::irq::NoIrq) as _, |(_, l)| l.clone())
            },
        )));
        match &soft_irq {
            Some(chip) => chip.add_timer(hpet.clone()),
            None => spawn_timer_thread(
                "hpet",
                Arc::downgrade(&hpet),
                clock.clone(),
                control.clone(),
            ),
        }
        mmio.insert(hpet, devices::hpet::DEFAULT_BASE, devices::hpet::MMIO_LEN)
            .map_err(|e| Error::Device(format!("HPET: {e}")))?;
        let buses: Arc<IoBuses> = Arc::new(IoBuses::new(pio, mmio));

        // The boot CPU starts where the kernel loader says, or at the reset vector for firmware.
        let boot_cpu =
            match (&rom, &cfg.kernel) {
                (Some(image), None) => {
                    crate::firmware::install(&mem, image)?;
                    emu_core::CpuState::reset()
                }
                (None, Some(kernel)) => bios::load_kernel(&mem, &map, kernel)?.cpu,
                (Some(_), Some(_)) => return Err(Error::Config(
                    "-bios with -kernel: loading a kernel through the firmware (fw_cfg) is not \
                     supported yet; use one or the other"
                        .into(),
                )),
                (None, None) => {
                    return Err(Error::Config("nothing to boot: no kernel, no -bios".into()))
                }
            };
        if let Some(m) = model {
            if boot_cpu.is_long_mode() && !m.has_edx81(emu_core::cpu_model::edx81::LM) {
                return Err(Error::Config(format!(
                    "-cpu {}: the model has no long mode, but this kernel is entered in 64-bit \
                     mode (64-bit boot protocol); use a 64-bit model (max, qemu64)",
                    m.name
                )));
            }
        }
        // The tables firmware leaves for the OS; a -bios image owns that area and writes its
        // own.
        if rom.is_none() {
            bios::mptable::write(&mem, cfg.vcpus)?;
            bios::acpi::write(&mem, cfg.vcpus)?;
        }
        // What the software vCPUs share: code-page generations, and with more than one the
        // exclusive gate for atomics the host cannot do in one instruction.
        let group = Arc::new(emu_core::interp::cpu_group::CpuGroup::new(
            &mem,
            cfg.vcpus as usize,
        ));
        let mut vcpus: Vec<Box<dyn Vcpu>> = Vec::new();
        for id in 0..cfg.vcpus {
            let mut v: Box<dyn Vcpu> = match &kvm {
                Some(k) => Box::new(k.create_vcpu(id, buses.clone())?),
                // KVM does not model the A20 gate; the software CPU applies it.
                None => {
                    let platform: Arc<dyn emu_core::Platform> = match &soft_irq {
                        Some(chip) => Arc::new(crate::soft_irq::ApicRoute::new(
                            buses.clone(),
                            chip.clone(),
                            id as usize,
                        )),
                        None => buses.clone(),
                    };
                    let mut v =
                        emu_core::SoftVcpu::new(id, mem.clone(), platform, Some(a20.shared()))
                            .with_model(cfg.cpu.unwrap_or(&emu_core::cpu_model::MAX))
                            .with_group(group.clone());
                    if cfg.translate {
                        match jit::Jit::new() {
                            Ok(jit) => v = v.with_engine(Box::new(jit)),
                            // Slower, never wrong: the interpreter runs everything.
                            Err(e) if id == 0 => log::warn!("software CPU: {e}"),
                            Err(_) => {}
                        }
                    }
                    if let Some(chip) = &soft_irq {
                        let kicker = v.soft_kicker();
                        chip.set_waker(id as usize, Arc::new(move || kicker.notify()));
                        v = v.with_interrupts(chip.cpu(id as usize));
                    }
                    Box::new(v)
                }
            };
            if id == 0 {
                v.set_state(&boot_cpu)
                    .map_err(|e| Error::Accel(format!("boot CPU state: {e}")))?;
            }
            control.add_kicker(v.kicker());
            vcpus.push(v);
        }
        Ok(Vm {
            control,
            vcpus,
            serial_inputs,
            _mem: mem,
            _kvm: kvm,
        })
    }

    pub fn handle(&self) -> VmHandle {
        VmHandle {
            control: self.control.clone(),
            vcpus: self.vcpus.len(),
        }
    }

    /// The input side of COM`n+1`, if that UART exists.
    pub fn serial_input(&self, n: usize) -> Option<SerialInput> {
        self.serial_inputs.get(n).cloned().flatten()
    }

    /// Runs the guest on one thread per vCPU until it stops; returns why.
    pub fn run(mut self) -> Result<ExitReason> {
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        for (id, vcpu) in self.vcpus.drain(..).enumerate() {
            let control = self.control.clone();
            let t = std::thread::Builder::new()
                .name(format!("vcpu{id}"))
                .spawn(move || vcpu_thread(vcpu, &control))
                .map_err(Error::Thread)?;
            threads.push(t);
        }
        let reason = self.control.wait_for_exit();
        // A kick can slip in just before a vCPU re-enters the backend: repeat until all left.
        while threads.iter().any(|t| !t.is_finished()) {
            self.control.kick_all();
            std::thread::sleep(Duration::from_millis(1));
        }
        for t in threads {
            if t.join().is_err() {
                log::error!("a vCPU thread panicked");
            }
        }
        Ok(reason)
    }
}

fn vcpu_thread(mut vcpu: Box<dyn Vcpu>, control: &VmControl) {
    run_until_stopped(vcpu.as_mut(), control);
    if let Ok(s) = vcpu.state() {
        log::debug!(
            "vCPU left at {:#x}:{:#x} (cr0={:#x} efer={:#x})",
            s.cs.selector,
            s.rip,
            s.cr0,
            s.efer
        );
    }
}

fn run_until_stopped(vcpu: &mut dyn Vcpu, control: &VmControl) {
    while control.checkpoint() == Checkpoint::Run {
        match vcpu.run() {
            Ok(VcpuExit::Interrupted) => {}
            Ok(VcpuExit::Halted) => {
                // Only reachable without an in-kernel interrupt controller: nothing can wake
                // the CPU, as on hardware with interrupts masked.
                control.stop(ExitReason::Error(
                    "the guest halted with no way to be woken".into(),
                ));
            }
            Ok(VcpuExit::Shutdown) => {
                match vcpu.state() {
                    Ok(s) => log::warn!(
                        "guest triple-faulted at {:#x}:{:#x} (cr0={:#x} cr3={:#x} cr4={:#x} efer={:#x})",
                        s.cs.selector, s.rip, s.cr0, s.cr3, s.cr4, s.efer
                    ),
                    Err(_) => log::warn!("guest triple-faulted"),
                }
                control.stop(ExitReason::TripleFault);
            }
            Ok(VcpuExit::Reset) => control.stop(ExitReason::Reset),
            Ok(VcpuExit::Poweroff) => control.stop(ExitReason::Poweroff),
            Err(e) => {
                if let Ok(s) = vcpu.state() {
                    log::error!("vCPU failed at {:#x}:{:#x}: {e}", s.cs.selector, s.rip);
                }
                control.stop(ExitReason::Error(e.to_string()));
            }
        }
    }
}

/// A `Write` over a shared output, so several VM incarnations (after a reset) share one sink.
struct SharedWriter(crate::SerialOutput);

impl std::io::Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().flush()
    }
}
