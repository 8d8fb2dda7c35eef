//! The store of record, opened on first use (one opener at a time; the others wait for
//! it, as they would need it anyway) and opened again after it failed. Reads go straight
//! to the store on tokio's blocking pool: keyring calls block on D-Bus and argon2 burns
//! CPU, and neither may hold up another request. Writes go through the writer task.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use crate::decision::StoreProblem;
use crate::policy::StoreStrength;
use crate::secret::Secret;
use crate::store::choice::{self, StoreChoice};
use crate::store::{SecretStore, StoreError, StoreKind};
use crate::token;

/// Where the store lives and which one to use.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Where `store.json` (the remembered choice) lives.
    pub state_dir: PathBuf,
    /// Where the encrypted file store and its key file live.
    pub data_dir: PathBuf,
    /// `HELPERD_STORE`.
    pub forced: Option<StoreKind>,
    /// Keyring namespace for a first choice of the OS keyring.
    pub keyring_service: String,
    /// config.toml, whose `[openbao]` the OpenBao store is opened with.
    pub config_file: PathBuf,
}

/// An open store of record.
pub struct OpenStore {
    /// The store itself.
    pub store: Arc<dyn SecretStore>,
    /// The choice it was opened by, as remembered in `store.json`.
    pub choice: StoreChoice,
}

impl OpenStore {
    /// Its strength, for the policy's `min_store`.
    pub fn strength(&self) -> StoreStrength {
        let passphrase = self.store.protection().contains("passphrase");
        self.store.kind().strength(passphrase)
    }
}

/// The store of record, opened on first use, plus the cache of token secrets already read.
pub struct StoreSlot {
    settings: StoreSettings,
    current: RwLock<Option<Arc<OpenStore>>>,
    /// Taken only to open the store: one opener at a time.
    opening: tokio::sync::Mutex<()>,
    /// Token secrets already read, so that a `get` costs no keyring round trip.
    secrets: Mutex<HashMap<String, Secret>>,
    /// Ids of tokens deleted since start: a read that raced with the deletion must not put
    /// the secret back in memory (ids are random and never reused).
    forgotten: Mutex<std::collections::HashSet<String>>,
}

/// The longest a store call may take before the request (or the writer, and so every
/// change after it) stops waiting for it: a keyring that hangs must not hold everything up.
const STORE_CALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs blocking store work off the async threads; a panic there becomes an error, never
/// a dead daemon, and a call that hangs past [`STORE_CALL_LIMIT`] an error too (its thread
/// is left to finish on its own).
pub async fn blocking<T: Send + 'static>(
    store: StoreKind,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::time::timeout(STORE_CALL_LIMIT, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(StoreError::Unavailable {
            store,
            detail: format!("the store task failed ({join})"),
            hint: "see the daemon log".into(),
        }),
        Err(_) => Err(StoreError::Unavailable {
            store,
            detail: format!(
                "the store did not answer within {} s",
                STORE_CALL_LIMIT.as_secs()
            ),
            hint: "is the keyring waiting for you to unlock it? try again".into(),
        }),
    }
}

/// A store failure as the decision sees it.
pub fn problem(e: &StoreError) -> StoreProblem {
    StoreProblem {
        locked: matches!(e, StoreError::Locked { .. }),
        message: e.to_string(),
    }
}

impl StoreSlot {
    /// A slot that opens nothing until the first request needs the store.
    pub fn new(settings: StoreSettings) -> StoreSlot {
        StoreSlot {
            settings,
            current: RwLock::new(None),
            opening: tokio::sync::Mutex::new(()),
            secrets: Mutex::new(HashMap::new()),
            forgotten: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// The store, when it is open now (no waiting).
    pub fn peek(&self) -> Option<Arc<OpenStore>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The store's strength, once it is open.
    pub fn strength(&self) -> Option<StoreStrength> {
        self.peek().map(|s| s.strength())
    }

    /// The store of record, opening it on first use (and again after it failed).
    pub async fn open(&self) -> Result<Arc<OpenStore>, StoreError> {
        if let Some(open) = self.peek() {
            return Ok(open);
        }
        let _one_opener = self.opening.lock().await;
        if let Some(open) = self.peek() {
            return Ok(open);
        }
        let s = self.settings.clone();
        let kind = s.forced.unwrap_or(StoreKind::File);
        let (store, choice) = blocking(kind, move || {
            choice::open_store(
                &s.state_dir,
                &s.data_dir,
                s.forced,
                &s.keyring_service,
                &s.config_file,
            )
        })
        .await?;
        tracing::info!(store = %store.kind(), protection = %store.protection(), "store of record open");
        let open = Arc::new(OpenStore { store, choice });
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(open.clone());
        Ok(open)
    }

    /// The store, when it can be read now (a passphrase-protected store must be unlocked).
    pub async fn unlocked(&self) -> Result<Arc<dyn SecretStore>, StoreError> {
        let open = self.open().await?;
        if open.store.is_locked() {
            return Err(StoreError::Locked {
                store: open.store.kind(),
            });
        }
        Ok(open.store.clone())
    }

    /// Forgets the open store after it stopped answering (the keyring went away): the
    /// next use opens it afresh.
    pub fn reset_after(&self, e: &StoreError) {
        if matches!(e, StoreError::Unavailable { .. }) {
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// Any secret by store key (refresh tokens); not cached.
    pub async fn read(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        let store = self.unlocked().await?;
        let key = key.to_string();
        let result = blocking(store.kind(), move || store.get(&key)).await;
        if let Err(e) = &result {
            self.reset_after(e);
        }
        result
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<String, Secret>> {
        self.secrets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The secret of token `id`, from memory or the store.
    pub async fn token_secret(&self, id: &str) -> Result<Option<Secret>, StoreError> {
        if let Some(secret) = self.cache().get(id) {
            return Ok(Some(secret.clone()));
        }
        let secret = self.read(&token::secret_key(id)).await?;
        if let Some(s) = &secret {
            let forgotten = self
                .forgotten
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !forgotten.contains(id) {
                self.cache().insert(id.to_string(), s.clone());
            }
        }
        Ok(secret)
    }

    /// Remembers a token secret the writer just stored.
    pub fn remember_token_secret(&self, id: &str, secret: Secret) {
        self.cache().insert(id.to_string(), secret);
    }

    /// Forgets a token secret the writer is deleting, for good.
    pub fn forget_token_secret(&self, id: &str) {
        self.forgotten
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string());
        self.cache().remove(id);
    }
}
