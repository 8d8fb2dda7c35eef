//! `helperctl`'s command line, as clap definitions (also the source of its man page and
//! shell completions).

use clap::{Parser, Subcommand};

/// Control the helperd git credential daemon.
///
/// helperctl talks to the daemon over its socket; it never opens the secret store itself.
/// Environment: HELPERD_HOME (everything under one folder), HELPERD_SOCKET (socket path).
#[derive(Debug, Parser)]
#[command(name = "helperctl", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon, its socket and the secret store (never a secret).
    Status {
        /// Print stable JSON instead of a table (fields documented in README.md).
        #[arg(long)]
        json: bool,
    },
    /// Start, stop or restart the daemon.
    Daemon {
        #[command(subcommand)]
        action: DaemonAction,
    },
    /// Unlock a passphrase-protected file store (passphrase from the terminal, hidden,
    /// or from stdin when it is not a terminal).
    Unlock,
    /// Manage the secret store.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum DaemonAction {
    /// Start the daemon in the background (nothing to do when it already runs).
    Start,
    /// Ask the daemon to close its socket and exit.
    Stop,
    /// Stop, then start the daemon.
    Restart,
}

#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Protect the encrypted file store with a passphrase instead of the key file
    /// (argon2id); afterwards every daemon start needs `helperctl unlock`.
    SetPassphrase,
}
