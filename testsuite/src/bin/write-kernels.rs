//! Writes every kernel of the kit's catalog (mode kernels and the others) to a directory, for
//! running them by hand, with `ferrite test` or with other emulators: `write-kernels DIR`.
//!
//! Kernels are written as NAME.bin (Multiboot), firmware images as NAME.rom, and DIR/suite.list
//! lists them all with the options each needs, for `ferrite test --list DIR/suite.list -- -device
//! isa-debug-exit,iobase=0xf4,iosize=0x04`. Standard output has one line per file with what a
//! passing run prints.

use std::fmt::Write;

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: write-kernels DIR");
        std::process::exit(2);
    };
    let fail = |what: String| -> ! {
        eprintln!("{what}");
        std::process::exit(1);
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        fail(format!("cannot create {dir}: {e}"));
    }
    let all = testsuite::catalog::mode_kernels()
        .into_iter()
        .chain(testsuite::catalog::other_kernels());
    let mut list = String::from(
        "# The kit's kernels for `ferrite test`; each needs isa-debug-exit at 0xf4 (iosize 4).\n",
    );
    for case in all {
        let (options, rom) = testsuite::catalog::run_options(case.name);
        let file = format!("{}.{}", case.name, if rom { "rom" } else { "bin" });
        let path = std::path::Path::new(&dir).join(&file);
        if let Err(e) = std::fs::write(&path, (case.build)()) {
            fail(format!("cannot write {}: {e}", path.display()));
        }
        let _ = writeln!(list, "{}", format!("{file} {options}").trim_end());
        println!("{}\t{}", path.display(), case.expect);
    }
    let path = std::path::Path::new(&dir).join("suite.list");
    if let Err(e) = std::fs::write(&path, list) {
        fail(format!("cannot write {}: {e}", path.display()));
    }
}
