//! OAuth refresh, carried out when the decision asks for it: one refresh per token at a
//! time (the others wait for it and then find the fresh token), with no other lock held
//! while the host answers. The new tokens are stored before the old ones are deleted (the
//! writer's order); when they cannot be stored, they stay in memory and are stored at the
//! next attempt without asking the host again (GitHub and GitLab make the old refresh
//! token useless once they answer), while the old token serves as long as it is valid. So
//! a refresh never loses the only valid refresh token.

use crate::audit::{kind, AuditEvent};
use crate::config::RuntimeConfig;
use crate::decision::{self, REFRESH_AHEAD_SECS};
use crate::provider::{ProviderError, Target};
use crate::secret::Secret;
use crate::token::{refresh_key, TokenMeta};

use super::super::state::writer::{Edit, Save, TokenChange};
use super::super::state::{successor, State};

/// How long after a failed refresh (host unreachable, 5xx, save failed) the next one is
/// tried.
const REFRESH_RETRY_SECS: u64 = 60;

/// Refreshes token `token_id` of `runtime`, unless another request already did.
pub async fn run(state: &State, runtime: &str, token_id: &str) {
    let flight = state.refresh.flight(token_id);
    let one_refresh = flight.lock().await;
    // Those that waited for a refresh that failed do not ask the host again at once.
    let backing_off = state
        .refresh
        .backoff()
        .get(token_id)
        .is_some_and(|&until| state.now() < until);
    if !backing_off {
        if let Err(why) = refresh_once(state, runtime, token_id).await {
            tracing::warn!(%runtime, %why, "OAuth refresh failed; trying again in a minute");
            // Set while the flight is still held, so that every waiter sees it.
            state
                .refresh
                .back_off(token_id, state.now().saturating_add(REFRESH_RETRY_SECS));
        }
    }
    drop(one_refresh);
    state.refresh.done(token_id);
}

/// One refresh, under the token's flight lock. `Err`: a failure worth a back-off.
async fn refresh_once(state: &State, runtime: &str, token_id: &str) -> Result<(), String> {
    // Another request may have refreshed it while this one waited for the lock.
    let Some(token) = state
        .token_of(runtime)
        .filter(|t| t.id == token_id && t.rejected_at.is_none())
    else {
        // Replaced or rejected meanwhile: an unsaved refresh of it is of no use any more.
        drop(state.refresh.take_unsaved(token_id));
        return Ok(());
    };
    let now = state.now();
    if token
        .expires
        .is_none_or(|t| t > now.saturating_add(REFRESH_AHEAD_SECS))
    {
        return Ok(());
    }
    // A refresh the host answered, whose save failed: saved now, the host not asked again.
    if let Some(change) = state.refresh.take_unsaved(token_id) {
        return save(state, runtime, token_id, &token, change).await;
    }
    let config = state.config.current();
    let rt = config
        .runtime(runtime)
        .ok_or("the runtime is gone from the configuration")?;
    let client_id = token.oauth_client_id.clone().ok_or("not an OAuth token")?;
    let refresh = state
        .store
        .read(&refresh_key(&token.id))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no refresh token in the store")?;
    let client = state.providers().map_err(|e| e.to_string())?;
    match client
        .refresh(&Target::for_runtime(rt), &client_id, &refresh)
        .await
    {
        Ok(tokens) => {
            let mut new = TokenMeta::new(token.name.clone(), now, tokens.expires_at);
            new.scopes = tokens.scopes;
            new.kind = Some("OAuth token".into());
            new.oauth_client_id = Some(client_id);
            new.refresh_expires_at = tokens.refresh_expires_at;
            new.checked_at = Some(now);
            // The refreshed token serves every runtime the old one did. A host that
            // rotates refresh tokens sends a new one; one that does not keeps the old one
            // valid: it moves to the new token.
            let refresh = Some(tokens.refresh_token.unwrap_or(refresh));
            let change = successor(&config, runtime, &token, new, tokens.access_token, refresh);
            save(state, runtime, token_id, &token, change).await
        }
        Err(ProviderError::RefreshRejected { .. }) => {
            refresh_rejected(state, rt, &token, now).await;
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Stores a refresh's result. When that fails, the result is kept in memory for the next
/// attempt (the host may have made the old refresh token useless by now), and the old token
/// serves meanwhile while it is valid.
async fn save(
    state: &State,
    runtime: &str,
    token_id: &str,
    old: &TokenMeta,
    change: TokenChange,
) -> Result<(), String> {
    match state.set_token(None, change.clone()).await {
        Ok(()) => {
            tracing::info!(%runtime, "refreshed the OAuth token");
            state
                .audit(
                    AuditEvent::now(kind::RENEWED)
                        .runtime(runtime)
                        .token(decision::token_label(old))
                        .reason("OAuth refresh"),
                )
                .await;
            Ok(())
        }
        Err(e) => {
            state.refresh.keep_unsaved(token_id, change);
            Err(format!(
                "the refreshed token could not be stored ({e:?}); kept in memory for the next attempt, the old one serves meanwhile"
            ))
        }
    }
}

/// The refresh token is dead: the access token cannot be kept alive, so the user is asked
/// for a renewal now rather than at its last minute.
async fn refresh_rejected(state: &State, rt: &RuntimeConfig, token: &TokenMeta, now: u64) {
    tracing::warn!(runtime = %rt.name, "the host rejected the OAuth refresh token; the token needs a renewal");
    let (runtime, id) = (rt.name.clone(), token.id.clone());
    let edit: Edit = Box::new(move |book| {
        if let Some(t) = book.for_runtime_mut(&runtime).filter(|t| t.id == id) {
            t.rejected_at = Some(now);
            t.notes.push(format!(
                "the host rejected its refresh token on {}",
                crate::timefmt::format_date(now)
            ));
        }
        Ok(Vec::new())
    });
    if let Err(e) = state.writer.edit_tokens(edit, Save::Now).await {
        tracing::warn!(error = %e, "could not record the rejected refresh token");
    }
    state
        .audit(
            AuditEvent::now(kind::REFUSED)
                .runtime(&rt.name)
                .token(decision::token_label(token))
                .reason("the host rejected the OAuth refresh token"),
        )
        .await;
}

/// How long the renewal prompt waits for the host's word on the expiry: the user is in the
/// middle of a push.
const RENEWAL_CHECK_SECS: u64 = 5;

/// The expiry the host reports for a token typed at the renewal prompt, if it answers
/// within a few seconds. Best effort: any failure leaves the expiry unknown (git's own
/// use of the token is the real check, and `helperctl token verify` can ask again).
pub async fn reported_expiry(state: &State, rt: &RuntimeConfig, secret: &Secret) -> Option<u64> {
    let client = state.providers().ok()?;
    let target = Target::for_runtime(rt);
    let checked = tokio::time::timeout(
        std::time::Duration::from_secs(RENEWAL_CHECK_SECS),
        client.introspect(&target, rt.api_user(), secret),
    )
    .await;
    match checked {
        Ok(Ok(info)) => info.expires,
        Ok(Err(e)) => {
            tracing::info!(runtime = %rt.name, error = %e, "renewal: the host did not say when the new token expires");
            None
        }
        Err(_) => None,
    }
}
