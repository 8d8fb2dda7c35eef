//! helperctl's requests: status, reload, which, and the token commands.

use helperd_wire::wire::{
    ConfigStatus, ErrorCode, Reply, Response, RuntimeStatus, TokenStatus, WhichCandidate,
    WhichReport,
};

use super::handler::store_error;
use super::runtimes::set_token;
use super::state::{unix_now, Inner, State};
use crate::config::{AuthScheme, RuntimeConfig};
use crate::runtime::{self, Location, Outcome, Route};
use crate::secret::Secret;
use crate::token::{new_token_id, TokenBook, TokenMeta};

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
    })
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
    let now = unix_now();
    let warn_days = config.settings.warn_days;
    let book = state.tokens(inner).ok().cloned().unwrap_or_default();
    let runtimes = config
        .runtimes
        .iter()
        .map(|rt| {
            let token = token_status(&book, &rt.name, now, warn_days);
            RuntimeStatus {
                name: rt.name.clone(),
                provider: rt.provider.name().into(),
                urls: rt.urls.iter().map(|u| u.to_string()).collect(),
                username: rt.effective_username().map(str::to_string),
                auth: match rt.auth {
                    AuthScheme::Basic => "basic".into(),
                    AuthScheme::Bearer => "bearer".into(),
                },
                problem: runtime_problem(rt, token.is_some()),
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
    let (loc, user) = match Location::parse_url_with_user(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Response::error(
                ErrorCode::BadRequest,
                format!("{url:?} is not a URL helperd can route: {e}"),
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
        url: url.to_string(),
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
    Response::new(Reply::Which { which: report })
}

/// `helperctl token set`.
pub async fn token_set(
    state: &State,
    inner: &mut Inner,
    runtime: String,
    name: Option<String>,
    expires: Option<u64>,
    scopes: Vec<String>,
    secret: Secret,
) -> Response {
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
    let token = TokenMeta {
        id: new_token_id(),
        name,
        scopes,
        created: now,
        expires,
        last_used: None,
        rejected_at: None,
        runtimes: Vec::new(),
        replaced_at: None,
    };
    let label = token
        .name
        .clone()
        .map(|n| format!("token {n:?}"))
        .unwrap_or_else(|| "token".into());
    let expiry = expires
        .map(|t| format!("expires {}", crate::timefmt::format_datetime(t)))
        .unwrap_or_else(|| "no expiry".into());
    match set_token(state, inner, &runtime, token, secret).await {
        Ok(()) => {
            tracing::info!(%runtime, "token set");
            done(format!("{label} set for runtime {runtime} ({expiry})"))
        }
        Err(resp) => resp,
    }
}

/// `helperctl token link RUNTIME --from OTHER`.
pub async fn token_link(
    state: &State,
    inner: &mut Inner,
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
    let orphan = match state.tokens(inner) {
        Ok(book) => match book.link(&runtime, &from) {
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
    done(format!(
        "runtime {runtime} now uses the token of runtime {from} (stored once)"
    ))
}

/// `helperctl token remove RUNTIME`.
pub async fn token_remove(state: &State, inner: &mut Inner, runtime: String) -> Response {
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
    done(format!("runtime {runtime} has no token any more; {what}"))
}
