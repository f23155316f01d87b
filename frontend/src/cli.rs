//! The command line: clap's definitions, and the checked [`Options`] a run is made from.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};
use machine::{Accel, DebugExitConfig};

use crate::chardev::Chardevs;
use crate::device::{self, Device, DeviceArg};
use crate::qemu_args;
use crate::serial::{self, SerialSpec};
use crate::values;

const QEMU_NOTE: &str = "\
QEMU-compatible mode: with no subcommand, `ferrite -kernel bzImage -m 512M -nographic ...`
means `ferrite run ...`, and every option may be spelled with one dash as QEMU does
(-kernel, -initrd, -append, -bios, -m, -smp, -accel, -enable-kvm, -machine/-M, -cpu, -serial,
-chardev, -debugcon, -device isa-debug-exit|isa-debugcon|pc-testdev|pci-testdev,
-nographic, -display none, -vnc none, -vga, -monitor none, -net none, -no-reboot, -nodefaults,
-global, -no-user-config, -name, -rtc). Exit statuses follow QEMU's (isa-debug-exit: V<<1|1).
`ferrite test` runs a suite of such kernels in parallel with timeouts and a JUnit report.";

#[derive(Parser, Debug)]
#[command(
    name = "ferrite",
    version,
    about = "Ferrite: an x86 PC emulator and virtual machine monitor",
    after_help = QEMU_NOTE,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Boot a guest kernel (QEMU-compatible options)
    #[command(args_override_self = true, after_help = QEMU_NOTE)]
    Run(Box<RunArgs>),
    /// Run a suite of test kernels or ROMs in parallel, with timeouts and a JUnit report
    Test(Box<crate::testrun::TestArgs>),
}

#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// Kernel to boot: Linux bzImage, Multiboot or PVH ELF
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Firmware image (a multiple of 64 KiB) started at the reset vector instead of a kernel
    #[arg(long, value_name = "FILE")]
    pub bios: Option<PathBuf>,
    /// Initial ramdisk (Multiboot: modules, "file args,file2")
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line
    #[arg(long, value_name = "STRING", allow_hyphen_values = true)]
    pub append: Option<String>,
    /// Guest RAM: 512 (MiB), 512M, 2G, size=512M [default: 128M]
    #[arg(short = 'm', long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Number of vCPUs: N, cpus=N, N,sockets=S,cores=C,threads=T
    #[arg(long, value_name = "N")]
    pub smp: Option<String>,
    /// Accelerator: kvm, dbt (QEMU's tcg) or auto [default: auto]
    #[arg(long, value_name = "ACCEL", action = clap::ArgAction::Append)]
    pub accel: Vec<String>,
    /// Same as --accel kvm
    #[arg(long)]
    pub enable_kvm: bool,
    /// Machine type: pc (keys: accel=kvm|tcg)
    #[arg(short = 'M', long, value_name = "TYPE")]
    pub machine: Option<String>,
    /// Serial port backend, once per port (COM1, COM2, ...): stdio, file:PATH, null, none
    /// [default: COM1 on stdio]
    #[arg(long, value_name = "BACKEND", action = clap::ArgAction::Append)]
    pub serial: Vec<String>,
    /// Port-0xE9 debug console (QEMU's isa-debugcon): stdio, file:PATH, null, none or chardev:ID
    #[arg(long, value_name = "BACKEND")]
    pub debugcon: Option<String>,
    /// A named character backend: file,id=ID,path=FILE | stdio,id=ID | null,id=ID
    #[arg(long, value_name = "SPEC", action = clap::ArgAction::Append)]
    pub chardev: Vec<String>,
    /// Add a device: isa-debug-exit[,iobase=0x501][,iosize=2]; "help" lists devices
    #[arg(long, value_name = "SPEC", action = clap::ArgAction::Append)]
    pub device: Vec<String>,
    /// No graphics: serial on the terminal (the default)
    #[arg(long)]
    pub nographic: bool,
    /// Display: only "none"
    #[arg(long, value_name = "TYPE")]
    pub display: Option<String>,
    /// Monitor: only "none"
    #[arg(long, value_name = "DEV")]
    pub monitor: Option<String>,
    /// Exit instead of rebooting when the guest resets or triple-faults
    #[arg(long)]
    pub no_reboot: bool,
    /// No default devices: without -serial, no COM1 (as QEMU)
    #[arg(long)]
    pub nodefaults: bool,
    /// QEMU's DRIVER.PROP=VALUE device defaults: accepted and ignored with a warning
    #[arg(long, value_name = "DRIVER.PROP=VALUE", action = clap::ArgAction::Append)]
    pub global: Vec<String>,
    /// Software-CPU model: max (default), qemu64, pentium3, pentium, 486, each with optional
    /// ,+feature,-feature; "help" lists models and features
    #[arg(long, value_name = "MODEL")]
    pub cpu: Option<String>,
    /// VNC display: only "none" (there is no graphical display)
    #[arg(long, value_name = "DISPLAY")]
    pub vnc: Option<String>,
    /// VGA card: "none" (any other is accepted with a warning: there is no graphics yet)
    #[arg(long, value_name = "TYPE")]
    pub vga: Option<String>,
    /// Network: only "none" (networking is not supported yet)
    #[arg(long, value_name = "SPEC", action = clap::ArgAction::Append)]
    pub net: Vec<String>,
    /// Parallel port: only "none" (there is none)
    #[arg(long, value_name = "DEV")]
    pub parallel: Option<String>,
    /// The guest's name (shown nowhere yet)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// QEMU's "read no default configuration files": Ferrite reads none anyway
    #[arg(long)]
    pub no_user_config: bool,
    /// Old spelling of --no-user-config
    #[arg(long)]
    pub nodefconfig: bool,
    /// Real-time clock options: accepted and ignored with a warning
    #[arg(long, value_name = "OPTIONS")]
    pub rtc: Option<String>,
    /// Deterministic clock (QEMU's -icount): [shift=]N makes each instruction 2^N ns of
    /// guest time (N = 0..10), so two runs of a guest give the same output; software CPU only
    #[arg(long, value_name = "[shift=]N")]
    pub icount: Option<String>,
    /// The software CPU's translator: "on" runs guest code as translated host code where it
    /// can (x86-64 hosts; elsewhere the interpreter runs), "off" the interpreter alone
    /// [default: on]
    #[arg(long, value_name = "on|off")]
    pub translator: Option<String>,
    /// Write one line saying why the run ended to FILE ("debug-exit V", "triple-fault",
    /// "reset", "poweroff", "stopped" or "error MESSAGE"); `ferrite test` reads it
    #[arg(long, value_name = "FILE", hide = true)]
    pub exit_report: Option<PathBuf>,
}

/// Everything a run needs, checked.
#[derive(Debug)]
pub struct Options {
    /// `None` with `-bios`.
    pub kernel: Option<bios::KernelConfig>,
    /// `-bios`: a firmware image to start at the reset vector.
    pub firmware: Option<PathBuf>,
    pub memory: u64,
    pub vcpus: u32,
    pub accel: Accel,
    /// COM1, COM2, … in order.
    pub serials: Vec<SerialSpec>,
    pub debug_exit: Option<DebugExitConfig>,
    /// `-debugcon` or `-device isa-debugcon`: its port and where it writes (`None`, or
    /// `SerialSpec::None`: no device).
    pub debugcon: Option<(u16, SerialSpec)>,
    /// `-cpu`; `None` leaves the backend's default.
    pub cpu: Option<&'static machine::CpuModel>,
    /// `-icount shift=N`: the deterministic clock.
    pub icount_shift: Option<u32>,
    pub no_reboot: bool,
    /// `--translator on` (the default): the software CPU translates guest code where it can.
    pub translate: bool,
    /// `-device pc-testdev`.
    pub pc_testdev: bool,
    /// `-device pci-testdev`.
    pub pci_testdev: bool,
    /// `--exit-report FILE`.
    pub exit_report: Option<PathBuf>,
    /// Things accepted but ignored, for the user to read.
    pub warnings: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    Run(Box<Options>),
    /// Print this on stdout and exit with status 0 (`-device help` and friends).
    Print(String),
    /// `ferrite test`.
    Test(Box<crate::testrun::TestArgs>),
}

/// A command line that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// clap's own outcome: help, version or a usage error, already formatted.
    #[error("{0}")]
    Clap(#[from] clap::Error),
    /// An option (or a stray argument) `run` does not have.
    #[error("{0}\nFor more information, try 'ferrite run --help'.")]
    Unknown(String),
    #[error("{0}")]
    Invalid(String),
}

impl CliError {
    /// The process exit status for this error.
    pub fn status(&self) -> i32 {
        match self {
            CliError::Clap(e) => e.exit_code(),
            CliError::Unknown(_) => 2,
            CliError::Invalid(_) => 1,
        }
    }
}

/// Parses a full argument vector (program name first), in either spelling.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Action, CliError> {
    let rewritten = qemu_args::rewrite(args);
    let cli = Cli::try_parse_from(&rewritten.args).map_err(|e| {
        if e.kind() != ErrorKind::UnknownArgument {
            return CliError::Clap(e);
        }
        let Some(ContextValue::String(seen)) = e.get(ContextKind::InvalidArg) else {
            return CliError::Clap(e);
        };
        let arg = rewritten.original(seen);
        if !arg.starts_with('-') {
            // QEMU takes a bare file name as the first disk image.
            return CliError::Unknown(format!(
                "unexpected argument '{arg}': disk images are not supported yet"
            ));
        }
        CliError::Unknown(match qemu_args::not_yet(arg) {
            Some(why) => format!("unknown option '{arg}': {why}"),
            None => format!("unknown option '{arg}'"),
        })
    })?;
    match cli.command {
        Command::Run(args) => options(*args).map_err(CliError::Invalid),
        Command::Test(args) => Ok(Action::Test(args)),
    }
}

/// Checks the `run` arguments and turns them into [`Options`].
pub fn options(a: RunArgs) -> Result<Action, String> {
    let mut warnings = Vec::new();

    let (chardevs, w) = Chardevs::parse(&a.chardev)?;
    warnings.extend(w);
    // A backend as -serial and -debugcon spell it, `chardev:ID` included.
    let backend = |user: &str, s: &str| -> Result<(SerialSpec, Option<String>), String> {
        match s.strip_prefix("chardev:") {
            Some(id) => Ok((chardevs.get(&format!("{user} {s}"), id)?, None)),
            None => serial::parse(s).map_err(|e| e.replacen("-serial", user, 1)),
        }
    };

    let mut debug_exit = None;
    let mut debugcon = None;
    let mut pc_testdev = false;
    let mut pci_testdev = false;
    for spec in &a.device {
        match device::parse(spec)? {
            DeviceArg::Help(text) => return Ok(Action::Print(text)),
            DeviceArg::Add(Device::DebugExit(cfg)) => {
                if debug_exit.replace(cfg).is_some() {
                    return Err("-device isa-debug-exit: only one is supported".into());
                }
            }
            DeviceArg::Add(Device::DebugCon { iobase, chardev }) => {
                let out = chardevs.get("-device isa-debugcon", &chardev)?;
                if debugcon.replace((iobase, out)).is_some() {
                    return Err("-device isa-debugcon: only one is supported".into());
                }
            }
            DeviceArg::Add(Device::PciTestDev) => {
                if std::mem::replace(&mut pci_testdev, true) {
                    return Err("-device pci-testdev: only one is supported".into());
                }
            }
            DeviceArg::Add(Device::PcTestDev) => {
                if std::mem::replace(&mut pc_testdev, true) {
                    return Err("-device pc-testdev: only one fits (its ports are fixed)".into());
                }
            }
        }
    }

    let mut accels = Vec::new();
    if let Some(m) = &a.machine {
        if values::is_help(m) {
            return Ok(Action::Print(values::MACHINE_HELP.into()));
        }
        let opts = values::machine(m)?;
        accels.extend(opts.accels);
        warnings.extend(opts.warnings);
    }
    for spec in &a.accel {
        if values::is_help(spec) {
            return Ok(Action::Print(values::ACCEL_HELP.into()));
        }
        let (accel, w) = values::accel(spec).map_err(|e| format!("-accel: {e}"))?;
        accels.push(accel);
        warnings.extend(w);
    }
    if a.enable_kvm {
        accels.push(Accel::Kvm);
    }
    let accel = values::pick_accel(&accels);

    let memory = match &a.memory {
        Some(m) => {
            let (size, w) = values::memory(m)?;
            warnings.extend(w);
            size
        }
        None => 128 << 20,
    };
    let vcpus = a.smp.as_deref().map_or(Ok(1), values::smp)?;

    let mut serials = Vec::new();
    for s in &a.serial {
        let (spec, w) = backend("-serial", s)?;
        if spec == SerialSpec::Stdio && serials.contains(&SerialSpec::Stdio) {
            return Err("-serial stdio: stdio can serve only one serial port".into());
        }
        serials.push(spec);
        warnings.extend(w);
    }
    // QEMU's default COM1 on the terminal, unless -nodefaults asks for a bare board.
    if serials.is_empty() && !a.nodefaults {
        serials.push(SerialSpec::Stdio);
    }
    for g in &a.global {
        warnings.push(format!(
            "-global {g}: device defaults have no meaning here yet; ignored"
        ));
    }
    if let Some(s) = &a.debugcon {
        let (spec, w) = backend("-debugcon", s)?;
        warnings.extend(w);
        if debugcon
            .replace((devices::debugcon::DEFAULT_IOBASE, spec))
            .is_some()
        {
            return Err("-debugcon: there is already an isa-debugcon (-device)".into());
        }
    }

    match a.display.as_deref() {
        None | Some("none") => {}
        Some(d) => warnings.push(format!(
            "-display {d}: there is no graphical display yet; the guest has serial only"
        )),
    }
    match a.vnc.as_deref() {
        None | Some("none") => {}
        Some(v) => {
            return Err(format!(
                "-vnc {v}: there is no graphical display; use -vnc none"
            ))
        }
    }
    match a.vga.as_deref() {
        None | Some("none") => {}
        Some(v) => warnings.push(format!(
            "-vga {v}: there is no graphics card yet; the guest has serial only"
        )),
    }
    if let Some(n) = a.net.iter().find(|n| n.as_str() != "none") {
        return Err(format!(
            "-net {n}: networking is not supported yet (only -net none)"
        ));
    }
    match a.parallel.as_deref() {
        None | Some("none") => {}
        Some(p) => {
            return Err(format!(
                "-parallel {p}: there is no parallel port (use none)"
            ))
        }
    }
    if let Some(r) = &a.rtc {
        warnings.push(format!(
            "-rtc {r}: the RTC follows the host's clock; options are ignored"
        ));
    }
    let icount_shift = match &a.icount {
        Some(spec) => {
            let (shift, w) = values::icount(spec).map_err(|e| format!("-icount {spec}: {e}"))?;
            warnings.extend(w);
            Some(shift)
        }
        None => None,
    };
    match a.monitor.as_deref() {
        None | Some("none") => {}
        Some(m) => warnings.push(format!("-monitor {m}: the QEMU monitor is not supported")),
    }
    let translate = match a.translator.as_deref() {
        Some("off") => false,
        None | Some("on") => true,
        Some(other) => return Err(format!("--translator {other}: say on or off")),
    };
    let cpu = match a.cpu.as_deref() {
        Some(spec) if values::is_help(spec) => return Ok(Action::Print(values::cpu_help())),
        Some(spec) => Some(values::cpu(spec).map_err(|e| format!("-cpu: {e}"))?),
        None => None,
    };

    let kernel = match (a.kernel, &a.bios) {
        (Some(kernel), None) => Some(bios::KernelConfig {
            kernel,
            initrd: a.initrd,
            cmdline: a.append.unwrap_or_default(),
        }),
        (None, Some(_)) => None,
        (Some(_), Some(_)) => {
            return Err(
                "-bios with -kernel: loading a kernel through the firmware (fw_cfg) is \
                        not supported yet; use one or the other"
                    .into(),
            )
        }
        (None, None) => {
            return Err(
                "no kernel given: use -kernel PATH, or -bios FILE for a firmware image \
                        (booting from a disk is not supported yet)"
                    .into(),
            )
        }
    };
    Ok(Action::Run(Box::new(Options {
        kernel,
        firmware: a.bios,
        memory,
        vcpus,
        accel,
        serials,
        debug_exit,
        debugcon,
        cpu,
        icount_shift,
        no_reboot: a.no_reboot,
        translate,
        pc_testdev,
        pci_testdev,
        exit_report: a.exit_report,
        warnings,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Action, CliError> {
        parse(
            std::iter::once("ferrite")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    fn run_opts(args: &[&str]) -> Options {
        match parse_args(args) {
            Ok(Action::Run(o)) => *o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse_args(args) {
            Err(e) => e.to_string(),
            Ok(a) => panic!("{args:?} parsed: {a:?}"),
        }
    }

    #[test]
    fn qemu_and_long_spellings_agree() {
        let qemu = run_opts(&[
            "-kernel",
            "bz",
            "-initrd",
            "rd",
            "-append",
            "console=ttyS0 -v",
            "-m",
            "512M",
            "-smp",
            "2",
            "-accel",
            "kvm",
            "-serial",
            "stdio",
            "-serial",
            "null",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-nographic",
            "-no-reboot",
        ]);
        let long = run_opts(&[
            "run",
            "--kernel",
            "bz",
            "--initrd",
            "rd",
            "--append",
            "console=ttyS0 -v",
            "--memory",
            "512M",
            "--smp",
            "2",
            "--accel",
            "kvm",
            "--serial",
            "stdio",
            "--serial",
            "null",
            "--device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "--nographic",
            "--no-reboot",
        ]);
        for o in [&qemu, &long] {
            assert_eq!(o.kernel.as_ref().unwrap().kernel, PathBuf::from("bz"));
            assert_eq!(o.kernel.as_ref().unwrap().initrd, Some(PathBuf::from("rd")));
            assert_eq!(o.kernel.as_ref().unwrap().cmdline, "console=ttyS0 -v");
            assert_eq!(o.memory, 512 << 20);
            assert_eq!(o.vcpus, 2);
            assert_eq!(o.accel, Accel::Kvm);
            assert_eq!(o.serials, [SerialSpec::Stdio, SerialSpec::Null]);
            assert_eq!(
                o.debug_exit,
                Some(DebugExitConfig {
                    iobase: 0xf4,
                    iosize: 4
                })
            );
            assert!(o.no_reboot);
            assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        }
    }

    #[test]
    fn defaults() {
        let o = run_opts(&["-kernel", "k"]);
        assert_eq!(o.memory, 128 << 20);
        assert_eq!(o.vcpus, 1);
        assert_eq!(o.accel, Accel::Auto);
        assert_eq!(o.serials, [SerialSpec::Stdio]);
        assert_eq!(o.debug_exit, None);
        assert!(!o.no_reboot);
        assert_eq!(o.kernel.as_ref().unwrap().cmdline, "");
    }

    #[test]
    fn accelerator_spellings() {
        assert_eq!(run_opts(&["-kernel", "k", "-enable-kvm"]).accel, Accel::Kvm);
        assert_eq!(
            run_opts(&["-kernel", "k", "-accel", "tcg"]).accel,
            Accel::Dbt
        );
        assert_eq!(
            run_opts(&["-kernel", "k", "-M", "pc,accel=kvm"]).accel,
            Accel::Kvm
        );
        assert_eq!(
            run_opts(&["-kernel", "k", "-machine", "accel=kvm:tcg"]).accel,
            Accel::Auto
        );
        assert_eq!(
            run_opts(&["-kernel", "k", "-accel", "kvm", "-accel", "tcg"]).accel,
            Accel::Auto
        );
        assert_eq!(
            run_opts(&["-kernel", "k", "-enable-kvm", "-accel", "kvm"]).accel,
            Accel::Kvm
        );
        assert!(error(&["-kernel", "k", "-accel", "hvf"]).contains("hvf"));
        assert!(error(&["-kernel", "k", "-M", "q35"]).contains("q35"));
    }

    #[test]
    fn accepted_with_warnings() {
        let o = run_opts(&[
            "-kernel", "k", "-cpu", "host", "-monitor", "stdio", "-display", "gtk",
        ]);
        assert_eq!(o.warnings.len(), 2, "{:?}", o.warnings);
        let o = run_opts(&["-kernel", "k", "-display", "none", "-monitor", "none"]);
        assert!(o.warnings.is_empty());
    }

    #[test]
    fn nodefaults_leaves_out_the_default_serial_port() {
        assert!(run_opts(&["-kernel", "k", "-nodefaults"])
            .serials
            .is_empty());
        let o = run_opts(&["-kernel", "k", "-nodefaults", "-serial", "null"]);
        assert_eq!(o.serials, [SerialSpec::Null]);
        let o = run_opts(&[
            "-kernel",
            "k",
            "-global",
            "kvm-pit.lost_tick_policy=discard",
        ]);
        assert!(
            o.warnings[0].contains("kvm-pit.lost_tick_policy"),
            "{:?}",
            o.warnings
        );
    }

    #[test]
    fn cpu_models_by_qemu_name() {
        assert_eq!(
            run_opts(&["-kernel", "k", "-cpu", "pentium"])
                .cpu
                .unwrap()
                .name,
            "pentium"
        );
        assert_eq!(
            run_opts(&["-kernel", "k", "-cpu", "host"])
                .cpu
                .unwrap()
                .name,
            "max"
        );
        assert!(run_opts(&["-kernel", "k"]).cpu.is_none());
        assert!(error(&["-kernel", "k", "-cpu", "skylake"]).contains("'skylake'"));
        assert!(error(&["-kernel", "k", "-cpu", "qemu64,+avx"]).contains("+avx"));
        let m = run_opts(&["-kernel", "k", "-cpu", "pentium,+cmov,-tsc"])
            .cpu
            .unwrap();
        assert_eq!(m.name, "pentium");
        assert_ne!(m.features.edx1 & (1 << 15), 0, "cmov added");
        assert_eq!(m.features.edx1 & (1 << 4), 0, "tsc removed");
    }

    #[test]
    fn repeated_options_take_the_last() {
        let o = run_opts(&[
            "-kernel",
            "a",
            "-kernel",
            "b",
            "-m",
            "64",
            "-m",
            "96",
            "-nographic",
            "-nographic",
        ]);
        assert_eq!(o.kernel.as_ref().unwrap().kernel, PathBuf::from("b"));
        assert_eq!(o.memory, 96 << 20);
    }

    #[test]
    fn help_requests_print_and_exit() {
        for args in [
            &["-device", "help"][..],
            &["-device", "?"],
            &["-kernel", "k", "-device", "isa-debug-exit,help"],
            &["-M", "help"],
            &["-accel", "help"],
            &["-cpu", "help"],
        ] {
            assert!(matches!(parse_args(args), Ok(Action::Print(_))), "{args:?}");
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert!(error(&["-kernel", "k", "-m", "lots"]).contains("'lots'"));
        assert!(error(&["-kernel", "k", "-smp", "x"]).contains("'x'"));
        assert!(error(&["-kernel", "k", "-device", "e1000"]).contains("'e1000'"));
        assert!(error(&["-kernel", "k", "-serial", "pty"]).contains("'pty'"));
        assert!(
            error(&["-kernel", "k", "-serial", "stdio", "-serial", "stdio"]).contains("only one")
        );
        assert!(error(&["-m", "64"]).contains("no kernel"));
        let e = error(&["-kernel", "k", "-frobnicate"]);
        assert!(e.contains("unknown option '-frobnicate'"), "{e}");
        let e = error(&["run", "--kernel", "k", "--frobnicate=2"]);
        assert!(e.contains("'--frobnicate"), "{e}");
        let e = error(&["-kernel", "k", "disk.img"]);
        assert!(e.contains("unexpected argument 'disk.img'"), "{e}");
        let e = error(&["-kernel", "k", "-hda", "disk.img"]);
        assert!(e.contains("'-hda': disks are not supported yet"), "{e}");
    }

    #[test]
    fn help_mentions_qemu_mode() {
        let e = parse_args(&["--help"]).unwrap_err();
        assert_eq!(e.status(), 0);
        assert!(e.to_string().contains("QEMU-compatible"));
    }
}
