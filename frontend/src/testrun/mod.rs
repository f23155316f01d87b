//! `ferrite test`: runs a suite of test kernels or ROMs, each in its own `ferrite run`
//! process, N at a time with a timeout each, and reports pass/fail/skip on the terminal and
//! as JUnit XML.

mod exec;
mod junit;
mod suite;
mod verdict;
pub mod words;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::Args;

use exec::Job;
use suite::{Shard, Test};
use verdict::{Convention, Kind, Verdict};

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Tests: a directory (every file in it but logs, lists and scripts), a glob such as
    /// 'tests/*.elf' (wildcards in the file name), or a file. Files ending in .rom boot with
    /// -bios, the others with -kernel
    #[arg(value_name = "TEST")]
    pub tests: Vec<String>,
    /// A list file: one test per line, `[name=NAME] [timeout=SECONDS] [boot=kernel|bios] PATH
    /// [OPTIONS…]`, PATH relative to the list file, '#' for comments
    #[arg(short = 'l', long, value_name = "FILE")]
    pub list: Vec<PathBuf>,
    /// Tests run at once [default: the number of host CPUs]
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Seconds a test may run before it is killed
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub timeout: f64,
    /// Directory for each test's log (its serial console and Ferrite's messages)
    #[arg(long, value_name = "DIR", default_value = "ferrite-test-logs")]
    pub logs: PathBuf,
    /// Write a JUnit XML report to FILE
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// The suite's name in the JUnit report
    #[arg(long, value_name = "NAME", default_value = "ferrite")]
    pub suite_name: String,
    /// Run the K-th (from 1) of N parts of the suite, for a CI matrix; the tests are sorted by
    /// name and dealt out round-robin
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// isa-debug-exit values that mean pass
    #[arg(long, value_name = "V,…", default_value = "0")]
    pub pass_code: String,
    /// isa-debug-exit values that mean skip
    #[arg(long, value_name = "V,…", default_value = "77")]
    pub skip_code: String,
    /// Verdict for a triple fault
    #[arg(long, value_enum, value_name = "VERDICT", default_value = "fail")]
    pub on_triple_fault: Kind,
    /// Verdict for a guest that powers off or resets without writing to isa-debug-exit
    #[arg(long, value_enum, value_name = "VERDICT", default_value = "fail")]
    pub on_shutdown: Kind,
    /// Verdict for a test that runs out of time
    #[arg(long, value_enum, value_name = "VERDICT", default_value = "fail")]
    pub on_timeout: Kind,
    /// Kill a test whose log grows past SIZE (as -m takes it: 512K, 16M; bare numbers are MiB)
    #[arg(long, value_name = "SIZE", default_value = "16M")]
    pub log_limit: String,
    /// Boot the files named on the command line with -bios
    #[arg(long)]
    pub bios: bool,
    /// Print the selected tests and their commands, and run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Options for every test, `ferrite run` or QEMU spelling, after `--`
    #[arg(last = true, value_name = "OPTIONS")]
    pub options: Vec<String>,
}

/// The log's end, as much as a report should carry.
const REPORT_LOG_BYTES: usize = 64 * 1024;

struct Plan {
    tests: Vec<Test>,
    convention: Convention,
    log_limit: u64,
    parallel: usize,
    timeout: Duration,
}

fn plan(a: &TestArgs) -> Result<Plan, String> {
    if a.tests.is_empty() && a.list.is_empty() {
        return Err("no tests given: name a directory, a glob or files, or --list FILE".into());
    }
    let mut tests = suite::collect(&a.tests, &a.list, a.bios)?;
    if tests.is_empty() {
        return Err("the list files name no tests".into());
    }
    if let Some(s) = &a.shard {
        tests = Shard::parse(s)?.select(tests);
    }
    let codes = |opt: &str, s: &str| verdict::parse_codes(s).map_err(|e| format!("{opt}: {e}"));
    let convention = Convention {
        pass: codes("--pass-code", &a.pass_code)?,
        skip: codes("--skip-code", &a.skip_code)?,
        triple_fault: a.on_triple_fault,
        shutdown: a.on_shutdown,
        timeout: a.on_timeout,
    };
    if let Some(v) = convention.pass.iter().find(|v| convention.skip.contains(v)) {
        return Err(format!("{v} is both a --pass-code and a --skip-code"));
    }
    let log_limit = machine::memory::parse_size(&a.log_limit)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("--log-limit {}: not a size (try 512K or 16M)", a.log_limit))?;
    if !(a.timeout.is_finite() && a.timeout > 0.0 && a.timeout < 1e9) {
        return Err(format!("--timeout {}: not a number of seconds", a.timeout));
    }
    let parallel = match a.jobs {
        Some(0) => return Err("--jobs 0: at least one test must run at a time".into()),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    Ok(Plan {
        tests,
        convention,
        log_limit,
        parallel,
        timeout: Duration::from_secs_f64(a.timeout),
    })
}

/// `ferrite run` arguments for one test (without the exit report).
fn run_args(common: &[String], t: &Test) -> Vec<String> {
    let mut args = vec!["run".to_owned()];
    args.extend(common.iter().cloned());
    args.extend(t.flags.iter().cloned());
    args.push(if t.rom { "-bios" } else { "-kernel" }.to_owned());
    args.push(t.path.display().to_string());
    args.push("-no-reboot".to_owned());
    args
}

fn read_log(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    if bytes.len() <= REPORT_LOG_BYTES {
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    let cut = bytes.len() - REPORT_LOG_BYTES;
    format!(
        "[… the first {cut} bytes are in the log file …]\n{}",
        String::from_utf8_lossy(&bytes[cut..])
    )
}

/// The reason a skipping test printed (`SKIP: why`), if it did.
fn skip_reason(log: &str) -> Option<&str> {
    log.lines()
        .find_map(|l| l.split_once("SKIP:").map(|(_, why)| why.trim()))
}

/// Now as ISO 8601 (UTC), for the report's timestamp.
fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

struct Ran {
    seconds: f64,
    verdict: Verdict,
    log: String,
    rerun: String,
}

/// Runs `ferrite test`; returns the process exit status: 0 when nothing failed, 1 when a
/// test failed, 2 for a command line or suite that cannot be used, 128+N on signal N.
pub fn run(a: &TestArgs) -> i32 {
    let plan = match plan(a) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferrite test: {e}");
            return 2;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferrite test: cannot find the ferrite binary: {e}");
            return 2;
        }
    };
    let reruns: Vec<String> = plan
        .tests
        .iter()
        .map(|t| {
            let mut words = vec![exe.display().to_string()];
            words.extend(run_args(&a.options, t));
            words::join(&words)
        })
        .collect();
    if a.dry_run {
        for (t, cmd) in plan.tests.iter().zip(&reruns) {
            println!("{}\t{cmd}", t.name);
        }
        return 0;
    }
    if let Err(e) = std::fs::create_dir_all(&a.logs) {
        eprintln!("ferrite test: cannot create {}: {e}", a.logs.display());
        return 2;
    }
    if let Err(e) = crate::signals::install() {
        eprintln!("ferrite test: installing signal handlers: {e}");
        return 2;
    }
    let jobs = plan
        .tests
        .iter()
        .enumerate()
        .map(|(index, t)| {
            let stem = suite::log_stem(&t.name);
            let report = a.logs.join(format!("{stem}.exit"));
            let mut args = run_args(&a.options, t);
            args.push("--exit-report".into());
            args.push(report.display().to_string());
            Job {
                index,
                program: exe.clone(),
                args,
                log: a.logs.join(format!("{stem}.log")),
                report,
                timeout: t.timeout.unwrap_or(plan.timeout),
            }
        })
        .collect::<Vec<_>>();
    let logs: Vec<PathBuf> = jobs.iter().map(|j| j.log.clone()).collect();

    let started = timestamp();
    let mut results: Vec<Option<Ran>> = (0..plan.tests.len()).map(|_| None).collect();
    let interrupted = exec::run_all(jobs, plan.parallel, plan.log_limit, |f| {
        let t = &plan.tests[f.index];
        let verdict = plan.convention.judge(&f.outcome);
        let log = read_log(&logs[f.index]);
        match verdict.kind {
            Kind::Pass => println!("PASS {} ({:.2} s)", t.name, f.seconds),
            Kind::Skip => println!(
                "SKIP {} ({:.2} s): {}",
                t.name,
                f.seconds,
                skip_reason(&log).unwrap_or(&verdict.why)
            ),
            Kind::Fail => println!(
                "FAIL {} ({:.2} s): {}\n     log: {}\n     rerun: {}",
                t.name,
                f.seconds,
                verdict.why,
                logs[f.index].display(),
                reruns[f.index]
            ),
        }
        results[f.index] = Some(Ran {
            seconds: f.seconds,
            verdict,
            log,
            rerun: reruns[f.index].clone(),
        });
    })
    .err();

    let count = |k: Kind| {
        results
            .iter()
            .flatten()
            .filter(|r| r.verdict.kind == k)
            .count()
    };
    let (passed, failed, skipped) = (count(Kind::Pass), count(Kind::Fail), count(Kind::Skip));
    if let Some(path) = &a.junit {
        let cases: Vec<junit::Case> = plan
            .tests
            .iter()
            .zip(&results)
            .filter_map(|(t, r)| {
                r.as_ref().map(|r| junit::Case {
                    name: &t.name,
                    seconds: r.seconds,
                    verdict: &r.verdict,
                    log: &r.log,
                    rerun: &r.rerun,
                })
            })
            .collect();
        let xml = junit::render(&a.suite_name, &started, &cases);
        if let Err(e) = std::fs::write(path, xml) {
            eprintln!("ferrite test: writing {}: {e}", path.display());
            return 2;
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if let Some(sig) = interrupted {
        let left = plan.tests.len() - passed - failed - skipped;
        eprintln!("ferrite test: stopped by signal {sig}; {left} tests did not finish");
        return 128 + sig;
    }
    i32::from(failed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso_8601() {
        let t = timestamp();
        assert_eq!(t.len(), 19, "{t}");
        assert!(t.starts_with("20") && t.as_bytes()[10] == b'T', "{t}");
    }

    #[test]
    fn skip_reasons_come_from_the_log() {
        assert_eq!(
            skip_reason("boot\nSKIP: no VT-x here\nmore"),
            Some("no VT-x here")
        );
        assert_eq!(skip_reason("nothing"), None);
    }

    #[test]
    fn test_commands_are_ferrite_run() {
        let t = Test {
            name: "a".into(),
            path: "k dir/a.elf".into(),
            rom: false,
            flags: vec!["-smp".into(), "2".into()],
            timeout: None,
            origin: "x".into(),
        };
        let args = run_args(&["-accel".into(), "tcg".into()], &t);
        assert_eq!(
            words::join(&args),
            "run -accel tcg -smp 2 -kernel 'k dir/a.elf' -no-reboot"
        );
    }
}
