//! One run of the `ferrite run` command: the board is built from the options and run, and
//! rebuilt after a guest reset unless `-no-reboot` says otherwise.

use std::path::Path;
use std::sync::Arc;

use machine::{ExitReason, Vm, VmConfig};

use crate::cli::Options;
use crate::serial::{self, SerialSpec};
use crate::session::Session;
use crate::{input, signals, terminal};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Machine(#[from] machine::Error),
    /// Setting up the host side (serial files, terminal, threads).
    #[error("{0}")]
    Host(String),
    /// The VM stopped with an error.
    #[error("{0}")]
    Guest(String),
}

/// What follows a VM's exit.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Reboot,
    Exit {
        status: i32,
        note: Option<&'static str>,
    },
    Fail(String),
}

/// QEMU's exit status for a debug-exit write of `value`.
pub fn debug_exit_status(value: u32) -> i32 {
    (((value << 1) | 1) & 0xff) as i32
}

/// Maps why a VM stopped to what happens next (QEMU's reboot semantics and exit statuses).
pub fn next(reason: &ExitReason, no_reboot: bool, quitting: bool) -> Next {
    let exit = |status| Next::Exit { status, note: None };
    match reason {
        ExitReason::Poweroff | ExitReason::Stopped => exit(0),
        ExitReason::DebugExit(v) => exit(debug_exit_status(*v)),
        ExitReason::Reset | ExitReason::TripleFault if quitting => exit(0),
        ExitReason::Reset if no_reboot => exit(0),
        ExitReason::TripleFault if no_reboot => Next::Exit {
            status: 0,
            note: Some("the guest triple-faulted; not rebooting (-no-reboot)"),
        },
        ExitReason::Reset | ExitReason::TripleFault => Next::Reboot,
        ExitReason::Error(msg) => Next::Fail(msg.clone()),
    }
}

/// Fails early, with the loader's own message, on a kernel that cannot be read, before the
/// accelerator or RAM are set up.
fn check_kernel(path: &Path) -> Result<(), Error> {
    std::fs::File::open(path).map(drop).map_err(|source| {
        Error::Machine(machine::Error::Boot(bios::Error::ReadFile {
            path: path.to_owned(),
            source,
        }))
    })
}

/// How a run ended: the process exit status and the guest's last exit reason.
#[derive(Debug)]
pub struct Ended {
    pub status: i32,
    pub reason: ExitReason,
}

/// One line that says why the run ended, for `--exit-report` (read by `ferrite test`): the
/// exit status alone cannot tell a debug-exit write of 0 from an error, both status 1.
pub fn report_line(result: &Result<Ended, Error>) -> String {
    let one_line = |s: &str| s.replace('\n', " ");
    match result {
        Ok(Ended { reason, .. }) => match reason {
            ExitReason::DebugExit(v) => format!("debug-exit {v}"),
            ExitReason::TripleFault => "triple-fault".into(),
            ExitReason::Reset => "reset".into(),
            ExitReason::Poweroff => "poweroff".into(),
            ExitReason::Stopped => "stopped".into(),
            ExitReason::Error(msg) => format!("error {}", one_line(msg)),
        },
        Err(e) => format!("error {}", one_line(&e.to_string())),
    }
}

/// Runs the guest until it is done.
pub fn run(opts: &Options) -> Result<Ended, Error> {
    if let Some(k) = &opts.kernel {
        check_kernel(&k.kernel)?;
    }
    let backends = opts
        .serials
        .iter()
        .map(serial::open_backend)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Host)?;
    let serials = backends
        .iter()
        .map(|b| b.as_ref().map(|b| b.output.clone()))
        .collect();
    let cfg = VmConfig {
        memory: opts.memory,
        vcpus: opts.vcpus,
        accel: opts.accel,
        kernel: opts.kernel.clone(),
        firmware: opts.firmware.clone(),
        serials,
        debug_exit: opts.debug_exit,
        debugcon: match &opts.debugcon {
            Some((iobase, spec)) => {
                serial::open(spec)
                    .map_err(Error::Host)?
                    .map(|out| machine::DebugConConfig {
                        iobase: *iobase,
                        out,
                    })
            }
            None => None,
        },
        cpu: opts.cpu,
        icount_shift: opts.icount_shift,
        translate: opts.translate,
        pc_testdev: opts.pc_testdev,
        pci_testdev: opts.pci_testdev,
    };
    let console = opts.serials.iter().position(|s| *s == SerialSpec::Stdio);
    let session = Arc::new(Session::new(console));
    // What a socket's peer sends goes to its UART.
    for (port, b) in backends.iter().enumerate() {
        if let Some(socket) = b.as_ref().and_then(|b| b.socket.as_ref()) {
            let s = session.clone();
            socket.attach_input(Arc::new(move |bytes: &[u8]| s.send_to(port, bytes)));
        }
    }

    signals::install().map_err(|e| Error::Host(format!("installing signal handlers: {e}")))?;
    let s = session.clone();
    signals::watch(move |sig| {
        eprintln!("ferrite: terminating on signal {sig}");
        s.stop();
    })
    .map_err(|e| Error::Host(format!("starting the signal thread: {e}")))?;

    let _raw = if console.is_some() && terminal::stdin_is_tty() {
        Some(
            terminal::RawMode::enter()
                .map_err(|e| Error::Host(format!("putting the terminal in raw mode: {e}")))?,
        )
    } else {
        None
    };
    if console.is_some() {
        input::spawn(session.clone())
            .map_err(|e| Error::Host(format!("starting the input thread: {e}")))?;
    }

    loop {
        let vm = Vm::new(&cfg)?;
        if !session.attach(&vm) {
            return Ok(Ended {
                status: 0,
                reason: ExitReason::Stopped,
            });
        }
        let reason = vm.run()?;
        session.detach();
        match next(&reason, opts.no_reboot, session.quitting()) {
            Next::Reboot => log::info!("the guest reset; rebooting"),
            Next::Exit { status, note } => {
                if let Some(note) = note {
                    eprintln!("ferrite: {note}");
                }
                return Ok(Ended { status, reason });
            }
            Next::Fail(msg) => return Err(Error::Guest(msg)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_exit_statuses_are_qemus() {
        assert_eq!(debug_exit_status(0), 1);
        assert_eq!(debug_exit_status(1), 3);
        assert_eq!(debug_exit_status(0x7f), 0xff);
        assert_eq!(debug_exit_status(0x80), 1);
        assert_eq!(debug_exit_status(u32::MAX), 0xff);
    }

    #[test]
    fn reboot_semantics() {
        let exit0 = Next::Exit {
            status: 0,
            note: None,
        };
        assert_eq!(next(&ExitReason::Reset, false, false), Next::Reboot);
        assert_eq!(next(&ExitReason::TripleFault, false, false), Next::Reboot);
        assert_eq!(next(&ExitReason::Reset, true, false), exit0);
        assert!(matches!(
            next(&ExitReason::TripleFault, true, false),
            Next::Exit { status: 0, note: Some(n) } if n.contains("triple")
        ));
        assert_eq!(next(&ExitReason::Reset, false, true), exit0);
        assert_eq!(next(&ExitReason::Poweroff, false, false), exit0);
        assert_eq!(next(&ExitReason::Stopped, false, false), exit0);
        assert_eq!(
            next(&ExitReason::DebugExit(3), false, false),
            Next::Exit {
                status: 7,
                note: None
            }
        );
        assert_eq!(
            next(&ExitReason::Error("bad".into()), false, false),
            Next::Fail("bad".into())
        );
    }

    #[test]
    fn unreadable_kernel_names_the_path() {
        let e = check_kernel(Path::new("/nonexistent/bzImage")).unwrap_err();
        let e = e.to_string();
        assert!(
            e.starts_with("could not load kernel '/nonexistent/bzImage'"),
            "{e}"
        );
    }
}
