//! The `ferrite` binary as a user runs it.

use std::process::{Command, Output};

fn ferrite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .output()
        .expect("running ferrite")
}

/// `ferrite` on the software CPU with the kit's isa-debug-exit (0xf4/4) and `args`.
fn ferrite_tcg(args: &[&str]) -> Output {
    let mut all = vec![
        "-accel",
        "tcg",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
    ];
    all.extend_from_slice(args);
    ferrite(&all)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch file unique to this test, removed on drop.
/// A temporary file removed on drop (the testsuite's), with its path as a `&str` argument.
struct TempFile(testsuite::harness::TempFile);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        TempFile(testsuite::harness::temp_kernel(
            &format!("cli-{name}"),
            contents,
        ))
    }

    fn path(&self) -> &str {
        self.0.path().to_str().expect("temp path is UTF-8")
    }
}

/// Why KVM cannot be used here, if it cannot.
fn kvm_unavailable() -> Option<String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .err()
        .map(|e| format!("cannot open /dev/kvm: {e}"))
}

#[test]
fn help_mentions_qemu_mode() {
    let o = ferrite(&["--help"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("QEMU"), "{}", stdout(&o));
    let o = ferrite(&["run", "--help"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("--kernel"));
}

#[test]
fn device_help_lists_debug_exit() {
    for spelling in [&["-device", "help"][..], &["run", "--device", "?"]] {
        let o = ferrite(spelling);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        assert!(stdout(&o).contains("isa-debug-exit"), "{}", stdout(&o));
    }
}

#[test]
fn unknown_flags_are_named() {
    let o = ferrite(&["-kernel", "k", "-frobnicate"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("-frobnicate"), "{}", stderr(&o));
    let o = ferrite(&["run", "--kernel", "k", "--frobnicate"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--frobnicate"), "{}", stderr(&o));
}

#[test]
fn unsupported_device_is_named() {
    let o = ferrite(&["-kernel", "k", "-device", "e1000,netdev=n0"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("'e1000'"), "{}", stderr(&o));
}

#[test]
fn missing_kernel_file() {
    let o = ferrite(&[
        "-kernel",
        "/nonexistent/ferrite-test-kernel",
        "-accel",
        "kvm",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = stderr(&o);
    assert!(
        err.contains("could not load kernel '/nonexistent/ferrite-test-kernel'"),
        "{err}"
    );
}

#[test]
fn the_software_cpu_runs_a_test_kernel_with_qemus_spellings() {
    let kernel = TempFile::new("hello32-tcg", &testsuite::kernels::hello32());
    for accel in ["dbt", "tcg"] {
        let o = ferrite(&[
            "-kernel",
            kernel.path(),
            "-accel",
            accel,
            "-nographic",
            "-no-reboot",
            "-m",
            "64",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]);
        assert_eq!(o.status.code(), Some(1), "{accel}: {o:?}");
        assert_eq!(stdout(&o), "hello from protected mode\n", "{accel}");
    }
}

#[test]
fn bad_memory_sizes() {
    let kernel = TempFile::new("mem-kernel", b"not a kernel");
    let o = ferrite(&["-kernel", kernel.path(), "-m", "lots"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("'lots'"), "{}", stderr(&o));

    let o = ferrite(&["-kernel", kernel.path(), "-m", "99999999G", "-accel", "kvm"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = stderr(&o);
    assert!(err.contains("ferrite: "), "{err}");
    if kvm_unavailable().is_none() {
        assert!(err.contains("MiB asked for"), "{err}");
    }
}

#[test]
fn serial_file_that_cannot_be_created_is_named() {
    let kernel = TempFile::new("serial-kernel", b"not a kernel");
    let o = ferrite(&[
        "-kernel",
        kernel.path(),
        "-serial",
        "file:/nonexistent/dir/com1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stderr(&o).contains("/nonexistent/dir/com1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn boots_hello32_under_kvm() {
    if let Some(why) = kvm_unavailable() {
        eprintln!("SKIP: boots_hello32_under_kvm: {why}");
        return;
    }
    let kernel = TempFile::new("hello32", &testsuite::kernels::hello32());
    let o = ferrite(&[
        "-kernel",
        kernel.path(),
        "-nographic",
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-accel",
        "kvm",
        "-m",
        "64M",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}\nstderr: {}", stderr(&o));
    assert!(
        stdout(&o).contains("hello from protected mode\n"),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn serial_to_a_file() {
    if let Some(why) = kvm_unavailable() {
        eprintln!("SKIP: serial_to_a_file: {why}");
        return;
    }
    let kernel = TempFile::new("hello32-file", &testsuite::kernels::hello32());
    let log = TempFile::new("com1.log", b"old contents to be truncated");
    let serial = format!("file:{}", log.path());
    let o = ferrite(&[
        "run",
        "--kernel",
        kernel.path(),
        "--serial",
        &serial,
        "--device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "--accel",
        "kvm",
        "--memory",
        "64",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(stdout(&o), "");
    let written = std::fs::read_to_string(log.path()).expect("reading the serial log");
    assert_eq!(written, "hello from protected mode\n");
}

/// A kernel that prints "boot" and resets the PC through the i8042 (command 0xfe).
fn reset_kernel() -> Vec<u8> {
    use iced_x86::code_asm::*;
    testsuite::kit::Kernel::build(|k| {
        k.c32.print("boot\n");
        let a = &mut k.c32.a;
        a.mov(al, 0xfeu32).expect("mov");
        a.out(0x64u32, al).expect("out");
        let mut l = a.create_label();
        a.set_label(&mut l).expect("label");
        a.hlt().expect("hlt");
        a.jmp(l).expect("jmp");
    })
}

/// A kernel that prints "boot" and triple-faults (#UD with an empty IDT).
fn triple_fault_kernel() -> Vec<u8> {
    use iced_x86::code_asm::*;
    testsuite::kit::Kernel::build(|k| {
        k.c32.print("boot\n");
        let a = &mut k.c32.a;
        // Fresh RAM is zero: an IDTR with limit 0.
        a.lidt(ptr(0x19_0000u32)).expect("lidt");
        a.ud2().expect("ud2");
    })
}

#[test]
fn no_reboot_ends_the_run_on_reset_and_triple_fault() {
    if let Some(why) = kvm_unavailable() {
        eprintln!("SKIP: no_reboot_ends_the_run_on_reset_and_triple_fault: {why}");
        return;
    }
    let reset = TempFile::new("reset", &reset_kernel());
    let o = ferrite(&[
        "-kernel",
        reset.path(),
        "-accel",
        "kvm",
        "-m",
        "64",
        "-no-reboot",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o), "boot\n");

    let triple = TempFile::new("triple", &triple_fault_kernel());
    let o = ferrite(&[
        "-kernel",
        triple.path(),
        "-accel",
        "kvm",
        "-m",
        "64",
        "-no-reboot",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o), "boot\n");
    assert!(stderr(&o).contains("triple-faulted"), "{}", stderr(&o));
}

/// `ferrite ARGS` with its stdout read line by line on a thread (for runs a test stops).
fn spawn_with_lines(
    args: &[&str],
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<std::io::Result<String>>,
) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ferrite");
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// SIGTERM to a running `ferrite`: it must stop cleanly (status 0) and say why.
fn sigterm_stops_cleanly(child: std::process::Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill only sends a signal to our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let o = child.wait_with_output().expect("waiting for ferrite");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stderr(&o).contains("terminating on signal 15"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn reset_reboots_until_stopped_by_sigterm() {
    use std::time::Duration;

    if let Some(why) = kvm_unavailable() {
        eprintln!("SKIP: reset_reboots_until_stopped_by_sigterm: {why}");
        return;
    }
    let reset = TempFile::new("reboot", &reset_kernel());
    let (mut child, rx) = spawn_with_lines(&["-kernel", reset.path(), "-accel", "kvm", "-m", "64"]);
    for boot in 0..3 {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(line)) => assert_eq!(line, "boot"),
            other => {
                let _ = child.kill();
                panic!("boot {boot}: no line from the guest: {other:?}");
            }
        }
    }
    sigterm_stops_cleanly(child);
}

#[test]
fn debugcon_writes_port_e9_to_its_backend() {
    let kernel = TempFile::new("debugcon", &testsuite::kernels::debugcon());
    let log = TempFile::new("debugcon.log", b"");
    let debugcon = format!("file:{}", log.path());
    let o = ferrite_tcg(&[
        "-kernel",
        kernel.path(),
        "-nographic",
        "-debugcon",
        &debugcon,
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(stdout(&o), "debugcon: written\n");
    let written = std::fs::read_to_string(log.path()).expect("reading the debugcon log");
    assert_eq!(written, "hello on port E9\n");

    // Without -debugcon nothing answers at 0xE9: the kernel's detection fails.
    let o = ferrite_tcg(&["-kernel", kernel.path(), "-nographic"]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    assert!(stdout(&o).contains("does not read back"), "{o:?}");
}

#[test]
fn chardevs_feed_debugcon_devices_and_serial_ports() {
    let kernel = TempFile::new("debugcon-chardev", &testsuite::kernels::debugcon());
    let dlog = TempFile::new("debugcon-chardev.log", b"");
    let slog = TempFile::new("serial-chardev.log", b"");
    let o = ferrite_tcg(&[
        "-kernel",
        kernel.path(),
        "-display",
        "none",
        "-chardev",
        &format!("file,id=dbg,path={}", dlog.path()),
        "-chardev",
        &format!("file,id=com1,path={}", slog.path()),
        "-device",
        "isa-debugcon,iobase=0xe9,chardev=dbg",
        "-serial",
        "chardev:com1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(
        std::fs::read_to_string(dlog.path()).unwrap(),
        "hello on port E9\n"
    );
    assert_eq!(
        std::fs::read_to_string(slog.path()).unwrap(),
        "debugcon: written\n"
    );

    let o = ferrite(&["-kernel", kernel.path(), "-serial", "chardev:nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("id=nope"), "{}", stderr(&o));
}

#[test]
fn bios_boots_a_firmware_image_and_refuses_a_kernel_beside_it() {
    let rom = TempFile::new("rom-post.bin", &testsuite::kernels::rom_post());
    let o = ferrite_tcg(&["-bios", rom.path(), "-nographic", "-debugcon", "null"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(stdout(&o), "rom: running from the reset vector\n");
    let o = ferrite(&["-bios", rom.path(), "-kernel", rom.path()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("-bios with -kernel"), "{}", stderr(&o));
}

/// Talks to the echo kernel over a socket-backed COM1: what the guest prints arrives, what
/// the peer sends reaches the guest.
fn echo_over(name: &str, serial: &[&str], connect: impl FnOnce() -> Box<dyn ReadWrite>) {
    let kernel = TempFile::new(name, &testsuite::kernels::serial_echo());
    let mut args = vec![
        "-accel",
        "tcg",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-no-reboot",
        "-kernel",
        kernel.path(),
    ];
    args.extend_from_slice(serial);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peer = connect();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"echo ready\n") {
        let n = peer.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    peer.write_all(b"hi there q").unwrap();
    while !got.ends_with(b"echo done\n") {
        let n = peer.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"echo ready\nhi there \necho done\n");
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// Connects to `connect` until it answers (the server starts listening a moment later).
fn retry<T>(mut connect: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match connect() {
            Ok(s) => return s,
            Err(e) if std::time::Instant::now() > deadline => panic!("cannot connect: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

#[test]
fn serial_over_a_unix_socket_server() {
    let path = std::env::temp_dir().join(format!("ferrite-cli-{}.sock", std::process::id()));
    let chardev = format!("socket,id=com1,path={},server=on,wait=on", path.display());
    echo_over(
        "echo-unix",
        &["-chardev", &chardev, "-serial", "chardev:com1"],
        || Box::new(retry(|| std::os::unix::net::UnixStream::connect(&path))),
    );
    assert!(!path.exists(), "the socket file is removed at exit");
}

#[test]
fn serial_over_tcp_as_qemu_spells_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let serial = format!("tcp:127.0.0.1:{port},server");
    echo_over("echo-tcp", &["-serial", &serial], || {
        Box::new(retry(|| std::net::TcpStream::connect(("127.0.0.1", port))))
    });
}

#[test]
fn serial_as_a_socket_client() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let chardev = format!("socket,id=c,host=127.0.0.1,port={port}");
    echo_over(
        "echo-client",
        &["-chardev", &chardev, "-serial", "chardev:c"],
        move || Box::new(listener.accept().unwrap().0),
    );
    // Nobody listening: a clear error naming the address.
    let out = ferrite_tcg(&[
        "-chardev",
        &format!("socket,id=c,port={port}"),
        "-serial",
        "chardev:c",
        "-kernel",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("tcp::{port}: cannot connect")),
        "{}",
        stderr(&out)
    );
}

/// The command line kvm-unit-tests' x86 runner builds, unchanged: accepted, the test devices
/// present, the verdict in the exit status.
#[test]
fn a_kvm_unit_tests_command_line_runs_unchanged() {
    let kernel = TempFile::new("kut-pci", &testsuite::kernels::pci_testdev());
    let out = ferrite(&[
        "-nodefaults",
        "-device",
        "pc-testdev",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x4",
        "-vnc",
        "none",
        "-serial",
        "stdio",
        "-device",
        "pci-testdev",
        "-machine",
        "accel=tcg",
        "-kernel",
        kernel.path(),
        "-smp",
        "1",
        "-m",
        "64",
        "-no-user-config",
        "-name",
        "pci",
        "-net",
        "none",
        "-vga",
        "none",
        "-append",
        "",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("pci-testdev: BAR sizing, MMIO and port tests: ok"));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // What has no meaning yet is refused by name.
    for (args, says) in [
        (&["-vnc", ":0"][..], "-vnc :0"),
        (&["-net", "nic"][..], "networking is not supported yet"),
        (
            &["-drive", "file=disk.img"][..],
            "disks are not supported yet",
        ),
    ] {
        let mut all = vec!["-kernel", kernel.path()];
        all.extend_from_slice(args);
        let out = ferrite(&all);
        assert_ne!(out.status.code(), Some(0));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

/// The loop-count line of the pit-timing kernel.
fn timing_line(o: &Output) -> String {
    stdout(o)
        .lines()
        .find(|l| l.starts_with("pit-timing: loop iterations"))
        .unwrap_or_else(|| panic!("no timing line: {o:?}"))
        .to_string()
}

#[test]
fn icount_makes_two_runs_see_the_same_time() {
    let kernel = TempFile::new("pit-timing", &testsuite::kernels::pit_timing());
    let run = |icount: &str| {
        let o = ferrite_tcg(&["-icount", icount, "-kernel", kernel.path(), "-m", "64"]);
        assert_eq!(o.status.code(), Some(1), "-icount {icount}: {o:?}");
        assert!(stdout(&o).contains("pit timing: ok"), "{o:?}");
        o
    };
    let a = run("shift=2");
    let b = run("shift=2");
    assert_eq!(
        stdout(&a),
        stdout(&b),
        "two -icount runs printed different output"
    );
    // 2^2 ns per instruction: three 1 ms ticks are 750,000 instructions of about three per
    // loop iteration, and the TSC counts the same 3 ms.
    let line = timing_line(&a);
    let hex = |s: &str| u32::from_str_radix(s, 16).unwrap();
    let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let iterations = hex(words[words.len() - 4]);
    let tsc = hex(words[words.len() - 1]);
    assert!(
        (200_000..=300_000).contains(&iterations),
        "iterations {iterations} in {line}"
    );
    assert!(
        (2_900_000..=3_100_000).contains(&tsc),
        "TSC {tsc} in {line}"
    );
    // A different shift is a different (but again repeatable) machine speed.
    assert_ne!(timing_line(&run("3")), line);
}

#[test]
fn icount_refuses_what_is_not_deterministic() {
    let kernel = TempFile::new("icount-bad", &testsuite::kernels::hello32());
    for (spec, says) in [
        ("shift=auto", "not deterministic"),
        ("shift=11", "0 to 10"),
        ("rr=record", "record/replay"),
        ("sleep=on", "no shift given"),
    ] {
        let o = ferrite_tcg(&["-icount", spec, "-kernel", kernel.path()]);
        assert_eq!(o.status.code(), Some(1), "{spec}: {o:?}");
        assert!(stderr(&o).contains(says), "{spec}: {}", stderr(&o));
        assert!(stderr(&o).contains("-icount"), "{spec}: {}", stderr(&o));
    }
    // vCPU threads interleave differently each run.
    let o = ferrite_tcg(&["-icount", "1", "-smp", "2", "-kernel", kernel.path()]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("-icount with -smp 2"), "{}", stderr(&o));
    match kvm_unavailable() {
        Some(why) => println!("SKIP (KVM part): {why}"),
        None => {
            let o = ferrite(&["-icount", "1", "-accel", "kvm", "-kernel", kernel.path()]);
            assert_ne!(o.status.code(), Some(0), "{o:?}");
            assert!(stderr(&o).contains("-icount"), "{}", stderr(&o));
        }
    }
}

#[test]
fn an_interrupt_flood_keeps_the_software_cpu_running_and_sigterm_stops_it() {
    use std::time::Duration;

    let kernel = TempFile::new("irq-flood", &testsuite::kernels::interrupt_flood());
    let (mut child, rx) =
        spawn_with_lines(&["-kernel", kernel.path(), "-accel", "tcg", "-m", "64"]);
    let mut lines = Vec::new();
    while lines
        .iter()
        .filter(|l: &&String| l.as_str() == "alive")
        .count()
        < 3
    {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(line)) => lines.push(line),
            other => {
                let _ = child.kill();
                panic!("the flooded guest stopped making progress: {lines:?} {other:?}");
            }
        }
    }
    assert_eq!(lines[0], "interrupt flood on");
    sigterm_stops_cleanly(child);
}
