//! Which tests a `ferrite test` run has: files named on the command line (a directory, a glob
//! or a file) and list files, then the shard this machine runs.
//!
//! A list file has one test per line: `[name=NAME] [timeout=SECONDS] [boot=kernel|bios] PATH
//! [OPTIONS…]`, words split as a shell splits them, `#` starting a comment line. PATH is
//! relative to the list file; OPTIONS are `ferrite run` (or QEMU) options for that test alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::words;

/// One test: a kernel or ROM and how to boot it.
#[derive(Clone, Debug, PartialEq)]
pub struct Test {
    /// Unique within the run; names the log file and the JUnit test case.
    pub name: String,
    pub path: PathBuf,
    /// Boot it as a firmware image (`-bios`) instead of a kernel (`-kernel`).
    pub rom: bool,
    /// Options for this test alone, after the run's common ones.
    pub flags: Vec<String>,
    /// Overrides the run's `--timeout`.
    pub timeout: Option<Duration>,
    /// Where the test came from, for messages: a path, or `FILE:LINE` of a list file.
    pub origin: String,
}

/// Files a directory holds that are not tests (logs, reports, lists and notes beside them).
const NOT_TESTS: &[&str] = &[
    "log", "exit", "xml", "list", "txt", "md", "json", "cfg", "sh", "py",
];

/// Files with this extension boot with `-bios`.
const ROM_EXTENSION: &str = "rom";

fn name_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn file_test(path: PathBuf, force_rom: bool) -> Test {
    let rom = force_rom || path.extension().is_some_and(|e| e == ROM_EXTENSION);
    Test {
        name: name_of(&path),
        origin: path.display().to_string(),
        path,
        rom,
        flags: Vec::new(),
        timeout: None,
    }
}

fn is_candidate(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
    let excluded = path
        .extension()
        .is_some_and(|e| NOT_TESTS.contains(&e.to_string_lossy().as_ref()));
    !hidden && !excluded && path.is_file()
}

/// The files in `dir`, sorted, that [`is_candidate`] accepts and `keep` matches.
fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep(&name) && is_candidate(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Shell-style matching of `*` (any run of characters) and `?` (one character).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut backtrack = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                backtrack = Some((pi, ni));
                pi += 1;
            }
            Some('?') => {
                pi += 1;
                ni += 1;
            }
            Some(&c) if c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match backtrack {
                Some((bp, bn)) => {
                    pi = bp + 1;
                    ni = bn + 1;
                    backtrack = Some((bp, bn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The tests one command-line argument names: a directory, a glob or a file.
fn from_argument(arg: &str, force_rom: bool) -> Result<Vec<Test>, String> {
    let path = Path::new(arg);
    let is_glob = |s: &str| s.contains(['*', '?']);
    if is_glob(arg) {
        let pattern = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = match path.parent() {
            Some(d) if d.as_os_str().is_empty() => Path::new("."),
            Some(d) => d,
            None => Path::new("."),
        };
        if is_glob(&dir.to_string_lossy()) {
            return Err(format!(
                "{arg}: wildcards work in the file name only, not in directories"
            ));
        }
        let files = files_in(dir, |name| wildcard_match(&pattern, name))?;
        if files.is_empty() {
            return Err(format!("{arg}: no file matches"));
        }
        return Ok(files.into_iter().map(|p| file_test(p, force_rom)).collect());
    }
    if path.is_dir() {
        let files = files_in(path, |_| true)?;
        if files.is_empty() {
            return Err(format!("{arg}: the directory holds no test files"));
        }
        return Ok(files.into_iter().map(|p| file_test(p, force_rom)).collect());
    }
    if path.is_file() {
        return Ok(vec![file_test(path.to_owned(), force_rom)]);
    }
    Err(format!("{arg}: no such file or directory"))
}

/// Parses one list-file line (already known not to be blank or a comment).
fn from_line(line: &str, base: &Path, origin: String) -> Result<Test, String> {
    let words = words::split(line).map_err(|e| format!("{origin}: {e}"))?;
    let mut words = words.into_iter();
    let (mut name, mut timeout, mut boot) = (None, None, None);
    let path = loop {
        let Some(w) = words.next() else {
            return Err(format!("{origin}: no test file on the line"));
        };
        let Some((key, value)) = w.split_once('=') else {
            break w;
        };
        match key {
            "name" if !value.is_empty() => name = Some(value.to_owned()),
            "timeout" => {
                let secs = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .ok_or_else(|| {
                        format!("{origin}: timeout={value} is not a number of seconds")
                    })?;
                timeout = Some(Duration::from_secs_f64(secs));
            }
            "boot" if value == "kernel" || value == "bios" => boot = Some(value == "bios"),
            _ => {
                return Err(format!(
                    "{origin}: '{w}' is not a test setting (name=, timeout=, \
                     boot=kernel|bios); a file whose name has '=' can be written ./{w}"
                ))
            }
        }
    };
    let path = base.join(&path);
    if !path.is_file() {
        return Err(format!("{origin}: {}: no such file", path.display()));
    }
    let mut test = file_test(path, false);
    if let Some(rom) = boot {
        test.rom = rom;
    }
    if let Some(name) = name {
        test.name = name;
    }
    test.timeout = timeout;
    test.flags = words.collect();
    test.origin = origin;
    Ok(test)
}

/// The tests a list file names.
pub fn from_list(list: &Path) -> Result<Vec<Test>, String> {
    let text = std::fs::read_to_string(list)
        .map_err(|e| format!("cannot read the list file {}: {e}", list.display()))?;
    let base = list.parent().unwrap_or(Path::new("."));
    let mut tests = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        tests.push(from_line(
            line,
            base,
            format!("{}:{}", list.display(), i + 1),
        )?);
    }
    Ok(tests)
}

/// Every test the arguments and list files name, in order; names must be unique.
pub fn collect(args: &[String], lists: &[PathBuf], force_rom: bool) -> Result<Vec<Test>, String> {
    let mut tests = Vec::new();
    for a in args {
        tests.extend(from_argument(a, force_rom)?);
    }
    for l in lists {
        tests.extend(from_list(l)?);
    }
    // Names become log file names: they must differ after the mapping too.
    let mut seen: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    for t in &tests {
        if let Some((first, origin)) = seen.insert(log_stem(&t.name), (&t.name, &t.origin)) {
            return Err(if first == t.name {
                format!(
                    "two tests are named '{}' ({origin} and {}); name one with name=… in a \
                     list file",
                    t.name, t.origin
                )
            } else {
                format!(
                    "tests '{first}' ({origin}) and '{}' ({}) would share a log file; \
                     rename one with name=… in a list file",
                    t.name, t.origin
                )
            });
        }
    }
    Ok(tests)
}

/// A test's name as the stem of its log and exit-report files: characters other than
/// letters, digits and `-_.+` become `_`.
pub fn log_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `--shard K/N`: the K-th (from 1) of N parts of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl Shard {
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("--shard {s}: expected K/N with 1 <= K <= N, such as 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }

    /// This shard's tests: sorted by name and dealt out round-robin, so the N shards of the
    /// same suite are disjoint, together cover it, and differ in size by at most one.
    pub fn select(self, mut tests: Vec<Test>) -> Vec<Test> {
        tests.sort_by(|a, b| a.name.cmp(&b.name));
        tests
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.n == self.k - 1)
            .map(|(_, t)| t)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str, files: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrite-suite-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        dir
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.elf", "a.elf"));
        assert!(wildcard_match("a*b*c", "aXXbYc"));
        assert!(wildcard_match("t?st", "test"));
        assert!(!wildcard_match("*.elf", "a.elf.log"));
        assert!(!wildcard_match("t?st", "tst"));
        assert!(wildcard_match("*", ""));
    }

    #[test]
    fn directories_and_globs() {
        let dir = scratch(
            "dir",
            &["b.elf", "a.elf", "c.rom", "a.log", ".hidden", "run.sh"],
        );
        let d = dir.display().to_string();
        let all = collect(std::slice::from_ref(&d), &[], false).unwrap();
        let names: Vec<_> = all.iter().map(|t| (t.name.as_str(), t.rom)).collect();
        assert_eq!(names, [("a", false), ("b", false), ("c", true)]);
        let globbed = collect(&[format!("{d}/*.elf")], &[], true).unwrap();
        assert_eq!(globbed.len(), 2);
        assert!(globbed.iter().all(|t| t.rom));
        assert!(collect(&[format!("{d}/*.none")], &[], false)
            .unwrap_err()
            .contains("no file matches"));
        assert!(collect(&[format!("{d}/missing")], &[], false)
            .unwrap_err()
            .contains("no such file"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn list_files() {
        let dir = scratch("list", &["k.elf", "r.rom"]);
        let list = dir.join("suite.list");
        std::fs::write(
            &list,
            "# comment\n\nk.elf -smp 2\nname=k4 timeout=2.5 k.elf -smp 4 -append 'a b'\n\
             boot=kernel r.rom\n",
        )
        .unwrap();
        let tests = from_list(&list).unwrap();
        assert_eq!(tests.len(), 3);
        assert_eq!((tests[0].name.as_str(), tests[0].flags.len()), ("k", 2));
        assert_eq!(tests[1].name, "k4");
        assert_eq!(tests[1].timeout, Some(Duration::from_millis(2500)));
        assert_eq!(tests[1].flags, ["-smp", "4", "-append", "a b"]);
        assert_eq!(tests[1].origin, format!("{}:4", list.display()));
        assert!(!tests[2].rom);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn malformed_list_lines_are_named() {
        let dir = scratch("bad", &["k.elf"]);
        let list = dir.join("bad.list");
        for (text, want) in [
            ("k.elf\nk.elf 'open\n", ":2: a ' quote"),
            ("\n\nmissing.elf\n", ":3: "),
            (
                "colour=red k.elf\n",
                ":1: 'colour=red' is not a test setting",
            ),
            ("timeout=soon k.elf\n", ":1: timeout=soon"),
            ("name=x\n", ":1: no test file"),
        ] {
            std::fs::write(&list, text).unwrap();
            let e = from_list(&list).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        std::fs::write(&list, "k.elf\nk.elf -smp 2\n").unwrap();
        let e = collect(&[], std::slice::from_ref(&list), false).unwrap_err();
        assert!(e.contains("two tests are named 'k'"), "{e}");
        std::fs::write(&list, "name=a/b k.elf\nname=a_b k.elf\n").unwrap();
        let e = collect(&[], std::slice::from_ref(&list), false).unwrap_err();
        assert!(e.contains("would share a log file"), "{e}");
        assert_eq!(log_stem("apic.x86_64"), "apic.x86_64");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn shards_partition_the_suite() {
        let tests: Vec<Test> = (0..10)
            .map(|i| file_test(PathBuf::from(format!("t{i}.elf")), false))
            .collect();
        let mut seen = Vec::new();
        for k in 1..=3 {
            let part = Shard { k, n: 3 }.select(tests.clone());
            assert!((3..=4).contains(&part.len()));
            seen.extend(part.into_iter().map(|t| t.name));
        }
        seen.sort();
        assert_eq!(seen.len(), 10);
        seen.dedup();
        assert_eq!(seen.len(), 10);
        assert_eq!(Shard::parse("2/4"), Ok(Shard { k: 2, n: 4 }));
        for bad in ["0/4", "5/4", "1", "a/b", "1/0"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
