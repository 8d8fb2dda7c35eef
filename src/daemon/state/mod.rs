//! The daemon's state, read without waiting (DESIGN.md §3): immutable snapshots of the
//! configuration, the policy, the token book and the plain-credential table, swapped
//! whole when they change; the store of record; and the one writer task that owns every
//! write. No lock here is held across an `.await`: a slow keyring or host delays only the
//! requests that need it.

pub mod audit_inbox;
pub mod clock;
pub mod config_watch;
pub mod logins;
pub mod mint_gate;
pub mod policy_watch;
pub mod refresh_gate;
pub mod rotation_gate;
pub mod store_queue;
pub mod store_slot;
pub mod team_watch;
pub mod tokens_file;
pub mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use helperd_wire::wire::SupportStatus;

use crate::audit::{kind, AuditEvent};
use crate::os::fswatch::FileWatch;
use crate::plain::PlainTable;
use crate::provider::{ProviderClient, ProviderError};
use crate::store::StoreKind;
use crate::token::TokenMeta;

use super::peer::Peer;
use clock::Clock;
use config_watch::ConfigWatch;
use logins::Logins;
use mint_gate::MintGate;
use policy_watch::PolicyWatch;
use refresh_gate::RefreshGate;
use store_slot::{StoreSettings, StoreSlot, StoreWaits};
use team_watch::TeamWatch;
use writer::{Books, TokenBookState, TokenChange, WriteError, Writer};

/// The change that makes `token` the successor of `old` (an OAuth refresh, a GitLab
/// rotation: the host made `old` useless or will): `runtime`'s token, and that of every
/// other runtime that uses `old`, made only while `runtime` still has `old`.
pub fn successor(
    config: &crate::config::Config,
    runtime: &str,
    old: &TokenMeta,
    token: TokenMeta,
    secret: crate::secret::Secret,
    refresh: Option<crate::secret::Secret>,
) -> TokenChange {
    let also_for = old
        .runtimes
        .iter()
        .filter(|r| r.as_str() != runtime)
        .map(|r| (r.clone(), crate::decision::runtime_hosts(config, r)))
        .collect();
    TokenChange {
        runtime: runtime.to_string(),
        token,
        secret,
        refresh,
        hosts: crate::decision::runtime_hosts(config, runtime),
        also_for,
        replaces: Some(old.id.clone()),
    }
}

/// Settings the daemon was started with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The user's `config.toml` (watched and reloaded while the daemon runs).
    pub config_file: PathBuf,
    /// Daemon-owned files: `tokens.json`, `store.json`, the audit log.
    pub state_dir: PathBuf,
    /// Where the encrypted file store and its key file live.
    pub data_dir: PathBuf,
    /// The main socket; the forward socket sits beside it.
    pub socket: PathBuf,
    /// `HELPERD_STORE`.
    pub forced_store: Option<StoreKind>,
    /// Keyring namespace for a first choice of the OS keyring.
    pub keyring_service: String,
    /// A client that connects and says nothing is dropped after this long.
    pub request_timeout: Duration,
    /// How long requests wait for the store of record before answering without it.
    pub store_waits: StoreWaits,
    /// The async runtime's worker threads; the server runs one accept loop on each.
    pub workers: usize,
}

impl Settings {
    /// The forward socket, beside the main one (DESIGN.md §11).
    pub fn forward_socket(&self) -> PathBuf {
        self.socket.with_file_name("forward.socket")
    }
}

/// The forward socket's state, for `status`.
#[derive(Default)]
pub struct ForwardState {
    /// Whether the forward socket is listening now.
    pub open: std::sync::atomic::AtomicBool,
    /// Forwarded git requests served since start.
    pub served: AtomicU64,
}

/// Support access in force (`helperctl support enable`).
pub struct SupportGrant {
    /// What the user and uid were granted, and until when; shown by `status`.
    pub status: SupportStatus,
    /// Sending (or dropping) ends the grant's listener.
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SupportGrant {
    /// Ends the grant: its listener stops and the support socket is removed. Idempotent.
    pub fn end(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Everything the daemon's request handlers share; see the module docs for the rules.
pub struct State {
    /// What the daemon was started with.
    pub settings: Settings,
    /// When the daemon started (monotonic), for `uptime_secs`.
    pub started: Instant,
    /// The daemon's idea of now; see [`State::now`].
    pub clock: Clock,
    /// The configuration in force and the file's last error.
    pub config: ConfigWatch,
    /// The admin policy in force and the policy file's last error.
    pub policy: PolicyWatch,
    /// Tells when `config.toml` or a policy file may have changed (see `look_at_files`).
    files: FileWatch,
    /// `files`' generation when the files were last looked at.
    files_seen: AtomicU64,
    /// The second (since start, from 1) of the last look at the files' stamps.
    files_looked_at: AtomicU64,
    /// The store of record, opened on first use.
    pub store: Arc<StoreSlot>,
    books: Arc<Books>,
    /// The one task that makes every write (store, `tokens.json`, audit log), in order.
    pub writer: Writer,
    /// The provider HTTP client, built on first use (an idle daemon never pays for it).
    providers: OnceLock<ProviderClient>,
    /// OAuth logins waiting for the user's approval.
    pub logins: Logins,
    /// Single-flight OAuth refreshes and their back-off.
    pub refresh: RefreshGate,
    /// GitHub App installation tokens: minted, held in memory, single-flight per runtime.
    pub mints: MintGate,
    /// GitLab self-rotation: the rotator task's wake-up and its notes (issue 18).
    pub rotation: Arc<rotation_gate::RotationGate>,
    support: Mutex<Option<SupportGrant>>,
    /// The forward socket's state, for `status`.
    pub forward: ForwardState,
    /// The team's runtimes from OpenBao (DESIGN.md §10).
    pub team: Arc<TeamWatch>,
    /// The last [`View`], with the snapshots it was made from.
    view: Mutex<Option<CachedView>>,
}

/// The configuration and token book the daemon decides with: the local ones with the
/// team's runtimes added (`team::overlay`).
#[derive(Clone)]
pub struct View {
    /// Local runtimes, then team runtimes.
    pub config: Arc<crate::config::Config>,
    /// Local tokens, then team tokens (metadata only).
    pub book: Arc<TokenBookState>,
    /// The team snapshot the view was made from (team tokens' secrets are there).
    pub team: Arc<team_watch::TeamSnapshot>,
    /// Team runtimes left out of the view (their URL prefix is taken): `(path, why)`.
    pub left_out: Arc<Vec<(String, String)>>,
}

struct CachedView {
    config: Arc<crate::config::Config>,
    book: Arc<TokenBookState>,
    view: View,
}

/// Why a new token was not stored. Nothing was changed.
#[derive(Debug)]
pub enum SetTokenError {
    /// The policy refuses it: the message.
    Policy(String),
    /// Writing failed (store, `tokens.json`, or the writer is gone).
    Write(WriteError),
}

impl State {
    /// Reads the files and starts the writer task (inside a tokio runtime).
    pub fn start(settings: Settings) -> (Arc<State>, tokio::task::JoinHandle<()>) {
        let store = Arc::new(StoreSlot::new(StoreSettings {
            state_dir: settings.state_dir.clone(),
            data_dir: settings.data_dir.clone(),
            forced: settings.forced_store,
            keyring_service: settings.keyring_service.clone(),
            config_file: settings.config_file.clone(),
            waits: settings.store_waits,
        }));
        let books = Arc::new(Books::default());
        let (writer, handle) = Writer::start(store.clone(), books.clone(), &settings.state_dir);
        // The watch first, then the files: an edit in between is seen at the first look.
        let mut watched = PolicyWatch::files_of_env();
        watched.push(settings.config_file.clone());
        let files = FileWatch::new(&watched);
        let config = ConfigWatch::load(&settings.config_file);
        let policy = PolicyWatch::load();
        let state = State {
            files_seen: AtomicU64::new(0),
            files_looked_at: AtomicU64::new(0),
            files,
            config,
            policy,
            settings,
            started: Instant::now(),
            clock: Clock::from_env(),
            store,
            books,
            writer,
            providers: OnceLock::new(),
            logins: Logins::default(),
            refresh: RefreshGate::default(),
            mints: MintGate::default(),
            rotation: Arc::default(),
            support: Mutex::new(None),
            forward: ForwardState::default(),
            team: Arc::default(),
            view: Mutex::new(None),
        };
        (Arc::new(state), handle)
    }

    /// Brings the configuration and policy snapshots up to date with their files, once at
    /// the start of every request: one non-blocking read of the watch when nothing
    /// changed, the files' `stat`s and a reload when something may have.
    pub fn look_at_files(&self) {
        let generation = self.files.generation();
        // A safety net under the watch (filesystems that report no events, links
        // re-pointed above a watched folder, and on macOS and Windows an event still on
        // its way from the watcher's thread): the files' stamps at least once a second.
        let second = self.started.elapsed().as_secs() + 1;
        let due = self.files_looked_at.swap(second, Ordering::Relaxed) != second;
        if self.files_seen.swap(generation, Ordering::Relaxed) != generation || due {
            self.look_at_files_now();
        }
    }

    /// Like [`State::look_at_files`], but always with the files' `stat`s, not only when
    /// the watch has told of a change: for `helperctl`'s requests, which a person or a
    /// script may send right after editing a file, before the watch's event has been
    /// read (they are few, so the `stat`s cost nothing that matters).
    pub fn look_at_files_now(&self) {
        let before = self.config.current();
        self.config.refresh();
        self.policy.refresh();
        // An edited [openbao] takes effect now, not at the reader's next round.
        if self.config.current().openbao != before.openbao {
            self.team.wake();
        }
    }

    /// Unix seconds, as the daemon sees them (see [`Clock`]).
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The runtime named `name` in the configuration in force.
    pub fn runtime(&self, name: &str) -> Option<crate::config::RuntimeConfig> {
        self.config.current().runtime(name).cloned()
    }

    /// The configuration and token book with the team's runtimes, made anew only when
    /// one of the three snapshots changed (a git request pays three `Arc` clones).
    pub fn view(&self) -> View {
        let config = self.config.current();
        let book = self.tokens();
        let team = self.team.current();
        let mut cached = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        if team.runtimes.is_empty() {
            // Drops a merged view of team runtimes gone since: their secrets with it.
            *cached = None;
            return View {
                config,
                book,
                team,
                left_out: Arc::default(),
            };
        }
        if let Some(c) = cached.as_ref() {
            if Arc::ptr_eq(&c.config, &config)
                && Arc::ptr_eq(&c.book, &book)
                && Arc::ptr_eq(&c.view.team, &team)
            {
                return c.view.clone();
            }
        }
        let (merged_config, merged_book, left_out) = match book.as_ref() {
            Ok(b) => {
                let (c, b, left_out) =
                    crate::team::overlay(&config, b, &team.runtimes, &team.marks);
                (c, Ok(b), left_out)
            }
            // Unreadable local tokens: the team runtimes still route (nothing falls to
            // the plain credentials), and every runtime is refused with the error.
            Err(e) => {
                let (c, _, left_out) =
                    crate::team::overlay(&config, &Default::default(), &team.runtimes, &team.marks);
                (c, Err(e.clone()), left_out)
            }
        };
        let view = View {
            config: Arc::new(merged_config),
            book: Arc::new(merged_book),
            team,
            left_out: Arc::new(left_out),
        };
        *cached = Some(CachedView {
            config,
            book,
            view: view.clone(),
        });
        view
    }

    /// The token book as the writer last published it.
    pub fn tokens(&self) -> Arc<TokenBookState> {
        self.books.tokens()
    }

    /// `runtime`'s token, when the book can be read and it has one.
    pub fn token_of(&self, runtime: &str) -> Option<TokenMeta> {
        self.tokens()
            .as_ref()
            .as_ref()
            .ok()?
            .for_runtime(runtime)
            .cloned()
    }

    /// The plain-credential table, when it has been read from the store.
    pub fn plain(&self) -> Option<Arc<PlainTable>> {
        self.books.plain()
    }

    /// Appends one event to the audit log (through the writer's queue).
    pub async fn audit(&self, event: AuditEvent) {
        self.writer.audit(event).await;
    }

    /// The provider HTTP client, built on the first call; fails only when the HTTP client
    /// cannot be built (TLS or proxy set-up).
    pub fn providers(&self) -> Result<ProviderClient, ProviderError> {
        if let Some(c) = self.providers.get() {
            return Ok(c.clone());
        }
        let c = ProviderClient::new()?;
        Ok(self.providers.get_or_init(|| c).clone())
    }

    /// The support grant in force, if any; the lock is never held across an `.await`.
    pub fn support(&self) -> MutexGuard<'_, Option<SupportGrant>> {
        self.support.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `token` (with `secret`, and an OAuth token's `refresh` token) `runtime`'s new
    /// token, for the hosts the runtime points at now; see [`State::set_token`]. A token
    /// that succeeds another one (a refresh, a rotation) is a [`successor`] instead.
    pub async fn new_token(
        &self,
        peer: Option<&Peer>,
        runtime: &str,
        token: TokenMeta,
        secret: crate::secret::Secret,
        refresh: Option<crate::secret::Secret>,
    ) -> Result<(), SetTokenError> {
        let change = TokenChange {
            runtime: runtime.to_string(),
            token,
            secret,
            refresh,
            hosts: crate::decision::runtime_hosts(&self.config.current(), runtime),
            also_for: Vec::new(),
            replaces: None,
        };
        self.set_token(peer, change).await
    }

    /// Makes `change.token` the runtime's token, when the policy in force allows it (an
    /// admin's edit applies to the very next token); a refusal is audited.
    pub async fn set_token(
        &self,
        peer: Option<&Peer>,
        change: TokenChange,
    ) -> Result<(), SetTokenError> {
        let now = self.now();
        if let Some(policy) = self.policy.current() {
            let p = policy.in_force();
            // A GitHub App key has no expiry; the tokens minted with it last an hour.
            let app_key = crate::token::is_app_key_kind(change.token.kind.as_deref());
            let mut violation = match app_key {
                true => None,
                false => p
                    .policy
                    .check_token(change.token.expires, now, p.source)
                    .err(),
            };
            if violation.is_none() && p.policy.min_store.is_some() {
                // No secret goes into a store weaker than the policy's min_store either;
                // opening the store is what tells its strength.
                let open = self
                    .store
                    .open()
                    .await
                    .map_err(|e| SetTokenError::Write(e.into()))?;
                violation = p.policy.check_store(open.strength(), p.source).err();
            }
            if let Some(v) = violation {
                tracing::warn!(runtime = %change.runtime, rule = v.rule, "token refused by the policy");
                let e = AuditEvent::now(kind::POLICY_VIOLATION)
                    .runtime(&change.runtime)
                    .token(crate::decision::token_label(&change.token))
                    .reason(v.message.clone());
                self.audit(match peer {
                    Some(peer) => peer.stamp(e),
                    None => e,
                })
                .await;
                return Err(SetTokenError::Policy(v.message));
            }
        }
        self.writer
            .set_token(change, now)
            .await
            .map_err(SetTokenError::Write)
    }
}
