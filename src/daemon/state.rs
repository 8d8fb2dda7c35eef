//! The daemon's state: the store of record (opened lazily, reopened after a failure) and
//! the plain-credential table loaded from it. One async mutex serialises every change, so
//! the in-memory table and the store never disagree for long: a failed write drops the
//! table, and the next request reads it back from the store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Mutex, MutexGuard};

use crate::plain::PlainTable;
use crate::secret::Secret;
use crate::store::choice::{self, StoreChoice};
use crate::store::{SecretStore, StoreError, StoreKind};

/// The key under which the plain-credential table is kept in the store.
pub const PLAIN_KEY: &str = "plain-credentials";

/// Settings the daemon was started with.
#[derive(Debug, Clone)]
pub struct Settings {
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
    pub started: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
pub struct Inner {
    store: Option<(Arc<dyn SecretStore>, StoreChoice)>,
    table: Option<PlainTable>,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

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
        State {
            settings,
            started: Instant::now(),
            inner: Mutex::new(Inner::default()),
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

    /// The plain-credential table, read from the store on first use.
    pub async fn table<'a>(&self, inner: &'a mut Inner) -> Result<&'a mut PlainTable, StoreError> {
        let store = self.store(inner).await?;
        if store.is_locked() {
            return Err(StoreError::Locked {
                store: store.kind(),
            });
        }
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

    /// The remembered store choice, when the store is open.
    pub fn choice<'a>(&self, inner: &'a Inner) -> Option<&'a StoreChoice> {
        inner.store.as_ref().map(|(_, c)| c)
    }
}
