//! `helperd`: the daemon. Normally started by `git-credential-helperd` on demand, by
//! `helperctl daemon start`, or by the systemd user units in `contrib/`.

use std::process::ExitCode;

use clap::Parser;

/// The helperd daemon: answers git's credential requests for this user over a local socket.
///
/// Without --foreground it detaches, prints `ok` once it listens, and logs to
/// $XDG_STATE_HOME/helperd/helperd.log. Environment: HELPERD_HOME (everything under one
/// folder), HELPERD_SOCKET (socket path), HELPERD_STORE (file | secret-service | keychain |
/// wincred), HELPERD_LOG (log filter, e.g. helperd=debug).
#[derive(Debug, Parser)]
#[command(name = "helperd", version)]
struct Args {
    /// Stay in the foreground and log to stderr (for service managers and debugging).
    #[arg(long)]
    foreground: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
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
