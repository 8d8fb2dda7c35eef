//! Request → service: a table of contents of what the daemon answers. Nothing is decided
//! here; `Shutdown` is answered by the server, which then stops.

use helperd_wire::wire::{ErrorCode, GitAction, Reply, Request, Response};
use zeroize::Zeroize;

use super::admin::{self, SupportListener};
use super::git;
use super::login;
use super::peer::Peer;
use super::state::State;
use super::tokens::{self, NewToken};
use crate::gitproto::GitCredential;
use crate::secret::Secret;

/// What the server must do besides answering.
pub enum Effect {
    /// Serve the support socket of a new grant.
    ServeSupport(SupportListener),
}

/// Answers one request from the main socket.
pub async fn request(state: &State, peer: &Peer, request: Request) -> (Response, Option<Effect>) {
    match request {
        Request::Git {
            action,
            input,
            timeout_secs,
        } => (
            git_request(state, peer, action, input, timeout_secs).await,
            None,
        ),
        // Boxed, so that the largest of the other ops' futures (a login, a verify of every
        // runtime) does not set the size of every git request's, allocated per request.
        other => Box::pin(other_request(state, peer, other)).await,
    }
}

/// Answers git's request.
async fn git_request(
    state: &State,
    peer: &Peer,
    action: GitAction,
    mut input: String,
    timeout_secs: Option<u64>,
) -> Response {
    state.look_at_files();
    let parsed = GitCredential::parse(&input);
    // git's input holds the password on `store`: gone as soon as it is parsed.
    input.zeroize();
    match parsed {
        Ok(cred) => git::request(state, peer, action, cred, timeout_secs).await,
        Err(e) => {
            tracing::warn!(?action, error = %e, "refused a malformed git request");
            Response::error(ErrorCode::BadRequest, e.to_string())
        }
    }
}

/// Answers any other request (and git's too, though [`request`] answers those itself).
async fn other_request(state: &State, peer: &Peer, request: Request) -> (Response, Option<Effect>) {
    state.look_at_files_now();
    let response = match request {
        Request::Git {
            action,
            input,
            timeout_secs,
        } => git_request(state, peer, action, input, timeout_secs).await,
        Request::Renew {
            runtime,
            secret,
            expires,
            mut input,
        } => {
            let response =
                git::renew_at_terminal(state, peer, runtime, Secret::new(secret), expires, &input)
                    .await;
            input.zeroize();
            response
        }
        Request::TokenSet {
            runtime,
            name,
            expires,
            scopes,
            secret,
            offline,
            force,
        } => {
            let new = NewToken {
                runtime,
                name,
                expires,
                scopes,
                offline,
                force,
            };
            tokens::set(state, peer, new, Secret::new(secret)).await
        }
        Request::TokenSetApp {
            runtime,
            key,
            offline,
        } => tokens::set_app(state, peer, runtime, Secret::new(key), offline).await,
        Request::TokenVerify { runtime } => tokens::verify(state, peer, runtime).await,
        Request::TokenLink { runtime, from } => tokens::link(state, peer, runtime, from).await,
        Request::TokenRemove { runtime, revoke } => {
            tokens::remove(state, peer, runtime, revoke).await
        }
        Request::TokenRotate { runtime } => tokens::rotate(state, peer, runtime).await,
        Request::LoginStart { runtime } => login::device_start(state, &runtime).await,
        Request::LoginPoll { runtime } => login::device_poll(state, peer, &runtime).await,
        Request::LoginBrowserStart {
            runtime,
            redirect_uri,
        } => login::browser_start(state, &runtime, redirect_uri).await,
        Request::LoginBrowserFinish {
            runtime,
            code,
            state: login_state,
        } => login::browser_finish(state, peer, &runtime, Secret::new(code), &login_state).await,
        Request::Status => admin::status(state).await,
        Request::Which { url } => admin::which(state, &url),
        Request::Reload => admin::reload(state),
        Request::Audit { since, runtime } => admin::audit(state, since, runtime.as_deref()).await,
        Request::SupportEnable {
            user,
            uid,
            duration_secs,
        } => {
            let (response, listener) =
                admin::support_enable(state, peer, user, uid, duration_secs).await;
            return (response, listener.map(Effect::ServeSupport));
        }
        Request::SupportDisable => admin::support_disable(state, peer).await,
        Request::Unlock { passphrase } => admin::unlock(state, Secret::new(passphrase)).await,
        Request::SetPassphrase { passphrase } => {
            admin::set_passphrase(state, Secret::new(passphrase)).await
        }
        Request::AdvanceClock { secs } => admin::advance_clock(state, secs),
        Request::Shutdown => Response::new(Reply::Done),
    };
    (response, None)
}

/// Answers one request from the forward socket (git on a remote machine, DESIGN.md §11):
/// git's requests and the renewal typed at the remote terminal, decided for a forwarded
/// request; nothing else, and nothing that tells which runtimes exist.
pub async fn forward_request(state: &State, peer: &Peer, request: Request) -> Response {
    match request {
        Request::Git { .. } | Request::Renew { .. } => {
            state
                .forward
                .served
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self::request(state, peer, request).await.0
        }
        _ => Response::error(
            ErrorCode::Forbidden,
            "this helperd socket is forwarded from another machine: it answers git only",
        ),
    }
}

/// Answers one request from the support socket: read-only `status` and `audit` only,
/// never anything else.
pub async fn support_request(state: &State, request: &Request) -> Response {
    state.look_at_files_now();
    match request {
        Request::Status => admin::status(state).await,
        Request::Audit { since, runtime } => admin::audit(state, *since, runtime.as_deref()).await,
        _ => Response::error(
            ErrorCode::Forbidden,
            "support access is read-only: only status and audit",
        ),
    }
}
