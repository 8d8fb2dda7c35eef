//! The decision (DESIGN.md §3, §6): which secret, if any, leaves the process for one git
//! request. [`decide`] is the ONLY code that makes that choice, and it is pure: no I/O, no
//! async, no clock of its own (`now` is an argument). The daemon carries a [`Decision`]
//! out (fetches the secret it names, writes the change it names, writes the audit event
//! built from it, answers git) and never decides anything on its own.
//!
//! Like sudo-rs's `Authorization`, a `Decision` is `#[must_use]`: dropping one unexecuted
//! is a bug the compiler points out.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use helperd_wire::wire::GitAction;

use crate::audit_event::{kind, AuditEvent};
use crate::config::{AuthScheme, Config, RuntimeConfig};
use crate::gitproto::{Answer, GitCredential, UnsafeValue};
use crate::location::Location;
use crate::plain::PlainTable;
use crate::policy::{Policy, StoreStrength};
use crate::runtime::{self, Route};
use crate::secret::Secret;
use crate::timefmt::{countdown, format_date};
use crate::token::{TokenBook, TokenMeta, TokenState};

/// How long before its expiry an OAuth token is refreshed.
pub const REFRESH_AHEAD_SECS: u64 = 300;

/// How long before its `expires_at` a GitHub App installation token is minted anew: git
/// gets at least this long with each token (GitHub's last for an hour).
pub const MINT_AHEAD_SECS: u64 = 300;

/// What the daemon holds in memory for one GitHub App runtime (never a secret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MintView {
    /// The key (token id) the state is about; a new key makes it void.
    pub key_id: String,
    /// The installation token minted last, while the daemon holds it.
    pub token: Option<MintedView>,
    /// The last mint failed: why (for git's stderr and `status`), and no new attempt
    /// before the time given.
    pub failure: Option<(String, u64)>,
}

/// A minted installation token, as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MintedView {
    /// Tells this token from the one before and after (the daemon's counter).
    pub serial: u64,
    /// Unix seconds (GitHub's `expires_at`).
    pub expires_at: u64,
    /// The installation it was minted for.
    pub installation: u64,
}

/// Per runtime name: the GitHub App runtimes' minted tokens and failures.
pub type Mints = HashMap<String, MintView>;

/// The admin policy in force, with the file it came from (named in messages).
#[derive(Debug, Clone, Copy)]
pub struct PolicyInForce<'a> {
    /// The policy's rules.
    pub policy: &'a Policy,
    /// The policy file it was read from; named in refusal messages.
    pub source: &'a Path,
}

/// Why the plain-credential table cannot be consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreProblem {
    /// A passphrase-protected store nobody has unlocked yet (else: unavailable).
    pub locked: bool,
    /// Names the store and the way out; never a secret.
    pub message: String,
}

/// Where a git request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// This machine's git.
    Local,
    /// git on a remote machine, through the forward socket (DESIGN.md §11): only runtimes
    /// marked `forward = true` answer, never plain credentials, and a refusal does not
    /// tell which runtimes exist.
    Forward,
}

/// Everything a decision depends on: the request and snapshots of the daemon's state.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// What git asked: `get`, `store` or `erase`.
    pub action: GitAction,
    /// Which socket the request came through; forwarded requests get less.
    pub via: Via,
    /// git's request, parsed and validated.
    pub request: &'a GitCredential,
    /// `--timeout=N` of the client: the lifetime of plain credentials it stores.
    pub lifetime: Option<u64>,
    /// The configuration in force (empty when `config_broken` is set).
    pub config: &'a Config,
    /// Set when no configuration could be read since start (`config` is then empty):
    /// the file's error.
    pub config_broken: Option<&'a str>,
    /// Set while team runtimes are configured but none has been read since the daemon
    /// started (OpenBao down at start): why. Their URLs are not known, so nothing may go
    /// to (or come from) the plain credentials meanwhile.
    pub team_unread: Option<&'a str>,
    /// Where `config` lives, for messages that tell the user what to edit.
    pub config_path: &'a Path,
    /// The admin policy in force, if any.
    pub policy: Option<PolicyInForce<'a>>,
    /// The store of record's strength, once it has been opened.
    pub store_strength: Option<StoreStrength>,
    /// Token metadata, or why `tokens.json` cannot be read.
    pub book: Result<&'a TokenBook, &'a str>,
    /// The plain credentials git stored, as far as they have been read.
    pub plain: PlainView<'a>,
    /// Per token id: no refresh is tried before this time (after a failed one).
    pub refresh_backoff: &'a HashMap<String, u64>,
    /// GitHub App runtimes: what is minted, what failed.
    pub mints: &'a Mints,
    /// GitLab self-rotation: the ids of tokens whose last rotation attempt failed (the
    /// rotator's back-off). Their expiry warning is shown again (see `rotates_by_itself`).
    pub rotation_failed: &'a HashSet<String>,
    /// False on the second look after a refresh (or a mint) was attempted: serve or
    /// refuse now.
    pub allow_refresh: bool,
    /// The daemon's clock, Unix seconds (settable in tests, hence an argument).
    pub now: u64,
}

/// The plain-credential table, as the daemon has it.
#[derive(Debug, Clone, Copy)]
pub enum PlainView<'a> {
    /// The table as last read (may be empty).
    Read(&'a PlainTable),
    /// Not read from the store yet: a `get` that needs it asks for it first.
    NotRead,
    /// The store cannot be read.
    Unavailable(&'a StoreProblem),
}

/// What the daemon does for one git request.
#[must_use = "a decision does nothing until the daemon carries it out"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Hand this runtime's token to git.
    ServeToken(ServeToken),
    /// Hand a plain credential git stored to git: the answer, ready to print.
    ServePlain {
        /// git's `key=value` answer, secret.
        answer: Secret,
    },
    /// Keep git's credential in the plain table, for `lifetime` seconds (`None`: always).
    StorePlain {
        /// Seconds to keep it (the client's `--timeout`); `None`: until erased.
        lifetime: Option<u64>,
    },
    /// Remove the plain credentials that match git's request.
    ErasePlain,
    /// git stored a new token for a runtime whose token may not be served (the user typed
    /// it at git's prompt): it becomes the runtime's token.
    RenewToken(RenewToken),
    /// git erased the runtime's token after a 401: mark it rejected, when the secret git
    /// names is ours (or git named none).
    MarkRejected(MarkRejected),
    /// Read the plain-credential table from the store, then decide again.
    ReadPlain,
    /// The runtime's OAuth token is about to expire: refresh it, then decide again.
    Refresh {
        /// The runtime whose token is refreshed.
        runtime: String,
        /// The token to refresh; skipped if the runtime's token changed meanwhile (another
        /// request refreshed it).
        token_id: String,
    },
    /// The GitHub App runtime has no installation token fresh enough: mint one (one at a
    /// time per runtime), then decide again.
    Mint {
        /// The GitHub App runtime.
        runtime: String,
        /// Its private key's token id.
        key_id: String,
    },
    /// git erased the runtime's installation token after a 401: throw it away (the next
    /// request mints a new one), when the secret git names is that token.
    DropMinted(DropMinted),
    /// Nothing leaves, nothing changes, and there is nothing to say (a miss, or git
    /// confirming the token it was given).
    Nothing,
    /// Nothing leaves: why, and what to tell the user.
    Refuse(Refusal),
}

/// See [`Decision::ServeToken`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeToken {
    /// The runtime (config.toml name) that claimed the request.
    pub runtime: String,
    /// The token's id; the daemon fetches its secret from `token/<id>`.
    pub token_id: String,
    /// How the token appears in the audit log (its name, else its id).
    pub token_label: String,
    /// `Some` for Basic auth (always then), `None` for a Bearer token.
    pub username: Option<String>,
    /// Answer `authtype=Bearer` + `credential` instead of username/password.
    pub bearer: bool,
    /// Sent as `password_expiry_utc`, so git itself drops a token that expires mid-push.
    pub expires: Option<u64>,
    /// The once-a-day warning that the token expires soon; the daemon records the day.
    pub warning: Option<String>,
    /// A GitHub App runtime: the serial of the minted installation token to serve (held
    /// in memory), instead of the stored secret of `token_id` (the app's key).
    pub minted: Option<u64>,
}

/// See [`Decision::DropMinted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropMinted {
    /// The GitHub App runtime.
    pub runtime: String,
    /// The minted token to drop; a newer one is left alone.
    pub serial: u64,
    /// How the token appears in the audit log.
    pub token_label: String,
    /// The secret git says failed: dropped only when it is the minted token.
    pub only_if_secret_is: Option<Secret>,
}

impl ServeToken {
    /// git's answer with the token's secret. Fails only on a secret that git's protocol
    /// cannot carry (a newline in it): never printed half.
    pub fn answer(&self, secret: &Secret) -> Result<Secret, UnsafeValue> {
        let mut a = Answer::new();
        if self.bearer {
            a.push("capability[]", "authtype")?;
            a.push("authtype", "Bearer")?;
            a.push("credential", secret.expose())?;
        } else {
            a.push("username", self.username.as_deref().unwrap_or_default())?;
            a.push("password", secret.expose())?;
        }
        if let Some(t) = self.expires {
            a.push("password_expiry_utc", &t.to_string())?;
        }
        Ok(a.finish())
    }
}

/// See [`Decision::RenewToken`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewToken {
    /// The runtime the new token is for.
    pub runtime: String,
    /// The new token's name (what `status` and the audit log call it).
    pub name: String,
    /// The token git stored (the one the user typed at git's prompt).
    pub secret: Secret,
    /// What git said of the new token's expiry (`password_expiry_utc`).
    pub expires: Option<u64>,
}

/// See [`Decision::MarkRejected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRejected {
    /// The runtime whose token git erased.
    pub runtime: String,
    /// The token to mark; skipped if the runtime's token changed since.
    pub token_id: String,
    /// How the token appears in the audit log (its name, else its id).
    pub token_label: String,
    /// The secret git says failed: the token is ours to mark only when it is this one.
    pub only_if_secret_is: Option<Secret>,
}

/// See [`Decision::Refuse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why nothing leaves; also names the audit event.
    pub reason: RefuseReason,
    /// The runtime that claimed the request, when one did.
    pub runtime: Option<String>,
    /// How the runtime's token appears in the audit log, when one is involved.
    pub token_label: Option<String>,
    /// For git's stderr.
    pub notice: Option<String>,
    /// A renewal the client may ask for at the terminal (expired or rejected tokens).
    pub renewal: Option<RenewalOffer>,
    /// Answered to git without a password, so that git's own prompt asks only for the
    /// password and the token typed there renews this runtime (git's `store` comes back
    /// with this username, routed to the same runtime).
    pub username: Option<String>,
}

/// What the client shows at the terminal when it offers a renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalOffer {
    /// The runtime the renewal is for.
    pub runtime: String,
    /// What the prompt says: which token expired or was rejected, where to make a new one.
    pub text: String,
}

/// Why nothing leaves. [`RefuseReason::error`] tells which ones are errors rather than
/// a miss with a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefuseReason {
    /// The store of record is weaker than the policy's `min_store`: the policy's message.
    StoreBelowPolicy(String),
    /// The policy forbids keeping plain credentials.
    PlainStoreForbidden {
        /// The policy rule that forbids it (`store_plain_credentials`).
        rule: &'static str,
    },
    /// The runtime breaks the policy (provider or host not allowed).
    RuntimePolicy,
    /// Runtimes differ by path on this host and git sent no path.
    AmbiguousPath {
        /// The runtimes that claim the host, by name.
        runtimes: Vec<String>,
    },
    /// The runtime has no token (`helperctl token set`).
    NoToken,
    /// The runtime was re-pointed at other hosts than when its token was set.
    Repointed,
    /// The runtime's token has expired.
    Expired,
    /// The host rejected the runtime's token (git erased it after a 401).
    Rejected,
    /// A Basic-auth runtime whose provider has no username convention and none is set.
    UsernameNeeded,
    /// A Bearer-only token and a git that did not announce `capability[]=authtype`.
    BearerNeedsCapability,
    /// `tokens.json` cannot be read.
    TokensUnreadable(String),
    /// The plain table cannot be read from the store.
    Store(StoreProblem),
    /// A stored plain value that git's protocol cannot carry.
    UnsafeStoredValue(String),
    /// No configuration could be read: nothing is decided from an empty one (a runtime's
    /// URL would fall to the plain credentials).
    ConfigBroken(String),
    /// A forwarded request for something not forwarded (a plain credential, a runtime
    /// without `forward = true`, no runtime at all, or forwarding forbidden by the policy).
    NotForwarded,
    /// A local and a team runtime share this name: the message says which and how to fix.
    NameConflict(String),
    /// A team token that breaks this machine's own policy (checked again when served).
    TeamTokenPolicy,
    /// Team runtimes are configured and were never read: the message.
    TeamUnread(String),
    /// A GitHub App runtime without an installation token: minting failed (the notice
    /// says why and what to do).
    NotMinted,
}

/// The kinds of error a refusal is, on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalError {
    /// The admin policy forbids it ([`ErrorCode::Policy`](helperd_wire::wire::ErrorCode::Policy)).
    Policy,
    /// No configuration could be read ([`ErrorCode::Config`](helperd_wire::wire::ErrorCode::Config)).
    Config,
    /// The store needs `helperctl unlock` first.
    StoreLocked,
    /// The store cannot be opened or read.
    StoreUnavailable,
    /// Something that should not happen (unreadable metadata, an unsafe stored value).
    Internal,
}

impl RefuseReason {
    /// How the audit log names it.
    pub fn name(&self) -> String {
        match self {
            RefuseReason::StoreBelowPolicy(message) => message.clone(),
            RefuseReason::PlainStoreForbidden { rule } => format!("policy: {rule}"),
            RefuseReason::RuntimePolicy => "policy".into(),
            RefuseReason::AmbiguousPath { runtimes } => format!(
                "ambiguous path: runtimes {} share the host and git sent no path",
                runtimes.join(", ")
            ),
            RefuseReason::NoToken => "no token".into(),
            RefuseReason::Repointed => "runtime re-pointed at other hosts".into(),
            RefuseReason::Expired => "expired".into(),
            RefuseReason::Rejected => "rejected".into(),
            RefuseReason::UsernameNeeded => "username needed".into(),
            RefuseReason::BearerNeedsCapability => {
                "bearer token needs capability[]=authtype".into()
            }
            RefuseReason::TokensUnreadable(_) => "token metadata unreadable".into(),
            RefuseReason::Store(_) => "store unavailable".into(),
            RefuseReason::UnsafeStoredValue(_) => "unsafe stored value".into(),
            RefuseReason::NotForwarded => "not forwarded".into(),
            RefuseReason::ConfigBroken(_) => "configuration unreadable".into(),
            RefuseReason::NameConflict(_) => "local and team runtime share the name".into(),
            RefuseReason::TeamTokenPolicy => "policy: team token".into(),
            RefuseReason::TeamUnread(_) => "team runtimes not read yet".into(),
            RefuseReason::NotMinted => "no installation token could be minted".into(),
        }
    }

    /// `Some` when the answer is an error rather than a miss with a notice.
    pub fn error(&self) -> Option<(RefusalError, String)> {
        match self {
            RefuseReason::StoreBelowPolicy(m) => Some((RefusalError::Policy, m.clone())),
            RefuseReason::ConfigBroken(m) => Some((
                RefusalError::Config,
                format!(
                    "{m}\nhelperd serves nothing until config.toml is fixed (its runtimes' URLs would otherwise fall back to the plain credentials)"
                ),
            )),
            RefuseReason::NameConflict(m) => Some((RefusalError::Config, m.clone())),
            RefuseReason::TeamUnread(m) => Some((RefusalError::StoreUnavailable, m.clone())),
            RefuseReason::TokensUnreadable(m) | RefuseReason::UnsafeStoredValue(m) => {
                Some((RefusalError::Internal, m.clone()))
            }
            RefuseReason::Store(p) if p.locked => {
                Some((RefusalError::StoreLocked, p.message.clone()))
            }
            RefuseReason::Store(p) => Some((RefusalError::StoreUnavailable, p.message.clone())),
            _ => None,
        }
    }
}

impl Refusal {
    fn new(reason: RefuseReason) -> Refusal {
        Refusal {
            reason,
            runtime: None,
            token_label: None,
            notice: None,
            renewal: None,
            username: None,
        }
    }

    fn runtime(mut self, rt: &RuntimeConfig) -> Refusal {
        self.runtime = Some(rt.name.clone());
        self
    }

    fn token(mut self, token: &TokenMeta) -> Refusal {
        self.token_label = Some(token_label(token));
        self
    }

    fn notice(mut self, notice: String) -> Refusal {
        self.notice = Some(notice);
        self
    }
}

/// How a token appears in the audit log and in messages' tails: its name, else its id
/// (never the secret).
pub fn token_label(t: &TokenMeta) -> String {
    t.name.clone().unwrap_or_else(|| t.id.clone())
}

/// Decides what happens with one git request (DESIGN.md §6).
pub fn decide(facts: &Facts<'_>) -> Decision {
    let request = facts.request;
    let route = Location::from_git(
        request.protocol.as_deref(),
        request.host.as_deref(),
        request.path.as_deref(),
    )
    .map(|loc| runtime::route(facts.config, &loc, request.username.as_deref()).0);
    if let Some(error) = facts.config_broken {
        return Decision::Refuse(Refusal::new(RefuseReason::ConfigBroken(error.to_string())));
    }
    // First, so that a remote machine gets the same words whatever else would be said.
    if facts.via == Via::Forward {
        let forwarded = matches!(&route, Some(Route::Runtime { runtime, .. }) if runtime.forward);
        let allowed = facts.policy.is_none_or(|p| p.policy.allow_forwarding);
        if !(forwarded && allowed) {
            return Decision::Refuse(not_forwarded());
        }
    }
    // The policy's min_store: no secret is served or stored through a weaker store. An
    // erase only takes secrets away, so it is always allowed.
    if facts.action != GitAction::Erase {
        if let (Some(p), Some(strength)) = (facts.policy, facts.store_strength) {
            if let Err(v) = p.policy.check_store(strength, p.source) {
                return Decision::Refuse(Refusal::new(RefuseReason::StoreBelowPolicy(v.message)));
            }
        }
    }
    match (facts.action, route) {
        (GitAction::Get | GitAction::Store, None | Some(Route::NoRuntime))
            if facts.team_unread.is_some() =>
        {
            let why = facts.team_unread.unwrap_or_default();
            Decision::Refuse(Refusal::new(RefuseReason::TeamUnread(format!(
                "{why}\nhelperd: the team runtimes have not been read since the daemon started, so this URL may be a team runtime's: the plain credentials are not used until OpenBao answers"
            ))))
        }
        (_, None | Some(Route::NoRuntime)) => plain(facts),
        (GitAction::Get, Some(Route::NeedsPath { fix, runtimes })) => {
            let runtimes: Vec<String> = runtimes.iter().map(|r| r.to_string()).collect();
            let notice = needs_path_notice(&fix, &runtimes);
            Decision::Refuse(Refusal::new(RefuseReason::AmbiguousPath { runtimes }).notice(notice))
        }
        // git cannot say which runtime it meant: nothing is changed rather than a guess.
        (_, Some(Route::NeedsPath { .. })) => Decision::Nothing,
        (action, Some(Route::Runtime { runtime, .. }))
            if facts.config.name_conflict(&runtime.name).is_some() =>
        {
            match action {
                GitAction::Get => Decision::Refuse(name_conflict(facts, runtime)),
                GitAction::Store | GitAction::Erase => Decision::Nothing,
            }
        }
        (GitAction::Get, Some(Route::Runtime { runtime, .. })) => serve(facts, runtime),
        (GitAction::Store, Some(Route::Runtime { runtime, .. })) => renew(facts, runtime),
        (GitAction::Erase, Some(Route::Runtime { runtime, .. })) => reject(facts, runtime),
    }
}

/// A request no runtime claims: git's own stored credentials, with the semantics of
/// git's `credential-cache` (DESIGN.md §5).
fn plain(facts: &Facts<'_>) -> Decision {
    if facts.action == GitAction::Store {
        if let Some(p) = facts.policy {
            if let Err(v) = p.policy.check_plain_store(p.source) {
                let reason = RefuseReason::PlainStoreForbidden { rule: v.rule };
                return Decision::Refuse(
                    Refusal::new(reason).notice(format!("helperd: not stored: {}", v.message)),
                );
            }
        }
    }
    let table = match (facts.action, facts.plain) {
        (GitAction::Store, _) => {
            return Decision::StorePlain {
                lifetime: facts.lifetime,
            }
        }
        (GitAction::Erase, _) => return Decision::ErasePlain,
        (GitAction::Get, PlainView::Read(table)) => table,
        (GitAction::Get, PlainView::NotRead) => return Decision::ReadPlain,
        (GitAction::Get, PlainView::Unavailable(problem)) => {
            return Decision::Refuse(Refusal::new(RefuseReason::Store(problem.clone())))
        }
    };
    match table.get(facts.request, facts.now) {
        None => Decision::Nothing,
        Some(entry) => match entry.answer(facts.request) {
            Ok(answer) => Decision::ServePlain { answer },
            Err(unsafe_value) => Decision::Refuse(Refusal::new(RefuseReason::UnsafeStoredValue(
                unsafe_value.to_string(),
            ))),
        },
    }
}

/// The warning window: the user's, raised to the policy's floor.
pub fn effective_warn_days(config: &Config, policy: Option<PolicyInForce<'_>>) -> u32 {
    let user = config.settings.warn_days;
    match policy {
        Some(p) => p.policy.effective_warn_days(user),
        None => user,
    }
}

/// The hosts (`scheme://host`) a runtime points at now, sorted, without duplicates.
pub fn runtime_hosts(config: &Config, runtime: &str) -> Vec<String> {
    let mut hosts: Vec<String> = config
        .runtime(runtime)
        .map(|rt| rt.urls.iter().map(|u| u.base_url()).collect())
        .unwrap_or_default();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// `get` for a runtime (DESIGN.md §6 steps 5–6).
fn serve(facts: &Facts<'_>, rt: &RuntimeConfig) -> Decision {
    if let Some(p) = facts.policy {
        if let Err(v) = p.policy.check_runtime(rt, p.source) {
            let notice = format!("helperd: runtime {}: {}", rt.name, v.message);
            return Decision::Refuse(
                Refusal::new(RefuseReason::RuntimePolicy)
                    .runtime(rt)
                    .notice(notice),
            );
        }
    }
    let book = match facts.book {
        Ok(book) => book,
        Err(e) => {
            return Decision::Refuse(
                Refusal::new(RefuseReason::TokensUnreadable(e.to_string())).runtime(rt),
            )
        }
    };
    let Some(token) = book.for_runtime(&rt.name) else {
        if rt.app.is_some() {
            return Decision::Refuse(Refusal::new(RefuseReason::NoToken).runtime(rt).notice(format!(
                "helperd: runtime {name} is a GitHub App runtime without its private key: run `helperctl token set-app {name} --key-file app.private-key.pem`",
                name = rt.name
            )));
        }
        let mut refusal = Refusal::new(RefuseReason::NoToken)
            .runtime(rt)
            .notice(format!(
                "helperd: runtime {} has no token yet: run `helperctl token set {}`{}",
                rt.name,
                rt.name,
                token_page_hint(rt)
            ));
        refusal.username = prompt_username(rt);
        return Decision::Refuse(refusal);
    };
    if !TokenBook::hosts_still_match(token, &rt.name, &runtime_hosts(facts.config, &rt.name)) {
        return Decision::Refuse(
            Refusal::new(RefuseReason::Repointed).runtime(rt).token(token).notice(format!(
                "helperd: runtime {} now points at other hosts than when its token was set, so the token is not sent; if that is intended, run `helperctl token set {}`",
                rt.name, rt.name
            )),
        );
    }
    if rt.app.is_some() {
        return serve_minted(facts, rt, token);
    }
    if facts.allow_refresh && refresh_due(token, facts.now, facts.refresh_backoff) {
        return Decision::Refresh {
            runtime: rt.name.clone(),
            token_id: token.id.clone(),
        };
    }
    let warn_days = effective_warn_days(facts.config, facts.policy);
    let state = token.state(facts.now, warn_days);
    if !state.servable() {
        return Decision::Refuse(match &rt.team {
            Some(origin) => team_unservable(rt, origin, token, state),
            None => unservable(rt, token, state),
        });
    }
    if let (Some(origin), Some(p)) = (&rt.team, facts.policy) {
        // The admin checked it at publish; this machine's own policy is checked again,
        // because `bao kv put` and Terraform write entries without helperd.
        if let Err(v) = p.policy.check_token(token.expires, token.created, p.source) {
            let notice = format!(
                "helperd: team runtime {} ({}, version {}): {}",
                rt.name, origin.path, origin.version, v.message
            );
            return Decision::Refuse(
                Refusal::new(RefuseReason::TeamTokenPolicy)
                    .runtime(rt)
                    .token(token)
                    .notice(notice),
            );
        }
    }
    let username = rt.effective_username().map(str::to_string);
    if rt.auth == AuthScheme::Basic && username.is_none() {
        return Decision::Refuse(Refusal::new(RefuseReason::UsernameNeeded).runtime(rt).token(token).notice(format!(
            "helperd: runtime {} ({}) needs your account username for git: add `username = \"...\"` to its [[runtime]] in {}",
            rt.name,
            rt.provider.name(),
            facts.config_path.display()
        )));
    }
    let bearer = rt.auth == AuthScheme::Bearer;
    if bearer && !facts.request.capability_authtype {
        return Decision::Refuse(
            Refusal::new(RefuseReason::BearerNeedsCapability)
                .runtime(rt)
                .token(token)
                .notice(format!(
                    "helperd: runtime {} uses a Bearer-only token, and this git did not announce \
             capability[]=authtype (git 2.46 or newer is needed)",
                    rt.name
                )),
        );
    }
    Decision::ServeToken(ServeToken {
        runtime: rt.name.clone(),
        token_id: token.id.clone(),
        token_label: token_label(token),
        username: if bearer { None } else { username },
        bearer,
        expires: token.expires,
        warning: expiry_warning(rt, token, state, facts.now)
            .filter(|_| !rotates_by_itself(rt, token, facts)),
        minted: None,
    })
}

/// `get` for a GitHub App runtime whose key is `key`: the installation token in memory
/// while it has more than [`MINT_AHEAD_SECS`] left, else a mint first (unless one failed
/// just now); a token that is still valid serves while a new one cannot be minted.
fn serve_minted(facts: &Facts<'_>, rt: &RuntimeConfig, key: &TokenMeta) -> Decision {
    let view = facts.mints.get(&rt.name).filter(|v| v.key_id == key.id);
    let token = view.and_then(|v| v.token);
    let failure = view.and_then(|v| v.failure.as_ref());
    let backing_off = failure.is_some_and(|(_, until)| facts.now < *until);
    let fresh = token.filter(|t| facts.now.saturating_add(MINT_AHEAD_SECS) < t.expires_at);
    if fresh.is_none() && facts.allow_refresh && !backing_off {
        return Decision::Mint {
            runtime: rt.name.clone(),
            key_id: key.id.clone(),
        };
    }
    match fresh.or(token.filter(|t| facts.now < t.expires_at)) {
        Some(t) => Decision::ServeToken(ServeToken {
            runtime: rt.name.clone(),
            token_id: key.id.clone(),
            token_label: minted_label(t.installation),
            // GitHub's documented username for installation tokens (config refuses others).
            username: Some("x-access-token".into()),
            bearer: false,
            expires: Some(t.expires_at),
            warning: None,
            minted: Some(t.serial),
        }),
        None => {
            let why = failure
                .map(|(why, _)| why.as_str())
                .unwrap_or("the token could not be minted");
            Decision::Refuse(
                Refusal::new(RefuseReason::NotMinted)
                    .runtime(rt)
                    .token(key)
                    .notice(format!(
                        "helperd: runtime {}: no GitHub App installation token: {why}",
                        rt.name
                    )),
            )
        }
    }
}

/// How a minted installation token appears in the audit log.
pub fn minted_label(installation: u64) -> String {
    format!("installation token (installation {installation})")
}

/// An OAuth token that expires within [`REFRESH_AHEAD_SECS`] and was not just tried.
fn refresh_due(token: &TokenMeta, now: u64, backoff: &HashMap<String, u64>) -> bool {
    token.oauth_client_id.is_some()
        && token.rejected_at.is_none()
        && token
            .expires
            .is_some_and(|t| t <= now.saturating_add(REFRESH_AHEAD_SECS))
        && backoff.get(&token.id).is_none_or(|&until| now >= until)
}

/// The username git's own prompt should be given for a runtime whose token is refused,
/// so that the password typed there comes back in a `store` routed to this runtime.
fn prompt_username(rt: &RuntimeConfig) -> Option<String> {
    match rt.auth {
        AuthScheme::Basic => rt.effective_username().map(str::to_string),
        AuthScheme::Bearer => None,
    }
}

/// An expired or rejected token: a notice for git's stderr (with the command to renew
/// later), the same facts as a renewal the client may offer at the terminal, and the
/// runtime's username for git's own prompt.
fn unservable(rt: &RuntimeConfig, token: &TokenMeta, state: TokenState) -> Refusal {
    let (reason, what) = match state {
        TokenState::Rejected => (
            RefuseReason::Rejected,
            format!(
                "{} was rejected by the host on {} (revoked or rotated?)",
                token_words(token),
                token.rejected_at.map(format_date).unwrap_or_default()
            ),
        ),
        _ => (
            RefuseReason::Expired,
            format!(
                "{} expired on {}",
                token_words(token),
                token.expires.map(format_date).unwrap_or_default()
            ),
        ),
    };
    let page = token_page(rt)
        .map(|p| format!("\nCreate a new one at {p}"))
        .unwrap_or_default();
    let scopes = rt.provider.descriptor().git_scopes;
    let notice = format!(
        "helperd: runtime {name}: {what}; it was not sent to git.\nhelperd: renew it with `helperctl renew {name}`{hint} (scopes: {scopes})",
        name = rt.name,
        hint = token_page_hint(rt),
    );
    let text = format!(
        "helperd: runtime {name}: {what}.{page}\nScopes git needs: {scopes}",
        name = rt.name,
    );
    Refusal {
        reason,
        runtime: Some(rt.name.clone()),
        token_label: Some(token_label(token)),
        notice: Some(notice),
        renewal: Some(RenewalOffer {
            runtime: rt.name.clone(),
            text,
        }),
        username: prompt_username(rt),
    }
}

/// A team token that may not be served: only the admin can rotate it in OpenBao, so
/// there is no renewal to offer and no prompt for git to show.
fn team_unservable(
    rt: &RuntimeConfig,
    origin: &crate::config::TeamOrigin,
    token: &TokenMeta,
    state: TokenState,
) -> Refusal {
    let (reason, what) = match state {
        TokenState::Rejected => (RefuseReason::Rejected, "was rejected by the host"),
        _ => (RefuseReason::Expired, "has expired"),
    };
    let notice = format!(
        "helperd: team runtime {name}: the token in OpenBao ({path}, version {version}) {what}; \
         it was not sent to git.\nhelperd: ask your admin to rotate it (`helperctl team publish {name}`); \
         this machine picks the new version up by itself",
        name = rt.name,
        path = origin.path,
        version = origin.version,
    );
    Refusal::new(reason).runtime(rt).token(token).notice(notice)
}

/// Two runtimes named alike: one from `config.toml`, one from OpenBao.
fn name_conflict(facts: &Facts<'_>, rt: &RuntimeConfig) -> Refusal {
    let message =
        name_conflict_message(facts.config, &rt.name, facts.config_path).unwrap_or_default();
    Refusal::new(RefuseReason::NameConflict(message)).runtime(rt)
}

/// What `status`, `which` and a refused request say when a local and a team runtime are
/// both named `name`; `None` when they are not.
pub fn name_conflict_message(config: &Config, name: &str, config_path: &Path) -> Option<String> {
    let (a, b) = config.name_conflict(name)?;
    let team_path = [a, b]
        .iter()
        .find_map(|r| r.team.as_ref())
        .map(|t| t.path.clone())
        .unwrap_or_default();
    Some(format!(
        "runtime {name} is defined both in {} and in OpenBao ({team_path}); neither is \
         served until one is renamed (`helperctl runtime remove {name}` and add it under \
         another name, or ask your admin to rename the team entry)",
        config_path.display()
    ))
}

/// `store` for a runtime: a renewal when its token is missing, expired or rejected (the
/// user typed a new one at git's prompt); git confirming a token it was given changes
/// nothing. A team runtime's token is the admin's: nothing typed here replaces it.
fn renew(facts: &Facts<'_>, rt: &RuntimeConfig) -> Decision {
    // A GitHub App runtime's tokens are minted: nothing typed at git's prompt replaces them.
    if rt.team.is_some() || rt.app.is_some() {
        return Decision::Nothing;
    }
    let secret = match (&facts.request.password, &facts.request.credential) {
        (Some(p), _) if rt.auth == AuthScheme::Basic => p.clone(),
        (_, Some(c)) if rt.auth == AuthScheme::Bearer => c.clone(),
        _ => return Decision::Nothing,
    };
    let book = match facts.book {
        Ok(book) => book,
        Err(e) => {
            return Decision::Refuse(
                Refusal::new(RefuseReason::TokensUnreadable(e.to_string())).runtime(rt),
            )
        }
    };
    let warn_days = effective_warn_days(facts.config, facts.policy);
    if let Some(token) = book.for_runtime(&rt.name) {
        if token.state(facts.now, warn_days).servable() {
            return Decision::Nothing;
        }
    }
    Decision::RenewToken(RenewToken {
        runtime: rt.name.clone(),
        name: "entered at git's prompt".into(),
        secret,
        expires: facts.request.password_expiry_utc,
    })
}

/// `erase` for a runtime: git got a 401 with this token. It is marked rejected, not
/// deleted, so that the next request can say what happened.
fn reject(facts: &Facts<'_>, rt: &RuntimeConfig) -> Decision {
    let Some(token) = facts.book.ok().and_then(|b| b.for_runtime(&rt.name)) else {
        return Decision::Nothing;
    };
    if rt.app.is_some() {
        // The key is fine (GitHub minted with it); the token git used is thrown away.
        let minted = facts
            .mints
            .get(&rt.name)
            .filter(|v| v.key_id == token.id)
            .and_then(|v| v.token);
        return match minted {
            Some(t) => Decision::DropMinted(DropMinted {
                runtime: rt.name.clone(),
                serial: t.serial,
                token_label: minted_label(t.installation),
                only_if_secret_is: facts.request.password.clone(),
            }),
            None => Decision::Nothing,
        };
    }
    let given = match rt.auth {
        AuthScheme::Basic => facts.request.password.clone(),
        AuthScheme::Bearer => facts.request.credential.clone(),
    };
    Decision::MarkRejected(MarkRejected {
        runtime: rt.name.clone(),
        token_id: token.id.clone(),
        token_label: token_label(token),
        only_if_secret_is: given,
    })
}

/// Whether the forward socket should listen: while some runtime is marked `forward = true`
/// and the policy allows forwarding. `Err`: why it stays closed, for `status`.
pub fn forwarding(
    config: &Config,
    policy: Option<PolicyInForce<'_>>,
    refused_policy: Option<&str>,
) -> Result<(), String> {
    // A policy file that exists but was refused may forbid forwarding: closed, to be safe.
    if let (None, Some(why)) = (policy, refused_policy) {
        return Err(format!(
            "the policy file was refused, so forwarding stays off: {why}"
        ));
    }
    if let Some(p) = policy.filter(|p| !p.policy.allow_forwarding) {
        return Err(format!(
            "{} forbids it (allow_forwarding = false)",
            crate::policy::PolicySource::new(p.source)
        ));
    }
    if !config.runtimes.iter().any(|rt| rt.forward) {
        return Err("no runtime is marked forward = true".into());
    }
    Ok(())
}

/// Whether a new token typed at the client's renewal prompt may be stored for `runtime`
/// when it comes through `via`: from a remote machine only for a forwarded runtime, as for
/// git's own requests ([`decide`]).
pub fn may_renew(
    config: &Config,
    policy: Option<PolicyInForce<'_>>,
    runtime: &str,
    via: Via,
) -> Result<(), Box<Refusal>> {
    let forwarded = config.runtime(runtime).is_some_and(|rt| rt.forward)
        && policy.is_none_or(|p| p.policy.allow_forwarding);
    match via {
        Via::Forward if !forwarded => Err(Box::new(not_forwarded())),
        _ => Ok(()),
    }
}

/// The one answer a remote machine gets for anything not forwarded: the same words
/// whatever the reason, so that it learns nothing about the runtimes that exist.
fn not_forwarded() -> Refusal {
    Refusal::new(RefuseReason::NotForwarded).notice(
        "helperd: nothing is forwarded for this URL: the machine you came from forwards only \
         runtimes marked `forward = true` (helperctl runtime set NAME --forward), never other \
         credentials"
            .into(),
    )
}

fn needs_path_notice(fix: &str, runtimes: &[String]) -> String {
    format!(
        "helperd: runtimes {} differ by path on this host, and git sent no path, so helperd \
         cannot tell which token to use; nothing was sent.\nhelperd: fix it with: {fix}\n\
         helperd: (or run `helperctl install`, which writes this for every such host)",
        runtimes.join(", ")
    )
}

/// Where a user makes a new token for `rt`.
fn token_page(rt: &RuntimeConfig) -> Option<String> {
    let base = rt.urls.first().map(|p| p.base_url()).unwrap_or_default();
    rt.provider.descriptor().token_page(&base)
}

/// [`token_page`] as a sentence tail.
fn token_page_hint(rt: &RuntimeConfig) -> String {
    token_page(rt)
        .map(|page| format!(" (create one at {page})"))
        .unwrap_or_default()
}

fn token_words(t: &TokenMeta) -> String {
    match &t.name {
        Some(n) => format!("token {n:?}"),
        None => "its token".to_string(),
    }
}

/// Whether the daemon renews `token` by itself, so that "make a new one" would be wrong: a
/// GitLab runtime that rotates its token (its `rotate_days` or the policy's floor), whose
/// last rotation attempt has not failed. A failed rotation (refused, the host down, an
/// interrupted one the host cannot settle yet) falls back to the normal expiry warning
/// (issue 18); a lost one makes the token rejected, which is refused anyway. The
/// `rotation_started` mark is no sign of failure: it is also set while a rotation runs.
fn rotates_by_itself(rt: &RuntimeConfig, token: &TokenMeta, facts: &Facts<'_>) -> bool {
    let policy = facts.policy.map(|p| p.policy);
    crate::rotation::window_days(rt, policy)
        .and_then(|days| crate::rotation::due_at(token, days))
        .is_some()
        && !facts.rotation_failed.contains(&token.id)
}

/// The warning-window notice, at most once a day per runtime (the day it was last shown
/// is the token's `warned_on`, which the daemon records when it serves the token).
fn expiry_warning(
    rt: &RuntimeConfig,
    token: &TokenMeta,
    state: TokenState,
    now: u64,
) -> Option<String> {
    if state != TokenState::Expiring || token.warned_on.get(&rt.name) == Some(&(now / 86_400)) {
        return None;
    }
    let expires = token.expires?;
    Some(format!(
        "helperd: runtime {}: {} expires on {} ({}); make a new one{} and run `helperctl renew {}`",
        rt.name,
        token_words(token),
        format_date(expires),
        countdown(expires, now),
        token_page_hint(rt),
        rt.name
    ))
}

/// What was done, beyond the decision itself, that the audit event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Carried out as decided.
    AsDecided,
    /// A plain `store` that kept nothing (an ephemeral or partial credential).
    NothingKept,
    /// A plain `erase`: how many credentials it removed.
    Erased(usize),
    /// A plain `erase` whose write waits for a store that has not answered: how many
    /// credentials it removed in memory, or `None` while it waits for the table to be read.
    ErasePending(Option<usize>),
    /// A `MarkRejected` whose secret was not ours: our token was left alone.
    NotOurs,
}

impl Decision {
    /// The one audit event for this request, built from the decision and what carrying it
    /// out did; `None` when nothing worth recording happened (a miss, a no-op). `url`:
    /// `protocol://host/path` of the request, without credentials.
    pub fn audit_event(&self, url: &str, done: Done, now: u64) -> Option<AuditEvent> {
        let event = |k: &str| AuditEvent::new(k, now).url(url);
        Some(match self {
            Decision::ServeToken(s) => event(kind::SERVED)
                .runtime(&s.runtime)
                .token(&s.token_label),
            Decision::ServePlain { .. } => event(kind::SERVED).reason("plain credential"),
            Decision::StorePlain { .. } if done == Done::NothingKept => return None,
            Decision::StorePlain { .. } => event(kind::STORED).reason("plain credential"),
            Decision::ErasePlain => match done {
                Done::Erased(0) => return None,
                Done::Erased(n) => event(kind::ERASED).reason(format!("{n} plain credential(s)")),
                Done::ErasePending(Some(n)) => event(kind::ERASED).reason(format!(
                    "{n} plain credential(s) erased in memory; pending: written when the store answers"
                )),
                Done::ErasePending(None) => event(kind::ERASED).reason(
                    "pending: the store has not answered; how many is known once it has read the plain credentials",
                ),
                _ => return None,
            },
            Decision::RenewToken(r) => event(kind::RENEWED)
                .runtime(&r.runtime)
                .token(&r.name)
                .reason("new token typed at git's prompt"),
            Decision::MarkRejected(_) if done == Done::NotOurs => return None,
            Decision::MarkRejected(m) => event(kind::ERASED)
                .runtime(&m.runtime)
                .token(&m.token_label)
                .reason("the host rejected the token (git erased it after a 401); marked rejected, kept"),
            Decision::DropMinted(_) if done == Done::NotOurs => return None,
            Decision::DropMinted(d) => event(kind::ERASED)
                .runtime(&d.runtime)
                .token(&d.token_label)
                .reason("the host rejected the installation token (git erased it after a 401); thrown away, the next request mints a new one"),
            Decision::ReadPlain
            | Decision::Refresh { .. }
            | Decision::Mint { .. }
            | Decision::Nothing => return None,
            Decision::Refuse(r) => {
                let k = match r.reason {
                    RefuseReason::StoreBelowPolicy(_) | RefuseReason::RuntimePolicy => {
                        kind::POLICY_VIOLATION
                    }
                    // Operational failures are the daemon log's business.
                    RefuseReason::Store(_)
                    | RefuseReason::ConfigBroken(_)
                    | RefuseReason::TokensUnreadable(_)
                    | RefuseReason::UnsafeStoredValue(_) => return None,
                    _ => kind::REFUSED,
                };
                let mut e = event(k).reason(match (&r.reason, &r.notice) {
                    (RefuseReason::RuntimePolicy, Some(n)) => {
                        n.trim_start_matches("helperd: ").to_string()
                    }
                    (reason, _) => reason.name(),
                });
                if let Some(rt) = &r.runtime {
                    e = e.runtime(rt);
                }
                if let Some(t) = &r.token_label {
                    e = e.token(t);
                }
                e
            }
        })
    }
}

#[cfg(test)]
mod tests;
