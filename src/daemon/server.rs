//! The accept loops: one request and one response per connection (DESIGN.md §4), peers
//! of another uid refused, signals handled.
//!
//! The fast path costs a git request no more than it must: the client writes its request
//! as soon as it is connected, so the connection is accepted, its request looked at
//! without waiting, and — when the answer is ready at once, as it is for a credential in
//! memory — answered, taken off the socket and closed right there, without a task of its
//! own and without registering the socket with the event loop. Anything that would wait
//! (a request still arriving, a keyring call, a provider's answer) moves to a task of its
//! own with the request timeout, so a slow client or host never holds up the others. One
//! accept loop per worker thread shares the listener, so every worker takes connections
//! (`ipc::Acceptor`).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use helperd_wire::wire::{ErrorCode, Reply, Request, Response};
use tokio::sync::Notify;
use zeroize::Zeroizing;

use super::dispatch::{self, Effect};
use super::line::{self, read_request, write_bytes, Incoming};
use super::memory::{self, Activity};
use super::peer::{Channel, Peer};
use super::state::State;
use super::support_server;
use crate::ipc::{self, Acceptor, AsyncConnection, Connection, Listener, Serve};
use crate::os::{DaemonSignals, SignalAsks};
use crate::secret::ReadBuffer;

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
    /// Told when a client asked the daemon to stop.
    shutdown: Notify,
}

/// Serves until SIGTERM, SIGINT (Ctrl-C on Windows) or a `shutdown` request. Returns the
/// listener, still bound but no longer accepting: the daemon closes it only once its last
/// changes are written, so that a client waiting for it to stop does not start a new one
/// too early.
pub async fn serve(listener: Listener, state: Arc<State>) -> std::io::Result<Listener> {
    let mut signals = DaemonSignals::listen()?;
    let activity = Arc::new(Activity::default());
    let trim = tokio::spawn(memory::trim_when_idle(activity.clone()));
    let shared = Arc::new(Shared {
        channel: Channel::Main,
        activity: activity.clone(),
        state: state.clone(),
        shutdown: Notify::new(),
    });
    // Start-up is over: its code need not stay mapped (see the function).
    crate::os::map_program_text_finely();
    // One accept loop per worker: as many as may run at once, since more would only sleep
    // beside them.
    let acceptor = Acceptor::start(listener, state.settings.workers, serve_with(&shared));
    let forward = tokio::spawn(forward_socket(Arc::new(Shared {
        channel: Channel::Forward,
        activity,
        state: state.clone(),
        shutdown: Notify::new(),
    })));
    loop {
        tokio::select! {
            asks = signals.next() => match asks {
                SignalAsks::Stop(signal) => { tracing::info!("{signal}: shutting down"); break; }
                SignalAsks::Reload => {
                    tracing::info!("SIGHUP: reloading the configuration and the policy");
                    let _ = state.config.reload();
                    state.policy.reload_now();
                }
            },
            _ = shared.shutdown.notified() => { tracing::info!("shutdown requested by a client"); break; }
        }
    }
    trim.abort();
    forward.abort();
    let _ = forward.await;
    acceptor.stop().await
}

/// What the accept loops do with each connection.
fn serve_with(shared: &Arc<Shared>) -> Serve {
    let shared = shared.clone();
    Arc::new(move |stream| connection(stream, &shared))
}

/// One connection: answered here when everything is at hand, else in a task of its own.
fn connection(stream: Connection, shared: &Arc<Shared>) {
    shared.activity.seen();
    let peer = match stream.peer() {
        Ok(creds) if creds.same_user => Peer {
            uid: creds.uid,
            pid: creds.pid,
            channel: shared.channel,
        },
        Ok(creds) => {
            tracing::warn!(
                peer_uid = creds.uid,
                peer_pid = ?creds.pid,
                "refused a connection from another user (peer credentials do not match)"
            );
            let refusal = Response::error(
                ErrorCode::Forbidden,
                "this helperd daemon belongs to another user",
            );
            answer(stream, 0, Some(line::encode(&refusal)));
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused a connection whose peer credentials cannot be read");
            return;
        }
    };
    // Wiped when it goes: the request may carry a password. Small: a request line is a
    // few hundred bytes; a request that does not fit takes the path for requests still
    // arriving.
    let mut look = ReadBuffer::<512>::new();
    let seen = match look_at_request(&stream, &mut look) {
        Look::Complete(seen) => seen,
        // Still arriving (or longer than a look): read it all in a task, within the
        // request timeout.
        Look::Arriving => return wait_for_request(stream, peer, shared),
        Look::HungUp => return,
        Look::Failed(e) => return tracing::debug!(error = %e, "failed to read a request"),
    };
    let incoming = line::parse(look.first(seen));
    drop(look);
    let mut response = Box::pin(respond(incoming, peer, shared));
    match response
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(bytes) => answer(stream, seen, bytes),
        // The answer needs to wait (a store, a host): a task of its own.
        Poll::Pending => {
            tokio::spawn(async move {
                let bytes = within_deadline(response).await;
                answer(stream, seen, bytes);
            });
        }
    }
}

/// What a first look at a new connection found.
enum Look {
    /// A whole request, this many bytes long.
    Complete(usize),
    /// Part of one, or nothing yet.
    Arriving,
    /// The client hung up without a word.
    HungUp,
    Failed(std::io::Error),
}

/// How often a connection with nothing to read yet is looked at again, the thread
/// yielding in between, before its request is waited for in a task. The client writes
/// its request right after connecting, so when the accept wins that race the request is
/// there a few microseconds later; a task costs two `epoll_ctl`s and one wake-up more,
/// and the few percent of requests that took it set the latency tail (p99).
const LOOKS: usize = 3;

/// Looks at what the client sent so far (see [`Connection::peek_now`]).
fn look_at_request<const N: usize>(stream: &Connection, look: &mut ReadBuffer<N>) -> Look {
    for attempt in 1..=LOOKS {
        match look.read_with(N, |buf| stream.peek_now(buf)) {
            Ok(0) => return Look::HungUp,
            Ok(n) if line::complete(look.first(n)) => return Look::Complete(n),
            // Longer than a look: no use looking again.
            Ok(n) if n == N => return Look::Arriving,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Look::Failed(e),
        }
        if attempt < LOOKS {
            std::thread::yield_now();
        }
    }
    Look::Arriving
}

/// A request not all there at once: read in a task of its own, within the request
/// timeout, then answered from there.
fn wait_for_request(stream: Connection, peer: Peer, shared: &Arc<Shared>) {
    let shared = shared.clone();
    tokio::spawn(async move {
        let Some(mut stream) = into_async(stream) else {
            return;
        };
        let timeout = shared.state.settings.request_timeout;
        let incoming = read_request(&mut stream, timeout).await;
        let bytes = within_deadline(respond(incoming, peer, &shared)).await;
        if let Some(bytes) = bytes {
            write_async(&mut stream, &bytes).await;
        }
    });
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

/// Sends the answer (if any) to a request that was looked at, not yet taken off the
/// socket ([`Connection::peek_now`]), then takes the request's `seen` bytes off: the
/// client is awake for its answer by then, and no one waits for that. The answer goes at
/// once when the socket takes it all (it nearly always does: an answer is small), else
/// from a task that waits for the client to read.
fn answer(stream: Connection, seen: usize, bytes: Option<Zeroizing<Vec<u8>>>) {
    let Some(bytes) = bytes else {
        return stream.discard(seen);
    };
    let sent = match stream.send_now(&bytes) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => {
            tracing::debug!(error = %e, "client went away before the answer");
            return;
        }
    };
    stream.discard(seen);
    if sent < bytes.len() {
        tokio::spawn(async move {
            if let Some(mut stream) = into_async(stream) {
                write_async(&mut stream, &bytes[sent..]).await;
            }
        });
    }
}

/// The connection, registered with the event loop for the waits ahead.
fn into_async(stream: Connection) -> Option<AsyncConnection> {
    match stream.into_async() {
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

async fn write_async(stream: &mut AsyncConnection, bytes: &[u8]) {
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
        // Stops accepting when dropped.
        _acceptor: Acceptor,
    }
    impl Drop for Open {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
    let state = &shared.state;
    let path = state.settings.forward_socket();
    let mut open: Option<Open> = None;
    // Said once per distinct failure, not every half second (on Windows the forward
    // socket is never available: SSH forwarding is Linux/macOS only).
    let mut last_failure: Option<String> = None;
    loop {
        state.look_at_files();
        let policy = state.policy.current();
        let wanted = crate::decision::forwarding(
            &state.config.current(),
            policy.as_deref().map(|p| p.in_force()),
            state.policy.error().as_deref(),
        );
        match (&wanted, &open) {
            (Ok(()), None) => match ipc::listen_forward(&path) {
                Ok(listener) => {
                    let acceptor = Acceptor::start(listener, 1, serve_with(&shared));
                    tracing::info!(socket = %path.display(), "forward socket open");
                    open = Some(Open {
                        path: path.clone(),
                        _acceptor: acceptor,
                    });
                }
                Err(e) => {
                    if last_failure.as_deref() != Some(&e.to_string()) {
                        tracing::warn!(socket = %path.display(), error = %e, "cannot open the forward socket");
                        last_failure = Some(e.to_string());
                    }
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
