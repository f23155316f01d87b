//! From how a test's run ended to pass, fail or skip, by a configurable convention.
//!
//! The default is the one QEMU-based suites share (kvm-unit-tests among them): the test
//! writes its result to isa-debug-exit, 0 meaning pass and 77 skip (automake's skip code);
//! anything else, a triple fault, a shutdown without a result, a timeout or a crash fails.

use std::process::ExitStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Pass,
    Fail,
    Skip,
}

/// What the runner saw of one test.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// `ferrite run` ended and wrote its exit report (one line, see `run::report_line`).
    Report(String),
    /// It ended without a report: it crashed or was killed.
    NoReport(ExitStatus),
    /// It ran past its time and was killed.
    Timeout(f64),
    /// Its log grew past the limit and it was killed.
    Flood(u64),
    /// It could not be started or waited for.
    Unwaited(String),
}

/// A test's verdict and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub kind: Kind,
    pub why: String,
    /// The run broke rather than the test failing (a timeout, a crash, an error of Ferrite's
    /// own): JUnit's `<error>` rather than `<failure>`.
    pub error: bool,
}

/// How outcomes map to verdicts.
#[derive(Clone, Debug)]
pub struct Convention {
    /// isa-debug-exit values that mean pass.
    pub pass: Vec<u32>,
    /// isa-debug-exit values that mean skip.
    pub skip: Vec<u32>,
    pub triple_fault: Kind,
    /// The guest powered off or reset (with -no-reboot) without writing a result.
    pub shutdown: Kind,
    pub timeout: Kind,
}

impl Default for Convention {
    fn default() -> Self {
        Convention {
            pass: vec![0],
            skip: vec![77],
            triple_fault: Kind::Fail,
            shutdown: Kind::Fail,
            timeout: Kind::Fail,
        }
    }
}

fn verdict(kind: Kind, why: impl Into<String>, error: bool) -> Verdict {
    Verdict {
        kind,
        why: why.into(),
        error: error && kind == Kind::Fail,
    }
}

impl Convention {
    pub fn judge(&self, outcome: &Outcome) -> Verdict {
        match outcome {
            Outcome::Report(line) => self.judge_report(line.trim()),
            Outcome::NoReport(status) => {
                let how = match (
                    status.code(),
                    std::os::unix::process::ExitStatusExt::signal(status),
                ) {
                    (Some(c), _) => format!("ferrite exited with status {c} without a result"),
                    (None, Some(s)) => format!("ferrite was killed by signal {s}"),
                    _ => format!("ferrite ended abnormally ({status})"),
                };
                verdict(Kind::Fail, how, true)
            }
            Outcome::Timeout(secs) => {
                verdict(self.timeout, format!("timed out after {secs} s"), true)
            }
            Outcome::Flood(limit) => verdict(
                Kind::Fail,
                format!("its output passed the --log-limit of {limit} bytes"),
                true,
            ),
            Outcome::Unwaited(e) => verdict(Kind::Fail, e.clone(), true),
        }
    }

    fn judge_report(&self, line: &str) -> Verdict {
        let (what, rest) = line.split_once(' ').unwrap_or((line, ""));
        match what {
            "debug-exit" => match rest.parse::<u32>() {
                Ok(v) => {
                    let status = crate::run::debug_exit_status(v);
                    let why = format!("isa-debug-exit {v:#x} (exit status {status})");
                    if self.pass.contains(&v) {
                        verdict(Kind::Pass, why, false)
                    } else if self.skip.contains(&v) {
                        verdict(Kind::Skip, why, false)
                    } else {
                        verdict(Kind::Fail, why, false)
                    }
                }
                Err(_) => verdict(Kind::Fail, format!("unreadable exit report '{line}'"), true),
            },
            "triple-fault" => verdict(self.triple_fault, "the guest triple-faulted", false),
            "poweroff" | "reset" => verdict(
                self.shutdown,
                format!(
                    "the guest {} without writing a result",
                    what.replace("poweroff", "powered off")
                ),
                false,
            ),
            "stopped" => verdict(Kind::Fail, "stopped from the host", true),
            "error" => verdict(Kind::Fail, format!("ferrite: {rest}"), true),
            _ => verdict(Kind::Fail, format!("unreadable exit report '{line}'"), true),
        }
    }
}

/// Parses a `--pass-code`/`--skip-code` value: numbers separated by commas, 0x… for hex.
pub fn parse_codes(s: &str) -> Result<Vec<u32>, String> {
    s.split(',')
        .map(|c| {
            crate::device::parse_number(c)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("'{c}' is not an isa-debug-exit value"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn judge(line: &str) -> (Kind, bool) {
        let v = Convention::default().judge(&Outcome::Report(line.into()));
        (v.kind, v.error)
    }

    #[test]
    fn default_convention_is_kvm_unit_tests() {
        assert_eq!(judge("debug-exit 0"), (Kind::Pass, false));
        assert_eq!(judge("debug-exit 77"), (Kind::Skip, false));
        assert_eq!(judge("debug-exit 1"), (Kind::Fail, false));
        assert_eq!(judge("triple-fault"), (Kind::Fail, false));
        assert_eq!(judge("poweroff\n"), (Kind::Fail, false));
        assert_eq!(judge("error cannot open /dev/kvm"), (Kind::Fail, true));
        assert_eq!(judge("garbage"), (Kind::Fail, true));
        assert_eq!(judge("debug-exit x"), (Kind::Fail, true));
    }

    #[test]
    fn convention_is_configurable() {
        let c = Convention {
            pass: vec![1, 2],
            skip: vec![0x5e],
            triple_fault: Kind::Pass,
            shutdown: Kind::Skip,
            timeout: Kind::Skip,
        };
        let kind = |o: Outcome| c.judge(&o).kind;
        assert_eq!(kind(Outcome::Report("debug-exit 2".into())), Kind::Pass);
        assert_eq!(kind(Outcome::Report("debug-exit 0".into())), Kind::Fail);
        assert_eq!(kind(Outcome::Report("debug-exit 94".into())), Kind::Skip);
        assert_eq!(kind(Outcome::Report("triple-fault".into())), Kind::Pass);
        assert_eq!(kind(Outcome::Report("reset".into())), Kind::Skip);
        let t = c.judge(&Outcome::Timeout(3.0));
        assert_eq!((t.kind, t.error), (Kind::Skip, false));
    }

    #[test]
    fn broken_runs_are_errors() {
        let c = Convention::default();
        let v = c.judge(&Outcome::NoReport(ExitStatus::from_raw(9)));
        assert!(v.error && v.why.contains("signal 9"), "{v:?}");
        let v = c.judge(&Outcome::Timeout(1.5));
        assert!(v.error && v.why.contains("1.5 s"), "{v:?}");
        assert!(c.judge(&Outcome::Flood(10)).why.contains("10 bytes"));
    }

    #[test]
    fn codes() {
        assert_eq!(parse_codes("0,0x4d,3"), Ok(vec![0, 77, 3]));
        assert!(parse_codes("1,x").is_err());
    }
}
