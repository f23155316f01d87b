//! Boot latency of a test kernel: time from process start to the kernel's first serial line,
//! and to exit, for Ferrite (KVM) and, when installed, QEMU (TCG), measured in one run.
//!
//! Usage: bench-boot-latency FERRITE_BINARY [RUNS]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MARKER: &[u8] = b"hello from protected mode";

struct Sample {
    first_line: Duration,
    exit: Duration,
}

fn measure(mut cmd: Command) -> Result<Sample, String> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut seen = Vec::new();
    let mut first_line = None;
    let mut buf = [0u8; 256];
    loop {
        let n = out.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if first_line.is_none() && seen.windows(MARKER.len()).any(|w| w == MARKER) {
            first_line = Some(start.elapsed());
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let exit = start.elapsed();
    match (first_line, status.code()) {
        (Some(first_line), Some(1)) => Ok(Sample { first_line, exit }),
        _ => Err(format!(
            "run failed: status {status}, output {:?}",
            String::from_utf8_lossy(&seen)
        )),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn series(name: &str, runs: usize, make: impl Fn() -> Command) -> Option<(Duration, Duration)> {
    let mut firsts = Vec::new();
    let mut exits = Vec::new();
    for _ in 0..runs {
        match measure(make()) {
            Ok(s) => {
                firsts.push(s.first_line);
                exits.push(s.exit);
            }
            Err(e) => {
                println!("{name:<22} failed: {e}");
                return None;
            }
        }
    }
    let (f, e) = (median(firsts), median(exits));
    println!(
        "{name:<22} first serial line {:>8.1} ms   exit {:>8.1} ms   (median of {runs})",
        f.as_secs_f64() * 1e3,
        e.as_secs_f64() * 1e3
    );
    Some((f, e))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(ferrite) = args.next() else {
        eprintln!("usage: bench-boot-latency FERRITE_BINARY [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10)
        .max(1);
    let kernel = std::env::temp_dir().join(format!("ferrite-bench-{}.bin", std::process::id()));
    if let Err(e) = std::fs::write(&kernel, testsuite::kernels::hello32()) {
        eprintln!("cannot write {}: {e}", kernel.display());
        std::process::exit(1);
    }
    let common = |cmd: &mut Command| {
        cmd.args(["-nographic", "-no-reboot", "-m", "64"])
            .args([
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-kernel",
            ])
            .arg(&kernel);
    };
    println!("hello32 test kernel: start of the process to its first serial line, and to exit");
    let f = series("ferrite -accel kvm", runs, || {
        let mut c = Command::new(&ferrite);
        c.args(["-accel", "kvm"]);
        common(&mut c);
        c
    });
    let q = if Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok()
    {
        series("qemu -accel tcg", runs, || {
            let mut c = Command::new("qemu-system-x86_64");
            c.args(["-accel", "tcg", "-net", "none"]);
            common(&mut c);
            c
        })
    } else {
        println!("qemu-system-x86_64 not installed: no QEMU baseline");
        None
    };
    if let (Some(f), Some(q)) = (f, q) {
        println!(
            "ratio QEMU/Ferrite: first line {:.1}x, exit {:.1}x",
            q.0.as_secs_f64() / f.0.as_secs_f64(),
            q.1.as_secs_f64() / f.1.as_secs_f64()
        );
    }
    let _ = std::fs::remove_file(&kernel);
}
