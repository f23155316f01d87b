//! Differential test of the interpreter against the host CPU.
//!
//! Usage: ferrite-difftest [--cases N] [--seed S] [--class NAME]... [--mode 64|32|both]
//!                         [--no-shrink] [--translator]
//!   --translator  run the cases through the translator (the interpreter runs what it
//!                 declines) instead of the interpreter alone
//! Runs N random cases (1–6 instructions each) per class and mode; prints a report per
//! class, the first mismatches of each (shrunk), and exits non-zero on any mismatch.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn main() {
    use testsuite::difftest::gen::CLASSES;
    use testsuite::difftest::runner::{run_class, Differ};

    let mut cases = 1000u64;
    let mut seed = 1u64;
    let mut classes: Vec<String> = Vec::new();
    let mut modes = vec![false, true];
    let mut shrink = true;
    let mut translator = false;
    let mut args = std::env::args().skip(1);
    let fail = |msg: String| -> ! {
        eprintln!("ferrite-difftest: {msg}");
        std::process::exit(2);
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| fail(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--cases" => {
                let v = value("--cases");
                cases = v
                    .parse()
                    .unwrap_or_else(|_| fail(format!("bad --cases '{v}'")));
            }
            "--seed" => {
                let v = value("--seed");
                seed = v
                    .parse()
                    .unwrap_or_else(|_| fail(format!("bad --seed '{v}'")));
            }
            "--class" => classes.push(value("--class")),
            "--mode" => {
                modes = match value("--mode").as_str() {
                    "64" => vec![false],
                    "32" => vec![true],
                    "both" => vec![false, true],
                    other => fail(format!("bad --mode '{other}' (64, 32 or both)")),
                }
            }
            "--no-shrink" => shrink = false,
            "--translator" => translator = true,
            "-h" | "--help" => {
                println!("usage: ferrite-difftest [--cases N] [--seed S] [--class NAME]... [--mode 64|32|both] [--no-shrink] [--translator]");
                println!(
                    "classes: {}",
                    CLASSES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                return;
            }
            other => fail(format!("unknown argument '{other}'")),
        }
    }
    if classes.is_empty() {
        classes = CLASSES.iter().map(|(n, _)| n.to_string()).collect();
    }
    for c in &classes {
        if !CLASSES.iter().any(|(n, _)| n == c) {
            fail(format!("unknown class '{c}'"));
        }
    }
    let mut differ =
        Differ::new().unwrap_or_else(|e| fail(format!("cannot start the host oracle: {e}")));
    differ.soft.translate = translator;
    let start = std::time::Instant::now();
    let (mut total_cases, mut total_instr, mut total_bad, mut total_undef) = (0, 0, 0, 0);
    let mut total_ulp = 0;
    println!(
        "{:<9} {:>4} {:>9} {:>12} {:>10} {:>9} {:>10}",
        "class", "mode", "cases", "instructions", "mismatches", "undefined", "within-ulp"
    );
    let mut examples = Vec::new();
    for class in &classes {
        for &compat in &modes {
            let r = run_class(&mut differ, class, compat, cases, seed, shrink)
                .unwrap_or_else(|e| fail(format!("host oracle failed: {e}")));
            println!(
                "{:<9} {:>4} {:>9} {:>12} {:>10} {:>9} {:>10}",
                r.class,
                if compat { 32 } else { 64 },
                r.cases,
                r.instructions,
                r.mismatches,
                r.undefined,
                r.within_ulp
            );
            total_ulp += r.within_ulp;
            total_undef += r.undefined;
            total_cases += r.cases;
            total_instr += r.instructions;
            total_bad += r.mismatches;
            examples.extend(r.examples.into_iter().map(|e| format!("[{class}]\n{e}")));
        }
    }
    println!(
        "total: {total_cases} cases, {total_instr} instructions, {total_bad} mismatches in {:.1} s (seed {seed}); {total_undef} cases left out (they depended on architecturally undefined results); {total_ulp} transcendental results within one ulp of the host's (C1 then not compared)",
        start.elapsed().as_secs_f64()
    );
    if translator {
        println!(
            "translator: {} of the {total_instr} instructions ran in translated blocks",
            differ.soft.translated.get()
        );
    }
    for e in &examples {
        println!("\n{e}");
    }
    if total_bad > 0 {
        std::process::exit(1);
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn main() {
    eprintln!("ferrite-difftest needs an x86-64 Linux host: the host CPU is the oracle");
    std::process::exit(2);
}
