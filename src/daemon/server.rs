//! The accept loop: one task per connection, one request and one response per connection
//! (DESIGN.md §4), peers of another uid refused, signals handled.

use std::sync::Arc;
use std::time::Duration;

use helperd_wire::wire::{ErrorCode, Reply, Request, Response};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

use super::dispatch::{self, Effect};
use super::line::{read_request, write_response, Incoming};
use super::peer::Peer;
use super::state::State;
use super::support_server;
use crate::ipc;

/// A client that connects and says nothing is dropped after this long; others are served
/// meanwhile, so it only costs its own connection. `HELPERD_REQUEST_TIMEOUT_MS` sets
/// another (tests, slow machines).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until SIGTERM, SIGINT or a `shutdown` request. Returns the listener, still
/// bound but no longer accepting: the daemon closes it only once its last changes are
/// written, so that a client waiting for it to stop does not start a new one too early.
pub async fn serve(listener: UnixListener, state: Arc<State>) -> std::io::Result<UnixListener> {
    let shutdown = Arc::new(Notify::new());
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    // SIGHUP must not kill the daemon (a closed terminal sends it); config reload comes later.
    let mut sighup = signal(SignalKind::hangup())?;
    // The handlers exist now: let the signals held since start-up through.
    shutdown_signals().thread_unblock()?;
    let me = nix::unistd::geteuid().as_raw();

    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move { connection(stream, me, state, shutdown).await });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = state.config.reload();
            }
            _ = shutdown.notified() => { tracing::info!("shutdown requested by a client"); break; }
        }
    }
    Ok(listener)
}

async fn connection(mut stream: UnixStream, me: u32, state: Arc<State>, shutdown: Arc<Notify>) {
    let peer = match ipc::peer(&stream) {
        Ok((uid, pid)) if uid == me => Peer::local(uid, pid),
        Ok((uid, pid)) => {
            tracing::warn!(
                peer_uid = uid,
                peer_pid = ?pid,
                "refused a connection from another user (peer credentials do not match)"
            );
            let _ = write_response(
                &mut stream,
                &Response::error(
                    ErrorCode::Forbidden,
                    "this helperd daemon belongs to another user",
                ),
            )
            .await;
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused a connection whose peer credentials cannot be read");
            return;
        }
    };

    let (response, stop) = match read_request(&mut stream, state.settings.request_timeout).await {
        Incoming::Nothing => return,
        Incoming::Reply(response) => (*response, false),
        Incoming::Request(Request::Shutdown) => (Response::new(Reply::Done), true),
        Incoming::Request(request) => {
            tracing::debug!(?request, "request");
            let (response, effect) = dispatch::request(&state, &peer, request).await;
            match effect {
                Some(Effect::ServeSupport(listener)) => {
                    tokio::spawn(support_server::serve(state.clone(), listener));
                }
                None => {}
            }
            (response, false)
        }
    };
    if let Err(e) = write_response(&mut stream, &response).await {
        tracing::debug!(error = %e, "client went away before the answer");
    }
    if stop {
        shutdown.notify_one();
    }
}

/// The signals that stop (or, SIGHUP, reload) the daemon.
pub fn shutdown_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set
}
