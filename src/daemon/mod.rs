//! The daemon: takes the socket, detaches (unless told to stay in the foreground), and
//! serves requests until told to stop. It executes decisions, never makes them
//! (`crate::decision` does). Dependencies point one way, down this list (a test checks):
//!
//! 1. [`server`] (the main socket), then [`support_server`] (the support socket it
//!    opens): accept, peer check.
//! 2. [`line`]: one line in, one line out; [`dispatch`]: request → service.
//! 3. services, which never import each other: [`git`] (git's requests, carrying out the
//!    decision), [`tokens`] (`token set|verify|link|remove`, rotation), [`login`] (OAuth),
//!    [`admin`] (status, which, audit, support, unlock, reload).
//! 4. [`replies`]: failures on the wire.
//! 5. [`state`]: snapshots, the store of record and the writer task; [`peer`], [`memory`],
//!    [`log_writer`].
//! 6. edges: `crate::store`, `crate::provider`, `crate::audit`, `crate::ipc`.

pub mod admin;
pub mod dispatch;
pub mod git;
pub mod line;
pub mod log_writer;
pub mod login;
pub mod memory;
pub mod peer;
pub mod replies;
pub mod rotator;
pub mod server;
pub mod state;
pub mod support_server;
pub mod tokens;

#[cfg(test)]
mod layering_tests;

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context};
use helperd_wire::paths::Paths;

use crate::ipc::{self, BindError};
use crate::os::Detached;
use crate::store::choice::keyring_service;
use crate::store::StoreKind;
use state::{Settings, State};

/// At most this many worker threads: few, to keep idle memory small.
const MAX_WORKERS: usize = 2;

/// Worker threads: one core is left to git and the clients, whose processes every request
/// starts (measured on 2 cores, 64 clients: 1 worker serves 1.07–1.11 of git's
/// credential-cache, 2 workers 0.86–0.91, their threads waking each other while the
/// clients wait for a core; BENCHMARKS.md). So: cores − 1, from 1 to [`MAX_WORKERS`];
/// `HELPERD_WORKERS` sets another number.
fn workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::env::var("HELPERD_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .filter(|&w| w > 0)
        .unwrap_or_else(|| cores.saturating_sub(1).clamp(1, MAX_WORKERS))
}

/// `HELPERD_REQUEST_TIMEOUT_MS`, else the default.
fn request_timeout() -> std::time::Duration {
    std::env::var("HELPERD_REQUEST_TIMEOUT_MS")
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(std::time::Duration::from_millis)
        .unwrap_or(server::REQUEST_TIMEOUT)
}

/// How the daemon was asked to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Stay attached: log to stderr, no fork (service managers, debugging).
    pub foreground: bool,
}

/// The log file a detached daemon writes to (it has no terminal).
pub fn log_file(paths: &Paths) -> std::path::PathBuf {
    paths.state_dir.join("helperd.log")
}

/// A detached daemon's log is truncated at start once it grows past this.
const MAX_LOG_BYTES: u64 = 4 * 1024 * 1024;

/// Runs the daemon; returns when it has stopped (or, detached, in the launching process
/// once the child listens).
pub fn launch(options: Options) -> anyhow::Result<()> {
    crate::os::harden();
    let paths = Paths::from_env()?;
    let forced_store = match std::env::var("HELPERD_STORE") {
        Ok(name) if !name.is_empty() => Some(StoreKind::parse(&name).with_context(|| {
            let names: Vec<_> = StoreKind::ALL.iter().map(|k| k.name()).collect();
            format!(
                "HELPERD_STORE={name:?} is not a store; use one of {}",
                names.join(", ")
            )
        })?),
        _ => None,
    };
    let helperd_home = std::env::var_os("HELPERD_HOME").filter(|h| !h.is_empty());
    let settings = Settings {
        config_file: crate::config::config_file(&paths.config_dir),
        state_dir: paths.state_dir.clone(),
        data_dir: paths.data_dir.clone(),
        socket: paths.socket.clone(),
        forced_store,
        keyring_service: keyring_service(helperd_home.as_deref().map(Path::new)),
        request_timeout: request_timeout(),
        store_waits: state::store_slot::StoreWaits::from_env(),
        workers: workers(),
    };

    // Until the async signal handlers exist, a SIGTERM would kill us with the socket left
    // behind: hold these signals pending (the server unblocks them once it listens for them).
    crate::os::hold_daemon_signals().context("failed to block signals")?;
    // Windows has no fork: there the launcher starts a detached copy of itself before
    // anything is bound, relays its `ok`, and is done.
    if !options.foreground
        && crate::os::start_in_background().context("failed to start the daemon")?
    {
        return say_ok();
    }

    let (mut bound, systemd) = match ipc::from_systemd(&paths.socket) {
        Some(b) => (b, true),
        None => match ipc::bind(&paths.socket, &paths.lock_file) {
            Ok(b) => (b, false),
            Err(e @ BindError::AlreadyRunning { .. }) => bail!("{e}"),
            Err(e) => return Err(e).context("failed to start the daemon"),
        },
    };

    if !options.foreground && !systemd {
        crate::fsutil::create_private_dir(&paths.state_dir)?;
        let log = open_log(&log_file(&paths))?;
        detach(&log, &mut bound)?;
    } else {
        bound
            .record_pid(std::process::id())
            .context("failed to record the daemon's pid")?;
        say_ok()?;
    }

    init_logging();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        socket = %bound.path().display(),
        pid = std::process::id(),
        "helperd listening"
    );
    if bound.reclaimed_stale() {
        tracing::info!("reclaimed a stale socket left by a daemon that did not stop cleanly");
    }

    // Concurrent clients are answered on `workers()` cores; blocking store calls (keyring,
    // argon2) run on tokio's blocking pool, whose threads exit when idle.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.workers)
        .thread_keep_alive(std::time::Duration::from_secs(10))
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let result = runtime.block_on(async {
        // Registered with the runtime's reactor, so taken out inside it.
        let listener = bound.take_listener()?;
        let (state, writer) = State::start(settings);
        // Open the store and read the plain credentials now, so that the first git
        // request does not wait for them; a failure is reported on each request until the
        // store answers.
        let opener = state.clone();
        tokio::spawn(async move {
            if let Err(e) = opener.writer.load_plain().await {
                tracing::warn!(error = %e, "the store of record is not available yet");
            }
        });
        // The team's runtimes (DESIGN.md §10): read in the background, never by a request.
        let team = state.team.clone();
        let weak = std::sync::Arc::downgrade(&state);
        let weak_after = weak.clone();
        tokio::spawn(team.run(
            move || {
                let state = weak.upgrade()?;
                Some((state.config.current().openbao.clone(), state.now()))
            },
            move |snapshot| {
                // A team app key replaced (or its entry changed or gone): the tokens
                // minted with the old one are dropped now, so the next `get` mints anew.
                if let Some(state) = weak_after.upgrade() {
                    state
                        .mints
                        .keep_team_keys(|id| snapshot.runtimes.iter().any(|t| t.token.id == id));
                }
            },
        ));
        // GitLab tokens that rotate themselves (issue 18): one task, so one rotation at a
        // time; it also settles a rotation a previous daemon left unfinished.
        tokio::spawn(rotator::run(
            state.rotation.clone(),
            std::sync::Arc::downgrade(&state),
        ));
        let listener = server::serve(listener, state.clone()).await?;
        // A SIGTERM gives pending store writes the same bounded chance as `daemon stop`
        // (which already waited: then this returns at once).
        let stop = state.store.waits().stop;
        let dropped = state.writer.settle(stop).await;
        if let Some(notice) = server::dropped_notice(&dropped, stop) {
            tracing::warn!("{notice}");
        }
        drop(state);
        // The writer ends once every handle is gone, after the changes already sent (the
        // last audit events among them); only then does the socket close.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
        drop(listener);
        Ok::<(), std::io::Error>(())
    });
    // Close the socket (the BoundSocket removes its file) before the runtime winds down.
    drop(bound);
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result.context("the daemon stopped on an error")?;
    tracing::info!("helperd stopped");
    Ok(())
}

/// Tells the launching client that the socket listens.
fn say_ok() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ok")
        .and_then(|()| out.flush())
        .context("failed to write ok")
}

fn open_log(path: &Path) -> anyhow::Result<File> {
    if std::fs::metadata(path)
        .map(|m| m.len() > MAX_LOG_BYTES)
        .unwrap_or(false)
    {
        let _ = std::fs::remove_file(path);
    }
    crate::fsutil::open_private(path, OpenOptions::new().create(true).append(true))
        .with_context(|| format!("failed to open the log file {}", path.display()))
}

/// Leaves the foreground: the launching process says `ok` (the socket already listens)
/// and exits; the daemon goes on with its output in the log file.
fn detach(log: &File, bound: &mut ipc::BoundSocket) -> anyhow::Result<()> {
    match crate::os::detach(log).context("failed to start in the background")? {
        Detached::Launcher { pid } => {
            bound
                .record_pid(pid)
                .context("failed to record the daemon's pid")?;
            say_ok()?;
            std::process::exit(0);
        }
        Detached::Daemon => Ok(()),
        Detached::DaemonMustSayOk => {
            bound
                .record_pid(std::process::id())
                .context("failed to record the daemon's pid")?;
            say_ok()?;
            crate::os::leave_launcher(log).context("failed to leave the launcher")
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("HELPERD_LOG").unwrap_or_else(|_| EnvFilter::new("helperd=info"));
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(log_writer::make)
        // Its own reports of a failed write would go to stderr too, and panic there.
        .log_internal_errors(false)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}
