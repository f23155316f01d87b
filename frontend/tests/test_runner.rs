//! `ferrite test` as a CI job runs it: kit kernels that pass, skip, fail, triple-fault, reset,
//! hang and flood, on the software CPU, with the verdicts, the closing line, the logs and the
//! JUnit report checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testsuite::kernels;

/// A scratch directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ferrite-runner-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("suite")).unwrap();
        Scratch(dir)
    }

    fn suite(&self) -> PathBuf {
        self.0.join("suite")
    }

    fn add(&self, file: &str, image: &[u8]) {
        std::fs::write(self.suite().join(file), image).unwrap();
    }

    fn path(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const MACHINE: &[&str] = &[
    "-accel",
    "tcg",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=4",
];

fn ferrite_test(s: &Scratch, args: &[&str]) -> Output {
    let logs = s.path("logs");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrite"));
    cmd.arg("test")
        .args(["--logs", &logs])
        .args(args)
        .arg("--")
        .args(MACHINE);
    cmd.output().expect("running ferrite test")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The one line of stdout that starts with `label name `.
fn line_for<'a>(out: &'a str, label: &str, name: &str) -> &'a str {
    let prefix = format!("{label} {name} (");
    out.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no '{prefix}…' line in:\n{out}"))
}

/// The attributes of the first element `<tag …>` in `xml`.
fn attr(xml: &str, tag: &str, name: &str) -> String {
    let start = xml
        .find(&format!("<{tag} "))
        .unwrap_or_else(|| panic!("no <{tag}>"));
    let elem = &xml[start..start + xml[start..].find('>').unwrap()];
    let key = format!(" {name}=\"");
    let v = &elem[elem
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {elem}"))
        + key.len()..];
    v[..v.find('"').unwrap()].to_owned()
}

/// The `<testcase>` element named `name`, up to its end tag.
fn case<'a>(xml: &'a str, name: &str) -> &'a str {
    let start = xml
        .find(&format!("<testcase name=\"{name}\""))
        .unwrap_or_else(|| panic!("no testcase {name} in the report"));
    let end = start + xml[start..].find("</testcase>").unwrap();
    &xml[start..end]
}

#[test]
fn a_mixed_suite_gets_its_verdicts_logs_and_junit_report() {
    let s = Scratch::new("mixed");
    s.add("pass.bin", &kernels::exit_with(0));
    s.add("skip.bin", &kernels::exit_with(77));
    s.add("fail.bin", &kernels::exit_with(5));
    s.add("triple.bin", &kernels::triple_fault());
    s.add("reset.bin", &kernels::reset_without_result());
    s.add("hang.bin", &kernels::ticker());
    s.add("rom.rom", &kernels::rom_post());
    std::fs::write(s.suite().join("notes.txt"), "not a test").unwrap();
    let junit = s.path("report.xml");
    let suite = s.suite().display().to_string();
    let out = ferrite_test(
        &s,
        &[&suite, "-j", "3", "--timeout", "2", "--junit", &junit],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.ends_with("2 passed, 4 failed, 1 skipped\n"),
        "{stdout}"
    );
    line_for(&stdout, "PASS", "pass");
    line_for(&stdout, "PASS", "rom");
    assert!(line_for(&stdout, "SKIP", "skip").ends_with("): this kernel always skips"));
    assert!(line_for(&stdout, "FAIL", "fail").contains("isa-debug-exit 0x5 (exit status 11)"));
    assert!(line_for(&stdout, "FAIL", "triple").contains("triple-faulted"));
    assert!(line_for(&stdout, "FAIL", "reset").contains("without writing a result"));
    assert!(line_for(&stdout, "FAIL", "hang").contains("timed out after 2 s"));
    // Each failure says how to rerun it; the command works on its own.
    let rerun = stdout
        .lines()
        .skip_while(|l| !l.starts_with("FAIL fail "))
        .find_map(|l| l.trim().strip_prefix("rerun: "))
        .expect("a rerun line");
    let rerun_out = Command::new("sh").args(["-c", rerun]).output().unwrap();
    assert_eq!(rerun_out.status.code(), Some(11), "{rerun}");
    assert!(text(&rerun_out.stdout).contains("exiting with 5"));
    // Logs: the serial console of each test.
    let log = std::fs::read_to_string(Path::new(&s.path("logs")).join("rom.log")).unwrap();
    assert!(
        log.contains("POST 01") || log.contains("rom: running from the reset vector"),
        "{log}"
    );
    let log = std::fs::read_to_string(Path::new(&s.path("logs")).join("hang.log")).unwrap();
    assert!(log.starts_with(".."), "{log}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(attr(&xml, "testsuite", "tests"), "7");
    assert_eq!(attr(&xml, "testsuite", "failures"), "3");
    assert_eq!(attr(&xml, "testsuite", "errors"), "1"); // the timeout
    assert_eq!(attr(&xml, "testsuite", "skipped"), "1");
    assert!(!case(&xml, "pass").contains("<failure"));
    assert!(case(&xml, "skip").contains("<skipped message="));
    assert!(case(&xml, "fail").contains("<failure message=\"isa-debug-exit 0x5"));
    assert!(case(&xml, "fail").contains("<system-out>exiting with 5\n</system-out>"));
    assert!(case(&xml, "hang").contains("<error message=\"timed out"));
    assert!(case(&xml, "triple").contains("<failure"));
    // The runner left no test behind.
    let ps = Command::new("pgrep").args(["-f", &suite]).output();
    if let Ok(ps) = ps {
        assert!(
            text(&ps.stdout).trim().is_empty(),
            "left running: {}",
            text(&ps.stdout)
        );
    }
}

#[test]
fn conventions_list_files_and_shards() {
    let s = Scratch::new("list");
    s.add("pass.bin", &kernels::exit_with(0));
    s.add("triple.bin", &kernels::triple_fault());
    s.add("three.bin", &kernels::exit_with(3));
    let list = s.suite().join("suite.list");
    std::fs::write(
        &list,
        "# a suite\npass.bin\nname=pass-smp2 pass.bin -smp 2\ntriple.bin\nthree.bin -m 64\n",
    )
    .unwrap();
    let list = list.display().to_string();
    // Another convention: 3 passes, a triple fault passes too.
    let out = ferrite_test(
        &s,
        &[
            "--list",
            &list,
            "--pass-code",
            "0,3",
            "--on-triple-fault",
            "pass",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.ends_with("4 passed, 0 failed, 0 skipped\n"),
        "{stdout}"
    );

    // Shards: disjoint, and together the whole suite.
    let mut names = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = ferrite_test(&s, &["--list", &list, "--shard", &shard, "--dry-run"]);
        assert_eq!(out.status.code(), Some(0));
        names.extend(
            text(&out.stdout)
                .lines()
                .map(|l| l.split('\t').next().unwrap().to_owned()),
        );
    }
    names.sort();
    assert_eq!(names, ["pass", "pass-smp2", "three", "triple"]);
}

#[test]
fn a_flooding_test_is_cut_off() {
    let s = Scratch::new("flood");
    s.add("flood.bin", &kernels::flood());
    let suite = s.suite().display().to_string();
    let out = ferrite_test(&s, &[&suite, "--log-limit", "2K", "--timeout", "60"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        line_for(&stdout, "FAIL", "flood").contains("--log-limit of 2048 bytes"),
        "{stdout}"
    );
    let log = std::fs::metadata(Path::new(&s.path("logs")).join("flood.log")).unwrap();
    assert!(log.len() < 1 << 20, "the log grew to {} bytes", log.len());
}

#[test]
fn bad_suites_are_named() {
    let s = Scratch::new("bad");
    s.add("k.bin", &kernels::exit_with(0));
    let list = s.suite().join("bad.list");
    std::fs::write(&list, "k.bin\nk.bin -append 'unclosed\n").unwrap();
    let list = list.display().to_string();
    let out = ferrite_test(&s, &["--list", &list]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("bad.list:2: a ' quote is not closed"), "{err}");

    let out = ferrite_test(&s, &[&s.path("nothing-here")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no such file or directory"));

    let out = ferrite_test(&s, &[&s.suite().display().to_string(), "--shard", "4/3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--shard 4/3"));
}

#[test]
fn sigterm_stops_the_runner_and_its_tests() {
    let s = Scratch::new("sigterm");
    s.add("hang1.bin", &kernels::ticker());
    s.add("hang2.bin", &kernels::ticker());
    let suite = s.suite().display().to_string();
    let logs = s.path("logs");
    let child = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args([
            "test",
            "--logs",
            &logs,
            &suite,
            "-j",
            "2",
            "--timeout",
            "600",
            "--",
        ])
        .args(MACHINE)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both tests are running once their logs have grown.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let grown = |f: &str| std::fs::metadata(Path::new(&logs).join(f)).is_ok_and(|m| m.len() > 0);
    while !(grown("hang1.log") && grown("hang2.log")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the tests did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(128 + 15));
    assert!(text(&out.stdout).ends_with("0 passed, 0 failed, 0 skipped\n"));
    let ps = Command::new("pgrep").args(["-f", &suite]).output();
    if let Ok(ps) = ps {
        assert!(
            text(&ps.stdout).trim().is_empty(),
            "left running: {}",
            text(&ps.stdout)
        );
    }
}
