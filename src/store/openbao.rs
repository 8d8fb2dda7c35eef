//! OpenBao as the store of record for the user's own secrets (`HELPERD_STORE=openbao`,
//! DESIGN.md §10): plain credentials git stores and the tokens set with `helperctl token
//! set` live in the team's OpenBao, under `[openbao] user_path` with `{user}` replaced by
//! the login name, and nowhere on this machine.
//!
//! # Layout: one KV v2 entry per key
//!
//! Each store key (`plain-credentials`, `token/<id>`, `token/<id>/refresh`) is its own
//! entry `<mount>/data/<user_path>/<key>` with a single field, `value`. Not one entry
//! holding a map, because:
//!
//! - a write is one request that replaces one secret; a map would need a read, a change
//!   and a write back (with check-and-set against a second machine of the same user), and
//!   a failure in between could lose secrets that were not even being changed;
//! - deleting a token removes its entry with every version (`metadata` delete), so a
//!   revoked secret does not linger in the history of an entry that lives on;
//! - admins see, revoke and audit single tokens by path, and a policy may grant them
//!   `token/*` without `plain-credentials` (or nothing under `user_path` at all: admins
//!   then revoke and replace tokens at the host, and cannot read a user's own tokens).
//!
//! Each entry keeps only its newest version (`max_versions = 1`, set before each write),
//! so an erased plain credential or a replaced token is not kept in the KV history.
//!
//! Concurrency: the daemon's single writer task serialises every write and delete, so
//! two writes to one entry never race within a daemon. Two daemons of the same user on two
//! machines with the same `user_path` share the tokens (ids are random, entries apart)
//! but each writes the whole plain-credential table: the last write wins there.
//!
//! # Sync over async
//!
//! [`SecretStore`] is synchronous (the daemon calls it on `spawn_blocking`) and
//! [`BaoClient`] is async. The store captures the tokio runtime it is opened on (the
//! daemon opens stores on its blocking pool, where `Handle::current()` answers) and runs
//! each call with `Handle::block_on` on the calling blocking thread: the HTTP connections
//! then live on the daemon's runtime, whose workers drive them, and no second runtime is
//! started. Opened outside any runtime (unit tests, a command without one), the store
//! starts a small runtime of its own (one worker) and uses it the same way. A call from
//! an async worker thread would panic in `block_on`: callers must be on a blocking thread.
//!
//! # Strength
//!
//! For the policy's `min_store` this store counts as a keyring
//! ([`StoreStrength::Keyring`](crate::policy::StoreStrength::Keyring)): nothing is kept on
//! the machine, and reading needs an OpenBao login whose policy grants `user_path`, which
//! is at least what an OS keyring's session unlock gives. There is no stronger level.

use std::future::Future;

use serde_json::{Map, Value};

use super::{SecretStore, StoreError, StoreKind};
use crate::config::openbao::OpenBaoSettings;
use crate::openbao::{BaoClient, BaoError};
use crate::secret::Secret;

/// The field of each entry that holds the secret.
pub const VALUE_FIELD: &str = "value";

/// How the async calls are run from the store's synchronous methods.
enum Exec {
    /// The runtime the store was opened on (the daemon's).
    Shared(tokio::runtime::Handle),
    /// A runtime of the store's own, when it was opened outside any runtime. An `Option`
    /// only so that `Drop` can take it out and shut it down without blocking.
    Own(Option<tokio::runtime::Runtime>),
}

/// The user's secrets in OpenBao, one KV v2 entry per key.
pub struct OpenBaoStore {
    client: BaoClient,
    /// `user_path` with `{user}` replaced: the folder of this user's entries.
    base: String,
    exec: Exec,
}

impl std::fmt::Debug for OpenBaoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBaoStore")
            .field("mount", &self.client.settings().mount)
            .field("base", &self.base)
            .field("addresses", &self.client.addresses())
            .finish()
    }
}

impl Drop for OpenBaoStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which panics on an async thread.
        if let Exec::Own(rt) = &mut self.exec {
            if let Some(rt) = rt.take() {
                rt.shutdown_background();
            }
        }
    }
}

impl OpenBaoStore {
    /// Connects to OpenBao with `settings` for `user` (the login name) and checks that the
    /// user's folder can be read.
    pub fn open(settings: &OpenBaoSettings, user: &str) -> Result<OpenBaoStore, StoreError> {
        let base = user_folder(settings, user)?;
        let client =
            BaoClient::new(settings).map_err(|e| unavailable(e, &settings.mount, &base))?;
        let exec = match tokio::runtime::Handle::try_current() {
            Ok(handle) => Exec::Shared(handle),
            Err(_) => Exec::Own(Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("helperd-openbao")
                    .enable_all()
                    .build()
                    .map_err(|e| StoreError::Unavailable {
                        store: StoreKind::OpenBao,
                        detail: format!("cannot start a runtime for the OpenBao client: {e}"),
                        hint: "see the daemon log".into(),
                    })?,
            )),
        };
        let store = OpenBaoStore { client, base, exec };
        // Reachable, logged in, and allowed to read here: find out now, with a key that is
        // never written.
        store.get("probe")?;
        Ok(store)
    }

    /// Where the entries live: `<mount>/<user_path>`, for `status` (no secret in it).
    pub fn location(&self) -> String {
        format!("{}/{}", self.client.settings().mount, self.base)
    }

    fn run<T>(&self, work: impl Future<Output = T>) -> T {
        match &self.exec {
            Exec::Shared(handle) => handle.block_on(work),
            Exec::Own(rt) => rt
                .as_ref()
                .expect("the runtime is taken out only in drop")
                .block_on(work),
        }
    }

    fn path(&self, key: &str) -> Result<String, StoreError> {
        entry_path(&self.base, key).ok_or_else(|| StoreError::NotSupported {
            store: StoreKind::OpenBao,
            what: format!("the key {key:?} is not a KV path"),
        })
    }

    fn failed(&self, e: BaoError) -> StoreError {
        unavailable(e, &self.client.settings().mount, &self.base)
    }
}

impl SecretStore for OpenBaoStore {
    fn kind(&self) -> StoreKind {
        StoreKind::OpenBao
    }

    fn protection(&self) -> String {
        format!(
            "in OpenBao (KV v2) at {}, nothing on this machine",
            self.client.addresses().join(", ")
        )
    }

    fn location(&self) -> Option<String> {
        Some(OpenBaoStore::location(self))
    }

    fn get(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        let path = self.path(key)?;
        let entry = self
            .run(self.client.read(&path, now()))
            .map_err(|e| self.failed(e))?;
        let Some(mut entry) = entry else {
            return Ok(None);
        };
        match entry.data.remove(VALUE_FIELD) {
            Some(Value::String(value)) => Ok(Some(Secret::new(value))),
            _ => Err(StoreError::Corrupt {
                store: StoreKind::OpenBao,
                path: format!("{}/{path}", self.client.settings().mount),
                detail: format!("the entry has no text field {VALUE_FIELD:?}"),
            }),
        }
    }

    fn set(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let now = now();
        // Only the newest version is kept; a policy that does not allow it costs the
        // history, not the write.
        if let Err(e) = self.run(self.client.keep_versions(&path, 1, now)) {
            if e.is_unreachable() {
                return Err(self.failed(e));
            }
            tracing::warn!(error = %e, "OpenBao: could not limit the entry to one version; older versions stay in its history");
        }
        let mut data = Map::new();
        data.insert(
            VALUE_FIELD.into(),
            Value::String(value.expose().to_string()),
        );
        let written = self.run(self.client.write(&path, &data, now));
        if let Some(Value::String(s)) = data.get_mut(VALUE_FIELD) {
            zeroize::Zeroize::zeroize(s);
        }
        written.map(|_| ()).map_err(|e| self.failed(e))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match self.run(self.client.delete(&path, now())) {
            Ok(()) | Err(BaoError::Refused { code: 404, .. }) => Ok(()),
            Err(e) => Err(self.failed(e)),
        }
    }
}

/// OpenBao's clock is the real one: a login's lease runs on it, not on the daemon's
/// test clock.
fn now() -> u64 {
    crate::timefmt::unix_now()
}

/// `user_path` for `user`, refusing a login name that would leave the user's folder.
pub fn user_folder(settings: &OpenBaoSettings, user: &str) -> Result<String, StoreError> {
    if user.is_empty() || user == "." || user == ".." || user.contains(['/', '\\']) {
        return Err(StoreError::NotConfigured {
            store: StoreKind::OpenBao,
            detail: format!("the login name {user:?} cannot name a folder in user_path"),
        });
    }
    Ok(settings.user_path_for(user))
}

/// The entry holding `key` below `base`; `None` for a key that is not a plain KV path.
pub fn entry_path(base: &str, key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.chars().any(char::is_control));
    ok.then(|| format!("{base}/{key}"))
}

/// The name of the user this process runs as, for `{user}` in `user_path`.
pub fn login_name() -> Result<String, StoreError> {
    let name = login_name_of_os();
    name.filter(|n| !n.is_empty())
        .ok_or_else(|| StoreError::NotConfigured {
            store: StoreKind::OpenBao,
            detail: "the login name of this user cannot be found (needed for {user} in user_path)"
                .into(),
        })
}

fn login_name_of_os() -> Option<String> {
    crate::os::login_name()
}

/// An OpenBao failure as a store error: OpenBao's words (the addresses tried, or what it
/// refused) on one line, and the way out; `base` is the user's folder below `mount`.
/// Never a fall-back to another store.
fn unavailable(e: BaoError, mount: &str, base: &str) -> StoreError {
    let hint = match &e {
        BaoError::Unreachable { .. } => "Start OpenBao or fix addresses in [openbao] of \
            config.toml; the secrets stay in OpenBao and nothing is stored elsewhere meanwhile"
            .to_string(),
        BaoError::Refused { code: 403, .. } => format!(
            "The OpenBao policy of this login must grant read, create, update and delete on \
             {mount}/data/{base}/* and {mount}/metadata/{base}/*"
        ),
        BaoError::Login { .. } | BaoError::Setup(_) => {
            "Fix [openbao] in config.toml or the login's credentials".into()
        }
        BaoError::Refused { .. } => "See the OpenBao server's log".into(),
    };
    StoreError::Unavailable {
        store: StoreKind::OpenBao,
        // OpenBao's own texts span lines ("1 error occurred:\n\t* ..."); git shows one.
        detail: e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::openbao::{BaoAuth, DEFAULT_USER_PATH};

    fn settings(addresses: &[&str]) -> OpenBaoSettings {
        OpenBaoSettings {
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            mount: "secret".into(),
            team_path: None,
            user_path: DEFAULT_USER_PATH.into(),
            refresh_secs: 30,
            cache_secs: 600,
            auth: BaoAuth::Token { token_file: None },
        }
    }

    #[test]
    fn each_key_is_an_entry_below_the_users_folder() {
        let base = user_folder(&settings(&[]), "alice").unwrap();
        assert_eq!(base, "helperd/users/alice");
        for (key, path) in [
            ("plain-credentials", "helperd/users/alice/plain-credentials"),
            ("token/abc", "helperd/users/alice/token/abc"),
            ("token/abc/refresh", "helperd/users/alice/token/abc/refresh"),
        ] {
            assert_eq!(entry_path(&base, key).as_deref(), Some(path));
        }
        for bad in ["", "/x", "x/", "a//b", "..", "a/../b", "./a", "a\nb"] {
            assert_eq!(entry_path(&base, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_login_name_that_would_leave_the_folder_is_refused() {
        for bad in ["", ".", "..", "a/b", "a\\b"] {
            let e = user_folder(&settings(&[]), bad).unwrap_err();
            assert!(e.to_string().contains("login name"), "{e}");
        }
    }

    #[test]
    fn an_unreachable_openbao_is_an_error_naming_it_and_the_addresses_tried() {
        // A port nobody listens on: the connection is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let address = format!("http://127.0.0.1:{port}");
        let mut s = settings(&[&address]);
        // A token file that exists, so that the login reaches the network.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s.test\n").unwrap();
        s.auth = BaoAuth::Token {
            token_file: Some(file),
        };
        // Outside any runtime: the store makes its own (and drops it without a panic).
        let e = OpenBaoStore::open(&s, "alice").unwrap_err();
        let text = e.to_string();
        assert!(matches!(
            e,
            StoreError::Unavailable {
                store: StoreKind::OpenBao,
                ..
            }
        ));
        assert!(text.contains("OpenBao is unreachable"), "{text}");
        assert!(text.contains(&address), "{text}");
        assert!(text.contains("nothing is stored elsewhere"), "{text}");
        assert!(!text.contains("s.test"), "{text}");
    }

    #[test]
    fn a_403_names_the_paths_the_policy_must_grant() {
        let e = unavailable(
            BaoError::Refused {
                address: "http://b:8200".into(),
                what: "reading secret/helperd/users/alice/probe".into(),
                code: 403,
                message: "1 error occurred:\n\t* permission denied\n\n".into(),
            },
            "secret",
            "helperd/users/alice",
        );
        let text = e.to_string();
        assert!(
            text.contains(
                "secret/data/helperd/users/alice/* and secret/metadata/helperd/users/alice/*"
            ),
            "{text}"
        );
        assert!(text.contains("HTTP 403"), "{text}");
        assert!(!text.contains('\n'), "one line for git: {text}");
    }
}
