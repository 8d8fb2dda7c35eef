//! `helperctl`: the control CLI of the helperd daemon.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = helperd::cli::Cli::parse();
    match helperd::ctl::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("helperctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
