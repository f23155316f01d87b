//! Running the tests' `ferrite run` processes, N at a time, each with a timeout and a cap on
//! its log; none outlives the runner.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::verdict::Outcome;
use crate::signals;

/// One process to run.
pub struct Job {
    /// Index of the test, handed back in [`Finished`].
    pub index: usize,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Receives the process's stdout and stderr (the guest's serial console and Ferrite's
    /// messages).
    pub log: PathBuf,
    /// Where `ferrite run --exit-report` writes why it ended.
    pub report: PathBuf,
    pub timeout: Duration,
}

/// A job that ended.
pub struct Finished {
    pub index: usize,
    pub outcome: Outcome,
    pub seconds: f64,
}

struct Running {
    job: Job,
    child: Child,
    started: Instant,
}

/// How often running jobs are checked: bounds the overshoot of a timeout or the log limit.
const POLL: Duration = Duration::from_millis(10);

fn spawn(job: &Job) -> Result<Child, String> {
    let _ = std::fs::remove_file(&job.report);
    let log = File::create(&job.log)
        .map_err(|e| format!("cannot create the log {}: {e}", job.log.display()))?;
    let err = log
        .try_clone()
        .map_err(|e| format!("cannot share the log {}: {e}", job.log.display()))?;
    let mut cmd = Command::new(&job.program);
    cmd.args(&job.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    // SAFETY: getpid is always safe to call.
    let runner = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and calls only prctl and
    // getppid, which are async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            // The test dies with the runner, even one killed by SIGKILL.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // A runner that died before the prctl took effect sent no signal.
            if libc::getppid() != runner {
                return Err(std::io::Error::other("the runner is gone"));
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start {}: {e}", job.program.display()))
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn log_size(job: &Job) -> u64 {
    std::fs::metadata(&job.log).map_or(0, |m| m.len())
}

/// Checks one running job: `Some` once it is over.
fn check(r: &mut Running, log_limit: u64) -> Option<Outcome> {
    let elapsed = r.started.elapsed();
    match r.child.try_wait() {
        Ok(Some(status)) => {
            return Some(match std::fs::read_to_string(&r.job.report) {
                Ok(line) if !line.trim().is_empty() => Outcome::Report(line),
                _ => Outcome::NoReport(status),
            })
        }
        Ok(None) => {}
        Err(e) => {
            kill(&mut r.child);
            return Some(Outcome::Unwaited(e.to_string()));
        }
    }
    if elapsed > r.job.timeout {
        kill(&mut r.child);
        return Some(Outcome::Timeout(r.job.timeout.as_secs_f64()));
    }
    if log_size(&r.job) > log_limit {
        kill(&mut r.child);
        return Some(Outcome::Flood(log_limit));
    }
    None
}

/// Runs every job, at most `parallel` at once, calling `done` as each ends (in the order they
/// end). A SIGINT/SIGTERM/SIGHUP kills the running jobs and returns the signal.
pub fn run_all(
    jobs: Vec<Job>,
    parallel: usize,
    log_limit: u64,
    mut done: impl FnMut(Finished),
) -> Result<(), i32> {
    let mut queue = jobs.into_iter();
    let mut running: Vec<Running> = Vec::new();
    loop {
        let sig = signals::pending();
        if sig != 0 {
            for r in &mut running {
                kill(&mut r.child);
            }
            return Err(sig);
        }
        while running.len() < parallel.max(1) {
            let Some(job) = queue.next() else { break };
            match spawn(&job) {
                Ok(child) => running.push(Running {
                    job,
                    child,
                    started: Instant::now(),
                }),
                Err(e) => done(Finished {
                    index: job.index,
                    outcome: Outcome::Unwaited(e),
                    seconds: 0.0,
                }),
            }
        }
        if running.is_empty() {
            return Ok(());
        }
        let mut i = 0;
        while i < running.len() {
            match check(&mut running[i], log_limit) {
                Some(outcome) => {
                    let r = running.swap_remove(i);
                    done(Finished {
                        index: r.job.index,
                        outcome,
                        seconds: r.started.elapsed().as_secs_f64(),
                    });
                }
                None => i += 1,
            }
        }
        std::thread::sleep(POLL);
    }
}
