//! GitLab tokens that rotate themselves (issue 18): one background task, the only code
//! that rotates automatically, so rotations are single-flight by construction. It looks
//! when a `get` served a rotating runtime's token (git never waits for it: the current,
//! still valid token was served already) and once a minute; what is due is decided by
//! the pure [`crate::rotation`] rules with the daemon's clock.
//!
//! GitLab revokes the old token at once, and revokes the new one too when the old one is
//! used to rotate again (gitlab#524639). So, per token:
//! 1. `rotation_started` is saved in `tokens.json` before the host is asked;
//! 2. the host's answer (the new token) goes through the writer (secret, then
//!    `tokens.json`, replacing the old token) before anything serves it;
//! 3. a token with `rotation_started` set is never rotated again until the daemon has
//!    proved the host did not rotate it: `GET /personal_access_tokens/self` with it (a
//!    read, not a rotation). Active: the host never rotated it (rotating revokes it at
//!    once), the mark is cleared. Refused: the host rotated it and the new token was lost
//!    (the daemon stopped between the answer and the save): the token is marked rejected,
//!    so git's next request gets the renewal prompt, and `status` says why.
//!
//! A failed rotation (a 403 for a missing scope, the host down) waits with back-off and
//! leaves the token as it was: it keeps being served until the normal expiry warning and
//! renewal take over.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::audit::{kind, AuditEvent};
use crate::config::RuntimeConfig;
use crate::decision;
use crate::provider::{ProviderClient, ProviderError, RotateRequest, Target};
use crate::rotation;
use crate::secret::Secret;
use crate::timefmt::format_date;
use crate::token::TokenMeta;

use super::state::rotation_gate::{host_refused, save_mark, RotationGate};
use super::state::writer::{Edit, Save, TokenChange, WriteError};
use super::state::{successor, State};

/// How often the rotator looks without being woken.
const TICK: Duration = Duration::from_secs(60);

/// Runs until the daemon's state is gone.
pub async fn run(gate: Arc<RotationGate>, state: Weak<State>) {
    loop {
        {
            let Some(state) = state.upgrade() else { return };
            look(&state).await;
        }
        // Not holding the state while waiting: the daemon's shutdown waits for nobody.
        let _ = tokio::time::timeout(TICK, gate.woken()).await;
    }
}

/// One look at every local GitLab runtime with a rotation window.
async fn look(state: &State) {
    let config = state.config.current();
    let policy = state.policy.current();
    let rules = policy.as_deref().map(|p| p.in_force().policy);
    for rt in &config.runtimes {
        let Some(days) = rotation::window_days(rt, rules) else {
            continue;
        };
        let Some(token) = state.token_of(&rt.name) else {
            continue;
        };
        let now = state.now();
        let note = state.rotation.note(&token.id);
        if note.retry_at.is_some_and(|at| now < at) {
            continue;
        }
        // `renew --rotate` may be rotating it right now: it is that rotation's to finish.
        let Some(_flight) = state.rotation.begin(&token.id) else {
            continue;
        };
        // Read again under the flight: a rotation that just finished replaced it.
        let Some(token) = state.token_of(&rt.name).filter(|t| t.id == token.id) else {
            continue;
        };
        let outcome = if note.unsaved.is_some() {
            save_unsaved(state, rt, &token).await
        } else if token.rotation_started.is_some() {
            if token.rejected_at.is_some() {
                // Already known lost: the user's renewal replaces it.
                continue;
            }
            settle_in_doubt(state, rt, &token).await
        } else if rotation::is_due(&token, days, now) {
            let max_days = rules.and_then(|p| p.max_days);
            rotate(state, rt, &token, days, max_days).await
        } else {
            continue;
        };
        if let Err(why) = outcome {
            fail(state, &rt.name, &token.id, why);
        }
    }
}

/// What asking the host about `token` needs: its secret and the provider client.
async fn secret_and_client(
    state: &State,
    token: &TokenMeta,
) -> Result<(Secret, ProviderClient), String> {
    let secret = state
        .store
        .token_secret(&token.id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the token's secret is missing from the store")?;
    let client = state.providers().map_err(|e| e.to_string())?;
    Ok((secret, client))
}

/// Records a failed attempt and its back-off.
fn fail(state: &State, runtime: &str, id: &str, why: String) {
    let now = state.now();
    state.rotation.update(id, |n| {
        n.failures += 1;
        let wait = rotation::retry_after(n.failures);
        n.retry_at = Some(now.saturating_add(wait));
        tracing::warn!(%runtime, error = %why, retry_in_secs = wait, "GitLab token rotation failed; the current token keeps serving");
        n.error = Some(why);
    });
}

/// Rotates `token` at the host: mark saved, ask, save the answer.
async fn rotate(
    state: &State,
    rt: &RuntimeConfig,
    token: &TokenMeta,
    days: u32,
    max_days: Option<u32>,
) -> Result<(), String> {
    let now = state.now();
    let expires_at = rotation::new_expiry(token, days, max_days, now)?;
    let (secret, client) = secret_and_client(state, token).await?;
    // Saved first: from here on, a stop at any point leaves the mark behind.
    save_mark(&state.writer, &rt.name, &token.id, Some(now)).await?;
    let request = RotateRequest {
        via: rt.rotate_via.clone(),
        expires_at: Some(expires_at),
    };
    let answer = client
        .rotate(&Target::for_runtime(rt), &secret, &request)
        .await;
    let rotated = match answer {
        Ok(r) => r,
        Err(e) if host_refused(&e) => {
            // The host refused: it did not rotate, the old token is as good as before.
            save_mark(&state.writer, &rt.name, &token.id, None).await?;
            return Err(e.to_string());
        }
        // No answer, or one not understood: the host may have rotated. The mark stays;
        // the next attempt first asks whether the old token still works.
        Err(e) => {
            return Err(format!(
                "{e} (the host may have rotated the token; helperd checks before trying again)"
            ))
        }
    };
    let config = state.config.current();
    let mut new = TokenMeta::new(token.name.clone(), state.now(), rotated.expires);
    new.scopes = if rotated.scopes.is_empty() {
        token.scopes.clone()
    } else {
        rotated.scopes
    };
    new.kind = token.kind.clone();
    new.login = token.login.clone();
    new.checked_at = Some(state.now());
    // The host revoked the old token: every runtime that used it moves to the new one.
    let change = successor(&config, &rt.name, token, new, rotated.token, None);
    save(state, rt, token, change).await
}

/// Saves a rotated token (the old one is revoked at the host already). Not through the
/// policy check: refusing it would lose the only valid token; a new expiry beyond the
/// policy shows in `status` like any other violation.
async fn save(
    state: &State,
    rt: &RuntimeConfig,
    old: &TokenMeta,
    change: TokenChange,
) -> Result<(), String> {
    let new_expiry = change.token.expires;
    match state.writer.set_token(change.clone(), state.now()).await {
        // Pending: the store is slow; the change lands when it answers (the writer keeps
        // it), so it is not kept a second time here.
        Ok(()) | Err(WriteError::Pending { .. }) => {
            state.rotation.forget(&old.id);
            state.rotation.rotated();
            let date = |t: Option<u64>| t.map(format_date).unwrap_or_else(|| "never".into());
            tracing::info!(runtime = %rt.name, old_expiry = %date(old.expires), new_expiry = %date(new_expiry), "rotated the GitLab token");
            state
                .audit(
                    AuditEvent::now(kind::ROTATED)
                        .runtime(&rt.name)
                        .token(decision::token_label(old))
                        .reason(format!(
                            "rotated at the host ({}): old expiry {}, new expiry {}",
                            rt.rotate_via.text(),
                            date(old.expires),
                            date(new_expiry)
                        )),
                )
                .await;
            Ok(())
        }
        Err(e) => {
            state.rotation.update(&old.id, |n| n.unsaved = Some(change));
            Err(format!(
                "the host rotated the token but the new one could not be saved yet ({e}); it is kept in memory and saved at the next attempt"
            ))
        }
    }
}

/// A rotated token kept in memory after a failed save: saved now, the host not asked.
async fn save_unsaved(state: &State, rt: &RuntimeConfig, token: &TokenMeta) -> Result<(), String> {
    let mut change = None;
    state
        .rotation
        .update(&token.id, |n| change = n.unsaved.take());
    match change {
        Some(change) => save(state, rt, token, change).await,
        None => Ok(()),
    }
}

/// A token whose rotation was started and not finished (the daemon stopped, or the host's
/// answer was lost): proves with a read whether the host rotated it.
async fn settle_in_doubt(
    state: &State,
    rt: &RuntimeConfig,
    token: &TokenMeta,
) -> Result<(), String> {
    let (secret, client) = secret_and_client(state, token).await?;
    match client
        .introspect(&Target::for_runtime(rt), rt.api_user(), &secret)
        .await
    {
        // Still active: the host never rotated it. Rotated at the next look if due.
        Ok(_) => {
            tracing::info!(runtime = %rt.name, "an unfinished rotation did not reach the host; the token is still active");
            save_mark(&state.writer, &rt.name, &token.id, None).await?;
            state.rotation.update(&token.id, |n| {
                n.error = None;
                n.failures = 0;
                n.retry_at = None;
            });
            state.rotation.wake();
            Ok(())
        }
        Err(ProviderError::Rejected { .. }) => {
            lost(state, rt, token).await;
            Ok(())
        }
        Err(e) => Err(format!(
            "a rotation was interrupted and the host cannot say yet whether it rotated the token ({e})"
        )),
    }
}

/// The host rotated the token and the new one never reached helperd: the old token is
/// revoked, only the user can make a new one. Marked rejected (git's next request gets
/// the renewal prompt); the rotation mark stays, so nothing rotates with it again.
async fn lost(state: &State, rt: &RuntimeConfig, token: &TokenMeta) {
    tracing::warn!(runtime = %rt.name, "an interrupted rotation: the host rotated the token but the new one was never saved; the token needs a renewal");
    let now = state.now();
    let (runtime, id) = (rt.name.clone(), token.id.clone());
    let edit: Edit = Box::new(move |book| {
        if let Some(t) = book.for_runtime_mut(&runtime).filter(|t| t.id == id) {
            t.rejected_at = Some(now);
            t.notes.push(format!(
                "rotated at the host on {} by a rotation that was interrupted: the new token never reached helperd; make a new one and run `helperctl renew {runtime}`",
                format_date(t.rotation_started.unwrap_or(now))
            ));
        }
        Ok(Vec::new())
    });
    if let Err(e) = state.writer.edit_tokens(edit, Save::Now).await {
        tracing::warn!(error = %e, "could not record the lost rotation");
    }
    state.rotation.forget(&token.id);
    state
        .audit(
            AuditEvent::now(kind::ROTATION_LOST)
                .runtime(&rt.name)
                .token(decision::token_label(token))
                .reason("the host rotated the token in a rotation that was interrupted; the new token never reached helperd; renew it"),
        )
        .await;
}
