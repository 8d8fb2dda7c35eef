//! Token metadata and the rules around it (DESIGN.md §6, §8). Pure: no I/O, no secrets.
//!
//! A token is stored once (its secret under `token/<id>` in the store of record) and
//! authorised explicitly for one or more runtimes (`helperctl token link`). Its expiry is
//! fixed at creation: a new expiry means a new token, so the record of the old one stays
//! honest about what was used when.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What helperd knows about one token. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenMeta {
    /// Random, stable id; the store key is `token/<id>`.
    pub id: String,
    /// The name the user gave it (e.g. the name on the host's token page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the token may do at the host: reported by the provider, else as the user gave them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds; `None`: the token does not expire (or nobody knows when).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// When git was last served it (Unix seconds); for the stale-token note in `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<u64>,
    /// The host refused it (git erased it after a 401): not served again until renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_at: Option<u64>,
    /// The runtimes this token is authorised for, in the order they were added.
    pub runtimes: Vec<String>,
    /// Per runtime, the hosts (`scheme://host`) it pointed at when it was given this token.
    /// A runtime later re-pointed at other hosts does not take the token along.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, Vec<String>>,
    /// Per runtime, the day (Unix days) the expiry warning was last shown: at most once a
    /// day, also across daemon restarts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub warned_on: BTreeMap<String, u64>,
    /// When the provider was last asked about it (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<u64>,
    /// What the provider says it is ("classic PAT", ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The account the provider says it acts as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// What the provider reported beyond the fields, and what `--force` overrode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Set for an OAuth token: the client id it was issued to. Its refresh token is a
    /// secret under [`refresh_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_id: Option<String>,
    /// When the refresh token itself expires (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<u64>,
    /// When a renewal replaced it (then it is kept in [`TokenBook::retired`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_at: Option<u64>,
    /// A GitHub App key: the installation found for the runtime's owner (recorded once,
    /// so that it is not looked up again); a configured `installation_id` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_installation: Option<u64>,
    /// A GitHub App key: the app's slug as GitHub reported it (its pages are `/apps/SLUG`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_slug: Option<String>,
    /// GitLab self-rotation (issue 18): set, and saved, just before the daemon asks the
    /// host to rotate this token (Unix seconds); no secret. While it is set, the daemon
    /// never asks to rotate this token again until it has proved the host did not rotate
    /// it (GitLab revokes the new token when the old one rotates twice, gitlab#524639):
    /// a daemon stopped mid-rotation finds it at its next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_started: Option<u64>,
}

/// The kind recorded for a GitHub App's private key, which a GitHub App runtime holds
/// where other runtimes hold a token (its installation tokens are minted, never stored).
pub const APP_KEY_KIND: &str = "GitHub App private key";

/// The kind `status` shows for a team entry's GitHub App key (read from OpenBao).
pub const TEAM_APP_KEY_KIND: &str = "team GitHub App private key (OpenBao)";

/// Whether `kind` is a GitHub App key's, local or team: it has no expiry of its own (the
/// tokens minted with it last an hour), so the policy's expiry rules do not apply to it.
pub fn is_app_key_kind(kind: Option<&str>) -> bool {
    matches!(kind, Some(APP_KEY_KIND | TEAM_APP_KEY_KIND))
}

/// The store key of a token's secret.
pub fn secret_key(id: &str) -> String {
    format!("token/{id}")
}

/// The store key of an OAuth token's refresh token.
pub fn refresh_key(id: &str) -> String {
    format!("token/{id}/refresh")
}

impl TokenMeta {
    /// A new token's record with nothing known about it yet.
    pub fn new(name: Option<String>, created: u64, expires: Option<u64>) -> TokenMeta {
        TokenMeta {
            id: new_token_id(),
            name,
            scopes: Vec::new(),
            created,
            // Whoever said it (a host, git), an expiry past the year 9999 is no date.
            expires: expires.map(|t| t.min(crate::timefmt::MAX_EXPIRY)),
            last_used: None,
            rejected_at: None,
            runtimes: Vec::new(),
            hosts: BTreeMap::new(),
            warned_on: BTreeMap::new(),
            checked_at: None,
            kind: None,
            login: None,
            notes: Vec::new(),
            oauth_client_id: None,
            refresh_expires_at: None,
            replaced_at: None,
            app_installation: None,
            app_slug: None,
            rotation_started: None,
        }
    }
}

/// A token's condition at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Not expired, not rejected, and outside the warning window (or no expiry).
    Valid,
    /// Inside the warning window.
    Expiring,
    /// now >= expiry.
    Expired,
    /// The host refused it (`rejected_at` is set); wins over every other state.
    Rejected,
}

impl TokenState {
    /// The lower-case name `status` and the wire use (`valid`, `expiring`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TokenState::Valid => "valid",
            TokenState::Expiring => "expiring",
            TokenState::Expired => "expired",
            TokenState::Rejected => "rejected",
        }
    }

    /// Whether the token may be handed to git.
    pub fn servable(self) -> bool {
        matches!(self, TokenState::Valid | TokenState::Expiring)
    }
}

impl TokenMeta {
    /// The token's state at `now` (Unix seconds), with a warning window of `warn_days` days.
    /// An OAuth token the daemon refreshes is judged by its refresh token's expiry instead.
    pub fn state(&self, now: u64, warn_days: u32) -> TokenState {
        if self.rejected_at.is_some() {
            return TokenState::Rejected;
        }
        match self.expires {
            Some(t) if now >= t => TokenState::Expired,
            // An OAuth token with a refresh token is renewed by the daemon by itself: its
            // short life is no reason to warn (its refresh token's expiry is).
            Some(_) if self.oauth_client_id.is_some() => match self.refresh_expires_at {
                Some(r) if r.saturating_sub(now) <= u64::from(warn_days) * 86_400 => {
                    TokenState::Expiring
                }
                _ => TokenState::Valid,
            },
            Some(t) if t - now <= u64::from(warn_days) * 86_400 => TokenState::Expiring,
            _ => TokenState::Valid,
        }
    }
}

/// Why a token operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// `token link --from` names a runtime that has no token to share.
    #[error("runtime {0:?} has no token; set one with `helperctl token set {0}`")]
    NoToken(String),
    /// `token link` to a runtime that already uses that very token.
    #[error("runtime {0:?} already uses that token")]
    AlreadyLinked(String),
}

/// How many replaced tokens the book remembers.
const RETIRED_KEPT: usize = 50;

/// Every token's metadata: the daemon's `tokens.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBook {
    /// The tokens in use, each authorised for one or more runtimes.
    pub tokens: Vec<TokenMeta>,
    /// Tokens replaced by a renewal, newest last, with the runtimes they served then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<TokenMeta>,
}

impl TokenBook {
    /// The token authorised for `runtime`.
    pub fn for_runtime(&self, runtime: &str) -> Option<&TokenMeta> {
        self.tokens
            .iter()
            .find(|t| t.runtimes.iter().any(|r| r == runtime))
    }

    /// Like [`TokenBook::for_runtime`], for changing the token in place.
    pub fn for_runtime_mut(&mut self, runtime: &str) -> Option<&mut TokenMeta> {
        self.tokens
            .iter_mut()
            .find(|t| t.runtimes.iter().any(|r| r == runtime))
    }

    /// Takes `runtime` off whatever token it used. Returns the id of a token that no
    /// runtime uses any more: its secret must be deleted from the store.
    pub fn unlink(&mut self, runtime: &str) -> Option<String> {
        let token = self.for_runtime_mut(runtime)?;
        token.runtimes.retain(|r| r != runtime);
        token.hosts.remove(runtime);
        if !token.runtimes.is_empty() {
            return None;
        }
        let id = token.id.clone();
        self.tokens.retain(|t| t.id != id);
        Some(id)
    }

    /// Authorises a new token for `runtime`, replacing the one it had; a replaced token
    /// nothing else uses is retired with `replaced_at = now`. Returns its id: its secret
    /// must be deleted from the store.
    pub fn add(
        &mut self,
        mut token: TokenMeta,
        runtime: &str,
        hosts: &[String],
        now: u64,
    ) -> Option<String> {
        let old = self.for_runtime(runtime).cloned();
        let orphan = self.unlink(runtime);
        if let (Some(mut old), Some(_)) = (old, &orphan) {
            old.replaced_at = Some(now);
            self.retired.push(old);
            let excess = self.retired.len().saturating_sub(RETIRED_KEPT);
            self.retired.drain(..excess);
        }
        token.runtimes = vec![runtime.to_string()];
        token.hosts = BTreeMap::from([(runtime.to_string(), hosts.to_vec())]);
        self.tokens.push(token);
        orphan
    }

    /// Authorises `from`'s token for `runtime` too. Returns the id of the token `runtime`
    /// used before, when nothing else uses it.
    pub fn link(
        &mut self,
        runtime: &str,
        hosts: &[String],
        from: &str,
    ) -> Result<Option<String>, BookError> {
        let id = self
            .for_runtime(from)
            .ok_or_else(|| BookError::NoToken(from.to_string()))?
            .id
            .clone();
        if self.for_runtime(runtime).is_some_and(|t| t.id == id) {
            return Err(BookError::AlreadyLinked(runtime.to_string()));
        }
        let orphan = self.unlink(runtime);
        let token = self
            .tokens
            .iter_mut()
            .find(|t| t.id == id)
            .expect("the token of `from` is still there: unlinking `runtime` cannot remove it");
        token.runtimes.push(runtime.to_string());
        token.hosts.insert(runtime.to_string(), hosts.to_vec());
        Ok(orphan)
    }

    /// Whether `runtime`'s token may go to a runtime now pointing at `current_hosts`: at
    /// least one host must be one it pointed at when it got the token (records written
    /// before hosts were kept pass).
    pub fn hosts_still_match(token: &TokenMeta, runtime: &str, current_hosts: &[String]) -> bool {
        match token.hosts.get(runtime) {
            None => true,
            Some(bound) => bound.iter().any(|h| current_hosts.contains(h)),
        }
    }

    /// The other runtimes sharing `runtime`'s token.
    pub fn shared_with(&self, runtime: &str) -> Vec<String> {
        self.for_runtime(runtime)
            .map(|t| {
                t.runtimes
                    .iter()
                    .filter(|r| *r != runtime)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A fresh random token id (hex, 16 bytes).
pub fn new_token_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, expires: Option<u64>) -> TokenMeta {
        TokenMeta {
            id: id.into(),
            ..TokenMeta::new(Some(format!("name-{id}")), 0, expires)
        }
    }

    #[test]
    fn state_follows_expiry_and_rejection() {
        let t = meta("a", Some(100 * 86_400));
        assert_eq!(t.state(0, 7), TokenState::Valid);
        assert_eq!(t.state(93 * 86_400, 7), TokenState::Expiring);
        assert_eq!(t.state(100 * 86_400, 7), TokenState::Expired);
        assert!(!TokenState::Expired.servable());
        let mut r = meta("b", None);
        assert_eq!(r.state(u64::MAX, 7), TokenState::Valid);
        r.rejected_at = Some(5);
        assert_eq!(r.state(0, 7), TokenState::Rejected);
    }

    #[test]
    fn link_shares_one_token_and_unlink_keeps_the_other() {
        let mut book = TokenBook::default();
        assert_eq!(book.add(meta("t1", None), "acme", &[], 0), None);
        assert_eq!(book.link("infra", &[], "acme"), Ok(None));
        assert_eq!(book.tokens.len(), 1, "stored once");
        assert_eq!(book.shared_with("acme"), vec!["infra".to_string()]);
        assert_eq!(
            book.link("infra", &[], "acme"),
            Err(BookError::AlreadyLinked("infra".into()))
        );

        assert_eq!(book.unlink("acme"), None, "infra still uses it");
        assert_eq!(book.for_runtime("infra").unwrap().id, "t1");
        assert!(book.for_runtime("acme").is_none());
        assert_eq!(book.unlink("infra"), Some("t1".into()));
        assert!(book.tokens.is_empty());
    }

    #[test]
    fn a_new_token_replaces_and_orphans_the_old_one() {
        let mut book = TokenBook::default();
        book.add(meta("old", Some(10)), "acme", &[], 0);
        assert_eq!(
            book.add(meta("new", Some(20)), "acme", &[], 15),
            Some("old".into())
        );
        assert_eq!(book.for_runtime("acme").unwrap().expires, Some(20));
        // The old record stays, saying when it was replaced; its expiry is untouched.
        assert_eq!(book.retired.len(), 1);
        assert_eq!(book.retired[0].replaced_at, Some(15));
        assert_eq!(book.retired[0].expires, Some(10));
        assert_eq!(
            book.link("x", &[], "nobody"),
            Err(BookError::NoToken("nobody".into()))
        );
    }

    #[test]
    fn a_runtime_re_pointed_at_other_hosts_loses_its_token() {
        let mut book = TokenBook::default();
        let work = vec!["https://work.example".to_string()];
        book.add(meta("t", None), "r", &work, 0);
        let t = book.for_runtime("r").unwrap().clone();
        assert!(TokenBook::hosts_still_match(&t, "r", &work));
        assert!(!TokenBook::hosts_still_match(
            &t,
            "r",
            &["https://elsewhere.example".into()]
        ));
    }

    #[test]
    fn ids_are_random_hex() {
        let (a, b) = (new_token_id(), new_token_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
