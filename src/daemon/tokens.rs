//! The tokens service: `helperctl token set|verify|link|remove` and `renew --rotate`.
//! Hosts are asked with no lock held; changes go through the writer.

use helperd_wire::wire::{ErrorCode, Reply, Response};

use super::peer::Peer;
use super::replies::{
    bad_request, done, no_runtime, provider_error, runtime_named, set_token_error, store_error,
    write_error,
};
use super::state::rotation_gate::{host_refused, save_mark};
use super::state::writer::{Edit, Save};
use super::state::{successor, State};
use crate::audit::kind;
use crate::config::RuntimeConfig;
use crate::decision::{runtime_hosts, token_label};
use crate::provider::{ProviderError, RevokeOutcome, Target, TokenInfo};
use crate::secret::Secret;
use crate::timefmt::{format_date, format_datetime};
use crate::token::TokenMeta;

/// What `helperctl token set` asks for, besides the secret.
pub struct NewToken {
    /// The runtime (config.toml name) the token is for.
    pub runtime: String,
    /// A name to recognise it by.
    pub name: Option<String>,
    /// When it expires (`--expires`), Unix seconds; the host's own date wins, and one more
    /// than a day away from it is refused.
    pub expires: Option<u64>,
    /// Scopes as the user gave them; the provider's answer replaces them.
    pub scopes: Vec<String>,
    /// Do not ask the host about it.
    pub offline: bool,
    /// Store it even when the host says it lacks scopes git needs (recorded in its notes).
    pub force: bool,
}

/// What the provider says about `secret`, for the runtime `rt`.
async fn introspect(
    state: &State,
    rt: &RuntimeConfig,
    secret: &Secret,
) -> Result<TokenInfo, ProviderError> {
    let client = state.providers()?;
    client
        .introspect(&Target::for_runtime(rt), rt.api_user(), secret)
        .await
}

/// `token set`: asks the host about the token (unless `--offline`), then stores it.
pub async fn set(state: &State, peer: &Peer, new: NewToken, secret: Secret) -> Response {
    let rt = match runtime_named(state, &new.runtime) {
        Ok(rt) => rt,
        Err(resp) => return resp,
    };
    if secret.is_empty() {
        return bad_request("the token is empty; nothing was stored");
    }
    let now = state.now();
    if new.expires.is_some_and(|t| t > crate::timefmt::MAX_EXPIRY) {
        return bad_request("that expiry is after the year 9999; nothing was stored");
    }
    if let Some(t) = new.expires.filter(|&t| t <= now) {
        return bad_request(format!(
            "that expiry ({}) is in the past; nothing was stored",
            format_datetime(t)
        ));
    }
    let mut token = TokenMeta {
        scopes: new.scopes,
        ..TokenMeta::new(new.name, now, new.expires)
    };
    if new.offline {
        token
            .notes
            .push("not checked with the host (--offline)".into());
    } else {
        let info = match introspect(state, &rt, &secret).await {
            Ok(info) => info,
            // The provider cannot check this kind of token: store it, and say so.
            Err(ProviderError::Unsupported { what }) => TokenInfo {
                notes: vec![format!("not checked: {what}")],
                ..TokenInfo::default()
            },
            Err(e) => {
                tracing::info!(runtime = %rt.name, error = %e, "token set: the provider check failed");
                return provider_error(e);
            }
        };
        if let Err(resp) = apply_check(&mut token, info, new.expires, new.force, now) {
            return resp;
        }
    }
    if token.expires.is_some_and(|t| t <= now) {
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
    let expiry = token
        .expires
        .map(|t| format!("expires {}", format_datetime(t)))
        .unwrap_or_else(|| "no expiry".into());
    let audit_name = token_label(&token);
    if let Err(resp) = state
        .new_token(Some(peer), &rt.name, token, secret, None)
        .await
        .map_err(set_token_error)
    {
        return resp;
    }
    tracing::info!(runtime = %rt.name, "token set");
    state
        .audit(
            peer.event(kind::TOKEN_SET)
                .runtime(&rt.name)
                .token(audit_name),
        )
        .await;
    done(format!("{label} set for runtime {} ({expiry})", rt.name))
}

/// Merges what the host reported into a new token's record. Errors: the answer to send.
fn apply_check(
    token: &mut TokenMeta,
    info: TokenInfo,
    user_expires: Option<u64>,
    force: bool,
    now: u64,
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
            return Err(bad_request(format!(
                "--expires {} contradicts the host, which says the token expires on {}; nothing was stored",
                format_date(user),
                format_datetime(host)
            )))
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
    token.checked_at = Some(now);
    Ok(())
}

/// `token set-app`: checks the key (it parses; GitHub accepts a JWT signed with it, unless
/// `offline`), looks up the installation when none is configured, then stores the key as
/// the runtime's secret. Minted tokens of an earlier key are dropped.
pub async fn set_app(
    state: &State,
    peer: &Peer,
    runtime: String,
    key: Secret,
    offline: bool,
) -> Response {
    let rt = match runtime_named(state, &runtime) {
        Ok(rt) => rt,
        Err(resp) => return resp,
    };
    let Some(app) = rt.app.clone() else {
        return bad_request(format!(
            "runtime {} is not a GitHub App runtime (it has no app_id); add one with `helperctl runtime add NAME --provider github --url ... --app-id ID`",
            rt.name
        ));
    };
    let parsed = match crate::provider::AppKey::from_pem(&key) {
        Ok(k) => k,
        Err(e) => return bad_request(format!("{e}; nothing was stored")),
    };
    let now = state.now();
    let mut token = TokenMeta::new(Some(format!("app {} key", app.app_id)), now, None);
    token.kind = Some(crate::token::APP_KEY_KIND.into());
    let mut said = Vec::new();
    if offline {
        token
            .notes
            .push("not checked with GitHub (--offline)".into());
    } else {
        let checked = async {
            let client = state.providers()?;
            let target = Target::for_runtime(&rt);
            let jwt = parsed
                .jwt(&app.issuer(), now)
                .map_err(|e| ProviderError::Protocol {
                    detail: e.to_string(),
                })?;
            let info = client.app_info(&target, &jwt, now).await?;
            let mut installation = None;
            if app.installation_id.is_none() {
                let scope = crate::config::app_scope(&rt.urls).unwrap_or_default();
                if let Some(owner) = scope.owner.as_deref() {
                    let asked = match scope.repositories.as_slice() {
                        [one] => crate::provider::Owner::Repo(owner, one),
                        _ => crate::provider::Owner::Account(owner),
                    };
                    installation = Some(
                        client
                            .find_installation(&target, &jwt, &asked, now)
                            .await
                            .map_err(|e| match (&e, &info.slug) {
                                (ProviderError::Unsupported { what }, Some(slug)) => {
                                    ProviderError::Unsupported {
                                        what: format!(
                                            "{what}; the app's installation page: {}/apps/{slug}/installations/new",
                                            target.web_base
                                        ),
                                    }
                                }
                                _ => e,
                            })?,
                    );
                }
            }
            Ok::<_, ProviderError>((info, installation))
        }
        .await;
        match checked {
            Ok((info, installation)) => {
                if info.id != app.app_id {
                    return bad_request(format!(
                        "this key belongs to app {}, not to app {} (the runtime's app_id); nothing was stored",
                        info.id, app.app_id
                    ));
                }
                token.checked_at = Some(now);
                token.app_slug = info.slug.clone();
                if let Some(slug) = &info.slug {
                    token.name = Some(format!("app {slug} key"));
                }
                if let Some(found) = installation {
                    token.app_installation = Some(found.id);
                    said.push(format!(
                        "installed on {} (installation {})",
                        found.account.as_deref().unwrap_or("the account"),
                        found.id
                    ));
                }
            }
            Err(e) => {
                tracing::info!(runtime = %rt.name, error = %e, "token set-app: the check with GitHub failed");
                return provider_error(e);
            }
        }
    }
    drop(parsed);
    let label = token_label(&token);
    if let Err(resp) = state
        .new_token(Some(peer), &rt.name, token, key, None)
        .await
        .map_err(set_token_error)
    {
        return resp;
    }
    state.mints.forget(&rt.name);
    tracing::info!(runtime = %rt.name, "GitHub App key set");
    state
        .audit(
            peer.event(kind::TOKEN_SET)
                .runtime(&rt.name)
                .token(label)
                .reason("GitHub App private key"),
        )
        .await;
    let mut message = format!(
        "GitHub App key stored for runtime {} (app {}); installation tokens are minted when git needs them",
        rt.name, app.app_id
    );
    for s in said {
        message.push_str("; ");
        message.push_str(&s);
    }
    done(message)
}

/// `token verify`: asks the host again about the token of `runtime` (or of every runtime).
pub async fn verify(state: &State, peer: &Peer, runtime: Option<String>) -> Response {
    let config = state.config.current();
    let runtimes: Vec<RuntimeConfig> = match &runtime {
        Some(name) => match config.runtime(name) {
            Some(rt) => vec![rt.clone()],
            None => return bad_request(format!("there is no runtime named {name:?}")),
        },
        None => config.runtimes.clone(),
    };
    let mut lines = Vec::new();
    let mut rejected_any = false;
    for rt in runtimes {
        let Some(token) = state.token_of(&rt.name) else {
            lines.push(format!("{}: no token", rt.name));
            continue;
        };
        let secret = match state.store.token_secret(&token.id).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                lines.push(format!(
                    "{}: the token's secret is missing from the store",
                    rt.name
                ));
                continue;
            }
            Err(e) => return store_error(e),
        };
        let result = introspect(state, &rt, &secret).await;
        rejected_any |= matches!(result, Err(ProviderError::Rejected { .. }));
        let line = verify_line(&rt.name, &result);
        let now = state.now();
        let (name, id) = (rt.name.clone(), token.id.clone());
        let edit: Edit = Box::new(move |book| {
            let Some(t) = book.for_runtime_mut(&name).filter(|t| t.id == id) else {
                return Ok(Vec::new());
            };
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
            Ok(Vec::new())
        });
        if let Err(e) = state.writer.edit_tokens(edit, Save::Now).await {
            return write_error(e);
        }
        state
            .audit(
                peer.event(kind::TOKEN_VERIFIED)
                    .runtime(&rt.name)
                    .token(token_label(&token))
                    .reason(line.clone()),
            )
            .await;
        lines.push(line);
    }
    if rejected_any {
        // Scripts must be able to tell: a rejected token is an error.
        return Response::error(ErrorCode::Provider, lines.join("\n"));
    }
    Response::new(Reply::Done).with_notice(Some(lines.join("\n")))
}

fn verify_line(runtime: &str, result: &Result<TokenInfo, ProviderError>) -> String {
    match result {
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
            format!("{runtime}: accepted by the host (scopes: {scopes}{missing})")
        }
        Err(e @ ProviderError::Rejected { .. }) => format!("{runtime}: REJECTED by the host — {e}"),
        Err(e) => format!("{runtime}: not checked: {e}"),
    }
}

/// `token link RUNTIME --from OTHER`.
pub async fn link(state: &State, peer: &Peer, runtime: String, from: String) -> Response {
    let config = state.config.current();
    for name in [&runtime, &from] {
        if config.runtime(name).is_none() {
            return no_runtime(name);
        }
    }
    let hosts = runtime_hosts(&config, &runtime);
    let (to, source) = (runtime.clone(), from.clone());
    let edit: Edit = Box::new(move |book| {
        book.link(&to, &hosts, &source)
            .map(|orphan| orphan.into_iter().collect())
            .map_err(|e| e.to_string())
    });
    if let Err(e) = state.writer.edit_tokens(edit, Save::Now).await {
        return match e {
            super::state::writer::WriteError::Tokens(m) => bad_request(m),
            e => write_error(e),
        };
    }
    tracing::info!(%runtime, %from, "token linked");
    let mut e = peer
        .event(kind::TOKEN_LINKED)
        .runtime(&runtime)
        .reason(format!("the token of runtime {from}"));
    if let Some(t) = state.token_of(&runtime) {
        e = e.token(token_label(&t));
    }
    state.audit(e).await;
    done(format!(
        "runtime {runtime} now uses the token of runtime {from} (stored once)"
    ))
}

/// `token remove RUNTIME [--revoke]`.
pub async fn remove(state: &State, peer: &Peer, runtime: String, revoke: bool) -> Response {
    let Some(token) = state.token_of(&runtime) else {
        return bad_request(format!("runtime {runtime:?} has no token"));
    };
    let app_runtime = state.runtime(&runtime).is_some_and(|rt| rt.app.is_some());
    let revoked = match (revoke, app_runtime) {
        (true, true) => Some(revoke_minted(state, peer, &runtime).await),
        (true, false) => Some(revoke_at_host(state, peer, &runtime, &token).await),
        (false, _) => None,
    };
    if app_runtime {
        // The key goes: the tokens minted with it are thrown away too (in memory only).
        state.mints.forget(&runtime);
    }
    let shared: Vec<String> = token
        .runtimes
        .iter()
        .filter(|r| **r != runtime)
        .cloned()
        .collect();
    let name = runtime.clone();
    let edit: Edit = Box::new(move |book| Ok(book.unlink(&name).into_iter().collect()));
    if let Err(e) = state.writer.edit_tokens(edit, Save::Now).await {
        return write_error(e);
    }
    let what = if shared.is_empty() {
        "the token was deleted from the store".to_string()
    } else {
        format!("the token stays for {}", shared.join(", "))
    };
    tracing::info!(%runtime, "token removed");
    state
        .audit(
            peer.event(kind::TOKEN_REMOVED)
                .runtime(&runtime)
                .token(token_label(&token))
                .reason(what.clone()),
        )
        .await;
    match revoked {
        Some(said) => done(format!(
            "runtime {runtime} has no token any more; {what}; {said}"
        )),
        None => done(format!("runtime {runtime} has no token any more; {what}")),
    }
}

/// `token remove --revoke` of a GitHub App runtime: the installation token in use is
/// revoked (`DELETE /installation/token`); the key itself can only be deleted in the
/// app's settings. Returns what to tell the user.
async fn revoke_minted(state: &State, peer: &Peer, runtime: &str) -> String {
    let Some(rt) = state.runtime(runtime) else {
        return "nothing was revoked: the runtime is gone from the configuration".into();
    };
    let held = state
        .token_of(runtime)
        .and_then(|key| state.mints.current(runtime, &key.id));
    let Some(minted) = held else {
        return "no installation token was in use, so none was revoked (the private key itself is deleted in the app's settings on GitHub)".into();
    };
    let target = Target::for_runtime(&rt);
    let said = match state.providers() {
        Err(_) => "the installation token could not be revoked (no HTTP client)".to_string(),
        Ok(client) => match client
            .revoke_installation_token(&target, &minted.secret)
            .await
        {
            Ok(()) => "the installation token in use was revoked at GitHub (the private key itself is deleted in the app's settings)".into(),
            Err(e) => format!(
                "revoking the installation token failed ({e}); it expires by itself at {}",
                format_datetime(minted.expires_at)
            ),
        },
    };
    state
        .audit(
            peer.event(kind::TOKEN_REVOKED)
                .runtime(runtime)
                .token(crate::decision::minted_label(minted.installation))
                .reason(said.clone()),
        )
        .await;
    said
}

/// Revokes the runtime's token at its host, where the API allows it. Returns what to
/// tell the user.
async fn revoke_at_host(state: &State, peer: &Peer, runtime: &str, token: &TokenMeta) -> String {
    let others: Vec<_> = token
        .runtimes
        .iter()
        .filter(|r| *r != runtime)
        .cloned()
        .collect();
    if !others.is_empty() {
        return format!(
            "it was not revoked: runtimes {} still use it",
            others.join(", ")
        );
    }
    let Some(rt) = state.runtime(runtime) else {
        return "it was not revoked: the runtime is gone from the configuration".into();
    };
    let secret = match state.store.token_secret(&token.id).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return "its secret was already gone, so it could not be revoked".into(),
        Err(e) => return format!("it could not be revoked: {e}"),
    };
    let target = Target::for_runtime(&rt);
    let said = match state.providers() {
        Err(_) => "it could not be revoked at the host (no HTTP client)".to_string(),
        Ok(client) => match client.revoke(&target, &secret).await {
            Ok(RevokeOutcome::Revoked) => "it was revoked at the host".into(),
            Ok(RevokeOutcome::NotSupported { reason, token_page }) => format!(
                "the host's API cannot revoke it ({reason}); it still works there until you delete it{}",
                token_page.map(|p| format!(" at {p}")).unwrap_or_default()
            ),
            Err(e) => format!(
                "revoking it at the host failed ({e}); delete it by hand{}",
                target.token_page().map(|p| format!(" at {p}")).unwrap_or_default()
            ),
        },
    };
    state
        .audit(
            peer.event(kind::TOKEN_REVOKED)
                .runtime(runtime)
                .token(token_label(token))
                .reason(said.clone()),
        )
        .await;
    said
}

/// `renew --rotate` (GitLab): the host revokes the token and issues a new one.
pub async fn rotate(state: &State, peer: &Peer, runtime: String) -> Response {
    let rt = match runtime_named(state, &runtime) {
        Ok(rt) => rt,
        Err(resp) => return resp,
    };
    let Some(token) = state.token_of(&rt.name) else {
        return bad_request(format!("runtime {} has no token to rotate", rt.name));
    };
    let secret = match state.store.token_secret(&token.id).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Response::error(
                ErrorCode::Internal,
                "the token's secret is missing from the store",
            )
        }
        Err(e) => return store_error(e),
    };
    let client = match state.providers() {
        Ok(c) => c,
        Err(e) => return provider_error(e),
    };
    // One rotation per token at a time, the daemon's own included: GitLab revokes the
    // new token too when the old one rotates twice (gitlab#524639).
    let Some(_flight) = state.rotation.begin(&token.id) else {
        return bad_request(format!(
            "runtime {}'s token is being rotated right now; `helperctl status` shows it",
            rt.name
        ));
    };
    if token.rotation_started.is_some() {
        return bad_request(format!(
            "a rotation of runtime {}'s token was interrupted; the daemon asks the host whether it happened before anything rotates it again (`helperctl status` shows it)",
            rt.name
        ));
    }
    // The new expiry: the policy's max_days, else the old token's lifetime (without one,
    // GitLab would give the new token a single week).
    let policy = state.policy.current();
    let max_days = policy.as_deref().and_then(|p| p.in_force().policy.max_days);
    let request = crate::provider::RotateRequest {
        via: rt.rotate_via.clone(),
        expires_at: crate::rotation::new_expiry(&token, 0, max_days, state.now()).ok(),
    };
    if let Err(e) = save_mark(&state.writer, &rt.name, &token.id, Some(state.now())).await {
        return Response::error(ErrorCode::Internal, e);
    }
    let rotated = match client
        .rotate(&Target::for_runtime(&rt), &secret, &request)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            // Refused: nothing happened at the host. Otherwise the mark stays and the
            // daemon settles it (a read of the old token) before any rotation.
            if host_refused(&e) {
                let _ = save_mark(&state.writer, &rt.name, &token.id, None).await;
            }
            return provider_error(e);
        }
    };
    let now = state.now();
    let mut new = TokenMeta::new(
        Some(format!("rotated {}", format_date(now))),
        now,
        rotated.expires,
    );
    new.scopes = rotated.scopes;
    new.kind = token.kind.clone();
    new.checked_at = Some(now);
    // The host revoked the old token: every runtime that used it moves to the new one.
    let change = successor(
        &state.config.current(),
        &rt.name,
        &token,
        new,
        rotated.token,
        None,
    );
    if let Err(resp) = state
        .set_token(Some(peer), change)
        .await
        .map_err(set_token_error)
    {
        // The host already revoked the old token: say so, the user must act.
        let why = match resp.reply {
            Reply::Error { message, .. } => message,
            _ => "unknown".into(),
        };
        return Response::error(
            ErrorCode::Provider,
            format!(
                "the host rotated the token, but the new one could not be stored ({why}); make a new token and run `helperctl renew {}`",
                rt.name
            ),
        );
    }
    state
        .audit(
            peer.event(kind::RENEWED)
                .runtime(&rt.name)
                .token(token_label(&token))
                .reason("rotated at the host"),
        )
        .await;
    let expiry = rotated
        .expires
        .map(|t| format!(", expires {}", format_date(t)))
        .unwrap_or_default();
    done(format!(
        "rotated: runtime {} has a new token{expiry}; the host revoked the old one",
        rt.name
    ))
}
