//! The store of record, opened on first use (one opener at a time; the others wait for
//! it, as they would need it anyway) and opened again after it failed. Reads of secrets
//! not yet in memory go straight to the store on tokio's blocking pool: keyring calls
//! block on D-Bus and argon2 burns CPU, and neither may hold up another request. Writes
//! go through the writer task and the store's own queue (`store_queue`).
//!
//! A keyring may wait for a person (an unlock dialog, a Keychain prompt) for as long as
//! that person takes. So a request waits for the store at most [`StoreWaits`]' limits and
//! then gets [`StoreError::NoAnswer`]; the call itself goes on in its thread and is never
//! counted as the store going away.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use crate::decision::StoreProblem;
use crate::policy::StoreStrength;
use crate::secret::Secret;
use crate::store::choice::{self, StoreChoice};
use crate::store::{SecretStore, StoreError, StoreKind};
use crate::token;

/// How long requests wait for the store before they answer without it (DESIGN.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreWaits {
    /// A git `store`/`erase` (and a token change) waits this long for its write to land
    /// before git is told it is served from memory and still being written. 3 s: a
    /// keyring or disk write takes milliseconds, so a write still outstanding after 3 s
    /// is waiting for something else (a dialog); git's user should not wait longer to
    /// learn that. `HELPERD_STORE_WRITE_WAIT_MS`.
    pub write: Duration,
    /// A request that truly needs the store (a secret never read yet, the first read of
    /// the plain credentials, an unlock) waits this long: long enough for a person to
    /// answer an unlock dialog, well inside the client's 60 s. `HELPERD_STORE_READ_WAIT_MS`.
    pub read: Duration,
    /// `helperctl daemon stop` (and SIGTERM) wait this long for pending writes before
    /// the daemon stops without them. `HELPERD_STOP_WAIT_MS`.
    pub stop: Duration,
    /// How many writes may wait for the store; one more is refused at once.
    /// `HELPERD_STORE_QUEUE`.
    pub queue: usize,
}

impl Default for StoreWaits {
    fn default() -> StoreWaits {
        StoreWaits {
            write: Duration::from_secs(3),
            read: Duration::from_secs(20),
            stop: Duration::from_secs(10),
            queue: 64,
        }
    }
}

impl StoreWaits {
    /// The defaults, with the `HELPERD_STORE_*_MS`, `HELPERD_STOP_WAIT_MS` and
    /// `HELPERD_STORE_QUEUE` overrides (tests, slow machines) that parse.
    pub fn from_env() -> StoreWaits {
        let ms = |name: &str, default: Duration| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_millis)
                .unwrap_or(default)
        };
        let d = StoreWaits::default();
        StoreWaits {
            write: ms("HELPERD_STORE_WRITE_WAIT_MS", d.write),
            read: ms("HELPERD_STORE_READ_WAIT_MS", d.read),
            stop: ms("HELPERD_STOP_WAIT_MS", d.stop),
            queue: std::env::var("HELPERD_STORE_QUEUE")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(d.queue),
        }
    }
}

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
    /// How long requests wait for the store.
    pub waits: StoreWaits,
}

/// An open store of record.
pub struct OpenStore {
    /// The store itself.
    pub store: Arc<dyn SecretStore>,
    /// The choice it was opened by, as remembered in `store.json`.
    pub choice: StoreChoice,
    /// Its protection and location, as `status` shows them: read once when it opened and
    /// after a passphrase change, because asking the store may wait on a write that
    /// hangs (the file store holds its lock while it writes), and `status` never waits.
    described: RwLock<(String, Option<String>)>,
}

impl OpenStore {
    fn new(store: Arc<dyn SecretStore>, choice: StoreChoice) -> OpenStore {
        let described = RwLock::new((store.protection(), store.location()));
        OpenStore {
            store,
            choice,
            described,
        }
    }

    /// The protection and location last read from the store.
    fn described(&self) -> RwLockReadGuard<'_, (String, Option<String>)> {
        self.described
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How the secrets are protected at rest, in words (see [`SecretStore::protection`]).
    pub fn protection(&self) -> String {
        self.described().0.clone()
    }

    /// Where the secrets are, when the kind alone does not say it.
    pub fn location(&self) -> Option<String> {
        self.described().1.clone()
    }

    /// Reads the protection again (blocking): after an unlock or a new passphrase.
    pub fn describe_again(&self) {
        let now = (self.store.protection(), self.store.location());
        *self
            .described
            .write()
            .unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Its strength, for the policy's `min_store`.
    pub fn strength(&self) -> StoreStrength {
        // Read in place: every git request asks (the policy's `min_store`).
        let passphrase = self.described().0.contains("passphrase");
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

/// Runs blocking store work off the async threads and waits for it as long as it takes
/// (the store's queue: a write must be let finish); a panic there becomes an error, never
/// a dead daemon.
pub async fn run_blocking<T: Send + 'static>(
    store: StoreKind,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) => Err(StoreError::Unavailable {
            store,
            detail: format!("the store task failed ({join})"),
            hint: "see the daemon log".into(),
        }),
    }
}

/// Waits for `work` at most `limit`: past it, [`StoreError::NoAnswer`] (the work goes on
/// in its thread, and its outcome is dropped).
pub async fn within<T>(
    limit: Duration,
    store: StoreKind,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::NoAnswer {
            store,
            secs: limit.as_secs_f64().ceil() as u64,
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

    /// How long requests wait for the store.
    pub fn waits(&self) -> StoreWaits {
        self.settings.waits
    }

    /// The kind the store is or will be, as far as is known without opening it: the open
    /// store's, else `HELPERD_STORE`, else the one `store.json` remembers (one small file
    /// read: only for messages and `status` while the store has not opened).
    pub fn expected_kind(&self) -> StoreKind {
        match self.peek() {
            Some(open) => open.store.kind(),
            None => self
                .settings
                .forced
                .or_else(|| choice::remembered_kind(&self.settings.state_dir))
                .unwrap_or(StoreKind::File),
        }
    }

    /// The store of record, opening it on first use (and again after it failed); a request
    /// waits for the opening at most [`StoreWaits::read`].
    pub async fn open(&self) -> Result<Arc<OpenStore>, StoreError> {
        if let Some(open) = self.peek() {
            return Ok(open);
        }
        within(
            self.settings.waits.read,
            self.expected_kind(),
            self.open_unbounded(),
        )
        .await
    }

    /// Like [`StoreSlot::open`], waiting as long as the opening takes (the store's queue).
    pub async fn open_unbounded(&self) -> Result<Arc<OpenStore>, StoreError> {
        if let Some(open) = self.peek() {
            return Ok(open);
        }
        let _one_opener = self.opening.lock().await;
        if let Some(open) = self.peek() {
            return Ok(open);
        }
        let s = self.settings.clone();
        let kind = s.forced.unwrap_or(StoreKind::File);
        let open = run_blocking(kind, move || {
            let (store, choice) = choice::open_store(
                &s.state_dir,
                &s.data_dir,
                s.forced,
                &s.keyring_service,
                &s.config_file,
            )?;
            Ok(Arc::new(OpenStore::new(store, choice)))
        })
        .await?;
        tracing::info!(store = %open.store.kind(), protection = %open.protection(), "store of record open");
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(open.clone());
        Ok(open)
    }

    /// Runs `work` on the open store, on the blocking pool, waiting as long as opening the
    /// store and the work take (the store's queue; requests bound it with [`within`]). A
    /// failure that means the store went away makes the next call open it afresh.
    pub async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&OpenStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let result = async {
            let open = self.open_unbounded().await?;
            run_blocking(open.store.kind(), move || work(&open)).await
        }
        .await;
        if let Err(e) = &result {
            self.reset_after(e);
        }
        result
    }

    /// [`StoreSlot::call`] for reading or writing secrets: a store locked by a passphrase
    /// is refused ([`StoreError::Locked`]) before `work` runs.
    pub async fn call_unlocked<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn SecretStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call(move |open| {
            let store = open.store.as_ref();
            if store.is_locked() {
                return Err(StoreError::Locked {
                    store: store.kind(),
                });
            }
            work(store)
        })
        .await
    }

    /// Forgets the open store after it stopped answering (the keyring went away): the
    /// next use opens it afresh.
    pub fn reset_after(&self, e: &StoreError) {
        if matches!(e, StoreError::Unavailable { .. }) {
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// Any secret by store key (refresh tokens); not cached. Waits for the store at most
    /// [`StoreWaits::read`].
    pub async fn read(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        let key = key.to_string();
        let read = self.call_unlocked(move |store| store.get(&key));
        within(self.settings.waits.read, self.expected_kind(), read).await
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
