//! Plain credentials: what git's own `store` hands to helperd for URLs that no runtime
//! owns, kept with the exact semantics of git's reference helpers (`credential-cache`,
//! `credential-store`; git's `credential_match`).
//!
//! - `get`: the first entry that matches protocol, host, path and username, where a field
//!   the request leaves out matches anything and an empty username is a username.
//! - `store`: replaces every entry matching the new one (password ignored), then adds it;
//!   `ephemeral=1` and partial credentials are not stored.
//! - `erase`: removes every matching entry, but not one whose password (or `credential`)
//!   differs from the one given; an empty pattern erases nothing (credential-store's guard).
//!
//! Pure: the caller passes the clock and persists the table through [`PlainTable::to_blob`].

use serde::{Deserialize, Serialize};

use crate::gitproto::{Answer, GitCredential, UnsafeValue};
use crate::secret::Secret;

/// One stored credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainEntry {
    /// As git sent it; `None` matches any protocol.
    pub protocol: Option<String>,
    /// Host as git sent it (with `:port`); `None` matches any host.
    pub host: Option<String>,
    /// Repository path, only with `credential.useHttpPath`; `None` matches any path.
    pub path: Option<String>,
    /// `None` matches any username; an empty one is a username (git's rule).
    pub username: Option<String>,
    /// The password git stored; secret.
    pub password: Option<Secret>,
    /// Unix seconds after which git stops using the password (passed back to git as is).
    pub password_expiry_utc: Option<u64>,
    /// An OAuth refresh token git stored alongside; secret.
    pub oauth_refresh_token: Option<Secret>,
    /// e.g. `Bearer`; answered only to a git that announced `capability[]=authtype`.
    pub authtype: Option<String>,
    /// The credential that goes with `authtype`; secret.
    pub credential: Option<Secret>,
    /// Unix seconds after which the entry is gone (`--timeout`); `None` keeps it.
    pub forget_at: Option<u64>,
}

/// What a `store` did, for the log and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Kept in the table.
    Stored,
    /// `ephemeral=1`: git asked us not to keep it.
    Ephemeral,
    /// Neither username+password nor a `credential`: nothing worth keeping.
    Partial,
}

/// The ordered list of plain credentials.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlainTable {
    entries: Vec<PlainEntry>,
}

/// git's `CHECK(x)`: a field the pattern leaves out matches anything.
fn field_matches(want: Option<&str>, have: Option<&str>) -> bool {
    match want {
        None => true,
        Some(w) => have == Some(w),
    }
}

fn secret_str(s: &Option<Secret>) -> Option<&str> {
    s.as_ref().map(Secret::expose)
}

/// git's `credential_match(want, have, match_password)`.
fn credential_match(want: &GitCredential, have: &PlainEntry, match_password: bool) -> bool {
    field_matches(want.protocol.as_deref(), have.protocol.as_deref())
        && field_matches(want.host.as_deref(), have.host.as_deref())
        && field_matches(want.path.as_deref(), have.path.as_deref())
        && field_matches(want.username.as_deref(), have.username.as_deref())
        && (!match_password
            || (field_matches(secret_str(&want.password), secret_str(&have.password))
                && field_matches(secret_str(&want.credential), secret_str(&have.credential))))
}

impl PlainEntry {
    fn from_request(c: &GitCredential, forget_at: Option<u64>) -> PlainEntry {
        PlainEntry {
            protocol: c.protocol.clone(),
            host: c.host.clone(),
            path: c.path.clone(),
            username: c.username.clone(),
            password: c.password.clone(),
            password_expiry_utc: c.password_expiry_utc,
            oauth_refresh_token: c.oauth_refresh_token.clone(),
            authtype: c.authtype.clone(),
            credential: c.credential.clone(),
            forget_at,
        }
    }

    fn is_alive(&self, now: u64) -> bool {
        self.forget_at.is_none_or(|t| now < t)
    }

    /// Whether this entry has something the requester can use: a password, or an
    /// authtype credential for a requester that announced the capability.
    fn usable_by(&self, request: &GitCredential) -> bool {
        self.password.is_some() || (request.capability_authtype && self.credential.is_some())
    }

    /// git's answer for this entry, in `credential-cache`'s order.
    pub fn answer(&self, request: &GitCredential) -> Result<Secret, UnsafeValue> {
        let mut a = Answer::new();
        let with_authtype =
            request.capability_authtype && (self.authtype.is_some() || self.credential.is_some());
        if with_authtype {
            // git takes authtype/credential only from a helper that announces it.
            a.push("capability[]", "authtype")?;
        }
        if let Some(u) = &self.username {
            a.push("username", u)?;
        }
        if let Some(p) = &self.password {
            a.push("password", p.expose())?;
        }
        if with_authtype {
            if let Some(t) = &self.authtype {
                a.push("authtype", t)?;
            }
            if let Some(c) = &self.credential {
                a.push("credential", c.expose())?;
            }
        }
        if let Some(t) = self.password_expiry_utc {
            a.push("password_expiry_utc", &t.to_string())?;
        }
        if let Some(r) = &self.oauth_refresh_token {
            a.push("oauth_refresh_token", r.expose())?;
        }
        Ok(a.finish())
    }
}

impl PlainTable {
    /// How many entries have not passed their `forget_at` at `now` (Unix seconds).
    pub fn len_alive(&self, now: u64) -> usize {
        self.entries.iter().filter(|e| e.is_alive(now)).count()
    }

    /// The entry that answers `request`, if any.
    pub fn get(&self, request: &GitCredential, now: u64) -> Option<&PlainEntry> {
        self.entries.iter().find(|e| {
            e.is_alive(now) && credential_match(request, e, false) && e.usable_by(request)
        })
    }

    /// Stores `c` (git's `store`), with an optional lifetime in seconds.
    pub fn store(&mut self, c: &GitCredential, lifetime: Option<u64>, now: u64) -> StoreOutcome {
        let complete = (c.username.is_some() && c.password.is_some()) || c.credential.is_some();
        if !complete {
            return StoreOutcome::Partial;
        }
        if c.ephemeral {
            return StoreOutcome::Ephemeral;
        }
        self.entries
            .retain(|e| e.is_alive(now) && !credential_match(c, e, false));
        let forget_at = lifetime.map(|secs| now.saturating_add(secs));
        self.entries.push(PlainEntry::from_request(c, forget_at));
        StoreOutcome::Stored
    }

    /// Erases what `c` matches (git's `erase`); returns how many entries went.
    pub fn erase(&mut self, c: &GitCredential, now: u64) -> usize {
        if c.protocol.is_none() && c.host.is_none() && c.path.is_none() && c.username.is_none() {
            return 0;
        }
        // Entries that merely timed out go too, but are not counted as erased.
        self.prune(now);
        let before = self.entries.len();
        self.entries.retain(|e| !credential_match(c, e, true));
        before - self.entries.len()
    }

    /// Drops entries whose `--timeout` lifetime is over; returns whether any went.
    pub fn prune(&mut self, now: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.is_alive(now));
        before != self.entries.len()
    }

    /// The table serialized for the secret store (it holds passwords: a [`Secret`]).
    pub fn to_blob(&self) -> Secret {
        let rows: Vec<BlobRow<'_>> = self.entries.iter().map(BlobRow::from_entry).collect();
        let blob = BlobRef {
            version: 1,
            entries: rows,
        };
        Secret::new(serde_json::to_string(&blob).expect("plain strings and numbers serialize"))
    }

    /// Reads a table written by [`to_blob`](Self::to_blob).
    pub fn from_blob(blob: &Secret) -> Result<PlainTable, BlobError> {
        let parsed: BlobOwned = serde_json::from_str(blob.expose()).map_err(|e| {
            BlobError(format!(
                "{} at line {}, column {}",
                e.classify_name(),
                e.line(),
                e.column()
            ))
        })?;
        if parsed.version != 1 {
            return Err(BlobError(format!(
                "unknown format version {}",
                parsed.version
            )));
        }
        Ok(PlainTable {
            entries: parsed
                .entries
                .into_iter()
                .map(OwnedRow::into_entry)
                .collect(),
        })
    }
}

/// A stored table that cannot be decoded. Carries no content of the blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored plain credentials cannot be decoded ({0})")]
pub struct BlobError(String);

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    // serde_json's Display may quote input; only the category is safe to show.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "truncated data",
        }
    }
}

// The blob's on-disk shape. Borrowing rows on the way out keeps `Secret` non-Serialize.
#[derive(Serialize)]
struct BlobRef<'a> {
    version: u32,
    entries: Vec<BlobRow<'a>>,
}

#[derive(Serialize)]
struct BlobRow<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_expiry_utc: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oauth_refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authtype: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forget_at: Option<u64>,
}

impl<'a> BlobRow<'a> {
    fn from_entry(e: &'a PlainEntry) -> Self {
        BlobRow {
            protocol: e.protocol.as_deref(),
            host: e.host.as_deref(),
            path: e.path.as_deref(),
            username: e.username.as_deref(),
            password: secret_str(&e.password),
            password_expiry_utc: e.password_expiry_utc,
            oauth_refresh_token: secret_str(&e.oauth_refresh_token),
            authtype: e.authtype.as_deref(),
            credential: secret_str(&e.credential),
            forget_at: e.forget_at,
        }
    }
}

#[derive(Deserialize)]
struct BlobOwned {
    version: u32,
    entries: Vec<OwnedRow>,
}

#[derive(Deserialize)]
struct OwnedRow {
    protocol: Option<String>,
    host: Option<String>,
    path: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_expiry_utc: Option<u64>,
    oauth_refresh_token: Option<String>,
    authtype: Option<String>,
    credential: Option<String>,
    forget_at: Option<u64>,
}

impl OwnedRow {
    fn into_entry(self) -> PlainEntry {
        PlainEntry {
            protocol: self.protocol,
            host: self.host,
            path: self.path,
            username: self.username,
            password: self.password.map(Secret::new),
            password_expiry_utc: self.password_expiry_utc,
            oauth_refresh_token: self.oauth_refresh_token.map(Secret::new),
            authtype: self.authtype,
            credential: self.credential.map(Secret::new),
            forget_at: self.forget_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(text: &str) -> GitCredential {
        GitCredential::parse(text).unwrap()
    }

    fn answer(t: &PlainTable, req: &str, now: u64) -> Option<String> {
        let r = cred(req);
        t.get(&r, now)
            .map(|e| e.answer(&r).unwrap().expose().to_string())
    }

    const ALICE: &str = "protocol=https\nhost=h\nusername=alice\npassword=pw1\n";

    #[test]
    fn store_then_get_matches_protocol_host_username() {
        let mut t = PlainTable::default();
        assert_eq!(t.store(&cred(ALICE), None, 0), StoreOutcome::Stored);
        assert_eq!(
            answer(&t, "protocol=https\nhost=h\n", 0).as_deref(),
            Some("username=alice\npassword=pw1\n")
        );
        assert_eq!(answer(&t, "protocol=http\nhost=h\n", 0), None);
        assert_eq!(answer(&t, "protocol=https\nhost=other\n", 0), None);
        assert_eq!(
            answer(&t, "protocol=https\nhost=h\nusername=bob\n", 0),
            None
        );
        assert!(answer(&t, "protocol=https\nhost=h\nusername=alice\n", 0).is_some());
    }

    #[test]
    fn path_matches_only_when_sent() {
        let mut t = PlainTable::default();
        t.store(
            &cred("protocol=https\nhost=h\npath=a.git\nusername=u\npassword=p\n"),
            None,
            0,
        );
        assert!(answer(&t, "protocol=https\nhost=h\npath=a.git\n", 0).is_some());
        assert!(answer(&t, "protocol=https\nhost=h\npath=b.git\n", 0).is_none());
        assert!(answer(&t, "protocol=https\nhost=h\n", 0).is_some());
    }

    #[test]
    fn store_overwrites_and_empty_username_is_distinct() {
        let mut t = PlainTable::default();
        t.store(&cred(ALICE), None, 0);
        t.store(
            &cred("protocol=https\nhost=h\nusername=alice\npassword=pw2\n"),
            None,
            0,
        );
        assert_eq!(t.len_alive(0), 1);
        assert!(answer(&t, "protocol=https\nhost=h\n", 0)
            .unwrap()
            .contains("pw2"));

        t.store(
            &cred("protocol=https\nhost=h\nusername=\npassword=anon\n"),
            None,
            0,
        );
        assert_eq!(t.len_alive(0), 2);
        let a = answer(&t, "protocol=https\nhost=h\nusername=\n", 0).unwrap();
        assert_eq!(a, "username=\npassword=anon\n");
    }

    #[test]
    fn erase_needs_the_same_password_when_given() {
        let mut t = PlainTable::default();
        t.store(&cred(ALICE), None, 0);
        assert_eq!(
            t.erase(
                &cred("protocol=https\nhost=h\nusername=alice\npassword=wrong\n"),
                0
            ),
            0
        );
        assert_eq!(t.len_alive(0), 1);
        assert_eq!(
            t.erase(
                &cred("protocol=https\nhost=h\nusername=alice\npassword=pw1\n"),
                0
            ),
            1
        );
        assert_eq!(t.len_alive(0), 0);
    }

    #[test]
    fn erase_removes_every_match_but_never_everything_on_an_empty_pattern() {
        let mut t = PlainTable::default();
        t.store(&cred(ALICE), None, 0);
        t.store(
            &cred("protocol=https\nhost=h\nusername=bob\npassword=pw\n"),
            None,
            0,
        );
        t.store(
            &cred("protocol=https\nhost=k\nusername=bob\npassword=pw\n"),
            None,
            0,
        );
        assert_eq!(t.erase(&cred("wwwauth[]=Basic\n"), 0), 0);
        assert_eq!(t.erase(&cred("protocol=https\nhost=h\n"), 0), 2);
        assert_eq!(t.len_alive(0), 1);
    }

    #[test]
    fn ephemeral_and_partial_are_not_stored() {
        let mut t = PlainTable::default();
        let eph = format!("{ALICE}ephemeral=1\n");
        assert_eq!(t.store(&cred(&eph), None, 0), StoreOutcome::Ephemeral);
        assert_eq!(
            t.store(&cred("protocol=https\nhost=h\nusername=u\n"), None, 0),
            StoreOutcome::Partial
        );
        assert_eq!(t.len_alive(0), 0);
    }

    #[test]
    fn expiry_and_refresh_token_round_trip() {
        let mut t = PlainTable::default();
        let c = format!("{ALICE}password_expiry_utc=4000000000\noauth_refresh_token=rt\n");
        t.store(&cred(&c), None, 0);
        let a = answer(&t, "protocol=https\nhost=h\n", 0).unwrap();
        assert_eq!(
            a,
            "username=alice\npassword=pw1\npassword_expiry_utc=4000000000\noauth_refresh_token=rt\n"
        );
    }

    #[test]
    fn authtype_only_for_requests_with_the_capability() {
        let mut t = PlainTable::default();
        t.store(
            &cred(
                "capability[]=authtype\nprotocol=https\nhost=h\nauthtype=Bearer\ncredential=tok\n",
            ),
            None,
            0,
        );
        assert_eq!(answer(&t, "protocol=https\nhost=h\n", 0), None);
        assert_eq!(
            answer(&t, "capability[]=authtype\nprotocol=https\nhost=h\n", 0).as_deref(),
            Some("capability[]=authtype\nauthtype=Bearer\ncredential=tok\n")
        );
    }

    #[test]
    fn timeout_lifetime_hides_and_prunes() {
        let mut t = PlainTable::default();
        t.store(&cred(ALICE), Some(10), 100);
        assert!(answer(&t, "protocol=https\nhost=h\n", 109).is_some());
        assert!(answer(&t, "protocol=https\nhost=h\n", 110).is_none());
        assert!(t.prune(110));
        assert_eq!(t.len_alive(0), 0);
    }

    #[test]
    fn blob_round_trip_and_corrupt_blob_error_hides_content() {
        let mut t = PlainTable::default();
        t.store(
            &cred(&format!("{ALICE}oauth_refresh_token=rt\n")),
            Some(5),
            1,
        );
        let back = PlainTable::from_blob(&t.to_blob()).unwrap();
        assert_eq!(back, t);
        let err = PlainTable::from_blob(&Secret::new(
            "{\"version\":1,\"entries\":[{\"password\":42}]}",
        ))
        .unwrap_err();
        assert!(!err.to_string().contains("42"), "{err}");
    }
}
