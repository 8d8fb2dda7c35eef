//! git requests that a runtime answers (DESIGN.md §6): the right token for the URL, never
//! an expired or rejected one, renewal when git stores a new one, rejection when git erases
//! one after a 401. Requests no runtime claims go on to the plain credentials.

use helperd_wire::wire::{ErrorCode, RenewalPrompt, Reply, Response};

use super::handler::{store_error, Peer};
use super::state::{unix_now, Inner, State};
use crate::audit::{kind, AuditEvent};
use crate::config::{AuthScheme, Config, Provider, RuntimeConfig};
use crate::gitproto::{Answer, GitCredential};
use crate::runtime::{self, Location, Route};
use crate::secret::Secret;
use crate::timefmt::{countdown, format_date};
use crate::token::{TokenBook, TokenMeta, TokenState};

/// Who asked and for which URL: what the audit trail records with each decision.
pub struct Ctx<'a> {
    pub peer: &'a Peer,
    /// `protocol://host/path` of git's request (never a username or password).
    pub url: String,
}

impl Ctx<'_> {
    pub fn new<'a>(peer: &'a Peer, cred: &GitCredential) -> Ctx<'a> {
        let mut url = format!(
            "{}://{}",
            cred.protocol.as_deref().unwrap_or(""),
            cred.host.as_deref().unwrap_or("")
        );
        if let Some(path) = &cred.path {
            url.push('/');
            url.push_str(path);
        }
        Ctx { peer, url }
    }

    /// An audit event about this request.
    pub fn event(&self, kind: &str) -> AuditEvent {
        let mut e = AuditEvent::now(kind).url(&self.url);
        if let Some(pid) = self.peer.pid {
            e = e.peer(pid, self.peer.uid);
        }
        e
    }
}

/// Records that a runtime's token was refused, and why.
fn refused(
    state: &State,
    inner: &mut Inner,
    ctx: &Ctx,
    rt: &str,
    token: Option<&TokenMeta>,
    reason: &str,
) {
    let mut e = ctx.event(kind::REFUSED).runtime(rt).reason(reason);
    if let Some(t) = token {
        e = e.token(token_audit_name(t));
    }
    state.audit(inner, e);
}

/// How a token appears in the audit log: its name, else its id (never the secret).
pub fn token_audit_name(t: &TokenMeta) -> String {
    t.name.clone().unwrap_or_else(|| t.id.clone())
}

/// What routing decided for one git request.
pub enum Routed {
    /// No runtime claims the URL: plain credentials answer.
    Plain,
    /// Answered here (possibly with nothing and a notice).
    Done(Box<Response>),
}

impl Routed {
    fn done(response: Response) -> Routed {
        Routed::Done(Box::new(response))
    }
}

fn miss(notice: Option<String>) -> Response {
    Response::new(Reply::Git {
        output: String::new(),
    })
    .with_notice(notice)
}

/// Where a user makes a new token for `rt`, as a sentence tail.
fn token_page_hint(rt: &RuntimeConfig) -> String {
    let base = rt.urls.first().map(|p| p.base_url()).unwrap_or_default();
    match rt.provider.token_page(&base) {
        Some(page) => format!(" (create one at {page})"),
        None => String::new(),
    }
}

fn token_label(t: &TokenMeta) -> String {
    match &t.name {
        Some(n) => format!("token {n:?}"),
        None => "its token".to_string(),
    }
}

/// The scopes git needs, per provider (what to tick on the token page).
pub fn git_scopes(provider: Provider) -> &'static str {
    match provider {
        // https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/managing-your-personal-access-tokens
        Provider::GitHub => "classic token: repo; fine-grained token: Contents read and write",
        // https://docs.gitlab.com/user/profile/personal_access_tokens/#personal-access-token-scopes
        Provider::GitLab => "read_repository, write_repository",
        // https://support.atlassian.com/bitbucket-cloud/docs/api-token-permissions/
        Provider::Bitbucket => "read:repository:bitbucket, write:repository:bitbucket",
        // https://confluence.atlassian.com/bitbucketserver/http-access-tokens-939515499.html
        Provider::BitbucketServer => "repository write (REPO_WRITE) or project write",
        // https://docs.gitea.com/development/oauth2-provider#scopes (token scopes)
        Provider::Gitea => "write:repository",
        Provider::Generic => "whatever your host needs for git over HTTPS",
    }
}

/// An expired or rejected token: a notice for git's stderr (with the command to renew
/// later) and the same facts as a renewal prompt for a client that has a terminal.
fn refusal(rt: &RuntimeConfig, token: &TokenMeta, state: TokenState) -> Response {
    let what = match state {
        TokenState::Rejected => format!(
            "{} was rejected by the host on {} (revoked or rotated?)",
            token_label(token),
            token.rejected_at.map(format_date).unwrap_or_default()
        ),
        _ => format!(
            "{} expired on {}",
            token_label(token),
            token.expires.map(format_date).unwrap_or_default()
        ),
    };
    let base = rt.urls.first().map(|p| p.base_url()).unwrap_or_default();
    let page = rt
        .provider
        .token_page(&base)
        .map(|p| format!("\nCreate a new one at {p}"))
        .unwrap_or_default();
    let scopes = git_scopes(rt.provider);
    let notice = format!(
        "helperd: runtime {name}: {what}; it was not sent to git.\nhelperd: renew it with `helperctl renew {name}`{page_hint} (scopes: {scopes})",
        name = rt.name,
        page_hint = token_page_hint(rt),
    );
    let text = format!(
        "helperd: runtime {name}: {what}.{page}\nScopes git needs: {scopes}",
        name = rt.name,
    );
    miss(Some(notice)).with_prompt(Some(RenewalPrompt {
        runtime: rt.name.clone(),
        text,
    }))
}

/// The user typed a new token at the client's terminal prompt: store it, then answer
/// git's original request with it, so the push goes on.
pub async fn renew(
    state: &State,
    inner: &mut Inner,
    peer: &Peer,
    runtime: String,
    secret: Secret,
    expires: Option<String>,
    input: &str,
) -> Response {
    inner.config.refresh();
    let config = inner.config.current();
    let Some(rt) = config.runtime(&runtime).cloned() else {
        return Response::error(
            ErrorCode::BadRequest,
            format!("there is no runtime named {runtime:?}"),
        );
    };
    let cred = match GitCredential::parse(input) {
        Ok(c) => c,
        Err(e) => return Response::error(ErrorCode::BadRequest, e.to_string()),
    };
    if secret.is_empty() {
        return Response::error(ErrorCode::BadRequest, "no token given; nothing was stored");
    }
    let now = unix_now();
    let expires = match expires.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(text) => match crate::timefmt::parse_expiry(text) {
            Ok(t) if t > now => Some(t),
            Ok(_) => {
                return Response::error(
                    ErrorCode::BadRequest,
                    "that expiry is in the past; nothing was stored",
                )
            }
            Err(e) => {
                return Response::error(
                    ErrorCode::BadRequest,
                    format!("expiry: {e}; nothing was stored"),
                )
            }
        },
    };
    let token = TokenMeta::new(Some(format!("renewed {}", format_date(now))), now, expires);
    let audit_name = token_audit_name(&token);
    if let Err(resp) = set_token(state, inner, Some(peer), &rt.name, token, secret).await {
        return resp;
    }
    tracing::info!(runtime = %rt.name, "renewed the runtime's token at the terminal");
    let ctx = Ctx::new(peer, &cred);
    let e = ctx
        .event(kind::RENEWED)
        .runtime(&rt.name)
        .token(audit_name)
        .reason("new token typed at the renewal prompt");
    state.audit(inner, e);
    let answer = serve(state, inner, &rt, &cred, &ctx).await;
    let stored = format!("helperd: stored the new token for runtime {}", rt.name);
    let notice = match answer.notice.clone() {
        Some(n) => format!("{stored}\n{n}"),
        None => stored,
    };
    answer.with_notice(Some(notice))
}

/// Decides which runtime (if any) answers `cred`. `Route` borrows the config.
fn decide<'a>(config: &'a Config, cred: &GitCredential) -> Option<Route<'a>> {
    let loc = Location::from_git(
        cred.protocol.as_deref(),
        cred.host.as_deref(),
        cred.path.as_deref(),
    )?;
    Some(runtime::route(config, &loc, cred.username.as_deref()).0)
}

fn needs_path_notice(fix: &str, runtimes: &[&str]) -> String {
    format!(
        "helperd: runtimes {} differ by path on this host, and git sent no path, so helperd \
         cannot tell which token to use; nothing was sent.\nhelperd: fix it with: {fix}\n\
         helperd: (or run `helperctl install`, which writes this for every such host)",
        runtimes.join(", ")
    )
}

/// `get` for a runtime.
pub async fn get(state: &State, inner: &mut Inner, cred: &GitCredential, ctx: &Ctx<'_>) -> Routed {
    let config = inner.config.current();
    let rt = match decide(&config, cred) {
        None | Some(Route::NoRuntime) => return Routed::Plain,
        Some(Route::NeedsPath { fix, runtimes }) => {
            tracing::info!(
                ?runtimes,
                "get: refused, git sent no path on a path-routed host"
            );
            let notice = needs_path_notice(&fix, &runtimes);
            let e = ctx.event(kind::REFUSED).reason(format!(
                "ambiguous path: runtimes {} share the host and git sent no path",
                runtimes.join(", ")
            ));
            state.audit(inner, e);
            return Routed::done(miss(Some(notice)));
        }
        Some(Route::Runtime { runtime, .. }) => runtime.clone(),
    };
    Routed::done(serve(state, inner, &rt, cred, ctx).await)
}

async fn serve(
    state: &State,
    inner: &mut Inner,
    rt: &RuntimeConfig,
    cred: &GitCredential,
    ctx: &Ctx<'_>,
) -> Response {
    if let Some((policy, source)) = inner.policy.current() {
        if let Err(v) = policy.check_runtime(rt, &source) {
            tracing::warn!(runtime = %rt.name, "get: refused by the policy");
            let e = ctx
                .event(kind::POLICY_VIOLATION)
                .runtime(&rt.name)
                .reason(v.message.clone());
            state.audit(inner, e);
            refused(state, inner, ctx, &rt.name, None, "policy");
            return miss(Some(format!("helperd: runtime {}: {}", rt.name, v.message)));
        }
    }
    let now = unix_now();
    let warn_days = effective_warn_days(inner);
    let book = match state.tokens(inner) {
        Ok(b) => b,
        Err(e) => return Response::error(ErrorCode::Internal, e),
    };
    let Some(mut token) = book.for_runtime(&rt.name).cloned() else {
        tracing::info!(runtime = %rt.name, "get: runtime has no token");
        refused(state, inner, ctx, &rt.name, None, "no token");
        return miss(Some(format!(
            "helperd: runtime {} has no token yet: run `helperctl token set {}`{}",
            rt.name,
            rt.name,
            token_page_hint(rt)
        )));
    };
    let current_hosts = runtime_hosts(&inner.config.current(), &rt.name);
    if !TokenBook::hosts_still_match(&token, &rt.name, &current_hosts) {
        tracing::warn!(runtime = %rt.name, "get: refused; the runtime points at other hosts than when its token was set");
        refused(
            state,
            inner,
            ctx,
            &rt.name,
            Some(&token),
            "runtime re-pointed at other hosts",
        );
        return miss(Some(format!(
            "helperd: runtime {} now points at other hosts than when its token was set, so the token is not sent; if that is intended, run `helperctl token set {}`",
            rt.name, rt.name
        )));
    }
    if token.oauth_client_id.is_some() && token.rejected_at.is_none() {
        // An OAuth token is refreshed before it expires; a failed refresh falls through to
        // the expired/renewal path below.
        if let Some(fresh) = super::providers::refresh_if_due(state, inner, rt, &token).await {
            token = fresh;
        }
    }
    let token_state = token.state(now, warn_days);
    if !token_state.servable() {
        tracing::info!(runtime = %rt.name, state = token_state.name(), "get: refused the runtime's token");
        refused(
            state,
            inner,
            ctx,
            &rt.name,
            Some(&token),
            token_state.name(),
        );
        return refusal(rt, &token, token_state);
    }

    let username = rt.effective_username().map(str::to_string);
    if rt.auth == AuthScheme::Basic && username.is_none() {
        refused(state, inner, ctx, &rt.name, Some(&token), "username needed");
        return miss(Some(format!(
            "helperd: runtime {} ({}) needs your account username for git: add `username = \"...\"` to its [[runtime]] in {}",
            rt.name,
            rt.provider.name(),
            inner.config.path().display()
        )));
    }
    if rt.auth == AuthScheme::Bearer && !cred.capability_authtype {
        refused(
            state,
            inner,
            ctx,
            &rt.name,
            Some(&token),
            "bearer token needs capability[]=authtype",
        );
        return miss(Some(format!(
            "helperd: runtime {} uses a Bearer-only token, and this git did not announce \
             capability[]=authtype (git 2.46 or newer is needed)",
            rt.name
        )));
    }

    let secret = match state.token_secret(inner, &token.id).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::error!(runtime = %rt.name, token = %token.id, "token secret missing from the store");
            return miss(Some(format!(
                "helperd: the secret of runtime {}'s token is missing from the store; set it again with `helperctl token set {}`",
                rt.name, rt.name
            )));
        }
        Err(e) => return store_error(e),
    };

    let answer = match answer(rt, username.as_deref(), &secret, token.expires) {
        Ok(a) => a,
        Err(e) => return Response::error(ErrorCode::Internal, e.to_string()),
    };
    let notice = expiry_notice(rt, &token, token_state, now);
    let today = now / 86_400;
    if let Ok(book) = state.tokens(inner) {
        if let Some(t) = book.for_runtime_mut(&rt.name) {
            t.last_used = Some(now);
            if notice.is_some() {
                t.warned_on.insert(rt.name.clone(), today);
            }
        }
    }
    if notice.is_some() {
        // The once-a-day promise must survive a daemon restart: save now.
        if let Err(e) = state.save_tokens(inner) {
            tracing::warn!(error = %e, "could not save token metadata");
        }
    } else {
        state.save_tokens_lazily(inner);
    }
    tracing::info!(runtime = %rt.name, token = ?token.name, "get: served the runtime's token");
    let e = ctx
        .event(kind::SERVED)
        .runtime(&rt.name)
        .token(token_audit_name(&token));
    state.audit(inner, e);
    Response::new(Reply::Git {
        output: answer.expose().to_string(),
    })
    .with_notice(notice)
}

fn answer(
    rt: &RuntimeConfig,
    username: Option<&str>,
    secret: &Secret,
    expires: Option<u64>,
) -> Result<Secret, crate::gitproto::UnsafeValue> {
    let mut a = Answer::new();
    match rt.auth {
        AuthScheme::Basic => {
            a.push("username", username.unwrap_or_default())?;
            a.push("password", secret.expose())?;
        }
        AuthScheme::Bearer => {
            a.push("capability[]", "authtype")?;
            a.push("authtype", "Bearer")?;
            a.push("credential", secret.expose())?;
        }
    }
    if let Some(t) = expires {
        // git itself then drops the token if it expires during a long operation.
        a.push("password_expiry_utc", &t.to_string())?;
    }
    Ok(a.finish())
}

/// The warning-window notice, at most once a day per runtime (the day is recorded in the
/// token's `warned_on` by the caller).
fn expiry_notice(
    rt: &RuntimeConfig,
    token: &TokenMeta,
    token_state: TokenState,
    now: u64,
) -> Option<String> {
    if token_state != TokenState::Expiring {
        return None;
    }
    let today = now / 86_400;
    if token.warned_on.get(&rt.name) == Some(&today) {
        return None;
    }
    let expires = token.expires?;
    let text = format!(
        "helperd: runtime {}: {} expires on {} ({}); make a new one{} and run `helperctl renew {}`",
        rt.name,
        token_label(token),
        format_date(expires),
        countdown(expires, now),
        token_page_hint(rt),
        rt.name
    );
    #[cfg(feature = "desktop-notifications")]
    desktop_notification(&text);
    Some(text)
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

/// The runtime a `store` or `erase` is about. Without a path on a path-routed host, git
/// cannot say which runtime it meant: nothing is changed rather than a guess.
fn runtime_for_change(inner: &Inner, cred: &GitCredential) -> Result<RuntimeConfig, Routed> {
    let config = inner.config.current();
    match decide(&config, cred) {
        None | Some(Route::NoRuntime) => Err(Routed::Plain),
        Some(Route::NeedsPath { .. }) => Err(Routed::done(miss(None))),
        Some(Route::Runtime { runtime, .. }) => Ok(runtime.clone()),
    }
}

/// `store` for a runtime: a renewal when its token is missing, expired or rejected (the
/// user typed a new one at git's prompt).
pub async fn store(
    state: &State,
    inner: &mut Inner,
    cred: &GitCredential,
    ctx: &Ctx<'_>,
) -> Routed {
    let rt = match runtime_for_change(inner, cred) {
        Ok(rt) => rt,
        Err(routed) => return routed,
    };
    let secret = match (&cred.password, &cred.credential) {
        (Some(p), _) if rt.auth == AuthScheme::Basic => p.clone(),
        (_, Some(c)) if rt.auth == AuthScheme::Bearer => c.clone(),
        _ => return Routed::done(miss(None)),
    };
    let now = unix_now();
    let warn_days = effective_warn_days(inner);
    let current = match state.tokens(inner) {
        Ok(book) => book.for_runtime(&rt.name).cloned(),
        Err(e) => return Routed::done(Response::error(ErrorCode::Internal, e)),
    };
    if let Some(token) = &current {
        if token.state(now, warn_days).servable() {
            // git confirms the token we gave it; nothing to change.
            tracing::debug!(runtime = %rt.name, "store: the runtime's token is in use");
            return Routed::done(miss(None));
        }
    }
    let token = TokenMeta {
        last_used: Some(now),
        ..TokenMeta::new(
            Some("entered at git's prompt".into()),
            now,
            cred.password_expiry_utc,
        )
    };
    let audit_name = token_audit_name(&token);
    let response = match set_token(state, inner, Some(ctx.peer), &rt.name, token, secret).await {
        Ok(()) => {
            tracing::info!(runtime = %rt.name, "store: renewed the runtime's token from git's prompt");
            let e = ctx
                .event(kind::RENEWED)
                .runtime(&rt.name)
                .token(audit_name)
                .reason("new token typed at git's prompt");
            state.audit(inner, e);
            miss(Some(format!(
                "helperd: stored the new token for runtime {} (`helperctl status` shows it)",
                rt.name
            )))
        }
        Err(resp) => resp,
    };
    Routed::done(response)
}

/// `erase` for a runtime: git got a 401 with this token. It is marked rejected, not
/// deleted, so the next request can say what happened.
pub async fn erase(
    state: &State,
    inner: &mut Inner,
    cred: &GitCredential,
    ctx: &Ctx<'_>,
) -> Routed {
    let rt = match runtime_for_change(inner, cred) {
        Ok(rt) => rt,
        Err(routed) => return routed,
    };
    let Some(token) = state
        .tokens(inner)
        .ok()
        .and_then(|b| b.for_runtime(&rt.name).cloned())
    else {
        return Routed::done(miss(None));
    };
    let given = match rt.auth {
        AuthScheme::Basic => cred.password.clone(),
        AuthScheme::Bearer => cred.credential.clone(),
    };
    if let Some(given) = given {
        match state.token_secret(inner, &token.id).await {
            // Not our token that failed: leave ours alone.
            Ok(Some(ours)) if ours != given => return Routed::done(miss(None)),
            Ok(_) => {}
            Err(e) => return Routed::done(store_error(e)),
        }
    }
    if let Ok(book) = state.tokens(inner) {
        if let Some(t) = book.for_runtime_mut(&rt.name) {
            t.rejected_at = Some(unix_now());
        }
    }
    if let Err(e) = state.save_tokens(inner) {
        return Routed::done(Response::error(ErrorCode::Internal, e));
    }
    tracing::warn!(runtime = %rt.name, token = ?token.name, "erase: the host rejected the runtime's token; marked rejected");
    let e = ctx
        .event(kind::ERASED)
        .runtime(&rt.name)
        .token(token_audit_name(&token))
        .reason("the host rejected the token (git erased it after a 401); marked rejected, kept");
    state.audit(inner, e);
    Routed::done(miss(None))
}

/// The warning window: the user's, raised to the policy's floor.
pub fn effective_warn_days(inner: &Inner) -> u32 {
    let user = inner.config.current().settings.warn_days;
    match inner.policy.current() {
        Some((policy, _)) => policy.effective_warn_days(user),
        None => user,
    }
}

/// The hosts (`scheme://host`) a runtime points at now.
pub fn runtime_hosts(config: &Config, runtime: &str) -> Vec<String> {
    let mut hosts: Vec<String> = config
        .runtime(runtime)
        .map(|rt| rt.urls.iter().map(|u| u.base_url()).collect())
        .unwrap_or_default();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Stores `secret` as `runtime`'s new token and forgets a token nothing uses any more.
pub async fn set_token(
    state: &State,
    inner: &mut Inner,
    peer: Option<&Peer>,
    runtime: &str,
    token: TokenMeta,
    secret: Secret,
) -> Result<(), Response> {
    // The policy as it is now: an admin's edit applies to the very next token.
    inner.policy.refresh();
    if let Some((policy, source)) = inner.policy.current() {
        let mut violation = policy.check_token(token.expires, unix_now(), &source).err();
        if violation.is_none() {
            // No secret goes into a store weaker than the policy's min_store either.
            state.store(inner).await.map_err(store_error)?;
            if let Some(strength) = state.store_strength(inner) {
                violation = policy.check_store(strength, &source).err();
            }
        }
        if let Some(v) = violation {
            tracing::warn!(%runtime, rule = v.rule, "token refused by the policy");
            let mut e = AuditEvent::now(kind::POLICY_VIOLATION)
                .runtime(runtime)
                .token(token_audit_name(&token))
                .reason(v.message.clone());
            if let Some(Peer {
                uid,
                pid: Some(pid),
            }) = peer
            {
                e = e.peer(*pid, *uid);
            }
            state.audit(inner, e);
            return Err(Response::error(
                ErrorCode::Policy,
                format!("{}; nothing was stored", v.message),
            ));
        }
    }
    let id = token.id.clone();
    let hosts = runtime_hosts(&inner.config.current(), runtime);
    state
        .set_token_secret(inner, &id, secret)
        .await
        .map_err(store_error)?;
    let orphan = state
        .tokens(inner)
        .map_err(|e| Response::error(ErrorCode::Internal, e))?
        .add(token, runtime, &hosts, unix_now());
    state
        .save_tokens(inner)
        .map_err(|e| Response::error(ErrorCode::Internal, e))?;
    if let Some(old) = orphan {
        if let Err(e) = state.delete_token_secret(inner, &old).await {
            tracing::warn!(error = %e, "could not delete the replaced token's secret");
        }
    }
    Ok(())
}
