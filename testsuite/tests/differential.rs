//! A bounded differential run in CI: every integer class, 64-bit and compatibility-mode code,
//! against the host CPU. `ferrite-difftest` runs the large campaigns.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn interpreter_matches_the_host_cpu() {
    use testsuite::difftest::gen::CLASSES;
    use testsuite::difftest::runner::{run_class, Differ};

    let mut differ = match Differ::new() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIP: cannot start the traced host process: {e}");
            return;
        }
    };
    let mut failures = Vec::new();
    let mut instructions = 0;
    for (class, _) in CLASSES {
        for compat in [false, true] {
            let r = run_class(&mut differ, class, compat, 400, 0x00fe_771e, true).expect("oracle");
            instructions += r.instructions;
            if r.mismatches > 0 {
                failures.push(format!(
                    "{class} ({}-bit): {} of {} cases differ\n{}",
                    if compat { 32 } else { 64 },
                    r.mismatches,
                    r.cases,
                    r.examples.join("\n")
                ));
            }
        }
    }
    eprintln!("differential: {instructions} instructions compared with the host CPU");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
#[test]
fn interpreter_matches_the_host_cpu() {
    eprintln!("SKIP: the differential harness needs an x86-64 Linux host as its oracle");
}
