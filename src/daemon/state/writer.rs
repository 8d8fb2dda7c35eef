//! The writer task: the one owner of every write to `tokens.json`, the secret store and
//! the audit log (DESIGN.md §3). Requests send it a change and, when they need to know
//! the outcome, wait for its answer; nobody else writes, so changes stay ordered and each
//! one is whole. After each change it publishes new immutable snapshots of the token book
//! and the plain-credential table, which requests read without waiting for it.
//!
//! A secret is always stored before the metadata that names it, and an old secret is
//! deleted only after the metadata that replaced it is saved: a failure at any step leaves
//! the old token (and an OAuth token's old refresh token) in force.

use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::{mpsc, oneshot};

use super::store_slot::{blocking, StoreSlot};
use super::tokens_file;
use crate::audit::{AuditEvent, AuditLog};
use crate::gitproto::GitCredential;
use crate::plain::{PlainTable, StoreOutcome};
use crate::secret::Secret;
use crate::store::StoreError;
use crate::timefmt::unix_now;
use crate::token::{self, TokenBook, TokenMeta};

/// The key under which the plain-credential table is kept in the store.
pub const PLAIN_KEY: &str = "plain-credentials";

/// The audit log rotates past this size, keeping this many older files.
const AUDIT_MAX_BYTES: u64 = 4 * 1024 * 1024;
const AUDIT_KEEP: usize = 5;
/// How often the writer looks whether someone else rotated `audit.log`.
const AUDIT_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How often `last_used` alone is worth a write of `tokens.json`.
const LAST_USED_SAVE_INTERVAL: u64 = 3600;

/// Token metadata, or why `tokens.json` cannot be read (then nothing is written to it,
/// so nothing is lost).
pub type TokenBookState = Result<TokenBook, String>;

/// The snapshots the writer publishes.
pub struct Books {
    tokens: RwLock<Arc<TokenBookState>>,
    plain: RwLock<Option<Arc<PlainTable>>>,
}

impl Default for Books {
    fn default() -> Books {
        Books {
            tokens: RwLock::new(Arc::new(Ok(TokenBook::default()))),
            plain: RwLock::new(None),
        }
    }
}

impl Books {
    /// The token book as last published (or why `tokens.json` cannot be read).
    pub fn tokens(&self) -> Arc<TokenBookState> {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The plain-credential table, `None` until it has been read from the store.
    pub fn plain(&self) -> Option<Arc<PlainTable>> {
        self.plain
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn publish_tokens(&self, book: &TokenBookState) {
        *self.tokens.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(book.clone());
    }

    fn publish_plain(&self, table: Option<&PlainTable>) {
        *self.plain.write().unwrap_or_else(PoisonError::into_inner) =
            table.map(|t| Arc::new(t.clone()));
    }
}

/// Why a change was not made. Nothing was changed in either case.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `tokens.json` cannot be read or written, or the edit was refused: the message.
    #[error("{0}")]
    Tokens(String),
    /// The writer task has stopped (the daemon is shutting down).
    #[error("the daemon is shutting down")]
    Gone,
}

/// A new token for a runtime.
#[derive(Clone)]
pub struct TokenChange {
    /// The runtime (config.toml name) that gets the token.
    pub runtime: String,
    /// The new token's metadata; its id is the store key.
    pub token: TokenMeta,
    /// The token's secret, written to the store before `tokens.json` names it.
    pub secret: Secret,
    /// An OAuth token's refresh token.
    pub refresh: Option<Secret>,
    /// The hosts (`scheme://host`) the runtime points at now.
    pub hosts: Vec<String>,
    /// Other runtimes (with their hosts) that move to the new token too: those that
    /// shared the token it replaces (an OAuth refresh), as long as they still use it.
    pub also_for: Vec<(String, Vec<String>)>,
    /// The token this one replaces (an OAuth refresh): the change is made only while the
    /// runtime still has that token, so that a refresh answered late never undoes a token
    /// the user set meanwhile.
    pub replaces: Option<String>,
}

/// When an edit of the token book is written to `tokens.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Save {
    /// Right away (a new, changed or removed token).
    Now,
    /// At most hourly (`last_used` alone).
    Lazily,
}

/// An edit of the token book; returns the ids of tokens no runtime uses any more (their
/// secrets are deleted), or a refusal for the user (nothing is changed then).
pub type Edit = Box<dyn FnOnce(&mut TokenBook) -> Result<Vec<String>, String> + Send>;

type Reply<T> = oneshot::Sender<Result<T, WriteError>>;

enum Command {
    Audit(AuditEvent),
    LoadPlain(Reply<()>),
    StorePlain {
        cred: Box<GitCredential>,
        lifetime: Option<u64>,
        now: u64,
        reply: Reply<StoreOutcome>,
    },
    ErasePlain {
        cred: Box<GitCredential>,
        now: u64,
        reply: Reply<usize>,
    },
    SetToken(Box<TokenChange>, u64, Reply<()>),
    EditTokens(Edit, Save, Reply<()>),
    Unlock(Secret, Reply<()>),
    SetPassphrase(Secret, Reply<()>),
}

/// How many changes may wait for the writer. A full queue makes requests wait their
/// turn (back-pressure), so that a flood of requests cannot pile up audit lines in memory.
const QUEUE: usize = 256;

/// The handle requests use to reach the writer task.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Command>,
}

impl Writer {
    /// Starts the writer task (inside a tokio runtime). It ends when every handle is gone,
    /// after the changes already sent.
    pub fn start(
        store: Arc<StoreSlot>,
        books: Arc<Books>,
        state_dir: &std::path::Path,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let tokens = tokens_file::load(state_dir);
        if let Err(e) = &tokens {
            tracing::error!(error = %e, "token metadata unreadable; runtimes cannot be served");
        }
        books.publish_tokens(&tokens);
        let audit = crate::fsutil::create_private_dir(state_dir)
            .and_then(|()| AuditLog::open(state_dir, AUDIT_MAX_BYTES, AUDIT_KEEP))
            .map(|log| log.recheck_every(AUDIT_RECHECK))
            .map_err(|e| tracing::error!(error = %e, "cannot open the audit log"))
            .ok();
        let mut task = Task {
            store,
            books,
            state_dir: state_dir.to_path_buf(),
            audit,
            tokens,
            plain: None,
            tokens_saved_at: 0,
            unsaved: false,
        };
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(async move {
            // Everything queued is taken at once: under load one wake-up writes many audit
            // lines (still one write(2) each) instead of one wake-up per line.
            let mut batch = Vec::with_capacity(64);
            while rx.recv_many(&mut batch, 64).await > 0 {
                for command in batch.drain(..) {
                    task.run(command).await;
                }
            }
            task.save_unsaved();
        });
        (Writer { tx }, handle)
    }

    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(command(reply))
            .await
            .map_err(|_| WriteError::Gone)?;
        answer.await.unwrap_or(Err(WriteError::Gone))
    }

    /// Appends one event to the audit log, in order with every other change; waits only
    /// for room in the writer's queue, not for the write.
    pub async fn audit(&self, event: AuditEvent) {
        if self.tx.send(Command::Audit(event)).await.is_err() {
            tracing::error!("audit event after the writer stopped; not recorded");
        }
    }

    /// Reads the plain-credential table from the store, when it is not in memory yet.
    pub async fn load_plain(&self) -> Result<(), WriteError> {
        self.call(Command::LoadPlain).await
    }

    /// Stores git's credential in the plain table (for `lifetime` seconds; `None`: until erased).
    pub async fn store_plain(
        &self,
        cred: GitCredential,
        lifetime: Option<u64>,
        now: u64,
    ) -> Result<StoreOutcome, WriteError> {
        self.call(|reply| Command::StorePlain {
            cred: Box::new(cred),
            lifetime,
            now,
            reply,
        })
        .await
    }

    /// Returns how many credentials were erased.
    pub async fn erase_plain(&self, cred: GitCredential, now: u64) -> Result<usize, WriteError> {
        self.call(|reply| Command::ErasePlain {
            cred: Box::new(cred),
            now,
            reply,
        })
        .await
    }

    /// Makes `change.token` the runtime's token (see the module docs for the order).
    pub async fn set_token(&self, change: TokenChange, now: u64) -> Result<(), WriteError> {
        self.call(|reply| Command::SetToken(Box::new(change), now, reply))
            .await
    }

    /// Edits the token book and saves it (`Save::Now`), or later (`Save::Lazily`).
    pub async fn edit_tokens(&self, edit: Edit, save: Save) -> Result<(), WriteError> {
        self.call(|reply| Command::EditTokens(edit, save, reply))
            .await
    }

    /// Like [`Writer::edit_tokens`] without waiting for the outcome (`last_used`).
    pub async fn edit_tokens_later(&self, edit: Edit, save: Save) {
        let (reply, _) = oneshot::channel();
        let _ = self.tx.send(Command::EditTokens(edit, save, reply)).await;
    }

    /// Unlocks a passphrase-protected file store; the plain table is read again afterwards.
    pub async fn unlock(&self, passphrase: Secret) -> Result<(), WriteError> {
        self.call(|reply| Command::Unlock(passphrase, reply)).await
    }

    /// Switches the file store to a passphrase (or changes it).
    pub async fn set_passphrase(&self, passphrase: Secret) -> Result<(), WriteError> {
        self.call(|reply| Command::SetPassphrase(passphrase, reply))
            .await
    }
}

/// What the writer task owns.
struct Task {
    store: Arc<StoreSlot>,
    books: Arc<Books>,
    state_dir: std::path::PathBuf,
    audit: Option<AuditLog>,
    tokens: TokenBookState,
    plain: Option<PlainTable>,
    /// When `tokens.json` was last written.
    tokens_saved_at: u64,
    /// A lazily saved edit (`last_used`) is not in `tokens.json` yet.
    unsaved: bool,
}

impl Task {
    async fn run(&mut self, command: Command) {
        // A requester that went away no longer wants the answer: ignore the send error.
        match command {
            Command::Audit(event) => self.audit(&event),
            Command::LoadPlain(reply) => {
                let _ = reply.send(self.load_plain().await.map(|_| ()));
            }
            Command::StorePlain {
                cred,
                lifetime,
                now,
                reply,
            } => {
                let result = self
                    .change_plain(|table| {
                        let outcome = table.store(&cred, lifetime, now);
                        (outcome == StoreOutcome::Stored, outcome)
                    })
                    .await;
                let _ = reply.send(result);
            }
            Command::ErasePlain { cred, now, reply } => {
                let result = self
                    .change_plain(|table| {
                        let erased = table.erase(&cred, now);
                        (erased > 0, erased)
                    })
                    .await;
                let _ = reply.send(result);
            }
            Command::SetToken(change, now, reply) => {
                let _ = reply.send(self.set_token(*change, now).await);
            }
            Command::EditTokens(edit, save, reply) => {
                let _ = reply.send(self.edit_tokens(edit, save).await);
            }
            Command::Unlock(passphrase, reply) => {
                let result = async {
                    let store = self.store.open().await?.store.clone();
                    blocking(store.kind(), move || store.unlock(&passphrase)).await?;
                    // Read the table again: the locked store could not be read before.
                    self.plain = None;
                    self.books.publish_plain(None);
                    Ok(())
                }
                .await;
                let _ = reply.send(result);
            }
            Command::SetPassphrase(passphrase, reply) => {
                let result = async {
                    let store = self.store.open().await?.store.clone();
                    Ok(blocking(store.kind(), move || store.set_passphrase(&passphrase)).await?)
                }
                .await;
                let _ = reply.send(result);
            }
        }
    }

    fn audit(&mut self, event: &AuditEvent) {
        match &mut self.audit {
            Some(log) => {
                if let Err(e) = log.append(event) {
                    tracing::error!(error = %e, event = %event.event, "could not write the audit log");
                }
            }
            None => {
                tracing::error!(event = %event.event, "audit log unavailable; event not recorded")
            }
        }
    }

    /// A store failure: the store is opened afresh next time when it stopped answering.
    fn store_failed(&self, e: StoreError) -> WriteError {
        self.store.reset_after(&e);
        WriteError::Store(e)
    }

    async fn load_plain(&mut self) -> Result<&mut PlainTable, WriteError> {
        if self.plain.is_none() {
            let store = self.store.unlocked().await?;
            let reader = store.clone();
            let blob = blocking(store.kind(), move || reader.get(PLAIN_KEY))
                .await
                .map_err(|e| self.store_failed(e))?;
            let table = match blob {
                None => PlainTable::default(),
                Some(blob) => PlainTable::from_blob(&blob).map_err(|e| StoreError::Corrupt {
                    store: store.kind(),
                    path: PLAIN_KEY.into(),
                    detail: e.to_string(),
                })?,
            };
            self.books.publish_plain(Some(&table));
            self.plain = Some(table);
        }
        Ok(self
            .plain
            .as_mut()
            .expect("the table was loaded just above"))
    }

    /// Applies `change` to the plain table and, when it says so, writes the table back.
    /// On failure the table stays as the store holds it.
    async fn change_plain<T>(
        &mut self,
        change: impl FnOnce(&mut PlainTable) -> (bool, T),
    ) -> Result<T, WriteError> {
        let table = self.load_plain().await?;
        let before = table.clone();
        let (changed, outcome) = change(table);
        if !changed {
            return Ok(outcome);
        }
        let blob = table.to_blob();
        let store = self.store.unlocked().await?;
        match blocking(store.kind(), move || store.set(PLAIN_KEY, &blob)).await {
            Ok(()) => {
                self.books.publish_plain(self.plain.as_ref());
                Ok(outcome)
            }
            Err(e) => {
                // What the store holds is unknown now when it stopped answering: read it
                // again next time; otherwise it still holds the table from before.
                let unavailable = matches!(e, StoreError::Unavailable { .. });
                self.plain = (!unavailable).then_some(before);
                self.books.publish_plain(self.plain.as_ref());
                Err(self.store_failed(e))
            }
        }
    }

    fn book(&mut self) -> Result<&mut TokenBook, WriteError> {
        self.tokens
            .as_mut()
            .map_err(|e| WriteError::Tokens(e.clone()))
    }

    fn save_tokens(&mut self) -> Result<(), WriteError> {
        let book = self
            .tokens
            .as_ref()
            .map_err(|e| WriteError::Tokens(e.clone()))?;
        tokens_file::save(&self.state_dir, book).map_err(WriteError::Tokens)?;
        self.tokens_saved_at = unix_now();
        self.unsaved = false;
        Ok(())
    }

    /// At the end (the daemon stops): what was saved lazily goes to `tokens.json` now.
    fn save_unsaved(&mut self) {
        if self.unsaved {
            if let Err(e) = self.save_tokens() {
                tracing::warn!(error = %e, "could not save token metadata at exit");
            }
        }
    }

    /// Stores the secret(s), then the metadata, then deletes what was replaced.
    async fn set_token(&mut self, change: TokenChange, now: u64) -> Result<(), WriteError> {
        let TokenChange {
            runtime,
            token,
            secret,
            refresh,
            hosts,
            also_for,
            replaces,
        } = change;
        // Read the book before any secret is stored: an unreadable one stores nothing.
        let current = self.book()?.for_runtime(&runtime).map(|t| t.id.clone());
        if replaces.is_some() && current != replaces {
            return Err(WriteError::Tokens(format!(
                "runtime {runtime}'s token changed meanwhile; the refreshed one was not stored"
            )));
        }
        let id = token.id.clone();
        let store = self.store.unlocked().await?;
        let (key, value, writer) = (token::secret_key(&id), secret.clone(), store.clone());
        blocking(store.kind(), move || writer.set(&key, &value))
            .await
            .map_err(|e| self.store_failed(e))?;
        if let Some(refresh) = refresh {
            let (key, writer) = (token::refresh_key(&id), store.clone());
            if let Err(e) = blocking(store.kind(), move || writer.set(&key, &refresh)).await {
                self.delete_secrets(&id).await;
                return Err(self.store_failed(e));
            }
        }
        let before = self.tokens.clone();
        let book = self.book()?;
        let mut orphans: Vec<String> = book.add(token, &runtime, &hosts, now).into_iter().collect();
        for (other, other_hosts) in &also_for {
            let still_shared = book
                .for_runtime(other)
                .is_some_and(|t| Some(&t.id) == replaces.as_ref());
            if !still_shared {
                continue;
            }
            if let Ok(Some(orphan)) = book.link(other, other_hosts, &runtime) {
                orphans.push(orphan);
            }
        }
        if let Err(e) = self.save_tokens() {
            self.tokens = before;
            self.delete_secrets(&id).await;
            return Err(e);
        }
        self.books.publish_tokens(&self.tokens);
        self.store.remember_token_secret(&id, secret);
        for orphan in orphans {
            self.delete_secrets(&orphan).await;
        }
        Ok(())
    }

    async fn edit_tokens(&mut self, edit: Edit, save: Save) -> Result<(), WriteError> {
        let before = self.tokens.clone();
        let orphans = edit(self.book()?).map_err(WriteError::Tokens)?;
        let due = save == Save::Now
            || unix_now().saturating_sub(self.tokens_saved_at) >= LAST_USED_SAVE_INTERVAL;
        if due {
            if let Err(e) = self.save_tokens() {
                self.tokens = before;
                return Err(e);
            }
        } else {
            self.unsaved = true;
        }
        self.books.publish_tokens(&self.tokens);
        for orphan in orphans {
            self.delete_secrets(&orphan).await;
        }
        Ok(())
    }

    /// Deletes a token's secret and refresh token; failures only reach the log (the
    /// metadata no longer names them, so they are never served).
    async fn delete_secrets(&mut self, id: &str) {
        self.store.forget_token_secret(id);
        // Opened if need be: the store may not have been opened yet since start.
        let store = match self.store.unlocked().await {
            Ok(store) => store,
            Err(e) => {
                tracing::warn!(error = %e, "could not delete a replaced token's secret: the store is not available");
                return;
            }
        };
        let (key, refresh) = (token::secret_key(id), token::refresh_key(id));
        if let Err(e) = blocking(store.kind(), move || {
            store.delete(&key).and_then(|()| store.delete(&refresh))
        })
        .await
        {
            tracing::warn!(error = %e, "could not delete a replaced token's secret");
        }
    }
}
