//! helperctl's requests: status, reload, which, and the token commands.

use helperd_wire::wire::{
    ConfigStatus, ErrorCode, PolicyStatus, Reply, Response, RuntimeStatus, TokenStatus,
    WhichCandidate, WhichReport,
};

use super::handler::{store_error, Peer};
use super::runtimes::set_token;
use super::state::{unix_now, Inner, State};
use crate::audit::{kind, AuditEvent};
use crate::config::{AuthScheme, RuntimeConfig};
use crate::runtime::{self, Location, Outcome, Route};
use crate::secret::Secret;
use crate::token::{TokenBook, TokenMeta};

/// An audit event naming the requesting process.
pub fn peer_event(event: &str, peer: &Peer) -> AuditEvent {
    let e = AuditEvent::now(event);
    match peer.pid {
        Some(pid) => e.peer(pid, peer.uid),
        None => e,
    }
}

fn done(notice: String) -> Response {
    Response::new(Reply::Done).with_notice(Some(notice))
}

fn no_runtime(name: &str) -> Response {
    Response::error(
        ErrorCode::BadRequest,
        format!("there is no runtime named {name:?} (see `helperctl runtime list`)"),
    )
}

/// `helperctl daemon reload`, SIGHUP.
pub fn reload(inner: &mut Inner) -> Response {
    match inner.config.reload() {
        Ok(()) => done(format!(
            "configuration reloaded: {} runtimes",
            inner.config.current().runtimes.len()
        )),
        Err(e) => Response::error(
            ErrorCode::Config,
            format!("{e}\nthe last good configuration stays in force"),
        ),
    }
}

pub fn token_status(
    book: &TokenBook,
    runtime: &str,
    now: u64,
    warn_days: u32,
) -> Option<TokenStatus> {
    let t = book.for_runtime(runtime)?;
    Some(TokenStatus {
        id: t.id.clone(),
        name: t.name.clone(),
        scopes: t.scopes.clone(),
        created: t.created,
        expires: t.expires,
        last_used: t.last_used,
        state: t.state(now, warn_days).name().into(),
        shared_with: book.shared_with(runtime),
        policy_violation: None,
        stale: None,
        checked_at: t.checked_at,
        kind: t.kind.clone(),
        login: t.login.clone(),
        notes: t.notes.clone(),
        oauth: t.oauth_client_id.is_some(),
    })
}

/// "not used since …": a token unused for `stale_days` (never used: counted from when it
/// was set), following the advice to delete tokens no longer in use.
fn stale_note(t: &TokenStatus, now: u64, stale_days: u32) -> Option<String> {
    let since = t.last_used.unwrap_or(t.created);
    if stale_days == 0 || now.saturating_sub(since) < u64::from(stale_days) * 86_400 {
        return None;
    }
    let what = if t.last_used.is_some() {
        "not used since"
    } else {
        "never used since it was set on"
    };
    Some(format!(
        "{what} {} — consider removing it (helperctl token remove)",
        crate::timefmt::format_date(since)
    ))
}

fn runtime_problem(rt: &RuntimeConfig, has_token: bool) -> Option<String> {
    if rt.auth == AuthScheme::Basic && rt.effective_username().is_none() {
        return Some(format!(
            "{} tokens need your account username: add `username = \"...\"` to this runtime",
            rt.provider.name()
        ));
    }
    (!has_token).then(|| format!("no token: run `helperctl token set {}`", rt.name))
}

/// The configuration and runtime part of `status`.
pub fn config_and_runtimes(state: &State, inner: &mut Inner) -> (ConfigStatus, Vec<RuntimeStatus>) {
    inner.config.refresh();
    let config = inner.config.current();
    inner.policy.refresh();
    let now = unix_now();
    let warn_days = super::runtimes::effective_warn_days(inner);
    let book = state.tokens(inner).ok().cloned().unwrap_or_default();
    let policy = inner.policy.current();
    let violations: Vec<(String, String)> = match &policy {
        Some((p, source)) => p
            .violations(&book.tokens, now, source)
            .into_iter()
            .map(|(id, v)| (id, v.message))
            .collect(),
        None => Vec::new(),
    };
    let runtimes = config
        .runtimes
        .iter()
        .map(|rt| {
            let mut token = token_status(&book, &rt.name, now, warn_days);
            if let Some(t) = &mut token {
                t.stale = stale_note(t, now, config.settings.stale_days);
                t.policy_violation = violations
                    .iter()
                    .find(|(id, _)| *id == t.id)
                    .map(|(_, m)| m.clone());
            }
            let mut problem = runtime_problem(rt, token.is_some());
            if let Some((p, source)) = &policy {
                if let Err(v) = p.check_runtime(rt, source) {
                    problem = Some(v.message);
                }
            }
            RuntimeStatus {
                name: rt.name.clone(),
                provider: rt.provider.name().into(),
                urls: rt.urls.iter().map(|u| u.to_string()).collect(),
                username: rt.effective_username().map(str::to_string),
                auth: match rt.auth {
                    AuthScheme::Basic => "basic".into(),
                    AuthScheme::Bearer => "bearer".into(),
                },
                problem,
                token,
            }
        })
        .collect();
    let mut error = inner.config.error().map(str::to_string);
    if let Err(e) = state.tokens(inner) {
        error = Some(error.map_or(e.clone(), |c| format!("{c}; {e}")));
    }
    let status = ConfigStatus {
        path: inner.config.path().display().to_string(),
        warn_days,
        error,
    };
    (status, runtimes)
}

/// `helperctl which URL`.
pub fn which(state: &State, inner: &mut Inner, url: &str) -> Response {
    inner.config.refresh();
    // The URL may carry a token (https://user:TOKEN@host/...): never echo it.
    let shown = helperd_wire::wire::redact_userinfo(url);
    let (loc, user) = match Location::parse_url_with_user(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Response::error(
                ErrorCode::BadRequest,
                format!("{shown:?} is not a URL helperd can route: {e}"),
            )
        }
    };
    let config = inner.config.current();
    let (route, notes) = runtime::route(&config, &loc, user.as_deref());
    let candidates = notes
        .iter()
        .map(|n| WhichCandidate {
            runtime: n.runtime.clone(),
            prefix: n.prefix.clone(),
            outcome: match &n.outcome {
                Outcome::Chosen => "chosen".into(),
                Outcome::LessSpecific => "less specific".into(),
                Outcome::UsernameDiffers { request, runtime } => {
                    format!("username differs (URL has {request:?}, runtime uses {runtime:?})")
                }
                Outcome::NeedsPath => "needs path".into(),
            },
        })
        .collect();
    let mut report = WhichReport {
        url: shown,
        runtime: None,
        prefix: None,
        reason: String::new(),
        fix: None,
        candidates,
        token: None,
    };
    match route {
        Route::Runtime { runtime, prefix } => {
            let others = notes.len().saturating_sub(1);
            report.reason = if others == 0 {
                format!("prefix {prefix} is the only one that matches")
            } else {
                format!(
                    "prefix {prefix} is the most specific of {} matching prefixes",
                    others + 1
                )
            };
            report.runtime = Some(runtime.name.clone());
            report.prefix = Some(prefix.to_string());
            if let Ok(book) = state.tokens(inner) {
                report.token =
                    token_status(book, &runtime.name, unix_now(), config.settings.warn_days);
            }
        }
        Route::NeedsPath { fix, runtimes } => {
            report.reason = format!(
                "runtimes {} differ by path on this host; git sends no path here unless told to",
                runtimes.join(", ")
            );
            report.fix = Some(fix);
        }
        Route::NoRuntime => {
            report.reason =
                "no runtime's URL prefix matches; git's stored plain credentials answer".into();
        }
    }
    Response::new(Reply::Which {
        which: Box::new(report),
    })
}

/// `helperctl token set`.
/// What `helperctl token set` asks for, besides the secret.
pub struct NewToken {
    pub runtime: String,
    pub name: Option<String>,
    pub expires: Option<u64>,
    pub scopes: Vec<String>,
    /// What the provider said about it; `None` with `--offline`.
    pub checked: Option<crate::provider::TokenInfo>,
    pub force: bool,
}

pub async fn token_set(
    state: &State,
    inner: &mut Inner,
    peer: &Peer,
    new: NewToken,
    secret: Secret,
) -> Response {
    let NewToken {
        runtime,
        name,
        expires,
        scopes,
        checked,
        force,
    } = new;
    inner.config.refresh();
    if inner.config.current().runtime(&runtime).is_none() {
        return no_runtime(&runtime);
    }
    if secret.is_empty() {
        return Response::error(
            ErrorCode::BadRequest,
            "the token is empty; nothing was stored",
        );
    }
    let now = unix_now();
    if let Some(t) = expires {
        if t <= now {
            return Response::error(
                ErrorCode::BadRequest,
                format!(
                    "that expiry ({}) is in the past; nothing was stored",
                    crate::timefmt::format_datetime(t)
                ),
            );
        }
    }
    let mut token = TokenMeta {
        scopes,
        ..TokenMeta::new(name, now, expires)
    };
    match checked {
        Some(info) => {
            if let Err(resp) = super::providers::apply_check(&mut token, info, expires, force) {
                return resp;
            }
        }
        None => token
            .notes
            .push("not checked with the host (--offline)".into()),
    }
    let expires = token.expires;
    if expires.is_some_and(|t| t <= now) {
        return Response::error(
            ErrorCode::Provider,
            "the host says this token has already expired; nothing was stored",
        );
    }
    let label = token
        .name
        .clone()
        .map(|n| format!("token {n:?}"))
        .unwrap_or_else(|| "token".into());
    let expiry = expires
        .map(|t| format!("expires {}", crate::timefmt::format_datetime(t)))
        .unwrap_or_else(|| "no expiry".into());
    let audit_name = super::runtimes::token_audit_name(&token);
    match set_token(state, inner, Some(peer), &runtime, token, secret).await {
        Ok(()) => {
            tracing::info!(%runtime, "token set");
            let e = peer_event(kind::TOKEN_SET, peer)
                .runtime(&runtime)
                .token(audit_name);
            state.audit(inner, e);
            done(format!("{label} set for runtime {runtime} ({expiry})"))
        }
        Err(resp) => resp,
    }
}

/// `helperctl token link RUNTIME --from OTHER`.
pub async fn token_link(
    state: &State,
    inner: &mut Inner,
    peer: &Peer,
    runtime: String,
    from: String,
) -> Response {
    inner.config.refresh();
    let config = inner.config.current();
    for name in [&runtime, &from] {
        if config.runtime(name).is_none() {
            return no_runtime(name);
        }
    }
    let hosts = super::runtimes::runtime_hosts(&config, &runtime);
    let orphan = match state.tokens(inner) {
        Ok(book) => match book.link(&runtime, &hosts, &from) {
            Ok(orphan) => orphan,
            Err(e) => return Response::error(ErrorCode::BadRequest, e.to_string()),
        },
        Err(e) => return Response::error(ErrorCode::Internal, e),
    };
    if let Err(e) = state.save_tokens(inner) {
        return Response::error(ErrorCode::Internal, e);
    }
    if let Some(id) = orphan {
        if let Err(e) = state.delete_token_secret(inner, &id).await {
            return store_error(e);
        }
    }
    tracing::info!(%runtime, %from, "token linked");
    let mut e = peer_event(kind::TOKEN_LINKED, peer)
        .runtime(&runtime)
        .reason(format!("the token of runtime {from}"));
    if let Some(t) = state
        .tokens(inner)
        .ok()
        .and_then(|b| b.for_runtime(&runtime).cloned())
    {
        e = e.token(super::runtimes::token_audit_name(&t));
    }
    state.audit(inner, e);
    done(format!(
        "runtime {runtime} now uses the token of runtime {from} (stored once)"
    ))
}

/// `token remove --revoke`, first part: revokes the runtime's token at the host, with the
/// state lock held only to read the secret (git requests must not wait for the host).
/// Returns what to tell the user.
pub async fn revoke_first(state: &State, peer: &Peer, runtime: &str) -> Option<String> {
    let (token, rt, secret) = {
        let mut inner = state.lock().await;
        let token = state
            .tokens(&mut inner)
            .ok()?
            .for_runtime(runtime)
            .cloned()?;
        let rt = inner.config.current().runtime(runtime).cloned()?;
        let others: Vec<_> = token
            .runtimes
            .iter()
            .filter(|r| *r != runtime)
            .cloned()
            .collect();
        if !others.is_empty() {
            return Some(format!(
                "it was not revoked: runtimes {} still use it",
                others.join(", ")
            ));
        }
        match state.token_secret(&mut inner, &token.id).await {
            Ok(Some(secret)) => (token, rt, secret),
            Ok(None) => {
                return Some("its secret was already gone, so it could not be revoked".into())
            }
            Err(e) => return Some(format!("it could not be revoked: {e}")),
        }
    };
    let said = super::providers::revoke(state, &rt, &secret).await;
    let mut inner = state.lock().await;
    let e = peer_event(kind::TOKEN_REVOKED, peer)
        .runtime(runtime)
        .token(super::runtimes::token_audit_name(&token))
        .reason(said.clone());
    state.audit(&mut inner, e);
    Some(said)
}

/// `helperctl token remove RUNTIME`; `revoked`: what revoking it at the host did (see
/// [`revoke_first`]).
pub async fn token_remove(
    state: &State,
    inner: &mut Inner,
    peer: &Peer,
    runtime: String,
    revoked: Option<String>,
) -> Response {
    let removed_name = state.tokens(inner).ok().and_then(|b| {
        b.for_runtime(&runtime)
            .map(super::runtimes::token_audit_name)
    });
    let (had, shared, orphan) = match state.tokens(inner) {
        Ok(book) => (
            book.for_runtime(&runtime).is_some(),
            book.shared_with(&runtime),
            book.unlink(&runtime),
        ),
        Err(e) => return Response::error(ErrorCode::Internal, e),
    };
    if !had {
        return Response::error(
            ErrorCode::BadRequest,
            format!("runtime {runtime:?} has no token"),
        );
    }
    if let Err(e) = state.save_tokens(inner) {
        return Response::error(ErrorCode::Internal, e);
    }
    let what = match orphan {
        Some(id) => match state.delete_token_secret(inner, &id).await {
            Ok(()) => "the token was deleted from the store".to_string(),
            Err(e) => return store_error(e),
        },
        None => format!("the token stays for {}", shared.join(", ")),
    };
    tracing::info!(%runtime, "token removed");
    let mut e = peer_event(kind::TOKEN_REMOVED, peer)
        .runtime(&runtime)
        .reason(what.clone());
    if let Some(name) = removed_name {
        e = e.token(name);
    }
    state.audit(inner, e);
    match revoked {
        Some(said) => done(format!(
            "runtime {runtime} has no token any more; {what}; {said}"
        )),
        None => done(format!("runtime {runtime} has no token any more; {what}")),
    }
}

/// The policy part of `status` (after [`config_and_runtimes`], which re-read the files).
pub fn policy_status(inner: &Inner) -> Option<PolicyStatus> {
    let error = inner.policy.error().map(str::to_string);
    match inner.policy.current() {
        Some((p, path)) => Some(PolicyStatus {
            path: path.display().to_string(),
            rules: p
                .rules()
                .into_iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect(),
            error,
        }),
        None => error.map(|e| PolicyStatus {
            path: crate::policy_file::policy_path().display().to_string(),
            rules: Vec::new(),
            error: Some(e),
        }),
    }
}

/// `helperctl audit`.
pub fn audit(state: &State, since: Option<u64>, runtime: Option<&str>) -> Response {
    match crate::audit::read_events(&state.settings.state_dir, since, runtime) {
        Ok(events) => Response::new(Reply::Audit {
            events: events
                .iter()
                .map(|e| serde_json::to_value(e).expect("audit events serialize"))
                .collect(),
        }),
        Err(e) => Response::error(
            ErrorCode::Internal,
            format!("failed to read the audit log: {e}"),
        ),
    }
}
