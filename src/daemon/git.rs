//! The git service: carries out the [`Decision`] for each git request (DESIGN.md §6).
//! It gathers the facts (snapshots and `now`), asks [`decide`], fetches the secret the
//! decision names, has the writer make the change it names, writes the one audit event
//! built from it, and answers. It decides nothing itself.

mod mint;
mod refresh;

use std::sync::Arc;

use helperd_wire::wire::{GitAction, RenewalPrompt, Response};

use super::peer::{Channel, Peer};
use super::replies::{self, bad_request, for_git, refusal_error, store_error, write_error};
use super::state::store_slot::problem;
use super::state::team_watch::TeamSnapshot;
use super::state::writer::{Edit, Landing, Save, WriteError};
use super::state::State;
use crate::decision::{
    self, decide, Decision, Done, Facts, MarkRejected, PlainView, Refusal, RenewToken, ServeToken,
    StoreProblem, Via,
};
use crate::gitproto::GitCredential;
use crate::plain::PlainTable;
use crate::secret::Secret;
use crate::team::is_team_token;
use crate::timefmt::format_date;
use crate::token::TokenMeta;

/// Longest a git request waits for the team runtimes' first read after the daemon starts.
const FIRST_TEAM_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the team runtimes are unknown, while they are configured and none was ever read.
fn team_unread(config: &crate::config::Config, team: &TeamSnapshot) -> Option<String> {
    let configured = config
        .openbao
        .as_ref()
        .is_some_and(|o| o.team_path.is_some());
    if !configured || team.read_at.is_some() {
        return None;
    }
    Some(match &team.failing {
        Some((_, e)) => e.to_string(),
        None => "OpenBao has not answered yet".to_string(),
    })
}

/// Where the request came from, as the decision sees it.
fn via_of(peer: &Peer) -> Via {
    match peer.channel {
        Channel::Forward => Via::Forward,
        Channel::Main | Channel::Support => Via::Local,
    }
}

/// `protocol://host/path` of git's request (never a username or password), for the audit
/// log.
fn request_url(cred: &GitCredential) -> String {
    let parts = [
        cred.protocol.as_deref().unwrap_or(""),
        "://",
        cred.host.as_deref().unwrap_or(""),
        if cred.path.is_some() { "/" } else { "" },
        cred.path.as_deref().unwrap_or(""),
    ];
    // Joined by hand: `format!` costs every git request a few hundred instructions more.
    parts.concat()
}

/// One git request: `get`, `store` or `erase`.
pub async fn request(
    state: &State,
    peer: &Peer,
    action: GitAction,
    cred: GitCredential,
    lifetime: Option<u64>,
) -> Response {
    // A broken config.toml is the local user's to hear about, once.
    let config_notice = match peer.channel {
        Channel::Forward => None,
        Channel::Main | Channel::Support => state.config.notice_for_git(),
    };
    let response = answer(state, peer, action, &cred, lifetime).await;
    with_notice_first(response, config_notice)
}

/// Decides (twice at most: again after fetching what the first look asked for) and
/// carries the decision out. The rare waits here and in [`execute`] (a refresh, a mint,
/// the store's first open or read, a renewal, git's `store` and `erase`) are boxed: each
/// request's future is allocated whole, and they made a `get`'s 7.5 KiB, not 3.8.
async fn answer(
    state: &State,
    peer: &Peer,
    action: GitAction,
    cred: &GitCredential,
    lifetime: Option<u64>,
) -> Response {
    if !state.team.is_settled() {
        // Only right after the daemon started (see `TeamWatch::first_round`), and at
        // most FIRST_TEAM_READ_WAIT; `team_unread` below covers a read that takes longer.
        Box::pin(state.team.first_round(FIRST_TEAM_READ_WAIT)).await;
    }
    let mut allow_refresh = true;
    let mut plain_problem = None;
    let mut reads = 0;
    loop {
        let view = state.view();
        let config = view.config.clone();
        let policy = state.policy.current();
        if policy
            .as_ref()
            .is_some_and(|p| p.policy.min_store.is_some())
            && state.store.strength().is_none()
        {
            // Opening the store is what tells its strength; a store that cannot be opened
            // fails the request later anyway.
            let _ = Box::pin(state.store.open()).await;
        }
        let book = view.book.clone();
        let plain: Option<Arc<PlainTable>> = state.plain();
        let backoff = state.refresh.backoff();
        let mints = state.mints.view();
        let rotation_failed = state.rotation.failed();
        let now = state.now();
        let config_broken = state.config.never_loaded();
        let team_unread = team_unread(&config, &view.team);
        let facts = Facts {
            action,
            via: via_of(peer),
            config_broken: config_broken.as_deref(),
            team_unread: team_unread.as_deref(),
            request: cred,
            lifetime,
            config: &config,
            config_path: state.config.path(),
            policy: policy.as_deref().map(|p| p.in_force()),
            store_strength: state.store.strength(),
            book: book.as_ref().as_ref().map_err(String::as_str),
            plain: match (&plain, &plain_problem) {
                (Some(table), _) => PlainView::Read(table),
                (None, Some(problem)) => PlainView::Unavailable(problem),
                (None, None) => PlainView::NotRead,
            },
            refresh_backoff: &backoff,
            mints: &mints,
            rotation_failed: &rotation_failed,
            allow_refresh,
            now,
        };
        match decide(&facts) {
            Decision::ReadPlain => {
                reads += 1;
                let result = match reads {
                    1 => Box::pin(state.writer.load_plain()).await,
                    // Read, and dropped again at once (the store failed meanwhile).
                    _ => Err(WriteError::Tokens(
                        "the store changed while it was read; try again".into(),
                    )),
                };
                if let Err(e) = result {
                    plain_problem = Some(match e {
                        WriteError::Store(e) => problem(&e),
                        e => StoreProblem {
                            locked: false,
                            message: e.to_string(),
                        },
                    });
                }
            }
            Decision::Refresh { runtime, token_id } if allow_refresh => {
                Box::pin(refresh::run(state, &runtime, &token_id)).await;
                allow_refresh = false;
            }
            Decision::Mint { runtime, key_id } if allow_refresh => {
                Box::pin(mint::run(state, &runtime, &key_id)).await;
                allow_refresh = false;
            }
            decision => return execute(state, peer, cred, decision, &view.team, now).await,
        }
    }
}

/// Carries out one decision and writes its audit event.
async fn execute(
    state: &State,
    peer: &Peer,
    cred: &GitCredential,
    decision: Decision,
    team: &TeamSnapshot,
    now: u64,
) -> Response {
    let (response, done) = match &decision {
        Decision::ServeToken(serve) => serve_token(state, serve, team, now).await,
        Decision::ServePlain { answer } => (for_git(answer.expose().to_string()), Done::AsDecided),
        Decision::StorePlain { lifetime } => {
            match Box::pin(state.writer.store_plain(cred.clone(), *lifetime, now)).await {
                Ok(Landing::Landed(crate::plain::StoreOutcome::Stored)) => {
                    (for_git(String::new()), Done::AsDecided)
                }
                Ok(Landing::Landed(_)) => (for_git(String::new()), Done::NothingKept),
                Ok(Landing::Pending(_)) => (still_writing(state, "stored"), Done::AsDecided),
                Err(e) => (write_error(e), Done::NothingKept),
            }
        }
        Decision::ErasePlain => match Box::pin(state.writer.erase_plain(cred.clone(), now)).await {
            Ok(Landing::Landed(n)) => (for_git(String::new()), Done::Erased(n)),
            Ok(Landing::Pending(matched)) => {
                (still_writing(state, "erased"), Done::ErasePending(matched))
            }
            Err(e) => (write_error(e), Done::Erased(0)),
        },
        Decision::RenewToken(renew) => Box::pin(renew_from_git(state, peer, renew, now)).await,
        Decision::MarkRejected(mark) if is_team_token(&mark.token_id) => {
            mark_team_rejected(state, mark, team, now)
        }
        Decision::MarkRejected(mark) => Box::pin(mark_rejected(state, mark, now)).await,
        Decision::DropMinted(drop) => drop_minted(state, drop, now),
        // Asked for and fetched before the last look: never left to execute.
        Decision::ReadPlain
        | Decision::Refresh { .. }
        | Decision::Mint { .. }
        | Decision::Nothing => (for_git(String::new()), Done::AsDecided),
        Decision::Refuse(refusal) => (refused(refusal), Done::AsDecided),
    };
    let url = request_url(cred);
    if let Some(event) = decision.audit_event(&url, done, crate::timefmt::unix_now()) {
        state.audit(peer.stamp(event)).await;
    }
    log(&decision, &response);
    response
}

fn log(decision: &Decision, response: &Response) {
    match decision {
        // Every request's outcome is in the audit log: the daemon log keeps to what an
        // operator needs, and the hot path writes one line less.
        Decision::ServeToken(s) => {
            tracing::debug!(runtime = %s.runtime, token = %s.token_label, "get: served the runtime's token")
        }
        Decision::ServePlain { .. } => tracing::debug!("get: served a plain credential"),
        Decision::Refuse(r) => {
            tracing::debug!(runtime = ?r.runtime, reason = %r.reason.name(), "refused")
        }
        Decision::RenewToken(r) => {
            tracing::info!(runtime = %r.runtime, "store: renewed the runtime's token from git's prompt")
        }
        _ => tracing::debug!(?response.notice, "git request done"),
    }
}

/// A refusal: an error, or nothing for git with the notice, the renewal the client may
/// offer, and the username for git's own prompt.
fn refused(refusal: &Refusal) -> Response {
    if let Some((kind, message)) = refusal.reason.error() {
        return refusal_error(kind, message);
    }
    let output = match &refusal.username {
        // Validated like every answer: a username git cannot carry is left out.
        Some(user) => {
            let mut a = crate::gitproto::Answer::new();
            match a.push("username", user) {
                Ok(()) => a.finish().expose().to_string(),
                Err(_) => String::new(),
            }
        }
        None => String::new(),
    };
    for_git(output)
        .with_notice(refusal.notice.clone())
        .with_prompt(refusal.renewal.as_ref().map(|r| RenewalPrompt {
            runtime: r.runtime.clone(),
            text: r.text.clone(),
        }))
}

/// A team token's secret, from the snapshot decided with (never from the store).
fn team_secret(
    team: &TeamSnapshot,
    serve: &ServeToken,
    now: u64,
) -> Result<Option<Secret>, Response> {
    team.secret(&serve.token_id, now).map_err(|message| {
        replies::refusal_error(decision::RefusalError::StoreUnavailable, message)
    })
}

async fn serve_token(
    state: &State,
    serve: &ServeToken,
    team: &TeamSnapshot,
    now: u64,
) -> (Response, Done) {
    let found = match (serve.minted, is_team_token(&serve.token_id)) {
        // Minted with a team entry's key: served on the entry's terms (cache_secs while
        // OpenBao is unreachable, nothing once it refuses us), like the entry's own secret.
        (Some(serial), true) => match team_secret(team, serve, now) {
            Ok(_) => Ok(state.mints.secret(&serve.runtime, serial)),
            Err(response) => return (response, Done::AsDecided),
        },
        // Dropped (git's erase) between the decision and now: nothing, as for a miss.
        (Some(serial), _) => Ok(state.mints.secret(&serve.runtime, serial)),
        (None, true) => match team_secret(team, serve, now) {
            Ok(found) => Ok(found),
            Err(response) => return (response, Done::AsDecided),
        },
        (None, false) => Box::pin(state.store.token_secret(&serve.token_id)).await,
    };
    let secret = match found {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::error!(runtime = %serve.runtime, token = %serve.token_id, "token secret missing from the store");
            let notice = format!(
                "helperd: the secret of runtime {}'s token is missing from the store; set it again with `helperctl token set {}`",
                serve.runtime, serve.runtime
            );
            return (
                for_git(String::new()).with_notice(Some(notice)),
                Done::AsDecided,
            );
        }
        Err(e) => return (store_error(e), Done::AsDecided),
    };
    let answer = match serve.answer(&secret) {
        Ok(a) => a,
        Err(e) => {
            return (
                replies::refusal_error(decision::RefusalError::Internal, e.to_string()),
                Done::AsDecided,
            )
        }
    };
    record_use(state, serve, now).await;
    // A GitLab token inside its rotation window is rotated in the background; git gets
    // the current, still valid token now and never waits for the host.
    if serve.minted.is_none() && !is_team_token(&serve.token_id) && rotates(state, &serve.runtime) {
        state.rotation.wake();
    }
    #[cfg(feature = "desktop-notifications")]
    if let Some(text) = &serve.warning {
        desktop_notification(text);
    }
    (
        for_git(answer.expose().to_string()).with_notice(serve.warning.clone()),
        Done::AsDecided,
    )
}

/// Whether `runtime`'s token rotates itself (a GitLab runtime with a rotation window):
/// then a served `get` wakes the rotator task (`daemon::rotator`).
fn rotates(state: &State, runtime: &str) -> bool {
    // Borrowed from the snapshots: this runs on every served `get`.
    let (config, policy) = (state.config.current(), state.policy.current());
    config.runtime(runtime).is_some_and(|rt| {
        crate::rotation::window_days(rt, policy.as_deref().map(|p| p.in_force().policy)).is_some()
    })
}

/// `last_used`, and the day the expiry warning was shown (saved at once: the once-a-day
/// promise must survive a restart). The answer does not wait for it.
async fn record_use(state: &State, serve: &ServeToken, now: u64) {
    if is_team_token(&serve.token_id) {
        // Team tokens have no record in tokens.json: the warning's day stays in memory.
        if serve.warning.is_some() {
            state.team.warned(&serve.token_id, now / 86_400);
        }
        return;
    }
    let (runtime, id, warned) = (
        serve.runtime.clone(),
        serve.token_id.clone(),
        serve.warning.is_some(),
    );
    let edit: Edit = Box::new(move |book| {
        if let Some(t) = book.for_runtime_mut(&runtime).filter(|t| t.id == id) {
            t.last_used = Some(now);
            if warned {
                t.warned_on.insert(runtime.clone(), now / 86_400);
            }
        }
        Ok(Vec::new())
    });
    let save = if warned { Save::Now } else { Save::Lazily };
    state.writer.edit_tokens_later(edit, save).await;
}

/// Shows `text` as a desktop notification; failures only reach the log.
#[cfg(feature = "desktop-notifications")]
fn desktop_notification(text: &str) {
    let body = text.trim_start_matches("helperd: ");
    match std::process::Command::new("notify-send")
        .args(["--app-name=helperd", "helperd: token expiring", body])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        // Reaped on a thread so the request does not wait for the notification daemon.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => tracing::debug!(error = %e, "no desktop notification (notify-send)"),
    }
}

/// A new token from git's `store` (typed at git's own prompt).
async fn renew_from_git(
    state: &State,
    peer: &Peer,
    renew: &RenewToken,
    now: u64,
) -> (Response, Done) {
    let token = TokenMeta {
        last_used: Some(now),
        ..TokenMeta::new(Some(renew.name.clone()), now, renew.expires)
    };
    match set_token(state, peer, &renew.runtime, token, renew.secret.clone()).await {
        Ok(()) => (
            for_git(String::new()).with_notice(Some(format!(
                "helperd: stored the new token for runtime {} (`helperctl status` shows it)",
                renew.runtime
            ))),
            Done::AsDecided,
        ),
        Err(resp) => (resp, Done::NothingKept),
    }
}

/// Stores `secret` as `runtime`'s new token (a renewal: no provider check, git's use of it
/// is the check).
async fn set_token(
    state: &State,
    peer: &Peer,
    runtime: &str,
    token: TokenMeta,
    secret: Secret,
) -> Result<(), Response> {
    state
        .new_token(Some(peer), runtime, token, secret, None)
        .await
        .map_err(replies::set_token_error)
}

/// git got a 401 with a team token: not served again, and the team entries are re-read at
/// once (the admin may have rotated it already). Nothing is written to disk.
fn mark_team_rejected(
    state: &State,
    mark: &MarkRejected,
    team: &TeamSnapshot,
    now: u64,
) -> (Response, Done) {
    if let Some(given) = &mark.only_if_secret_is {
        match team.secret(&mark.token_id, now) {
            Ok(Some(ours)) if ours == *given => {}
            // Not ours, or nothing to compare with: leave the mark off.
            _ => return (for_git(String::new()), Done::NotOurs),
        }
    }
    tracing::warn!(runtime = %mark.runtime, "erase: the host rejected the team token; re-reading OpenBao");
    state.team.reject(&mark.token_id, now);
    (for_git(String::new()), Done::AsDecided)
}

/// git's `erase` after a 401 with a GitHub App installation token: the token is thrown
/// away (the next request mints a new one); a re-minted token erased again is not
/// minted a third time at once.
fn drop_minted(state: &State, drop: &decision::DropMinted, now: u64) -> (Response, Done) {
    let refused = || {
        "GitHub refused two freshly minted installation tokens in a row (git erased both after \
         a 401): the installation may lack access to this repository or the permissions git \
         needs (contents); check the app's installation"
            .to_string()
    };
    let until = now.saturating_add(super::state::mint_gate::MINT_RETRY_SECS);
    match state.mints.erase(
        &drop.runtime,
        drop.serial,
        drop.only_if_secret_is.as_ref(),
        refused,
        until,
    ) {
        Some(()) => {
            tracing::warn!(runtime = %drop.runtime, "erase: the host rejected the installation token; thrown away");
            (for_git(String::new()), Done::AsDecided)
        }
        None => (for_git(String::new()), Done::NotOurs),
    }
}

/// git's `erase` after a 401: the runtime's token is marked rejected when the failed
/// secret is ours.
async fn mark_rejected(state: &State, mark: &MarkRejected, now: u64) -> (Response, Done) {
    if let Some(given) = &mark.only_if_secret_is {
        match state.store.token_secret(&mark.token_id).await {
            // Not our token that failed: leave ours alone.
            Ok(Some(ours)) if ours != *given => return (for_git(String::new()), Done::NotOurs),
            Ok(_) => {}
            Err(e) => return (store_error(e), Done::NotOurs),
        }
    }
    let (runtime, id) = (mark.runtime.clone(), mark.token_id.clone());
    let edit: Edit = Box::new(move |book| {
        if let Some(t) = book.for_runtime_mut(&runtime).filter(|t| t.id == id) {
            t.rejected_at = Some(now);
        }
        Ok(Vec::new())
    });
    match state.writer.edit_tokens(edit, Save::Now).await {
        Ok(()) => {
            tracing::warn!(runtime = %mark.runtime, "erase: the host rejected the runtime's token; marked rejected");
            (for_git(String::new()), Done::AsDecided)
        }
        Err(e) => (write_error(e), Done::NotOurs),
    }
}

/// The user typed a new token at the client's terminal prompt: store it, then answer
/// git's original request with it, so the push goes on.
pub async fn renew_at_terminal(
    state: &State,
    peer: &Peer,
    runtime: String,
    secret: Secret,
    expires: Option<String>,
    input: &str,
) -> Response {
    let config = state.config.current();
    let policy = state.policy.current();
    if let Err(refusal) = decision::may_renew(
        &config,
        policy.as_deref().map(|p| p.in_force()),
        &runtime,
        via_of(peer),
    ) {
        // Told like any refused git request: nothing for git, the same words whatever the
        // runtime, so that a remote machine learns nothing.
        return refused(&refusal);
    }
    let Some(rt) = config.runtime(&runtime).cloned() else {
        return bad_request(format!("there is no runtime named {runtime:?}"));
    };
    let cred = match GitCredential::parse(input) {
        Ok(c) => c,
        Err(e) => return bad_request(e.to_string()),
    };
    if secret.is_empty() {
        return bad_request("no token given; nothing was stored");
    }
    let now = state.now();
    let typed = expires.as_deref().map(str::trim).filter(|e| !e.is_empty());
    let expires = match typed {
        // Left empty: the expiry the host reports, when it answers quickly.
        None => refresh::reported_expiry(state, &rt, &secret).await,
        Some(text) => match crate::timefmt::parse_expiry(text) {
            Ok(t) if t > now => Some(t),
            Ok(_) => return bad_request("that expiry is in the past; nothing was stored"),
            Err(e) => return bad_request(format!("expiry: {e}; nothing was stored")),
        },
    };
    let token = TokenMeta::new(Some(format!("renewed {}", format_date(now))), now, expires);
    let label = decision::token_label(&token);
    if let Err(resp) = set_token(state, peer, &rt.name, token, secret).await {
        return resp;
    }
    tracing::info!(runtime = %rt.name, "renewed the runtime's token at the terminal");
    state
        .audit(
            peer.event(crate::audit::kind::RENEWED)
                .url(&request_url(&cred))
                .runtime(&rt.name)
                .token(label)
                .reason("new token typed at the renewal prompt"),
        )
        .await;
    let answer = answer(state, peer, GitAction::Get, &cred, None).await;
    let stored = format!("helperd: stored the new token for runtime {}", rt.name);
    with_notice_first(answer, Some(stored))
}

/// git's `store`/`erase` was made in memory but the store has not answered within the
/// write wait: one line for git's user, who may have an unlock dialog to answer.
fn still_writing(state: &State, done: &str) -> Response {
    let waits = state.store.waits();
    for_git(String::new()).with_notice(Some(format!(
        "helperd: the {store} store has not answered for {secs} s (an unlock dialog waiting?): the credential is {done} in memory and served from there, and is written as soon as the store answers; `helperctl status` shows the pending writes",
        store = state.store.expected_kind(),
        secs = waits.write.as_secs_f64().ceil() as u64,
    )))
}

/// Adds `first` before the response's own notice.
fn with_notice_first(mut response: Response, first: Option<String>) -> Response {
    response.notice = match (first, response.notice.take()) {
        (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
        (a, b) => a.or(b),
    };
    response
}
