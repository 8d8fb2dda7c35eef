//! `helperd`: the daemon. See `helperd --help` and man/helperd.8.

use std::process::ExitCode;

use clap::Parser;
use helperd::cli::DaemonArgs;

fn main() -> ExitCode {
    let args = DaemonArgs::parse();
    match helperd::daemon::launch(helperd::daemon::Options {
        foreground: args.foreground,
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("helperd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
