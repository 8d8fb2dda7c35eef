//! The accept loop: one task per connection, one request and one response per connection
//! (DESIGN.md §4), peers of another uid refused, signals handled.

use std::sync::Arc;
use std::time::Duration;

use helperd_wire::wire::{
    Envelope, ErrorCode, Reply, Request, Response, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

use super::dispatch::{self, Effect};
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
    super::shutdown_signals().thread_unblock()?;
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

/// What a connection sent.
pub enum Incoming {
    /// Nothing worth an answer (silence, hang-up).
    Nothing,
    /// A request that cannot be served: this is the answer.
    Reply(Box<Response>),
    Request(Request),
}

/// Reads and decodes one request, within `timeout`.
pub async fn read_request(stream: &mut UnixStream, timeout: Duration) -> Incoming {
    let line = match tokio::time::timeout(timeout, read_request_line(stream)).await {
        Err(_) => {
            tracing::debug!("client sent no request in time; closing");
            return Incoming::Nothing;
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "failed to read a request");
            return Incoming::Nothing;
        }
        Ok(Ok(RequestLine::Empty)) => return Incoming::Nothing,
        Ok(Ok(RequestLine::TooLong)) => {
            let msg = format!(
                "request larger than {} KiB; refused",
                MAX_MESSAGE_BYTES / 1024
            );
            tracing::warn!("{msg}");
            return Incoming::Reply(Box::new(Response::error(ErrorCode::BadRequest, msg)));
        }
        Ok(Ok(RequestLine::Truncated)) => {
            tracing::warn!("refused a truncated request");
            return Incoming::Reply(Box::new(Response::error(
                ErrorCode::BadRequest,
                "truncated request (no final newline)",
            )));
        }
        Ok(Ok(RequestLine::Line(line))) => line,
    };
    match decode(&line) {
        Ok(request) => Incoming::Request(request),
        Err((code, message)) => {
            tracing::warn!(?code, %message, "refused a request");
            Incoming::Reply(Box::new(Response::error(code, message)))
        }
    }
}

enum RequestLine {
    Empty,
    TooLong,
    Truncated,
    Line(zeroize::Zeroizing<Vec<u8>>),
}

async fn read_request_line(stream: &mut UnixStream) -> std::io::Result<RequestLine> {
    let mut reader = BufReader::new(stream.take(MAX_MESSAGE_BYTES as u64 + 1));
    // Zeroizing: the request may carry a password.
    let mut line = zeroize::Zeroizing::new(Vec::new());
    reader.read_until(b'\n', &mut line).await?;
    Ok(match line.last() {
        _ if line.len() > MAX_MESSAGE_BYTES => RequestLine::TooLong,
        None => RequestLine::Empty,
        Some(b'\n') => RequestLine::Line(line),
        Some(_) => RequestLine::Truncated,
    })
}

/// Decodes one request line; the error is the response to send. Messages never quote the
/// request: it may hold a secret.
fn decode(line: &[u8]) -> Result<Request, (ErrorCode, String)> {
    let bad = |msg: String| (ErrorCode::BadRequest, msg);
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| bad(format!("request is not JSON (column {})", e.column())))?;
    let op = value
        .get("op")
        .and_then(|o| o.as_str())
        .ok_or_else(|| bad("request has no \"op\"".into()))?
        .to_string();
    // Every version honours `shutdown`, so any client can replace any daemon.
    if op == "shutdown" {
        return Ok(Request::Shutdown);
    }
    let version = value.get("v").and_then(|v| v.as_u64());
    if version != Some(u64::from(PROTOCOL_VERSION)) {
        return Err((
            ErrorCode::VersionMismatch,
            format!(
                "this helperd daemon speaks protocol {PROTOCOL_VERSION}, the client {}; restart the daemon (helperctl daemon restart)",
                version.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
            ),
        ));
    }
    serde_json::from_value::<Envelope>(value)
        .map(|env| env.request)
        .map_err(|e| {
            // serde names an unknown tag "unknown variant"; other errors may quote a
            // field's value, which may be secret, so only the op is named.
            if e.to_string()
                .starts_with(&format!("unknown variant `{op}`"))
            {
                let shown: String = op.chars().take(40).filter(|c| !c.is_control()).collect();
                bad(format!("unknown op {shown:?}"))
            } else {
                bad(format!("malformed {op} request"))
            }
        })
}

pub async fn write_response(stream: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let mut bytes =
        zeroize::Zeroizing::new(serde_json::to_vec(response).expect("wire types always serialize"));
    bytes.push(b'\n');
    stream.write_all(&bytes).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: (ErrorCode, String)) -> ErrorCode {
        e.0
    }

    #[test]
    fn decode_classifies_bad_requests() {
        assert_eq!(
            code(decode(b"garbage\n").unwrap_err()),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(decode(b"{\"v\":1}\n").unwrap_err()),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(
                decode(format!("{{\"v\":{PROTOCOL_VERSION},\"op\":\"fly\"}}\n").as_bytes())
                    .unwrap_err()
            ),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(decode(b"{\"v\":7,\"op\":\"status\"}\n").unwrap_err()),
            ErrorCode::VersionMismatch
        );
        assert_eq!(
            decode(b"{\"v\":7,\"op\":\"shutdown\"}\n").unwrap(),
            Request::Shutdown
        );
        assert_eq!(
            decode(format!("{{\"v\":{PROTOCOL_VERSION},\"op\":\"status\"}}\n").as_bytes()).unwrap(),
            Request::Status
        );
    }

    #[test]
    fn malformed_request_error_does_not_quote_the_secret() {
        let line =
            format!(r#"{{"v":{PROTOCOL_VERSION},"op":"git","action":"get","input":12345678}}"#);
        let line = line.as_bytes();
        let (_, message) = decode(line).unwrap_err();
        assert!(!message.contains("12345678"), "{message}");
    }
}
