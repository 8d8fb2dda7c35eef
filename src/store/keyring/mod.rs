//! The OS keyring as the store of record, through the `keyring-core` family of crates
//! (DESIGN.md §7): the Secret Service on Linux, the login Keychain on macOS, Credential
//! Manager on Windows. One file per platform, the way keyring-rs keeps one store per crate
//! (`secret_service.rs`, `keychain.rs`, `wincred.rs`, and `unsupported.rs` for the other
//! systems); each gives `build` and `hint`, and this file is the
//! store they share. The platform store is built explicitly; there is no silent mock.
//!
//! Each secret is one keyring item: service = the remembered namespace (`helperd`, or
//! `helperd:<HELPERD_HOME>` for sandboxes, so test runs never touch a user's items),
//! user = the key. Where items are small (Credential Manager: 2,560 bytes), a larger
//! secret is split over several items ([`chunked`]). Calls block (D-Bus, the Security
//! framework, Credential Manager): the daemon makes them on `spawn_blocking`.

use std::collections::HashMap;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error as KeyringError};

use super::{SecretStore, StoreError, StoreKind};
use crate::secret::Secret;

pub mod chunked;

#[cfg(target_os = "linux")]
#[path = "secret_service.rs"]
mod platform;

#[cfg(target_os = "macos")]
#[path = "keychain.rs"]
mod platform;

#[cfg(windows)]
#[path = "wincred.rs"]
mod platform;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
#[path = "unsupported.rs"]
mod platform;

#[cfg(test)]
mod fake;

/// The OS keyring of this platform: the one chosen at a first start when it answers.
pub const PLATFORM_KIND: StoreKind = platform::KIND;

/// What a platform file gives the shared store.
pub struct Backend {
    /// The keyring-core store.
    pub store: Arc<CredentialStore>,
    /// The entry modifiers of one item, from its label (`helperd <key> (<service>)`):
    /// each store takes its own (a label on the Secret Service, the persistence on
    /// Windows) and refuses the others.
    pub modifiers: fn(&str) -> Vec<(&'static str, String)>,
    /// The largest item the store takes, when a secret can be larger: values are then
    /// split over several items ([`chunked`]).
    pub split: Option<chunked::Limit>,
}

/// A keyring-backed store.
pub struct KeyringStore {
    kind: StoreKind,
    service: String,
    backend: Backend,
}

impl std::fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringStore")
            .field("kind", &self.kind)
            .field("service", &self.service)
            .field("split", &self.backend.split)
            .finish()
    }
}

impl KeyringStore {
    /// Connects to the platform keyring of `kind` and checks that it answers.
    pub fn open(kind: StoreKind, service: &str) -> Result<KeyringStore, StoreError> {
        let backend = platform::build(kind).map_err(|detail| unavailable(kind, detail))?;
        Self::with_backend(kind, service, backend)
    }

    /// The store over `backend` (tests: a fake keyring), once it answers.
    fn with_backend(
        kind: StoreKind,
        service: &str,
        backend: Backend,
    ) -> Result<KeyringStore, StoreError> {
        let s = KeyringStore {
            kind,
            service: service.to_string(),
            backend,
        };
        // A keyring can be reachable yet refuse every read (locked, no default collection):
        // find out now, with a key that is never written.
        s.get("probe")?;
        Ok(s)
    }

    fn entry(&self, key: &str) -> Result<Entry, StoreError> {
        let label = format!("helperd {key} ({})", self.service);
        let owned = (self.backend.modifiers)(&label);
        let modifiers: HashMap<&str, &str> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.backend
            .store
            .build(&self.service, key, Some(&modifiers))
            .map_err(|e| self.error(e))
    }

    /// Maps a keyring error to ours, never carrying secret bytes (some variants hold them).
    fn error(&self, e: KeyringError) -> StoreError {
        let detail = match &e {
            KeyringError::BadEncoding(_) => "an item holds a value that is not UTF-8".to_string(),
            KeyringError::BadDataFormat(_, _) => "an item's data has an unexpected format".into(),
            KeyringError::Ambiguous(items) => {
                format!("{} items match one key; remove the duplicates", items.len())
            }
            KeyringError::NoStorageAccess(inner) => {
                format!("the keyring refused access ({inner}); is it locked?")
            }
            // keyring-core says "chars" whatever the store counts (Windows: bytes).
            KeyringError::TooLong(what, max) => {
                format!("the {what} is longer than the {max} the store takes in one item")
            }
            other => other.to_string(),
        };
        unavailable(self.kind, detail)
    }
}

fn unavailable(kind: StoreKind, detail: String) -> StoreError {
    StoreError::Unavailable {
        store: kind,
        detail,
        hint: platform::hint(kind),
    }
}

/// One keyring item per name: what [`chunked`] splits values over.
impl chunked::Items for KeyringStore {
    fn read(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        match self.entry(name)?.get_password() {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    fn write(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.entry(name)?
            .set_password(value)
            .map_err(|e| self.error(e))
    }

    fn remove(&self, name: &str) -> Result<(), StoreError> {
        match self.entry(name)?.delete_credential() {
            Ok(()) | Err(KeyringError::NoEntry) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    fn corrupt(&self, key: &str, detail: String) -> StoreError {
        StoreError::Corrupt {
            store: self.kind,
            path: format!("{} item {key:?}", self.service),
            detail,
        }
    }

    fn too_large(&self, key: &str, detail: String) -> StoreError {
        StoreError::NotSupported {
            store: self.kind,
            what: format!("storing {key:?}: {detail}"),
        }
    }
}

impl SecretStore for KeyringStore {
    fn kind(&self) -> StoreKind {
        self.kind
    }

    fn protection(&self) -> String {
        "OS keyring".into()
    }

    fn get(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        use chunked::Items;
        match self.backend.split {
            Some(_) => chunked::get(self, key),
            None => self.read(key),
        }
    }

    fn set(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        use chunked::Items;
        match self.backend.split {
            Some(limit) => chunked::set(self, limit, key, value.expose()),
            None => self.write(key, value.expose()),
        }
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        use chunked::Items;
        match self.backend.split {
            Some(_) => chunked::delete(self, key),
            None => self.remove(key),
        }
    }
}

#[cfg(test)]
mod tests;
