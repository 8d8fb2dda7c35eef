//! The writer task: the one owner of every change to `tokens.json`, the secret store and
//! the audit log (DESIGN.md §3). Requests send it a change and, when they need to know
//! the outcome, wait for its answer; nobody else writes, so changes stay ordered and each
//! one is whole. After each change it publishes new immutable snapshots of the token book
//! and the plain-credential table, which requests read without waiting for it.
//!
//! The writer itself never waits on the store: it hands each store call to the store's
//! queue (`store_queue`), in order, and the outcome comes back to it as a message. So a
//! keyring waiting for a person holds up only the changes that need it: a plain
//! credential git stores is in the published table (and served) at once, the audit log
//! and `tokens.json` go on, and the requester waits for the store only as long as
//! [`StoreWaits`](super::store_slot::StoreWaits) says.
//!
//! A secret is always stored before the metadata that names it, and an old secret is
//! deleted only after the metadata that replaced it is saved: a failure at any step leaves
//! the old token (and an OAuth token's old refresh token) in force. A plain-table write
//! that fails puts back what the store holds, unless a newer write is on its way.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
// tokio's clock, so that tests can stop it (the audit lines' hold, `AUDIT_EVERY`).
use tokio::time::Instant;

use super::audit_inbox::AuditInbox;
use super::store_queue::{Pending, QueueFull, StoreQueue};
use super::store_slot::StoreSlot;
use super::tokens_file;
use crate::audit::{AuditEvent, AuditLog};
use crate::gitproto::GitCredential;
use crate::plain::{PlainTable, StoreOutcome};
use crate::secret::Secret;
use crate::store::{StoreError, StoreKind};
use crate::timefmt::unix_now;
use crate::token::{self, TokenBook, TokenMeta};

/// The key under which the plain-credential table is kept in the store.
pub const PLAIN_KEY: &str = "plain-credentials";

/// The audit log rotates past this size, keeping this many older files.
const AUDIT_MAX_BYTES: u64 = 4 * 1024 * 1024;
const AUDIT_KEEP: usize = 5;
/// How often the writer looks whether someone else rotated `audit.log`.
const AUDIT_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Audit lines are written at most once per this long. Under load one write(2) then
/// carries every line of the last millisecond instead of one write per request (an
/// append to the log costs about as much as the rest of a request's system calls); a line
/// after a quiet millisecond goes out at once. Held lines are written before any other
/// change (so the log keeps its order), before `helperctl audit` reads the log, and when
/// the daemon stops; a crash loses at most this long of them.
const AUDIT_EVERY: Duration = Duration::from_millis(1);

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

/// Why a change was not made. Nothing was changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `tokens.json` cannot be read or written, or the edit was refused: the message.
    #[error("{0}")]
    Tokens(String),
    /// Too many writes already wait for a store that does not answer.
    #[error(transparent)]
    Busy(#[from] QueueFull),
    /// The store has not answered within the request's wait: the change goes on and
    /// lands when it answers (it is not refused, and nothing is lost while the daemon runs).
    #[error("the {store} store has not answered for {secs} s (an unlock dialog?): {what} as soon as it does; `helperctl status` shows the pending writes")]
    Pending {
        /// The store waited for.
        store: StoreKind,
        /// How long the request waited.
        secs: u64,
        /// What happens when the store answers.
        what: &'static str,
    },
    /// The writer task has stopped (the daemon is shutting down).
    #[error("the daemon is shutting down")]
    Gone,
}

/// Whether a change's write to the store has landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing<T> {
    /// Written (or nothing needed writing); what the change did.
    Landed(T),
    /// Still being written: the store has not answered within the write wait. What the
    /// change did in memory (served from there) when it was made already; `None` while it
    /// waits for the plain table to be read first (it is made then, before any later
    /// request is answered).
    Pending(Option<T>),
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
    /// shared the token it replaces (an OAuth refresh, a GitLab rotation), as long as they
    /// still use it.
    pub also_for: Vec<(String, Vec<String>)>,
    /// The token this one replaces (an OAuth refresh, a GitLab rotation; see
    /// `state::successor`): the change is made only while the
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

/// A plain-table change made in memory, and its write to the store (`None`: nothing
/// needed writing).
struct Applied<T> {
    outcome: T,
    written: Option<oneshot::Receiver<Result<(), StoreError>>>,
}

enum Command {
    /// Write the audit lines held back (see [`AUDIT_EVERY`]), then answer.
    FlushAudit(Reply<()>),
    LoadPlain(Reply<()>),
    StorePlain {
        cred: Box<GitCredential>,
        lifetime: Option<u64>,
        now: u64,
        reply: Reply<Applied<StoreOutcome>>,
    },
    ErasePlain {
        cred: Box<GitCredential>,
        now: u64,
        reply: Reply<Applied<usize>>,
    },
    SetToken(Box<TokenChange>, u64, Reply<()>),
    EditTokens(Edit, Save, Reply<()>),
    Unlock(Secret, Reply<()>),
    SetPassphrase(Secret, Reply<()>),
}

/// The outcome of a store call, back from the store's queue to the writer task.
enum Landed {
    PlainRead(Result<Option<Secret>, StoreError>),
    /// The plain table of `version` was written (`ok`) or not; the table is what the store
    /// holds after a success.
    PlainWritten {
        version: u64,
        table: Box<PlainTable>,
        ok: bool,
    },
    /// A new token's secret(s) were written (or not): the metadata may follow.
    TokenSecrets {
        change: Box<TokenChange>,
        /// The runtime's token when the change was asked for: it is made only if the
        /// runtime still has that one (nothing overtook it while the keyring waited).
        current: Option<String>,
        now: u64,
        result: Result<(), StoreError>,
        reply: Reply<()>,
    },
    Unlocked(Result<(), StoreError>, Reply<()>),
}

/// How many changes may wait for the writer. A full queue makes requests wait their
/// turn (back-pressure), so that a flood of requests cannot pile up audit lines in memory.
/// The writer never waits on the store (its calls go to the store's own queue), so this
/// queue drains at the speed of memory and the audit log's disk.
const QUEUE: usize = 256;

/// The handle requests use to reach the writer task.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Command>,
    /// Audit events go here rather than through `tx`: see [`AuditInbox`].
    inbox: Arc<AuditInbox>,
    queue: StoreQueue,
    store: Arc<StoreSlot>,
}

impl Writer {
    /// Starts the writer task and the store's queue (inside a tokio runtime). The writer
    /// ends when every handle is gone, after the changes already sent.
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
        let queue = StoreQueue::start(store.waits().queue);
        let (landed_tx, mut landed_rx) = mpsc::unbounded_channel();
        let mut task = Task {
            store: store.clone(),
            queue: queue.clone(),
            landed: landed_tx,
            books,
            state_dir: state_dir.to_path_buf(),
            audit,
            tokens,
            plain: PlainState::default(),
            tokens_saved_at: 0,
            unsaved: false,
            installed_by_queue: Default::default(),
            inbox: Arc::new(AuditInbox::default()),
            inbox_waiting: false,
            held_audit: Vec::with_capacity(64),
            audit_written_at: None,
        };
        let inbox = task.inbox.clone();
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(async move {
            // Everything queued is taken at once: under load one wake-up writes many audit
            // lines in one write(2) instead of one wake-up and one write per line.
            let mut batch = Vec::with_capacity(64);
            loop {
                let audit_due = task.audit_due();
                tokio::select! {
                    // What the store answered first: a request may be waiting for it.
                    biased;
                    Some(landed) = landed_rx.recv() => task.landed(landed),
                    n = rx.recv_many(&mut batch, 64) => {
                        if n == 0 {
                            break;
                        }
                        task.run_all(batch.drain(..));
                    }
                    // Told once per batch (the inbox went from empty to not empty); the
                    // lines are taken when due.
                    () = task.inbox.arrived(), if !task.inbox_waiting => task.inbox_waiting = true,
                    // Half full: taken now, whatever the lines' moment (see AuditInbox).
                    () = task.inbox.crowded() => task.flush_audit(),
                    () = sleep_until_some(audit_due) => task.flush_audit(),
                }
            }
            task.flush_audit();
            task.save_unsaved();
        });
        (
            Writer {
                tx,
                inbox,
                queue,
                store,
            },
            handle,
        )
    }

    /// Sends `command` and waits for its answer at most `limit`; past it, `Pending`.
    async fn ask<T>(
        &self,
        limit: Duration,
        what: &'static str,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(command(reply))
            .await
            .map_err(|_| WriteError::Gone)?;
        match tokio::time::timeout(limit, answer).await {
            Ok(answer) => answer.unwrap_or(Err(WriteError::Gone)),
            Err(_) => Err(self.still_pending(limit, what)),
        }
    }

    fn still_pending(&self, waited: Duration, what: &'static str) -> WriteError {
        WriteError::Pending {
            store: self.store.expected_kind(),
            secs: waited.as_secs_f64().ceil() as u64,
            what,
        }
    }

    /// Appends one event to the audit log, before any change asked for after it; waits
    /// only for room in the inbox (see [`AuditInbox`]), not for the write.
    pub async fn audit(&self, event: AuditEvent) {
        if self.tx.is_closed() {
            tracing::error!("audit event after the writer stopped; not recorded");
            return;
        }
        self.inbox.push(event).await;
    }

    /// Writes the audit lines held back (see [`AUDIT_EVERY`]), so that reading the log
    /// next finds every event sent before this.
    pub async fn flush_audit(&self) {
        let _ = self
            .ask(Duration::from_secs(5), "", Command::FlushAudit)
            .await;
    }

    /// Reads the plain-credential table from the store, when it is not in memory yet;
    /// waits for the store at most its read wait.
    pub async fn load_plain(&self) -> Result<(), WriteError> {
        self.load_plain_within(self.store.waits().read).await
    }

    /// Like [`Writer::load_plain`], waiting at most `limit` (`status` waits briefly).
    pub async fn load_plain_within(&self, limit: Duration) -> Result<(), WriteError> {
        match self.ask(limit, "", Command::LoadPlain).await {
            Err(WriteError::Pending { store, secs, .. }) => {
                Err(WriteError::Store(StoreError::NoAnswer { store, secs }))
            }
            other => other,
        }
    }

    /// Stores git's credential in the plain table (for `lifetime` seconds; `None`: until
    /// erased). It is served from memory at once; the answer waits for the store at most
    /// its write wait.
    pub async fn store_plain(
        &self,
        cred: GitCredential,
        lifetime: Option<u64>,
        now: u64,
    ) -> Result<Landing<StoreOutcome>, WriteError> {
        self.change_plain(|reply| Command::StorePlain {
            cred: Box::new(cred),
            lifetime,
            now,
            reply,
        })
        .await
    }

    /// Erases matching plain credentials; how many (see `store_plain`, and
    /// [`Landing::Pending`] for how many while the write waits).
    pub async fn erase_plain(
        &self,
        cred: GitCredential,
        now: u64,
    ) -> Result<Landing<usize>, WriteError> {
        self.change_plain(|reply| Command::ErasePlain {
            cred: Box::new(cred),
            now,
            reply,
        })
        .await
    }

    async fn change_plain<T>(
        &self,
        command: impl FnOnce(Reply<Applied<T>>) -> Command,
    ) -> Result<Landing<T>, WriteError> {
        // One wait for both steps: the change (which waits for the table when it was never
        // read) and its write.
        let deadline = tokio::time::Instant::now() + self.store.waits().write;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(command(reply))
            .await
            .map_err(|_| WriteError::Gone)?;
        let applied = match tokio::time::timeout_at(deadline, answer).await {
            Ok(answer) => answer.unwrap_or(Err(WriteError::Gone))?,
            Err(_) => return Ok(Landing::Pending(None)),
        };
        let Some(written) = applied.written else {
            return Ok(Landing::Landed(applied.outcome));
        };
        match tokio::time::timeout_at(deadline, written).await {
            Ok(Ok(Ok(()))) => Ok(Landing::Landed(applied.outcome)),
            Ok(Ok(Err(e))) => Err(WriteError::Store(e)),
            Ok(Err(_)) => Err(WriteError::Gone),
            Err(_) => Ok(Landing::Pending(Some(applied.outcome))),
        }
    }

    /// Makes `change.token` the runtime's token (see the module docs for the order); waits
    /// for the store at most its write wait, then `Pending` (the change goes on).
    pub async fn set_token(&self, change: TokenChange, now: u64) -> Result<(), WriteError> {
        let what = "the new token becomes the runtime's token";
        self.ask(self.store.waits().write, what, |reply| {
            Command::SetToken(Box::new(change), now, reply)
        })
        .await
    }

    /// Edits the token book and saves it (`Save::Now`), or later (`Save::Lazily`).
    pub async fn edit_tokens(&self, edit: Edit, save: Save) -> Result<(), WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::EditTokens(edit, save, reply))
            .await
            .map_err(|_| WriteError::Gone)?;
        // Never waits on the store: only `tokens.json` is written before the answer.
        answer.await.unwrap_or(Err(WriteError::Gone))
    }

    /// Like [`Writer::edit_tokens`] without waiting for the outcome (`last_used`).
    pub async fn edit_tokens_later(&self, edit: Edit, save: Save) {
        let (reply, _) = oneshot::channel();
        let _ = self.tx.send(Command::EditTokens(edit, save, reply)).await;
    }

    /// Unlocks a passphrase-protected file store; the plain table is read again afterwards.
    pub async fn unlock(&self, passphrase: Secret) -> Result<(), WriteError> {
        let what = "the store is unlocked";
        self.ask(self.store.waits().read, what, |reply| {
            Command::Unlock(passphrase, reply)
        })
        .await
    }

    /// Switches the file store to a passphrase (or changes it).
    pub async fn set_passphrase(&self, passphrase: Secret) -> Result<(), WriteError> {
        let what = "the new passphrase takes effect";
        self.ask(self.store.waits().read, what, |reply| {
            Command::SetPassphrase(passphrase, reply)
        })
        .await
    }

    /// What waits for the store now, for `status`.
    pub fn pending(&self) -> Pending {
        self.queue.pending()
    }

    /// Waits at most `limit` for the writes still pending; returns those it gives up on.
    pub async fn settle(&self, limit: Duration) -> Vec<String> {
        self.queue.settle(limit).await
    }
}

/// The plain-credential table as the writer holds it.
#[derive(Default)]
struct PlainState {
    /// What git is served: the store's table with the changes still being written.
    memory: Option<PlainTable>,
    /// What the store holds, as far as the writer knows.
    stored: Option<PlainTable>,
    /// Counts changes; a write carries the version it wrote.
    version: u64,
    /// A read of the table is queued.
    loading: bool,
    /// Requests waiting for the table to be read.
    waiters: Vec<Reply<()>>,
    /// Changes that came before the table was read; made once it is.
    deferred: Vec<Command>,
}

/// What the writer task owns.
struct Task {
    store: Arc<StoreSlot>,
    queue: StoreQueue,
    /// Where the store's queue sends outcomes back to this task.
    landed: mpsc::UnboundedSender<Landed>,
    books: Arc<Books>,
    state_dir: std::path::PathBuf,
    audit: Option<AuditLog>,
    tokens: TokenBookState,
    plain: PlainState,
    /// When `tokens.json` was last written.
    tokens_saved_at: u64,
    /// A lazily saved edit (`last_used`) is not in `tokens.json` yet.
    unsaved: bool,
    /// Where requests leave their audit events.
    inbox: Arc<AuditInbox>,
    /// The inbox said something arrived, not taken yet.
    inbox_waiting: bool,
    /// Audit events taken from the inbox, waiting for their write (see [`AUDIT_EVERY`]).
    held_audit: Vec<AuditEvent>,
    /// When the audit log was last written to.
    audit_written_at: Option<Instant>,
    /// Ids of tokens installed by a token change whose secret landed (see
    /// [`Task::token_secrets_written`]); a few bytes per token set since start.
    installed_by_queue: std::collections::HashSet<String>,
}

impl Task {
    /// Runs a batch of commands, each after the audit lines that came before it.
    fn run_all(&mut self, commands: impl Iterator<Item = Command>) {
        for command in commands {
            // In order: the events audited before this change was asked for are written
            // before it.
            self.flush_audit();
            self.run(command);
        }
    }

    /// When the audit lines held back are to be written: [`AUDIT_EVERY`] after the last
    /// write (`None`: nothing held).
    fn audit_due(&self) -> Option<Instant> {
        if self.held_audit.is_empty() && !self.inbox_waiting {
            return None;
        }
        Some(
            self.audit_written_at
                .map_or_else(Instant::now, |at| at + AUDIT_EVERY),
        )
    }

    /// Writes the audit lines held back and those in the inbox, in one write.
    fn flush_audit(&mut self) {
        self.inbox.take_into(&mut self.held_audit);
        self.inbox_waiting = false;
        if self.held_audit.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.held_audit);
        self.audit(&events);
        self.audit_written_at = Some(Instant::now());
        // The buffer's room is kept for the next lines.
        self.held_audit = events;
        self.held_audit.clear();
    }

    fn run(&mut self, command: Command) {
        // A requester that went away no longer wants the answer: ignore the send error.
        match command {
            Command::FlushAudit(reply) => {
                self.flush_audit();
                let _ = reply.send(Ok(()));
            }
            Command::LoadPlain(reply) => {
                if self.plain.memory.is_some() {
                    let _ = reply.send(Ok(()));
                } else {
                    self.plain.waiters.push(reply);
                    self.start_loading();
                }
            }
            command @ (Command::StorePlain { .. } | Command::ErasePlain { .. })
                if self.plain.memory.is_none() =>
            {
                self.plain.deferred.push(command);
                self.start_loading();
            }
            Command::StorePlain {
                cred,
                lifetime,
                now,
                reply,
            } => {
                let result = self.change_plain(|table| {
                    let outcome = table.store(&cred, lifetime, now);
                    (outcome == StoreOutcome::Stored, outcome)
                });
                let _ = reply.send(result);
            }
            Command::ErasePlain { cred, now, reply } => {
                let result = self.change_plain(|table| {
                    let erased = table.erase(&cred, now);
                    (erased > 0, erased)
                });
                let _ = reply.send(result);
            }
            Command::SetToken(change, now, reply) => self.set_token(*change, now, reply),
            Command::EditTokens(edit, save, reply) => {
                let _ = reply.send(self.edit_tokens(edit, save));
            }
            Command::Unlock(passphrase, reply) => {
                if let Err(full) = self.queue.room() {
                    let _ = reply.send(Err(full.into()));
                    return;
                }
                let (slot, landed) = (self.store.clone(), self.landed.clone());
                self.push("unlock the store", async move {
                    let result = slot
                        .call(move |open| {
                            open.store.unlock(&passphrase)?;
                            open.describe_again();
                            Ok(())
                        })
                        .await;
                    let _ = landed.send(Landed::Unlocked(result, reply));
                });
            }
            Command::SetPassphrase(passphrase, reply) => {
                if let Err(full) = self.queue.room() {
                    let _ = reply.send(Err(full.into()));
                    return;
                }
                let slot = self.store.clone();
                self.push("set the store's passphrase", async move {
                    let result = slot
                        .call(move |open| {
                            open.store.set_passphrase(&passphrase)?;
                            open.describe_again();
                            Ok(())
                        })
                        .await;
                    let _ = reply.send(result.map_err(WriteError::Store));
                });
            }
        }
    }

    /// Queues a store call whose requester was told there is room (see
    /// [`StoreQueue::room`]: only this task pushes, so the room is still there).
    fn push(
        &self,
        what: impl Into<String>,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        if let Err(e) = self.queue.push(what, work) {
            tracing::error!(error = %e, "a store call was dropped: the queue filled up unexpectedly");
        }
    }

    /// An outcome from the store's queue.
    fn landed(&mut self, landed: Landed) {
        match landed {
            Landed::PlainRead(result) => self.plain_read(result),
            Landed::PlainWritten { version, table, ok } => {
                if ok {
                    self.plain.stored = Some(*table);
                } else if version == self.plain.version {
                    // Nothing newer is being written: git is served what the store holds.
                    self.plain.memory = self.plain.stored.clone();
                    self.books.publish_plain(self.plain.memory.as_ref());
                }
            }
            Landed::TokenSecrets {
                change,
                current,
                now,
                result,
                reply,
            } => {
                let _ = reply.send(self.token_secrets_written(*change, current, now, result));
            }
            Landed::Unlocked(result, reply) => {
                if result.is_ok() {
                    // Read the table again: the locked store could not be read before.
                    self.plain.memory = None;
                    self.plain.stored = None;
                    self.books.publish_plain(None);
                }
                let _ = reply.send(result.map_err(WriteError::Store));
            }
        }
    }

    fn audit(&mut self, events: &[AuditEvent]) {
        if events.is_empty() {
            return;
        }
        match &mut self.audit {
            Some(log) => {
                if let Err(e) = log.append_all(events) {
                    tracing::error!(error = %e, events = events.len(), "could not write the audit log");
                }
            }
            None => {
                tracing::error!(
                    events = events.len(),
                    "audit log unavailable; events not recorded"
                )
            }
        }
    }

    /// Queues a read of the plain table, unless it is read or being read.
    fn start_loading(&mut self) {
        if self.plain.memory.is_some() || self.plain.loading {
            return;
        }
        let (slot, landed) = (self.store.clone(), self.landed.clone());
        let pushed = self.queue.push("read the plain credentials", async move {
            let result = slot.call_unlocked(|store| store.get(PLAIN_KEY)).await;
            let _ = landed.send(Landed::PlainRead(result));
        });
        match pushed {
            Ok(()) => self.plain.loading = true,
            Err(full) => self.plain_read(Err(StoreError::Unavailable {
                store: self.store.expected_kind(),
                detail: full.to_string(),
                hint: "try again once it answers".into(),
            })),
        }
    }

    /// The table was read (or not): answer who waited, make the changes that waited.
    fn plain_read(&mut self, result: Result<Option<Secret>, StoreError>) {
        self.plain.loading = false;
        let kind = self.store.expected_kind();
        let table = result.and_then(|blob| match blob {
            None => Ok(PlainTable::default()),
            Some(blob) => PlainTable::from_blob(&blob).map_err(|e| StoreError::Corrupt {
                store: kind,
                path: PLAIN_KEY.into(),
                detail: e.to_string(),
            }),
        });
        let waiters = std::mem::take(&mut self.plain.waiters);
        let deferred = std::mem::take(&mut self.plain.deferred);
        match table {
            Ok(table) => {
                self.books.publish_plain(Some(&table));
                self.plain.stored = Some(table.clone());
                self.plain.memory = Some(table);
                for waiter in waiters {
                    let _ = waiter.send(Ok(()));
                }
                for command in deferred {
                    self.run(command);
                }
            }
            Err(e) => {
                for waiter in waiters {
                    let _ = waiter.send(Err(WriteError::Store(e.duplicate())));
                }
                for command in deferred {
                    let error = WriteError::Store(e.duplicate());
                    match command {
                        Command::StorePlain { reply, .. } => {
                            let _ = reply.send(Err(error));
                        }
                        Command::ErasePlain { reply, .. } => {
                            let _ = reply.send(Err(error));
                        }
                        _ => unreachable!("only plain changes wait for the table"),
                    }
                }
                tracing::warn!(error = %e, "could not read the plain credentials");
            }
        }
    }

    /// Applies `change` to the table in memory (served from there at once) and, when it
    /// says so, queues the write of the whole table. A refused write leaves the table as
    /// it was.
    fn change_plain<T>(
        &mut self,
        change: impl FnOnce(&mut PlainTable) -> (bool, T),
    ) -> Result<Applied<T>, WriteError> {
        let table = self
            .plain
            .memory
            .as_mut()
            .expect("changes wait until the table is read");
        let before = table.clone();
        let (changed, outcome) = change(table);
        if !changed {
            return Ok(Applied {
                outcome,
                written: None,
            });
        }
        let written_table = Box::new(table.clone());
        let blob = table.to_blob();
        let version = self.plain.version + 1;
        let (done, written) = oneshot::channel();
        let (slot, landed) = (self.store.clone(), self.landed.clone());
        let pushed = self.queue.push(
            "write the plain credentials (git store/erase)",
            async move {
                let result = slot
                    .call_unlocked(move |store| store.set(PLAIN_KEY, &blob))
                    .await;
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "could not write the plain credentials");
                }
                let ok = result.is_ok();
                let _ = landed.send(Landed::PlainWritten {
                    version,
                    table: written_table,
                    ok,
                });
                let _ = done.send(result);
            },
        );
        match pushed {
            Ok(()) => {
                self.plain.version = version;
                self.books.publish_plain(self.plain.memory.as_ref());
                Ok(Applied {
                    outcome,
                    written: Some(written),
                })
            }
            Err(full) => {
                self.plain.memory = Some(before);
                Err(WriteError::Busy(full))
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

    /// Queues the write of the secret(s); the metadata follows when they landed
    /// ([`Task::token_secrets_written`]).
    fn set_token(&mut self, change: TokenChange, now: u64, reply: Reply<()>) {
        // Read the book before any secret is stored: an unreadable one stores nothing.
        let current = match self.book() {
            Ok(book) => book.for_runtime(&change.runtime).map(|t| t.id.clone()),
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if change.replaces.is_some() && current != change.replaces {
            let _ = reply.send(Err(changed_meanwhile(&change.runtime)));
            return;
        }
        let id = change.token.id.clone();
        let (secret, refresh) = (change.secret.clone(), change.refresh.clone());
        if let Err(full) = self.queue.room() {
            let _ = reply.send(Err(full.into()));
            return;
        }
        let what = format!("store the new token of runtime {}", change.runtime);
        let (slot, landed) = (self.store.clone(), self.landed.clone());
        self.push(what, async move {
            let result = slot
                .call_unlocked(move |store| {
                    store.set(&token::secret_key(&id), &secret)?;
                    if let Some(refresh) = refresh {
                        if let Err(e) = store.set(&token::refresh_key(&id), &refresh) {
                            let _ = store.delete(&token::secret_key(&id));
                            return Err(e);
                        }
                    }
                    Ok(())
                })
                .await;
            let _ = landed.send(Landed::TokenSecrets {
                change: Box::new(change),
                current,
                now,
                result,
                reply,
            });
        });
    }

    /// The new token's secrets are in the store (or failed): save the metadata that names
    /// them, then delete what they replaced.
    fn token_secrets_written(
        &mut self,
        change: TokenChange,
        current: Option<String>,
        now: u64,
        result: Result<(), StoreError>,
    ) -> Result<(), WriteError> {
        result?;
        let TokenChange {
            runtime,
            token,
            secret,
            refresh: _,
            hosts,
            also_for,
            replaces,
        } = change;
        let id = token.id.clone();
        let still = self.book()?.for_runtime(&runtime).map(|t| t.id.clone());
        // A token set before this one (the queue keeps their order) may have landed
        // meanwhile: this one replaces it, as it would have without the wait. Any other
        // change (a removal, a link) came after this one was asked for, and stands.
        // A successor (a refresh, a rotation) replaces exactly the token it succeeds,
        // never one set meanwhile.
        let overtaken = if replaces.is_some() {
            still != replaces
        } else {
            still != current
                && !still
                    .as_ref()
                    .is_some_and(|id| self.installed_by_queue.contains(id))
        };
        if overtaken {
            self.delete_secrets(&id);
            return Err(changed_meanwhile(&runtime));
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
            self.delete_secrets(&id);
            return Err(e);
        }
        self.books.publish_tokens(&self.tokens);
        self.store.remember_token_secret(&id, secret);
        self.installed_by_queue.insert(id);
        for orphan in orphans {
            self.delete_secrets(&orphan);
        }
        Ok(())
    }

    fn edit_tokens(&mut self, edit: Edit, save: Save) -> Result<(), WriteError> {
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
            self.delete_secrets(&orphan);
        }
        Ok(())
    }

    /// Forgets a token's secret and queues the deletion of it and its refresh token;
    /// failures only reach the log (the metadata no longer names them, so they are never
    /// served).
    fn delete_secrets(&mut self, id: &str) {
        self.store.forget_token_secret(id);
        let (key, refresh) = (token::secret_key(id), token::refresh_key(id));
        let slot = self.store.clone();
        let pushed = self
            .queue
            .push("delete a replaced token's secret", async move {
                let result = slot
                    .call_unlocked(move |store| {
                        store.delete(&key).and_then(|()| store.delete(&refresh))
                    })
                    .await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "could not delete a replaced token's secret");
                }
            });
        if let Err(e) = pushed {
            tracing::warn!(error = %e, "a replaced token's secret stays in the store");
        }
    }
}

fn changed_meanwhile(runtime: &str) -> WriteError {
    WriteError::Tokens(format!(
        "runtime {runtime}'s token changed meanwhile; the new one was not stored"
    ))
}

/// Sleeps until `when`, or forever when there is nothing to wait for.
async fn sleep_until_some(when: Option<Instant>) {
    match when {
        Some(when) => tokio::time::sleep_until(when).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::state::store_slot::{StoreSettings, StoreWaits};

    fn writer(dir: &std::path::Path) -> (Writer, Arc<Books>) {
        let store = Arc::new(StoreSlot::new(StoreSettings {
            state_dir: dir.join("state"),
            data_dir: dir.join("data"),
            forced: Some(StoreKind::File),
            keyring_service: "helperd-test".into(),
            config_file: dir.join("config.toml"),
            waits: StoreWaits::default(),
        }));
        let books = Arc::new(Books::default());
        let (writer, _task) = Writer::start(store, books.clone(), &dir.join("state"));
        (writer, books)
    }

    fn change(secret: &str, replaces: Option<String>) -> TokenChange {
        TokenChange {
            runtime: "work".into(),
            token: TokenMeta::new(Some(secret.into()), 1, None),
            secret: Secret::new(secret.to_string()),
            refresh: None,
            hosts: vec!["https://h.example".into()],
            also_for: Vec::new(),
            replaces,
        }
    }

    fn current(books: &Books) -> Option<String> {
        books
            .tokens()
            .as_ref()
            .as_ref()
            .unwrap()
            .for_runtime("work")
            .and_then(|t| t.name.clone())
    }

    /// Two token sets queued behind each other both land, in the order they were asked
    /// for; a refresh of the first, asked for after the second, never undoes it.
    // One thread: every request is in the writer's queue before it runs, as under load.
    #[tokio::test]
    async fn queued_token_sets_land_in_order_and_a_late_refresh_never_undoes_one() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, books) = writer(dir.path());
        writer.set_token(change("first", None), 1).await.unwrap();
        let first = books
            .tokens()
            .as_ref()
            .as_ref()
            .unwrap()
            .for_runtime("work")
            .unwrap()
            .id
            .clone();
        let (a, b, refresh) = tokio::join!(
            writer.set_token(change("second", None), 2),
            writer.set_token(change("third", None), 3),
            writer.set_token(change("refreshed-first", Some(first)), 4),
        );
        a.unwrap();
        b.unwrap();
        let refused = refresh.unwrap_err().to_string();
        assert!(refused.contains("changed meanwhile"), "{refused}");
        assert_eq!(current(&books).as_deref(), Some("third"));
    }

    /// A token set asked for before a removal lands after it: the removal stands.
    #[tokio::test]
    async fn a_removal_after_a_queued_token_set_stands() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, books) = writer(dir.path());
        writer.set_token(change("first", None), 1).await.unwrap();
        let remove: Edit =
            Box::new(|book: &mut TokenBook| Ok(book.unlink("work").into_iter().collect()));
        let (set, removed) = tokio::join!(
            writer.set_token(change("second", None), 2),
            writer.edit_tokens(remove, Save::Now),
        );
        removed.unwrap();
        assert!(set.unwrap_err().to_string().contains("changed meanwhile"));
        assert_eq!(current(&books), None);
    }

    /// Lines that come within `AUDIT_EVERY` of a write wait for the next one, and reach
    /// the log by themselves, before any other change, or when `helperctl audit` asks.
    #[tokio::test(start_paused = true)]
    async fn audit_lines_close_together_share_one_write_and_are_never_lost() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, _) = writer(dir.path());
        let lines = || {
            std::fs::read_to_string(dir.path().join("state/audit.log"))
                .unwrap_or_default()
                .lines()
                .count()
        };
        writer.audit(AuditEvent::now("first")).await;
        writer.flush_audit().await;
        assert_eq!(lines(), 1, "a line after a quiet moment is written at once");

        // The clock stands still: these come within AUDIT_EVERY of that write.
        writer.audit(AuditEvent::now("second")).await;
        writer.audit(AuditEvent::now("third")).await;
        tokio::task::yield_now().await;
        assert_eq!(lines(), 1, "held back for one write");
        tokio::time::sleep(AUDIT_EVERY).await;
        tokio::task::yield_now().await;
        assert_eq!(lines(), 3, "written once their moment is over");

        writer.audit(AuditEvent::now("fourth")).await;
        writer.flush_audit().await;
        assert_eq!(
            lines(),
            4,
            "helperctl audit finds every line sent before it"
        );

        writer.audit(AuditEvent::now("fifth")).await;
        writer
            .edit_tokens(Box::new(|_| Ok(Vec::new())), Save::Now)
            .await
            .expect("an edit of the token metadata");
        assert_eq!(lines(), 5, "held lines go out before the next change");
    }
}
