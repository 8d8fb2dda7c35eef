//! What `helperctl` does for each command. It only talks to the daemon (DESIGN.md §3).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use helperd_wire::client::{self, ClientError};
use helperd_wire::paths::Paths;
use helperd_wire::wire::{Envelope, Reply, Request, Response, StatusReport};

use crate::cli::{Cli, Command, DaemonAction, StoreAction};
use crate::tty;

/// Runs one command; the result is the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let paths = Paths::from_env()?;
    match cli.command {
        Command::Status { json } => status(&paths, json),
        Command::Daemon { action } => match action {
            DaemonAction::Start => start(&paths).map(|()| 0),
            DaemonAction::Stop => stop(&paths).map(|()| 0),
            DaemonAction::Restart => stop(&paths).and_then(|()| start(&paths)).map(|()| 0),
        },
        Command::Unlock => {
            let passphrase = tty::read_secret("helperd store passphrase: ")?;
            let request = Request::Unlock {
                passphrase: passphrase.expose().to_string(),
            };
            expect_done(send_starting(&paths, request)?)?;
            println!("store unlocked");
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "helperctl", &mut std::io::stdout());
            Ok(0)
        }
        Command::Store {
            action: StoreAction::SetPassphrase,
        } => {
            let first = tty::read_secret("new passphrase: ")?;
            if first.is_empty() {
                bail!("an empty passphrase protects nothing; nothing was changed");
            }
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                let again = tty::read_secret("repeat it: ")?;
                if again != first {
                    bail!("the passphrases differ; nothing was changed");
                }
            }
            let request = Request::SetPassphrase {
                passphrase: first.expose().to_string(),
            };
            expect_done(send_starting(&paths, request)?)?;
            println!("the file store is now protected by your passphrase; after each daemon start run `helperctl unlock`");
            Ok(0)
        }
    }
}

fn send(paths: &Paths, request: Request) -> Result<Response, ClientError> {
    client::send(&paths.socket, &Envelope::new(request))
}

/// Sends a request, starting the daemon first when none is listening.
fn send_starting(paths: &Paths, request: Request) -> anyhow::Result<Response> {
    match send(paths, request.clone()) {
        Err(ClientError::NotRunning(_)) => {
            start(paths)?;
            Ok(send(paths, request)?)
        }
        other => Ok(other?),
    }
}

fn expect_done(response: Response) -> anyhow::Result<()> {
    match response.reply {
        Reply::Done => Ok(()),
        Reply::Error { message, .. } => bail!("{message}"),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

fn daemon_executable() -> std::path::PathBuf {
    let me = std::env::current_exe().ok();
    client::daemon_executable(me.as_deref())
}

fn start(paths: &Paths) -> anyhow::Result<()> {
    match send(paths, Request::Status) {
        Ok(_) => {
            eprintln!("helperd is already running");
            return Ok(());
        }
        Err(ClientError::NotRunning(_)) => {}
        Err(e) => return Err(e.into()),
    }
    client::start_daemon(&daemon_executable()).map_err(anyhow::Error::msg)?;
    eprintln!("helperd started ({})", paths.socket.display());
    Ok(())
}

fn stop(paths: &Paths) -> anyhow::Result<()> {
    match send(paths, Request::Shutdown) {
        Err(ClientError::NotRunning(_)) => {
            eprintln!("helperd is not running");
            return Ok(());
        }
        other => {
            other.context("failed to ask the daemon to stop")?;
        }
    }
    wait_gone(&paths.socket, Duration::from_secs(5))?;
    eprintln!("helperd stopped");
    Ok(())
}

/// Waits until nobody answers on the socket any more.
fn wait_gone(socket: &Path, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if matches!(
            client::send(socket, &Envelope::new(Request::Status)),
            Err(ClientError::NotRunning(_))
        ) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "the daemon on {} did not stop within {timeout:?}",
        socket.display()
    )
}

fn status(paths: &Paths, json: bool) -> anyhow::Result<u8> {
    let report = match send(paths, Request::Status) {
        Err(ClientError::NotRunning(_)) => None,
        Err(e) => return Err(e.into()),
        Ok(Response {
            reply: Reply::Status { status },
            ..
        }) => Some(status),
        Ok(Response {
            reply: Reply::Error { message, .. },
            ..
        }) => bail!("{message}"),
        Ok(other) => bail!("unexpected answer from the daemon: {:?}", other.reply),
    };
    if json {
        let value = serde_json::json!({
            "running": report.is_some(),
            "socket": paths.socket.display().to_string(),
            "daemon": report,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render_status(&paths.socket, report.as_ref()));
    }
    Ok(0)
}

fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// The human form of `status`.
pub fn render_status(socket: &Path, report: Option<&StatusReport>) -> String {
    let mut out = String::new();
    let mut row = |k: &str, v: String| out.push_str(&format!("{k:<18}{v}\n"));
    match report {
        None => {
            row("daemon", "not running (it starts with the next git request, or run `helperctl daemon start`)".into());
            row("socket", socket.display().to_string());
        }
        Some(r) => {
            row(
                "daemon",
                format!(
                    "running (pid {}, version {}, protocol {}, up {})",
                    r.pid,
                    r.version,
                    r.protocol,
                    human_duration(r.uptime_secs)
                ),
            );
            row("socket", r.socket.clone());
            row(
                "store",
                format!("{} ({})", r.store.kind, r.store.protection),
            );
            let state = match &r.store.problem {
                Some(p) => format!("{}: {p}", r.store.state),
                None => r.store.state.clone(),
            };
            row("store state", state);
            if let Some(n) = r.store.plain_credentials {
                row("plain credentials", n.to_string());
            }
        }
    }
    out
}
