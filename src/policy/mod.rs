//! The system policy (`/etc/helperd/policy.toml`, DESIGN.md §1, §2): the rules an
//! administrator sets for every user's tokens, runtimes and secret store.
//!
//! ```toml
//! require_expiry = true          # every token must have an expiry
//! max_days = 90                  # a token may expire at most this many days after it is set
//! warn_days = 14                 # a floor for the users' warning window
//! rotate_days = 14               # GitLab tokens rotate themselves in their last 14 days at least
//! allowed_providers = ["github", "gitlab"]
//! allowed_hosts = ["github.com", "*.corp.example"]
//! store_plain_credentials = false
//! min_store = "passphrase"       # "keyfile" < "passphrase" < "keyring"
//! allow_forwarding = false       # no forward socket (helperctl forward), whatever the user says
//! ```
//!
//! Every key is optional; a missing file is no policy at all. Like `config.toml`, the file
//! is parsed strictly: an unknown key is an error naming the file and the line, because a
//! misspelt rule that is silently ignored would leave the organisation unprotected while
//! the administrator believes otherwise.
//!
//! The rules are pure (no I/O): reading the file, and deciding whether it can be
//! trusted, is [`file`](mod@file)'s job.

pub mod file;

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::Item;

use crate::config::RuntimeConfig;
use crate::location::{HostPattern, UrlPrefix};
use crate::provider::Provider;
use crate::timefmt::format_date;
use crate::token::TokenMeta;
use crate::tomlspan::{check_keys, key_span, line_suffix, value_span, AtLine};

/// Overrides the system policy file (`SYSTEM_POLICY_PATH` in the platform layer). Meant for tests and sandboxes: the file it names must
/// still pass the trust rule of [`file::load`]. It cannot protect against the user (who can
/// point it at a missing file, as they could run another helper): the policy is hygiene
/// for honest users, and the trust rule keeps others from loosening it behind their back.
pub const POLICY_ENV: &str = "HELPERD_POLICY";

const SECS_PER_DAY: u64 = 86_400;

/// The keys a policy file may have, in the order the docs list them.
const KEYS: [&str; 10] = [
    "require_expiry",
    "max_days",
    "warn_days",
    "rotate_days",
    "allowed_providers",
    "allowed_hosts",
    "store_plain_credentials",
    "min_store",
    "allow_forwarding",
    "oauth_app",
];

/// The keys of one `[[oauth_app]]`.
const OAUTH_APP_KEYS: [&str; 3] = ["host", "client_id", "scopes"];

/// An OAuth application an administrator registered at a host once, for every user
/// (`[[oauth_app]]`): `helperctl login` uses it for runtimes on that host that name no
/// `oauth_client_id` of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthApp {
    /// Lower-case host name (with `:port` when not the default).
    pub host: String,
    /// The app's OAuth client id at that host (public, not a secret).
    pub client_id: String,
    /// The scopes to ask for, when not the provider's defaults for git.
    pub scopes: Option<Vec<String>>,
}

/// How well a secret store protects secrets at rest; ordered weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreStrength {
    /// The encrypted file store whose key sits in a file next to it: anyone who can read the
    /// user's files can decrypt it.
    KeyFile,
    /// The encrypted file store keyed by the user's passphrase (argon2id).
    Passphrase,
    /// An OS keyring (Secret Service, macOS Keychain, Windows Credential Manager).
    Keyring,
}

impl StoreStrength {
    /// Every strength, weakest first.
    pub const ALL: [StoreStrength; 3] = [
        StoreStrength::KeyFile,
        StoreStrength::Passphrase,
        StoreStrength::Keyring,
    ];

    /// The name used in `policy.toml`.
    pub fn name(self) -> &'static str {
        match self {
            StoreStrength::KeyFile => "keyfile",
            StoreStrength::Passphrase => "passphrase",
            StoreStrength::Keyring => "keyring",
        }
    }

    /// The strength with this [`StoreStrength::name`]; exact, lower-case.
    pub fn parse(s: &str) -> Option<StoreStrength> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// In words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            StoreStrength::KeyFile => "the file store protected by a key file",
            StoreStrength::Passphrase => "the file store protected by a passphrase",
            StoreStrength::Keyring => "an OS keyring",
        }
    }
}

impl std::fmt::Display for StoreStrength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The rules of `policy.toml`. [`Policy::default`] is no rule at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Every token must have an expiry.
    pub require_expiry: bool,
    /// A token may expire at most this many days after it is set (implies an expiry).
    pub max_days: Option<u32>,
    /// A floor for the users' warning window.
    pub warn_days: Option<u32>,
    /// A floor for every GitLab runtime's `rotate_days`: its token rotates itself at least
    /// this many days before it expires (see [`crate::rotation::window_days`]).
    pub rotate_days: Option<u32>,
    /// The providers runtimes may use; `None`: any.
    pub allowed_providers: Option<Vec<Provider>>,
    /// Lower-case host names or `*.domain` patterns (one label, as in `config.toml`) that
    /// runtimes may point at, on any port; `None`: any.
    pub allowed_hosts: Option<Vec<String>>,
    /// Whether git's `store` may keep credentials for URLs outside every runtime.
    pub store_plain_credentials: bool,
    /// The weakest acceptable secret store; `None`: any.
    pub min_store: Option<StoreStrength>,
    /// Whether runtimes may be used from remote machines through the forward socket
    /// (DESIGN.md §11); `false` keeps the socket closed whatever the user's config says.
    pub allow_forwarding: bool,
    /// OAuth applications registered by the administrator, by host.
    pub oauth_apps: Vec<OAuthApp>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require_expiry: false,
            max_days: None,
            warn_days: None,
            rotate_days: None,
            allowed_providers: None,
            allowed_hosts: None,
            store_plain_credentials: true,
            min_store: None,
            allow_forwarding: true,
            oauth_apps: Vec::new(),
        }
    }
}

/// Where a policy came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    /// The policy file (`policy.toml`).
    pub path: PathBuf,
}

impl PolicySource {
    /// A source for the policy file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PolicySource { path: path.into() }
    }
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the system policy ({})", self.path.display())
    }
}

/// Something the policy does not allow. `message` names the policy file, the rule and the
/// way to comply; it is the whole text shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyViolation {
    /// The key of the rule in `policy.toml`, e.g. `max_days`.
    pub rule: &'static str,
    /// The whole text shown to the user: the policy file, the rule and how to comply.
    pub message: String,
}

/// A policy file that cannot be used. Never ignored: a policy that is there but broken
/// must not silently mean "no policy".
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text is wrong: the file, the line when known, and the problem.
    #[error("{path}{}: {message}", line_suffix(.line))]
    Invalid {
        /// The policy file.
        path: String,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The file or its folder could have been written by someone other than the trusted
    /// owner.
    #[error("refusing the system policy {path}: {why}; fix it with: {fix}")]
    Untrusted {
        /// The policy file.
        path: String,
        /// What is wrong with its owner or mode, and who could have written it.
        why: String,
        /// The `chown`/`chmod` command that makes it trusted.
        fix: String,
    },
    /// The file exists but cannot be read.
    #[error("cannot read the system policy {path}: {source}")]
    Io {
        /// The policy file.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// The start of every violation message.
fn policy_name(source: &Path) -> String {
    PolicySource::new(source).to_string()
}

/// A day count as a number of seconds.
fn days(n: u32) -> u64 {
    u64::from(n) * SECS_PER_DAY
}

impl Policy {
    /// Parses the text of a policy file; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Policy, PolicyError> {
        let cx = PolicyCx(Cx::new(text, path));
        let doc = cx.0.document()?;
        let root = doc.as_table();
        let mut policy = Policy::default();
        for (key, item) in root.iter() {
            let span = value_span(root, key);
            match key {
                "require_expiry" => policy.require_expiry = cx.boolean(key, item, span)?,
                "max_days" => policy.max_days = Some(cx.0.days(key, item, span, 1)?),
                "warn_days" => policy.warn_days = Some(cx.0.days(key, item, span, 0)?),
                "rotate_days" => policy.rotate_days = Some(cx.0.days(key, item, span, 1)?),
                "allowed_providers" => policy.allowed_providers = Some(cx.providers(item, span)?),
                "allowed_hosts" => policy.allowed_hosts = Some(cx.hosts(item, span)?),
                "allow_forwarding" => policy.allow_forwarding = cx.boolean(key, item, span)?,
                "store_plain_credentials" => {
                    policy.store_plain_credentials = cx.boolean(key, item, span)?
                }
                "min_store" => policy.min_store = Some(cx.min_store(item, span)?),
                "oauth_app" => policy.oauth_apps = cx.oauth_apps(item, span)?,
                _ => {
                    return Err(cx.error(
                        key_span(root, key),
                        format!("unknown key {key:?}; known keys: {}", KEYS.join(", ")),
                    ))
                }
            }
        }
        Ok(policy)
    }

    /// The rules in force, as `(key, value)` in `policy.toml` syntax, in the order the docs
    /// list them: what `helperctl status` shows. Empty for [`Policy::default`].
    pub fn rules(&self) -> Vec<(&'static str, String)> {
        let quoted = |items: Vec<String>| {
            let items: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", items.join(", "))
        };
        let mut rules = Vec::new();
        if self.require_expiry {
            rules.push(("require_expiry", "true".to_string()));
        }
        if let Some(n) = self.max_days {
            rules.push(("max_days", n.to_string()));
        }
        if let Some(n) = self.warn_days {
            rules.push(("warn_days", n.to_string()));
        }
        if let Some(n) = self.rotate_days {
            rules.push(("rotate_days", n.to_string()));
        }
        if let Some(providers) = &self.allowed_providers {
            let names = providers.iter().map(|p| p.name().to_string()).collect();
            rules.push(("allowed_providers", quoted(names)));
        }
        if let Some(hosts) = &self.allowed_hosts {
            rules.push(("allowed_hosts", quoted(hosts.clone())));
        }
        if !self.store_plain_credentials {
            rules.push(("store_plain_credentials", "false".to_string()));
        }
        if let Some(min) = self.min_store {
            rules.push(("min_store", format!("{:?}", min.name())));
        }
        if !self.allow_forwarding {
            rules.push(("allow_forwarding", "false".to_string()));
        }
        for app in &self.oauth_apps {
            rules.push((
                "oauth_app",
                format!(
                    "{{ host = {:?}, client_id = {:?} }}",
                    app.host, app.client_id
                ),
            ));
        }
        rules
    }

    /// The latest expiry allowed for a token set at `now`, when `max_days` is set.
    fn latest_expiry(&self, now: u64) -> Option<u64> {
        self.max_days.map(|n| now.saturating_add(days(n)))
    }

    /// A token about to be set or renewed at `now`, expiring at `expires` (Unix seconds;
    /// `None`: no expiry). `max_days` implies an expiry: a token that never expires
    /// certainly expires more than `max_days` ahead.
    pub fn check_token(
        &self,
        expires: Option<u64>,
        now: u64,
        source: &Path,
    ) -> Result<(), PolicyViolation> {
        let policy = policy_name(source);
        let latest = self.latest_expiry(now);
        match (expires, self.max_days, latest) {
            (None, _, _) if self.require_expiry => Err(PolicyViolation {
                rule: "require_expiry",
                message: format!(
                    "{policy} requires every token to have an expiry: make a token that \
                     expires{} and give its expiry with --expires DATE",
                    latest
                        .map(|t| format!(" by {}", format_date(t)))
                        .unwrap_or_default()
                ),
            }),
            (None, Some(n), Some(latest)) => Err(PolicyViolation {
                rule: "max_days",
                message: format!(
                    "{policy} allows tokens that expire at most {n} days ahead, and this one \
                     has no expiry: make a token that expires by {} and give its expiry with \
                     --expires DATE",
                    format_date(latest)
                ),
            }),
            (Some(t), Some(n), Some(latest)) if t > latest => Err(PolicyViolation {
                rule: "max_days",
                message: format!(
                    "{policy} allows tokens that expire at most {n} days ahead, and this one \
                     expires on {}: the latest allowed expiry is {}; make a token with an \
                     earlier expiry",
                    format_date(t),
                    format_date(latest)
                ),
            }),
            _ => Ok(()),
        }
    }

    /// A runtime's provider and every host its token may be sent to: each URL prefix, and
    /// the `api_url` (the token travels there too, for introspection and revocation).
    pub fn check_runtime(&self, rt: &RuntimeConfig, source: &Path) -> Result<(), PolicyViolation> {
        self.check_provider(rt, source)?;
        let Some(allowed) = &self.allowed_hosts else {
            return Ok(());
        };
        for prefix in &rt.urls {
            if !host_allowed(allowed, &prefix.host) {
                return Err(host_violation(
                    rt,
                    &format!("url {prefix}"),
                    &prefix.host,
                    allowed,
                    source,
                ));
            }
        }
        // The config loader validated api_url as a URL with an exact host; one that no
        // longer parses has no host to check.
        let api = rt.api_url.as_deref().and_then(|u| UrlPrefix::parse(u).ok());
        match api {
            Some(api) if !host_allowed(allowed, &api.host) => {
                let what = format!("api_url {}", api.base_url());
                Err(host_violation(rt, &what, &api.host, allowed, source))
            }
            _ => Ok(()),
        }
    }

    fn check_provider(&self, rt: &RuntimeConfig, source: &Path) -> Result<(), PolicyViolation> {
        match &self.allowed_providers {
            Some(allowed) if !allowed.contains(&rt.provider) => {
                let names: Vec<&str> = allowed.iter().map(|p| p.name()).collect();
                Err(PolicyViolation {
                    rule: "allowed_providers",
                    message: format!(
                        "{} allows only runtimes for {}, and runtime {:?} uses {}: change its \
                         provider, or ask your administrator to allow {}",
                        policy_name(source),
                        names.join(", "),
                        rt.name,
                        rt.provider,
                        rt.provider
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// The store of record, whose strength is `strength`.
    pub fn check_store(
        &self,
        strength: StoreStrength,
        source: &Path,
    ) -> Result<(), PolicyViolation> {
        let Some(min) = self.min_store.filter(|&min| strength < min) else {
            return Ok(());
        };
        let fix = match min {
            StoreStrength::KeyFile => "",
            StoreStrength::Passphrase => {
                "protect it with a passphrase: helperctl store set-passphrase"
            }
            StoreStrength::Keyring => {
                "use an OS keyring (Secret Service, macOS Keychain or Windows Credential \
                 Manager) instead, or ask your administrator if this machine has none"
            }
        };
        Err(PolicyViolation {
            rule: "min_store",
            message: format!(
                "{} requires secrets to be kept in {} or a stronger store (min_store = {:?}), \
                 and this store is {}: {fix}",
                policy_name(source),
                min.describe(),
                min.name(),
                strength.describe()
            ),
        })
    }

    /// The OAuth application the administrator registered for `host` (`name[:port]`).
    pub fn oauth_app(&self, host: &str) -> Option<&OAuthApp> {
        let host = host.to_ascii_lowercase();
        self.oauth_apps.iter().find(|a| a.host == host)
    }

    /// Whether git's `store` may keep credentials for URLs outside every runtime.
    pub fn allows_plain_store(&self) -> bool {
        self.store_plain_credentials
    }

    /// [`Policy::allows_plain_store`] as a violation with its message, for a `store` of a
    /// credential no runtime answers for.
    pub fn check_plain_store(&self, source: &Path) -> Result<(), PolicyViolation> {
        if self.store_plain_credentials {
            return Ok(());
        }
        Err(PolicyViolation {
            rule: "store_plain_credentials",
            message: format!(
                "{} does not allow keeping credentials for URLs outside every runtime \
                 (store_plain_credentials = false): add a runtime for this URL with \
                 `helperctl runtime add`",
                policy_name(source)
            ),
        })
    }

    /// The warning window to use: the user's, raised to the policy's floor.
    pub fn effective_warn_days(&self, user_warn_days: u32) -> u32 {
        user_warn_days.max(self.warn_days.unwrap_or(0))
    }

    /// Existing tokens that break the expiry rules, e.g. set before the policy existed:
    /// they keep working until they expire, and `status` flags them. `max_days` counts
    /// from when each token was set (`created`), as for a new token. An expired token is
    /// not listed: it no longer works anyway. At most one violation per token. A GitHub
    /// App key is not listed either: setting one skips the expiry rules (it has no expiry;
    /// its minted tokens last an hour), so flagging it afterwards would contradict that.
    pub fn violations(
        &self,
        tokens: &[TokenMeta],
        now: u64,
        source: &Path,
    ) -> Vec<(String, PolicyViolation)> {
        tokens
            .iter()
            .filter(|t| t.expires.is_none_or(|e| e > now))
            .filter(|t| !crate::token::is_app_key_kind(t.kind.as_deref()))
            .filter_map(|t| {
                self.token_violation(t, now, source)
                    .map(|v| (t.id.clone(), v))
            })
            .collect()
    }

    fn token_violation(&self, t: &TokenMeta, now: u64, source: &Path) -> Option<PolicyViolation> {
        let policy = policy_name(source);
        let label = match &t.name {
            Some(name) => format!("token {name:?}"),
            None => format!("token {}", t.id),
        };
        let runtime = t.runtimes.first().map_or("RUNTIME", String::as_str);
        let replace = |by: Option<u64>| {
            format!(
                "replace it with a token that expires{} (helperctl token set {runtime} \
                 --expires DATE)",
                by.map(|t| format!(" by {}", format_date(t)))
                    .unwrap_or_default()
            )
        };
        let latest = self.latest_expiry(now);
        match (t.expires, self.max_days) {
            (None, _) if self.require_expiry => Some(PolicyViolation {
                rule: "require_expiry",
                message: format!(
                    "{label} has no expiry, which {policy} no longer allows: it keeps working \
                     until it is replaced; {}",
                    replace(latest)
                ),
            }),
            (None, Some(n)) => Some(PolicyViolation {
                rule: "max_days",
                message: format!(
                    "{label} has no expiry, but {policy} allows tokens that expire at most {n} \
                     days after they are set: it keeps working until it is replaced; {}",
                    replace(latest)
                ),
            }),
            (Some(e), Some(n)) if e > t.created.saturating_add(days(n)) => Some(PolicyViolation {
                rule: "max_days",
                message: format!(
                    "{label} was set on {} and expires on {}, but {policy} allows tokens \
                         that expire at most {n} days after they are set: it keeps working \
                         until then; {}",
                    format_date(t.created),
                    format_date(e),
                    replace(latest)
                ),
            }),
            _ => None,
        }
    }
}

fn host_violation(
    rt: &RuntimeConfig,
    what: &str,
    host: &HostPattern,
    allowed: &[String],
    source: &Path,
) -> PolicyViolation {
    PolicyViolation {
        rule: "allowed_hosts",
        message: format!(
            "{} allows runtimes only on {}, and runtime {:?} has {what} (host {host}): remove \
             it, or ask your administrator to allow the host",
            policy_name(source),
            allowed.join(", "),
            rt.name
        ),
    }
}

/// `name:port` -> `name`; a bracketed IPv6 address keeps its colons. The policy names
/// hosts, not ports.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.split_once(':').map_or(host, |(name, _)| name)
}

/// An allowed-hosts entry as a pattern, with `config.toml`'s matching rule.
fn as_pattern(entry: &str) -> HostPattern {
    match entry.strip_prefix("*.") {
        Some(domain) => HostPattern::Wildcard(domain.to_string()),
        None => HostPattern::Exact(entry.to_string()),
    }
}

/// Whether a runtime's host is allowed. An exact host must match an entry (exactly or by
/// an entry's wildcard); a runtime's own wildcard `*.d` stands for every host of `d`, so it
/// is allowed only by the same wildcard entry `*.d`.
fn host_allowed(allowed: &[String], host: &HostPattern) -> bool {
    match host {
        HostPattern::Exact(h) => {
            let name = strip_port(h);
            allowed.iter().any(|entry| as_pattern(entry).matches(name))
        }
        HostPattern::Wildcard(domain) => {
            let pattern = format!("*.{}", strip_port(domain));
            allowed.contains(&pattern)
        }
    }
}

/// Checks and lower-cases one `allowed_hosts` entry: a host name (`github.com`), a
/// wildcard of one label over a domain of two labels or more (`*.corp.example`), or a
/// bracketed IPv6 address; no scheme, port or path, since the policy allows a host on
/// every port.
fn host_entry(entry: &str) -> Result<String, String> {
    let lower = entry.to_lowercase();
    let name = lower.strip_prefix("*.").unwrap_or(&lower);
    let ipv6 = name.len() > 2
        && name.starts_with('[')
        && name.ends_with(']')
        && name[1..name.len() - 1]
            .chars()
            .all(|c| c.is_ascii_hexdigit() || ":.".contains(c));
    let host_name = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_'))
        });
    let wildcard = name.len() != lower.len();
    // As in config.toml: `*.com` would allow a whole top-level domain.
    let wildcard_ok = !wildcard || (!ipv6 && name.contains('.'));
    if (ipv6 || host_name) && wildcard_ok {
        Ok(lower)
    } else {
        Err(format!(
            "allowed_hosts entry {entry:?} is not a host name like \"github.com\" or \
             \"*.corp.example\" (write no scheme, port or path: every port of an allowed \
             host is allowed)"
        ))
    }
}

/// A string from the file and where it is written, for errors about it.
type Spanned<'a> = (&'a str, Option<Range<usize>>);

impl AtLine for PolicyError {
    fn at_line(path: String, line: Option<usize>, message: String) -> Self {
        PolicyError::Invalid {
            path,
            line,
            message,
        }
    }
}

/// The parse context of a policy file: its errors are [`PolicyError::Invalid`].
type Cx<'a> = crate::tomlspan::Cx<'a, PolicyError>;

/// The policy's readers of each rule's value, on its parse context.
struct PolicyCx<'a>(Cx<'a>);

impl PolicyCx<'_> {
    fn error(&self, span: Option<Range<usize>>, message: String) -> PolicyError {
        self.0.error(span, message)
    }

    fn boolean(
        &self,
        key: &str,
        item: &Item,
        span: Option<Range<usize>>,
    ) -> Result<bool, PolicyError> {
        item.as_bool().ok_or_else(|| {
            self.error(
                span,
                format!("{key} must be true or false, not {}", item.type_name()),
            )
        })
    }

    /// A non-empty array of strings, each with its span: an empty list would allow nothing,
    /// which is surely not what was meant.
    fn strings<'i>(
        &self,
        key: &str,
        item: &'i Item,
        span: Option<Range<usize>>,
    ) -> Result<Vec<Spanned<'i>>, PolicyError> {
        let array = item.as_array().ok_or_else(|| {
            self.error(
                span.clone(),
                format!(
                    "{key} must be an array of strings, not {}",
                    item.type_name()
                ),
            )
        })?;
        if array.is_empty() {
            return Err(self.error(
                span,
                format!("{key} is empty, which would allow nothing; remove it to allow any"),
            ));
        }
        array
            .iter()
            .map(|v| match v.as_str() {
                Some(s) => Ok((s, v.span())),
                None => Err(self.error(
                    v.span(),
                    format!("{key} must hold strings, not {}", v.type_name()),
                )),
            })
            .collect()
    }

    fn providers(
        &self,
        item: &Item,
        span: Option<Range<usize>>,
    ) -> Result<Vec<Provider>, PolicyError> {
        let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
        self.strings("allowed_providers", item, span)?
            .into_iter()
            .map(|(s, span)| {
                Provider::parse(s).ok_or_else(|| {
                    self.error(
                        span,
                        format!(
                            "allowed_providers: unknown provider {s:?}; use some of {}",
                            names.join(", ")
                        ),
                    )
                })
            })
            .collect()
    }

    fn hosts(&self, item: &Item, span: Option<Range<usize>>) -> Result<Vec<String>, PolicyError> {
        self.strings("allowed_hosts", item, span)?
            .into_iter()
            .map(|(s, span)| host_entry(s).map_err(|why| self.error(span, why)))
            .collect()
    }

    fn min_store(
        &self,
        item: &Item,
        span: Option<Range<usize>>,
    ) -> Result<StoreStrength, PolicyError> {
        let names: Vec<String> = StoreStrength::ALL
            .iter()
            .map(|s| format!("{:?}", s.name()))
            .collect();
        let problem = match item.as_str() {
            Some(s) => match StoreStrength::parse(s) {
                Some(strength) => return Ok(strength),
                None => format!("unknown store strength {s:?}"),
            },
            None => format!("a {}", item.type_name()),
        };
        Err(self.error(
            span,
            format!(
                "min_store must be one of {} (weakest first), not {problem}",
                names.join(", ")
            ),
        ))
    }
}

impl PolicyCx<'_> {
    /// `[[oauth_app]]` tables: `host` and `client_id` required, `scopes` optional.
    fn oauth_apps(
        &self,
        item: &Item,
        span: Option<Range<usize>>,
    ) -> Result<Vec<OAuthApp>, PolicyError> {
        let tables = item.as_array_of_tables().ok_or_else(|| {
            self.error(
                span.clone(),
                "oauth_app must be written as [[oauth_app]] tables".to_string(),
            )
        })?;
        let mut apps: Vec<OAuthApp> = Vec::new();
        for table in tables.iter() {
            let at = table.span();
            check_keys(&self.0, table, &OAUTH_APP_KEYS, "oauth_app")?;
            let text = |key: &str| -> Result<String, PolicyError> {
                match table.get(key).and_then(Item::as_str).map(str::trim) {
                    Some(v) if !v.is_empty() && !v.chars().any(char::is_control) => {
                        Ok(v.to_string())
                    }
                    _ => Err(self.error(
                        value_span(table, key).or(at.clone()),
                        format!("oauth_app needs {key} = \"...\" (a non-empty string)"),
                    )),
                }
            };
            let host = text("host")?.to_ascii_lowercase();
            if host.contains(['/', '@', ' ']) {
                return Err(self.error(
                    value_span(table, "host"),
                    format!("oauth_app host {host:?} must be a host name (like gitlab.example.com), not a URL"),
                ));
            }
            if apps.iter().any(|a| a.host == host) {
                return Err(self.error(at.clone(), format!("oauth_app for {host} is there twice")));
            }
            let client_id = text("client_id")?;
            let scopes = match table.get("scopes") {
                None => None,
                Some(item) => Some(
                    self.strings("scopes", item, value_span(table, "scopes"))?
                        .into_iter()
                        .map(|(s, _)| s.to_string())
                        .collect(),
                ),
            };
            apps.push(OAuthApp {
                host,
                client_id,
                scopes,
            });
        }
        Ok(apps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const POLICY: &str = "/etc/helperd/policy.toml";
    const DAY: u64 = SECS_PER_DAY;
    /// 2026-11-22 00:00 UTC.
    const NOW: u64 = 1_795_305_600;

    const EXAMPLE: &str = r#"# the organisation's rules
require_expiry = true
max_days = 90
warn_days = 14
allowed_providers = ["github", "gitlab"]
allowed_hosts = ["github.com", "*.Corp.example"]
store_plain_credentials = false
min_store = "passphrase"
"#;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, Path::new(POLICY))
    }

    fn src() -> &'static Path {
        Path::new(POLICY)
    }

    fn runtime(provider: &str, urls: &[&str], extra: &str) -> RuntimeConfig {
        let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
        let text = format!(
            "[[runtime]]\nname = \"acme\"\nprovider = \"{provider}\"\nurls = [{}]\n{extra}",
            urls.join(", ")
        );
        Config::parse(&text, Path::new("config.toml"))
            .expect("the test config is valid")
            .runtimes
            .remove(0)
    }

    /// Built through serde, so that fields added to `TokenMeta` later take their defaults.
    fn token(id: &str, name: Option<&str>, created: u64, expires: Option<u64>) -> TokenMeta {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "name": name,
            "created": created,
            "expires": expires,
            "runtimes": ["acme"],
        }))
        .expect("the test token's JSON matches TokenMeta")
    }

    #[test]
    fn the_example_parses() {
        let policy = parse(EXAMPLE).unwrap();
        assert_eq!(
            policy,
            Policy {
                require_expiry: true,
                max_days: Some(90),
                warn_days: Some(14),
                rotate_days: None,
                allowed_providers: Some(vec![Provider::GitHub, Provider::GitLab]),
                allowed_hosts: Some(vec!["github.com".into(), "*.corp.example".into()]),
                store_plain_credentials: false,
                min_store: Some(StoreStrength::Passphrase),
                allow_forwarding: true,
                oauth_apps: Vec::new(),
            }
        );
        assert_eq!(
            policy.rules(),
            [
                ("require_expiry", "true".to_string()),
                ("max_days", "90".into()),
                ("warn_days", "14".into()),
                ("allowed_providers", r#"["github", "gitlab"]"#.into()),
                (
                    "allowed_hosts",
                    r#"["github.com", "*.corp.example"]"#.into()
                ),
                ("store_plain_credentials", "false".into()),
                ("min_store", r#""passphrase""#.into()),
            ]
        );
    }

    #[test]
    fn an_empty_policy_has_no_rules() {
        let policy = parse("# nothing yet\n").unwrap();
        assert_eq!(policy, Policy::default());
        assert!(policy.rules().is_empty());
        assert!(policy.allows_plain_store());
        assert!(policy.allow_forwarding);
        assert_eq!(policy.check_token(None, NOW, src()), Ok(()));
        assert_eq!(policy.check_store(StoreStrength::KeyFile, src()), Ok(()));
        let rt = runtime("bitbucket", &["https://bitbucket.org/acme/"], "");
        assert_eq!(policy.check_runtime(&rt, src()), Ok(()));
        assert_eq!(policy.effective_warn_days(3), 3);
        let old = token("t", None, 0, Some(NOW + 9999 * DAY));
        assert!(policy.violations(&[old], NOW, src()).is_empty());
    }

    #[test]
    fn every_parse_error_names_its_line_and_problem() {
        #[rustfmt::skip]
        let cases: Vec<(&str, usize, &str)> = vec![
            ("max_days = 90\nmax_days = 30\n", 2, "TOML syntax error: duplicate key"),
            ("require_expiry = yes\n", 1, "TOML syntax error: string values must be quoted, expected literal string"),
            ("\nmax_day = 90\n", 2, "unknown key \"max_day\"; known keys: require_expiry, max_days, \
                warn_days, rotate_days, allowed_providers, allowed_hosts, store_plain_credentials, min_store, allow_forwarding, oauth_app"),
            ("[rules]\nmax_days = 3\n", 1, "unknown key \"rules\"; known keys: require_expiry, max_days, \
                warn_days, rotate_days, allowed_providers, allowed_hosts, store_plain_credentials, min_store, allow_forwarding, oauth_app"),
            ("require_expiry = 1\n", 1, "require_expiry must be true or false, not integer"),
            ("store_plain_credentials = \"no\"\n", 1, "store_plain_credentials must be true or false, not string"),
            ("\n\nmax_days = 0\n", 3, "max_days must be from 1 to 3650 days, not 0"),
            ("max_days = 3651\n", 1, "max_days must be from 1 to 3650 days, not 3651"),
            ("max_days = \"90\"\n", 1, "max_days must be a whole number of days, not string"),
            ("warn_days = -1\n", 1, "warn_days must be from 0 to 3650 days, not -1"),
            ("allowed_providers = \"github\"\n", 1, "allowed_providers must be an array of strings, not string"),
            ("allowed_providers = []\n", 1, "allowed_providers is empty, which would allow nothing; remove it to allow any"),
            ("allowed_providers = [\n  \"github\",\n  \"githup\",\n]\n", 3,
                "allowed_providers: unknown provider \"githup\"; use some of github, gitlab, bitbucket, \
                 bitbucket-server, gitea, generic"),
            ("allowed_hosts = [\"github.com\", 3]\n", 1, "allowed_hosts must hold strings, not integer"),
            ("allowed_hosts = [\n\"https://github.com\"]\n", 2,
                "allowed_hosts entry \"https://github.com\" is not a host name like \"github.com\" or \
                 \"*.corp.example\" (write no scheme, port or path: every port of an allowed host is allowed)"),
            ("allowed_hosts = [\"github.com:443\"]\n", 1,
                "allowed_hosts entry \"github.com:443\" is not a host name like \"github.com\" or \
                 \"*.corp.example\" (write no scheme, port or path: every port of an allowed host is allowed)"),
            ("allowed_hosts = [\"a..b\"]\n", 1,
                "allowed_hosts entry \"a..b\" is not a host name like \"github.com\" or \
                 \"*.corp.example\" (write no scheme, port or path: every port of an allowed host is allowed)"),
            ("allowed_hosts = [\"*.*.b\"]\n", 1,
                "allowed_hosts entry \"*.*.b\" is not a host name like \"github.com\" or \
                 \"*.corp.example\" (write no scheme, port or path: every port of an allowed host is allowed)"),
            ("min_store = \"file\"\n", 1,
                "min_store must be one of \"keyfile\", \"passphrase\", \"keyring\" (weakest first), not \
                 unknown store strength \"file\""),
            ("min_store = 2\n", 1,
                "min_store must be one of \"keyfile\", \"passphrase\", \"keyring\" (weakest first), not a integer"),
        ];
        for (text, line, message) in cases {
            match parse(text) {
                Err(PolicyError::Invalid {
                    path,
                    line: l,
                    message: m,
                }) => {
                    assert_eq!(path, POLICY);
                    assert_eq!((l, m.as_str()), (Some(line), message), "for:\n{text}");
                }
                other => panic!("for:\n{text}\nexpected an Invalid error, got {other:?}"),
            }
        }
        let e = parse("max_days = 0\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/helperd/policy.toml:1: max_days must be from 1 to 3650 days, not 0"
        );
    }

    #[test]
    fn host_entries_accept_names_wildcards_and_ipv6() {
        for (entry, normalised) in [
            ("GitHub.com", "github.com"),
            ("*.corp.example", "*.corp.example"),
            ("localhost", "localhost"),
            ("[::1]", "[::1]"),
            ("git_01.example", "git_01.example"),
        ] {
            assert_eq!(host_entry(entry).as_deref(), Ok(normalised), "{entry}");
        }
        for bad in [
            "",
            "*.",
            "*.com",
            "*.[::1]",
            "[zz]",
            "host/path",
            "user@host",
            "*",
        ] {
            assert!(host_entry(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn require_expiry_accepts_an_expiry_and_refuses_none() {
        let policy = parse("require_expiry = true\n").unwrap();
        assert_eq!(
            policy.check_token(Some(NOW + 3000 * DAY), NOW, src()),
            Ok(())
        );
        let v = policy.check_token(None, NOW, src()).unwrap_err();
        assert_eq!(v.rule, "require_expiry");
        assert_eq!(
            v.to_string(),
            "the system policy (/etc/helperd/policy.toml) requires every token to have an \
             expiry: make a token that expires and give its expiry with --expires DATE"
        );
        // With max_days, the message names the latest allowed date.
        let policy = parse("require_expiry = true\nmax_days = 90\n").unwrap();
        let v = policy.check_token(None, NOW, src()).unwrap_err();
        assert_eq!(v.rule, "require_expiry");
        assert!(
            v.message
                .contains("make a token that expires by 2027-02-20 and"),
            "{v}"
        );
    }

    #[test]
    fn max_days_accepts_up_to_the_limit_and_refuses_beyond() {
        let policy = parse("max_days = 90\n").unwrap();
        let latest = NOW + 90 * DAY;
        assert_eq!(format_date(latest), "2027-02-20");
        assert_eq!(policy.check_token(Some(latest), NOW, src()), Ok(()));
        assert_eq!(policy.check_token(Some(NOW + DAY), NOW, src()), Ok(()));
        // A date typed as 2027-02-20 (midnight) is allowed later that day too.
        assert_eq!(policy.check_token(Some(latest), NOW + 3600, src()), Ok(()));
        let v = policy
            .check_token(Some(latest + 1), NOW, src())
            .unwrap_err();
        assert_eq!(v.rule, "max_days");
        assert_eq!(
            v.to_string(),
            "the system policy (/etc/helperd/policy.toml) allows tokens that expire at most 90 \
             days ahead, and this one expires on 2027-02-20: the latest allowed expiry is \
             2027-02-20; make a token with an earlier expiry"
        );
        let v = policy
            .check_token(Some(NOW + 365 * DAY), NOW, src())
            .unwrap_err();
        assert!(v.message.contains("this one expires on 2027-11-22"), "{v}");
        // max_days implies an expiry.
        let v = policy.check_token(None, NOW, src()).unwrap_err();
        assert_eq!(v.rule, "max_days");
        assert_eq!(
            v.to_string(),
            "the system policy (/etc/helperd/policy.toml) allows tokens that expire at most 90 \
             days ahead, and this one has no expiry: make a token that expires by 2027-02-20 \
             and give its expiry with --expires DATE"
        );
    }

    #[test]
    fn warn_days_is_a_floor() {
        let policy = parse("warn_days = 14\n").unwrap();
        assert_eq!(policy.effective_warn_days(7), 14);
        assert_eq!(policy.effective_warn_days(30), 30);
        assert_eq!(policy.check_token(None, NOW, src()), Ok(()));
    }

    #[test]
    fn rotate_days_is_read_and_shown() {
        let policy = parse("rotate_days = 10\n").unwrap();
        assert_eq!(policy.rotate_days, Some(10));
        assert_eq!(policy.rules(), [("rotate_days", "10".to_string())]);
        assert!(parse("rotate_days = 0\n").is_err());
    }

    #[test]
    fn allowed_providers_accepts_listed_and_refuses_others() {
        let policy = parse("allowed_providers = [\"github\", \"gitlab\"]\n").unwrap();
        let ok = runtime("gitlab", &["https://gitlab.example.com/"], "");
        assert_eq!(policy.check_runtime(&ok, src()), Ok(()));
        let bad = runtime("bitbucket", &["https://bitbucket.org/acme/"], "");
        let v = policy.check_runtime(&bad, src()).unwrap_err();
        assert_eq!(v.rule, "allowed_providers");
        assert_eq!(
            v.to_string(),
            "the system policy (/etc/helperd/policy.toml) allows only runtimes for github, \
             gitlab, and runtime \"acme\" uses bitbucket: change its provider, or ask your \
             administrator to allow bitbucket"
        );
    }

    #[test]
    fn allowed_hosts_accepts_listed_hosts_on_any_port() {
        let policy = parse("allowed_hosts = [\"github.com\", \"*.corp.example\"]\n").unwrap();
        for urls in [
            &["https://github.com/acme/"][..],
            &[
                "https://GitHub.com:8443/acme/",
                "http://git.corp.example/x/",
            ],
            &["https://*.corp.example/"],
            &["https://*.corp.example:8443/team/"],
        ] {
            let rt = runtime("github", urls, "");
            assert_eq!(policy.check_runtime(&rt, src()), Ok(()), "{urls:?}");
        }
        let rt = runtime(
            "github",
            &["https://git.corp.example/"],
            "api_url = \"https://api.corp.example/v3\"\n",
        );
        assert_eq!(policy.check_runtime(&rt, src()), Ok(()));
    }

    #[test]
    fn allowed_hosts_refuses_other_hosts() {
        let policy = parse("allowed_hosts = [\"github.com\", \"*.corp.example\"]\n").unwrap();
        let rt = runtime(
            "github",
            &["https://github.com/acme/", "https://evil.example/acme/"],
            "",
        );
        let v = policy.check_runtime(&rt, src()).unwrap_err();
        assert_eq!(v.rule, "allowed_hosts");
        assert_eq!(
            v.to_string(),
            "the system policy (/etc/helperd/policy.toml) allows runtimes only on github.com, \
             *.corp.example, and runtime \"acme\" has url https://evil.example/acme/ (host \
             evil.example): remove it, or ask your administrator to allow the host"
        );
        for url in [
            // A wildcard allows exactly one more label, as in config.toml.
            "https://a.b.corp.example/",
            "https://corp.example/",
            // A runtime wildcard covers hosts the entry does not name.
            "https://*.other.example/",
            "https://*.github.com/",
            "https://gist.github.com/",
        ] {
            let rt = runtime("github", &[url], "");
            let v = policy.check_runtime(&rt, src()).unwrap_err();
            assert_eq!(v.rule, "allowed_hosts", "{url}");
        }
        // The token travels to the api_url too.
        let rt = runtime(
            "github",
            &["https://github.com/acme/"],
            "api_url = \"https://api.evil.example/v3\"\n",
        );
        let v = policy.check_runtime(&rt, src()).unwrap_err();
        assert!(
            v.message
                .contains("has api_url https://api.evil.example (host api.evil.example)"),
            "{v}"
        );
    }

    #[test]
    fn min_store_orders_strengths() {
        assert!(StoreStrength::KeyFile < StoreStrength::Passphrase);
        assert!(StoreStrength::Passphrase < StoreStrength::Keyring);
        assert_eq!(
            crate::store::StoreKind::File.strength(false),
            StoreStrength::KeyFile
        );
        assert_eq!(
            crate::store::StoreKind::File.strength(true),
            StoreStrength::Passphrase
        );
        assert_eq!(
            crate::store::StoreKind::SecretService.strength(false),
            StoreStrength::Keyring
        );
        for s in StoreStrength::ALL {
            assert_eq!(StoreStrength::parse(s.name()), Some(s));
        }

        let policy = parse("min_store = \"passphrase\"\n").unwrap();
        assert_eq!(policy.check_store(StoreStrength::Passphrase, src()), Ok(()));
        assert_eq!(policy.check_store(StoreStrength::Keyring, src()), Ok(()));
        let v = policy
            .check_store(StoreStrength::KeyFile, src())
            .unwrap_err();
        assert_eq!(v.rule, "min_store");
        assert_eq!(
            v.to_string(),
            "the system policy (/etc/helperd/policy.toml) requires secrets to be kept in the \
             file store protected by a passphrase or a stronger store (min_store = \
             \"passphrase\"), and this store is the file store protected by a key file: protect \
             it with a passphrase: helperctl store set-passphrase"
        );

        let policy = parse("min_store = \"keyring\"\n").unwrap();
        assert_eq!(policy.check_store(StoreStrength::Keyring, src()), Ok(()));
        let v = policy
            .check_store(StoreStrength::Passphrase, src())
            .unwrap_err();
        assert!(
            v.message.contains(
                "and this store is the file store protected by a passphrase: use an OS keyring"
            ),
            "{v}"
        );

        let policy = parse("min_store = \"keyfile\"\n").unwrap();
        assert_eq!(policy.check_store(StoreStrength::KeyFile, src()), Ok(()));
    }

    #[test]
    fn store_plain_credentials_allows_or_refuses() {
        let policy = parse("store_plain_credentials = true\n").unwrap();
        assert!(policy.allows_plain_store());
        assert_eq!(policy.check_plain_store(src()), Ok(()));
        let policy = parse("store_plain_credentials = false\n").unwrap();
        assert!(!policy.allows_plain_store());
        let v = policy.check_plain_store(src()).unwrap_err();
        assert_eq!(v.rule, "store_plain_credentials");
        assert_eq!(
            v.to_string(),
            "the system policy (/etc/helperd/policy.toml) does not allow keeping credentials \
             for URLs outside every runtime (store_plain_credentials = false): add a runtime \
             for this URL with `helperctl runtime add`"
        );
    }

    #[test]
    fn violations_flag_tokens_set_before_the_policy() {
        let policy = parse("max_days = 90\n").unwrap();
        let set = NOW - 100 * DAY;
        let tokens = [
            token("ok", Some("ci"), NOW - 10 * DAY, Some(NOW + 80 * DAY)),
            token("long", Some("laptop"), set, Some(set + 365 * DAY)),
            token("forever", None, set, None),
            token("expired", None, 0, Some(NOW)),
        ];
        let found = policy.violations(&tokens, NOW, src());
        let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["long", "forever"]);
        assert_eq!(found[0].1.rule, "max_days");
        assert_eq!(
            found[0].1.to_string(),
            "token \"laptop\" was set on 2026-08-14 and expires on 2027-08-14, but the system \
             policy (/etc/helperd/policy.toml) allows tokens that expire at most 90 days after \
             they are set: it keeps working until then; replace it with a token that expires by \
             2027-02-20 (helperctl token set acme --expires DATE)"
        );
        assert_eq!(
            found[1].1.to_string(),
            "token forever has no expiry, but the system policy (/etc/helperd/policy.toml) \
             allows tokens that expire at most 90 days after they are set: it keeps working \
             until it is replaced; replace it with a token that expires by 2027-02-20 \
             (helperctl token set acme --expires DATE)"
        );

        // GitHub App keys (local or team) have no expiry and are exempt, as when set.
        let mut app_keys = [
            token("app", None, set, None),
            token("team-app", None, set, None),
        ];
        app_keys[0].kind = Some(crate::token::APP_KEY_KIND.into());
        app_keys[1].kind = Some(crate::token::TEAM_APP_KEY_KIND.into());
        assert!(policy.violations(&app_keys, NOW, src()).is_empty());

        let policy = parse("require_expiry = true\n").unwrap();
        let found = policy.violations(&tokens, NOW, src());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "forever");
        assert_eq!(found[0].1.rule, "require_expiry");
        assert_eq!(
            found[0].1.to_string(),
            "token forever has no expiry, which the system policy (/etc/helperd/policy.toml) no \
             longer allows: it keeps working until it is replaced; replace it with a token that \
             expires (helperctl token set acme --expires DATE)"
        );
    }

    #[test]
    fn oauth_apps_are_read_by_host_and_checked() {
        let policy = parse(
            "[[oauth_app]]\nhost = \"GitLab.Example.com\"\nclient_id = \"abc123\"\nscopes = [\"read_repository\", \"write_repository\"]\n\n[[oauth_app]]\nhost = \"codeberg.org\"\nclient_id = \"cb-1\"\n",
        )
        .unwrap();
        let app = policy.oauth_app("gitlab.example.com").expect("registered");
        assert_eq!(app.client_id, "abc123");
        assert_eq!(
            app.scopes.as_deref(),
            Some(
                &[
                    "read_repository".to_string(),
                    "write_repository".to_string()
                ][..]
            )
        );
        assert_eq!(policy.oauth_app("codeberg.org").unwrap().scopes, None);
        assert!(policy.oauth_app("github.com").is_none());
        assert!(policy
            .rules()
            .iter()
            .any(|(k, v)| *k == "oauth_app" && v.contains("abc123")));
        for (text, problem) in [
            ("[[oauth_app]]\nclient_id = \"x\"\n", "needs host"),
            ("[[oauth_app]]\nhost = \"h.example\"\n", "needs client_id"),
            ("[[oauth_app]]\nhost = \"https://h.example/\"\nclient_id = \"x\"\n", "not a URL"),
            ("[[oauth_app]]\nhost = \"h\"\nclient_id = \"x\"\nsecret = \"s\"\n", "unknown key \"secret\""),
            ("[[oauth_app]]\nhost = \"h\"\nclient_id = \"x\"\n[[oauth_app]]\nhost = \"H\"\nclient_id = \"y\"\n", "twice"),
            ("oauth_app = \"h\"\n", "[[oauth_app]] tables"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(problem), "{text:?}: {e}");
        }
    }
}
