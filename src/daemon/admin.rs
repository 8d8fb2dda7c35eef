//! The admin service: `helperctl status`, `which`, `daemon reload`, `audit`, `support`,
//! `unlock`, `store set-passphrase`, and the test clock. Reads snapshots; the few changes
//! (unlock, passphrase) go through the writer.

use std::path::PathBuf;

use helperd_wire::wire::{
    AppStatus, ConfigStatus, ErrorCode, ForwardStatus, OpenBaoStatus, PolicyStatus, Reply,
    Response, RotationStatus, RuntimeStatus, StatusReport, StoreStatus, SupportStatus, TeamSource,
    TokenStatus, WhichCandidate, WhichReport, PROTOCOL_VERSION,
};
use tokio::sync::oneshot;

use super::peer::Peer;
use super::replies::{bad_request, done, write_error};
use super::state::policy_watch::LoadedPolicy;
use super::state::writer::WriteError;
use super::state::{State, SupportGrant};
use crate::audit::kind;
use crate::config::{AuthScheme, RuntimeConfig};
use crate::decision::effective_warn_days;
use crate::location::Location;
use crate::provider::{self, OAuthAppSource};
use crate::runtime::{self, Outcome, Route};
use crate::secret::Secret;
use crate::store::StoreError;
use crate::token::TokenBook;

/// `helperctl daemon reload`, SIGHUP.
pub fn reload(state: &State) -> Response {
    state.policy.reload_now();
    match state.config.reload() {
        Ok(config) => done(format!(
            "configuration reloaded: {} runtimes",
            config.runtimes.len()
        )),
        Err(e) => Response::error(
            ErrorCode::Config,
            format!("{e}\nthe last good configuration stays in force"),
        ),
    }
}

/// `helperctl status`: daemon, store, configuration, runtimes, policy, support access.
pub async fn status(state: &State) -> Response {
    let store = store_status(state).await;
    let policy = state.policy.current();
    let (config, runtimes) = config_and_runtimes(state, policy.as_deref());
    let forward = forward_status(state, policy.as_deref());
    let policy = policy_status(state, policy.as_deref());
    let support = state.support().as_ref().map(|g| g.status.clone());
    Response::new(Reply::Status {
        status: Box::new(StatusReport {
            config,
            runtimes,
            policy,
            support,
            forward: Some(forward),
            log_lines_lost: super::log_writer::lines_lost(),
            openbao: openbao_status(state),
            exposed_folders: exposed_folders(state),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: PROTOCOL_VERSION,
            uptime_secs: state.started.elapsed().as_secs(),
            socket: state.settings.socket.display().to_string(),
            store,
        }),
    })
}

/// The folders holding helperd's files that other users may reach (see
/// `StatusReport::exposed_folders`); one read of each folder's permissions.
fn exposed_folders(state: &State) -> Vec<String> {
    let settings = &state.settings;
    // Not the config folder: config.toml holds no secret.
    [settings.state_dir.as_path(), settings.data_dir.as_path()]
        .into_iter()
        .filter_map(|dir| match crate::os::others_with_access(dir) {
            Ok(who) if !who.is_empty() => Some(format!("{}: {}", dir.display(), who.join(", "))),
            _ => None,
        })
        .collect()
}

fn forward_status(state: &State, policy: Option<&LoadedPolicy>) -> ForwardStatus {
    use std::sync::atomic::Ordering;
    let config = state.config.current();
    ForwardStatus {
        socket: state.settings.forward_socket().display().to_string(),
        open: state.forward.open.load(Ordering::Relaxed),
        served: state.forward.served.load(Ordering::Relaxed),
        closed_because: crate::decision::forwarding(
            &config,
            policy.map(LoadedPolicy::in_force),
            state.policy.error().as_deref(),
        )
        .err(),
    }
}

/// `status` answers from memory: it waits for the store at most this long, to read the
/// plain credentials when nothing has read them yet.
const STATUS_STORE_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

async fn store_status(state: &State) -> StoreStatus {
    let loaded = match state.plain() {
        Some(table) => Ok(table),
        None => match state.writer.load_plain_within(STATUS_STORE_WAIT).await {
            Ok(()) => state
                .plain()
                .ok_or_else(|| WriteError::Tokens("the store changed while it was read".into())),
            Err(e) => Err(e),
        },
    };
    let mut status = match state.store.peek() {
        Some(open) => StoreStatus {
            kind: open.store.kind().name().to_string(),
            protection: open.protection(),
            location: open.location(),
            state: "ok".into(),
            waiting_secs: None,
            pending_writes: Vec::new(),
            problem: None,
            plain_credentials: None,
        },
        None => StoreStatus {
            kind: match &loaded {
                Err(WriteError::Store(e)) => e.store(),
                _ => None,
            }
            .unwrap_or_else(|| state.store.expected_kind())
            .name()
            .to_string(),
            protection: "unknown".into(),
            location: None,
            state: "unavailable".into(),
            waiting_secs: None,
            pending_writes: Vec::new(),
            problem: None,
            plain_credentials: None,
        },
    };
    match loaded {
        Ok(table) => status.plain_credentials = Some(table.len_alive(state.now())),
        Err(WriteError::Store(e @ StoreError::Locked { .. })) => {
            status.state = "locked".into();
            status.problem = Some(e.to_string());
        }
        Err(WriteError::Store(e @ StoreError::NoAnswer { .. })) => {
            status.state = "waiting".into();
            status.problem = Some(e.to_string());
        }
        Err(e) => {
            status.state = "unavailable".into();
            status.problem = Some(e.to_string());
        }
    }
    let pending = state.writer.pending();
    if let Some(running) = pending
        .running_for
        .filter(|d| *d >= state.store.waits().write)
    {
        status.state = "waiting".into();
        status.waiting_secs = Some(running.as_secs());
        status.problem = Some(format!(
            "the {} store has not answered for {} s: is it waiting for you (an unlock dialog, a Keychain prompt)? Reads are served from memory; the pending writes land when it answers and are lost if the daemon stops first",
            status.kind,
            running.as_secs()
        ));
    }
    status.pending_writes = pending.what;
    status
}

/// The status of `runtime`'s token at `now` (Unix seconds), `None` if it has none.
/// `policy_violation` and `stale` are left empty for the caller to fill.
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
fn config_and_runtimes(
    state: &State,
    policy: Option<&LoadedPolicy>,
) -> (ConfigStatus, Vec<RuntimeStatus>) {
    let view = state.view();
    let config = view.config.clone();
    let policy = policy.map(LoadedPolicy::in_force);
    let now = state.now();
    let warn_days = effective_warn_days(&config, policy);
    let tokens = view.book.clone();
    let empty = TokenBook::default();
    let book = tokens.as_ref().as_ref().unwrap_or(&empty);
    let violations: Vec<(String, String)> = match policy {
        Some(p) => p
            .policy
            .violations(&book.tokens, now, p.source)
            .into_iter()
            .map(|(id, v)| (id, v.message))
            .collect(),
        None => Vec::new(),
    };
    let runtimes = config
        .runtimes
        .iter()
        .map(|rt| {
            let mut token = token_status(book, &rt.name, now, warn_days);
            if let Some(t) = &mut token {
                t.stale = stale_note(t, now, config.settings.stale_days);
                t.policy_violation = violations
                    .iter()
                    .find(|(id, _)| *id == t.id)
                    .map(|(_, m)| m.clone());
            }
            let mut problem = runtime_problem(rt, token.is_some());
            if let Some(p) = policy {
                if let Err(v) = p.policy.check_runtime(rt, p.source) {
                    problem = Some(v.message);
                }
            }
            if let Some(message) =
                crate::decision::name_conflict_message(&config, &rt.name, state.config.path())
            {
                problem = Some(message);
            }
            let oauth_app = provider::oauth_app(rt, policy.map(|p| p.policy)).map(|source| {
                match source {
                    OAuthAppSource::Runtime(_) => "runtime",
                    OAuthAppSource::Policy(_) => "policy",
                }
                .to_string()
            });
            let app = rt.app.as_ref().map(|app| {
                let key = book.for_runtime(&rt.name);
                let mint = key
                    .map(|k| state.mints.status(&rt.name, &k.id))
                    .unwrap_or_default();
                let minted_for = mint.token.as_ref().map(|t| t.1);
                let (installation, from) = match (
                    app.installation_id,
                    key.and_then(|k| k.app_installation).or(minted_for),
                ) {
                    // A team runtime's app is its OpenBao entry's.
                    (Some(id), _) if rt.team.is_some() => {
                        (Some(id), Some("team entry".to_string()))
                    }
                    (Some(id), _) => (Some(id), Some("config".to_string())),
                    (None, Some(id)) => (Some(id), Some("discovered".to_string())),
                    (None, None) => (None, None),
                };
                let token_expires = mint.token.as_ref().map(|t| t.0);
                AppStatus {
                    app_id: app.app_id,
                    client_id: app.client_id.clone(),
                    installation: mint.token.as_ref().map(|t| t.1).or(installation),
                    installation_from: from,
                    permissions: app
                        .permissions
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect(),
                    token_expires,
                    minted_at: mint.token.as_ref().map(|t| t.2),
                    next_mint: match (&mint.failure, token_expires) {
                        (Some((_, until)), _) => Some(*until),
                        (None, Some(t)) => Some(t.saturating_sub(crate::decision::MINT_AHEAD_SECS)),
                        (None, None) => None,
                    },
                    error: mint.failure.map(|(why, _)| why),
                    mints: mint.mints,
                }
            });
            let rotation = rotation_status(state, rt, book, policy.map(|p| p.policy), now);
            RuntimeStatus {
                rotation,
                app,
                oauth_app,
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
                team: rt.team.as_ref().map(|t| TeamSource {
                    path: t.path.clone(),
                    version: t.version,
                }),
            }
        })
        .collect();
    let mut error = state.config.error();
    if let Err(e) = tokens.as_ref() {
        error = Some(error.map_or(e.clone(), |c| format!("{c}; {e}")));
    }
    let status = ConfigStatus {
        path: state.config.path().display().to_string(),
        warn_days,
        error,
    };
    (status, runtimes)
}

/// The OpenBao part of `status`, when team runtimes are configured.
fn openbao_status(state: &State) -> Option<OpenBaoStatus> {
    let team = state.team.current();
    let source = team.source.clone()?;
    Some(OpenBaoStatus {
        source,
        addresses: team.addresses.clone(),
        auth: team.session.method.clone(),
        read_at: team.read_at,
        failing_since: team.failing.as_ref().map(|(since, _)| *since),
        error: team.failing.as_ref().map(|(_, e)| e.to_string()),
        // As `TeamSnapshot::secret` decides: only while no node answers, and counted
        // from the last complete read.
        cache_until: team
            .failing
            .as_ref()
            .filter(|(_, e)| e.is_unreachable())
            .map(|(since, _)| {
                team.read_at
                    .unwrap_or(*since)
                    .saturating_add(team.cache_secs)
            }),
        invalid: team
            .invalid
            .iter()
            .chain(state.view().left_out.iter())
            .map(|(path, why)| format!("{path}: {why}"))
            .collect(),
        logins: team.session.logins,
        renewals: team.session.renewals,
        lease_ends_at: team.session.lease_ends_at,
    })
}

/// The policy part of `status`.
fn policy_status(state: &State, policy: Option<&LoadedPolicy>) -> Option<PolicyStatus> {
    let error = state.policy.error();
    match policy {
        Some(p) => Some(PolicyStatus {
            path: p.path.display().to_string(),
            rules: p
                .policy
                .rules()
                .into_iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect(),
            error,
        }),
        None => error.map(|e| PolicyStatus {
            path: crate::policy::file::policy_path().display().to_string(),
            rules: Vec::new(),
            error: Some(e),
        }),
    }
}

/// `helperctl which URL`.
pub fn which(state: &State, url: &str) -> Response {
    // The URL may carry a token (https://user:TOKEN@host/...): never echo it.
    let shown = helperd_wire::url::redact_password(url);
    let (loc, user) = match Location::parse_url_with_user(url) {
        Ok(parsed) => parsed,
        Err(e) => return bad_request(format!("{shown:?} is not a URL helperd can route: {e}")),
    };
    let view = state.view();
    let config = view.config.clone();
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
            if let Some(team) = &runtime.team {
                report.reason.push_str(&format!(
                    "; a team runtime, read from OpenBao at {} (version {})",
                    team.path, team.version
                ));
            }
            report.fix =
                crate::decision::name_conflict_message(&config, &runtime.name, state.config.path());
            report.runtime = Some(runtime.name.clone());
            report.prefix = Some(prefix.to_string());
            if let Ok(book) = view.book.as_ref() {
                report.token =
                    token_status(book, &runtime.name, state.now(), config.settings.warn_days);
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

/// `helperctl audit`: every event sent before it, the ones held back a moment too.
pub async fn audit(state: &State, since: Option<u64>, runtime: Option<&str>) -> Response {
    state.writer.flush_audit().await;
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

/// `helperctl unlock`.
pub async fn unlock(state: &State, passphrase: Secret) -> Response {
    match state.writer.unlock(passphrase).await {
        Ok(()) => {
            tracing::info!("store unlocked");
            Response::new(Reply::Done)
        }
        Err(e) => write_error(e),
    }
}

/// `helperctl store set-passphrase`.
pub async fn set_passphrase(state: &State, passphrase: Secret) -> Response {
    match state.writer.set_passphrase(passphrase).await {
        Ok(()) => {
            tracing::info!("file store now protected by a passphrase");
            Response::new(Reply::Done)
        }
        Err(e) => write_error(e),
    }
}

/// `helperctl debug advance-clock`: only a daemon started for tests moves its clock.
pub fn advance_clock(state: &State, secs: u64) -> Response {
    match state.clock.advance(secs) {
        Ok(now) => done(format!("the daemon's clock now reads {now}")),
        Err(why) => Response::error(ErrorCode::Forbidden, why),
    }
}

/// A support grant's socket, ready for the server to serve.
pub struct SupportListener {
    /// The support socket, bound and non-blocking; mode 0666, so the peer-uid check is
    /// what keeps other users out.
    pub listener: crate::ipc::Listener,
    /// The socket's private folder, removed when support access ends.
    pub dir: PathBuf,
    /// The only uid whose connections are answered.
    pub uid: u32,
    /// How long the grant lasts; the socket closes after it (monotonic time).
    pub lifetime: std::time::Duration,
    /// Fires when `helperctl support disable` ends the grant early.
    pub stop: oneshot::Receiver<()>,
}

/// The support socket's folder for this daemon (unique per daemon process, so several
/// daemons of one user — sandboxes, tests — never collide).
fn support_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "helperd-support-{}-{}",
        crate::os::current_uid(),
        std::process::id()
    ))
}

/// `helperctl support enable`: opens the support socket for `uid` until `now +
/// duration_secs`, replacing any grant. The server serves the listener it returns.
pub async fn support_enable(
    state: &State,
    peer: &Peer,
    user: String,
    uid: u32,
    duration_secs: u64,
) -> (Response, Option<SupportListener>) {
    if uid == peer.uid {
        let e = bad_request("support access is for another user; you already have full access");
        return (e, None);
    }
    if duration_secs == 0 || duration_secs > 7 * 86_400 {
        return (
            bad_request("support access lasts from 1 second to 7 days"),
            None,
        );
    }
    if let Some(mut old) = state.support().take() {
        old.end();
    }
    let dir = support_dir();
    let socket = dir.join("socket");
    let listener = match crate::ipc::listen_support(&dir) {
        Ok(l) => l,
        Err(e) => {
            let message = format!(
                "failed to open the support socket {}: {e}",
                socket.display()
            );
            return (Response::error(ErrorCode::Internal, message), None);
        }
    };
    let until = state.now().saturating_add(duration_secs);
    let status = SupportStatus {
        user: user.clone(),
        uid,
        until,
        socket: socket.display().to_string(),
    };
    let (stop_tx, stop_rx) = oneshot::channel();
    *state.support() = Some(SupportGrant {
        status,
        stop: Some(stop_tx),
    });
    let until_text = crate::timefmt::format_datetime(until);
    state
        .audit(
            peer.event(kind::SUPPORT_GRANTED)
                .reason(format!("user {user} (uid {uid}) until {until_text}")),
        )
        .await;
    tracing::info!(%user, uid, until, "support access granted");
    let response = done(format!(
        "support access for {user} (uid {uid}) until {until_text}.\nThey run, as themselves:\n  HELPERD_SOCKET={s} helperctl status\n  HELPERD_SOCKET={s} helperctl audit\nEnd it now with `helperctl support disable`.",
        s = socket.display(),
    ));
    let listener = SupportListener {
        listener,
        dir,
        uid,
        lifetime: std::time::Duration::from_secs(duration_secs),
        stop: stop_rx,
    };
    (response, Some(listener))
}

/// `helperctl support disable`: ends support access now.
pub async fn support_disable(state: &State, peer: &Peer) -> Response {
    let grant = state.support().take();
    match grant {
        Some(mut grant) => {
            grant.end();
            state
                .audit(
                    peer.event(kind::SUPPORT_REVOKED)
                        .reason(format!("ended by the user (was for {})", grant.status.user)),
                )
                .await;
            done(format!("support access for {} ended", grant.status.user))
        }
        None => bad_request("support access is not enabled"),
    }
}

/// A support grant ran out: forget it (unless another replaced it) and say so.
pub async fn support_expired(state: &State, uid: u32) {
    {
        let mut grant = state.support();
        if grant.as_ref().is_some_and(|g| g.status.uid == uid) {
            *grant = None;
        }
    }
    state
        .audit(crate::audit::AuditEvent::now(kind::SUPPORT_REVOKED).reason("expired"))
        .await;
    tracing::info!("support access expired");
}

/// A GitLab runtime's self-rotation for `status` (issue 18): its window, when it is due,
/// and the rotator's last word on it.
fn rotation_status(
    state: &State,
    rt: &crate::config::RuntimeConfig,
    book: &TokenBook,
    policy: Option<&crate::policy::Policy>,
    now: u64,
) -> Option<RotationStatus> {
    let days = crate::rotation::window_days(rt, policy)?;
    let token = book.for_runtime(&rt.name);
    let note = token
        .map(|t| state.rotation.note(&t.id))
        .unwrap_or_default();
    let due_at = token.and_then(|t| crate::rotation::due_at(t, days));
    let state_name = match token {
        _ if note.in_flight => "in_flight",
        Some(t) if t.rotation_started.is_some() && t.rejected_at.is_some() => "lost",
        Some(t) if t.rotation_started.is_some() => "interrupted",
        _ if note.failures > 0 => "failed",
        Some(t) if t.expires.is_some_and(|e| now >= e) => "not_rotatable",
        Some(_) => match due_at {
            Some(due) if now >= due => "due",
            Some(_) => "scheduled",
            None => "not_rotatable",
        },
        None => "not_rotatable",
    };
    Some(RotationStatus {
        days,
        via: rt.rotate_via.text(),
        state: state_name.to_string(),
        due_at,
        retry_at: note.retry_at,
        failures: note.failures,
        error: note.error,
    })
}
