//! The daemon's state: the store of record (opened lazily, reopened after a failure) and
//! the plain-credential table loaded from it. One async mutex serialises every change, so
//! the in-memory table and the store never disagree for long: a failed write drops the
//! table, and the next request reads it back from the store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, MutexGuard};

use super::config_state::ConfigState;
use super::policy_state::PolicyState;
use super::tokens_file;
use crate::audit::{AuditEvent, AuditLog};
use crate::plain::PlainTable;
use crate::secret::Secret;
use crate::store::choice::{self, StoreChoice};
use crate::store::{SecretStore, StoreError, StoreKind};
use crate::token::{self, TokenBook};

/// The key under which the plain-credential table is kept in the store.
pub const PLAIN_KEY: &str = "plain-credentials";

/// Settings the daemon was started with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_file: PathBuf,
    pub state_dir: PathBuf,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    /// `HELPERD_STORE`.
    pub forced_store: Option<StoreKind>,
    /// Keyring namespace for a first choice of the OS keyring.
    pub keyring_service: String,
}

pub struct State {
    pub settings: Settings,
    /// The provider HTTP client, built on first use.
    pub providers: std::sync::OnceLock<crate::provider::ProviderClient>,
    pub started: Instant,
    inner: Mutex<Inner>,
}

pub struct Inner {
    store: Option<(Arc<dyn SecretStore>, StoreChoice)>,
    pub policy: PolicyState,
    /// OAuth device logins waiting for the user's approval.
    pub logins: super::providers::Logins,
    /// Per token id, no refresh is tried before this time (after a failed one).
    pub refresh_backoff: HashMap<String, u64>,
    /// Support access in force (`helperctl support enable`).
    pub support: Option<super::support::SupportGrant>,
    /// `None` when the audit log cannot be opened (reported in the log at each event).
    audit: Option<AuditLog>,
    table: Option<PlainTable>,
    pub config: ConfigState,
    /// Token metadata, or why `tokens.json` cannot be read (then nothing is written to it,
    /// so nothing is lost).
    tokens: Result<TokenBook, String>,
    /// Token secrets read from the store, so a `get` costs no keyring round trip.
    token_secrets: HashMap<String, Secret>,
    /// When `tokens.json` was last written; `last_used` is saved at most hourly.
    tokens_saved_at: u64,
}

/// The audit log rotates past this size, keeping this many older files.
const AUDIT_MAX_BYTES: u64 = 4 * 1024 * 1024;
const AUDIT_KEEP: usize = 5;

/// How often `last_used` alone is worth a write of `tokens.json`.
const LAST_USED_SAVE_INTERVAL: u64 = 3600;

pub use crate::timefmt::unix_now;

/// Runs blocking store work off the async threads (keyring calls block on D-Bus, argon2
/// burns CPU); a panic there becomes an error, never a dead daemon.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join| {
            Err(StoreError::Unavailable {
                store: StoreKind::File,
                detail: format!("the store task failed ({join})"),
                hint: "see the daemon log".into(),
            })
        })
}

impl State {
    pub fn new(settings: Settings) -> State {
        let config = ConfigState::load(&settings.config_file);
        let policy = PolicyState::load();
        let audit = crate::fsutil::create_private_dir(&settings.state_dir)
            .and_then(|()| AuditLog::open(&settings.state_dir, AUDIT_MAX_BYTES, AUDIT_KEEP))
            .map_err(|e| tracing::error!(error = %e, "cannot open the audit log"))
            .ok();
        let tokens = tokens_file::load(&settings.state_dir);
        if let Err(e) = &tokens {
            tracing::error!(error = %e, "token metadata unreadable; runtimes cannot be served");
        }
        State {
            inner: Mutex::new(Inner {
                store: None,
                policy,
                support: None,
                logins: Default::default(),
                refresh_backoff: HashMap::new(),
                audit,
                table: None,
                config,
                tokens,
                token_secrets: HashMap::new(),
                tokens_saved_at: 0,
            }),
            settings,
            providers: std::sync::OnceLock::new(),
            started: Instant::now(),
        }
    }

    pub async fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().await
    }

    /// The store of record, opening it on first use (and again after it failed).
    pub async fn store(&self, inner: &mut Inner) -> Result<Arc<dyn SecretStore>, StoreError> {
        if let Some((store, _)) = &inner.store {
            return Ok(store.clone());
        }
        let s = self.settings.clone();
        let (store, choice) = blocking(move || {
            choice::open_store(
                &s.state_dir,
                &s.data_dir,
                s.forced_store,
                &s.keyring_service,
            )
        })
        .await?;
        tracing::info!(store = %store.kind(), protection = %store.protection(), "store of record open");
        inner.store = Some((store.clone(), choice));
        Ok(store)
    }

    /// The store of record, when it can be read now (a passphrase-protected store must
    /// be unlocked first).
    pub async fn unlocked_store(
        &self,
        inner: &mut Inner,
    ) -> Result<Arc<dyn SecretStore>, StoreError> {
        let store = self.store(inner).await?;
        if store.is_locked() {
            return Err(StoreError::Locked {
                store: store.kind(),
            });
        }
        Ok(store)
    }

    /// The plain-credential table, read from the store on first use.
    pub async fn table<'a>(&self, inner: &'a mut Inner) -> Result<&'a mut PlainTable, StoreError> {
        let store = self.unlocked_store(inner).await?;
        if inner.table.is_none() {
            let reader = store.clone();
            let blob = match blocking(move || reader.get(PLAIN_KEY)).await {
                Ok(blob) => blob,
                Err(e) => {
                    // The keyring may have gone away: open it afresh next time.
                    inner.store = None;
                    return Err(e);
                }
            };
            let table = match blob {
                None => PlainTable::default(),
                Some(blob) => PlainTable::from_blob(&blob).map_err(|e| StoreError::Corrupt {
                    store: store.kind(),
                    path: PLAIN_KEY.into(),
                    detail: e.to_string(),
                })?,
            };
            inner.table = Some(table);
        }
        Ok(inner
            .table
            .as_mut()
            .expect("the table was loaded just above"))
    }

    /// Writes the table back to the store. On failure the in-memory copy is dropped so
    /// that nothing is served that the store does not hold.
    pub async fn persist(&self, inner: &mut Inner) -> Result<(), StoreError> {
        let store = self.store(inner).await?;
        let blob: Secret = match &inner.table {
            Some(table) => table.to_blob(),
            None => return Ok(()),
        };
        let result = blocking(move || store.set(PLAIN_KEY, &blob)).await;
        if result.is_err() {
            inner.table = None;
            inner.store = None;
        }
        result
    }

    /// Unlocks a passphrase-protected store.
    pub async fn unlock(&self, inner: &mut Inner, passphrase: Secret) -> Result<(), StoreError> {
        let store = self.store(inner).await?;
        blocking(move || store.unlock(&passphrase)).await?;
        inner.table = None;
        Ok(())
    }

    /// Protects the file store with a passphrase.
    pub async fn set_passphrase(
        &self,
        inner: &mut Inner,
        passphrase: Secret,
    ) -> Result<(), StoreError> {
        let store = self.store(inner).await?;
        blocking(move || store.set_passphrase(&passphrase)).await
    }

    /// Appends one event to the audit log. Never fails the request: a broken audit log is
    /// an error in the daemon's log.
    pub fn audit(&self, inner: &mut Inner, event: AuditEvent) {
        match &mut inner.audit {
            Some(log) => {
                if let Err(e) = log.append(&event) {
                    tracing::error!(error = %e, event = %event.event, "could not write the audit log");
                }
            }
            None => {
                tracing::error!(event = %event.event, "audit log unavailable; event not recorded")
            }
        }
    }

    /// The store's strength for the policy's `min_store`, once the store is open.
    pub fn store_strength(&self, inner: &Inner) -> Option<crate::policy::StoreStrength> {
        let (store, _) = inner.store.as_ref()?;
        let passphrase = store.protection().contains("passphrase");
        Some(store.kind().strength(passphrase))
    }

    /// The token book, or why it cannot be used.
    pub fn tokens<'a>(&self, inner: &'a mut Inner) -> Result<&'a mut TokenBook, String> {
        inner.tokens.as_mut().map_err(|e| e.clone())
    }

    /// Writes `tokens.json` now.
    pub fn save_tokens(&self, inner: &mut Inner) -> Result<(), String> {
        let book = inner.tokens.as_ref().map_err(|e| e.clone())?;
        tokens_file::save(&self.settings.state_dir, book)?;
        inner.tokens_saved_at = unix_now();
        Ok(())
    }

    /// Writes `tokens.json` if the last write is old enough (for `last_used` only).
    pub fn save_tokens_lazily(&self, inner: &mut Inner) {
        if unix_now().saturating_sub(inner.tokens_saved_at) >= LAST_USED_SAVE_INTERVAL {
            if let Err(e) = self.save_tokens(inner) {
                tracing::warn!(error = %e, "could not save token metadata");
            }
        }
    }

    /// Any secret by store key (refresh tokens); not cached.
    pub async fn get_secret(
        &self,
        inner: &mut Inner,
        key: &str,
    ) -> Result<Option<Secret>, StoreError> {
        let store = self.unlocked_store(inner).await?;
        let key = key.to_string();
        blocking(move || store.get(&key)).await
    }

    pub async fn set_secret(
        &self,
        inner: &mut Inner,
        key: &str,
        value: Secret,
    ) -> Result<(), StoreError> {
        let store = self.unlocked_store(inner).await?;
        let key = key.to_string();
        blocking(move || store.set(&key, &value)).await
    }

    pub async fn delete_secret(&self, inner: &mut Inner, key: &str) -> Result<(), StoreError> {
        let store = self.store(inner).await?;
        let key = key.to_string();
        blocking(move || store.delete(&key)).await
    }

    /// The secret of token `id`, from the cache or the store.
    pub async fn token_secret(
        &self,
        inner: &mut Inner,
        id: &str,
    ) -> Result<Option<Secret>, StoreError> {
        if let Some(secret) = inner.token_secrets.get(id) {
            return Ok(Some(secret.clone()));
        }
        let store = self.unlocked_store(inner).await?;
        let key = token::secret_key(id);
        let secret = blocking(move || store.get(&key)).await?;
        if let Some(s) = &secret {
            inner.token_secrets.insert(id.to_string(), s.clone());
        }
        Ok(secret)
    }

    /// Stores the secret of token `id`.
    pub async fn set_token_secret(
        &self,
        inner: &mut Inner,
        id: &str,
        secret: Secret,
    ) -> Result<(), StoreError> {
        let store = self.unlocked_store(inner).await?;
        let key = token::secret_key(id);
        let value = secret.clone();
        blocking(move || store.set(&key, &value)).await?;
        inner.token_secrets.insert(id.to_string(), secret);
        Ok(())
    }

    /// Deletes the secrets of a token no runtime uses any more (and its refresh token).
    pub async fn delete_token_secret(&self, inner: &mut Inner, id: &str) -> Result<(), StoreError> {
        inner.token_secrets.remove(id);
        let store = self.store(inner).await?;
        let key = token::secret_key(id);
        let refresh = token::refresh_key(id);
        blocking(move || store.delete(&key).and_then(|()| store.delete(&refresh))).await
    }

    /// The remembered store choice, when the store is open.
    pub fn choice<'a>(&self, inner: &'a Inner) -> Option<&'a StoreChoice> {
        inner.store.as_ref().map(|(_, c)| c)
    }
}
