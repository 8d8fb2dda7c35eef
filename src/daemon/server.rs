//! The accept loops: one request and one response per connection (DESIGN.md §4), peers
//! of another uid refused, signals handled.
//!
//! The fast path costs a git request no more than it must: the client writes its request
//! as soon as it is connected, so the connection is accepted, read without waiting, and
//! — when the answer is ready at once, as it is for a credential in memory — answered and
//! closed right there, without a task of its own and without registering the socket with
//! the event loop. Anything that would wait (a request still arriving, a keyring call, a
//! provider's answer) moves to a task of its own with the request timeout, so a slow
//! client or host never holds up the others. One accept loop per worker thread shares the
//! listener, so every worker takes connections.

use std::future::Future;
use std::os::unix::net::{UnixListener as StdListener, UnixStream as StdStream};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use helperd_wire::wire::{ErrorCode, Reply, Request, Response};
use tokio::io::unix::AsyncFd;
use tokio::net::UnixStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use zeroize::Zeroizing;

use super::dispatch::{self, Effect};
use super::line::{self, read_request, write_bytes, Incoming};
use super::memory::{self, Activity};
use super::peer::{Channel, Peer};
use super::state::State;
use super::support_server;
use crate::ipc;

/// A client that connects and says nothing is dropped after this long; others are served
/// meanwhile, so it only costs its own connection. `HELPERD_REQUEST_TIMEOUT_MS` sets
/// another (tests, slow machines).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection needs.
struct Shared {
    /// Which socket: the main one, or the forward socket for remote machines.
    channel: Channel,
    /// Counts connections, for giving memory back once they stop.
    activity: Arc<Activity>,
    state: Arc<State>,
    /// The daemon's own uid: the only one served.
    me: u32,
    /// Told when a client asked the daemon to stop.
    shutdown: Notify,
}

/// Serves until SIGTERM, SIGINT or a `shutdown` request. Returns the listener, still
/// bound but no longer accepting: the daemon closes it only once its last changes are
/// written, so that a client waiting for it to stop does not start a new one too early.
pub async fn serve(listener: StdListener, state: Arc<State>) -> std::io::Result<StdListener> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    // SIGHUP must not kill the daemon (a closed terminal sends it): it reloads the config.
    let mut sighup = signal(SignalKind::hangup())?;
    // The handlers exist now: let the signals held since start-up through.
    shutdown_signals().thread_unblock()?;
    listener.set_nonblocking(true)?;
    // SAFETY: the UnixListener owns its descriptor, open for as long as it lives, and
    // `as_raw_fd` always names that same descriptor.
    let listener =
        unsafe { AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE) }
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    let listener = Arc::new(listener);
    let activity = Arc::new(Activity::default());
    let trim = tokio::spawn(memory::trim_when_idle(activity.clone()));
    let shared = Arc::new(Shared {
        channel: Channel::Main,
        activity: activity.clone(),
        state: state.clone(),
        me: nix::unistd::geteuid().as_raw(),
        shutdown: Notify::new(),
    });
    // One accept loop per worker thread, so that every worker takes connections; more
    // would only be woken with the others for each connection and find nothing to accept
    // (an accept4 wasted per request with one worker).
    let loops: Vec<_> = (0..state.settings.workers)
        .map(|_| tokio::spawn(accept_loop(listener.clone(), shared.clone())))
        .collect();
    let forward = tokio::spawn(forward_socket(Arc::new(Shared {
        channel: Channel::Forward,
        activity,
        state: state.clone(),
        me: shared.me,
        shutdown: Notify::new(),
    })));
    loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration and the policy");
                let _ = state.config.reload();
                state.policy.reload_now();
            }
            _ = shared.shutdown.notified() => { tracing::info!("shutdown requested by a client"); break; }
        }
    }
    trim.abort();
    forward.abort();
    let _ = forward.await;
    for accept in loops {
        accept.abort();
        let _ = accept.await;
    }
    let listener = Arc::try_unwrap(listener)
        .map_err(|_| std::io::Error::other("the accept loops still hold the listener"))?;
    Ok(listener.into_inner())
}

async fn accept_loop(listener: Arc<AsyncFd<StdListener>>, shared: Arc<Shared>) {
    loop {
        let mut ready = match listener.readable().await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::error!(error = %e, "the listening socket failed");
                return;
            }
        };
        match ready.get_inner().accept() {
            Ok((stream, _)) => connection(stream, &shared),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => ready.clear_ready(),
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One connection: answered here when everything is at hand, else in a task of its own.
fn connection(stream: StdStream, shared: &Arc<Shared>) {
    shared.activity.seen();
    let peer = match ipc::peer_of(&stream) {
        Ok((uid, pid)) if uid == shared.me => Peer {
            uid,
            pid,
            channel: shared.channel,
        },
        Ok((uid, pid)) => {
            tracing::warn!(
                peer_uid = uid,
                peer_pid = ?pid,
                "refused a connection from another user (peer credentials do not match)"
            );
            let refusal = Response::error(
                ErrorCode::Forbidden,
                "this helperd daemon belongs to another user",
            );
            answer(stream, line::encode(&refusal));
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused a connection whose peer credentials cannot be read");
            return;
        }
    };
    // Zeroizing: the request may carry a password.
    let mut read = Zeroizing::new(Vec::new());
    match read_now(&stream, &mut read) {
        // Still arriving: wait for the rest in a task, within the request timeout.
        Ok(false) => {
            let shared = shared.clone();
            tokio::spawn(async move {
                let Some(mut stream) = into_async(stream) else {
                    return;
                };
                let timeout = shared.state.settings.request_timeout;
                let incoming = read_request(&mut stream, timeout, read).await;
                let bytes = within_deadline(respond(incoming, peer, &shared)).await;
                if let Some(bytes) = bytes {
                    write_async(&mut stream, &bytes).await;
                }
            });
        }
        Ok(true) => {
            let incoming = line::parse(&read);
            drop(read);
            let mut response = Box::pin(respond(incoming, peer, shared));
            match response
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Ready(Some(bytes)) => answer(stream, bytes),
                Poll::Ready(None) => {}
                // The answer needs to wait (a store, a host): a task of its own.
                Poll::Pending => {
                    tokio::spawn(async move {
                        if let Some(bytes) = within_deadline(response).await {
                            answer(stream, bytes);
                        }
                    });
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "failed to read a request"),
    }
}

/// Reads what the client has sent so far into `read`, without waiting. `Ok(true)`: the
/// request is all there (or the client hung up, or sent more than the cap).
fn read_now(stream: &StdStream, read: &mut Vec<u8>) -> std::io::Result<bool> {
    // Small: a request line is a few hundred bytes, and the chunk is wiped byte by byte
    // when it goes (a larger request takes more rounds of this loop).
    let mut chunk = Zeroizing::new([0u8; 512]);
    loop {
        match ipc::recv_now(stream, &mut chunk[..]) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                read.extend_from_slice(&chunk[..n]);
                if line::complete(read) {
                    return Ok(true);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The answer to what the client sent (`None`: nothing to answer), after carrying out
/// what the server must (a support socket to serve, a shutdown to start).
fn respond(
    incoming: Incoming,
    peer: Peer,
    shared: &Arc<Shared>,
) -> impl Future<Output = Option<Zeroizing<Vec<u8>>>> + Send + 'static {
    let shared = shared.clone();
    async move {
        let response = match incoming {
            Incoming::Nothing => return None,
            Incoming::Reply(response) => *response,
            Incoming::Request(request) if shared.channel == Channel::Forward => {
                dispatch::forward_request(&shared.state, &peer, request).await
            }
            Incoming::Request(Request::Shutdown) => {
                // Writes still waiting for the store get their bounded chance first; what
                // is given up is said to whoever asked.
                let stop = shared.state.store.waits().stop;
                let dropped = shared.state.writer.settle(stop).await;
                // Told once the answer is on its way: see `answer`.
                shared.shutdown.notify_one();
                Response::new(Reply::Done).with_notice(dropped_notice(&dropped, stop))
            }
            Incoming::Request(request) => {
                tracing::debug!(?request, "request");
                let (response, effect) = dispatch::request(&shared.state, &peer, request).await;
                match effect {
                    Some(Effect::ServeSupport(listener)) => {
                        tokio::spawn(support_server::serve(shared.state.clone(), listener));
                    }
                    None => {}
                }
                response
            }
        };
        Some(line::encode(&response))
    }
}

/// What a stopping daemon says about the writes the store never took.
pub fn dropped_notice(dropped: &[String], waited: Duration) -> Option<String> {
    (!dropped.is_empty()).then(|| {
        format!(
            "the secret store did not answer within {} s: {} pending write(s) dropped: {}",
            waited.as_secs_f64().ceil() as u64,
            dropped.len(),
            dropped.join("; ")
        )
    })
}

/// Sends the answer: at once when the socket takes it all (it nearly always does: an
/// answer is small), else from a task that waits for the client to read.
fn answer(stream: StdStream, bytes: Zeroizing<Vec<u8>>) {
    let sent = match ipc::send_now(&stream, &bytes) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => {
            tracing::debug!(error = %e, "client went away before the answer");
            return;
        }
    };
    if sent < bytes.len() {
        tokio::spawn(async move {
            if let Some(mut stream) = into_async(stream) {
                write_async(&mut stream, &bytes[sent..]).await;
            }
        });
    }
}

/// The connection, registered with the event loop for the waits ahead.
fn into_async(stream: StdStream) -> Option<UnixStream> {
    match stream
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(stream))
    {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::warn!(error = %e, "cannot wait on a connection");
            None
        }
    }
}

/// The longest a request may take to answer (a token verify of many runtimes, each host
/// with its 30 s timeout, is the slowest there is): past it the connection is dropped, so
/// that nothing holds a connection forever.
const ANSWER_DEADLINE: Duration = Duration::from_secs(120);

/// How long a client may take to read its answer.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);

async fn within_deadline<T>(answer: impl Future<Output = Option<T>>) -> Option<T> {
    match tokio::time::timeout(ANSWER_DEADLINE, answer).await {
        Ok(answer) => answer,
        Err(_) => {
            tracing::warn!("a request took longer than {ANSWER_DEADLINE:?}; dropped");
            None
        }
    }
}

async fn write_async(stream: &mut UnixStream, bytes: &[u8]) {
    match tokio::time::timeout(WRITE_DEADLINE, write_bytes(stream, bytes)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "client went away before the answer"),
        Err(_) => tracing::debug!("client did not read its answer in time; dropped"),
    }
}

/// How often the forward socket's wanted state is looked at (config and policy changes).
const FORWARD_CHECK: Duration = Duration::from_millis(500);

/// Keeps the forward socket listening exactly while some runtime is forwarded and the
/// policy allows it (DESIGN.md §11); removes it when it closes, and when the daemon stops.
async fn forward_socket(shared: Arc<Shared>) {
    struct Open {
        path: std::path::PathBuf,
        accept: tokio::task::JoinHandle<()>,
    }
    impl Drop for Open {
        fn drop(&mut self) {
            self.accept.abort();
            let _ = std::fs::remove_file(&self.path);
        }
    }
    let state = &shared.state;
    let path = state.settings.forward_socket();
    let mut open: Option<Open> = None;
    loop {
        state.look_at_files();
        let policy = state.policy.current();
        let wanted = crate::decision::forwarding(
            &state.config.current(),
            policy.as_deref().map(|p| p.in_force()),
            state.policy.error().as_deref(),
        );
        match (&wanted, &open) {
            (Ok(()), None) => match listen_forward(&path) {
                Ok(listener) => {
                    tracing::info!(socket = %path.display(), "forward socket open");
                    let accept = tokio::spawn(accept_loop(Arc::new(listener), shared.clone()));
                    open = Some(Open {
                        path: path.clone(),
                        accept,
                    });
                }
                Err(e) => {
                    tracing::warn!(socket = %path.display(), error = %e, "cannot open the forward socket")
                }
            },
            (Err(why), Some(_)) => {
                tracing::info!(%why, "forward socket closed");
                open = None;
            }
            _ => {}
        }
        state
            .forward
            .open
            .store(open.is_some(), std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(FORWARD_CHECK).await;
    }
}

/// Binds the forward socket (0600, in the main socket's 0700 folder), replacing a stale
/// one: the daemon holds the lock of that folder, so no other daemon owns it.
fn listen_forward(path: &std::path::Path) -> std::io::Result<AsyncFd<StdListener>> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(path)?;
    }
    let listener = StdListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    // SAFETY: the UnixListener owns its descriptor for as long as it lives, and
    // `as_raw_fd` always names that same descriptor.
    unsafe { AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))
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
