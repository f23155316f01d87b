//! The Debian demo guest (a stock kernel and busybox, built by guests/build-debian-guest.sh)
//! boots on the software CPU and runs a command whose result the host checks.
//!
//! The guest comes from the cache the build script fills (`FERRITE_CACHE`, else
//! `XDG_CACHE_HOME/ferrite`, else `~/.cache/ferrite`); CI builds it before the tests. Without
//! it the test says SKIP and why.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a boot plus the command may take on a slow CI machine (the interpreter in a test
/// build; about ten minutes on the project's 2-core machine).
const TIMEOUT: Duration = Duration::from_secs(40 * 60);

fn guest_dir() -> Option<PathBuf> {
    let root = match std::env::var_os("FERRITE_CACHE") {
        Some(c) => PathBuf::from(c),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(x) => PathBuf::from(x).join("ferrite"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/ferrite"),
        },
    };
    Some(root.join("guests/debian"))
}

/// Runs `ferrite args…`, killing it after [`TIMEOUT`]; returns (status, stdout, stderr).
/// `name` keeps the outputs of tests running at once apart.
fn run_with_timeout(name: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let dir =
        std::env::temp_dir().join(format!("ferrite-linux-guest-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("starting ferrite");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned();
    let err = String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    (status, out, err)
}

/// The same pipeline on the host: the guest's busybox must agree with coreutils.
fn host_md5(pipeline: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", pipeline])
        .output()
        .expect("running the pipeline on the host");
    assert!(out.status.success(), "host pipeline failed: {pipeline}");
    String::from_utf8(out.stdout).unwrap()[..32].to_string()
}

/// Which software CPU runs the guest.
#[derive(Clone, Copy, PartialEq)]
enum Engine {
    /// The translator (the default for `--accel dbt`).
    Translator,
    /// `--translator off`: the interpreter alone, the reference semantics.
    Interpreter,
}

/// Boots the guest with `-smp cpus` on `engine`, runs a pipeline whose md5sum the host
/// checks, and requires that the guest counted `cpus` CPUs and powered off cleanly.
fn boot_and_check(cpus: u32, engine: Engine) {
    let Some(dir) = guest_dir() else {
        println!("SKIP: no HOME or FERRITE_CACHE to find the demo guest in");
        return;
    };
    let kernel = dir.join("vmlinuz");
    let initrd = dir.join("initrd.img");
    if !kernel.exists() || !initrd.exists() {
        println!(
            "SKIP: the demo guest is not built in {} (run guests/build-debian-guest.sh)",
            dir.display()
        );
        return;
    }
    // Generated data, a few hundred KiB: enough to run md5 over many pages; the translator
    // (about ten times faster) also compresses and decompresses a megabyte of it.
    let pipeline = match engine {
        Engine::Interpreter => "seq 1 50000 | md5sum",
        Engine::Translator => "seq 1 200000 | gzip -c | gunzip -c | md5sum",
    };
    let expected = host_md5(pipeline);
    // On the translator, the same round trip by the i386 busybox too: 32-bit user code
    // (compatibility mode) under the 64-bit kernel.
    let compat = match engine {
        Engine::Interpreter => String::new(),
        // No spaces around the pipes: init gets at most 32 words.
        Engine::Translator => "; echo I386=$(busybox32 seq 1 200000|busybox32 gzip -c|\
             busybox32 gunzip -c|busybox32 md5sum)"
            .to_string(),
    };
    let append = format!(
        "console=ttyS0 panic=-1 loglevel=5 -- {pipeline}{compat}; echo CPUS=$(grep -c ^processor /proc/cpuinfo)"
    );
    let smp = cpus.to_string();
    let translator = match engine {
        Engine::Translator => "on",
        Engine::Interpreter => "off",
    };
    let start = Instant::now();
    let (status, out, err) = run_with_timeout(
        &format!("smp{cpus}-{translator}"),
        &[
            "run",
            "--accel",
            "dbt",
            "--translator",
            translator,
            "-smp",
            &smp,
            "--memory",
            "256M",
            "-no-reboot",
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            initrd.to_str().unwrap(),
            "--append",
            &append,
        ],
    );
    let secs = start.elapsed().as_secs_f64();
    let tail: String = {
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    assert!(
        out.contains("FERRITE-READY"),
        "-smp {cpus}: the guest never reached its shell (status {status:?}, {secs:.0} s)\nstdout tail:\n{tail}\nstderr:\n{err}"
    );
    assert!(
        out.contains(&expected),
        "-smp {cpus}: the guest's md5sum differs from the host's {expected}\nstdout tail:\n{tail}"
    );
    if engine == Engine::Translator {
        assert!(
            out.contains(&format!("I386={expected}")),
            "-smp {cpus}: the i386 busybox's md5sum differs from the host's {expected}\nstdout tail:\n{tail}"
        );
    }
    assert!(
        out.contains(&format!("CPUS={cpus}")),
        "-smp {cpus}: the guest did not bring up {cpus} CPUs\nstdout tail:\n{tail}\nstderr:\n{err}"
    );
    assert!(
        out.contains("FERRITE-EXIT 0"),
        "-smp {cpus}: the command did not exit 0\nstdout tail:\n{tail}"
    );
    // The guest's init powers off through ACPI (the FADT's PM1a control block, S5).
    assert_eq!(
        status,
        Some(0),
        "-smp {cpus}: the guest's poweroff did not end the run cleanly\nstdout tail:\n{tail}\nstderr:\n{err}"
    );
    assert!(out.contains("reboot: Power down"), "stdout tail:\n{tail}");
    println!(
        "-smp {cpus}, translator {translator}: the Debian guest booted and matched the host's \
         md5sum in {secs:.0} s"
    );
}

#[test]
fn debian_guest_boots_on_the_interpreter_alone_and_its_md5sum_matches_the_host() {
    boot_and_check(1, Engine::Interpreter);
}

#[test]
fn debian_guest_boots_on_the_translator_and_its_md5sum_matches_the_host() {
    boot_and_check(1, Engine::Translator);
}

/// Two vCPUs on two host threads: INIT/SIPI, per-CPU APICs, IPIs (TLB shootdowns,
/// rescheduling) and host-atomic LOCK'ed accesses under a real kernel, in translated code
/// (cross-modifying code: each vCPU's blocks go stale on the other's stores).
#[test]
fn debian_guest_boots_with_two_vcpus_and_its_md5sum_matches_the_host() {
    boot_and_check(2, Engine::Translator);
}
