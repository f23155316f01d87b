//! The values of QEMU's option syntax: `-m [size=]N[,maxmem=…]`, `-smp N[,sockets=…]`,
//! `-accel NAME[,prop=…]`, `-machine TYPE[,accel=A:B]`. Pure functions, so every spelling is
//! unit-tested.

use machine::Accel;

/// Splits `a,b=c,d` into its parts; QEMU writes a literal comma as `,,`.
pub fn split_props(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
            } else {
                parts.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// `-m`: guest RAM in bytes, and warnings about what was ignored.
pub fn memory(s: &str) -> Result<(u64, Vec<String>), String> {
    let mut size = None;
    let mut warnings = Vec::new();
    for part in split_props(s) {
        let value = match part.split_once('=') {
            Some(("size", v)) => v.to_owned(),
            Some(("slots" | "maxmem", _)) => {
                warnings.push(format!(
                    "-m {part}: memory hotplug is not supported; ignored"
                ));
                continue;
            }
            Some((key, _)) => return Err(format!("-m: unknown property '{key}' in '{s}'")),
            None => part,
        };
        size = Some(
            machine::memory::parse_size(&value)
                .ok_or_else(|| format!("-m: invalid memory size '{value}' (try 512M or 2G)"))?,
        );
    }
    let size = size.ok_or_else(|| format!("-m: no memory size in '{s}'"))?;
    if size < machine::memory::MIN_MEMORY {
        return Err(format!(
            "-m: {s} is too little memory; at least {} MiB is needed",
            machine::memory::MIN_MEMORY >> 20
        ));
    }
    Ok((size, warnings))
}

fn count(key: &str, v: &str, whole: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .map_err(|_| format!("-smp: {key} must be a number, not '{v}' (in '{whole}')"))
}

/// `-icount`: QEMU's `[shift=]N[,align=off][,sleep=on|off]`, the deterministic clock's
/// 2^N ns per instruction. `shift=auto` and record/replay are refused: neither is
/// deterministic here (auto follows the host's speed; there is no replay log).
pub fn icount(s: &str) -> Result<(u32, Vec<String>), String> {
    let mut shift = None;
    let mut warnings = Vec::new();
    let max = devices::clock::MAX_ICOUNT_SHIFT;
    let number = |v: &str| -> Result<u32, String> {
        match v.parse::<u32>() {
            Ok(n) if n <= max => Ok(n),
            _ if v == "auto" => Err(
                "shift=auto follows the host's speed and is not deterministic; give a number (0 to 10)"
                    .to_string(),
            ),
            _ => Err(format!("shift must be a number from 0 to {max}, not '{v}'")),
        }
    };
    for part in split_props(s) {
        match part.split_once('=') {
            None => shift = Some(number(&part)?),
            Some(("shift", v)) => shift = Some(number(v)?),
            Some(("align", "off")) => {}
            Some(("align", v)) => warnings.push(format!(
                "-icount align={v}: guest time is not aligned to the host's; ignored"
            )),
            // A halted CPU always skips ahead to the next timer: sleep=off's behaviour.
            Some(("sleep", "on" | "off")) => {}
            Some((key @ ("rr" | "rrfile" | "rrsnapshot"), _)) => {
                return Err(format!("{key}: record/replay is not supported"))
            }
            Some((key, _)) => return Err(format!("unknown property '{key}'")),
        }
    }
    shift
        .map(|n| (n, warnings))
        .ok_or_else(|| "no shift given (-icount shift=N)".to_string())
}

/// `-smp`: the number of vCPUs. `N`, `cpus=N`, `N,sockets=…` take `N`; a topology alone
/// (`sockets=2,cores=2`) gives the product, as QEMU computes it.
pub fn smp(s: &str) -> Result<u32, String> {
    let mut cpus = None;
    let mut topology: Option<u64> = None;
    for part in split_props(s) {
        match part.split_once('=') {
            None => cpus = Some(count("the CPU count", &part, s)?),
            Some(("cpus", v)) => cpus = Some(count("cpus", v, s)?),
            Some(("maxcpus", v)) => {
                count("maxcpus", v, s)?;
            }
            Some((
                key @ ("sockets" | "dies" | "clusters" | "cores" | "threads" | "books" | "drawers"
                | "modules"),
                v,
            )) => {
                let n = u64::from(count(key, v, s)?);
                topology = Some(topology.unwrap_or(1).saturating_mul(n));
            }
            Some((key, _)) => return Err(format!("-smp: unknown property '{key}' in '{s}'")),
        }
    }
    let n = match (cpus, topology) {
        (Some(n), _) => n,
        (None, Some(t)) => u32::try_from(t).unwrap_or(u32::MAX),
        (None, None) => return Err(format!("-smp: no CPU count in '{s}'")),
    };
    if n == 0 {
        return Err(format!(
            "-smp: '{s}' asks for no CPUs; at least 1 is needed"
        ));
    }
    Ok(n)
}

/// One accelerator name, QEMU's or ours.
pub fn accel_name(name: &str) -> Result<Accel, String> {
    name.parse::<Accel>()
}

/// `-accel NAME[,prop=value…]`: the accelerator; properties are ignored with a warning.
pub fn accel(s: &str) -> Result<(Accel, Vec<String>), String> {
    let parts = split_props(s);
    let mut name = None;
    let mut warnings = Vec::new();
    for part in &parts {
        match part.split_once('=') {
            None if name.is_none() => name = Some(part.as_str()),
            Some(("accel", v)) if name.is_none() => name = Some(v),
            _ => warnings.push(format!(
                "-accel {s}: property '{part}' is not supported; ignored"
            )),
        }
    }
    let name = name.ok_or_else(|| format!("-accel: no accelerator named in '{s}'"))?;
    Ok((accel_name(name)?, warnings))
}

/// What `-machine`/`-M` asked for beyond the board type.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MachineOpts {
    /// `accel=A:B:…`, in order of preference.
    pub accels: Vec<Accel>,
    pub warnings: Vec<String>,
}

/// What `-machine help` prints.
pub const MACHINE_HELP: &str = "Supported machines are:\npc    Standard PC (i440FX + PIIX3)\n";

/// What `-accel help` prints.
pub const ACCEL_HELP: &str = "Accelerators supported:\n\
kvm   Linux KVM\n\
dbt   the software CPU (QEMU's name: tcg)\n\
auto  KVM if it is hardware-backed, otherwise the software CPU (default)\n";

/// `-cpu MODEL[,+feature,-feature,…]`: QEMU's model names where Ferrite has them, with
/// QEMU's feature names for the features Ferrite implements.
pub fn cpu(spec: &str) -> Result<&'static machine::CpuModel, String> {
    let (name, flags) = spec.split_once(',').unwrap_or((spec, ""));
    let model = machine::CpuModel::by_name(name)
        .ok_or_else(|| format!("unknown CPU model '{name}' (-cpu help lists them)"))?;
    model.with_flags(flags).map_err(|e| format!("{spec}: {e}"))
}

/// The `-cpu help` text.
pub fn cpu_help() -> String {
    let mut s = String::from("Available CPU models (software CPU; KVM uses the host's CPUID):\n");
    for m in machine::cpu_models() {
        s.push_str(&format!("{m}\n"));
    }
    s.push_str("\nFeatures a model can gain or lose (MODEL,+name,-name):\n");
    let names: Vec<&str> = machine::cpu_feature_names().collect();
    s.push_str(&names.join(" "));
    s.push('\n');
    s
}

/// `help` or `?`, QEMU's request for a list.
pub fn is_help(s: &str) -> bool {
    s == "help" || s == "?"
}

fn is_pc(t: &str) -> bool {
    t == "pc" || t.starts_with("pc-i440fx-")
}

/// `-machine [type=]pc[,accel=kvm:tcg][,…]`.
pub fn machine(s: &str) -> Result<MachineOpts, String> {
    let mut opts = MachineOpts::default();
    for part in split_props(s) {
        let machine_type = match part.split_once('=') {
            None if part.is_empty() => continue,
            None => part.as_str(),
            Some(("type", t)) => t,
            Some(("accel", list)) => {
                for a in list.split(':') {
                    opts.accels
                        .push(accel_name(a).map_err(|e| format!("-machine: {e}"))?);
                }
                continue;
            }
            Some(_) => {
                opts.warnings.push(format!(
                    "-machine {s}: property '{part}' is not supported; ignored"
                ));
                continue;
            }
        };
        if !is_pc(machine_type) {
            return Err(format!(
                "-machine: machine type '{machine_type}' is not supported; only 'pc' is"
            ));
        }
    }
    Ok(opts)
}

/// The accelerator from every place the command line can name one (`-machine accel=`,
/// `-accel`, `-enable-kvm`): one distinct choice is taken as is; several mean QEMU's "first
/// that works", which is what `auto` does.
pub fn pick_accel(requested: &[Accel]) -> Accel {
    let mut distinct: Vec<Accel> = Vec::new();
    for a in requested {
        if !distinct.contains(a) {
            distinct.push(*a);
        }
    }
    match distinct.as_slice() {
        [] => Accel::Auto,
        [one] => *one,
        _ => {
            log::info!("several accelerators given ({distinct:?}); choosing automatically");
            Accel::Auto
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn props_split_with_escaped_commas() {
        assert_eq!(split_props("a,b=c"), ["a", "b=c"]);
        assert_eq!(split_props("a,,b,c"), ["a,b", "c"]);
        assert_eq!(split_props(""), [""]);
    }

    #[test]
    fn memory_sizes_in_qemu_syntax() {
        assert_eq!(memory("512").unwrap().0, 512 << 20);
        assert_eq!(memory("512M").unwrap().0, 512 << 20);
        assert_eq!(memory("2G").unwrap().0, 2 << 30);
        assert_eq!(memory("size=64M").unwrap().0, 64 << 20);
        let (size, warnings) = memory("1G,slots=2,maxmem=4G").unwrap();
        assert_eq!(size, 1 << 30);
        assert_eq!(warnings.len(), 2);
    }

    #[test]
    fn bad_memory_sizes_name_the_value() {
        let e = memory("lots").unwrap_err();
        assert!(e.contains("'lots'"), "{e}");
        assert!(memory("1k").unwrap_err().contains("too little"));
        assert!(memory("99999999999999T")
            .unwrap_err()
            .contains("99999999999999T"));
        assert!(memory("size=64M,color=red").unwrap_err().contains("color"));
        assert!(memory("maxmem=4G").unwrap_err().contains("no memory size"));
    }

    #[test]
    fn smp_counts() {
        assert_eq!(smp("4"), Ok(4));
        assert_eq!(smp("cpus=2"), Ok(2));
        assert_eq!(smp("2,sockets=1,cores=2"), Ok(2));
        assert_eq!(smp("sockets=2,cores=2,threads=2"), Ok(8));
        assert_eq!(smp("cpus=3,maxcpus=8"), Ok(3));
        assert!(smp("0").unwrap_err().contains("at least 1"));
        assert!(smp("many").unwrap_err().contains("'many'"));
        assert!(smp("4,flavour=x").unwrap_err().contains("flavour"));
        assert!(smp("maxcpus=4").unwrap_err().contains("no CPU count"));
    }

    #[test]
    fn accelerators() {
        assert_eq!(accel("kvm").unwrap().0, Accel::Kvm);
        assert_eq!(accel("tcg").unwrap().0, Accel::Dbt);
        assert_eq!(accel("dbt").unwrap().0, Accel::Dbt);
        assert_eq!(accel("auto").unwrap().0, Accel::Auto);
        assert_eq!(accel("accel=kvm").unwrap().0, Accel::Kvm);
        let (a, w) = accel("tcg,thread=single").unwrap();
        assert_eq!((a, w.len()), (Accel::Dbt, 1));
        assert!(accel("hvf").unwrap_err().contains("hvf"));
        assert_eq!(pick_accel(&[]), Accel::Auto);
        assert_eq!(pick_accel(&[Accel::Kvm, Accel::Kvm]), Accel::Kvm);
        assert_eq!(pick_accel(&[Accel::Kvm, Accel::Dbt]), Accel::Auto);
    }

    #[test]
    fn machine_types() {
        assert_eq!(machine("pc").unwrap(), MachineOpts::default());
        assert_eq!(machine("pc-i440fx-8.2").unwrap(), MachineOpts::default());
        assert_eq!(machine("accel=kvm").unwrap().accels, [Accel::Kvm]);
        assert_eq!(
            machine("type=pc,accel=kvm:tcg").unwrap().accels,
            [Accel::Kvm, Accel::Dbt]
        );
        assert_eq!(machine("pc,usb=off").unwrap().warnings.len(), 1);
        assert!(machine("q35").unwrap_err().contains("'q35'"));
        assert!(machine("pc,accel=xen").unwrap_err().contains("xen"));
    }
}
