//! `-device DRIVER[,prop=value…]`: the devices a user can add to the board.

use machine::DebugExitConfig;

use crate::values::{is_help, split_props};

/// A device the command line added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    DebugExit(DebugExitConfig),
    /// `isa-debugcon` at `iobase`, writing to the `-chardev` with id `chardev`.
    DebugCon {
        iobase: u16,
        chardev: String,
    },
    /// QEMU's `pc-testdev` (fixed ports 0xe0–0xeb, 0x2000–0x2017 and MMIO at 0xff000000).
    PcTestDev,
    /// QEMU's `pci-testdev` (PCI 1b36:0005).
    PciTestDev,
}

/// What one `-device` argument asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum DeviceArg {
    Add(Device),
    /// `help`, `?` or `DRIVER,help`: print this and exit.
    Help(String),
}

/// The devices `-device` knows, with a line about each.
pub const SUPPORTED: &[(&str, &str)] = &[
    (
        "isa-debug-exit",
        "ISA port that ends the run: writing V exits with status (V << 1) | 1",
    ),
    (
        "isa-debugcon",
        "ISA debug console (port 0xe9 by default): bytes written go to its chardev",
    ),
    (
        "pc-testdev",
        "kvm-unit-tests' test device: scratch ports 0xe0/0xe8, IRQ lines at 0x2000, \
         scratch MMIO at 0xff000000",
    ),
    (
        "pci-testdev",
        "PCI test device 1b36:0005 (kvm-unit-tests): MMIO and port-I/O write counters",
    ),
];

fn list() -> String {
    let mut s = String::from("Supported devices:\n");
    for (name, what) in SUPPORTED {
        s.push_str(&format!("name \"{name}\", bus ISA, desc \"{what}\"\n"));
    }
    s
}

const DEBUG_EXIT_PROPS: &str = "isa-debug-exit options:\n  \
    iobase=<uint16>  I/O port base (default 0x501)\n  \
    iosize=<uint16>  number of ports decoded (default 0x2)\n";

/// A number as QEMU takes it: `0x…` hex, otherwise decimal.
pub fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn port_value(dev: &str, key: &str, v: &str) -> Result<u16, String> {
    parse_number(v)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| format!("-device {dev}: {key}='{v}' is not a number from 0 to 0xffff"))
}

fn debug_exit(props: &[String]) -> Result<DeviceArg, String> {
    let mut cfg = DebugExitConfig::default();
    for p in props {
        match p.split_once('=') {
            Some(("iobase", v)) => cfg.iobase = port_value("isa-debug-exit", "iobase", v)?,
            Some(("iosize", v)) => cfg.iosize = port_value("isa-debug-exit", "iosize", v)?,
            None if is_help(p) => return Ok(DeviceArg::Help(DEBUG_EXIT_PROPS.into())),
            _ => {
                return Err(format!(
                    "-device isa-debug-exit: unknown property '{p}' (it has iobase and iosize)"
                ))
            }
        }
    }
    if cfg.iosize == 0 {
        return Err("-device isa-debug-exit: iosize must not be 0".into());
    }
    if u32::from(cfg.iobase) + u32::from(cfg.iosize) > 0x1_0000 {
        return Err(format!(
            "-device isa-debug-exit: ports {:#x}+{:#x} run past the end of the I/O space",
            cfg.iobase, cfg.iosize
        ));
    }
    Ok(DeviceArg::Add(Device::DebugExit(cfg)))
}

const DEBUGCON_PROPS: &str = "isa-debugcon options:\n  \
    iobase=<uint16>  I/O port (default 0xe9)\n  \
    chardev=<str>    id of the -chardev that receives the output (required)\n";

fn debugcon(props: &[String]) -> Result<DeviceArg, String> {
    let (mut iobase, mut chardev) = (devices::debugcon::DEFAULT_IOBASE, None);
    for p in props {
        match p.split_once('=') {
            Some(("iobase", v)) => iobase = port_value("isa-debugcon", "iobase", v)?,
            Some(("chardev", v)) => chardev = Some(v.to_owned()),
            None if is_help(p) => return Ok(DeviceArg::Help(DEBUGCON_PROPS.into())),
            _ => {
                return Err(format!(
                    "-device isa-debugcon: unknown property '{p}' (it has iobase and chardev)"
                ))
            }
        }
    }
    let chardev = chardev.ok_or(
        "-device isa-debugcon: needs chardev=ID (with -chardev file|stdio|null,id=ID), \
         or use -debugcon",
    )?;
    Ok(DeviceArg::Add(Device::DebugCon { iobase, chardev }))
}

/// A device without properties.
fn no_props(name: &str, props: &[String], dev: Device) -> Result<DeviceArg, String> {
    match props.first() {
        None => Ok(DeviceArg::Add(dev)),
        Some(p) if is_help(p) => Ok(DeviceArg::Help(format!("{name} has no options\n"))),
        Some(p) => Err(format!(
            "-device {name}: unknown property '{p}' (it has none)"
        )),
    }
}

/// Parses one `-device` argument.
pub fn parse(spec: &str) -> Result<DeviceArg, String> {
    let mut props = split_props(spec);
    let driver = match props.iter().position(|p| p.starts_with("driver=")) {
        Some(i) => props.remove(i)["driver=".len()..].to_owned(),
        None if props.first().is_some_and(|p| !p.contains('=')) => props.remove(0),
        None => return Err(format!("-device '{spec}': no device named")),
    };
    match driver.as_str() {
        d if is_help(d) => Ok(DeviceArg::Help(list())),
        "isa-debug-exit" => debug_exit(&props),
        "isa-debugcon" => debugcon(&props),
        "pc-testdev" => no_props("pc-testdev", &props, Device::PcTestDev),
        "pci-testdev" => no_props("pci-testdev", &props, Device::PciTestDev),
        "" => Err("-device: no device named".into()),
        other => Err(format!(
            "-device: '{other}' is not a supported device (try -device help)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debug_exit_cfg(spec: &str) -> DebugExitConfig {
        match parse(spec) {
            Ok(DeviceArg::Add(Device::DebugExit(c))) => c,
            other => panic!("{spec}: {other:?}"),
        }
    }

    #[test]
    fn debug_exit_defaults_are_qemus() {
        let c = debug_exit_cfg("isa-debug-exit");
        assert_eq!((c.iobase, c.iosize), (0x501, 2));
    }

    #[test]
    fn debug_exit_ports_in_hex_and_decimal() {
        let c = debug_exit_cfg("isa-debug-exit,iobase=0xf4,iosize=0x04");
        assert_eq!((c.iobase, c.iosize), (0xf4, 4));
        let c = debug_exit_cfg("driver=isa-debug-exit,iobase=244,iosize=1");
        assert_eq!((c.iobase, c.iosize), (0xf4, 1));
    }

    #[test]
    fn bad_specs_are_named() {
        let e = parse("virtio-net-pci,netdev=n0").unwrap_err();
        assert!(e.contains("'virtio-net-pci'"), "{e}");
        let e = parse("isa-debug-exit,iobase=0x10000").unwrap_err();
        assert!(e.contains("iobase='0x10000'"), "{e}");
        let e = parse("isa-debug-exit,iobase=zz").unwrap_err();
        assert!(e.contains("'zz'"), "{e}");
        let e = parse("isa-debug-exit,colour=blue").unwrap_err();
        assert!(e.contains("colour"), "{e}");
        assert!(parse("isa-debug-exit,iosize=0")
            .unwrap_err()
            .contains("not be 0"));
        assert!(parse("isa-debug-exit,iobase=0xffff,iosize=2").is_err());
        assert!(parse("iobase=1").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn debugcon_needs_a_chardev() {
        assert_eq!(
            parse("isa-debugcon,iobase=0x402,chardev=dbg"),
            Ok(DeviceArg::Add(Device::DebugCon {
                iobase: 0x402,
                chardev: "dbg".into()
            }))
        );
        assert!(parse("isa-debugcon").unwrap_err().contains("chardev="));
    }

    #[test]
    fn help_lists_devices() {
        for h in ["help", "?"] {
            let Ok(DeviceArg::Help(text)) = parse(h) else {
                panic!("{h}");
            };
            assert!(text.contains("isa-debug-exit"));
        }
        let Ok(DeviceArg::Help(text)) = parse("isa-debug-exit,help") else {
            panic!("isa-debug-exit,help");
        };
        assert!(text.contains("iobase"));
    }
}
