//! The request handler: the ONLY code that decides which secret leaves the daemon
//! (DESIGN.md §3).

use helperd_wire::wire::{
    ErrorCode, GitAction, Reply, Request, Response, StatusReport, StoreStatus, PROTOCOL_VERSION,
};
use zeroize::Zeroize;

use std::sync::Arc;

use super::control;
use super::providers;
use super::runtimes::{self, Ctx, Routed};
use super::state::{unix_now, Inner, State};
use super::support;
use crate::audit::kind;
use crate::gitproto::GitCredential;
use crate::plain::StoreOutcome;
use crate::secret::Secret;
use crate::store::StoreError;

/// Who is asking (from the socket's peer credentials), for the log and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
}

/// Answers one request. `Shutdown` is answered here; the server then stops.
pub async fn handle(state: &Arc<State>, request: Request, peer: &Peer) -> Response {
    match request {
        Request::Git {
            action,
            mut input,
            timeout_secs,
        } => {
            let parsed = GitCredential::parse(&input);
            // git's input holds the password on `store`: gone as soon as it is parsed.
            input.zeroize();
            match parsed {
                Ok(cred) => git(state, action, cred, timeout_secs, peer).await,
                Err(e) => {
                    tracing::warn!(?action, error = %e, "refused a malformed git request");
                    Response::error(ErrorCode::BadRequest, e.to_string())
                }
            }
        }
        Request::Status => status(state).await,
        Request::Audit { since, runtime } => control::audit(state, since, runtime.as_deref()),
        Request::SupportEnable {
            user,
            uid,
            duration_secs,
        } => support::enable(state, peer, user, uid, duration_secs).await,
        Request::SupportDisable => support::disable(state, peer).await,
        Request::Reload => control::reload(&mut *state.lock().await),
        Request::Which { url } => control::which(state, &mut *state.lock().await, &url),
        Request::TokenSet {
            runtime,
            name,
            expires,
            scopes,
            secret,
            offline,
            force,
        } => {
            let new = control::NewToken {
                runtime,
                name,
                expires,
                scopes,
                checked: None,
                force,
            };
            providers::token_set(state, peer, new, Secret::new(secret), offline).await
        }
        Request::TokenVerify { runtime } => {
            let runtimes: Vec<_> = {
                let mut inner = state.lock().await;
                inner.config.refresh();
                let config = inner.config.current();
                match &runtime {
                    Some(name) => match config.runtime(name) {
                        Some(rt) => vec![rt.clone()],
                        None => {
                            return Response::error(
                                ErrorCode::BadRequest,
                                format!("there is no runtime named {name:?}"),
                            )
                        }
                    },
                    None => config.runtimes.clone(),
                }
            };
            providers::verify(state, peer, runtimes).await
        }
        Request::LoginStart { runtime } => match login_runtime(state, &runtime).await {
            Ok(rt) => providers::login_start(state, &rt).await,
            Err(resp) => resp,
        },
        Request::LoginPoll { runtime } => match login_runtime(state, &runtime).await {
            Ok(rt) => providers::login_poll(state, peer, &rt).await,
            Err(resp) => resp,
        },
        Request::LoginBrowserStart {
            runtime,
            redirect_uri,
        } => match login_runtime(state, &runtime).await {
            Ok(rt) => providers::login_browser_start(state, &rt, redirect_uri).await,
            Err(resp) => resp,
        },
        Request::LoginBrowserFinish {
            runtime,
            code,
            state: login_state,
        } => match login_runtime(state, &runtime).await {
            Ok(rt) => {
                providers::login_browser_finish(state, peer, &rt, Secret::new(code), &login_state)
                    .await
            }
            Err(resp) => resp,
        },
        Request::TokenRotate { runtime } => match login_runtime(state, &runtime).await {
            Ok(rt) => providers::rotate(state, peer, &rt).await,
            Err(resp) => resp,
        },
        Request::TokenLink { runtime, from } => {
            control::token_link(state, &mut *state.lock().await, peer, runtime, from).await
        }
        Request::Renew {
            runtime,
            secret,
            expires,
            mut input,
        } => {
            let secret = Secret::new(secret);
            let typed = expires.filter(|e| !e.trim().is_empty());
            // Left empty: the expiry the host reports, when it answers quickly.
            let expires = match typed {
                Some(e) => Some(e),
                None => providers::reported_expiry(state, &runtime, &secret)
                    .await
                    .map(crate::timefmt::format_rfc3339),
            };
            let mut inner = state.lock().await;
            let response =
                runtimes::renew(state, &mut inner, peer, runtime, secret, expires, &input).await;
            input.zeroize();
            response
        }
        Request::TokenRemove { runtime, revoke } => {
            let revoked = match revoke {
                true => control::revoke_first(state, peer, &runtime).await,
                false => None,
            };
            control::token_remove(state, &mut *state.lock().await, peer, runtime, revoked).await
        }
        Request::Shutdown => Response::new(Reply::Done),
        Request::Unlock { passphrase } => {
            let passphrase = Secret::new(passphrase);
            let mut inner = state.lock().await;
            match state.unlock(&mut inner, passphrase).await {
                Ok(()) => {
                    tracing::info!("store unlocked");
                    Response::new(Reply::Done)
                }
                Err(e) => store_error(e),
            }
        }
        Request::SetPassphrase { passphrase } => {
            let passphrase = Secret::new(passphrase);
            let mut inner = state.lock().await;
            match state.set_passphrase(&mut inner, passphrase).await {
                Ok(()) => {
                    tracing::info!("file store now protected by a passphrase");
                    Response::new(Reply::Done)
                }
                Err(e) => store_error(e),
            }
        }
    }
}

/// The runtime a login is for.
async fn login_runtime(
    state: &State,
    name: &str,
) -> Result<crate::config::RuntimeConfig, Response> {
    let mut inner = state.lock().await;
    inner.config.refresh();
    inner
        .config
        .current()
        .runtime(name)
        .cloned()
        .ok_or_else(|| {
            Response::error(
                ErrorCode::BadRequest,
                format!("there is no runtime named {name:?} (see `helperctl runtime list`)"),
            )
        })
}

/// Maps a store failure to the wire: a fixed code plus the message naming the way out.
pub fn store_error(e: StoreError) -> Response {
    let code = match e {
        StoreError::Locked { .. } => ErrorCode::StoreLocked,
        StoreError::WrongPassphrase { .. } => ErrorCode::Forbidden,
        StoreError::NotSupported { .. } => ErrorCode::BadRequest,
        _ => ErrorCode::StoreUnavailable,
    };
    Response::error(code, e.to_string())
}

async fn git(
    state: &State,
    action: GitAction,
    cred: GitCredential,
    timeout_secs: Option<u64>,
    peer: &Peer,
) -> Response {
    let mut inner = state.lock().await;
    let config_notice = inner.config.refresh_for_git();
    inner.policy.refresh();
    let ctx = Ctx::new(peer, &cred);
    if action != GitAction::Erase {
        if let Some(refusal) = store_below_policy(state, &mut inner, &ctx).await {
            return refusal;
        }
    }
    let routed = match action {
        GitAction::Get => runtimes::get(state, &mut inner, &cred, &ctx).await,
        GitAction::Store => runtimes::store(state, &mut inner, &cred, &ctx).await,
        GitAction::Erase => runtimes::erase(state, &mut inner, &cred, &ctx).await,
    };
    let response = match routed {
        Routed::Done(response) => *response,
        Routed::Plain => plain(state, &mut inner, action, &cred, timeout_secs, &ctx).await,
    };
    with_extra_notice(response, config_notice)
}

/// Adds `extra` before the response's own notice.
fn with_extra_notice(mut response: Response, extra: Option<String>) -> Response {
    response.notice = match (extra, response.notice.take()) {
        (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
        (a, b) => a.or(b),
    };
    response
}

/// git's request for a URL no runtime claims: the plain credentials git stored.
async fn plain(
    state: &State,
    inner: &mut Inner,
    action: GitAction,
    cred: &GitCredential,
    timeout_secs: Option<u64>,
    ctx: &Ctx<'_>,
) -> Response {
    let now = unix_now();
    if action == GitAction::Store {
        if let Some((policy, source)) = inner.policy.current() {
            if let Err(v) = policy.check_plain_store(&source) {
                let e = ctx
                    .event(kind::REFUSED)
                    .reason(format!("policy: {}", v.rule));
                state.audit(inner, e);
                return done_for_git()
                    .with_notice(Some(format!("helperd: not stored: {}", v.message)));
            }
        }
    }
    let table = match state.table(inner).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(?action, error = %e, "cannot answer git: store problem");
            return store_error(e);
        }
    };
    let host = cred.host.as_deref().unwrap_or("");
    let protocol = cred.protocol.as_deref().unwrap_or("");
    match action {
        GitAction::Get => match table.get(cred, now).map(|entry| entry.answer(cred)) {
            None => {
                tracing::debug!(protocol, host, "get: no credential");
                Response::new(Reply::Git {
                    output: String::new(),
                })
            }
            Some(Ok(text)) => {
                tracing::info!(protocol, host, "get: served a plain credential");
                state.audit(inner, ctx.event(kind::SERVED).reason("plain credential"));
                Response::new(Reply::Git {
                    output: text.expose().to_string(),
                })
            }
            Some(Err(unsafe_value)) => {
                tracing::error!(error = %unsafe_value, "refused to answer with a stored value");
                Response::error(ErrorCode::Internal, unsafe_value.to_string())
            }
        },
        GitAction::Store => match table.store(cred, timeout_secs, now) {
            StoreOutcome::Stored => match state.persist(inner).await {
                Ok(()) => {
                    tracing::info!(protocol, host, lifetime = ?timeout_secs, "store: kept a plain credential");
                    state.audit(inner, ctx.event(kind::STORED).reason("plain credential"));
                    done_for_git()
                }
                Err(e) => store_error(e),
            },
            outcome => {
                tracing::debug!(protocol, host, ?outcome, "store: nothing kept");
                done_for_git()
            }
        },
        GitAction::Erase => {
            let erased = table.erase(cred, now);
            if erased == 0 {
                tracing::debug!(protocol, host, "erase: nothing matched");
                return done_for_git();
            }
            match state.persist(inner).await {
                Ok(()) => {
                    tracing::info!(protocol, host, erased, "erase: removed plain credentials");
                    let e = ctx
                        .event(kind::ERASED)
                        .reason(format!("{erased} plain credential(s)"));
                    state.audit(inner, e);
                    done_for_git()
                }
                Err(e) => store_error(e),
            }
        }
    }
}

/// The policy's `min_store`: no secret is served or stored through a weaker store.
async fn store_below_policy(state: &State, inner: &mut Inner, ctx: &Ctx<'_>) -> Option<Response> {
    let (policy, source) = inner.policy.current()?;
    // Opening the store is what tells its strength; an unopenable store errs later anyway.
    state.store(inner).await.ok()?;
    let strength = state.store_strength(inner)?;
    let violation = policy.check_store(strength, &source).err()?;
    let e = ctx
        .event(kind::POLICY_VIOLATION)
        .reason(violation.message.clone());
    state.audit(inner, e);
    Some(Response::error(ErrorCode::Policy, violation.message))
}

/// `store` and `erase` print nothing for git.
fn done_for_git() -> Response {
    Response::new(Reply::Git {
        output: String::new(),
    })
}

/// `status`: daemon, store, configuration, runtimes, policy, support access.
pub async fn status(state: &State) -> Response {
    let mut inner = state.lock().await;
    let store = match state.store(&mut inner).await {
        Err(e) => StoreStatus {
            kind: e
                .store()
                .or(state.settings.forced_store)
                .map(|k| k.name().to_string())
                .unwrap_or_else(|| "unknown".into()),
            protection: "unknown".into(),
            state: "unavailable".into(),
            problem: Some(e.to_string()),
            plain_credentials: None,
        },
        Ok(store) => {
            let kind = store.kind().name().to_string();
            let protection = store.protection();
            match state.table(&mut inner).await {
                Ok(table) => StoreStatus {
                    kind,
                    protection,
                    state: "ok".into(),
                    problem: None,
                    plain_credentials: Some(table.len_alive(unix_now())),
                },
                Err(e @ StoreError::Locked { .. }) => StoreStatus {
                    kind,
                    protection,
                    state: "locked".into(),
                    problem: Some(e.to_string()),
                    plain_credentials: None,
                },
                Err(e) => StoreStatus {
                    kind,
                    protection,
                    state: "unavailable".into(),
                    problem: Some(e.to_string()),
                    plain_credentials: None,
                },
            }
        }
    };
    let (config, runtimes) = control::config_and_runtimes(state, &mut inner);
    let policy = control::policy_status(&inner);
    let support = inner.support.as_ref().map(|g| g.status.clone());
    Response::new(Reply::Status {
        status: Box::new(StatusReport {
            config,
            runtimes,
            policy,
            support,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: PROTOCOL_VERSION,
            uptime_secs: state.started.elapsed().as_secs(),
            socket: state.settings.socket.display().to_string(),
            store,
        }),
    })
}
