//! The daemon's use of the provider APIs (`crate::provider`): checking a token before it
//! is stored, re-checking it (`token verify`), revoking it, the OAuth device login, and
//! refreshing OAuth tokens before they expire.
//!
//! HTTP calls are made without the state lock where the caller allows it (token set,
//! verify, revoke, login polling), so git requests never wait for a slow host; a refresh
//! happens under the lock, which is what makes many concurrent git processes cause exactly
//! one refresh: the first refreshes, the others then find a fresh token.

use std::collections::HashMap;
use std::sync::OnceLock;

use helperd_wire::wire::{ErrorCode, LoginStep, Reply, Response};

use super::handler::{store_error, Peer};
use super::runtimes::{set_token, token_audit_name};
use super::state::{unix_now, Inner, State};
use crate::audit::kind;
use crate::config::RuntimeConfig;
use crate::provider::{
    self, DevicePoll, OAuthTokens, ProviderClient, ProviderError, RevokeOutcome, Target, TokenInfo,
};
use crate::secret::Secret;
use crate::token::{refresh_key, TokenMeta};

/// The one HTTP client, built on first use (an idle daemon never pays for it).
pub fn client(cell: &OnceLock<ProviderClient>) -> Result<ProviderClient, Response> {
    if let Some(c) = cell.get() {
        return Ok(c.clone());
    }
    let c = ProviderClient::new().map_err(provider_error)?;
    Ok(cell.get_or_init(|| c).clone())
}

/// A provider failure on the wire. Provider errors never contain a secret.
pub fn provider_error(e: ProviderError) -> Response {
    Response::error(ErrorCode::Provider, e.to_string())
}

/// How long before expiry an OAuth token is refreshed.
const REFRESH_AHEAD_SECS: u64 = 300;

/// A login waiting for the user's approval: a device code to poll with, or (browser
/// login) the PKCE verifier and state to finish with.
pub struct PendingLogin {
    device_code: Secret,
    client_id: String,
    interval: u64,
    deadline: u64,
    browser: Option<BrowserLogin>,
}

struct BrowserLogin {
    verifier: Secret,
    state: String,
    redirect_uri: String,
}

/// How long a browser login may take.
const BROWSER_LOGIN_SECS: u64 = 600;

/// Unpadded base64url (RFC 4648 §5), as PKCE wants it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn random_base64url(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    base64url(&bytes)
}

/// RFC 7636 §4.2: S256 challenge of a verifier.
fn pkce_challenge(verifier: &str) -> String {
    use sha2::Digest;
    base64url(&sha2::Sha256::digest(verifier.as_bytes()))
}

/// `login` for Gitea/Forgejo/Codeberg: the page to open, with a fresh PKCE verifier kept
/// here (never sent to helperctl).
pub async fn login_browser_start(
    state: &State,
    rt: &RuntimeConfig,
    redirect_uri: String,
) -> Response {
    let target = Target::for_runtime(rt);
    let Some(client_id) = provider::oauth_client_id(rt) else {
        return provider_error(provider::oauth_not_registered(&target));
    };
    if !(redirect_uri.starts_with("http://127.0.0.1:") || redirect_uri.starts_with("http://[::1]:"))
    {
        return Response::error(
            ErrorCode::BadRequest,
            "the redirect must go to the loopback address",
        );
    }
    let client = match client(&state.providers) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let verifier = Secret::new(random_base64url(32));
    let login_state = random_base64url(16);
    let challenge = pkce_challenge(verifier.expose());
    let url =
        match client.authorize_url(&target, &client_id, &redirect_uri, &challenge, &login_state) {
            Ok(u) => u,
            Err(e) => return provider_error(e),
        };
    let mut inner = state.lock().await;
    inner.logins.insert(
        rt.name.clone(),
        PendingLogin {
            device_code: Secret::new(""),
            client_id,
            interval: 0,
            deadline: unix_now().saturating_add(BROWSER_LOGIN_SECS),
            browser: Some(BrowserLogin {
                verifier,
                state: login_state,
                redirect_uri,
            }),
        },
    );
    Response::new(Reply::Login {
        login: Box::new(LoginStep::Browser { url }),
    })
}

/// The code the host redirected with: exchanged for tokens, which are stored.
pub async fn login_browser_finish(
    state: &State,
    peer: &Peer,
    rt: &RuntimeConfig,
    code: Secret,
    returned_state: &str,
) -> Response {
    let pending = state.lock().await.logins.remove(&rt.name);
    let Some(PendingLogin {
        client_id,
        deadline,
        browser: Some(browser),
        ..
    }) = pending
    else {
        return Response::error(
            ErrorCode::BadRequest,
            format!("no browser login in progress for runtime {}", rt.name),
        );
    };
    // RFC 6749 §10.12: the state ties the redirect to this login (no forged callbacks).
    if returned_state != browser.state {
        return Response::error(
            ErrorCode::Forbidden,
            "the login's state does not match; nothing was stored",
        );
    }
    if unix_now() > deadline {
        return provider_error(ProviderError::Expired);
    }
    let client = match client(&state.providers) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let target = Target::for_runtime(rt);
    let tokens = match client
        .exchange_code(
            &target,
            &client_id,
            &code,
            &browser.verifier,
            &browser.redirect_uri,
        )
        .await
    {
        Ok(t) => t,
        Err(e) => return provider_error(e),
    };
    let mut inner = state.lock().await;
    finish_login(
        state,
        &mut inner,
        peer,
        rt,
        &client_id,
        tokens,
        "OAuth browser login (PKCE)",
    )
    .await
}

/// Stores the tokens of a completed login, audits it, and answers helperctl.
async fn finish_login(
    state: &State,
    inner: &mut Inner,
    peer: &Peer,
    rt: &RuntimeConfig,
    client_id: &str,
    tokens: OAuthTokens,
    how: &str,
) -> Response {
    let name = Some(format!(
        "OAuth login {}",
        crate::timefmt::format_date(unix_now())
    ));
    if let Err(resp) = store_oauth(state, inner, rt, name, client_id, tokens).await {
        return resp;
    }
    let e = super::control::peer_event(kind::TOKEN_SET, peer)
        .runtime(&rt.name)
        .reason(how);
    state.audit(inner, e);
    let message = format!("logged in: runtime {} has a new OAuth token", rt.name);
    Response::new(Reply::Login {
        login: Box::new(LoginStep::Done { message }),
    })
}

/// `renew --rotate` (GitLab): the host revokes the token and issues a new one.
pub async fn rotate(state: &State, peer: &Peer, rt: &RuntimeConfig) -> Response {
    let (token, secret) = {
        let mut inner = state.lock().await;
        let Some(token) = state
            .tokens(&mut inner)
            .ok()
            .and_then(|b| b.for_runtime(&rt.name).cloned())
        else {
            return Response::error(
                ErrorCode::BadRequest,
                format!("runtime {} has no token to rotate", rt.name),
            );
        };
        match state.token_secret(&mut inner, &token.id).await {
            Ok(Some(s)) => (token, s),
            Ok(None) => {
                return Response::error(
                    ErrorCode::Internal,
                    "the token's secret is missing from the store",
                )
            }
            Err(e) => return store_error(e),
        }
    };
    let client = match client(&state.providers) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let rotated = match client.rotate(&Target::for_runtime(rt), &secret).await {
        Ok(r) => r,
        Err(e) => return provider_error(e),
    };
    let mut inner = state.lock().await;
    let now = unix_now();
    let mut new = TokenMeta::new(
        Some(format!("rotated {}", crate::timefmt::format_date(now))),
        now,
        rotated.expires,
    );
    new.scopes = rotated.scopes;
    new.kind = token.kind.clone();
    new.checked_at = Some(now);
    if let Err(resp) = set_token(state, &mut inner, Some(peer), &rt.name, new, rotated.token).await
    {
        // The host already revoked the old token: say so, the user must act.
        return Response::error(
            ErrorCode::Provider,
            format!(
                "the host rotated the token, but the new one could not be stored ({}); make a new token and run `helperctl renew {}`",
                match resp.reply {
                    Reply::Error { message, .. } => message,
                    _ => "unknown".into(),
                },
                rt.name
            ),
        );
    }
    let e = super::control::peer_event(kind::RENEWED, peer)
        .runtime(&rt.name)
        .token(token_audit_name(&token))
        .reason("rotated at the host");
    state.audit(&mut inner, e);
    let expiry = rotated
        .expires
        .map(|t| format!(", expires {}", crate::timefmt::format_date(t)))
        .unwrap_or_default();
    Response::new(Reply::Done).with_notice(Some(format!(
        "rotated: runtime {} has a new token{expiry}; the host revoked the old one",
        rt.name
    )))
}

/// Logins in progress, by runtime.
pub type Logins = HashMap<String, PendingLogin>;

/// What the provider says about `secret`, for the runtime `rt`.
pub async fn check(
    client: &ProviderClient,
    rt: &RuntimeConfig,
    secret: &Secret,
) -> Result<TokenInfo, ProviderError> {
    let target = Target::for_runtime(rt);
    client
        .introspect(&target, rt.effective_username(), secret)
        .await
}

/// `token set`: asks the host about the token (unless `offline`), without the state lock
/// so git requests never wait for a slow host, then stores it.
pub async fn token_set(
    state: &State,
    peer: &Peer,
    mut new: super::control::NewToken,
    secret: Secret,
    offline: bool,
) -> Response {
    let rt = {
        let mut inner = state.lock().await;
        inner.config.refresh();
        inner.config.current().runtime(&new.runtime).cloned()
    };
    let Some(rt) = rt else {
        return Response::error(
            ErrorCode::BadRequest,
            format!(
                "there is no runtime named {:?} (see `helperctl runtime list`)",
                new.runtime
            ),
        );
    };
    if !offline {
        let client = match client(&state.providers) {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        new.checked = match check(&client, &rt, &secret).await {
            Ok(info) => Some(info),
            // The provider cannot check this kind of token: store it, and say so.
            Err(ProviderError::Unsupported { what }) => Some(TokenInfo {
                notes: vec![format!("not checked: {what}")],
                ..TokenInfo::default()
            }),
            Err(e) => {
                tracing::info!(runtime = %rt.name, error = %e, "token set: the provider check failed");
                return provider_error(e);
            }
        };
    }
    let mut inner = state.lock().await;
    super::control::token_set(state, &mut inner, peer, new, secret).await
}

/// How long the renewal prompt waits for the host's word on the expiry: the user is in the
/// middle of a push.
const RENEWAL_CHECK_SECS: u64 = 5;

/// The expiry the host reports for a token typed at the renewal prompt, if it answers
/// within a few seconds. Best effort: any failure leaves the expiry unknown (git's own
/// use of the token is the real check, and `helperctl token verify` can ask again).
pub async fn reported_expiry(state: &State, runtime: &str, secret: &Secret) -> Option<u64> {
    let rt = {
        let mut inner = state.lock().await;
        inner.config.refresh();
        inner.config.current().runtime(runtime).cloned()?
    };
    let client = client(&state.providers).ok()?;
    let checked = tokio::time::timeout(
        std::time::Duration::from_secs(RENEWAL_CHECK_SECS),
        check(&client, &rt, secret),
    )
    .await;
    match checked {
        Ok(Ok(info)) => info.expires,
        Ok(Err(e)) => {
            tracing::info!(%runtime, error = %e, "renewal: the host did not say when the new token expires");
            None
        }
        Err(_) => None,
    }
}

/// Merges what the host reported into a new token's record. Errors: the answer to send.
pub fn apply_check(
    token: &mut TokenMeta,
    info: TokenInfo,
    user_expires: Option<u64>,
    force: bool,
) -> Result<(), Response> {
    if !info.missing_git_scopes.is_empty() {
        if !force {
            return Err(Response::error(
                ErrorCode::Provider,
                format!(
                    "the token lacks scopes git needs: {}; nothing was stored (make a token with them, or pass --force to store it anyway)",
                    info.missing_git_scopes.join(", ")
                ),
            ));
        }
        token.notes.push(format!(
            "stored with --force although it lacks {}",
            info.missing_git_scopes.join(", ")
        ));
    }
    match (user_expires, info.expires) {
        // GitLab reports whole days: a day apart is the same date, read cautiously.
        (Some(user), Some(host)) if user.abs_diff(host) > 86_400 => {
            return Err(Response::error(
                ErrorCode::BadRequest,
                format!(
                    "--expires {} contradicts the host, which says the token expires on {}; nothing was stored",
                    crate::timefmt::format_date(user),
                    crate::timefmt::format_datetime(host)
                ),
            ))
        }
        (_, Some(host)) => token.expires = Some(host),
        _ => {}
    }
    if let Some(scopes) = info.scopes {
        token.scopes = scopes;
    }
    token.kind = info.kind;
    token.login = info.login;
    token.notes.extend(info.notes);
    token.checked_at = Some(unix_now());
    Ok(())
}

/// `token verify`: asks the host again about the token of each runtime in `runtimes`.
pub async fn verify(state: &State, peer: &Peer, runtimes: Vec<RuntimeConfig>) -> Response {
    let client = match client(&state.providers) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let mut lines = Vec::new();
    let mut rejected_any = false;
    for rt in runtimes {
        let (token, secret) = {
            let mut inner = state.lock().await;
            let Some(token) = state
                .tokens(&mut inner)
                .ok()
                .and_then(|b| b.for_runtime(&rt.name).cloned())
            else {
                lines.push(format!("{}: no token", rt.name));
                continue;
            };
            match state.token_secret(&mut inner, &token.id).await {
                Ok(Some(s)) => (token, s),
                Ok(None) => {
                    lines.push(format!(
                        "{}: the token's secret is missing from the store",
                        rt.name
                    ));
                    continue;
                }
                Err(e) => return store_error(e),
            }
        };
        let result = check(&client, &rt, &secret).await;
        rejected_any |= matches!(result, Err(ProviderError::Rejected { .. }));
        let mut inner = state.lock().await;
        let now = unix_now();
        let line = match &result {
            Ok(info) => {
                let scopes = info
                    .scopes
                    .as_ref()
                    .map(|s| s.join(","))
                    .unwrap_or_else(|| "not reported".into());
                let missing = if info.missing_git_scopes.is_empty() {
                    String::new()
                } else {
                    format!("; lacks {}", info.missing_git_scopes.join(", "))
                };
                format!(
                    "{}: accepted by the host (scopes: {scopes}{missing})",
                    rt.name
                )
            }
            Err(ProviderError::Rejected { .. }) => format!(
                "{}: REJECTED by the host — {}",
                rt.name,
                result
                    .as_ref()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            ),
            Err(e) => format!("{}: not checked: {e}", rt.name),
        };
        if let Ok(book) = state.tokens(&mut inner) {
            if let Some(t) = book.for_runtime_mut(&rt.name).filter(|t| t.id == token.id) {
                match result {
                    Ok(info) => {
                        if let Some(scopes) = info.scopes {
                            t.scopes = scopes;
                        }
                        t.kind = info.kind.or(t.kind.take());
                        t.login = info.login.or(t.login.take());
                        t.checked_at = Some(now);
                        // The host accepts it (again): it may be served again.
                        t.rejected_at = None;
                        // An expiry is never edited, but one nobody knew may be learned.
                        if t.expires.is_none() {
                            t.expires = info.expires;
                        }
                        t.notes.retain(|n| !n.contains("--offline"));
                    }
                    Err(ProviderError::Rejected { .. }) => {
                        t.rejected_at.get_or_insert(now);
                        t.checked_at = Some(now);
                    }
                    Err(_) => {}
                }
            }
        }
        if let Err(e) = state.save_tokens(&mut inner) {
            return Response::error(ErrorCode::Internal, e);
        }
        let e = super::control::peer_event(kind::TOKEN_VERIFIED, peer)
            .runtime(&rt.name)
            .token(token_audit_name(&token))
            .reason(line.clone());
        state.audit(&mut inner, e);
        lines.push(line);
    }
    if rejected_any {
        // Scripts must be able to tell: a rejected token is an error.
        return Response::error(ErrorCode::Provider, lines.join("\n"));
    }
    Response::new(Reply::Done).with_notice(Some(lines.join("\n")))
}

/// Revokes `secret` at `rt`'s host; the sentence to show.
pub async fn revoke(state: &State, rt: &RuntimeConfig, secret: &Secret) -> String {
    let client = match client(&state.providers) {
        Ok(c) => c,
        Err(_) => return "it could not be revoked at the host (no HTTP client)".into(),
    };
    let target = Target::for_runtime(rt);
    match client.revoke(&target, secret).await {
        Ok(RevokeOutcome::Revoked) => "it was revoked at the host".into(),
        Ok(RevokeOutcome::NotSupported { reason, token_page }) => format!(
            "the host's API cannot revoke it ({reason}); it still works there until you delete it{}",
            token_page.map(|p| format!(" at {p}")).unwrap_or_default()
        ),
        Err(e) => format!(
            "revoking it at the host failed ({e}); delete it by hand{}",
            target.token_page().map(|p| format!(" at {p}")).unwrap_or_default()
        ),
    }
}

/// `login` step 1: a device code from the host.
pub async fn login_start(state: &State, rt: &RuntimeConfig) -> Response {
    let target = Target::for_runtime(rt);
    let Some(client_id) = provider::oauth_client_id(rt) else {
        return provider_error(provider::oauth_not_registered(&target));
    };
    let client = match client(&state.providers) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let scopes = login_scopes(rt);
    let code = match client.device_start(&target, &client_id, &scopes).await {
        Ok(c) => c,
        Err(e) => return provider_error(e),
    };
    let step = LoginStep::Code {
        user_code: code.user_code.clone(),
        verification_uri: code.verification_uri.clone(),
        verification_uri_complete: code.verification_uri_complete.clone(),
        interval: code.interval,
        expires_in: code.expires_in,
    };
    let mut inner = state.lock().await;
    inner.logins.insert(
        rt.name.clone(),
        PendingLogin {
            device_code: code.device_code,
            client_id,
            interval: code.interval,
            deadline: unix_now().saturating_add(code.expires_in),
            browser: None,
        },
    );
    Response::new(Reply::Login {
        login: Box::new(step),
    })
}

/// The scopes a login asks for: what git needs on that provider.
fn login_scopes(rt: &RuntimeConfig) -> Vec<&'static str> {
    use crate::config::Provider;
    match rt.provider {
        // https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps
        Provider::GitHub => vec!["repo"],
        // https://docs.gitlab.com/integration/oauth_provider/#view-all-authorized-applications (scopes)
        Provider::GitLab => vec!["read_repository", "write_repository"],
        _ => Vec::new(),
    }
}

/// `login` step 2..n: one poll; stores the token once the user approved.
pub async fn login_poll(state: &State, peer: &Peer, rt: &RuntimeConfig) -> Response {
    let (device_code, client_id, interval, deadline) = {
        let inner = state.lock().await;
        match inner.logins.get(&rt.name) {
            Some(p) => (
                p.device_code.clone(),
                p.client_id.clone(),
                p.interval,
                p.deadline,
            ),
            None => {
                return Response::error(
                    ErrorCode::BadRequest,
                    format!(
                        "no login in progress for runtime {}; run `helperctl login {}`",
                        rt.name, rt.name
                    ),
                )
            }
        }
    };
    if unix_now() > deadline {
        state.lock().await.logins.remove(&rt.name);
        return provider_error(ProviderError::Expired);
    }
    let client = match client(&state.providers) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let target = Target::for_runtime(rt);
    let poll = client.device_poll(&target, &client_id, &device_code).await;
    let mut inner = state.lock().await;
    match poll {
        Ok(DevicePoll::Pending) => Response::new(Reply::Login {
            login: Box::new(LoginStep::Pending { interval }),
        }),
        Ok(DevicePoll::SlowDown) => {
            // RFC 8628 §3.5: add 5 seconds to the interval for this and later polls.
            let interval = interval + 5;
            if let Some(p) = inner.logins.get_mut(&rt.name) {
                p.interval = interval;
            }
            Response::new(Reply::Login {
                login: Box::new(LoginStep::Pending { interval }),
            })
        }
        Ok(DevicePoll::Done(tokens)) => {
            inner.logins.remove(&rt.name);
            finish_login(
                state,
                &mut inner,
                peer,
                rt,
                &client_id,
                tokens,
                "OAuth device login",
            )
            .await
        }
        Err(e) => {
            inner.logins.remove(&rt.name);
            provider_error(e)
        }
    }
}

/// Stores OAuth tokens as `rt`'s new token: the access token as the token, the refresh
/// token as a second secret.
async fn store_oauth(
    state: &State,
    inner: &mut Inner,
    rt: &RuntimeConfig,
    name: Option<String>,
    client_id: &str,
    tokens: OAuthTokens,
) -> Result<(), Response> {
    let mut token = TokenMeta::new(name, unix_now(), tokens.expires_at);
    token.scopes = tokens.scopes;
    token.kind = Some("OAuth token".into());
    token.oauth_client_id = Some(client_id.to_string());
    token.refresh_expires_at = tokens.refresh_expires_at;
    token.checked_at = Some(unix_now());
    let id = token.id.clone();
    set_token(state, inner, None, &rt.name, token, tokens.access_token).await?;
    if let Some(refresh) = tokens.refresh_token {
        state
            .set_secret(inner, &refresh_key(&id), refresh)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

/// Refreshes `token` (an OAuth token of `rt`) when it expires within a few minutes.
/// Called under the state lock: concurrent requests wait, and then find the fresh token.
/// Returns the token to serve now, or `None` when it could not be refreshed (the caller
/// then treats it as expired: renewal).
pub async fn refresh_if_due(
    state: &State,
    inner: &mut Inner,
    rt: &RuntimeConfig,
    token: &TokenMeta,
) -> Option<TokenMeta> {
    let client_id = token.oauth_client_id.clone()?;
    let expires = token.expires?;
    let now = unix_now();
    if expires > now.saturating_add(REFRESH_AHEAD_SECS) {
        return Some(token.clone());
    }
    // After a failure the host is not asked again for a while: every git request would
    // otherwise wait for it under the lock.
    if inner
        .refresh_backoff
        .get(&token.id)
        .is_some_and(|&until| now < until)
    {
        return Some(token.clone());
    }
    let refresh = match state.get_secret(inner, &refresh_key(&token.id)).await {
        Ok(Some(r)) => r,
        _ => return None,
    };
    let client = client(&state.providers).ok()?;
    let target = Target::for_runtime(rt);
    match client.refresh(&target, &client_id, &refresh).await {
        Ok(tokens) => {
            let name = token.name.clone();
            let old_id = token.id.clone();
            let shared: Vec<String> = token
                .runtimes
                .iter()
                .filter(|r| **r != rt.name)
                .cloned()
                .collect();
            if let Err(e) = store_oauth(state, inner, rt, name, &client_id, tokens).await {
                tracing::warn!(runtime = %rt.name, reply = ?e.reply, "could not store the refreshed token");
                return None;
            }
            // The refreshed token serves every runtime the old one did.
            for other in shared {
                let hosts = super::runtimes::runtime_hosts(&inner.config.current(), &other);
                if let Ok(book) = state.tokens(inner) {
                    let _ = book.link(&other, &hosts, &rt.name);
                }
            }
            let _ = state.save_tokens(inner);
            let _ = state.delete_secret(inner, &refresh_key(&old_id)).await;
            tracing::info!(runtime = %rt.name, "refreshed the OAuth token");
            let e = crate::audit::AuditEvent::now(kind::RENEWED)
                .runtime(&rt.name)
                .reason("OAuth refresh");
            state.audit(inner, e);
            state.tokens(inner).ok()?.for_runtime(&rt.name).cloned()
        }
        Err(ProviderError::RefreshRejected { .. }) => {
            // The refresh token is dead: the access token cannot be kept alive, so the
            // user is asked for a renewal now rather than at its last minute.
            tracing::warn!(runtime = %rt.name, "the host rejected the OAuth refresh token; the token needs a renewal");
            if let Ok(book) = state.tokens(inner) {
                if let Some(t) = book.for_runtime_mut(&rt.name).filter(|t| t.id == token.id) {
                    t.rejected_at = Some(now);
                    t.notes.push(format!(
                        "the host rejected its refresh token on {}",
                        crate::timefmt::format_date(now)
                    ));
                }
            }
            let _ = state.save_tokens(inner);
            let _ = state.delete_secret(inner, &refresh_key(&token.id)).await;
            let e = crate::audit::AuditEvent::now(kind::REFUSED)
                .runtime(&rt.name)
                .token(token_audit_name(token))
                .reason("the host rejected the OAuth refresh token");
            state.audit(inner, e);
            state.tokens(inner).ok()?.for_runtime(&rt.name).cloned()
        }
        Err(e) => {
            tracing::warn!(runtime = %rt.name, error = %e, "OAuth refresh failed; trying again in a minute");
            inner
                .refresh_backoff
                .insert(token.id.clone(), now.saturating_add(REFRESH_RETRY_SECS));
            Some(token.clone())
        }
    }
}

/// How long after a failed refresh (host unreachable, 5xx) the next one is tried.
const REFRESH_RETRY_SECS: u64 = 60;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
