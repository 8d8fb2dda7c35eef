//! Secret stores: where secrets live at rest (DESIGN.md §7).
//!
//! The daemon keeps every secret under a short key (`plain-credentials`, `token/<id>`,
//! `token/<id>/refresh`) in one store of record: the OS keyring where one answers, else an
//! encrypted file, or OpenBao when `HELPERD_STORE=openbao` asks for it. The choice is made once and remembered ([`choice`]); a store that is
//! unreachable later is an error naming the store and the way out, never a silent switch.
//!
//! Every method may block (D-Bus, argon2, disk): the daemon calls them on
//! `spawn_blocking`.

pub mod choice;
pub mod file;
pub mod keyring;
pub mod openbao;

use crate::secret::Secret;

use crate::policy::StoreStrength;

/// Which kind of store holds the secrets. The names are the values of `HELPERD_STORE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The encrypted file store (key file, or passphrase), for when no keyring answers.
    File,
    /// The freedesktop Secret Service over D-Bus (GNOME Keyring, KWallet...), on Linux.
    SecretService,
    /// The macOS login keychain.
    Keychain,
    /// Windows Credential Manager (generic credentials, kept on this machine).
    Wincred,
    /// The team's OpenBao, under `[openbao] user_path` (DESIGN.md §10); only when chosen
    /// with `HELPERD_STORE=openbao`, never at a first start on its own.
    OpenBao,
}

impl StoreKind {
    /// Every kind, in the order `HELPERD_STORE`'s values are listed in messages.
    pub const ALL: [StoreKind; 5] = [
        StoreKind::File,
        StoreKind::SecretService,
        StoreKind::Keychain,
        StoreKind::Wincred,
        StoreKind::OpenBao,
    ];

    /// The `HELPERD_STORE` value and the name `status` shows (`file`, `secret-service`...).
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::File => "file",
            StoreKind::SecretService => "secret-service",
            StoreKind::Keychain => "keychain",
            StoreKind::Wincred => "wincred",
            StoreKind::OpenBao => "openbao",
        }
    }

    /// The kind named `name` (a `HELPERD_STORE` value); `None` if there is none.
    pub fn parse(name: &str) -> Option<StoreKind> {
        StoreKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// How well this store protects secrets, for the policy's `min_store`;
    /// `passphrase`: whether the file store is keyed by a passphrase (ignored for the
    /// others). OpenBao counts as a keyring: nothing is kept on the machine, and reading
    /// needs an OpenBao login (see [`openbao`]).
    pub fn strength(self, passphrase: bool) -> StoreStrength {
        match self {
            StoreKind::File if passphrase => StoreStrength::Passphrase,
            StoreKind::File => StoreStrength::KeyFile,
            StoreKind::SecretService
            | StoreKind::Keychain
            | StoreKind::Wincred
            | StoreKind::OpenBao => StoreStrength::Keyring,
        }
    }
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a store operation failed. Messages name the store and the way out; they never
/// contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file store is protected by a passphrase and nobody has unlocked it yet.
    #[error("the {store} store is locked: run `helperctl unlock`")]
    Locked {
        /// The locked store.
        store: StoreKind,
    },

    /// The store of record does not answer (no D-Bus session, keyring daemon gone, ...).
    #[error("the {store} store is unavailable: {detail}. {hint}")]
    Unavailable {
        /// The store that did not answer.
        store: StoreKind,
        /// What the OS or the keyring said; never a secret.
        detail: String,
        /// The way out, for the user (start the keyring, choose `HELPERD_STORE=file`...).
        hint: String,
    },

    /// The store has not answered within the time the request could wait: a keyring
    /// waiting for a person (an unlock dialog, a Keychain prompt), a frozen disk. The call
    /// goes on; nothing was lost.
    #[error("the {store} store has not answered for {secs} s: is it waiting for you (an unlock dialog, a Keychain prompt)? `helperctl status` shows what waits for it")]
    NoAnswer {
        /// The store that did not answer.
        store: StoreKind,
        /// How long the request waited.
        secs: u64,
    },

    /// The store needs settings it does not have (`[openbao]` in config.toml...).
    #[error("the {store} store is not set up: {detail}")]
    NotConfigured {
        /// The store chosen.
        store: StoreKind,
        /// What is missing and where to add it.
        detail: String,
    },

    /// The passphrase given to unlock the file store is not the right one.
    #[error("wrong passphrase for the {store} store")]
    WrongPassphrase {
        /// The store that refused the passphrase.
        store: StoreKind,
    },

    /// The store's data exists but cannot be decoded: nothing is overwritten.
    #[error("the {store} store at {path} cannot be read: {detail}; it was left untouched")]
    Corrupt {
        /// The store that cannot be decoded.
        store: StoreKind,
        /// The file (or keyring entry) holding it.
        path: String,
        /// What is wrong with it; never a secret.
        detail: String,
    },

    /// A file operation on the store's files failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done (`read`, `write`, ...), for the message.
        action: &'static str,
        /// The file it was done to.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The operation does not exist for this kind of store (e.g. a passphrase on a keyring).
    #[error("the {store} store does not support this: {what}")]
    NotSupported {
        /// The store asked.
        store: StoreKind,
        /// What was asked, and why it is not possible.
        what: String,
    },
}

impl StoreError {
    /// The same error again, for each of several requests that waited for one store call
    /// (an OS error keeps its kind and message).
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Locked { store } => StoreError::Locked { store: *store },
            StoreError::Unavailable {
                store,
                detail,
                hint,
            } => StoreError::Unavailable {
                store: *store,
                detail: detail.clone(),
                hint: hint.clone(),
            },
            StoreError::NoAnswer { store, secs } => StoreError::NoAnswer {
                store: *store,
                secs: *secs,
            },
            StoreError::NotConfigured { store, detail } => StoreError::NotConfigured {
                store: *store,
                detail: detail.clone(),
            },
            StoreError::WrongPassphrase { store } => StoreError::WrongPassphrase { store: *store },
            StoreError::Corrupt {
                store,
                path,
                detail,
            } => StoreError::Corrupt {
                store: *store,
                path: path.clone(),
                detail: detail.clone(),
            },
            StoreError::Io {
                action,
                path,
                source,
            } => StoreError::Io {
                action,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StoreError::NotSupported { store, what } => StoreError::NotSupported {
                store: *store,
                what: what.clone(),
            },
        }
    }

    /// The store the error is about, when it names one.
    pub fn store(&self) -> Option<StoreKind> {
        match self {
            StoreError::Locked { store }
            | StoreError::Unavailable { store, .. }
            | StoreError::NoAnswer { store, .. }
            | StoreError::WrongPassphrase { store }
            | StoreError::NotConfigured { store, .. }
            | StoreError::Corrupt { store, .. }
            | StoreError::NotSupported { store, .. } => Some(*store),
            StoreError::Io { .. } => None,
        }
    }
}

/// A place that keeps secrets under string keys.
pub trait SecretStore: Send + Sync {
    /// Which kind of store this is.
    fn kind(&self) -> StoreKind;

    /// How the secrets are protected at rest, in words for `helperctl status`.
    fn protection(&self) -> String;

    /// Where the secrets are, for `helperctl status` when it says more than the kind
    /// (OpenBao: `<mount>/<user_path>`); never a secret.
    fn location(&self) -> Option<String> {
        None
    }

    /// The secret under `key`, or `None` when there is none.
    fn get(&self, key: &str) -> Result<Option<Secret>, StoreError>;

    /// Stores `value` under `key`, replacing any previous value, durably.
    fn set(&self, key: &str, value: &Secret) -> Result<(), StoreError>;

    /// Removes `key`; removing a key that is not there is not an error.
    fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Whether the store needs `unlock` before it can be read.
    fn is_locked(&self) -> bool {
        false
    }

    /// Unlocks a passphrase-protected store.
    fn unlock(&self, _passphrase: &Secret) -> Result<(), StoreError> {
        Err(StoreError::NotSupported {
            store: self.kind(),
            what: "unlocking with a passphrase (only the file store has one)".into(),
        })
    }

    /// Switches the store to passphrase protection (or changes the passphrase).
    fn set_passphrase(&self, _passphrase: &Secret) -> Result<(), StoreError> {
        Err(StoreError::NotSupported {
            store: self.kind(),
            what: "passphrase protection (only the file store has one)".into(),
        })
    }
}
