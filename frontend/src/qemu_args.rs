//! QEMU's spelling of the command line, turned into ours before clap sees it.
//!
//! QEMU writes every option with one dash (`-kernel`, `-nographic`, `-no-reboot`) and has no
//! subcommand; clap wants `--kernel` after `run`. [`rewrite`] inserts `run` when the first
//! argument is an option and doubles the dash of every multi-letter option, leaving option
//! values (the kernel command line after `-append`, say) untouched.

use std::ffi::OsString;

/// Options of `run` whose value is the next argument; that argument is never rewritten.
const VALUE_OPTIONS: &[&str] = &[
    "kernel",
    "initrd",
    "append",
    "memory",
    "m",
    "smp",
    "accel",
    "machine",
    "M",
    "serial",
    "device",
    "display",
    "monitor",
    "cpu",
    "debugcon",
    "chardev",
    "global",
    "bios",
    "exit-report",
    "vnc",
    "vga",
    "net",
    "parallel",
    "name",
    "rtc",
    "icount",
];

/// QEMU options users are likely to try that Ferrite does not have yet, with what to say.
const NOT_YET: &[(&str, &str)] = &[
    ("hda", "disks are not supported yet"),
    ("hdb", "disks are not supported yet"),
    ("drive", "disks are not supported yet"),
    ("cdrom", "disks are not supported yet"),
    ("blockdev", "disks are not supported yet"),
    ("boot", "only -kernel booting is supported yet"),
    ("netdev", "networking is not supported yet"),
    ("nic", "networking is not supported yet"),
    ("s", "the gdb stub is not supported yet"),
    ("S", "the gdb stub is not supported yet"),
    ("gdb", "the gdb stub is not supported yet"),
    ("qmp", "QMP is not supported"),
    ("snapshot", "disks are not supported yet"),
    (
        "daemonize",
        "run it in the background from the shell, or use `ferrite test`",
    ),
    ("loadvm", "snapshots are not supported yet"),
    ("incoming", "migration is not supported"),
    ("usb", "USB is not supported yet"),
    ("soundhw", "audio is not supported"),
    ("audiodev", "audio is not supported"),
    ("spice", "there is no graphical display"),
    (
        "pflash",
        "flash firmware is not supported yet; -bios takes a ROM image",
    ),
];

/// The command line as clap should see it, and how to name a rewritten option back to the user.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    pub args: Vec<OsString>,
    /// `(what clap sees, what the user typed)` for every option whose dashes were changed.
    pub renamed: Vec<(String, String)>,
}

impl Rewritten {
    /// The option as the user typed it, given clap's spelling of it (`--foo` or `--foo=1`).
    pub fn original<'a>(&'a self, seen: &'a str) -> &'a str {
        let name = seen.split('=').next().unwrap_or(seen);
        self.renamed
            .iter()
            .find(|(new, _)| new == name)
            .map_or(seen, |(_, old)| old.as_str())
    }
}

/// Why an option the user gave is missing, if it is a QEMU option we know about.
pub fn not_yet(option: &str) -> Option<&'static str> {
    let name = option.trim_start_matches('-');
    let name = name.split('=').next().unwrap_or(name);
    NOT_YET
        .iter()
        .find(|(o, _)| *o == name)
        .map(|(_, why)| *why)
}

/// Rewrites the whole argument vector (program name first).
pub fn rewrite(args: impl IntoIterator<Item = OsString>) -> Rewritten {
    let mut args = args.into_iter();
    let mut out = Rewritten::default();
    out.args.extend(args.next());
    let Some(first) = args.next() else {
        return out;
    };
    let rest: Vec<OsString> = match first.to_str() {
        // Top-level help and version keep their meaning (QEMU spells them -help, -version).
        Some("-h" | "--help" | "-help") => {
            out.args.push("--help".into());
            return out;
        }
        Some("-V" | "--version" | "-version") => {
            out.args.push("--version".into());
            return out;
        }
        Some("run") => {
            out.args.push(first);
            args.collect()
        }
        // Bare QEMU style: `ferrite -kernel K ...` means `ferrite run -kernel K ...`.
        Some(s) if s.starts_with('-') => {
            out.args.push("run".into());
            std::iter::once(first).chain(args).collect()
        }
        _ => {
            out.args.push(first);
            out.args.extend(args);
            return out;
        }
    };
    rewrite_run(rest, &mut out);
    out
}

fn takes_value(name: &str) -> bool {
    VALUE_OPTIONS.contains(&name)
}

fn rewrite_run(args: Vec<OsString>, out: &mut Rewritten) {
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(s) = arg.to_str() else {
            out.args.push(arg);
            continue;
        };
        if s == "--" {
            out.args.push(arg);
            out.args.extend(args.by_ref());
            break;
        }
        let (body, rewritten) = if let Some(body) = s.strip_prefix("--") {
            (body, None)
        } else if let Some(body) = s.strip_prefix('-') {
            if body.chars().count() > 1 {
                let new = format!("--{body}");
                let name = new.split('=').next().unwrap_or(&new).to_owned();
                let old = s.split('=').next().unwrap_or(s).to_owned();
                out.renamed.push((name, old));
                (body, Some(new))
            } else {
                (body, None)
            }
        } else {
            out.args.push(arg);
            continue;
        };
        let value_follows = !body.contains('=') && takes_value(body);
        out.args.push(rewritten.map_or(arg, OsString::from));
        if value_follows {
            out.args.extend(args.next());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(args: &[&str]) -> Vec<String> {
        let all = std::iter::once("ferrite").chain(args.iter().copied());
        rewrite(all.map(OsString::from))
            .args
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn bare_qemu_style_becomes_run() {
        assert_eq!(
            rw(&["-kernel", "k", "-nographic", "-m", "64M", "-no-reboot"]),
            [
                "ferrite",
                "run",
                "--kernel",
                "k",
                "--nographic",
                "-m",
                "64M",
                "--no-reboot"
            ]
        );
    }

    #[test]
    fn run_subcommand_accepts_both_spellings() {
        assert_eq!(
            rw(&["run", "-kernel", "k", "--smp", "2", "-M", "pc"]),
            ["ferrite", "run", "--kernel", "k", "--smp", "2", "-M", "pc"]
        );
    }

    #[test]
    fn values_are_left_alone() {
        assert_eq!(
            rw(&[
                "-kernel",
                "-odd-name",
                "-append",
                "-v -x",
                "--append",
                "-y",
                "-m",
                "-1"
            ]),
            [
                "ferrite",
                "run",
                "--kernel",
                "-odd-name",
                "--append",
                "-v -x",
                "--append",
                "-y",
                "-m",
                "-1"
            ]
        );
        assert_eq!(
            rw(&["-kernel=k", "-enable-kvm"]),
            ["ferrite", "run", "--kernel=k", "--enable-kvm"]
        );
        assert_eq!(rw(&["run", "--", "-x"]), ["ferrite", "run", "--", "-x"]);
    }

    #[test]
    fn help_and_version_keep_their_meaning() {
        assert_eq!(rw(&["-help"]), ["ferrite", "--help"]);
        assert_eq!(rw(&["--help"]), ["ferrite", "--help"]);
        assert_eq!(rw(&["-version"]), ["ferrite", "--version"]);
        assert_eq!(rw(&[]), ["ferrite"]);
        assert_eq!(rw(&["frobnicate"]), ["ferrite", "frobnicate"]);
    }

    #[test]
    fn renamed_options_map_back() {
        let all = ["ferrite", "-kernel", "k", "-foo=3", "--bar"].map(OsString::from);
        let r = rewrite(all);
        assert_eq!(r.original("--foo"), "-foo");
        assert_eq!(r.original("--foo=3"), "-foo");
        assert_eq!(r.original("--kernel"), "-kernel");
        assert_eq!(r.original("--bar"), "--bar");
    }

    #[test]
    fn known_missing_options_get_a_reason() {
        assert_eq!(not_yet("-hda"), Some("disks are not supported yet"));
        assert_eq!(
            not_yet("--netdev=user"),
            Some("networking is not supported yet")
        );
        assert_eq!(not_yet("-frobnicate"), None);
    }
}
