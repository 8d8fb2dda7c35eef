//! What `helperctl` does for each command. It talks to the daemon for everything that
//! touches secrets or state (DESIGN.md §3); it edits `config.toml`, the user's own file,
//! itself.

mod forward;
mod install;
mod login;
mod runtimes;
mod status;
mod support;
mod team;

use std::time::Duration;

use anyhow::{bail, Context};
use helperd_wire::client::{self, ClientError};
use helperd_wire::paths::Paths;
use helperd_wire::wire::{Envelope, Reply, Request, Response};

use crate::cli::{Cli, Command, DaemonAction, DebugAction, StoreAction, TokenAction};
use crate::tty;

/// Runs one command; the result is the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let paths = Paths::from_env()?;
    match cli.command {
        Command::Status { json, check } => status::status(&paths, json, check),
        Command::Renew {
            runtime,
            rotate: true,
            ..
        } => {
            print_done(send_starting(&paths, Request::TokenRotate { runtime })?)?;
            Ok(0)
        }
        Command::Renew {
            runtime,
            name,
            expires,
            offline,
            rotate: false,
        } => renew(&paths, runtime, name, expires, offline),
        Command::Runtime { action } => runtimes::run(&paths, action),
        Command::Token { action } => token(&paths, action),
        Command::Which { url, json } => status::which(&paths, &url, json),
        Command::Login { runtime } => login::login(&paths, &runtime),
        Command::Audit {
            since,
            runtime,
            json,
        } => support::audit_cmd(&paths, since, runtime, json),
        Command::Support { action } => support::run(&paths, action),
        Command::Install { dry_run, systemd } => install::install(&paths, dry_run, systemd),
        Command::Forward {
            host,
            install,
            remote_socket,
        } => forward::run(&paths, &host, install, remote_socket),
        Command::Daemon { action } => match action {
            DaemonAction::Start => start(&paths).map(|()| 0),
            DaemonAction::Stop => stop(&paths).map(|()| 0),
            DaemonAction::Restart => stop(&paths).and_then(|()| start(&paths)).map(|()| 0),
            DaemonAction::Reload => {
                print_done(send_starting(&paths, Request::Reload)?)?;
                Ok(0)
            }
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
        Command::Debug {
            action: DebugAction::AdvanceClock { span },
        } => {
            let Some(Some(secs)) = crate::timefmt::parse_span(&span) else {
                bail!("{span:?} is not a span like 30s, 30m, 2h, 3d or 2w");
            };
            print_done(send_starting(&paths, Request::AdvanceClock { secs })?)?;
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "helperctl", &mut std::io::stdout());
            Ok(0)
        }
        Command::Team { action } => team::run(&paths, action),
        Command::Store {
            action: StoreAction::SetPassphrase,
        } => set_passphrase(&paths),
    }
}

fn set_passphrase(paths: &Paths) -> anyhow::Result<u8> {
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
    expect_done(send_starting(paths, request)?)?;
    println!("the file store is now protected by your passphrase; after each daemon start run `helperctl unlock`");
    Ok(0)
}

/// The `--permission NAME=LEVEL` arguments (`runtime add`, `team publish`) as a map; the
/// levels are checked where the runtime is (config.toml's parser, the team entry's).
fn permission_args(given: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut perms = std::collections::BTreeMap::new();
    for p in given {
        let (k, v) = p.split_once('=').with_context(|| {
            format!("--permission {p:?}: write NAME=LEVEL, e.g. contents=write")
        })?;
        perms.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(perms)
}

/// A GitHub App's private key file (`-`: stdin), read into a [`Secret`](crate::secret::Secret).
fn read_key_file(path: &std::path::Path) -> anyhow::Result<crate::secret::Secret> {
    use std::io::Read;
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("failed to read the key from stdin")?;
    } else {
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("failed to read the key file {}", path.display()))?;
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a PEM text file", path.display()))?;
    if !text.contains("-----BEGIN ") {
        bail!(
            "{} is not a PEM file (no BEGIN line); give the .pem GitHub downloaded",
            path.display()
        );
    }
    Ok(crate::secret::Secret::new(text))
}

fn token(paths: &Paths, action: TokenAction) -> anyhow::Result<u8> {
    let request = match action {
        TokenAction::Set {
            runtime,
            name,
            expires,
            scopes,
            offline,
            force,
        } => {
            let expires = expires
                .map(|e| crate::timefmt::parse_expiry(&e).map_err(anyhow::Error::msg))
                .transpose()
                .context("--expires")?;
            let secret = tty::read_secret(&format!("token for runtime {runtime}: "))?;
            if secret.is_empty() {
                bail!("no token given; nothing was stored");
            }
            Request::TokenSet {
                runtime,
                name,
                expires,
                scopes: scopes.into_iter().filter(|s| !s.is_empty()).collect(),
                secret: secret.expose().to_string(),
                offline,
                force,
            }
        }
        TokenAction::Verify { runtime, all: _ } => Request::TokenVerify { runtime },
        TokenAction::Link { runtime, from } => Request::TokenLink { runtime, from },
        TokenAction::Remove { runtime, revoke } => Request::TokenRemove { runtime, revoke },
        TokenAction::SetApp {
            runtime,
            key_file,
            offline,
        } => {
            let key = read_key_file(&key_file)?;
            Request::TokenSetApp {
                runtime,
                key: key.expose().to_string(),
                offline,
            }
        }
    };
    print_done(send_starting(paths, request)?)?;
    Ok(0)
}

/// `helperctl renew`: the facts, then a new token like `token set`.
fn renew(
    paths: &Paths,
    runtime: String,
    name: Option<String>,
    expires: Option<String>,
    offline: bool,
) -> anyhow::Result<u8> {
    let config = crate::config::file::load(&crate::config::config_file(&paths.config_dir))?;
    let rt = config.runtime(&runtime).with_context(|| {
        format!("there is no runtime named {runtime:?} (see `helperctl runtime list`)")
    })?;
    let report = status::fetch(paths)?;
    let current = report
        .runtimes
        .iter()
        .find(|r| r.name == runtime)
        .and_then(|r| r.token.clone());
    let now = crate::timefmt::unix_now();
    let base = rt.urls.first().map(|u| u.base_url()).unwrap_or_default();
    eprintln!("runtime {runtime} ({})", rt.provider.name());
    match &current {
        Some(t) => eprintln!(
            "current token: {}, {}{}",
            t.name.as_deref().unwrap_or("(unnamed)"),
            t.state,
            t.expires
                .map(|e| format!(
                    ", expires {} ({})",
                    crate::timefmt::format_date(e),
                    crate::timefmt::countdown(e, now)
                ))
                .unwrap_or_default()
        ),
        None => eprintln!("it has no token yet"),
    }
    let forge = rt.provider.descriptor();
    if let Some(page) = forge.token_page(&base) {
        eprintln!("create the new token at {page}");
    }
    eprintln!("scopes git needs: {}", forge.git_scopes);
    let secret = tty::read_secret("new token (hidden): ")?;
    if secret.is_empty() {
        bail!("no token given; nothing was changed");
    }
    let expires = match expires {
        Some(e) => Some(e),
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            let typed =
                tty::read_line("when does it expire? (2027-03-01, or empty if it does not say): ")?;
            Some(typed).filter(|t| !t.trim().is_empty())
        }
        None => None,
    };
    let expires = expires
        .map(|e| crate::timefmt::parse_expiry(&e).map_err(anyhow::Error::msg))
        .transpose()
        .context("expiry")?;
    let name = name.or_else(|| Some(format!("renewed {}", crate::timefmt::format_date(now))));
    let request = Request::TokenSet {
        runtime,
        name,
        expires,
        scopes: Vec::new(),
        secret: secret.expose().to_string(),
        offline,
        force: false,
    };
    print_done(send_starting(paths, request)?)?;
    Ok(0)
}

pub(crate) fn send(paths: &Paths, request: Request) -> Result<Response, ClientError> {
    client::send(&paths.socket, &Envelope::new(request))
}

/// Sends a request, starting the daemon first when none is listening.
pub(crate) fn send_starting(paths: &Paths, request: Request) -> anyhow::Result<Response> {
    match send(paths, request.clone()) {
        Err(ClientError::NotRunning(_)) => {
            // A socket in someone else's folder (support access) is theirs to start, not
            // ours: starting a daemon there would give us a second, empty one.
            if let Some(dir) = paths.socket.parent() {
                let owner = std::fs::metadata(dir)
                    .ok()
                    .and_then(|m| crate::os::owner_of(&m));
                if owner.is_some_and(|uid| uid != crate::os::current_uid()) {
                    bail!(
                        "no helperd daemon answers at {} (if it was lent to you for support, that access has ended)",
                        paths.socket.display()
                    );
                }
            }
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

/// Prints the daemon's notice of a `Done`, or fails with its error.
fn print_done(response: Response) -> anyhow::Result<()> {
    let notice = response.notice.clone();
    expect_done(response)?;
    if let Some(n) = notice {
        println!("{n}");
    }
    Ok(())
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
    client::start_daemon(&daemon_executable(), &paths.socket).map_err(anyhow::Error::msg)?;
    eprintln!("helperd started ({})", paths.socket.display());
    Ok(())
}

fn stop(paths: &Paths) -> anyhow::Result<()> {
    match client::stop_daemon(&paths.socket, Duration::from_secs(5))
        .context("failed to stop the daemon")?
    {
        client::Stopped::NotRunning => eprintln!("helperd is not running"),
        client::Stopped::Stopped(None) => eprintln!("helperd stopped"),
        client::Stopped::Stopped(Some(dropped)) => eprintln!("helperd stopped; {dropped}"),
    }
    Ok(())
}

/// Tells a running daemon to re-read the configuration; fine when none runs (it reads
/// the file when it starts).
pub(crate) fn notify_reload(paths: &Paths) -> anyhow::Result<()> {
    match send(paths, Request::Reload) {
        Err(ClientError::NotRunning(_)) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(resp) => match resp.reply {
            Reply::Error { message, .. } => {
                bail!("the daemon did not take the new configuration: {message}")
            }
            _ => Ok(()),
        },
    }
}
