//! Support access (`helperctl support enable --user NAME [--for 2h]`): one other local user
//! may run read-only `status` and `audit` against this daemon, through a second socket
//! that accepts only that uid and only those requests, until the grant expires or
//! `helperctl support disable` ends it. Every use is audited.
//!
//! The second socket lives in its own folder under the temporary directory (the main
//! socket's folder is 0700 and stays so): the folder is 0711 (others may pass, not list),
//! the socket 0666; the peer-credential check is what admits only the granted uid.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use helperd_wire::wire::{ErrorCode, Request, Response, SupportStatus};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use super::control::peer_event;
use super::handler::{self, Peer};
use super::server::{read_request, write_response, Incoming};
use super::state::{unix_now, State};
use crate::audit::kind;

/// A grant in force.
pub struct SupportGrant {
    pub status: SupportStatus,
    /// Dropping or sending ends the grant's listener.
    stop: Option<oneshot::Sender<()>>,
}

impl SupportGrant {
    pub fn end(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The support socket's folder for this daemon (unique per daemon process, so several
/// daemons of one user — sandboxes, tests — never collide).
fn support_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "helperd-support-{}-{}",
        nix::unistd::geteuid().as_raw(),
        std::process::id()
    ))
}

fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o711).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(dir)?;
            if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{} exists and is not our folder", dir.display()),
                ));
            }
        }
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
}

/// Opens the support socket for `uid` until `now + duration_secs`, replacing any grant.
pub async fn enable(
    state: &Arc<State>,
    peer: &Peer,
    user: String,
    uid: u32,
    duration_secs: u64,
) -> Response {
    if uid == peer.uid {
        return Response::error(
            ErrorCode::BadRequest,
            "support access is for another user; you already have full access",
        );
    }
    if duration_secs == 0 || duration_secs > 7 * 86_400 {
        return Response::error(
            ErrorCode::BadRequest,
            "support access lasts from 1 second to 7 days",
        );
    }
    let mut inner = state.lock().await;
    if let Some(mut old) = inner.support.take() {
        old.end();
    }
    let dir = support_dir();
    let socket = dir.join("socket");
    let listener = match prepare_dir(&dir).and_then(|()| {
        let _ = std::fs::remove_file(&socket);
        let l = std::os::unix::net::UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
        l.set_nonblocking(true)?;
        UnixListener::from_std(l)
    }) {
        Ok(l) => l,
        Err(e) => {
            return Response::error(
                ErrorCode::Internal,
                format!(
                    "failed to open the support socket {}: {e}",
                    socket.display()
                ),
            )
        }
    };
    let until = unix_now().saturating_add(duration_secs);
    let status = SupportStatus {
        user: user.clone(),
        uid,
        until,
        socket: socket.display().to_string(),
    };
    let (stop_tx, stop_rx) = oneshot::channel();
    inner.support = Some(SupportGrant {
        status: status.clone(),
        stop: Some(stop_tx),
    });
    let e = peer_event(kind::SUPPORT_GRANTED, peer).reason(format!(
        "user {user} (uid {uid}) until {}",
        crate::timefmt::format_datetime(until)
    ));
    state.audit(&mut inner, e);
    drop(inner);
    tracing::info!(%user, uid, until, "support access granted");
    tokio::spawn(serve(
        state.clone(),
        listener,
        dir,
        uid,
        Duration::from_secs(duration_secs),
        stop_rx,
    ));
    Response::new(helperd_wire::wire::Reply::Done).with_notice(Some(format!(
        "support access for {user} (uid {uid}) until {}.\nThey run, as themselves:\n  HELPERD_SOCKET={} helperctl status\n  HELPERD_SOCKET={} helperctl audit\nEnd it now with `helperctl support disable`.",
        crate::timefmt::format_datetime(until),
        socket.display(),
        socket.display()
    )))
}

/// Ends support access now.
pub async fn disable(state: &Arc<State>, peer: &Peer) -> Response {
    let mut inner = state.lock().await;
    match inner.support.take() {
        Some(mut grant) => {
            grant.end();
            let e = peer_event(kind::SUPPORT_REVOKED, peer)
                .reason(format!("ended by the user (was for {})", grant.status.user));
            state.audit(&mut inner, e);
            Response::new(helperd_wire::wire::Reply::Done).with_notice(Some(format!(
                "support access for {} ended",
                grant.status.user
            )))
        }
        None => Response::error(ErrorCode::BadRequest, "support access is not enabled"),
    }
}

/// The grant's accept loop; removes the socket when it ends.
async fn serve(
    state: Arc<State>,
    listener: UnixListener,
    dir: PathBuf,
    uid: u32,
    lifetime: Duration,
    mut stop: oneshot::Receiver<()>,
) {
    let expiry = tokio::time::sleep(lifetime);
    tokio::pin!(expiry);
    let expired = loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(connection(state.clone(), stream, uid));
                }
            }
            _ = &mut expiry => break true,
            _ = &mut stop => break false,
        }
    };
    drop(listener);
    let _ = std::fs::remove_file(dir.join("socket"));
    let _ = std::fs::remove_dir(&dir);
    if expired {
        let mut inner = state.lock().await;
        if inner.support.as_ref().is_some_and(|g| g.status.uid == uid) {
            inner.support = None;
        }
        let e = crate::audit::AuditEvent::now(kind::SUPPORT_REVOKED).reason("expired");
        state.audit(&mut inner, e);
        tracing::info!("support access expired");
    }
}

/// One support connection: only the granted uid, only read-only requests.
async fn connection(state: Arc<State>, mut stream: UnixStream, granted: u32) {
    let (uid, pid) = match crate::ipc::peer(&stream) {
        Ok(p) => p,
        Err(_) => return,
    };
    let peer = Peer { uid, pid };
    if uid != granted {
        tracing::warn!(
            peer_uid = uid,
            "support socket: refused a connection from a user without the grant"
        );
        let e = peer_event(kind::SUPPORT_USED, &peer).reason("refused: not the granted user");
        state.audit(&mut *state.lock().await, e);
        let resp = Response::error(
            ErrorCode::Forbidden,
            "support access was not granted to you",
        );
        let _ = write_response(&mut stream, &resp).await;
        return;
    }
    let request = match read_request(&mut stream).await {
        Incoming::Request(r) => r,
        Incoming::Reply(resp) => {
            let _ = write_response(&mut stream, &resp).await;
            return;
        }
        Incoming::Nothing => return,
    };
    let (allowed, what) = match &request {
        Request::Status => (true, "status"),
        Request::Audit { .. } => (true, "audit"),
        _ => (false, "a request that is not read-only"),
    };
    let reason = if allowed {
        what.to_string()
    } else {
        format!("refused: {what}")
    };
    let e = peer_event(kind::SUPPORT_USED, &peer).reason(reason);
    state.audit(&mut *state.lock().await, e);
    // Served here directly, not through `handler::handle`: the support path must never
    // reach anything but these two read-only answers.
    let response = if let Request::Audit { since, runtime } = &request {
        super::control::audit(&state, *since, runtime.as_deref())
    } else if allowed {
        handler::status(&state).await
    } else {
        Response::error(
            ErrorCode::Forbidden,
            "support access is read-only: only status and audit",
        )
    };
    let _ = write_response(&mut stream, &response).await;
}
