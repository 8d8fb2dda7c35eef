//! GitHub App installation tokens, minted when the decision asks for it (DESIGN.md §13):
//! one mint per runtime at a time (the others wait for it and then find the token), with
//! no other lock held while GitHub answers, so a slow GitHub delays only this runtime's
//! requests. The token stays in memory ([`MintGate`](super::super::state::mint_gate));
//! the key is read for each mint and dropped after: from the store of record, or for a
//! team runtime from the team snapshot in memory (it is the entry's secret).

use crate::audit::{kind, AuditEvent};
use crate::config::app_scope;
use crate::decision::{minted_label, MINT_AHEAD_SECS};
use crate::provider::{AppKey, Owner, ProviderError, Target};
use crate::team::is_team_token;
use crate::timefmt::format_rfc3339;

use super::super::state::mint_gate::{Minted, MINT_RETRY_SECS};
use super::super::state::writer::{Edit, Save};
use super::super::state::State;

/// Mints a token for `runtime` with key `key_id`, unless another request just did (or
/// one just failed: then the failure stands for [`MINT_RETRY_SECS`]).
pub async fn run(state: &State, runtime: &str, key_id: &str) {
    let flight = state.mints.flight(runtime);
    let one_mint = flight.lock().await;
    let now = state.now();
    let fresh = state
        .mints
        .current(runtime, key_id)
        .is_some_and(|m| now.saturating_add(MINT_AHEAD_SECS) < m.expires_at);
    if !fresh && !state.mints.backing_off(runtime, key_id, now) {
        if let Err(why) = mint_once(state, runtime, key_id).await {
            let why = match is_team_token(key_id) {
                true => {
                    // The admin may have published a new key already: read it now, not
                    // at the next refresh_secs.
                    state.team.wake();
                    for_team(why)
                }
                false => why,
            };
            tracing::warn!(%runtime, %why, "GitHub App: no installation token minted; trying again in a minute");
            let until = state.now().saturating_add(MINT_RETRY_SECS);
            state.mints.fail(runtime, key_id, why, until);
        }
    }
    drop(one_mint);
    state.mints.done(runtime);
}

/// One mint, under the runtime's flight lock. `Err`: what git's user reads.
async fn mint_once(state: &State, runtime: &str, key_id: &str) -> Result<(), String> {
    // The view, not config.toml and tokens.json alone: a team runtime's app and key
    // metadata come from OpenBao (DESIGN.md §10) and are only there.
    let view = state.view();
    let rt = view
        .config
        .runtime(runtime)
        .ok_or("the runtime is gone from the configuration")?;
    let app = rt.app.as_ref().ok_or("not a GitHub App runtime")?;
    let key_meta = view
        .book
        .as_ref()
        .as_ref()
        .ok()
        .and_then(|b| b.for_runtime(runtime))
        .filter(|t| t.id == key_id)
        .ok_or("the app's key was replaced meanwhile")?;
    let team = is_team_token(key_id);
    let pem = if team {
        // The team entry's key, held in memory with the snapshot it was read in.
        view.team
            .secret(key_id, state.now())?
            .ok_or("the team entry's key is gone from OpenBao (revoked or replaced)")?
    } else {
        state
            .store
            .token_secret(key_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!("the app's private key is missing from the store; run `helperctl token set-app {runtime} --key-file ...`")
            })?
    };
    let key = AppKey::from_pem(&pem).map_err(|e| e.to_string())?;
    drop(pem);
    let client = state.providers().map_err(|e| e.to_string())?;
    let target = Target::for_runtime(rt);
    let now = state.now();
    let jwt = key.jwt(&app.issuer(), now).map_err(|e| e.to_string())?;
    let scope = app_scope(&rt.urls).map_err(|e| e.to_string())?;
    // A team runtime's discovered installation is not recorded anywhere but the token
    // minted with it (nothing of a team runtime goes to tokens.json).
    let known = app
        .installation_id
        .or(key_meta.app_installation)
        .or_else(|| state.mints.current(runtime, key_id).map(|m| m.installation));
    let installation = match known {
        Some(id) => id,
        None => {
            let owner = scope
                .owner
                .as_deref()
                .ok_or("no installation_id, and the urls name no account to look it up for")?;
            let repo = match scope.repositories.as_slice() {
                [one] => Some(one.as_str()),
                _ => None,
            };
            let asked = match repo {
                Some(r) => Owner::Repo(owner, r),
                None => Owner::Account(owner),
            };
            let found = client
                .find_installation(&target, &jwt, &asked, now)
                .await
                .map_err(|e| with_install_page(e, &target, key_meta.app_slug.as_deref()))?;
            if !team {
                record_installation(state, runtime, key_id, found.id).await;
            }
            found.id
        }
    };
    let token = client
        .mint_installation_token(
            &target,
            &jwt,
            installation,
            &app.permissions,
            &scope.repositories,
            now,
        )
        .await
        .map_err(|e| e.to_string())?;
    let expires_at = token.expires_at;
    let permissions = token.permissions.clone();
    let remint = state.mints.put(
        runtime,
        Minted {
            key_id: key_id.to_string(),
            secret: token.token,
            expires_at,
            installation,
            permissions: permissions.clone(),
            minted_at: now,
        },
    );
    tracing::info!(%runtime, installation, expires_at, "GitHub App: minted an installation token");
    let mut reason = format!(
        "app {} installation {installation}; permissions {}; repositories {}; expires {}",
        app.app_id,
        if permissions.is_empty() {
            "as installed".to_string()
        } else {
            permissions.join(",")
        },
        match (&token.repository_selection, scope.repositories.is_empty()) {
            (_, false) => scope.repositories.join(","),
            (Some(sel), true) => sel.clone(),
            (None, true) => "as installed".into(),
        },
        format_rfc3339(expires_at)
    );
    if remint {
        reason.push_str("; after git erased the previous one");
    }
    state
        .audit(
            AuditEvent::now(kind::MINTED)
                .runtime(runtime)
                .token(minted_label(installation))
                .reason(reason),
        )
        .await;
    Ok(())
}

/// A team runtime's key is the admin's, in OpenBao: the way out GitHub's refusal names
/// for a local key (`token set-app`) is the admin's `team publish` instead.
fn for_team(why: String) -> String {
    why.replace(
        crate::provider::LOCAL_KEY_FIX,
        "ask your admin to publish it (`helperctl team publish RUNTIME --app-id ... --key-file ...`)",
    )
}

/// "Not installed" with the app's installation page, when its slug is known.
fn with_install_page(e: ProviderError, target: &Target, slug: Option<&str>) -> String {
    match (e, slug) {
        (ProviderError::Unsupported { what }, Some(slug)) if what.contains("not installed") => {
            format!(
                "{what}; the app's installation page: {}/apps/{slug}/installations/new",
                target.web_base
            )
        }
        (e, _) => e.to_string(),
    }
}

/// Records the installation found, so that it is not looked up again.
async fn record_installation(state: &State, runtime: &str, key_id: &str, id: u64) {
    let (name, key) = (runtime.to_string(), key_id.to_string());
    let edit: Edit = Box::new(move |book| {
        if let Some(t) = book.for_runtime_mut(&name).filter(|t| t.id == key) {
            t.app_installation = Some(id);
        }
        Ok(Vec::new())
    });
    if let Err(e) = state.writer.edit_tokens(edit, Save::Now).await {
        tracing::warn!(%runtime, error = %e, "GitHub App: could not record the installation id");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_key_refused_by_github_names_team_publish_not_token_set_app() {
        let why = format!(
            "GitHub rejected the app's JWT: ...; {}",
            crate::provider::LOCAL_KEY_FIX
        );
        let said = for_team(why);
        assert!(!said.contains("token set-app"), "{said}");
        assert!(said.contains("helperctl team publish"), "{said}");
    }
}
