//! Writes every kernel of the kit's catalog (mode kernels and the others) to a directory, for running them by hand or with
//! other emulators: `write-kernels DIR`.

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: write-kernels DIR");
        std::process::exit(2);
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {dir}: {e}");
        std::process::exit(1);
    }
    let all = testsuite::catalog::mode_kernels()
        .into_iter()
        .chain(testsuite::catalog::other_kernels());
    for case in all {
        let path = std::path::Path::new(&dir).join(format!("{}.bin", case.name));
        if let Err(e) = std::fs::write(&path, (case.build)()) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("{}\t{}", path.display(), case.expect);
    }
}
