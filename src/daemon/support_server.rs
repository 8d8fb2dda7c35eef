//! The support socket (`helperctl support enable --user NAME [--for 2h]`): one other local
//! user may run read-only `status` and `audit` against this daemon, through a second
//! socket that admits only that uid and only those requests, until the grant expires or
//! `helperctl support disable` ends it. Every use is audited.

use std::sync::Arc;

use helperd_wire::wire::{ErrorCode, Request, Response};

use super::admin::{self, SupportListener};
use super::dispatch;
use super::line::{read_request, write_response, Incoming};
use super::peer::{Channel, Peer};
use super::state::State;
use crate::audit::kind;
use crate::ipc::{Acceptor, Serve};

/// The grant's accept loop; removes the socket when it ends.
pub async fn serve(state: Arc<State>, grant: SupportListener) {
    let SupportListener {
        listener,
        dir,
        uid,
        lifetime,
        mut stop,
    } = grant;
    let serving = state.clone();
    let serve: Serve = Arc::new(move |stream| {
        tokio::spawn(connection(serving.clone(), stream, uid));
    });
    let acceptor = Acceptor::start(listener, 1, serve);
    let expired = tokio::select! {
        _ = tokio::time::sleep(lifetime) => true,
        _ = &mut stop => false,
    };
    drop(acceptor.stop().await);
    let _ = std::fs::remove_file(dir.join("socket"));
    let _ = std::fs::remove_dir(&dir);
    if expired {
        admin::support_expired(&state, uid).await;
    }
}

/// One support connection: only the granted uid, only read-only requests.
async fn connection(state: Arc<State>, stream: crate::ipc::Connection, granted: u32) {
    let Ok(crate::ipc::PeerCreds { uid, pid, .. }) = stream.peer() else {
        return;
    };
    let Ok(mut stream) = stream.into_async() else {
        return;
    };
    let peer = Peer {
        uid,
        pid,
        channel: Channel::Support,
    };
    if uid != granted {
        tracing::warn!(
            peer_uid = uid,
            "support socket: refused a connection from a user without the grant"
        );
        state
            .audit(
                peer.event(kind::SUPPORT_USED)
                    .reason("refused: not the granted user"),
            )
            .await;
        let resp = Response::error(
            ErrorCode::Forbidden,
            "support access was not granted to you",
        );
        let _ = write_response(&mut stream, &resp).await;
        return;
    }
    let request = match read_request(&mut stream, state.settings.request_timeout).await {
        Incoming::Request(r) => r,
        Incoming::Reply(resp) => {
            let _ = write_response(&mut stream, &resp).await;
            return;
        }
        Incoming::Nothing => return,
    };
    let what = match &request {
        Request::Status => "status".to_string(),
        Request::Audit { .. } => "audit".to_string(),
        _ => "refused: a request that is not read-only".to_string(),
    };
    state
        .audit(peer.event(kind::SUPPORT_USED).reason(what))
        .await;
    let response = dispatch::support_request(&state, &request).await;
    let _ = write_response(&mut stream, &response).await;
}
