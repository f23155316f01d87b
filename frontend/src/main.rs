//! `ferrite`: runs an x86 guest; accepts QEMU's command line.

mod chardev;
mod cli;
mod device;
mod escape;
mod input;
mod qemu_args;
mod run;
mod serial;
mod session;
mod signals;
mod socket;
mod terminal;
mod testrun;
mod values;

use cli::{Action, CliError};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        terminal::restore();
        previous(info);
    }));
    // `exit` skips destructors, so everything (the terminal guard above all) is dropped
    // inside `ferrite` first.
    std::process::exit(ferrite());
}

/// Runs the command line; returns the process exit status.
fn ferrite() -> i32 {
    let opts = match cli::parse(std::env::args_os()) {
        Ok(Action::Print(text)) => {
            print!("{text}");
            return 0;
        }
        Ok(Action::Run(opts)) => opts,
        Ok(Action::Test(args)) => return testrun::run(&args),
        Err(CliError::Clap(e)) => {
            let _ = e.print();
            return e.exit_code();
        }
        Err(e) => {
            eprintln!("ferrite: {e}");
            return e.status();
        }
    };
    for w in &opts.warnings {
        eprintln!("ferrite: warning: {w}");
    }
    let result = run::run(&opts);
    if let Some(path) = &opts.exit_report {
        if let Err(e) = std::fs::write(path, run::report_line(&result) + "\n") {
            eprintln!("ferrite: writing the exit report {}: {e}", path.display());
        }
    }
    match result {
        Ok(ended) => ended.status,
        Err(e) => {
            eprintln!("ferrite: {e}");
            1
        }
    }
}
